//! The publish path: rows appended to a stream's log under a new stamp, the logs synced,
//! then the rows fed to the standing queries, whose results are appended to their result
//! logs under the same stamp.

use std::sync::Arc;

use sluice_engine::Changes;
use sluice_engine::catalog::StreamDef;
use sluice_engine::output::to_output_batch;
use sluice_engine::time::Millis;
use sluice_log::{Appended, PendingSync};

use super::records::{split_kinds, with_kinds};
use super::{Core, now};
use crate::ServeError;

/// Rows of one publish a query could not compute that are logged one by one; `stats` counts
/// them all (`failed_rows`).
const LOGGED_FAILURES: usize = 3;

/// Rows a publish appended to a stream's log, under one stamp.
pub struct Logged {
    pub stream: String,
    pub stamp: Millis,
    pub parts: Vec<Appended>,
}

/// A sync of one stream partition, to wait on without holding the core.
pub struct StreamSync {
    stream: String,
    partition: usize,
    pending: PendingSync,
}

impl StreamSync {
    /// Waits for the disk; gives what to pass to [`Core::mark_durable`].
    pub fn wait(self) -> Result<(String, usize, u64), ServeError> {
        let end = self.pending.wait()?;
        Ok((self.stream, self.partition, end))
    }
}

impl Core {
    /// The definition of stream `name`, to decode events for it with [`decode`].
    pub fn stream_def(&self, name: &str) -> Result<Arc<StreamDef>, ServeError> {
        self.session
            .engine()
            .catalog()
            .get(name)
            .cloned()
            .ok_or_else(|| ServeError::Request(format!("unknown stream '{name}'")))
    }

    /// Appends rows to `stream`'s log under a new stamp (durable once synced: see
    /// [`Core::begin_sync`]); gives what went to each partition, in the order the engine is
    /// to be fed it.
    pub fn append(&mut self, stream: &str, changes: &Changes) -> Result<Logged, ServeError> {
        // Publishes are stamped in the order they happen, so a replay can follow it.
        let stamp = now().max(self.last_stamp + 1);
        let log = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| ServeError::Request(format!("unknown stream '{stream}'")))?;
        let parts = log.publish(&with_kinds(changes)?, stamp)?;
        self.last_stamp = stamp;
        Ok(Logged {
            stream: stream.to_string(),
            stamp,
            parts,
        })
    }

    /// Syncs of every stream partition appended to since its last sync.
    pub fn begin_sync(&mut self) -> Result<Vec<StreamSync>, ServeError> {
        let mut syncs = Vec::new();
        for (name, log) in &mut self.streams {
            for (partition, pending) in log.begin_sync()? {
                syncs.push(StreamSync {
                    stream: name.clone(),
                    partition,
                    pending,
                });
            }
        }
        Ok(syncs)
    }

    /// Makes every append durable before going on.
    pub(super) fn sync_now(&mut self) -> Result<(), ServeError> {
        for sync in self.begin_sync()? {
            let (stream, partition, end) = sync.wait()?;
            self.mark_durable(&stream, partition, end);
        }
        Ok(())
    }

    /// Records that a stream partition is durable up to `end`: subscribers see rows only
    /// that far.
    pub fn mark_durable(&mut self, stream: &str, partition: usize, end: u64) {
        if let Some(part) = self
            .streams
            .get_mut(stream)
            .and_then(|log| log.partition_mut(partition))
        {
            part.mark_durable(end);
        }
    }

    /// Feeds logged rows to the standing queries; their results go to the result logs.
    pub fn feed(&mut self, logged: &Logged) -> Result<(), ServeError> {
        self.fed_stamp = logged.stamp;
        for part in &logged.parts {
            let changes = split_kinds(&part.rows)?;
            self.session
                .engine_mut()
                .append_changes(&logged.stream, &changes)?;
        }
        self.collect_results(logged.stamp)
    }

    /// Appends what the queries emitted to their result logs, stamped with the publish
    /// that caused it. The result logs are not synced: they are made again from the
    /// streams' logs on a restart.
    pub(super) fn collect_results(&mut self, stamp: Millis) -> Result<(), ServeError> {
        let results = self.session.engine_mut().drain_results();
        for (id, changes) in results {
            let Some(query) = self.queries.values_mut().find(|q| q.id == id) else {
                continue;
            };
            for change in changes {
                let mut rows = to_output_batch(&change)?;
                if stamp < query.logged.stamp {
                    continue;
                }
                if stamp == query.logged.stamp {
                    let skipped = query.logged.count.min(rows.num_rows() as u64) as usize;
                    query.logged.count -= skipped as u64;
                    rows = rows.slice(skipped, rows.num_rows() - skipped);
                }
                if rows.num_rows() > 0 {
                    query.log.publish(&rows, stamp)?;
                }
            }
        }
        self.session.engine_mut().drain_late_results();
        for (id, failures) in self.session.engine_mut().drain_failures() {
            let name = self
                .queries
                .iter()
                .find(|(_, query)| query.id == id)
                .map_or("?", |(name, _)| name.as_str());
            for failure in failures.iter().take(LOGGED_FAILURES) {
                eprintln!(
                    "query '{name}': a row could not be computed: {}: {}",
                    failure.error, failure.row
                );
            }
            if failures.len() > LOGGED_FAILURES {
                eprintln!(
                    "query '{name}': {} more row(s) of the same publish could not be computed",
                    failures.len() - LOGGED_FAILURES
                );
            }
        }
        Ok(())
    }
}
