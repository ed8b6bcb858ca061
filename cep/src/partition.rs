//! One partition's rows in order, kept in the operator's row store, with what the search
//! has learnt about them.

use std::collections::{BTreeSet, VecDeque};

use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::time::{Millis, WATERMARK_MIN};
use sluice_engine::{EngineError, Result};

use crate::store::{RowRef, RowStore};

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
    /// Rows kept whose failure to compute a condition has been reported (a search may test
    /// a row many times).
    pub(crate) reported: BTreeSet<usize>,
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
            reported: BTreeSet::new(),
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
        self.reported = self.reported.split_off(&self.base);
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
