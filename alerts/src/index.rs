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
//! partition ([`Arranged`]), within one in order of the number column the shape's alerts
//! bound (the price, say); each alert listed under a partition's hash is then tested on the
//! partition's rows within its bounds (found by bisection, shared by the alerts bounded by
//! the same test; none, and the alert is passed over) at once, as bits, so an alert is
//! visited once per partition of a batch, not once per row. Its tests are numbered, one
//! number per distinct test over all alerts, and each is made on a partition's rows once,
//! for the first alert that asks ([`Masks`]); the alerts after it AND its bits. On a
//! partition of a few rows, where little is shared, each alert's tests are made on its own
//! rows. A symbol test that the partition's string implies (`district IN ('a', 'b')` on
//! the rows of `a`) is not made when every row of the partition has that symbol. String
//! equalities compare symbols (numbers given to the strings alerts name), looked up once
//! per row. The firings on each partition are put in order of row by a counting sort over
//! its rows when it is done (kept in cache, where one sort over a batch's firings would
//! scatter them over megabytes), and each row's are merged over the shapes by alert; an
//! alert found through keys of two shapes fires once.

use std::collections::{BTreeSet, HashMap, HashSet};

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::record_batch::RecordBatch;

use crate::arranged::{Arranged, NumberColumn, Part};
use crate::conjuncts::{Conjunct, bounds, narrow, narrow_generals, split};
use crate::masks::{Masks, TestTable, set_positions};
use crate::predicate::{
    ColumnRef, Compare, Compiled, Cond, Family, Lit, Symbols, Views, columns_used, evaluate,
};
use crate::{AlertError, Result};

/// Residual expression `index` of `compiled`, evaluated on `batch`.
fn evaluate_residual(
    compiled: &Compiled,
    index: usize,
    batch: &RecordBatch,
) -> Result<BooleanArray> {
    let expr = compiled
        .residuals
        .get(index)
        .ok_or_else(|| AlertError::Invalid(format!("no residual {index}")))?;
    let values = expr
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| AlertError::Invalid(e.to_string()))?;
    values
        .as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| AlertError::Invalid("a condition is not boolean".into()))
}

/// What matching a batch needs room for, kept from one batch to the next: these grow to
/// megabytes, which fresh allocations would fault in again each time.
#[derive(Default)]
struct Buffers {
    /// The firings on the partition being tested as (alert, position), in order of
    /// alert, and the count of each position's (at `position + 1`).
    partition: Vec<(AlertId, u32)>,
    counts: Vec<usize>,
    /// Per shape, the alerts fired, partition after partition, each row's together in
    /// order of alert; and by row, where its own are.
    by_row: Vec<Vec<AlertId>>,
    spans: Vec<Vec<(usize, usize)>>,
    /// An alert's bits over the rows of a partition.
    words: Vec<u64>,
    /// The results of the tests made on the current partition.
    masks: Masks,
    /// The residual expressions evaluated on this batch, by alert and residual.
    residuals: HashMap<(AlertId, usize), BooleanArray>,
    /// By alert, the rows it has fired on so far, over all batches (counted here, where
    /// each alert's rows are found together).
    fired: Vec<u64>,
}

