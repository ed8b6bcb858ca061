//! An alert's condition as tests of a partition's rows, as bitmaps: each top-level
//! conjunct a typed test that clears the bits of the rows where it is not TRUE.
//!
//! An alert fires on a row only when its condition is TRUE, and a conjunction is TRUE only
//! when each of its parts is TRUE, so at the top level a NULL may count as FALSE: a
//! comparison of a column with a literal becomes a bound check on the column's values (for
//! floats, on keys in `f64::total_cmp`'s order), an equality of strings a comparison of
//! symbols (interned strings' numbers), an `IN` list or an `OR` of equalities on one column
//! a list of symbols (kept inline when short), a `LIKE 'prefix%'` a prefix check. Anything
//! else (`OR`, `NOT`, residual expressions) is a general conjunct, evaluated under
//! three-valued logic by [`evaluate`](crate::predicate::evaluate), row by row, for the rows
//! the tests left set. Tests read a partition's gathered values ([`Arranged`]).

use crate::Result;
use crate::arranged::{Arranged, ColumnSymbol, NumberColumn, Numbers, Part, total_key};
use crate::predicate::{Compare, Cond, Family, Lit, Views};

/// One conjunct, as a typed test of a row (24 bytes); equal tests of different alerts are
/// equal values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Conjunct {
    /// An integer column within `[low, high]`.
    Int { column: u32, low: i64, high: i64 },
    /// A float column within `[low, high]`, as keys in `f64::total_cmp`'s order (as
    /// [`evaluate`] compares; see [`total_key`]).
    Float { column: u32, low: i64, high: i64 },
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
}

/// An alert's condition as its top-level conjuncts: the typed tests, and the general
/// conjuncts, each in the condition's order.
#[derive(Debug, Default)]
pub struct Split {
    pub tests: Vec<Conjunct>,
    pub generals: Vec<Cond>,
}

/// A conjunct that bounds a numeric column: where it is among an alert's conjuncts, the
/// column, and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub at: usize,
    pub column: NumberColumn,
    pub low: i64,
    pub high: i64,
}

/// The first of `conjuncts` that bounds a numeric column (`column`, when given).
pub fn bounds(conjuncts: &[Conjunct], column: Option<NumberColumn>) -> Option<Bounds> {
    conjuncts.iter().enumerate().find_map(|(at, conjunct)| {
        let (on, low, high) = match conjunct {
            Conjunct::Int { column, low, high } => (
                NumberColumn {
                    column: *column,
                    float: false,
                },
                *low,
                *high,
            ),
            Conjunct::Float { column, low, high } => (
                NumberColumn {
                    column: *column,
                    float: true,
                },
                *low,
                *high,
            ),
            _ => return None,
        };
        column.is_none_or(|wanted| wanted == on).then_some(Bounds {
            at,
            column: on,
            low,
            high,
        })
    })
}

impl Conjunct {
    /// Whether this is a symbol test of column `column` that holds for `symbol`: true of
    /// every row with that symbol in that column.
    pub fn implied_by(&self, column: u32, symbol: u32) -> bool {
        match self {
            Conjunct::Symbol { column: on, .. }
            | Conjunct::FewSymbols { column: on, .. }
            | Conjunct::Symbols { column: on, .. } => {
                *on == column && self.holds_for_symbol(symbol)
            }
            _ => false,
        }
    }

    /// Whether a symbol test holds for `symbol` (false for other tests).
    fn holds_for_symbol(&self, symbol: u32) -> bool {
        match self {
            Conjunct::Symbol { symbol: own, .. } => *own == symbol,
            Conjunct::FewSymbols { symbols, .. } => symbols.contains(&symbol),
            Conjunct::Symbols { symbols, .. } => symbols.contains(&symbol),
            _ => false,
        }
    }
}

/// The most symbols a list is kept inline for.
const FEW_SYMBOLS: usize = 4;

/// The least and the greatest floats in `f64::total_cmp`'s order (NaNs with every payload
/// bit set): the bounds of a float range with no bound on that side.
const LEAST: f64 = f64::from_bits(u64::MAX);
const GREATEST: f64 = f64::from_bits(i64::MAX as u64);

/// The conjuncts of `cond` (its symbols interned).
pub fn split(cond: &Cond) -> Split {
    let mut split = Split::default();
    let parts = match cond {
        Cond::And(parts) => parts.as_slice(),
        other => std::slice::from_ref(other),
    };
    for part in parts {
        match conjunct(part) {
            Some(test) => split.tests.push(test),
            None => split.generals.push(part.clone()),
        }
    }
    split
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

/// A float column between bounds, each included or not.
fn float(column: u32, low: (f64, bool), high: (f64, bool)) -> Conjunct {
    let low = match low {
        (value, true) => Some(total_key(value)),
        (value, false) => total_key(value).checked_add(1),
    };
    let high = match high {
        (value, true) => Some(total_key(value)),
        (value, false) => total_key(value).checked_sub(1),
    };
    match (low, high) {
        (Some(low), Some(high)) => Conjunct::Float { column, low, high },
        // Nothing is above the greatest float or below the least.
        _ => Conjunct::Float {
            column,
            low: i64::MAX,
            high: i64::MIN,
        },
    }
}

/// `cond` as a typed test, when it is one.
fn conjunct(cond: &Cond) -> Option<Conjunct> {
    let test = match cond {
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
                _ => return None,
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
                Compare::NotEq => return None,
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
        Cond::Or(_) => {
            let (column, list) = either_symbol(cond)?;
            symbols(column, &list)
        }
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
        _ => return None,
    };
    Some(test)
}

/// Clears the bits of `words` for which `test` fails on the value at that position of
/// `values` (bit `i` of word `w` is position `64 w + i`). A word with few bits left is
/// tested bit by bit, else all its values are.
fn narrow_by<T: Copy>(words: &mut [u64], values: &[T], test: impl Fn(T) -> bool) {
    for (word, chunk) in words.iter_mut().zip(values.chunks(64)) {
        if *word == 0 {
            continue;
        }
        if (word.count_ones() as usize) * SPARSE < chunk.len() {
            let mut bits = *word;
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if !chunk.get(bit).is_some_and(|value| test(*value)) {
                    *word &= !(1u64 << bit);
                }
            }
        } else {
            let mut bits = 0u64;
            for (bit, value) in chunk.iter().enumerate() {
                bits |= u64::from(test(*value)) << bit;
            }
            *word &= bits;
        }
    }
}

