//! Three-valued evaluation: the truth of a condition at one row under SQL's logic of
//! TRUE, FALSE and NULL (unknown).

use std::cmp::Ordering;

use super::ir::Cond;
use super::views::Views;
use crate::Result;

/// The truth of `cond` at `row`; `residual(n)` gives residual `n`'s results for the batch.
pub fn evaluate(
    cond: &Cond,
    views: &Views,
    row: usize,
    residual: &mut dyn FnMut(usize) -> Result<Option<bool>>,
) -> Result<Option<bool>> {
    Ok(match cond {
        Cond::And(parts) => {
            let mut result = Some(true);
            for part in parts {
                match evaluate(part, views, row, residual)? {
                    Some(false) => return Ok(Some(false)),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        Cond::Or(parts) => {
            let mut result = Some(false);
            for part in parts {
                match evaluate(part, views, row, residual)? {
                    Some(true) => return Ok(Some(true)),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
        Cond::Not(inner) => evaluate(inner, views, row, residual)?.map(|b| !b),
        Cond::Const(value) => *value,
        Cond::SymbolEq {
            column,
            symbol,
            negated,
        } => views
            .symbol(column.column, row)
            .map(|value| (value == *symbol) != *negated),
        Cond::SymbolIn {
            column,
            symbols,
            negated,
        } => views
            .symbol(column.column, row)
            .map(|value| symbols.contains(&value) != *negated),
        Cond::Compare { column, op, lit } => views.order(*column, row, lit).map(|o| op.holds(o)),
        Cond::Between {
            column,
            low,
            high,
            negated,
        } => {
            let above = views.order(*column, row, low).map(|o| o != Ordering::Less);
            let below = views
                .order(*column, row, high)
                .map(|o| o != Ordering::Greater);
            let within = match (above, below) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            within.map(|w| w != *negated)
        }
        Cond::In {
            column,
            list,
            negated,
        } => {
            let mut found = Some(false);
            for lit in list {
                match views.order(*column, row, lit) {
                    None => found = None,
                    Some(Ordering::Equal) => {
                        found = Some(true);
                        break;
                    }
                    Some(_) => {}
                }
            }
            found.map(|f| f != *negated)
        }
        Cond::Prefix {
            column,
            prefix,
            negated,
        } => views
            .str(column.column, row)
            .map(|value| value.starts_with(prefix.as_str()) != *negated),
        Cond::IsNull { column, negated } => Some(views.is_null(*column, row) != *negated),
        Cond::Truth(column) => views.bool(column.column, row),
        Cond::Residual(index) => residual(*index)?,
    })
}
