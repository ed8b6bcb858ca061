//! The publish path: rows appended to a stream's log under a new stamp, the logs synced,
//! then the rows fed to the standing queries, whose results, late rows and failed rows are
//! appended to their output logs under the same stamp.

use std::sync::Arc;

use sluice_engine::Changes;
use sluice_engine::catalog::StreamDef;
use sluice_engine::failure::failure_rows;
use sluice_engine::output::to_output_batch;
use sluice_engine::time::Millis;
use sluice_log::{Appended, PendingSync};

use super::records::{split_kinds, with_kinds};
use super::result_log::Output;
use super::{Core, now};
use crate::ServeError;

/// Rows of one publish a query could not compute that are written to the server's log one by
/// one; the query's error output (`NAME.errors`) holds them all, and `stats` counts them.
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

    /// Appends what the queries emitted — results, late rows, rows they could not compute —
    /// to their output logs, stamped with the publish that caused it. These logs are not
    /// synced: they are made again from the streams' logs on a restart.
    pub(super) fn collect_results(&mut self, stamp: Millis) -> Result<(), ServeError> {
        let engine = self.session.engine_mut();
        let results = engine.drain_results();
        let late = engine.drain_late_results();
        let failures = engine.drain_failures();
        for (output, drained) in [(Output::Results, results), (Output::Late, late)] {
            for (id, changes) in drained {
                let Some(query) = self.queries.values_mut().find(|q| q.id == id) else {
                    continue;
                };
                for change in changes {
                    query
                        .output_mut(output)
                        .append(to_output_batch(&change)?, stamp)?;
                }
            }
        }
        for (id, failures) in failures {
            let Some((name, query)) = self.queries.iter_mut().find(|(_, q)| q.id == id) else {
                continue;
            };
            query.errors.append(failure_rows(&failures)?, stamp)?;
            if self.replaying {
                continue;
            }
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
