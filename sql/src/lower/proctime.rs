//! Processing-time attributes: whether a column of a plan is a `PROCTIME()` column, one a
//! stream declares (`seen AS PROCTIME()`) or a query computes, passed through projections,
//! filters and aliases. `ORDER BY` such a column means arrival order.

use datafusion::logical_expr::{Expr, LogicalPlan};
use sluice_engine::Catalog;
use sluice_engine::catalog::ColumnSource;

/// Whether column `index` of `plan`'s output is a processing-time attribute.
pub(super) fn is_proctime(plan: &LogicalPlan, index: usize, catalog: &Catalog) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let column = match &scan.projection {
                Some(columns) => columns.get(index).copied(),
                None => Some(index),
            };
            let stream = catalog.get(scan.table_name.table());
            match (stream, column) {
                (Some(stream), Some(column)) => match stream.layout.get(column) {
                    Some(ColumnSource::Computed(computed)) => is_proctime_call_text(&computed.sql),
                    _ => false,
                },
                _ => false,
            }
        }
        LogicalPlan::Projection(projection) => match projection.expr.get(index) {
            Some(expression) => passes_proctime(expression, &projection.input, catalog),
            None => false,
        },
        LogicalPlan::Filter(filter) => is_proctime(&filter.input, index, catalog),
        LogicalPlan::SubqueryAlias(alias) => is_proctime(&alias.input, index, catalog),
        _ => false,
    }
}

/// Whether `expression`, over `input`, is a processing-time attribute: `PROCTIME()` itself or
/// such a column of `input`, possibly renamed.
fn passes_proctime(expression: &Expr, input: &LogicalPlan, catalog: &Catalog) -> bool {
    match expression {
        Expr::Alias(alias) => passes_proctime(&alias.expr, input, catalog),
        Expr::Column(column) => input
            .schema()
            .index_of_column(column)
            .is_ok_and(|index| is_proctime(input, index, catalog)),
        Expr::ScalarFunction(call) => call.func.name() == "proctime" && call.args.is_empty(),
        _ => false,
    }
}

/// Whether a computed column's SQL is `PROCTIME()`.
fn is_proctime_call_text(sql: &str) -> bool {
    let compact: String = sql.chars().filter(|c| !c.is_whitespace()).collect();
    compact.eq_ignore_ascii_case("PROCTIME()")
}
