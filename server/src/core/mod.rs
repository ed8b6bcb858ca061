//! The server's state: the SQL session, each stream's log, each standing query's result
//! log, consumer groups and subscriptions. Connections reach it under one lock; the streams'
//! logs have a lock of their own, for the publisher.
//!
//! A publish is stamped (strictly increasing), appended to the stream's log and synced under
//! the streams' own lock (`streams`), acknowledged, then fed to the engine by the feeder under
//! the core's; what each query emits goes to the query's result log under the same stamp.
//! Requests that use the core first wait until every acknowledged publish has been fed, so
//! they see what was acknowledged before them. Stream subscribers see rows once durable. What the server has been told
//! (statements, registered and cancelled queries) is kept in `catalog.jsonl` with the stamp
//! of the last publish fed before it. On start, the entries and every stream's retained
//! records are replayed in stamp order, so each query sees what it saw when live; results
//! of stamps a result log already holds are not appended again. Result logs are therefore
//! not synced: a restart makes them again from the streams' logs.
//!
//! This file holds [`Core`] and its opening; the parts are:
//! - `checkpoint`: the queries' state saved between publishes, restored on start;
//! - `saving_child`: a checkpoint's state saved by a forked child, off the core's lock;
//! - `checkpoint_status`: the last checkpoint and the kept ones' offsets, for `stats`;
//! - `journal`: the catalog journal, `catalog.jsonl`, read and appended to;
//! - `replay`: applying the journal and the streams' records in stamp order on start;
//! - `statements`: running SQL statements and recording what they changed;
//! - `queries`: registering and cancelling standing queries, with their result logs;
//! - `result_log`: a standing query's output logs (results, late rows, failed rows) and
//!   where appending to each resumes;
//! - `streams`: the streams' logs under their own lock: appending, syncing, and the queue
//!   of publishes not fed yet;
//! - `publish`: feeding the queries a publish and logging their results;
//! - `payload`: decoding a publish's JSON events or CSV into changes;
//! - `records`: changes as log records, their kinds in a column of their own;
//! - `json_rows`: rows encoded as JSON objects;
//! - `subscription`: what a subscription reads and where it starts;
//! - `subscribe`: subscribing, consumer group assignment and acknowledgements;
//! - `fetch`: the next rows and notices for a subscription;
//! - `retention_edge`: where a group's committed offset is against the retention edge;
//! - `retention`: applying retention and warning groups near its edge;
//! - `stats`: offsets, lag and state of streams, queries, groups and subscriptions.

pub(crate) mod checkpoint;
mod checkpoint_status;
mod fetch;
mod journal;
mod json_rows;
mod payload;
mod publish;
mod queries;
mod records;
mod replay;
mod result_log;
mod retention;
mod retention_edge;
mod saving_child;
mod statements;
mod stats;
mod streams;
mod subscribe;
mod subscription;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_engine::time::Millis;
use sluice_log::{GroupOffsets, LogConfig};
use sluice_sql::Session;

use crate::ServeError;

use self::checkpoint_status::CheckpointStatus;
use self::result_log::Query;
use self::subscription::Subscription;

pub use self::payload::{Payload, Rejected, decode};
pub use self::streams::{Logged, SharedStreams, Streams};
pub use self::subscription::{StartAt, Target};

pub use crate::op::FailedEntry;

pub struct Core {
    /// Held locked while the server runs, so no second one opens the same directory.
    _lock: std::fs::File,
    session: Session,
    data_dir: PathBuf,
    config: LogConfig,
    streams: Arc<SharedStreams>,
    queries: BTreeMap<String, Query>,
    groups: BTreeMap<String, GroupOffsets>,
    subscriptions: BTreeMap<u64, Subscription>,
    /// Subscriptions whose target went away, with what happened, until their reader is told.
    ended: BTreeMap<u64, String>,
    next_subscription: u64,
    /// While replaying on start: nothing is written to the catalog.
    replaying: bool,
    /// The stamp of the latest publish fed to the engine: catalog entries record it, so a
    /// replay applies them between the same publishes.
    fed_stamp: Millis,
    /// Queries registered so far, numbering their result logs.
    registrations: u64,
    /// Journal entries that failed when replayed on start, with their errors.
    failed: Vec<FailedEntry>,
    /// Journal entries applied or written so far.
    journal_entries: u64,
    /// Per stream partition, the next offset to feed the queries.
    fed_offsets: BTreeMap<(String, usize), u64>,
    /// Whether checkpoints are taken (retention then keeps what they need).
    checkpointing: bool,
    checkpoints: CheckpointStatus,
    /// The highest checkpoint id found on start.
    next_checkpoint: u64,
    /// Checkpoints found damaged or unusable on start, with why.
    checkpoint_problems: Vec<String>,
    /// Standing queries stopped because their state could not be restored, with why.
    failed_queries: BTreeMap<String, String>,
    /// While applying the journal entries a checkpoint covers.
    restoring: bool,
}

pub(crate) fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

fn internal(error: impl std::fmt::Display) -> ServeError {
    ServeError::Request(error.to_string())
}

impl Core {
    /// Opens the server's state in `data_dir`, restoring its newest checkpoint and replaying
    /// what came after it; `checkpointing` says whether checkpoints will be taken.
    pub fn open(
        data_dir: &Path,
        config: LogConfig,
        checkpointing: bool,
    ) -> Result<Core, ServeError> {
        std::fs::create_dir_all(data_dir)?;
        let lock = std::fs::File::create(data_dir.join("lock"))?;
        if let Err(error) = lock.try_lock() {
            return Err(match error {
                std::fs::TryLockError::WouldBlock => {
                    ServeError::InUse(data_dir.display().to_string())
                }
                std::fs::TryLockError::Error(error) => error.into(),
            });
        }
        let mut core = Core {
            _lock: lock,
            session: Session::new(),
            data_dir: data_dir.to_path_buf(),
            config,
            streams: Arc::default(),
            queries: BTreeMap::new(),
            groups: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            ended: BTreeMap::new(),
            next_subscription: 1,
            replaying: true,
            fed_stamp: 0,
            registrations: 0,
            failed: Vec::new(),
            journal_entries: 0,
            fed_offsets: BTreeMap::new(),
            checkpointing,
            checkpoints: CheckpointStatus::default(),
            next_checkpoint: 0,
            checkpoint_problems: Vec::new(),
            failed_queries: BTreeMap::new(),
            restoring: false,
        };
        // A query sees what is published after it is registered, on replay as when live.
        core.session.engine_mut().stop_retaining_history();
        // Inserted rows go through the stream's log like published ones.
        core.session.capture_inserts();
        let mut entries = core.read_journal()?;
        let cut = core.restore(&mut entries)?;
        core.update_retention_floors()?;
        core.replay(entries, cut)?;
        core.replaying = false;
        Ok(core)
    }

    /// The streams, for the publisher and the feeder.
    pub fn shared_streams(&self) -> Arc<SharedStreams> {
        Arc::clone(&self.streams)
    }

    /// The stamp of the latest publish fed to the queries.
    pub fn fed_stamp(&self) -> Millis {
        self.fed_stamp
    }
}