impl Buffers {
    /// Room for the firings of `shapes` shapes on `rows` rows, empty.
    fn clear(&mut self, shapes: usize, rows: usize) {
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
    fn start_partition(&mut self, size: usize) {
        self.partition.clear();
        self.counts.clear();
        self.counts.resize(size + 1, 0);
    }

    /// Puts the firings on the partition of `rows` (the batch row at each position) into
    /// order of row, after those of `shape` so far: a counting sort small enough to stay
    /// in cache, where one over the whole batch would scatter over megabytes.
    fn finish_partition(&mut self, shape: usize, rows: &[u32]) {
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
        for &(id, position) in &self.partition {
            if let Some(next) = counts.get_mut(position as usize)
                && let Some(slot) = sorted.get_mut(*next)
            {
                *slot = id;
                *next += 1;
            }
        }
    }

    /// Sets an alert's bits to `positions` of a partition of `size` rows.
    fn start_alert(&mut self, size: usize, positions: std::ops::Range<usize>) {
        self.words.resize(size.div_ceil(64), 0);
        set_positions(&mut self.words, positions);
    }

    /// The firings, by row then by alert, each once: each row's merged over the shapes.
    fn fired_by_row(&mut self, rows: usize) -> Matches {
        // Per shape with firings: where each row's are, and the alerts.
        type ByRow<'a> = (&'a [(usize, usize)], &'a [AlertId]);
        let shapes: Vec<ByRow> = self
            .spans
            .iter()
            .zip(&self.by_row)
            .filter(|(_, sorted)| !sorted.is_empty())
            .map(|(spans, sorted)| (spans.as_slice(), sorted.as_slice()))
            .collect();
        let total = shapes.iter().map(|(_, sorted)| sorted.len()).sum();
        let mut fired = Matches {
            rows: Vec::with_capacity(total),
            alerts: Vec::with_capacity(total),
        };
        fn of_row<'a>((spans, sorted): &ByRow<'a>, row: usize) -> &'a [AlertId] {
            let (start, end) = spans.get(row).copied().unwrap_or_default();
            sorted.get(start..end).unwrap_or_default()
        }
        let mut heads: Vec<&[AlertId]> = Vec::with_capacity(shapes.len());
        for row in 0..rows {
            let before = fired.alerts.len();
            match shapes.as_slice() {
                [only] => fired.alerts.extend_from_slice(of_row(only, row)),
                _ => {
                    heads.clear();
                    heads.extend(
                        shapes
                            .iter()
                            .map(|shape| of_row(shape, row))
                            .filter(|slice| !slice.is_empty()),
                    );
                    merge_by_alert(&mut heads, &mut fired.alerts, &mut self.fired);
                }
            }
            let added = fired.alerts.len() - before;
            fired.rows.resize(fired.rows.len() + added, row as u32);
        }
        fired
    }
}

/// The firings of a batch: row `rows[i]` made alert `alerts[i]` true; in order of row,
/// then of alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    pub rows: Vec<u32>,
    pub alerts: Vec<AlertId>,
}

impl Matches {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The firings as (row, alert).
    pub fn pairs(&self) -> impl Iterator<Item = (usize, AlertId)> + '_ {
        self.rows
            .iter()
            .zip(&self.alerts)
            .map(|(&row, &id)| (row as usize, id))
    }
}

/// Adds the alerts of one row's firings in `heads` (each in order of alert) to `fired`, in
/// order of alert; an alert found through keys of two shapes is added once, and counted
/// once in `counts`.
fn merge_by_alert(heads: &mut Vec<&[AlertId]>, fired: &mut Vec<AlertId>, counts: &mut [u64]) {
    let row_start = fired.len();
    while let [first, rest @ ..] = heads.as_slice() {
        let mut next = first;
        let mut at = 0;
        for (other, head) in rest.iter().enumerate() {
            if head.first() < next.first() {
                next = head;
                at = other + 1;
            }
        }
        let Some((&id, left)) = next.split_first() else {
            heads.swap_remove(at);
            continue;
        };
        // The run of this head's alerts below every other head's first goes at once.
        let bound = heads
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != at)
            .filter_map(|(_, head)| head.first().copied())
            .min()
            .unwrap_or(AlertId::MAX);
        if fired.len() > row_start && fired.last() == Some(&id) {
            if let Some(count) = counts.get_mut(id as usize) {
                *count = count.saturating_sub(1);
            }
        } else {
            fired.push(id);
        }
        // Runs are short when shapes interleave: a scan beats bisection, and is no slower
        // than the copy for a long one.
        let length = left.iter().take_while(|&&other| other < bound).count();
        let (run, after) = left.split_at(length);
        fired.extend_from_slice(run);
        heads[at] = after;
        if heads[at].is_empty() {
            heads.swap_remove(at);
        }
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

/// A partition being tested: the batch and its rows laid out for one shape, and the
/// partition.
#[derive(Clone, Copy)]
struct Place<'a> {
    arranged: &'a Arranged,
    part: Part,
    views: &'a Views,
    batch: &'a RecordBatch,
}

