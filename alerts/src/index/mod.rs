//! The alert index: which alerts might hold for which rows, found without testing every
//! alert on every row.
//!
//! Each alert gets access keys: tests that must hold for its condition to be true, each
//! of a shape that puts every row in at most one partition. For a conjunction, the
//! equality (or `IN` list) on the column whose values among the alerts are most varied, so
//! likeliest to pick few rows (`city = 'Seoul' AND district IN ('Mapo', 'Jung')` gives one
//! key per district: shape "the district's value"); else a bounded numeric range, as the
//! cells it covers (shape "the cell of the price, cells 2^k wide"), a cell a quarter of
//! the smallest power of two at least the range's width; else a prefix (shape "the first n
//! bytes of the title"); for a disjunction, the keys of every branch. Alerts with no usable
//! key (a `NOT`, `IS NULL`, a half-open range, a residual expression on its own) are under
//! the shape that puts all rows in one partition. Keys are hashes: two values hashing
//! alike only put more rows in a partition, as every conjunct is tested.
//!
//! Per batch and shape in use: each row's hash is computed and the rows are laid out by
//! partition ([`Arranged`](crate::arranged::Arranged)), within one in order of the number
//! column the shape's alerts bound (the price, say); each alert in the posting list under a
//! partition's hash is then tested on the partition's rows within its bounds (found by
//! bisection, shared by the alerts bounded by the same test; none, and the alert is passed
//! over) at once, as a bitmap, so an alert is visited once per partition of a batch, not
//! once per row. Its tests are numbered, one number per distinct test over all alerts, and
//! each is made on a partition's rows once, for the first alert that asks
//! ([`Masks`](crate::masks::Masks)); the alerts after it AND its bits. On a partition of a
//! few rows, where little is shared, each alert's tests are made on its own rows. A symbol
//! test that the partition's string implies (`district IN ('a', 'b')` on the rows of `a`)
//! is not made when every row of the partition has that symbol. String equalities compare
//! symbols (interned strings: numbers given to the strings alerts name), looked up once per
//! row. The firings on each partition are put in order of row by a counting sort over its
//! rows when it is done (kept in cache, where one sort over a batch's firings would scatter
//! them over megabytes), and each row's are merged over the shapes by alert; an alert found
//! through keys of two shapes fires once.
//!
//! The keys are chosen in `keys`, over the cells of `cells` and the hashes of `hash`, for
//! the shapes of `shape`; `posting_list` holds the packed posting lists, `matching` the
//! matching of a batch, `buffers` its scratch buffers and `firings` the merge of a row's
//! firings over the shapes.

mod buffers;
mod cells;
mod firings;
mod hash;
mod keys;
mod matching;
mod posting_list;
mod shape;

pub use firings::{AlertId, Matches};

use std::collections::{BTreeSet, HashMap, HashSet};

use datafusion::arrow::record_batch::RecordBatch;

use crate::Result;
use crate::arranged::{ColumnSymbol, NumberColumn};
use crate::conjuncts::{Bounds, bounds, split};
use crate::masks::TestTable;
use crate::predicate::{ColumnRef, Compiled, Cond, Symbols, columns_used, symbol_columns};
use buffers::Buffers;
use keys::{keys, note_values};
use posting_list::{GENERALS, ListedAlert, PostingLists};
use shape::Shape;

/// Removed alerts tolerated in the index before it is rebuilt, however few are left.
const MIN_DEAD_TO_REBUILD: usize = 64;

struct Alert {
    compiled: Compiled,
    /// The partitions it is listed under.
    places: Vec<Posting>,
}

/// A partition an alert is listed under: the number of its shape, and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Posting {
    shape: usize,
    hash: u64,
}

/// Where one of an alert's keys lists it: the key's shape, the hashes of its partitions,
/// and for a key that a string column equals a string, that column and the string's symbol.
struct KeyPartitions {
    shape: Shape,
    hashes: Vec<u64>,
    symbol: Option<ColumnSymbol>,
}

