//! The alert index: which alerts might hold for a row, found without evaluating them all.
//!
//! Each alert gets access keys: tests that must hold for its condition to be true. For a
//! conjunction, the equality (or `IN` list) on the column whose values among the alerts are
//! most varied, so likeliest to pick few rows (`city = 'Seoul' AND district IN ('Mapo',
//! 'Jung')` gives one key per district), with, when it has one, a bounded numeric range
//! (`price BETWEEN 400000 AND 500000`); else one prefix or range conjunct; for a
//! disjunction, the keys of every branch.
//!
//! Equality keys are hashed, kept per shape (column, and range column and cell size): a
//! row is looked up once per shape in use. A bounded range is put in cells of a quarter of
//! the smallest power-of-two size at least its width, so it covers two to five cells and
//! most of the alerts a cell lists hold for a value in it; a row is looked up
//! in the cell its value falls in, once per cell size in use. Prefixes are kept per column
//! and probed with each prefix length in use; half-open numeric ranges in a list per column
//! sorted by their lower bound. Alerts with no usable key (a `NOT`, `IS NULL`, a residual
//! expression on its own) are candidates for every row. Candidates are then evaluated
//! exactly, so a key only has to be implied by the condition, and two values hashing alike
//! only add a candidate.
//!
//! Per batch: the key columns' values are hashed once; keys are partitioned by their value
//! and rows are visited in the order of the first key column's value, so each partition is
//! probed while it is in cache; the (alert, row) candidates are then grouped by alert
//! (a counting sort), and each alert's conjuncts, laid out alert after alert, filter its
//! rows ([`keep`]). String equalities compare symbols (numbers given to the strings alerts
//! name), looked up once per row. The firings are put in row order by a counting sort.

use std::collections::{BTreeSet, HashMap, HashSet};

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::record_batch::RecordBatch;

use super::conjuncts::{Conjunct, conjuncts, keep};
use super::predicate::{
    ColumnRef, Compare, Compiled, Cond, Family, Lit, Symbols, Views, columns_used,
};
use crate::{CepError, Result};

/// Residual expression `index` of `compiled`, evaluated on `batch`.
fn evaluate_residual(
    compiled: &Compiled,
    index: usize,
    batch: &RecordBatch,
) -> Result<BooleanArray> {
    let expr = compiled
        .residuals
        .get(index)
        .ok_or_else(|| CepError::Alert(format!("no residual {index}")))?;
    let values = expr
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| CepError::Alert(e.to_string()))?;
    values
        .as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| CepError::Alert("a condition is not boolean".into()))
}

/// `items` into `sorted`, in order of their bucket (of `buckets`), in the order they came
/// within one: a counting sort (`starts` is its scratch space).
fn counting_sort<T: Copy + Default>(
    items: &[T],
    buckets: usize,
    bucket: impl Fn(&T) -> usize,
    starts: &mut Vec<usize>,
    sorted: &mut Vec<T>,
) {
    starts.clear();
    starts.resize(buckets + 1, 0);
    for item in items {
        if let Some(count) = starts.get_mut(bucket(item) + 1) {
            *count += 1;
        }
    }
    for at in 1..starts.len() {
        starts[at] += starts[at - 1];
    }
    sorted.clear();
    sorted.resize(items.len(), T::default());
    for item in items {
        if let Some(next) = starts.get_mut(bucket(item))
            && let Some(slot) = sorted.get_mut(*next)
        {
            *slot = *item;
            *next += 1;
        }
    }
}

/// What matching a batch needs room for, kept from one batch to the next: these grow to
/// megabytes, which fresh allocations would fault in again each time.
#[derive(Default)]
struct Buffers {
    /// Candidates as (alert, row), as found and grouped by alert.
    pairs: Vec<(AlertId, u32)>,
    grouped: Vec<(AlertId, u32)>,
    /// Firings as (row, alert), as found and by row.
    fired: Vec<(u32, AlertId)>,
    by_row: Vec<(u32, AlertId)>,
    starts: Vec<usize>,
    rows: Vec<u32>,
}

impl Buffers {
    /// The firings, made alert by alert in increasing order, by row then by alert.
    fn fired_by_row(&mut self, rows: usize) -> Vec<(usize, AlertId)> {
        counting_sort(
            &self.fired,
            rows,
            |pair| pair.0 as usize,
            &mut self.starts,
            &mut self.by_row,
        );
        self.by_row
            .iter()
            .map(|&(row, id)| (row as usize, id))
            .collect()
    }
}

