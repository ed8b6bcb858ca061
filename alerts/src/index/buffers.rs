//! Per-batch scratch buffers for matching, kept from one batch to the next: the firings on
//! the partition being tested and their counting sort into order of row, an alert's bitmap
//! over a partition's rows, the tests' bitmaps ([`Masks`]) and the residual expressions'
//! results.

use std::collections::HashMap;

use datafusion::arrow::array::BooleanArray;

use super::firings::{AlertId, Matches, merge_over_shapes};
use crate::masks::{Masks, set_positions};

/// A firing on the partition being tested: the alert, and the position of its row.
#[derive(Clone, Copy)]
pub(super) struct Firing {
    alert: AlertId,
    position: u32,
}

/// What matching a batch needs room for, kept from one batch to the next: these grow to
/// megabytes, which fresh allocations would fault in again each time.
#[derive(Default)]
pub(super) struct Buffers {
    /// The firings on the partition being tested, in order of alert, and the count of each
    /// position's (at `position + 1`).
    pub(super) partition: Vec<Firing>,
    pub(super) counts: Vec<usize>,
    /// Per shape, the alerts fired, partition after partition, each row's together in
    /// order of alert; and by row, where its own are.
    pub(super) by_row: Vec<Vec<AlertId>>,
    pub(super) spans: Vec<Vec<(usize, usize)>>,
    /// An alert's bits over the rows of a partition.
    pub(super) words: Vec<u64>,
    /// The results of the tests made on the current partition.
    pub(super) masks: Masks,
    /// The residual expressions evaluated on this batch, by alert and residual.
    pub(super) residuals: HashMap<(AlertId, usize), BooleanArray>,
    /// By alert, the rows it has fired on so far, over all batches (counted here, where
    /// each alert's rows are found together).
    pub(super) fired: Vec<u64>,
}

impl Buffers {
    /// Room for the firings of `shapes` shapes on `rows` rows, empty.
    pub(super) fn clear(&mut self, shapes: usize, rows: usize) {
        self.by_row.resize_with(shapes, Vec::new);
        self.by_row.iter_mut().for_each(Vec::clear);
        self.spans.resize_with(shapes, Vec::new);
        for spans in &mut self.spans {
            spans.clear();
            spans.resize(rows, (0, 0));
        }
        self.residuals.clear();
    }

    /// Room for the firings on a partition of `size` rows.
    pub(super) fn start_partition(&mut self, size: usize) {
        self.partition.clear();
        self.counts.clear();
        self.counts.resize(size + 1, 0);
    }

    /// Puts the firings on the partition of `rows` (the batch row at each position) into
    /// order of row, after those of `shape` so far: a counting sort small enough to stay
    /// in cache, where one over the whole batch would scatter over megabytes.
    pub(super) fn finish_partition(&mut self, shape: usize, rows: &[u32]) {
        let (Some(by_row), Some(spans)) = (self.by_row.get_mut(shape), self.spans.get_mut(shape))
        else {
            return;
        };
        if self.partition.is_empty() {
            return;
        }
        let counts = &mut self.counts;
        for at in 1..counts.len() {
            counts[at] += counts[at - 1];
        }
        let base = by_row.len();
        for (position, &row) in rows.iter().enumerate() {
            if let (Some(&start), Some(&end), Some(span)) = (
                counts.get(position),
                counts.get(position + 1),
                spans.get_mut(row as usize),
            ) {
                *span = (base + start, base + end);
            }
        }
        by_row.resize(by_row.len() + self.partition.len(), 0);
        let sorted = by_row.get_mut(base..).unwrap_or_default();
        for &Firing {
            alert: id,
            position,
        } in &self.partition
        {
            if let Some(next) = counts.get_mut(position as usize)
                && let Some(slot) = sorted.get_mut(*next)
            {
                *slot = id;
                *next += 1;
            }
        }
    }

    /// Sets an alert's bits to `positions` of a partition of `size` rows.
    pub(super) fn start_alert(&mut self, size: usize, positions: std::ops::Range<usize>) {
        self.words.resize(size.div_ceil(64), 0);
        set_positions(&mut self.words, positions);
    }

    /// The firings, by row then by alert, each once: each row's merged over the shapes.
    pub(super) fn fired_by_row(&mut self, rows: usize) -> Matches {
        merge_over_shapes(&self.spans, &self.by_row, rows, &mut self.fired)
    }
}

/// Adds `(id, position)` to the firings on the partition for each position set in
/// `buffers.words`, and counts them.
pub(super) fn push_found(buffers: &mut Buffers, id: AlertId) {
    let Buffers {
        words,
        partition,
        counts,
        fired,
        ..
    } = buffers;
    let count: u32 = words.iter().map(|word| word.count_ones()).sum();
    if count == 0 {
        return;
    }
    if let Some(fired) = fired.get_mut(id as usize) {
        *fired += u64::from(count);
    }
    partition.reserve(count as usize);
    for (at, &word) in words.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let position = at * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            partition.push(Firing {
                alert: id,
                position: position as u32,
            });
            if let Some(count) = counts.get_mut(position + 1) {
                *count += 1;
            }
        }
    }
}
