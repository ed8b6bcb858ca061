//! An alert's condition as filters over its candidate rows: each top-level conjunct a
//! typed test that keeps the rows where it is TRUE.
//!
//! An alert fires on a row only when its condition is TRUE, and a conjunction is TRUE only
//! when each of its parts is TRUE, so at the top level a NULL may count as FALSE: a
//! comparison of a column with a literal becomes a bound check on the column's values, an
//! equality of strings a comparison of symbols, an `IN` list or an `OR` of equalities on
//! one column a list of symbols (kept inline when short), a `LIKE 'prefix%'` a prefix
//! check. Anything else (`OR`, `NOT`, residual
//! expressions) is evaluated under three-valued logic by [`evaluate`] and kept when TRUE.
//! The tests are applied in the condition's order (cheapest first), each to the rows the
//! ones before it kept, and stop when no row is left.

use datafusion::arrow::array::{Array, ArrowPrimitiveType, PrimitiveArray};

use super::predicate::{Compare, Cond, Family, Lit, Views, evaluate};
use crate::Result;

/// One conjunct, as a test of a row: small and flat (24 bytes), so the conjuncts of many
/// alerts are read one after another.
#[derive(Debug)]
pub enum Conjunct {
    /// An integer column within `[low, high]`.
    Int { column: u32, low: i64, high: i64 },
    /// A float column between the bounds, in `f64::total_cmp`'s order (as [`evaluate`]
    /// compares), each bound included or not.
    Float {
        column: u32,
        low: f64,
        high: f64,
        low_included: bool,
        high_included: bool,
    },
    /// A string column equal to a symbol.
    Symbol { column: u32, symbol: u32 },
    /// A string column equal to one of a few symbols (some of them repeated).
    FewSymbols {
        column: u32,
        symbols: [u32; FEW_SYMBOLS],
    },
    /// A string column equal to one of the symbols.
    Symbols { column: u32, symbols: Box<[u32]> },
    /// A string column starting with a prefix.
    Prefix { column: u32, prefix: Box<str> },
    /// A boolean column TRUE.
    Truth { column: u32 },
    /// Any other condition, evaluated row by row.
    General(Box<Cond>),
}

/// The most symbols a list is kept inline for.
const FEW_SYMBOLS: usize = 4;

/// The least and the greatest floats in `f64::total_cmp`'s order (NaNs with every payload
/// bit set): the bounds of a float range with no bound on that side.
const LEAST: f64 = f64::from_bits(u64::MAX);
const GREATEST: f64 = f64::from_bits(i64::MAX as u64);

/// The conjuncts of `cond` (its symbols interned), in its order.
pub fn conjuncts(cond: &Cond) -> Box<[Conjunct]> {
    match cond {
        Cond::And(parts) => parts.iter().map(conjunct).collect(),
        other => Box::new([conjunct(other)]),
    }
}

/// The symbols `cond` says a string column equals one of, when it is an `OR` of equalities
/// on one column (as `IN` is).
fn either_symbol(cond: &Cond) -> Option<(u32, Vec<u32>)> {
    let Cond::Or(parts) = cond else { return None };
    let mut column = None;
    let mut symbols = Vec::with_capacity(parts.len());
    for part in parts {
        let Cond::SymbolEq {
            column: at,
            symbol,
            negated: false,
        } = part
        else {
            return None;
        };
        if column.is_some_and(|known| known != at.column) {
            return None;
        }
        column = Some(at.column);
        symbols.push(*symbol);
    }
    Some((column? as u32, symbols))
}

fn symbols(column: u32, list: &[u32]) -> Conjunct {
    match list.first() {
        Some(&first) if list.len() <= FEW_SYMBOLS => {
            // The rest repeat the first: all of them can be compared.
            let mut few = [first; FEW_SYMBOLS];
            few[..list.len()].copy_from_slice(list);
            Conjunct::FewSymbols {
                column,
                symbols: few,
            }
        }
        _ => Conjunct::Symbols {
            column,
            symbols: list.into(),
        },
    }
}

