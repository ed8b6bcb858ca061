//! The alert index: which alerts might hold for a row, found without evaluating them all.
//!
//! Each alert gets access keys: tests that must hold for its condition to be true. For a
//! conjunction, its equalities together (`city = 'Seoul' AND district IN ('Mapo', 'Jung')`
//! gives one key per combination of values), else one prefix or range conjunct; for a
//! disjunction, the keys of every branch. Equality keys are hashed tuples, kept per set of
//! columns: a row is looked up once per set in use. Prefixes are kept per column and
//! probed with each prefix length in use; numeric ranges in a list per column sorted by
//! their lower bound. Alerts with no usable key (a `NOT`, `IS NULL`, a residual expression
//! on its own) are candidates for every row. Candidates are then evaluated exactly, so a
//! key only has to be implied by the condition, and two tuples hashing alike only add a
//! candidate.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::record_batch::RecordBatch;

use super::predicate::{
    ColumnRef, Compare, Compiled, Cond, Family, Lit, Views, columns_used, evaluate,
};
use crate::{CepError, Result};

/// An alert's number in the index.
pub type AlertId = u32;

/// A test that must hold for an alert to be true.
#[derive(Debug, Clone)]
enum Key {
    /// Each column equals its value (columns in order, each once).
    Equal(Vec<(ColumnRef, Lit)>),
    Prefix(ColumnRef, String),
    Range(ColumnRef, Bound, Bound),
}

/// One end of a numeric range: the value, and whether it is included.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Open,
    At(f64, bool),
}

/// The most value combinations one conjunction's equalities are indexed under; past that
/// its largest list is left to evaluation.
const MAX_COMBINATIONS: usize = 256;

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

/// Equality keys for a conjunction's `parts`: one per combination of their values.
fn equal_keys(parts: &[Cond]) -> Option<Vec<Key>> {
    let mut columns: Vec<(ColumnRef, Vec<Lit>)> = Vec::new();
    for (column, values) in parts.iter().filter_map(equal_values) {
        match columns.iter_mut().find(|(c, _)| *c == column) {
            // Two conditions on one column: keep the narrower.
            Some((_, known)) if values.len() < known.len() => *known = values,
            Some(_) => {}
            None => columns.push((column, values)),
        }
    }
    columns.sort_by_key(|c| c.0);
    while columns
        .iter()
        .map(|(_, v)| v.len().max(1))
        .product::<usize>()
        > MAX_COMBINATIONS
    {
        let largest = columns
            .iter()
            .enumerate()
            .max_by_key(|(_, (_, v))| v.len())
            .map(|(i, _)| i)?;
        columns.remove(largest);
    }
    if columns.is_empty() {
        return None;
    }
    let mut keys: Vec<Vec<(ColumnRef, Lit)>> = vec![Vec::new()];
    for (column, values) in &columns {
        keys = keys
            .into_iter()
            .flat_map(|key| {
                values.iter().map(move |value| {
                    let mut key = key.clone();
                    key.push((*column, value.clone()));
                    key
                })
            })
            .collect();
    }
    Some(keys.into_iter().map(Key::Equal).collect())
}

