//! `SUM` of integers that fails rather than wraps around. DataFusion adds integer sums with
//! wrapping arithmetic, so a BIGINT sum past 2^63 - 1 comes out negative; the SQL standard
//! wants an error when a result does not fit its type.
//!
//! Each `SUM` of an integer argument, in `GROUP BY` aggregates and in `OVER` windows, is
//! rewritten to add in `DECIMAL(38, 0)` ([`crate::wide_sum`]: 128-bit totals, exact for 2^64
//! rows of the largest BIGINT, so intermediate sums never overflow, however rows come and
//! go), and a projection above it narrows the sum back to the type DataFusion gives `SUM`:
//! BIGINT with `checked_bigint`, which names a sum that does not fit, or BIGINT UNSIGNED (for
//! unsigned arguments) with a cast. A sum that does not fit fails its result row only, and
//! that row goes to the query's error output like any row the query cannot compute. Column
//! names and types are unchanged, and where the query projects the sums anyway (it usually
//! does) the narrowing joins its projection rather than adding one.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::AggregateUDF;
use datafusion::logical_expr::expr::{AggregateFunction, Alias, ScalarFunction, WindowFunction};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, LogicalPlan, Projection, Window, WindowFunctionDefinition, cast,
};

use crate::Result;
use crate::wide_sum::{WIDE, checked_bigint, checked_sum};

/// `plan` with every integer `SUM` checked for overflow.
pub fn checked_sums(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up(|node| match node {
        LogicalPlan::Aggregate(aggregate) => checked_aggregate(aggregate),
        LogicalPlan::Window(window) => checked_window(window),
        LogicalPlan::Projection(projection) => merged(projection),
        other => Ok(Transformed::no(other)),
    })?;
    Ok(rewritten.data)
}