/// An alert's number in the index.
pub type AlertId = u32;

/// A test that must hold for an alert to be true.
#[derive(Debug, Clone)]
enum Key {
    /// The column equals the value.
    Value(ColumnRef, Lit),
    /// The numeric column's value is within the range.
    Cells(Cells),
    /// The string column starts with the prefix.
    Prefix(ColumnRef, String),
}

/// How rows are put in partitions: by a column's value, by the cell of a numeric
/// column's value (cells `2^level` wide), by a string column's first bytes, or all in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Value(ColumnRef),
    Cell(ColumnRef, i32),
    Prefix(ColumnRef, usize),
    All,
}

impl Key {
    /// The string column and the string, of a key that a string column equals a string.
    fn text(&self) -> Option<(usize, &str)> {
        match self {
            Key::Value(column, Lit::Str(text)) if column.family == Family::Str => {
                Some((column.column, text))
            }
            _ => None,
        }
    }

    /// The key's shape, and the hashes of the partitions it lists its alert under.
    fn partitions(&self) -> (Shape, Vec<u64>) {
        match self {
            Key::Value(column, lit) => (Shape::Value(*column), vec![lit_hash(lit)]),
            Key::Cells(cells) => (
                Shape::Cell(cells.column, cells.level),
                (cells.first..=cells.last).map(cell_hash).collect(),
            ),
            Key::Prefix(column, prefix) => (
                Shape::Prefix(*column, prefix.len()),
                vec![value_hash(3, prefix.as_bytes())],
            ),
        }
    }
}

impl Shape {
    /// The string column partitions are by the value of, when there is one.
    fn symbol_column(self) -> Option<usize> {
        match self {
            Shape::Value(column) if column.family == Family::Str => Some(column.column),
            _ => None,
        }
    }

    /// The hash of the partition `row` is in; `None` when it is in none (a NULL, a string
    /// shorter than the prefix).
    fn row_hash(self, views: &Views, row: usize) -> Option<u64> {
        match self {
            Shape::Value(column) => row_hash(views, column, row),
            Shape::Cell(column, level) => {
                cell_of_width(number_at(views, column, row)?, cell_width(level)).map(cell_hash)
            }
            Shape::Prefix(column, length) => {
                let value = views.str(column.column, row)?;
                let prefix = value.get(..length)?;
                Some(value_hash(3, prefix.as_bytes()))
            }
            Shape::All => Some(0),
        }
    }
}

/// A bounded numeric range, as the cells of one size it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cells {
    column: ColumnRef,
    /// Cells are `2^level` wide.
    level: i32,
    first: i64,
    last: i64,
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