/// Adds the columns `cond` compares by symbol to `out`.
fn symbol_columns(cond: &Cond, out: &mut BTreeSet<usize>) {
    match cond {
        Cond::And(parts) | Cond::Or(parts) => parts.iter().for_each(|p| symbol_columns(p, out)),
        Cond::Not(inner) => symbol_columns(inner, out),
        Cond::SymbolEq { column, .. } | Cond::SymbolIn { column, .. } => {
            out.insert(column.column);
        }
        _ => {}
    }
}

/// An alert's number in the index.
pub type AlertId = u32;

/// A test that must hold for an alert to be true.
#[derive(Debug, Clone)]
enum Key {
    /// The column equals its value when there is one, and the range column's value is
    /// within the range when there is one.
    Equal(Option<(ColumnRef, Lit)>, Option<Cells>),
    Prefix(ColumnRef, String),
    Range(ColumnRef, Bound, Bound),
}

/// One end of a numeric range: the value, and whether it is included.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Open,
    At(f64, bool),
}

/// A bounded numeric range, as the cells of one size it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cells {
    column: ColumnRef,
    /// Cells are `2^level` wide.
    level: i32,
    first: i64,
    last: i64,
    /// The range itself, checked before the alert is made a candidate.
    low: f64,
    high: f64,
}

impl Cells {
    /// The cells of `[low, high]`: two to five of a quarter of the smallest power-of-two
    /// size at least its width.
    fn of(column: ColumnRef, low: f64, high: f64) -> Option<Cells> {
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return None;
        }
        let level = (high - low)
            .max(f64::MIN_POSITIVE)
            .log2()
            .ceil()
            .clamp(-40.0, 62.0) as i32
            - CELLS_PER_WIDTH_LOG2;
        let first = cell(low, level)?;
        let last = cell(high, level)?;
        Some(Cells {
            column,
            level,
            first,
            last,
            low,
            high,
        })
    }
}

/// How much smaller than a range's width its cells are, as a power of two.
const CELLS_PER_WIDTH_LOG2: i32 = 2;

/// The cell of size `2^level` that `value` falls in.
fn cell(value: f64, level: i32) -> Option<i64> {
    cell_of_width(value, cell_width(level))
}

fn cell_width(level: i32) -> f64 {
    2f64.powi(level)
}

/// The cell of size `width` that `value` falls in.
fn cell_of_width(value: f64, width: f64) -> Option<i64> {
    let cell = (value / width).floor();
    (cell.is_finite() && cell.abs() < 9.0e18).then_some(cell as i64)
}

/// Removed alerts tolerated in the index before it is rebuilt, however few are left.
const MIN_DEAD_TO_REBUILD: usize = 64;

/// The most values one conjunction's equalities are indexed under; a longer list is left to
/// evaluation.
const MAX_KEYS: usize = 256;

/// The values a column must equal for `cond` to be true, when it says that much.
fn equal_values(cond: &Cond) -> Option<(ColumnRef, Vec<Lit>)> {
    match cond {
        Cond::Compare {
            column,
            op: Compare::Eq,
            lit,
        } => Some((*column, vec![lit.clone()])),
        Cond::In {
            column,
            list,
            negated: false,
        } => Some((*column, list.clone())),
        Cond::Truth(column) => Some((*column, vec![Lit::Bool(true)])),
        Cond::Or(parts) => {
            let mut all: Option<(ColumnRef, Vec<Lit>)> = None;
            for part in parts {
                let (column, values) = equal_values(part)?;
                match &mut all {
                    None => all = Some((column, values)),
                    Some((known, list)) if *known == column => list.extend(values),
                    Some(_) => return None,
                }
            }
            all
        }
        Cond::And(parts) => {
            // A conjunction of equalities on one column: any one of them will do.
            parts.iter().find_map(equal_values)
        }
        _ => None,
    }
}