fn checked_aggregate(aggregate: Aggregate) -> datafusion::common::Result<Transformed<LogicalPlan>> {
    let (calls, result_types) = widened_sums(&aggregate.aggr_expr, aggregate.input.schema())?;
    if result_types.iter().all(Option::is_none) {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    let widened = Aggregate::try_new(aggregate.input, aggregate.group_expr, calls)?;
    narrowed(LogicalPlan::Aggregate(widened), &result_types)
}

fn checked_window(window: Window) -> datafusion::common::Result<Transformed<LogicalPlan>> {
    let (calls, result_types) = widened_sums(&window.window_expr, window.input.schema())?;
    if result_types.iter().all(Option::is_none) {
        return Ok(Transformed::no(LogicalPlan::Window(window)));
    }
    let widened = Window::try_new(calls, window.input)?;
    narrowed(LogicalPlan::Window(widened), &result_types)
}

/// `calls` with each integer sum adding in [`WIDE`] under its old name, and for each call
/// the type to cast its result back to, if it was widened.
fn widened_sums(
    calls: &[Expr],
    input: &DFSchema,
) -> datafusion::common::Result<(Vec<Expr>, Vec<Option<DataType>>)> {
    let mut widened = Vec::with_capacity(calls.len());
    let mut result_types = Vec::with_capacity(calls.len());
    for call in calls {
        let (relation, name, function) = match call {
            Expr::Alias(Alias {
                expr,
                relation,
                name,
                ..
            }) => (relation.clone(), name.clone(), expr.as_ref()),
            other => (None, other.schema_name().to_string(), other),
        };
        let Some(wide) = widened_sum(function, input)? else {
            widened.push(call.clone());
            result_types.push(None);
            continue;
        };
        result_types.push(Some(call.get_type(input)?));
        widened.push(wide.alias_qualified(relation, name));
    }
    Ok((widened, result_types))
}

/// `function` adding in [`WIDE`], if it is a `SUM` of an integer argument: the
/// [`checked_sum`] of it, or for `SUM(DISTINCT ...)` the sum of it cast to [`WIDE`].
fn widened_sum(function: &Expr, input: &DFSchema) -> datafusion::common::Result<Option<Expr>> {
    match function {
        Expr::AggregateFunction(call) if call.func.name() == "sum" => {
            let Some((func, args)) =
                widened(&call.func, &call.params.args, call.params.distinct, input)?
            else {
                return Ok(None);
            };
            let mut params = call.params.clone();
            params.args = args;
            Ok(Some(Expr::AggregateFunction(AggregateFunction {
                func,
                params,
            })))
        }
        Expr::WindowFunction(window) => {
            let WindowFunctionDefinition::AggregateUDF(func) = &window.fun else {
                return Ok(None);
            };
            if func.name() != "sum" {
                return Ok(None);
            }
            let Some((func, args)) =
                widened(func, &window.params.args, window.params.distinct, input)?
            else {
                return Ok(None);
            };
            let mut params = window.params.clone();
            params.args = args;
            Ok(Some(Expr::WindowFunction(Box::new(WindowFunction {
                fun: WindowFunctionDefinition::AggregateUDF(func),
                params,
            }))))
        }
        _ => Ok(None),
    }
}

/// The function and arguments of `sum` over `args` adding in [`WIDE`], if its one argument
/// is an integer.
fn widened(
    sum: &Arc<AggregateUDF>,
    args: &[Expr],
    distinct: bool,
    input: &DFSchema,
) -> datafusion::common::Result<Option<(Arc<AggregateUDF>, Vec<Expr>)>> {
    let [argument] = args else {
        return Ok(None);
    };
    let argument_type = argument.get_type(input)?;
    if !argument_type.is_integer() {
        return Ok(None);
    }
    if distinct {
        return Ok(Some((Arc::clone(sum), vec![cast(argument.clone(), WIDE)])));
    }
    let argument = match argument_type {
        DataType::Int64 | DataType::UInt64 => argument.clone(),
        unsigned if unsigned.is_unsigned_integer() => cast(argument.clone(), DataType::UInt64),
        _ => cast(argument.clone(), DataType::Int64),
    };
    Ok(Some((checked_sum(), vec![argument])))
}

/// `plan`, whose last columns are the calls of `result_types`, with each widened sum cast
/// back to its type under its name.
fn narrowed(
    plan: LogicalPlan,
    result_types: &[Option<DataType>],
) -> datafusion::common::Result<Transformed<LogicalPlan>> {
    let schema = Arc::clone(plan.schema());
    let first_call = schema.fields().len() - result_types.len();
    let columns = schema
        .iter()
        .enumerate()
        .map(|(index, (relation, field))| {
            let column = Expr::Column(Column::from((relation, field)));
            let result_type = index
                .checked_sub(first_call)
                .and_then(|call| result_types[call].clone());
            match result_type {
                Some(DataType::Int64) => {
                    Expr::ScalarFunction(ScalarFunction::new_udf(checked_bigint(), vec![column]))
                        .alias_qualified(relation.cloned(), field.name())
                }
                Some(result_type) => {
                    cast(column, result_type).alias_qualified(relation.cloned(), field.name())
                }
                None => column,
            }
        })
        .collect();
    let projection = Projection::try_new(columns, Arc::new(plan))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

/// `projection` over a projection of only columns and casts of columns (as [`narrowed`]
/// makes) as one projection.
fn merged(projection: Projection) -> datafusion::common::Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Projection(below) = projection.input.as_ref() else {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    };
    if !below.expr.iter().all(is_column_or_cast) {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    }
    let below_schema = Arc::clone(&below.schema);
    let mut expressions = Vec::with_capacity(projection.expr.len());
    for (expression, (relation, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        let inlined = expression.clone().transform(|node| match node {
            Expr::Column(column) => {
                let below_expression = below_schema
                    .index_of_column(&column)
                    .map(|index| below.expr[index].clone().unalias());
                match below_expression {
                    Ok(Expr::Column(same)) if same == column => {
                        Ok(Transformed::no(Expr::Column(column)))
                    }
                    Ok(other) => Ok(Transformed::yes(other)),
                    Err(_) => Ok(Transformed::no(Expr::Column(column))),
                }
            }
            other => Ok(Transformed::no(other)),
        })?;
        expressions.push(match inlined.data {
            renamed @ Expr::Alias(_) => renamed,
            other if inlined.transformed => other.alias_qualified(relation.cloned(), field.name()),
            other => other,
        });
    }
    let merged = Projection::try_new(expressions, Arc::clone(&below.input))?;
    Ok(Transformed::yes(LogicalPlan::Projection(merged)))
}

fn is_column_or_cast(expression: &Expr) -> bool {
    match expression.clone().unalias() {
        Expr::Column(_) => true,
        Expr::Cast(cast) => matches!(cast.expr.as_ref(), Expr::Column(_)),
        Expr::ScalarFunction(call) => {
            call.func.name() == "checked_bigint"
                && matches!(call.args.as_slice(), [Expr::Column(_)])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::expr_fn::{count, sum};
    use datafusion::logical_expr::{LogicalPlanBuilder, col, table_scan};

    use super::*;

    fn plan() -> LogicalPlanBuilder {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ]);
        match table_scan(Some("t"), &schema, None) {
            Ok(builder) => builder,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn integer_sums_add_in_decimal_and_keep_their_names_and_types() -> Result<()> {
        let original = plan()
            .aggregate(
                vec![col("k")],
                vec![sum(col("n")), sum(col("x")), count(col("n"))],
            )?
            .build()?;
        let checked = checked_sums(original.clone())?;
        assert_eq!(checked.schema(), original.schema());
        assert_eq!(
            checked.display_indent().to_string(),
            "Projection: t.k, checked_bigint(sum(t.n)) AS sum(t.n), sum(t.x), count(t.n)\
             \n  Aggregate: groupBy=[[t.k]], aggr=[[checked_sum(t.n) AS sum(t.n), \
             sum(t.x), count(t.n)]]\
             \n    TableScan: t"
        );
        Ok(())
    }

    #[test]
    fn the_casts_join_the_projection_above() -> Result<()> {
        let original = plan()
            .aggregate(vec![col("k")], vec![sum(col("n"))])?
            .project(vec![col("sum(t.n)").alias("total"), col("t.k")])?
            .build()?;
        let checked = checked_sums(original.clone())?;
        assert_eq!(checked.schema(), original.schema());
        assert_eq!(
            checked.display_indent().to_string(),
            "Projection: checked_bigint(sum(t.n)) AS total, t.k\
             \n  Aggregate: groupBy=[[t.k]], aggr=[[checked_sum(t.n) AS sum(t.n)]]\
             \n    TableScan: t"
        );
        Ok(())
    }

    #[test]
    fn plans_without_integer_sums_are_left_alone() -> Result<()> {
        let original = plan()
            .aggregate(vec![col("k")], vec![sum(col("x"))])?
            .build()?;
        assert_eq!(checked_sums(original.clone())?, original);
        Ok(())
    }
}
