//! Names of unnamed select items, as Flink (Calcite) gives them: `EXPR$n`, where `n` is the
//! item's position in its select list, from 0 (`SELECT k, price * 2 FROM t` gives the columns
//! `k` and `EXPR$1`). A column reference keeps its column's name, and an item with `AS` its
//! alias. Every `SELECT` in a statement is named so, subqueries and views included, before
//! any of sluice's own rewrites add items of their own. DataFusion would name such a column
//! with the expression's text (`SELECT 1` gives `Int64(1)`), which scripts reading results
//! by column name cannot rely on.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

/// Gives every unnamed select item in `statement` its Flink name.
pub fn name_unnamed_columns(statement: &mut Statement) {
    let _ = statement.visit(&mut Namer);
}

struct Namer;

impl VisitorMut for Namer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        name_in(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn name_in(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for (position, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(expr) = item
                    && !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::with_quote('"', format!("EXPR${position}")),
                    };
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            name_in(left);
            name_in(right);
        }
        // A parenthesised query is visited as a query of its own.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn named(sql: &str) -> Vec<String> {
        Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap_or_default()
            .into_iter()
            .map(|mut statement| {
                name_unnamed_columns(&mut statement);
                statement.to_string()
            })
            .collect()
    }

    #[test]
    fn unnamed_items_are_named_by_position_in_every_select() {
        assert_eq!(
            named(
                "SELECT k, t.v, price * 2, COUNT(*) AS n, 1 FROM t \
                 WHERE x IN (SELECT y + 1 FROM u) UNION ALL SELECT a, b, c, d, e FROM w"
            ),
            vec![
                "SELECT k, t.v, price * 2 AS \"EXPR$2\", COUNT(*) AS n, 1 AS \"EXPR$4\" FROM t \
                 WHERE x IN (SELECT y + 1 AS \"EXPR$0\" FROM u) \
                 UNION ALL SELECT a, b, c, d, e FROM w"
                    .to_string()
            ]
        );
    }
}