/// How [`AlertIndex::matches_without_index`] goes through the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unindexed {
    /// Each alert on all rows of the batch at once, as bits.
    WholeBatch,
    /// Each row on its own, every alert on it.
    RowByRow,
}

/// Registered alerts over one stream, and the index over them.
#[derive(Default)]
pub struct AlertIndex {
    /// Boxed, so that growing the vector copies pointers, not conditions.
    alerts: Vec<Option<Box<Alert>>>,
    live: usize,
    /// The shapes of the keys in use and, per shape, the alerts by partition hash, each
    /// list in order of alert.
    shapes: Vec<Shape>,
    lists: Vec<PostingLists>,
    /// Per shape, the number column its partitions' rows are ordered by (the first one an
    /// alert under it bounds).
    orders: Vec<Option<NumberColumn>>,
    /// The columns the alerts read, in the families they read them in.
    used: BTreeSet<ColumnRef>,
    /// The strings alerts compare for equality, and the columns compared by them.
    symbols: Symbols,
    symbol_columns: BTreeSet<usize>,
    /// Per column, the hashes of the values alerts compare it with for equality.
    distinct: HashMap<ColumnRef, HashSet<u64>>,
    /// Room for matching a batch, kept for the next.
    buffers: Buffers,
    /// Alerts removed since the last rebuild.
    dead: usize,
    /// The distinct tests of the alerts' conditions.
    tests: TestTable,
    /// By alert, its general conjuncts (those not tests).
    generals: Vec<Box<[Cond]>>,
    /// The alerts' test numbers, alert after alert, and per alert where its own are
    /// (empty once it is removed): for testing every alert without the index.
    numbers: Vec<u32>,
    spans: Vec<(u32, u32)>,
}

impl AlertIndex {
    pub fn new() -> AlertIndex {
        AlertIndex::default()
    }

    /// How many alerts are registered.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Registers an alert; gives its number.
    pub fn insert(&mut self, mut compiled: Compiled) -> AlertId {
        let id = self.alerts.len() as AlertId;
        let mut used = Vec::new();
        columns_used(&compiled.cond, &mut used);
        self.used.extend(used);
        note_values(&compiled.cond, &mut self.distinct);
        let distinct = |column: ColumnRef| self.distinct.get(&column).map_or(0, HashSet::len);
        let keys = keys(&compiled.cond, &distinct);
        compiled.cond = self.symbols.intern(compiled.cond);
        let partitions: Vec<KeyPartitions> = match &keys {
            Some(keys) => keys
                .iter()
                .map(|key| {
                    let (shape, hashes) = key.partitions();
                    let symbol = key.text().and_then(|(column, text)| {
                        Some(ColumnSymbol {
                            column: column as u32,
                            symbol: self.symbols.symbol(text)?,
                        })
                    });
                    KeyPartitions {
                        shape,
                        hashes,
                        symbol,
                    }
                })
                .collect(),
            None => vec![KeyPartitions {
                shape: Shape::All,
                hashes: vec![0],
                symbol: None,
            }],
        };
        symbol_columns(&compiled.cond, &mut self.symbol_columns);
        let own = split(&compiled.cond);
        let mut numbers: Vec<u32> = own
            .tests
            .iter()
            .map(|test| self.tests.number(test.clone()))
            .collect();
        if !own.generals.is_empty() {
            numbers.push(GENERALS);
        }
        let mut places = Vec::new();
        for KeyPartitions {
            shape,
            hashes,
            symbol,
        } in partitions
        {
            let alert = ListedAlert {
                id,
                tests: own.tests.as_slice(),
                numbers: numbers.as_slice(),
            };
            self.list(shape, &hashes, symbol, alert, &mut places);
        }
        let start = self.numbers.len() as u32;
        self.numbers.extend(numbers);
        self.spans.push((start, self.numbers.len() as u32));
        self.generals.push(own.generals.into());
        self.alerts.push(Some(Box::new(Alert { compiled, places })));
        self.buffers.fired.resize(self.alerts.len(), 0);
        self.live += 1;
        id
    }

