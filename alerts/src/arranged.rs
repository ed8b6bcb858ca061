//! A batch's rows laid out in partitions: the rows of each partition one after another,
//! with the columns alerts test gathered in that order, so an alert is tested on all of a
//! partition's rows at once, as a bitmap.
//!
//! A partition is a run of positions whose rows share a hash (of a column's value, of the
//! cell a number falls in, of a string's first bytes; see the index's shapes). Integer
//! columns are gathered as they are, float columns as keys that order as `f64::total_cmp`
//! orders the floats, string columns compared by symbol as symbols (interned strings'
//! numbers), and boolean columns as TRUE or not; integers and floats keep which rows are
//! NULL.

use datafusion::arrow::array::{Array, ArrowPrimitiveType, PrimitiveArray};

use crate::predicate::{ColumnRef, Family, Views};

/// A number column: its number, and whether it is read as floats (as keys in
/// `f64::total_cmp`'s order) rather than integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberColumn {
    pub column: u32,
    pub float: bool,
}

/// A string column and a symbol (an interned string's number) in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSymbol {
    pub column: u32,
    pub symbol: u32,
}

/// A gathered number column: values by position, and when some are NULL, which are valid.
pub struct Numbers {
    pub values: Vec<i64>,
    pub valid: Option<Vec<bool>>,
}

impl Numbers {
    /// The values of `array` at `rows`, each made a key by `key`.
    fn gather<T: ArrowPrimitiveType>(
        array: &PrimitiveArray<T>,
        rows: &[u32],
        key: impl Fn(T::Native) -> i64,
    ) -> Numbers {
        let values = array.values();
        Numbers {
            values: rows.iter().map(|&r| key(values[r as usize])).collect(),
            valid: (array.null_count() > 0)
                .then(|| rows.iter().map(|&r| array.is_valid(r as usize)).collect()),
        }
    }
}

/// A partition: the rows' shared hash and its positions, and when all its rows have one
/// symbol in the column hashed, that column and the symbol.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub hash: u64,
    pub start: usize,
    pub end: usize,
    pub same: Option<ColumnSymbol>,
}

/// A batch's rows in partition order, with the tested columns gathered.
pub struct Arranged {
    /// The batch row at each position.
    pub rows: Vec<u32>,
    pub parts: Vec<Part>,
    /// By column: integers, float keys, symbols, and whether a boolean is TRUE.
    ints: Vec<Option<Numbers>>,
    floats: Vec<Option<Numbers>>,
    symbols: Vec<Option<Vec<u32>>>,
    truths: Vec<Option<Vec<bool>>>,
    /// The number column each partition's rows are in order of.
    ordered_by: Option<NumberColumn>,
}

