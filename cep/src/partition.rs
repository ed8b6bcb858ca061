//! One partition's rows in order, and how the search sees them.

use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::EngineError;
use sluice_engine::time::{Millis, WATERMARK_MIN};

use crate::condition::{Condition, holds_in_context};
use crate::operator::MatchRecognizeConfig;
use crate::{Binding, Rows};

pub(crate) struct Partition {
    /// The partition columns' values (one row).
    pub(crate) key: RecordBatch,
    /// Rows from `base` on, in order.
    pub(crate) rows: RecordBatch,
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
}

impl Partition {
    pub(crate) fn available(&self) -> usize {
        self.base + self.rows.num_rows()
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
        let class = self.partition.classes.get(row - self.partition.base)?;
        Some(class & (1 << variable) != 0)
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