/// Equality keys for a conjunction's `parts`: on the one column of its equalities whose
/// values are likeliest to pick few rows (the most values among the alerts', as
/// `distinct` counts them; then the fewest in this list), one key per value.
fn equal_keys(parts: &[Cond], distinct: &dyn Fn(ColumnRef) -> usize) -> Option<Vec<Key>> {
    let mut columns: Vec<(ColumnRef, Vec<Lit>)> = Vec::new();
    for (column, values) in parts.iter().filter_map(equal_values) {
        match columns.iter_mut().find(|(c, _)| *c == column) {
            // Two conditions on one column: keep the narrower.
            Some((_, known)) if values.len() < known.len() => *known = values,
            Some(_) => {}
            None => columns.push((column, values)),
        }
    }
    let (column, values) = columns
        .into_iter()
        .filter(|(_, values)| !values.is_empty() && values.len() <= MAX_KEYS)
        .max_by_key(|(column, values)| {
            (
                distinct(*column),
                std::cmp::Reverse(values.len()),
                std::cmp::Reverse(*column),
            )
        })?;
    Some(
        values
            .into_iter()
            .map(|value| Key::Equal(Some((column, value)), None))
            .collect(),
    )
}

/// A bounded numeric range a conjunction's `parts` imply (a `BETWEEN`, or a lower and an
/// upper bound on one column), as cells; the narrowest, when there are several.
fn bounded_range(parts: &[Cond]) -> Option<Cells> {
    let mut bounds: Vec<(ColumnRef, f64, f64)> = Vec::new();
    let mut narrow = |column: ColumnRef, low: f64, high: f64| match bounds
        .iter_mut()
        .find(|(c, _, _)| *c == column)
    {
        Some((_, known_low, known_high)) => {
            *known_low = known_low.max(low);
            *known_high = known_high.min(high);
        }
        None => bounds.push((column, low, high)),
    };
    for part in parts {
        match part {
            Cond::Between {
                column,
                low,
                high,
                negated: false,
            } => {
                if let (Some(low), Some(high)) = (number(low), number(high)) {
                    narrow(*column, low, high);
                }
            }
            Cond::Compare { column, op, lit } => {
                let Some(value) = number(lit) else { continue };
                match op {
                    Compare::Gt | Compare::GtEq => narrow(*column, value, f64::INFINITY),
                    Compare::Lt | Compare::LtEq => narrow(*column, f64::NEG_INFINITY, value),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    bounds
        .into_iter()
        .filter_map(|(column, low, high)| Cells::of(column, low, high))
        .min_by_key(|cells| cells.level)
}

/// Adds the values `cond` compares columns with for equality to `distinct`.
fn note_values(cond: &Cond, distinct: &mut HashMap<ColumnRef, HashSet<u64>>) {
    match cond {
        Cond::And(parts) | Cond::Or(parts) => parts.iter().for_each(|p| note_values(p, distinct)),
        Cond::Not(inner) => note_values(inner, distinct),
        _ => {
            if let Some((column, values)) = equal_values(cond) {
                distinct
                    .entry(column)
                    .or_default()
                    .extend(values.iter().map(lit_hash));
            }
        }
    }
}

/// Keys implied by `cond`, or `None` when it has no usable ones.
fn keys(cond: &Cond, distinct: &dyn Fn(ColumnRef) -> usize) -> Option<Vec<Key>> {
    match cond {
        Cond::Compare { .. } | Cond::In { .. } | Cond::Truth(_) if equal_values(cond).is_some() => {
            equal_keys(std::slice::from_ref(cond), distinct)
        }
        Cond::Compare { column, op, lit } => match lit {
            Lit::Int(_) | Lit::Float(_) if *op != Compare::NotEq => {
                let value = number(lit)?;
                let (low, high) = match op {
                    Compare::Lt => (Bound::Open, Bound::At(value, false)),
                    Compare::LtEq => (Bound::Open, Bound::At(value, true)),
                    Compare::Gt => (Bound::At(value, false), Bound::Open),
                    _ => (Bound::At(value, true), Bound::Open),
                };
                Some(vec![Key::Range(*column, low, high)])
            }
            _ => None,
        },
        Cond::Between {
            column,
            low,
            high,
            negated: false,
        } => match (number(low), number(high)) {
            (Some(low), Some(high)) => Some(vec![match Cells::of(*column, low, high) {
                Some(cells) => Key::Equal(None, Some(cells)),
                None => Key::Range(*column, Bound::At(low, true), Bound::At(high, true)),
            }]),
            _ => None,
        },
        Cond::Prefix {
            column,
            prefix,
            negated: false,
        } => Some(vec![Key::Prefix(*column, prefix.clone())]),
        Cond::And(parts) => {
            let range = bounded_range(parts);
            let equal =
                equal_keys(parts, distinct).or_else(|| range.map(|_| vec![Key::Equal(None, None)]));
            if let Some(mut equal) = equal {
                for key in &mut equal {
                    if let Key::Equal(_, cells) = key {
                        *cells = range;
                    }
                }
                return Some(equal);
            }
            // No equality nor bounded range: the cheapest other conjunct, prefixes before
            // ranges.
            parts
                .iter()
                .filter_map(|part| keys(part, distinct))
                .min_by_key(|keys| {
                    let ranges = keys.iter().filter(|k| matches!(k, Key::Range(..))).count();
                    (ranges, keys.len())
                })
        }
        Cond::Or(parts) => match equal_values(cond) {
            Some(_) => equal_keys(std::slice::from_ref(cond), distinct),
            None => {
                let mut all = Vec::new();
                for part in parts {
                    all.extend(keys(part, distinct)?);
                }
                Some(all)
            }
        },
        _ => None,
    }
}

/// The value of numeric column `column` at `row`, as a float.
fn number_at(views: &Views, column: ColumnRef, row: usize) -> Option<f64> {
    match column.family {
        Family::Int => views.int(column.column, row).map(|v| v as f64),
        Family::Float => views.float(column.column, row),
        _ => None,
    }
}

fn number(lit: &Lit) -> Option<f64> {
    match lit {
        Lit::Int(v) => Some(*v as f64),
        Lit::Float(v) => Some(*v),
        _ => None,
    }
}

/// The hash of a value, the same for a literal and for a row holding that value (FNV-1a
/// over the value's bytes, tagged by type).
fn value_hash(tag: u8, bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in std::iter::once(tag).chain(bytes.iter().copied()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn lit_hash(lit: &Lit) -> u64 {
    match lit {
        Lit::Int(v) => value_hash(1, &v.to_le_bytes()),
        Lit::Float(v) => value_hash(2, &v.to_bits().to_le_bytes()),
        Lit::Str(v) => value_hash(3, v.as_bytes()),
        Lit::Bool(v) => value_hash(4, &[u8::from(*v)]),
    }
}

/// The hash of the value of `column` at `row`; `None` when it is NULL.
fn row_hash(views: &Views, column: ColumnRef, row: usize) -> Option<u64> {
    Some(match column.family {
        Family::Int => value_hash(1, &views.int(column.column, row)?.to_le_bytes()),
        Family::Float => value_hash(2, &views.float(column.column, row)?.to_bits().to_le_bytes()),
        Family::Str => value_hash(3, views.str(column.column, row)?.as_bytes()),
        Family::Bool => value_hash(4, &[u8::from(views.bool(column.column, row)?)]),
    })
}

/// Adds `value` to the hash `hash` of the values before it (order matters).
fn mix(hash: u64, value: u64) -> u64 {
    (hash.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// The index key of a value's hash in shape `shape`, in `cell` of its range.
fn key_of(shape: usize, value: Option<u64>, cell: Option<i64>) -> u64 {
    let mut hash = mix(0x2545_f491_4f6c_dd1d, shape as u64);
    if let Some(value) = value {
        hash = mix(hash, value);
    }
    if let Some(cell) = cell {
        hash = mix(hash, cell as u64 ^ 0x9e37_79b9_7f4a_7c15);
    }
    // Spread the high bits into the low ones, which pick the hash table's bucket.
    hash ^ (hash >> 29)
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = mix(self.0, u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The hashes of a batch's key column values (per key column, by row), and per shape
/// which key column it is on.
struct KeyHashes<'a> {
    slots: &'a [Option<usize>],
    hashes: &'a [Vec<Option<u64>>],
    /// Per shape, the width of its range's cells (1 when it has no range).
    widths: &'a [f64],
}

/// An alert under an equality key, with the range its value must be in when the key has
/// one (else unbounded).
#[derive(Debug, Clone, Copy)]
struct Posting {
    id: AlertId,
    low: f64,
    high: f64,
}

type KeyMap = HashMap<u64, Vec<Posting>, std::hash::BuildHasherDefault<Prehashed>>;

struct Alert {
    compiled: Compiled,
}

/// The shape of an equality key: its column, and the range column and cell size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    column: Option<ColumnRef>,
    range: Option<(ColumnRef, i32)>,
}

/// Registered alerts over one stream, and the index over them.
#[derive(Default)]
pub struct AlertIndex {
    alerts: Vec<Option<Alert>>,
    live: usize,
    /// The shapes of equality keys in use, and the alerts by (shape, tuple and cell hash).
    signatures: Vec<Shape>,
    /// Partitioned by the hash of the first value of the key (0 for keys with no column),
    /// so rows visited by that value probe one small map after another.
    equal: HashMap<u64, KeyMap, std::hash::BuildHasherDefault<Prehashed>>,
    /// Per column: the prefixes' lengths in use, and the alerts by (column, prefix).
    prefix_lengths: HashMap<ColumnRef, BTreeSet<usize>>,
    prefixes: HashMap<(ColumnRef, Box<str>), Vec<AlertId>>,
    /// Per column: (lower bound as a sort key, range, alert), by lower bound.
    ranges: HashMap<ColumnRef, Vec<(f64, Bound, Bound, AlertId)>>,
    ranges_sorted: bool,
    /// Alerts with no key: candidates for every row.
    unindexed: Vec<AlertId>,
    /// The columns the alerts read, in the families they read them in.
    used: BTreeSet<ColumnRef>,
    /// The strings alerts compare for equality, and the columns compared by them.
    symbols: Symbols,
    symbol_columns: BTreeSet<usize>,
    /// Per column, the hashes of the values alerts compare it with for equality.
    distinct: HashMap<ColumnRef, HashSet<u64>>,
    /// Room for matching a batch, kept for the next.
    buffers: Buffers,
    /// Removed alerts whose index entries are still there.
    dead: usize,
    /// The alerts' conditions as conjuncts, alert after alert, and per alert where its
    /// own are (empty once it is removed): read in order of alert, one batch after another.
    conjuncts: Vec<Conjunct>,
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
        match keys(&compiled.cond, &distinct) {
            Some(keys) => {
                for key in keys {
                    self.add_key(key, id);
                }
            }
            None => self.unindexed.push(id),
        }
        compiled.cond = self.symbols.intern(compiled.cond);
        symbol_columns(&compiled.cond, &mut self.symbol_columns);
        let start = self.conjuncts.len() as u32;
        self.conjuncts.extend(conjuncts(&compiled.cond));
        self.spans.push((start, self.conjuncts.len() as u32));
        self.alerts.push(Some(Alert { compiled }));
        self.live += 1;
        id
    }

    fn add_key(&mut self, key: Key, id: AlertId) {
        match key {
            Key::Equal(equal, cells) => {
                let shape = Shape {
                    column: equal.as_ref().map(|(column, _)| *column),
                    range: cells.map(|c| (c.column, c.level)),
                };
                let at = match self.signatures.iter().position(|s| *s == shape) {
                    Some(at) => at,
                    None => {
                        self.signatures.push(shape);
                        self.signatures.len() - 1
                    }
                };
                let value = equal.as_ref().map(|(_, lit)| lit_hash(lit));
                let covered = cells.map_or(0..=0, |c| c.first..=c.last);
                for cell in covered {
                    let key = key_of(at, value, cells.map(|_| cell));
                    let partition = value.unwrap_or(0);
                    let list = self
                        .equal
                        .entry(partition)
                        .or_default()
                        .entry(key)
                        .or_default();
                    if list.last().is_none_or(|p| p.id != id) {
                        list.push(Posting {
                            id,
                            low: cells.map_or(f64::NEG_INFINITY, |c| c.low),
                            high: cells.map_or(f64::INFINITY, |c| c.high),
                        });
                    }
                }
            }
            Key::Prefix(column, prefix) => {
                self.prefix_lengths
                    .entry(column)
                    .or_default()
                    .insert(prefix.len());
                self.prefixes
                    .entry((column, prefix.into()))
                    .or_default()
                    .push(id);
            }
            Key::Range(column, low, high) => {
                let sort = match low {
                    Bound::Open => f64::NEG_INFINITY,
                    Bound::At(value, _) => value,
                };
                self.ranges
                    .entry(column)
                    .or_default()
                    .push((sort, low, high, id));
                self.ranges_sorted = false;
            }
        }
    }

    /// Removes alert `id`; gives whether it was registered. Its index entries are dropped
    /// when the index is next rebuilt, once more alerts have been removed since the last
    /// rebuild than are registered.
    pub fn remove(&mut self, id: AlertId) -> bool {
        let Some(slot) = self.alerts.get_mut(id as usize) else {
            return false;
        };
        if slot.take().is_none() {
            return false;
        }
        if let Some(span) = self.spans.get_mut(id as usize) {
            *span = (0, 0);
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
                }
            }
        }
        *self = fresh;
    }

    /// The (row, alert) pairs of `batch` whose condition is true, by row, then by alert.
    pub fn matches(&mut self, batch: &RecordBatch) -> Result<Vec<(usize, AlertId)>> {
        self.find(batch, true)
    }

    /// The same as [`AlertIndex::matches`], found by evaluating every alert on every row:
    /// what the index saves, for comparison.
    pub fn matches_without_index(&mut self, batch: &RecordBatch) -> Result<Vec<(usize, AlertId)>> {
        self.find(batch, false)
    }

    fn find(&mut self, batch: &RecordBatch, indexed: bool) -> Result<Vec<(usize, AlertId)>> {
        if self.live == 0 || batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        if !self.ranges_sorted {
            for ranges in self.ranges.values_mut() {
                ranges.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            self.ranges_sorted = true;
        }
        let used: Vec<ColumnRef> = self.used.iter().copied().collect();
        let mut views = Views::new(batch, &used)?;
        let symbol_columns: Vec<usize> = self.symbol_columns.iter().copied().collect();
        self.symbols.look_up(&mut views, &symbol_columns);
        let rows = batch.num_rows();
        let mut buffers = std::mem::take(&mut self.buffers);
        buffers.fired.clear();
        if !indexed {
            for id in 0..self.alerts.len() as AlertId {
                buffers.rows.clear();
                buffers.rows.extend(0..rows as u32);
                self.fire(id, &mut buffers.rows, &views, batch, &mut buffers.fired)?;
            }
            let fired = buffers.fired_by_row(rows);
            self.buffers = buffers;
            return Ok(fired);
        }
        // The hashes of the key columns' values, once per batch, and which of them each
        // shape's column is.
        let mut key_columns: Vec<ColumnRef> = Vec::new();
        let mut slots: Vec<Option<usize>> = Vec::with_capacity(self.signatures.len());
        for shape in &self.signatures {
            slots.push(shape.column.map(
                |column| match key_columns.iter().position(|c| *c == column) {
                    Some(slot) => slot,
                    None => {
                        key_columns.push(column);
                        key_columns.len() - 1
                    }
                },
            ));
        }
        let hashes: Vec<Vec<Option<u64>>> = key_columns
            .iter()
            .map(|column| {
                (0..rows)
                    .map(|row| row_hash(&views, *column, row))
                    .collect()
            })
            .collect();
        let widths: Vec<f64> = self
            .signatures
            .iter()
            .map(|shape| shape.range.map_or(1.0, |(_, level)| cell_width(level)))
            .collect();
        let key_hashes = KeyHashes {
            slots: &slots,
            hashes: &hashes,
            widths: &widths,
        };
        // The candidate rows of each alert: (alert, row) pairs, grouped by alert so that
        // each alert's condition is read once for all its rows.
        buffers.pairs.clear();
        // Rows with the same first key value one after another: they probe the same
        // partition of the keys, which then stays in cache.
        let mut order: Vec<u32> = (0..rows as u32).collect();
        if let Some(first) = hashes.first() {
            order.sort_by_key(|&row| first[row as usize]);
        }
        for row in order {
            self.candidates(&views, &key_hashes, row, &mut buffers.pairs);
        }
        counting_sort(
            &buffers.pairs,
            self.alerts.len(),
            |pair| pair.0 as usize,
            &mut buffers.starts,
            &mut buffers.grouped,
        );
        for group in buffers.grouped.chunk_by(|a, b| a.0 == b.0) {
            buffers.rows.clear();
            buffers.rows.extend(group.iter().map(|(_, row)| *row));
            // An alert found through two keys for one row: the row's pairs came together.
            buffers.rows.dedup();
            self.fire(
                group[0].0,
                &mut buffers.rows,
                &views,
                batch,
                &mut buffers.fired,
            )?;
        }
        let fired = buffers.fired_by_row(rows);
        self.buffers = buffers;
        Ok(fired)
    }

    /// Keeps those of `rows` where alert `id` is true, and adds `(row, id)` to `fired` for
    /// each.
    fn fire(
        &self,
        id: AlertId,
        rows: &mut Vec<u32>,
        views: &Views,
        batch: &RecordBatch,
        fired: &mut Vec<(u32, AlertId)>,
    ) -> Result<()> {
        let Some(conjuncts) = self
            .spans
            .get(id as usize)
            .and_then(|&(start, end)| self.conjuncts.get(start as usize..end as usize))
            .filter(|conjuncts| !conjuncts.is_empty())
        else {
            return Ok(());
        };
        // Residual expressions are evaluated on the whole batch, once, when needed.
        let mut residuals: Vec<Option<BooleanArray>> = Vec::new();
        let mut residual = |index: usize, row: usize| -> Result<Option<bool>> {
            let Some(Some(alert)) = self.alerts.get(id as usize) else {
                return Ok(None);
            };
            residuals.resize(alert.compiled.residuals.len(), None);
            let slot = residuals
                .get_mut(index)
                .ok_or_else(|| CepError::Alert(format!("no residual {index}")))?;
            if slot.is_none() {
                *slot = Some(evaluate_residual(&alert.compiled, index, batch)?);
            }
            Ok(slot
                .as_ref()
                .and_then(|values| values.is_valid(row).then(|| values.value(row))))
        };
        keep(conjuncts, views, rows, &mut residual)?;
        fired.extend(rows.iter().map(|&row| (row, id)));
        Ok(())
    }

    /// Adds (alert, `row`) to `out` for every alert whose keys hold at `row` (twice for
    /// an alert found through two keys); `key_hashes` are the hashes of the values of the
    /// key columns, by row.
    fn candidates(
        &self,
        views: &Views,
        key_hashes: &KeyHashes,
        row: u32,
        out: &mut Vec<(AlertId, u32)>,
    ) {
        let add = |ids: &[AlertId], out: &mut Vec<(AlertId, u32)>| {
            out.extend(ids.iter().map(|&id| (id, row)));
        };
        let row_number = row;
        let row = row as usize;
        let mut partition: Option<(u64, Option<&KeyMap>)> = None;
        for (at, shape) in self.signatures.iter().enumerate() {
            // The hash of the row's value in the shape's column; no key when it is NULL.
            let hash = match key_hashes.slots.get(at).copied().flatten() {
                None => None,
                Some(slot) => match key_hashes.hashes.get(slot).and_then(|h| h.get(row)) {
                    Some(Some(hash)) => Some(*hash),
                    _ => continue,
                },
            };
            let (cell, value) = match shape.range {
                None => (None, 0.0),
                Some((column, _)) => {
                    let Some(value) = number_at(views, column, row) else {
                        continue;
                    };
                    let width = key_hashes.widths.get(at).copied().unwrap_or(1.0);
                    let Some(cell) = cell_of_width(value, width) else {
                        continue;
                    };
                    (Some(cell), value)
                }
            };
            let key = key_of(at, hash, cell);
            let first = hash.unwrap_or(0);
            // Shapes are mostly on the same column: its partition is found once.
            let keys = match partition {
                Some((known, keys)) if known == first => keys,
                _ => {
                    let keys = self.equal.get(&first);
                    partition = Some((first, keys));
                    keys
                }
            };
            let Some(postings) = keys.and_then(|keys| keys.get(&key)) else {
                continue;
            };
            for posting in postings {
                if cell.is_none() || (posting.low <= value && value <= posting.high) {
                    out.push((posting.id, row_number));
                }
            }
        }
        for (column, lengths) in &self.prefix_lengths {
            let Some(value) = views.str(column.column, row) else {
                continue;
            };
            for &length in lengths.range(..=value.len()) {
                if !value.is_char_boundary(length) {
                    continue;
                }
                if let Some(ids) = self.prefixes.get(&(*column, value[..length].into())) {
                    add(ids, out);
                }
            }
        }
        for (column, ranges) in &self.ranges {
            let Some(value) = number_at(views, *column, row) else {
                continue;
            };
            for (sort, _, high, id) in ranges {
                if *sort > value {
                    break;
                }
                let below = match high {
                    Bound::Open => true,
                    Bound::At(bound, true) => value <= *bound,
                    Bound::At(bound, false) => value < *bound,
                };
                if below {
                    add(&[*id], out);
                }
            }
        }
        add(&self.unindexed, out);
    }
}
