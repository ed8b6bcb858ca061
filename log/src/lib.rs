//! The durable log: each stream kept as partitions of append-only, CRC-checked segment
//! files with offsets, and consumer groups' committed offsets.
//!
//! [`StreamLog`] spreads published rows over its partitions by a key column's hash (or a
//! whole batch to each partition in turn), [`PartitionLog`] keeps one partition's records
//! (`partition.rs`, `segment.rs`, `record.rs`), and [`GroupOffsets`] keeps where each
//! consumer group has got to (`groups.rs`). [`file_name`] turns any name into a file name that
//! stays in its directory. Nothing is durable until synced: the caller
//! syncs after each publish, or once for a group of publishes. A publish spread over several
//! partitions is all or nothing: one that a crash cut short is cut off when the stream is
//! opened (`stream.rs`).

mod error;
mod file_name;
mod groups;
mod partition;
mod record;
mod segment;
mod stream;

pub use error::{LogError, Result};
pub use file_name::file_name;
pub use groups::GroupOffsets;
pub use partition::{Fetched, PartitionLog, PendingSync, Retained};
pub use segment::Recovered;
pub use stream::{Appended, StreamLog};

/// Milliseconds since the Unix epoch: append times and retention ages.
pub type Millis = i64;

/// How a log's partitions are sized and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is sealed once it would pass this many bytes.
    pub segment_bytes: u64,
    /// Whole oldest segments are deleted while a partition holds more bytes than this.
    pub retention_bytes: Option<u64>,
    /// Whole oldest segments are deleted once their last append is older than this.
    pub retention_age: Option<Millis>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            retention_bytes: None,
            retention_age: None,
        }
    }
}
