//! Interval joins: the time bound and the rest of a join's condition.
//!
//! `a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '1' MINUTE AND a.ts + INTERVAL '2'
//! MINUTE` (or the same in `WHERE` over `FROM a, b`) reaches the lowering as a DataFusion
//! join on `a.k = b.k` with a filter. The filter's comparisons between the two sides'
//! event-time attributes (each plus or minus an interval) bound `b.ts - a.ts`; what remains
//! is checked on every joined pair.

use datafusion::common::DFSchema;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use sluice_engine::operators::TimeBound;
use sluice_engine::time::Millis;

use crate::window_tvf::interval_millis;

/// Which side's time attribute an expression is, and the interval added to it.
fn time_term(
    expr: &Expr,
    left: (&DFSchema, usize),
    right: (&DFSchema, usize),
) -> Option<(usize, Millis)> {
    match expr {
        Expr::Column(column) => {
            if left.0.index_of_column(column).ok() == Some(left.1)
                && right.0.index_of_column(column).is_err()
            {
                Some((0, 0))
            } else if right.0.index_of_column(column).ok() == Some(right.1) {
                Some((1, 0))
            } else {
                None
            }
        }
        Expr::BinaryExpr(BinaryExpr {
            left: l,
            op,
            right: r,
        }) => {
            let Expr::Literal(value, _) = r.as_ref() else {
                return None;
            };
            let millis = interval_millis(value)?;
            let (side, offset) = time_term(l, left, right)?;
            match op {
                Operator::Plus => Some((side, offset + millis)),
                Operator::Minus => Some((side, offset - millis)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `right.ts - left.ts` bounds implied by `lhs op rhs`, if it compares the two time terms.
fn bounds_of(
    lhs: &Expr,
    op: Operator,
    rhs: &Expr,
    left: (&DFSchema, usize),
    right: (&DFSchema, usize),
) -> Option<(Option<Millis>, Option<Millis>)> {
    let (lhs_side, a) = time_term(lhs, left, right)?;
    let (rhs_side, b) = time_term(rhs, left, right)?;
    if lhs_side == rhs_side {
        return None;
    }
    // lhs_side.ts + a  op  rhs_side.ts + b, as  right.ts - left.ts  op'  c.
    let (op, c) = if lhs_side == 1 {
        // R + a op L + b  <=>  R - L op b - a
        (op, b - a)
    } else {
        // L + a op R + b  <=>  R - L op' a - b, op' flipped
        let flipped = match op {
            Operator::Lt => Operator::Gt,
            Operator::LtEq => Operator::GtEq,
            Operator::Gt => Operator::Lt,
            Operator::GtEq => Operator::LtEq,
            other => other,
        };
        (flipped, a - b)
    };
    match op {
        Operator::GtEq => Some((Some(c), None)),
        Operator::Gt => Some((Some(c + 1), None)),
        Operator::LtEq => Some((None, Some(c))),
        Operator::Lt => Some((None, Some(c - 1))),
        Operator::Eq => Some((Some(c), Some(c))),
        _ => None,
    }
}

/// The time bound of `filter` over the two event-time attributes (column `left.1` of the
/// left input, `right.1` of the right), and the conjuncts that remain; `None` unless it
/// bounds the distance both ways.
pub fn split_time_bound(
    filter: Option<&Expr>,
    left: (&DFSchema, usize),
    right: (&DFSchema, usize),
) -> Option<(TimeBound, Option<Expr>)> {
    let mut lower: Option<Millis> = None;
    let mut upper: Option<Millis> = None;
    let mut rest = Vec::new();
    let conjuncts = filter.map(split_conjunction).unwrap_or_default();
    for conjunct in conjuncts {
        let found = match conjunct {
            Expr::BinaryExpr(BinaryExpr {
                left: l,
                op,
                right: r,
            }) => bounds_of(l, *op, r, left, right).map(|b| vec![b]),
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => bounds_of(expr, Operator::GtEq, low, left, right)
                .zip(bounds_of(expr, Operator::LtEq, high, left, right))
                .map(|(a, b)| vec![a, b]),
            _ => None,
        };
        match found {
            Some(found) => {
                for (low, high) in found {
                    if let Some(low) = low {
                        lower = Some(lower.map_or(low, |l| l.max(low)));
                    }
                    if let Some(high) = high {
                        upper = Some(upper.map_or(high, |u| u.min(high)));
                    }
                }
            }
            None => rest.push(conjunct.clone()),
        }
    }
    Some((
        TimeBound {
            lower: lower?,
            upper: upper?,
        },
        conjunction(rest),
    ))
}
