//! Feeding a publish to the standing queries, whose results, late rows and failed rows are
//! appended to their output logs under the publish's stamp.

use sluice_engine::failure::failure_rows;
use sluice_engine::output::to_output_batch;
use sluice_engine::time::{Millis, with_arrival_time};

use super::records::split_kinds;
use super::result_log::Output;
use super::{Core, Logged};
use crate::ServeError;

/// Rows of one publish a query could not compute that are written to the server's log one by
/// one; the query's error output (`NAME.errors`) holds them all, and `stats` counts them.
const LOGGED_FAILURES: usize = 3;

impl Core {
    /// Feeds logged rows to the standing queries; their results go to the result logs. The
    /// publish's stamp is the rows' processing time (`PROCTIME()`), on replay as when live.
    pub fn feed(&mut self, logged: &Logged) -> Result<(), ServeError> {
        with_arrival_time(logged.stamp, || self.feed_parts(logged))?;
        self.collect_results(logged.stamp)
    }

    fn feed_parts(&mut self, logged: &Logged) -> Result<(), ServeError> {
        self.fed_stamp = logged.stamp;
        for part in &logged.parts {
            self.fed_offsets.insert(
                (logged.stream.clone(), part.partition),
                part.offset + part.rows.num_rows() as u64,
            );
            let changes = split_kinds(&part.rows)?;
            self.session
                .engine_mut()
                .append_changes(&logged.stream, &changes)?;
        }
        Ok(())
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
