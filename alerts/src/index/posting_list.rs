//! Posting lists: the alerts listed under one partition, as packed records, one after
//! another in one vector of words, so that visiting a partition reads memory in order.

use std::collections::HashMap;

use super::firings::AlertId;
use super::hash::Prehashed;
use crate::arranged::{ColumnSymbol, NumberColumn, Part};
use crate::conjuncts::{Bounds, Conjunct, bounds};

/// A posting list: the alerts listed under one partition, in order of alert, one record
/// after another in one vector, so that visiting the partition reads memory in order: the
/// alert's number, how many tests it has, how many of them its partition's string implies,
/// its bounds on one number column (the first an alert of the list bounds; the widest when
/// it has none) and its tests' numbers (then [`GENERALS`] for an alert with general
/// conjuncts). Alerts whose bounds no row of a partition is within are passed over without
/// reading their tests.
#[derive(Default)]
pub(super) struct PostingList {
    records: Vec<u32>,
    pub(super) bounded: Option<NumberColumn>,
    /// The column and symbol when every alert is listed for rows with that string in that
    /// column (see [`PostingList::implied`]).
    symbol: Option<ColumnSymbol>,
    alerts: usize,
}

/// The words of a record before its tests' numbers: alert, tests, implied tests, low
/// (two), high (two).
const HEADER: usize = 7;

/// An alert as a list visits it.
#[derive(Clone, Copy)]
pub(super) struct Visit<'a> {
    pub(super) id: AlertId,
    /// Its tests' numbers.
    pub(super) numbers: &'a [u32],
    /// How many of its tests follow the first when it has bounds (or come first when not)
    /// and are implied by the list's string.
    pub(super) implied: usize,
    /// Its bounds.
    pub(super) low: i64,
    pub(super) high: i64,
}

/// An alert as it is added to posting lists: its number, its tests and their numbers.
#[derive(Clone, Copy)]
pub(super) struct ListedAlert<'a> {
    pub(super) id: AlertId,
    pub(super) tests: &'a [Conjunct],
    pub(super) numbers: &'a [u32],
}

impl PostingList {
    /// Adds alert `id`, with its `tests` and their `numbers`, for rows whose value is
    /// `symbol` (column and symbol) when given; the first alert with bounds picks the bounded
    /// column, `preferred` when it bounds that one. Its numbers go in the order of
    /// [`PostingList::bounding`] and [`PostingList::implied`].
    pub(super) fn push(
        &mut self,
        ListedAlert { id, tests, numbers }: ListedAlert,
        preferred: Option<NumberColumn>,
        symbol: Option<ColumnSymbol>,
    ) {
        let found = match self.bounded {
            Some(column) => bounds(tests, Some(column)),
            None => bounds(tests, preferred).or_else(|| bounds(tests, None)),
        }
        // Bounds that are the widest bound nothing (see `PostingList::bounding`).
        .filter(|&Bounds { low, high, .. }| (low, high) != (i64::MIN, i64::MAX));
        if let Some(Bounds { column, .. }) = found {
            self.bounded = Some(column);
        }
        self.symbol = match self.alerts {
            0 => symbol,
            _ => self.symbol.filter(|known| Some(*known) == symbol),
        };
        // The test the bounds come from first, then those the string implies, then the rest
        // (GENERALS, past the tests, stays last).
        let bounding = found.map(|Bounds { at, .. }| at);
        let implied = |at: usize| {
            symbol.is_some_and(|ColumnSymbol { column, symbol }| {
                tests
                    .get(at)
                    .is_some_and(|test| test.implied_by(column, symbol))
            })
        };
        let mut order: Vec<usize> = bounding.into_iter().collect();
        order.extend((0..numbers.len()).filter(|&at| implied(at)));
        let implied_count = order.len() - usize::from(bounding.is_some());
        order.extend((0..numbers.len()).filter(|&at| Some(at) != bounding && !implied(at)));
        let (low, high) =
            found.map_or((i64::MIN, i64::MAX), |Bounds { low, high, .. }| (low, high));
        let [low, high] = [low, high].map(|bound| bound as u64);
        self.records.extend([
            id,
            numbers.len() as u32,
            implied_count as u32,
            low as u32,
            (low >> 32) as u32,
            high as u32,
            (high >> 32) as u32,
        ]);
        self.records
            .extend(order.iter().filter_map(|&at| numbers.get(at)));
        self.alerts += 1;
    }

    pub(super) fn remove(&mut self, id: AlertId) {
        let mut at = 0;
        while let Some(&[alert, count]) = self.records.get(at..).and_then(|r| r.first_chunk()) {
            let end = at + HEADER + count as usize;
            if alert == id {
                self.records.drain(at..end.min(self.records.len()));
                self.alerts -= 1;
                return;
            }
            at = end;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.alerts == 0
    }

    /// When an alert (with test `numbers` and bounds `low`, `high`) has bounds: the number
    /// of the test they come from (its first), and the tests left to make on the rows
    /// within them.
    pub(super) fn bounding(numbers: &[u32], low: i64, high: i64) -> Option<(u32, &[u32])> {
        match (low, high) == (i64::MIN, i64::MAX) {
            true => None,
            false => numbers.split_first().map(|(&first, left)| (first, left)),
        }
    }

    /// Whether the symbol tests that come first in `numbers` (after [`PostingList::bounding`]),
    /// `implied` of them, hold on every row of `part`: they hold for the list's string, and
    /// all the partition's rows have it.
    pub(super) fn implied(&self, part: Part) -> bool {
        self.symbol.is_some() && part.same == self.symbol
    }

    /// The alerts, as they are visited.
    pub(super) fn alerts(&self) -> impl Iterator<Item = Visit<'_>> {
        let mut rest = self.records.as_slice();
        std::iter::from_fn(move || {
            let (&[id, count, implied, low, low_high, high, high_high], after) =
                rest.split_first_chunk::<HEADER>()?;
            let (numbers, after) = after.split_at_checked(count as usize)?;
            rest = after;
            let join = |low: u32, high: u32| (u64::from(high) << 32 | u64::from(low)) as i64;
            Some(Visit {
                id,
                numbers,
                implied: implied as usize,
                low: join(low, low_high),
                high: join(high, high_high),
            })
        })
    }
}

/// One shape's posting lists, by partition hash.
pub(super) type PostingLists = HashMap<u64, PostingList, std::hash::BuildHasherDefault<Prehashed>>;

/// Stands among an alert's test numbers for its general conjuncts.
pub(super) const GENERALS: u32 = u32::MAX;
