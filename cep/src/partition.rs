//! One partition's rows in order, and how the search sees them.

use std::collections::VecDeque;

use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::time::{Millis, WATERMARK_MIN};
use sluice_engine::{EngineError, Result};

use crate::condition::{Condition, holds_in_context};
use crate::operator::MatchRecognizeConfig;
use crate::store::{RowRef, RowStore};
use crate::{Binding, Rows};

pub(crate) struct Partition {
    /// The partition columns' values, in the operator's row format.
    pub(crate) key: Box<[u8]>,
    /// Rows from `base` on, in order, in the operator's store.
    pub(crate) refs: VecDeque<RowRef>,
    /// The same rows gathered into one batch, while they are (see [`Partition::gather`]).
    gathered: Option<RecordBatch>,
    pub(crate) times: Vec<Millis>,
    /// Per row from `base`, a bit per variable whose condition it satisfies (for the rows
    /// classified so far).
    pub(crate) classes: Vec<u64>,
    /// The absolute number of the first row kept.
    pub(crate) base: usize,
    pub(crate) next_start: usize,
    pub(crate) matches: u64,
    /// The first row no match has taken yet (for `WITH UNMATCHED ROWS`).
    pub(crate) unmatched_from: usize,
    /// With `WITHIN`: when the watermark decides the pending search, as entered in the
    /// operator's deadlines.
    pub(crate) deadline: Option<Millis>,
    /// The latest event time of a row of the partition.
    pub(crate) latest: Millis,
}

impl Partition {
    pub(crate) fn new(key: Box<[u8]>) -> Self {
        Partition {
            key,
            refs: VecDeque::new(),
            gathered: None,
            times: Vec::new(),
            classes: Vec::new(),
            base: 0,
            next_start: 0,
            matches: 0,
            unmatched_from: 0,
            deadline: None,
            latest: WATERMARK_MIN,
        }
    }

    pub(crate) fn available(&self) -> usize {
        self.base + self.refs.len()
    }

    /// Adds rows at the end.
    pub(crate) fn push(&mut self, store: &mut RowStore, rows: impl Iterator<Item = RowRef>) {
        for row in rows {
            store.retain(row);
            self.refs.push_back(row);
        }
        self.gathered = None;
    }

    /// Drops the first `count` rows.
    pub(crate) fn drop_front(&mut self, store: &mut RowStore, count: usize) {
        for row in self.refs.drain(..count) {
            store.release(row);
        }
        self.times.drain(..count);
        self.classes.drain(..count);
        self.base += count;
        if let Some(rows) = &mut self.gathered {
            *rows = rows.slice(count, rows.num_rows() - count);
        }
    }

    /// Gathers the rows into one batch for [`Partition::rows`] (until rows are added).
    pub(crate) fn gather(&mut self, store: &RowStore) -> Result<()> {
        if self.gathered.is_none() {
            self.gathered = Some(store.gather(self.refs.iter())?);
        }
        Ok(())
    }

    /// The rows from `base` on, as gathered by [`Partition::gather`].
    pub(crate) fn rows(&self) -> Result<&RecordBatch> {
        self.gathered.as_ref().ok_or_else(|| {
            EngineError::Input("a pattern partition's rows were read before being gathered".into())
        })
    }
}

/// A partition seen by the search.
pub(crate) struct PartitionRows<'a> {
    pub(crate) partition: &'a Partition,
    pub(crate) config: &'a MatchRecognizeConfig,
    pub(crate) complete: bool,
    pub(crate) future: Millis,
    /// The first error a condition gave (the search treats it as not holding).
    pub(crate) error: Option<EngineError>,
}

impl PartitionRows<'_> {
    /// The variables whose context-free conditions `row` satisfies, once classified.
    pub(crate) fn class(&self, row: usize) -> Option<u64> {
        self.partition
            .classes
            .get(row - self.partition.base)
            .copied()
    }
}

impl Rows for PartitionRows<'_> {
    fn available(&self) -> usize {
        self.partition.available()
    }

    fn complete(&self) -> bool {
        self.complete
    }

    fn holds(&mut self, variable: usize, row: usize, path: &[Binding]) -> Option<bool> {
        if let Some(condition) = self.config.conditions[variable]
            .as_ref()
            .filter(|c| c.reads_match())
        {
            let holds = holds_in_context(
                condition,
                variable,
                row,
                path,
                self.config,
                self.partition,
                self.complete,
            );
            return match holds {
                Ok(holds) => holds,
                Err(error) => {
                    self.error.get_or_insert(error);
                    Some(false)
                }
            };
        }
        Some(self.class(row)? & (1 << variable) != 0)
    }

    fn context_free(&self) -> bool {
        !self
            .config
            .conditions
            .iter()
            .flatten()
            .any(Condition::reads_match)
    }

    fn time(&self, row: usize) -> i64 {
        self.partition
            .times
            .get(row.saturating_sub(self.partition.base))
            .copied()
            .unwrap_or(WATERMARK_MIN)
    }

    fn future_time(&self) -> i64 {
        self.future
    }
}