/// Keys implied by `cond`, or `None` when it has no usable ones.
fn keys(cond: &Cond) -> Option<Vec<Key>> {
    match cond {
        Cond::Compare { .. } | Cond::In { .. } | Cond::Truth(_) if equal_values(cond).is_some() => {
            equal_keys(std::slice::from_ref(cond))
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
            (Some(low), Some(high)) => Some(vec![Key::Range(
                *column,
                Bound::At(low, true),
                Bound::At(high, true),
            )]),
            _ => None,
        },
        Cond::Prefix {
            column,
            prefix,
            negated: false,
        } => Some(vec![Key::Prefix(*column, prefix.clone())]),
        Cond::And(parts) => equal_keys(parts).or_else(|| {
            // No equality: the cheapest other conjunct, prefixes before ranges.
            parts.iter().filter_map(keys).min_by_key(|keys| {
                let ranges = keys.iter().filter(|k| matches!(k, Key::Range(..))).count();
                (ranges, keys.len())
            })
        }),
        Cond::Or(parts) => match equal_values(cond) {
            Some(_) => equal_keys(std::slice::from_ref(cond)),
            None => {
                let mut all = Vec::new();
                for part in parts {
                    all.extend(keys(part)?);
                }
                Some(all)
            }
        },
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

/// Hashes of values, the same for a literal and for a row holding that value (FNV-1a over
/// the value's bytes, tagged by type).
#[derive(Clone, Copy)]
struct TupleHash(u64);

impl TupleHash {
    fn new() -> TupleHash {
        TupleHash(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(mut self, tag: u8, bytes: &[u8]) -> TupleHash {
        for byte in std::iter::once(tag).chain(bytes.iter().copied()) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    fn lit(self, lit: &Lit) -> TupleHash {
        match lit {
            Lit::Int(v) => self.bytes(1, &v.to_le_bytes()),
            Lit::Float(v) => self.bytes(2, &v.to_bits().to_le_bytes()),
            Lit::Str(v) => self.bytes(3, v.as_bytes()).bytes(0, &[]),
            Lit::Bool(v) => self.bytes(4, &[u8::from(*v)]),
        }
    }

    /// The hash with the value of `column` at `row` added; `None` when it is NULL.
    fn row(self, views: &Views, column: ColumnRef, row: usize) -> Option<TupleHash> {
        Some(match column.family {
            Family::Int => self.bytes(1, &views.int(column.column, row)?.to_le_bytes()),
            Family::Float => {
                self.bytes(2, &views.float(column.column, row)?.to_bits().to_le_bytes())
            }
            Family::Str => self
                .bytes(3, views.str(column.column, row)?.as_bytes())
                .bytes(0, &[]),
            Family::Bool => self.bytes(4, &[u8::from(views.bool(column.column, row)?)]),
        })
    }
}

struct Alert {
    compiled: Compiled,
}

/// Registered alerts over one stream, and the index over them.
#[derive(Default)]
pub struct AlertIndex {
    alerts: Vec<Option<Alert>>,
    live: usize,
    /// The sets of columns equality keys are on, and the alerts by (set, tuple hash).
    signatures: Vec<Vec<ColumnRef>>,
    equal: HashMap<(usize, u64), Vec<AlertId>>,
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
    /// Per alert: the row it was last made a candidate for (to list each once).
    marks: Vec<u64>,
    stamp: u64,
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
    pub fn insert(&mut self, compiled: Compiled) -> AlertId {
        let id = self.alerts.len() as AlertId;
        let mut used = Vec::new();
        columns_used(&compiled.cond, &mut used);
        self.used.extend(used);
        match keys(&compiled.cond) {
            Some(keys) => {
                for key in keys {
                    self.add_key(key, id);
                }
            }
            None => self.unindexed.push(id),
        }
        self.alerts.push(Some(Alert { compiled }));
        self.marks.push(0);
        self.live += 1;
        id
    }

    fn add_key(&mut self, key: Key, id: AlertId) {
        match key {
            Key::Equal(pairs) => {
                let signature: Vec<ColumnRef> = pairs.iter().map(|(c, _)| *c).collect();
                let at = match self.signatures.iter().position(|s| *s == signature) {
                    Some(at) => at,
                    None => {
                        self.signatures.push(signature);
                        self.signatures.len() - 1
                    }
                };
                let hash = pairs
                    .iter()
                    .fold(TupleHash::new(), |hash, (_, lit)| hash.lit(lit));
                let list = self.equal.entry((at, hash.0)).or_default();
                if list.last() != Some(&id) {
                    list.push(id);
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
    /// when the index is next rebuilt (once half the entries are of removed alerts).
    pub fn remove(&mut self, id: AlertId) -> bool {
        let Some(slot) = self.alerts.get_mut(id as usize) else {
            return false;
        };
        if slot.take().is_none() {
            return false;
        }
        self.live -= 1;
        if self.live * 2 < self.alerts.len() {
            self.rebuild();
        }
        true
    }

    /// Rebuilds the index from the alerts still registered, keeping their numbers.
    fn rebuild(&mut self) {
        let alerts = std::mem::take(&mut self.alerts);
        let mut fresh = AlertIndex::new();
        for alert in alerts {
            match alert {
                Some(alert) => {
                    fresh.insert(alert.compiled);
                }
                None => {
                    fresh.alerts.push(None);
                    fresh.marks.push(0);
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
        let views = Views::new(batch, &used)?;
        let mut residuals: HashMap<(AlertId, usize), BooleanArray> = HashMap::new();
        let mut fired = Vec::new();
        let mut candidates: Vec<AlertId> = Vec::new();
        for row in 0..batch.num_rows() {
            self.stamp += 1;
            candidates.clear();
            if indexed {
                self.candidates(&views, row, &mut candidates);
                candidates.sort_unstable();
            } else {
                candidates.extend(0..self.alerts.len() as AlertId);
            }
            for &id in &candidates {
                let Some(Some(alert)) = self.alerts.get(id as usize) else {
                    continue;
                };
                let mut residual = |index: usize| -> Result<Option<bool>> {
                    let values = match residuals.entry((id, index)) {
                        Entry::Occupied(known) => known.into_mut(),
                        Entry::Vacant(slot) => {
                            let values = alert.compiled.residuals[index]
                                .evaluate(batch)
                                .and_then(|v| v.into_array(batch.num_rows()))
                                .map_err(|e| CepError::Alert(e.to_string()))?;
                            let values = values
                                .as_any()
                                .downcast_ref::<BooleanArray>()
                                .cloned()
                                .ok_or_else(|| {
                                    CepError::Alert("a condition is not boolean".into())
                                })?;
                            slot.insert(values)
                        }
                    };
                    Ok(values.is_valid(row).then(|| values.value(row)))
                };
                if evaluate(&alert.compiled.cond, &views, row, &mut residual)? == Some(true) {
                    fired.push((row, id));
                }
            }
        }
        Ok(fired)
    }

    /// Every alert whose keys hold at `row`, once each.
    fn candidates(&mut self, views: &Views, row: usize, out: &mut Vec<AlertId>) {
        let stamp = self.stamp;
        let marks = &mut self.marks;
        let mut add = |ids: &[AlertId], out: &mut Vec<AlertId>| {
            for &id in ids {
                if let Some(mark) = marks.get_mut(id as usize)
                    && *mark != stamp
                {
                    *mark = stamp;
                    out.push(id);
                }
            }
        };
        for (at, signature) in self.signatures.iter().enumerate() {
            let hash = signature.iter().try_fold(TupleHash::new(), |hash, column| {
                hash.row(views, *column, row)
            });
            if let Some(hash) = hash
                && let Some(ids) = self.equal.get(&(at, hash.0))
            {
                add(ids, out);
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
            let value = match column.family {
                Family::Int => views.int(column.column, row).map(|v| v as f64),
                Family::Float => views.float(column.column, row),
                _ => None,
            };
            let Some(value) = value else { continue };
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