fn cell_hash(cell: i64) -> u64 {
    value_hash(5, &cell.to_le_bytes())
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
            .map(|value| Key::Value(column, value))
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
        Cond::Between { .. } => {
            bounded_range(std::slice::from_ref(cond)).map(|c| vec![Key::Cells(c)])
        }
        Cond::Prefix {
            column,
            prefix,
            negated: false,
        } => Some(vec![Key::Prefix(*column, prefix.clone())]),
        Cond::And(parts) => equal_keys(parts, distinct)
            .or_else(|| bounded_range(parts).map(|cells| vec![Key::Cells(cells)]))
            .or_else(|| {
                parts
                    .iter()
                    .filter_map(|part| keys(part, distinct))
                    .min_by_key(Vec::len)
            }),
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

/// The alerts listed under one partition, in order of alert, one record after another in
/// one vector, so that visiting the partition reads memory in order: the alert's number,
/// how many tests it has, how many of them its partition's string implies, its bounds on
/// one number column (the first an alert of the list bounds; the widest when it has none)
/// and its tests' numbers (then [`GENERALS`] for an alert with general conjuncts). Alerts
/// whose bounds no row of a partition is within are passed over without reading their
/// tests.
#[derive(Default)]
struct Listed {
    records: Vec<u32>,
    bounded: Option<NumberColumn>,
    /// (column, symbol) when every alert is listed for rows with that string in that
    /// column (see [`Listed::implied`]).
    symbol: Option<(u32, u32)>,
    alerts: usize,
}

/// The words of a record before its tests' numbers: alert, tests, implied tests, low
/// (two), high (two).
const HEADER: usize = 7;

/// An alert as a list visits it: its number, its tests' numbers, how many of them follow
/// the first when it has bounds (or come first when not) and are implied by the list's
/// string, and its bounds.
type Visit<'a> = (AlertId, &'a [u32], usize, i64, i64);

