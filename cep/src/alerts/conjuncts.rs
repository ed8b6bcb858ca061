//! An alert's condition as filters over its candidate rows: each top-level conjunct a
//! typed test that keeps the rows where it is TRUE.
//!
//! An alert fires on a row only when its condition is TRUE, and a conjunction is TRUE only
//! when each of its parts is TRUE, so at the top level a NULL may count as FALSE: a
//! comparison of a column with a literal becomes a bound check on the column's values, an
//! equality of strings a comparison of symbols. Anything else (`OR`, `NOT`, residual
//! expressions) is evaluated under three-valued logic by [`evaluate`] and kept when TRUE.
//! The tests are applied in the condition's order (cheapest first), each to the rows the
//! ones before it kept, and stop when no row is left.

use datafusion::arrow::array::{Array, ArrowPrimitiveType, PrimitiveArray};

use super::predicate::{Compare, Cond, Family, Lit, Views, evaluate};
use crate::Result;

/// One conjunct, as a test of a row.
#[derive(Debug)]
pub enum Conjunct {
    /// An integer column within `[low, high]`.
    Int { column: usize, low: i64, high: i64 },
    /// A float column ordered against the bounds (in `f64::total_cmp`'s order, as
    /// [`evaluate`] compares) as each bound's orderings allow.
    Float {
        column: usize,
        low: Option<(f64, Compare)>,
        high: Option<(f64, Compare)>,
    },
    /// A string column equal to a symbol.
    Symbol { column: usize, symbol: u32 },
    /// A string column equal to one of the symbols.
    Symbols { column: usize, symbols: Box<[u32]> },
    /// A boolean column TRUE.
    Truth { column: usize },
    /// Any other condition, evaluated row by row.
    General(Box<Cond>),
}

/// The conjuncts of `cond` (its symbols interned), in its order.
pub fn conjuncts(cond: &Cond) -> Box<[Conjunct]> {
    match cond {
        Cond::And(parts) => parts.iter().map(conjunct).collect(),
        other => Box::new([conjunct(other)]),
    }
}

fn conjunct(cond: &Cond) -> Conjunct {
    let general = || Conjunct::General(Box::new(cond.clone()));
    match cond {
        Cond::Compare {
            column,
            op,
            lit: Lit::Int(value),
        } if column.family == Family::Int => {
            let value = *value;
            let (low, high) = match op {
                Compare::Eq => (value, value),
                Compare::Lt if value > i64::MIN => (i64::MIN, value - 1),
                Compare::LtEq => (i64::MIN, value),
                Compare::Gt if value < i64::MAX => (value + 1, i64::MAX),
                Compare::GtEq => (value, i64::MAX),
                _ => return general(),
            };
            Conjunct::Int {
                column: column.column,
                low,
                high,
            }
        }
        Cond::Between {
            column,
            low: Lit::Int(low),
            high: Lit::Int(high),
            negated: false,
        } if column.family == Family::Int => Conjunct::Int {
            column: column.column,
            low: *low,
            high: *high,
        },
        Cond::Compare {
            column,
            op,
            lit: Lit::Float(value),
        } if column.family == Family::Float && *op != Compare::NotEq => {
            let bound = Some((*value, *op));
            let (low, high) = match op {
                Compare::Lt | Compare::LtEq => (None, bound),
                Compare::Gt | Compare::GtEq => (bound, None),
                _ => (bound, None),
            };
            Conjunct::Float {
                column: column.column,
                low,
                high,
            }
        }
        Cond::Between {
            column,
            low: Lit::Float(low),
            high: Lit::Float(high),
            negated: false,
        } if column.family == Family::Float => Conjunct::Float {
            column: column.column,
            low: Some((*low, Compare::GtEq)),
            high: Some((*high, Compare::LtEq)),
        },
        Cond::SymbolEq {
            column,
            symbol,
            negated: false,
        } => Conjunct::Symbol {
            column: column.column,
            symbol: *symbol,
        },
        Cond::SymbolIn {
            column,
            symbols,
            negated: false,
        } => Conjunct::Symbols {
            column: column.column,
            symbols: symbols.clone().into_boxed_slice(),
        },
        Cond::Truth(column) => Conjunct::Truth {
            column: column.column,
        },
        _ => general(),
    }
}

/// Whether float `value` passes `bound` (the value on the left, the bound on the right).
fn passes(value: f64, bound: Option<(f64, Compare)>) -> bool {
    bound.is_none_or(|(bound, op)| op.holds(value.total_cmp(&bound)))
}

/// Keeps those of `rows` where `array` is not NULL and its value passes `test`.
fn retain_valid<T: ArrowPrimitiveType>(
    array: &PrimitiveArray<T>,
    rows: &mut Vec<u32>,
    test: impl Fn(T::Native) -> bool,
) {
    let values = array.values();
    rows.retain(|&row| {
        let row = row as usize;
        array.is_valid(row) && values.get(row).is_some_and(|v| test(*v))
    });
}

/// Keeps the `rows` of the batch behind `views` where every one of `conjuncts` is TRUE;
/// `residual(n, row)` gives residual `n`'s result at `row`.
pub fn keep(
    conjuncts: &[Conjunct],
    views: &Views,
    rows: &mut Vec<u32>,
    residual: &mut dyn FnMut(usize, usize) -> Result<Option<bool>>,
) -> Result<()> {
    for conjunct in conjuncts {
        if rows.is_empty() {
            break;
        }
        match conjunct {
            Conjunct::Int { column, low, high } => match views.int_array(*column) {
                Some(array) => retain_valid(array, rows, |v| *low <= v && v <= *high),
                None => rows.clear(),
            },
            Conjunct::Float { column, low, high } => match views.float_array(*column) {
                Some(array) => retain_valid(array, rows, |v| passes(v, *low) && passes(v, *high)),
                None => rows.clear(),
            },
            Conjunct::Symbol { column, symbol } => match views.symbols_of(*column) {
                // NULLs and strings no alert names have symbols no alert uses.
                Some(symbols) => {
                    rows.retain(|&row| symbols.get(row as usize) == Some(symbol));
                }
                None => rows.clear(),
            },
            Conjunct::Symbols { column, symbols } => match views.symbols_of(*column) {
                Some(values) => rows.retain(|&row| {
                    values
                        .get(row as usize)
                        .is_some_and(|value| symbols.contains(value))
                }),
                None => rows.clear(),
            },
            Conjunct::Truth { column } => match views.bool_array(*column) {
                Some(array) => rows.retain(|&row| {
                    let row = row as usize;
                    row < array.len() && array.is_valid(row) && array.value(row)
                }),
                None => rows.clear(),
            },
            Conjunct::General(cond) => {
                let mut failed = None;
                rows.retain(|&row| {
                    let row = row as usize;
                    let mut at_row = |index: usize| residual(index, row);
                    match evaluate(cond, views, row, &mut at_row) {
                        Ok(value) => value == Some(true),
                        Err(error) => {
                            failed.get_or_insert(error);
                            false
                        }
                    }
                });
                if let Some(error) = failed {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}
