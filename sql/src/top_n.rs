//! Window Top-N: `ROW_NUMBER()`, `RANK()` or `DENSE_RANK()` `OVER (PARTITION BY window_start,
//! window_end ...)`, and the limit a `WHERE rownum <= N` above it sets.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, Window, WindowFunctionDefinition};
use datafusion::physical_expr::PhysicalExpr;
use sluice_engine::operators::{OrderKey, Ranking};

use crate::{Result, SqlError};

/// The ranking function of `expression`, if it is one.
fn ranking(expression: &Expr) -> Option<(Ranking, &WindowFunctionParams)> {
    let mut inner = expression;
    while let Expr::Alias(alias) = inner {
        inner = &alias.expr;
    }
    let Expr::WindowFunction(window) = inner else {
        return None;
    };
    let WindowFunction { fun, params } = window.as_ref();
    let WindowFunctionDefinition::WindowUDF(udf) = fun else {
        return None;
    };
    let ranking = match udf.name() {
        "row_number" => Ranking::RowNumber,
        "rank" => Ranking::Rank,
        "dense_rank" => Ranking::DenseRank,
        _ => return None,
    };
    Some((ranking, params))
}

/// Whether `window` is one ranking function (a Top-N candidate).
pub fn is_top_n(window: &Window) -> bool {
    matches!(window.window_expr.as_slice(), [expression] if ranking(expression).is_some())
}

/// The `PARTITION BY` of a Top-N window node.
pub fn top_n_partition(window: &Window) -> &[Expr] {
    match window.window_expr.first().and_then(ranking) {
        Some((_, params)) => &params.partition_by,
        None => &[],
    }
}

/// The partitioning, ordering and ranking of a Top-N window node.
pub struct TopNPlan {
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub order_by: Vec<OrderKey>,
    pub ranking: Ranking,
}

/// Translates a Top-N window node.
pub fn top_n_plan(window: &Window, state: &SessionState) -> Result<TopNPlan> {
    let input_schema: &DFSchema = window.input.schema();
    let Some((ranking, params)) = window.window_expr.first().and_then(ranking) else {
        return Err(SqlError::Unsupported(
            "this window function over a stream".into(),
        ));
    };
    let partition_by = params
        .partition_by
        .iter()
        .map(|e| state.create_physical_expr(e.clone(), input_schema))
        .collect::<Result<Vec<_>, _>>()?;
    let order_by = params
        .order_by
        .iter()
        .map(|sort| {
            Ok(OrderKey {
                expression: state.create_physical_expr(sort.expr.clone(), input_schema)?,
                options: SortOptions {
                    descending: !sort.asc,
                    nulls_first: sort.nulls_first,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TopNPlan {
        partition_by,
        order_by,
        ranking,
    })
}

/// The N of a `rank <= N`, `rank < N + 1` or `rank = 1` conjunct of `predicate` over the
/// rank column of Top-N window node `window`.
pub fn rank_limit(predicate: &Expr, window: &Window) -> Option<usize> {
    let rank_column = window.schema.fields().len() - 1;
    let is_rank = |expr: &Expr| {
        let mut expr = expr;
        while let Expr::Cast(cast) = expr {
            expr = &cast.expr;
        }
        match expr {
            Expr::Column(column) => window.schema.index_of_column(column).ok() == Some(rank_column),
            _ => false,
        }
    };
    let literal = |expr: &Expr| match expr {
        Expr::Literal(value, _) => value.cast_to(&DataType::Int64).ok().and_then(|v| match v {
            ScalarValue::Int64(Some(n)) => usize::try_from(n).ok(),
            _ => None,
        }),
        _ => None,
    };
    split_conjunction(predicate)
        .into_iter()
        .filter_map(|conjunct| match conjunct {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_rank(left) => {
                let n = literal(right)?;
                match op {
                    Operator::LtEq => Some(n),
                    Operator::Lt => Some(n.saturating_sub(1)),
                    Operator::Eq if n == 1 => Some(1),
                    _ => None,
                }
            }
            _ => None,
        })
        .min()
}
