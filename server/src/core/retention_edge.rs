//! Where a consumer group's committed offset in a partition stands against the retention
//! edge: behind it (its next rows were deleted), or near it (within the oldest segment,
//! which retention deletes next).

use sluice_log::{LogConfig, PartitionLog};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RetentionEdge {
    /// Within the oldest segment, which retention deletes next.
    Near,
    /// Before the oldest offset kept.
    Behind,
}

impl RetentionEdge {
    /// Whether a group's committed offset `committed` in `part` is behind the retention
    /// edge, near it, or neither; near only when `config` retains by size or age.
    pub(super) fn of(
        part: &PartitionLog,
        committed: u64,
        config: &LogConfig,
    ) -> Option<RetentionEdge> {
        let retained = config.retention_bytes.is_some() || config.retention_age.is_some();
        if committed < part.start() {
            Some(RetentionEdge::Behind)
        } else if retained && part.oldest_segment_end().is_some_and(|end| committed < end) {
            Some(RetentionEdge::Near)
        } else {
            None
        }
    }
}