/// A word is tested bit by bit when fewer than one in `SPARSE` of its values are left.
const SPARSE: usize = 4;

/// Clears the bits of `words` (positions of `rows`) for which `test` of the row fails.
fn narrow_rows(words: &mut [u64], rows: &[u32], mut test: impl FnMut(usize) -> bool) {
    for (at, word) in words.iter_mut().enumerate() {
        let mut bits = *word;
        while bits != 0 {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            let Some(&row) = rows.get(at * 64 + bit as usize) else {
                break;
            };
            if !test(row as usize) {
                *word &= !(1u64 << bit);
            }
        }
    }
}

/// Clears the bits of the positions of `part` whose number is NULL or outside
/// `[low, high]`.
fn narrow_numbers(words: &mut [u64], numbers: &Numbers, part: Part, low: i64, high: i64) {
    if let Some(values) = numbers.values.get(part.start..part.end) {
        narrow_by(words, values, |v| (low <= v) & (v <= high));
    }
    if let Some(valid) = numbers
        .valid
        .as_ref()
        .and_then(|v| v.get(part.start..part.end))
    {
        narrow_by(words, valid, |v| v);
    }
}

/// Clears the bits (bit `i` for position `part.start + i` of `arranged`) of the rows where
/// one of `tests` fails; stops when no bit is left.
pub fn narrow<'a>(
    tests: impl IntoIterator<Item = &'a Conjunct>,
    arranged: &Arranged,
    part: Part,
    views: &Views,
    words: &mut [u64],
) {
    let range = part.start..part.end;
    let rows = arranged.rows.get(range.clone()).unwrap_or_default();
    for test in tests {
        match test {
            Conjunct::Int { column, low, high } => match arranged.ints(*column) {
                Some(numbers) => narrow_numbers(words, numbers, part, *low, *high),
                None => words.fill(0),
            },
            Conjunct::Float { column, low, high } => match arranged.floats(*column) {
                Some(numbers) => narrow_numbers(words, numbers, part, *low, *high),
                None => words.fill(0),
            },
            // A partition all of one symbol in the column is passed or cleared at once.
            Conjunct::Symbol { column, .. }
            | Conjunct::FewSymbols { column, .. }
            | Conjunct::Symbols { column, .. }
                if part.same.is_some_and(|same| same.column == *column) =>
            {
                if let Some(ColumnSymbol { symbol, .. }) = part.same
                    && !test.holds_for_symbol(symbol)
                {
                    words.fill(0);
                }
            }
            // NULLs and strings no alert names have symbols no alert uses.
            Conjunct::Symbol { column, symbol } => {
                match arranged.symbols(*column).and_then(|s| s.get(range.clone())) {
                    Some(values) => narrow_by(words, values, |v| v == *symbol),
                    None => words.fill(0),
                }
            }
            Conjunct::FewSymbols { column, symbols } => {
                match arranged.symbols(*column).and_then(|s| s.get(range.clone())) {
                    Some(values) => narrow_by(words, values, |v| {
                        (v == symbols[0])
                            | (v == symbols[1])
                            | (v == symbols[2])
                            | (v == symbols[3])
                    }),
                    None => words.fill(0),
                }
            }
            Conjunct::Symbols { column, symbols } => {
                match arranged.symbols(*column).and_then(|s| s.get(range.clone())) {
                    Some(values) => narrow_by(words, values, |v| symbols.contains(&v)),
                    None => words.fill(0),
                }
            }
            Conjunct::Prefix { column, prefix } => narrow_rows(words, rows, |row| {
                views
                    .str(*column as usize, row)
                    .is_some_and(|value| value.starts_with(&**prefix))
            }),
            Conjunct::Truth { column } => {
                match arranged.truths(*column).and_then(|t| t.get(range.clone())) {
                    Some(values) => narrow_by(words, values, |v| v),
                    None => words.fill(0),
                }
            }
        }
        if words.iter().all(|word| *word == 0) {
            break;
        }
    }
}

/// Clears the bits (as for [`narrow`]) of the rows where one of `generals` is not TRUE, as
/// `general(cond, row)` evaluates it.
pub fn narrow_generals(
    generals: &[Cond],
    arranged: &Arranged,
    part: Part,
    words: &mut [u64],
    general: &mut dyn FnMut(&Cond, usize) -> Result<Option<bool>>,
) -> Result<()> {
    let rows = arranged.rows.get(part.start..part.end).unwrap_or_default();
    for cond in generals {
        let mut failed = None;
        narrow_rows(words, rows, |row| match general(cond, row) {
            Ok(value) => value == Some(true),
            Err(error) => {
                failed.get_or_insert(error);
                false
            }
        });
        if let Some(error) = failed {
            return Err(error);
        }
    }
    Ok(())
}