    /// How many rows alert `id` has fired on, over the batches matched so far (an alert
    /// found through two shapes counted once per row).
    pub fn fired(&self, id: AlertId) -> u64 {
        self.buffers.fired.get(id as usize).copied().unwrap_or(0)
    }

    /// Sets how many rows alert `id` has fired on (as a checkpoint saved it).
    pub(crate) fn set_fired(&mut self, id: AlertId, fired: u64) {
        if let Some(count) = self.buffers.fired.get_mut(id as usize) {
            *count = fired;
        }
    }

    /// Lists alert `id` with its tests and their numbers under the partitions `hashes` of
    /// `shape` (of a string column's value, `symbol`: the column and the value's symbol), and
    /// adds where to `places`.
    fn list(
        &mut self,
        shape: Shape,
        hashes: &[u64],
        symbol: Option<ColumnSymbol>,
        ListedAlert { id, tests, numbers }: ListedAlert,
        places: &mut Vec<Posting>,
    ) {
        let at = match self.shapes.iter().position(|s| *s == shape) {
            Some(at) => at,
            None => {
                self.shapes.push(shape);
                self.lists.push(PostingLists::default());
                self.orders.push(None);
                self.shapes.len() - 1
            }
        };
        let (Some(lists), Some(order)) = (self.lists.get_mut(at), self.orders.get_mut(at)) else {
            return;
        };
        if order.is_none() {
            *order = bounds(tests, None).map(|Bounds { column, .. }| column);
        }
        for &hash in hashes {
            let place = Posting { shape: at, hash };
            if places.contains(&place) {
                continue;
            }
            let alert = ListedAlert { id, tests, numbers };
            lists.entry(hash).or_default().push(alert, *order, symbol);
            places.push(place);
        }
    }

    /// Removes alert `id`; gives whether it was registered. It leaves its lists at once;
    /// its symbols and value counts go when the index is next rebuilt, once more alerts
    /// have been removed since the last rebuild than are registered.
    pub fn remove(&mut self, id: AlertId) -> bool {
        let Some(slot) = self.alerts.get_mut(id as usize) else {
            return false;
        };
        let Some(alert) = slot.take() else {
            return false;
        };
        for Posting { shape, hash } in alert.places {
            if let Some(lists) = self.lists.get_mut(shape)
                && let Some(listed) = lists.get_mut(&hash)
            {
                listed.remove(id);
                if listed.is_empty() {
                    lists.remove(&hash);
                }
            }
        }
        if let Some(span) = self.spans.get_mut(id as usize) {
            *span = (0, 0);
        }
        if let Some(generals) = self.generals.get_mut(id as usize) {
            *generals = Box::default();
        }
        self.live -= 1;
        self.dead += 1;
        if self.dead > self.live.max(MIN_DEAD_TO_REBUILD) {
            self.rebuild();
        }
        true
    }

    /// Rebuilds the index from the alerts still registered, keeping their numbers.
    fn rebuild(&mut self) {
        let fired = std::mem::take(&mut self.buffers.fired);
        let alerts = std::mem::take(&mut self.alerts);
        let symbols = std::mem::take(&mut self.symbols);
        let mut fresh = AlertIndex::new();
        for alert in alerts {
            match alert {
                Some(mut alert) => {
                    // Keys are found in the conditions as written, before symbols.
                    alert.compiled.cond = symbols.restore(alert.compiled.cond);
                    fresh.insert(alert.compiled);
                }
                None => {
                    fresh.alerts.push(None);
                    fresh.spans.push((0, 0));
                    fresh.generals.push(Box::default());
                }
            }
        }
        *self = fresh;
        self.buffers.fired = fired;
    }

    /// The (row, alert) pairs of `batch` whose condition is true, by row, then by alert.
    pub fn matches(&mut self, batch: &RecordBatch) -> Result<Matches> {
        self.find(batch, None)
    }

    /// The same as [`AlertIndex::matches`], found by testing every alert on every row:
    /// what the index saves, for comparison.
    pub fn matches_without_index(
        &mut self,
        batch: &RecordBatch,
        how: Unindexed,
    ) -> Result<Matches> {
        self.find(batch, Some(how))
    }
}
