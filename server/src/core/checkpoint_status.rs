//! What the server knows of its checkpoints while it runs, for `stats` and for retention:
//! the last one written, the last error, and the offsets the kept ones start from.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_engine::time::Millis;

/// Per stream partition, an offset.
pub(super) type Offsets = BTreeMap<(String, usize), u64>;

/// What `stats` says of checkpoints.
#[derive(Debug, Clone, Default)]
pub(super) struct CheckpointStatus {
    /// The last checkpoint written: its id, when, its bytes, how long ingest paused.
    pub(super) last: Option<(u64, Millis, u64, Duration)>,
    /// The error of the last attempt, when it failed.
    pub(super) error: Option<String>,
    /// The bytes of each query's state in the last checkpoint.
    pub(super) query_bytes: BTreeMap<sluice_engine::QueryId, usize>,
    /// Offsets kept checkpoints start from, oldest checkpoint first.
    pub(super) kept: Vec<(u64, Offsets)>,
}

impl CheckpointStatus {
    /// What `stats` says of query `id`'s part of the last checkpoint.
    pub(super) fn of_query(&self, id: sluice_engine::QueryId, now: Millis) -> Value {
        match (self.last, self.query_bytes.get(&id)) {
            (Some((checkpoint, at, _, pause)), Some(bytes)) => json!({
                "id": checkpoint, "age_ms": now.saturating_sub(at), "bytes": bytes,
                "pause_ms": pause.as_secs_f64() * 1000.0}),
            _ => Value::Null,
        }
    }

    pub(super) fn to_json(&self, held_back_bytes: u64, now: Millis) -> Value {
        let last = self.last.map(|(id, at, bytes, pause)| {
            json!({"id": id, "age_ms": now.saturating_sub(at), "bytes": bytes,
                   "pause_ms": pause.as_secs_f64() * 1000.0})
        });
        json!({"last": last, "error": self.error,
               "retention_held_back_bytes": held_back_bytes})
    }
}