fn float(column: u32, low: (f64, bool), high: (f64, bool)) -> Conjunct {
    Conjunct::Float {
        column,
        low: low.0,
        high: high.0,
        low_included: low.1,
        high_included: high.1,
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
                column: column.column as u32,
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
            column: column.column as u32,
            low: *low,
            high: *high,
        },
        Cond::Compare {
            column,
            op,
            lit: Lit::Float(value),
        } if column.family == Family::Float => {
            let column = column.column as u32;
            let value = *value;
            match op {
                Compare::Eq => float(column, (value, true), (value, true)),
                Compare::Lt => float(column, (LEAST, true), (value, false)),
                Compare::LtEq => float(column, (LEAST, true), (value, true)),
                Compare::Gt => float(column, (value, false), (GREATEST, true)),
                Compare::GtEq => float(column, (value, true), (GREATEST, true)),
                Compare::NotEq => general(),
            }
        }
        Cond::Between {
            column,
            low: Lit::Float(low),
            high: Lit::Float(high),
            negated: false,
        } if column.family == Family::Float => {
            float(column.column as u32, (*low, true), (*high, true))
        }
        Cond::SymbolEq {
            column,
            symbol,
            negated: false,
        } => Conjunct::Symbol {
            column: column.column as u32,
            symbol: *symbol,
        },
        Cond::SymbolIn {
            column,
            symbols: list,
            negated: false,
        } => symbols(column.column as u32, list),
        Cond::Or(_) => match either_symbol(cond) {
            Some((column, list)) => symbols(column, &list),
            None => general(),
        },
        Cond::Prefix {
            column,
            prefix,
            negated: false,
        } => Conjunct::Prefix {
            column: column.column as u32,
            prefix: prefix.as_str().into(),
        },
        Cond::Truth(column) => Conjunct::Truth {
            column: column.column as u32,
        },
        _ => general(),
    }
}

/// Whether `value` is on the right side of `bound`: above it when `above`, else below it;
/// or equal to it when `included`.
fn passes(value: f64, bound: f64, included: bool, above: bool) -> bool {
    match value.total_cmp(&bound) {
        std::cmp::Ordering::Equal => included,
        std::cmp::Ordering::Greater => above,
        std::cmp::Ordering::Less => !above,
    }
}

/// Keeps those of `rows` where string column `column` is one of `symbols`.
fn retain_in(views: &Views, column: u32, symbols: &[u32], rows: &mut Vec<u32>) {
    match views.symbols_of(column as usize) {
        Some(values) => rows.retain(|&row| {
            values
                .get(row as usize)
                .is_some_and(|value| symbols.contains(value))
        }),
        None => rows.clear(),
    }
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
            Conjunct::Int { column, low, high } => match views.int_array(*column as usize) {
                Some(array) => retain_valid(array, rows, |v| *low <= v && v <= *high),
                None => rows.clear(),
            },
            Conjunct::Float {
                column,
                low,
                high,
                low_included,
                high_included,
            } => match views.float_array(*column as usize) {
                Some(array) => retain_valid(array, rows, |v| {
                    passes(v, *low, *low_included, true) && passes(v, *high, *high_included, false)
                }),
                None => rows.clear(),
            },
            // NULLs and strings no alert names have symbols no alert uses.
            Conjunct::Symbol { column, symbol } => match views.symbols_of(*column as usize) {
                Some(values) => rows.retain(|&row| values.get(row as usize) == Some(symbol)),
                None => rows.clear(),
            },
            Conjunct::FewSymbols { column, symbols } => retain_in(views, *column, symbols, rows),
            Conjunct::Symbols { column, symbols } => retain_in(views, *column, symbols, rows),
            Conjunct::Prefix { column, prefix } => rows.retain(|&row| {
                views
                    .str(*column as usize, row as usize)
                    .is_some_and(|value| value.starts_with(&**prefix))
            }),
            Conjunct::Truth { column } => {
                rows.retain(|&row| views.bool(*column as usize, row as usize) == Some(true))
            }
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