impl Listed {
    /// Adds alert `id`, with its `tests` and their `numbers`, for rows whose value is
    /// `symbol` (column, symbol) when given; the first alert with bounds picks the bounded
    /// column, `preferred` when it bounds that one. Its numbers go in the order of
    /// [`Listed::bounding`] and [`Listed::implied`].
    fn push(
        &mut self,
        (id, tests, numbers): (AlertId, &[Conjunct], &[u32]),
        preferred: Option<NumberColumn>,
        symbol: Option<(u32, u32)>,
    ) {
        let found = match self.bounded {
            Some(column) => bounds(tests, Some(column)),
            None => bounds(tests, preferred).or_else(|| bounds(tests, None)),
        }
        // Bounds that are the widest bound nothing (see `Listed::bounding`).
        .filter(|&(_, _, low, high)| (low, high) != (i64::MIN, i64::MAX));
        if let Some((_, column, _, _)) = found {
            self.bounded = Some(column);
        }
        self.symbol = match self.alerts {
            0 => symbol,
            _ => self.symbol.filter(|known| Some(*known) == symbol),
        };
        // The test the bounds come from first, then those the string implies, then the rest
        // (GENERALS, past the tests, stays last).
        let bounding = found.map(|(at, ..)| at);
        let implied = |at: usize| {
            symbol.is_some_and(|(column, symbol)| {
                tests
                    .get(at)
                    .is_some_and(|test| test.implied_by(column, symbol))
            })
        };
        let mut order: Vec<usize> = bounding.into_iter().collect();
        order.extend((0..numbers.len()).filter(|&at| implied(at)));
        let implied_count = order.len() - usize::from(bounding.is_some());
        order.extend((0..numbers.len()).filter(|&at| Some(at) != bounding && !implied(at)));
        let (low, high) = found.map_or((i64::MIN, i64::MAX), |(.., low, high)| (low, high));
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

    fn remove(&mut self, id: AlertId) {
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

    fn is_empty(&self) -> bool {
        self.alerts == 0
    }

    /// When an alert (with test `numbers` and bounds `low`, `high`) has bounds: the number
    /// of the test they come from (its first), and the tests left to make on the rows
    /// within them.
    fn bounding(numbers: &[u32], low: i64, high: i64) -> Option<(u32, &[u32])> {
        match (low, high) == (i64::MIN, i64::MAX) {
            true => None,
            false => numbers.split_first().map(|(&first, left)| (first, left)),
        }
    }

    /// Whether the symbol tests that come first in `numbers` (after [`Listed::bounding`]),
    /// `implied` of them, hold on every row of `part`: they hold for the list's string, and
    /// all the partition's rows have it.
    fn implied(&self, part: Part) -> bool {
        self.symbol.is_some() && part.same == self.symbol
    }

    /// The alerts, as they are visited.
    fn alerts(&self) -> impl Iterator<Item = Visit<'_>> {
        let mut rest = self.records.as_slice();
        std::iter::from_fn(move || {
            let (&[id, count, implied, low, low_high, high, high_high], after) =
                rest.split_first_chunk::<HEADER>()?;
            let (numbers, after) = after.split_at_checked(count as usize)?;
            rest = after;
            let join = |low: u32, high: u32| (u64::from(high) << 32 | u64::from(low)) as i64;
            let bounds = (join(low, low_high), join(high, high_high));
            Some((id, numbers, implied as usize, bounds.0, bounds.1))
        })
    }
}

type Lists = HashMap<u64, Listed, std::hash::BuildHasherDefault<Prehashed>>;

struct Alert {
    compiled: Compiled,
    /// The partitions it is listed under: (shape, hash).
    places: Vec<(usize, u64)>,
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
    lists: Vec<Lists>,
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

/// A partition of at most this many rows has its tests made for each alert, not shared.
const FEW_ROWS: usize = 4;

/// Stands among an alert's test numbers for its general conjuncts.
const GENERALS: u32 = u32::MAX;

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
        // Each key's shape and partitions, and for a string's, (column, the string's symbol).
        type Partitions = (Shape, Vec<u64>, Option<(u32, u32)>);
        let partitions: Vec<Partitions> = match &keys {
            Some(keys) => keys
                .iter()
                .map(|key| {
                    let (shape, hashes) = key.partitions();
                    let symbol = key.text().and_then(|(column, text)| {
                        Some((column as u32, self.symbols.symbol(text)?))
                    });
                    (shape, hashes, symbol)
                })
                .collect(),
            None => vec![(Shape::All, vec![0], None)],
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
        for (shape, hashes, symbol) in partitions {
            let alert = (id, own.tests.as_slice(), numbers.as_slice());
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

    /// Lists alert `id` with its tests and their numbers under the partitions `hashes` of
    /// `shape` (of a string column's value, `symbol`: (column, the value's symbol)), and
    /// adds where to `places`.
    fn list(
        &mut self,
        shape: Shape,
        hashes: &[u64],
        symbol: Option<(u32, u32)>,
        (id, tests, numbers): (AlertId, &[Conjunct], &[u32]),
        places: &mut Vec<(usize, u64)>,
    ) {
        let at = match self.shapes.iter().position(|s| *s == shape) {
            Some(at) => at,
            None => {
                self.shapes.push(shape);
                self.lists.push(Lists::default());
                self.orders.push(None);
                self.shapes.len() - 1
            }
        };
        let (Some(lists), Some(order)) = (self.lists.get_mut(at), self.orders.get_mut(at)) else {
            return;
        };
        if order.is_none() {
            *order = bounds(tests, None).map(|(_, column, ..)| column);
        }
        for &hash in hashes {
            if places.contains(&(at, hash)) {
                continue;
            }
            let alert = (id, tests, numbers);
            lists.entry(hash).or_default().push(alert, *order, symbol);
            places.push((at, hash));
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
        for (shape, hash) in alert.places {
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

    fn find(&mut self, batch: &RecordBatch, unindexed: Option<Unindexed>) -> Result<Matches> {
        if self.live == 0 || batch.num_rows() == 0 {
            return Ok(Matches::default());
        }
        let used: Vec<ColumnRef> = self.used.iter().copied().collect();
        let mut views = Views::new(batch, &used)?;
        let symbol_columns: Vec<usize> = self.symbol_columns.iter().copied().collect();
        self.symbols.look_up(&mut views, &symbol_columns);
        let rows = batch.num_rows();
        let mut buffers = std::mem::take(&mut self.buffers);
        buffers.clear(self.shapes.len().max(1), rows);
        let found = match unindexed {
            None => (0..self.shapes.len())
                .try_for_each(|at| self.fire_listed(at, &views, &used, batch, &mut buffers)),
            Some(how) => {
                let arranged = Arranged::whole(&views, rows, &used, how == Unindexed::RowByRow);
                arranged.parts.iter().try_for_each(|&part| {
                    let place = Place {
                        arranged: &arranged,
                        part,
                        views: &views,
                        batch,
                    };
                    buffers.start_partition(part.end - part.start);
                    self.spans
                        .iter()
                        .enumerate()
                        .try_for_each(|(id, &(start, end))| {
                            let numbers = self.numbers.get(start as usize..end as usize);
                            let numbers = numbers.unwrap_or_default();
                            let all = 0..part.end - part.start;
                            self.fire(id as AlertId, numbers, &place, all, &mut buffers)
                        })?;
                    let rows = arranged.rows.get(part.start..part.end);
                    buffers.finish_partition(0, rows.unwrap_or_default());
                    Ok(())
                })
            }
        };
        let fired = buffers.fired_by_row(rows);
        self.buffers = buffers;
        found.map(|()| fired)
    }

    /// Tests the alerts of shape `at` on the rows of their partitions. When a list's
    /// bounded column is the one the rows are ordered by, the rows within an alert's
    /// bounds are found by bisection (shared by the alerts bounded by one test), and the
    /// alert is passed over when there are none; else it is when its bounds miss the
    /// partition's least to greatest value. The tests the partition's string implies are
    /// not made.
    fn fire_listed(
        &self,
        at: usize,
        views: &Views,
        used: &[ColumnRef],
        batch: &RecordBatch,
        buffers: &mut Buffers,
    ) -> Result<()> {
        let (Some(&shape), Some(lists), Some(&order)) =
            (self.shapes.get(at), self.lists.get(at), self.orders.get(at))
        else {
            return Ok(());
        };
        let rows = batch.num_rows();
        let arranged = match shape {
            Shape::All => Arranged::whole(views, rows, used, false),
            shape => Arranged::by_hash(
                views,
                rows,
                used,
                |row| shape.row_hash(views, row),
                shape.symbol_column(),
                order,
            ),
        };
        for &part in &arranged.parts {
            let Some(listed) = lists.get(&part.hash) else {
                continue;
            };
            let place = Place {
                arranged: &arranged,
                part,
                views,
                batch,
            };
            let size = part.end - part.start;
            buffers.masks.start(size, self.tests.len());
            buffers.start_partition(size);
            match listed
                .bounded
                .and_then(|column| arranged.ordered(column, part))
            {
                Some(values) => {
                    let implied = listed.implied(part);
                    for (id, numbers, skip, low, high) in listed.alerts() {
                        let (positions, left) = match Listed::bounding(numbers, low, high) {
                            Some((number, left)) => {
                                let bisect = || {
                                    let from = values.partition_point(|v| *v < low);
                                    from..values.partition_point(|v| *v <= high)
                                };
                                // Alerts bounded by one test share its bisection of a
                                // partition larger than a few rows.
                                let positions = match size <= FEW_ROWS {
                                    true => bisect(),
                                    false => buffers.masks.range(number, bisect),
                                };
                                (positions, left)
                            }
                            None => (0..size, numbers),
                        };
                        let left = match implied {
                            true => left.get(skip..).unwrap_or_default(),
                            false => left,
                        };
                        if !positions.is_empty() {
                            self.fire_shared(id, left, &place, positions, buffers)?;
                        }
                    }
                }
                None => {
                    let (least, greatest) = listed
                        .bounded
                        .and_then(|column| arranged.extent(column, part))
                        .unwrap_or((i64::MIN, i64::MAX));
                    for (id, numbers, _, low, high) in listed.alerts() {
                        if low <= greatest && least <= high {
                            self.fire_shared(id, numbers, &place, 0..size, buffers)?;
                        }
                    }
                }
            }
            let rows = arranged.rows.get(part.start..part.end);
            buffers.finish_partition(at, rows.unwrap_or_default());
        }
        Ok(())
    }

    /// Adds `(id, position)` to the firings on the place's partition for each of
    /// `positions` where alert `id` (with tests `numbers`) is true, ANDing the
    /// results of its tests over the partition, made once for all its alerts.
    fn fire_shared(
        &self,
        id: AlertId,
        numbers: &[u32],
        place: &Place,
        positions: std::ops::Range<usize>,
        buffers: &mut Buffers,
    ) -> Result<()> {
        let Place {
            arranged,
            part,
            views,
            ..
        } = *place;
        let size = part.end - part.start;
        buffers.start_alert(size, positions);
        for &number in numbers {
            if number == GENERALS {
                return self.fire_general(id, place, buffers);
            }
            if size <= FEW_ROWS {
                // Made on the alert's rows left: few are shared on a partition this small.
                let test = self.tests.get(number);
                narrow(test, arranged, part, views, &mut buffers.words);
                if buffers.words.iter().all(|word| *word == 0) {
                    return Ok(());
                }
                continue;
            }
            let mask = buffers
                .masks
                .get(number, |mask| match self.tests.get(number) {
                    Some(test) => narrow([test], arranged, part, views, mask),
                    None => mask.fill(0),
                });
            let mut left = 0;
            for (word, mask) in buffers.words.iter_mut().zip(mask) {
                *word &= mask;
                left |= *word;
            }
            if left == 0 {
                return Ok(());
            }
        }
        push_found(buffers, id);
        Ok(())
    }

    /// Adds `(id, position)` to the firings on the place's partition for each of
    /// `positions` where alert `id` (with tests `numbers`) is true, testing it on its own.
    fn fire(
        &self,
        id: AlertId,
        numbers: &[u32],
        place: &Place,
        positions: std::ops::Range<usize>,
        buffers: &mut Buffers,
    ) -> Result<()> {
        let Place {
            arranged,
            part,
            views,
            ..
        } = *place;
        buffers.start_alert(part.end - part.start, positions);
        let tests = numbers.iter().filter_map(|&number| self.tests.get(number));
        narrow(tests, arranged, part, views, &mut buffers.words);
        match numbers.last() {
            Some(&GENERALS) => self.fire_general(id, place, buffers),
            _ => {
                push_found(buffers, id);
                Ok(())
            }
        }
    }

    /// Tests the general conjuncts of alert `id` on the rows of the place's partition
    /// left set in `buffers.words`, then adds the rows still set to the firings.
    fn fire_general(&self, id: AlertId, place: &Place, buffers: &mut Buffers) -> Result<()> {
        let Place {
            arranged,
            part,
            views,
            batch,
            ..
        } = *place;
        let Buffers {
            words, residuals, ..
        } = buffers;
        let generals = self.generals.get(id as usize).map_or(&[][..], |g| &g[..]);
        if words.iter().all(|word| *word == 0) {
            return Ok(());
        }
        // Residual expressions are evaluated on the whole batch, once, when needed.
        let mut general = |cond: &Cond, row: usize| -> Result<Option<bool>> {
            evaluate(cond, views, row, &mut |index| {
                let values = match residuals.entry((id, index)) {
                    std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        let Some(Some(alert)) = self.alerts.get(id as usize) else {
                            return Ok(None);
                        };
                        slot.insert(evaluate_residual(&alert.compiled, index, batch)?)
                    }
                };
                Ok(values.is_valid(row).then(|| values.value(row)))
            })
        };
        narrow_generals(generals, arranged, part, words, &mut general)?;
        push_found(buffers, id);
        Ok(())
    }
}

/// Adds `(id, position)` to the firings on the partition for each position set in
/// `buffers.words`, and counts them.
fn push_found(buffers: &mut Buffers, id: AlertId) {
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
            partition.push((id, position as u32));
            if let Some(count) = counts.get_mut(position + 1) {
                *count += 1;
            }
        }
    }
}
