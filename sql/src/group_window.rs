//! Flink's legacy group windows, as window table functions.
//!
//! `SELECT TUMBLE_START(ts, INTERVAL '1' HOUR), k, COUNT(*) FROM t GROUP BY TUMBLE(ts,
//! INTERVAL '1' HOUR), k` becomes `SELECT window_start, k, COUNT(*) FROM TABLE(TUMBLE(TABLE t,
//! DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY window_start, window_end, k`. The same holds
//! for `HOP(ts, slide, size)` and `SESSION(ts, gap)`: `*_START` and `*_END` become the window's
//! bounds and `*_ROWTIME` its last millisecond. The `FROM` clause must name one table or view.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, ObjectName,
    Query, SetExpr, TableFactor, VisitMut, VisitorMut, visit_expressions_mut,
};
use datafusion::sql::sqlparser::parser::Parser;

use crate::dialect::{SluiceDialect, TABLE_ARGUMENT};
use crate::{Result, SqlError};

const GROUP_WINDOWS: [&str; 3] = ["tumble", "hop", "session"];

/// Rewrites every `SELECT` grouped by a legacy group window in `statement`.
pub fn rewrite_group_windows(statement: &mut ast::Statement) -> Result<()> {
    match statement.visit(&mut Rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
        if let SetExpr::Select(select) = query.body.as_mut()
            && let Err(error) = rewrite_select(select)
        {
            return ControlFlow::Break(error);
        }
        ControlFlow::Continue(())
    }
}

/// The name of `expr` if it is a call, lowercased.
fn call_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Function(function) => Some(function.name.to_string().to_ascii_lowercase()),
        _ => None,
    }
}

fn arguments(expr: &Expr) -> Vec<Expr> {
    let Expr::Function(function) = expr else {
        return Vec::new();
    };
    let FunctionArguments::List(list) = &function.args else {
        return Vec::new();
    };
    list.args
        .iter()
        .filter_map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr.clone()),
            _ => None,
        })
        .collect()
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn rewrite_select(select: &mut ast::Select) -> Result<()> {
    let GroupByExpr::Expressions(keys, _) = &mut select.group_by else {
        return Ok(());
    };
    let Some(position) = keys
        .iter()
        .position(|key| call_name(key).is_some_and(|name| GROUP_WINDOWS.contains(&name.as_str())))
    else {
        return Ok(());
    };
    let window = keys.remove(position);
    let kind = call_name(&window).unwrap_or_default();
    let usage = || {
        SqlError::Invalid(format!(
            "GROUP BY {}(time_column, {}) expects these arguments",
            kind.to_uppercase(),
            match kind.as_str() {
                "hop" => "slide, size",
                "session" => "gap",
                _ => "size",
            }
        ))
    };
    let mut args = arguments(&window);
    let wanted = match kind.as_str() {
        "hop" => 3,
        _ => 2,
    };
    if args.len() != wanted {
        return Err(usage());
    }
    let time = match args.remove(0) {
        Expr::Identifier(ident) => ident,
        Expr::CompoundIdentifier(mut parts) => parts.pop().ok_or_else(usage)?,
        _ => return Err(usage()),
    };

    let [from] = select.from.as_mut_slice() else {
        return Err(group_window_source());
    };
    if !from.joins.is_empty() {
        return Err(group_window_source());
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &mut from.relation
    else {
        return Err(group_window_source());
    };
    let table = match name.0.as_slice() {
        [part] => part.as_ident().cloned().ok_or_else(group_window_source)?,
        _ => return Err(group_window_source()),
    };
    let mut tvf_args = vec![
        call(TABLE_ARGUMENT, vec![Expr::Identifier(table)]),
        call("DESCRIPTOR", vec![Expr::Identifier(time)]),
    ];
    tvf_args.extend(args);
    from.relation = TableFactor::TableFunction {
        expr: call(&kind.to_uppercase(), tvf_args),
        alias: alias.take(),
    };
    keys.insert(position, Expr::Identifier(Ident::new("window_end")));
    keys.insert(position, Expr::Identifier(Ident::new("window_start")));

    let rowtime = Parser::new(&SluiceDialect)
        .try_with_sql("window_end - INTERVAL '0.001' SECOND")
        .and_then(|mut parser| parser.parse_expr())?;
    let mut replace = |expr: &mut Expr| {
        let Some(name) = call_name(expr) else {
            return ControlFlow::Continue(());
        };
        let Some((window_kind, part)) = name.split_once('_') else {
            return ControlFlow::Continue(());
        };
        if !GROUP_WINDOWS.contains(&window_kind) {
            return ControlFlow::Continue(());
        }
        if window_kind != kind {
            return ControlFlow::Break(SqlError::Invalid(format!(
                "{} in a query grouped by {}(...)",
                name.to_uppercase(),
                kind.to_uppercase()
            )));
        }
        *expr = match part {
            "start" => Expr::Identifier(Ident::new("window_start")),
            "end" => Expr::Identifier(Ident::new("window_end")),
            "rowtime" => Expr::Nested(Box::new(rowtime.clone())),
            _ => {
                return ControlFlow::Break(SqlError::Unsupported(name.to_uppercase()));
            }
        };
        ControlFlow::Continue(())
    };
    let mut outcome = visit_expressions_mut(&mut select.projection, &mut replace);
    if let (ControlFlow::Continue(()), Some(having)) = (&outcome, &mut select.having) {
        outcome = visit_expressions_mut(having, &mut replace);
    }
    match outcome {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

fn group_window_source() -> SqlError {
    SqlError::Unsupported(
        "a legacy GROUP BY TUMBLE/HOP/SESSION window over anything but one table or view \
         (use the window table functions)"
            .into(),
    )
}
