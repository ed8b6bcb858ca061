//! What the server knows of its checkpoints while it runs, for `stats` and for retention:
//! the last one written, the last error, and the offsets the kept ones start from.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_engine::time::Millis;

/// Per stream partition, an offset.
pub(super) type Offsets = BTreeMap<(String, usize), u64>;

/// The last checkpoint written.
#[derive(Debug, Clone, Copy)]
pub(super) struct LastCheckpoint {
    pub(super) id: u64,
    /// When it was written.
    pub(super) at: Millis,
    pub(super) bytes: u64,
    /// How long beginning it held the core, pausing ingest.
    pub(super) pause: Duration,
    /// How long saving and writing it took in all, from its beginning.
    pub(super) took: Duration,
}

impl LastCheckpoint {
    fn to_json(self, bytes: u64, now: Millis) -> Value {
        json!({"id": self.id, "age_ms": now.saturating_sub(self.at), "bytes": bytes,
               "pause_ms": self.pause.as_secs_f64() * 1000.0,
               "took_ms": self.took.as_secs_f64() * 1000.0})
    }
}

/// What `stats` says of checkpoints.
#[derive(Debug, Clone, Default)]
pub(super) struct CheckpointStatus {
    /// The last checkpoint written.
    pub(super) last: Option<LastCheckpoint>,
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
            (Some(last), Some(bytes)) => last.to_json(*bytes as u64, now),
            _ => Value::Null,
        }
    }

    pub(super) fn to_json(&self, held_back_bytes: u64, now: Millis) -> Value {
        let last = self.last.map(|last| last.to_json(last.bytes, now));
        json!({"last": last, "error": self.error,
               "retention_held_back_bytes": held_back_bytes})
    }
}
