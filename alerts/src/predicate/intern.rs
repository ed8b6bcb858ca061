//! String interning: the strings alerts compare string columns with for equality, each
//! numbered once (its symbol), so that rows are compared by number.

use datafusion::arrow::array::Array;

use super::ir::{Compare, Cond, Family, Lit};
use super::views::{NO_SYMBOL, NULL_SYMBOL, Views};

/// The strings alerts compare string columns with for equality, numbered: rows are
/// compared by number, once each string is looked up per row.
#[derive(Default)]
pub struct Symbols {
    numbers: datafusion::common::HashMap<Box<str>, u32>,
    /// The strings, by number.
    texts: Vec<Box<str>>,
}

impl Symbols {
    fn number(&mut self, text: &str) -> u32 {
        if let Some(&number) = self.numbers.get(text) {
            return number;
        }
        let number = self.texts.len() as u32;
        self.numbers.insert(text.into(), number);
        self.texts.push(text.into());
        number
    }

    /// The symbol of `text`, when an alert compares with it.
    pub fn symbol(&self, text: &str) -> Option<u32> {
        self.numbers.get(text).copied()
    }

    fn text(&self, symbol: u32) -> Lit {
        Lit::Str(
            self.texts
                .get(symbol as usize)
                .map_or_else(String::new, |t| t.to_string()),
        )
    }

    /// `cond` as it was before [`Symbols::intern`].
    pub fn restore(&self, cond: Cond) -> Cond {
        cond.map_tests(&mut |test| match test {
            Cond::SymbolEq {
                column,
                symbol,
                negated,
            } => Cond::Compare {
                column,
                op: if negated { Compare::NotEq } else { Compare::Eq },
                lit: self.text(symbol),
            },
            Cond::SymbolIn {
                column,
                symbols,
                negated,
            } => Cond::In {
                column,
                list: symbols.into_iter().map(|s| self.text(s)).collect(),
                negated,
            },
            other => other,
        })
    }

    /// `cond` with its string equalities and lists compared by symbol.
    pub fn intern(&mut self, cond: Cond) -> Cond {
        cond.map_tests(&mut |test| match test {
            Cond::Compare {
                column,
                op: op @ (Compare::Eq | Compare::NotEq),
                lit: Lit::Str(text),
            } if column.family == Family::Str => Cond::SymbolEq {
                column,
                symbol: self.number(&text),
                negated: op == Compare::NotEq,
            },
            Cond::In {
                column,
                list,
                negated,
            } if column.family == Family::Str
                && list.iter().all(|lit| matches!(lit, Lit::Str(_))) =>
            {
                let symbols = list
                    .iter()
                    .filter_map(|lit| match lit {
                        Lit::Str(text) => Some(self.number(text)),
                        _ => None,
                    })
                    .collect();
                Cond::SymbolIn {
                    column,
                    symbols,
                    negated,
                }
            }
            other => other,
        })
    }

    /// Gives `views` the symbols of the string columns in `columns`.
    pub fn look_up(&self, views: &mut Views, columns: &[usize]) {
        for &column in columns {
            let Some(Some(strings)) = views.strs.get(column) else {
                continue;
            };
            let numbers = (0..strings.len())
                .map(|row| {
                    if strings.is_null(row) {
                        NULL_SYMBOL
                    } else {
                        self.numbers
                            .get(strings.value(row))
                            .copied()
                            .unwrap_or(NO_SYMBOL)
                    }
                })
                .collect();
            if let Some(slot) = views.symbols.get_mut(column) {
                *slot = Some(numbers);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predicate::ir::ColumnRef;

    #[test]
    fn string_equalities_compare_by_symbol_and_come_back_as_written() {
        let column = ColumnRef {
            column: 0,
            family: Family::Str,
        };
        let cond = Cond::And(vec![
            Cond::Compare {
                column,
                op: Compare::NotEq,
                lit: Lit::Str("Seoul".into()),
            },
            Cond::In {
                column,
                list: vec![Lit::Str("Busan".into()), Lit::Str("Seoul".into())],
                negated: false,
            },
        ]);
        let mut symbols = Symbols::default();
        let interned = symbols.intern(cond.clone());
        assert!(matches!(
            &interned,
            Cond::And(parts) if matches!(
                parts.as_slice(),
                [
                    Cond::SymbolEq { symbol: 0, negated: true, .. },
                    Cond::SymbolIn { symbols, negated: false, .. },
                ] if symbols == &[1, 0]
            )
        ));
        assert_eq!(
            format!("{:?}", symbols.restore(interned)),
            format!("{cond:?}")
        );
    }
}
