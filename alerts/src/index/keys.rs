//! Index keys: the choice of an alert's access keys, tests that must hold for its condition
//! to be true, each putting every row in at most one partition of its shape: an equality
//! or `IN` list on the column whose values among the alerts are most varied (one key per
//! value), else a bounded numeric range (the cells it covers), else a prefix; for a
//! disjunction, the keys of every branch.

use std::collections::{HashMap, HashSet};

use super::cells::Cells;
use super::hash::{cell_hash, lit_hash, value_hash};
use super::shape::Shape;
use crate::predicate::{ColumnRef, Compare, Cond, Family, Lit};

/// A test that must hold for an alert to be true.
#[derive(Debug, Clone)]
pub(super) enum Key {
    /// The column equals the value.
    Value(ColumnRef, Lit),
    /// The numeric column's value is within the range.
    Cells(Cells),
    /// The string column starts with the prefix.
    Prefix(ColumnRef, String),
}

impl Key {
    /// The string column and the string, of a key that a string column equals a string.
    pub(super) fn text(&self) -> Option<(usize, &str)> {
        match self {
            Key::Value(column, Lit::Str(text)) if column.family == Family::Str => {
                Some((column.column, text))
            }
            _ => None,
        }
    }

    /// The key's shape, and the hashes of the partitions it lists its alert under.
    pub(super) fn partitions(&self) -> (Shape, Vec<u64>) {
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
pub(super) fn note_values(cond: &Cond, distinct: &mut HashMap<ColumnRef, HashSet<u64>>) {
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
pub(super) fn keys(cond: &Cond, distinct: &dyn Fn(ColumnRef) -> usize) -> Option<Vec<Key>> {
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
fn number(lit: &Lit) -> Option<f64> {
    match lit {
        Lit::Int(v) => Some(*v as f64),
        Lit::Float(v) => Some(*v),
        _ => None,
    }
}
