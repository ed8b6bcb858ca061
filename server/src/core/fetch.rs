//! Fetching for a subscription: the next rows from its assigned partitions as JSON
//! objects (stream rows once durable, a query's results, an alert's firings), with
//! notices about its group's retention edge.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::output::to_output_batch;
use sluice_log::PartitionLog;
use sluice_sql::ALERT_COLUMN;

use super::json_rows::json_rows;
use super::records::split_kinds;
use super::subscription::{StartAt, Subscription, Target};
use super::{Core, internal};
use crate::ServeError;

/// What a subscription is sent next: rows, and notices about its group.
#[derive(Default)]
pub struct Fetch {
    pub rows: Vec<Delivered>,
    /// A line for each partition whose group's committed offset has come near the retention
    /// edge (within the oldest segment, which retention deletes next) or fallen behind it;
    /// said once until it is no longer so.
    pub warnings: Vec<String>,
}

/// A row delivered to a subscriber.
pub struct Delivered {
    pub partition: usize,
    pub offset: u64,
    /// The row as a JSON object, `op` first.
    pub row: String,
}

impl Core {
    /// The next rows for a subscription, at most about `max_rows`, from its assigned
    /// partitions; advances its positions past them.
    pub fn fetch(&mut self, id: u64, max_rows: usize) -> Result<Fetch, ServeError> {
        if let Some(reason) = self.ended.remove(&id) {
            return Err(ServeError::Request(reason));
        }
        let shared = Arc::clone(&self.streams);
        let streams = shared.lock()?;
        let assigned = self.assigned_in(&streams, id)?;
        let mut warnings = self.retention_warnings(&streams, id, &assigned);
        let Some(subscription) = self.subscriptions.get(&id) else {
            return Ok(Fetch::default());
        };
        let log = self.log(&streams, &subscription.target)?;
        let mut delivered = Vec::new();
        let mut positions = Vec::new();
        for partition in assigned {
            let Some(part) = log.partitions().get(partition) else {
                continue;
            };
            let position = self.next_offset(subscription, partition, part);
            if position < part.start() {
                warnings.push(format!(
                    "rows {position}..{} of partition {partition} were deleted by retention \
                     before they were delivered",
                    part.start()
                ));
            }
            let mut next = position.max(part.start());
            // Stream rows are delivered once durable; results are made again on a restart.
            let end = match subscription.target {
                Target::Stream(_) => part.durable_end(),
                Target::Query(_) | Target::Alert(_) => part.end(),
            };
            if delivered.len() < max_rows && next < end {
                for fetched in part.read(next, max_rows - delivered.len())? {
                    if fetched.offset >= end {
                        break;
                    }
                    let (rows, offsets) = match &subscription.target {
                        Target::Stream(_) => (to_output_batch(&split_kinds(&fetched.rows)?)?, None),
                        Target::Query(_) => (fetched.rows.clone(), None),
                        Target::Alert(name) => {
                            let (rows, kept) = firings_of(&fetched.rows, name)?;
                            (rows, Some(kept))
                        }
                    };
                    for (i, row) in json_rows(&rows)?.into_iter().enumerate() {
                        let at = offsets.as_ref().and_then(|o| o.get(i)).copied();
                        delivered.push(Delivered {
                            partition,
                            offset: fetched.offset + at.unwrap_or(i) as u64,
                            row,
                        });
                    }
                    next = fetched.offset + fetched.rows.num_rows() as u64;
                }
            }
            positions.push((partition, next));
        }
        if let Some(subscription) = self.subscriptions.get_mut(&id) {
            subscription.positions.extend(positions);
        }
        Ok(Fetch {
            rows: delivered,
            warnings,
        })
    }

    /// The next offset `subscription` reads in `partition` (`part`): where it got to, or
    /// its group's committed offset, or where it was asked to start.
    pub(super) fn next_offset(
        &self,
        subscription: &Subscription,
        partition: usize,
        part: &PartitionLog,
    ) -> u64 {
        if let Some(position) = subscription.positions.get(&partition) {
            return *position;
        }
        let committed = subscription.group.as_ref().and_then(|g| {
            self.groups
                .get(g)
                .and_then(|o| o.get(&subscription.target.key(), partition))
        });
        committed.unwrap_or(match subscription.start {
            StartAt::Earliest => part.start(),
            StartAt::Latest => part.end(),
            StartAt::Offset(offset) => offset,
            StartAt::Time(time) => part.offset_at(time),
        })
    }
}

/// The rows of result rows `rows` (of an alert query) that are firings of alert `name`,
/// and their positions in `rows`.
fn firings_of(rows: &RecordBatch, name: &str) -> Result<(RecordBatch, Vec<usize>), ServeError> {
    let names = rows
        .column_by_name(ALERT_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| internal("alert results without the alert's name"))?;
    let kept: Vec<usize> = (0..names.len())
        .filter(|&row| names.is_valid(row) && names.value(row) == name)
        .collect();
    let indices = UInt32Array::from_iter_values(kept.iter().map(|&row| row as u32));
    Ok((take_record_batch(rows, &indices)?, kept))
}