/// `value` as a key that orders as [`f64::total_cmp`] orders floats.
pub fn total_key(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

impl Arranged {
    /// The rows with a hash (given by `hash` per row), grouped by it, in order of hash,
    /// then of the value of number column `order` when given (NULLs last), then of row,
    /// with the columns in `used` gathered; `hashed` is the string column the hash is of,
    /// when it is one compared by symbol.
    pub fn by_hash(
        views: &Views,
        rows: usize,
        used: &[ColumnRef],
        hash: impl Fn(usize) -> Option<u64>,
        hashed: Option<usize>,
        order: Option<NumberColumn>,
    ) -> Arranged {
        let value = |row: usize| match order {
            Some(NumberColumn {
                column,
                float: false,
            }) => views.int(column as usize, row).unwrap_or(i64::MAX),
            Some(NumberColumn {
                column,
                float: true,
            }) => views
                .float(column as usize, row)
                .map_or(i64::MAX, total_key),
            None => 0,
        };
        let mut keyed: Vec<(u64, i64, u32)> = (0..rows)
            .filter_map(|row| Some((hash(row)?, value(row), row as u32)))
            .collect();
        keyed.sort_unstable();
        let mut parts: Vec<Part> = Vec::new();
        for (at, (hash, _, _)) in keyed.iter().enumerate() {
            match parts.last_mut() {
                Some(part) if part.hash == *hash => part.end = at + 1,
                _ => parts.push(Part {
                    hash: *hash,
                    start: at,
                    end: at + 1,
                    same: None,
                }),
            }
        }
        let positions = keyed.into_iter().map(|(_, _, row)| row).collect();
        let mut arranged = Arranged::gathered(views, positions, parts, used);
        arranged.ordered_by = order;
        if let Some(column) = hashed
            && let Some(Some(symbols)) = arranged.symbols.get(column)
        {
            for part in &mut arranged.parts {
                let mut all = symbols.get(part.start..part.end).unwrap_or_default().iter();
                if let Some(&first) = all.next()
                    && all.all(|s| *s == first)
                {
                    part.same = Some(ColumnSymbol {
                        column: column as u32,
                        symbol: first,
                    });
                }
            }
        }
        arranged
    }

    /// All rows in order, in one partition (hash 0) or, when `alone`, each in its own.
    pub fn whole(views: &Views, rows: usize, used: &[ColumnRef], alone: bool) -> Arranged {
        let parts = if alone {
            (0..rows)
                .map(|at| Part {
                    hash: 0,
                    start: at,
                    end: at + 1,
                    same: None,
                })
                .collect()
        } else {
            vec![Part {
                hash: 0,
                start: 0,
                end: rows,
                same: None,
            }]
        };
        Arranged::gathered(views, (0..rows as u32).collect(), parts, used)
    }

    fn gathered(views: &Views, rows: Vec<u32>, parts: Vec<Part>, used: &[ColumnRef]) -> Arranged {
        let width = used.iter().map(|c| c.column + 1).max().unwrap_or(0);
        let mut arranged = Arranged {
            rows,
            parts,
            ints: (0..width).map(|_| None).collect(),
            floats: (0..width).map(|_| None).collect(),
            symbols: vec![None; width],
            truths: vec![None; width],
            ordered_by: None,
        };
        let rows = &arranged.rows;
        for column in used {
            let at = column.column;
            match column.family {
                Family::Int => {
                    arranged.ints[at] =
                        views.int_array(at).map(|a| Numbers::gather(a, rows, |v| v));
                }
                Family::Float => {
                    arranged.floats[at] = views
                        .float_array(at)
                        .map(|a| Numbers::gather(a, rows, total_key));
                }
                Family::Str => {
                    if let Some(symbols) = views.symbols_of(at) {
                        arranged.symbols[at] =
                            Some(rows.iter().map(|&r| symbols[r as usize]).collect());
                    }
                }
                Family::Bool => {
                    arranged.truths[at] = Some(
                        rows.iter()
                            .map(|&r| views.bool(at, r as usize) == Some(true))
                            .collect(),
                    );
                }
            }
        }
        arranged
    }

    pub fn ints(&self, column: u32) -> Option<&Numbers> {
        self.ints.get(column as usize)?.as_ref()
    }

    pub fn floats(&self, column: u32) -> Option<&Numbers> {
        self.floats.get(column as usize)?.as_ref()
    }

    pub fn symbols(&self, column: u32) -> Option<&[u32]> {
        self.symbols.get(column as usize)?.as_deref()
    }

    /// Number column `column`, gathered.
    fn numbers(&self, NumberColumn { column, float }: NumberColumn) -> Option<&Numbers> {
        match float {
            true => self.floats(column),
            false => self.ints(column),
        }
    }

    /// The values of number column `column` over `part`, when the rows are in their order
    /// and none is NULL.
    pub fn ordered(&self, column: NumberColumn, part: Part) -> Option<&[i64]> {
        if self.ordered_by != Some(column) {
            return None;
        }
        let numbers = self.numbers(column)?;
        if numbers.valid.is_some() {
            return None;
        }
        numbers.values.get(part.start..part.end)
    }

    /// The least and the greatest value of a number column over the rows of `part` where
    /// it is not NULL (greatest below least when there are none).
    pub fn extent(&self, column: NumberColumn, part: Part) -> Option<(i64, i64)> {
        let numbers = self.numbers(column)?;
        let values = numbers.values.get(part.start..part.end)?;
        let mut extent = (i64::MAX, i64::MIN);
        match numbers
            .valid
            .as_ref()
            .and_then(|v| v.get(part.start..part.end))
        {
            Some(valid) => {
                for (&value, _) in values.iter().zip(valid).filter(|(_, valid)| **valid) {
                    extent = (extent.0.min(value), extent.1.max(value));
                }
            }
            None => {
                for &value in values {
                    extent = (extent.0.min(value), extent.1.max(value));
                }
            }
        }
        Some(extent)
    }

    pub fn truths(&self, column: u32) -> Option<&[bool]> {
        self.truths.get(column as usize)?.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_keys_order_as_total_cmp() {
        let values = [
            f64::NEG_INFINITY,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.0,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in values {
            for b in values {
                assert_eq!(total_key(a).cmp(&total_key(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }
}
