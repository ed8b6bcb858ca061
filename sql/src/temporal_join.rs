//! Temporal joins: `s JOIN t FOR SYSTEM_TIME AS OF s.ts ON s.k = t.k`.
//!
//! DataFusion plans no table versions, so before planning the `FOR SYSTEM_TIME AS OF` clause
//! is taken off the table and its time expression moved into the join condition as
//! `__sluice_as_of(s.ts, t.k, t.time)`: a marker that names both sides, so the optimizer
//! keeps it in the join's filter, and keeps the time columns (the probe time, and the
//! table's event-time attribute which orders its versions) in the sides' rows. The lowering
//! finds the marker, takes it out, and builds a temporal join.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    Ident, JoinConstraint, JoinOperator, ObjectName, Query, SetExpr, TableFactor, TableVersion,
    VisitMut, VisitorMut,
};

use crate::{Result, SqlError};

/// The name of the marker call.
pub const AS_OF_MARKER: &str = "__sluice_as_of";

/// Moves every `FOR SYSTEM_TIME AS OF` of `statement` into its join's condition;
/// `event_time_of` names a table's event-time column.
pub fn rewrite_temporal_joins(
    statement: &mut ast::Statement,
    event_time_of: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    match statement.visit(&mut Rewriter { event_time_of }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

struct Rewriter<'a> {
    event_time_of: &'a dyn Fn(&str) -> Option<String>,
}

impl VisitorMut for Rewriter<'_> {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<SqlError> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        for table in &mut select.from {
            if version_of(&mut table.relation).is_some() {
                return ControlFlow::Break(SqlError::Unsupported(
                    "FOR SYSTEM_TIME AS OF on the first table of a FROM: the versioned \
                     table is joined to a stream (s JOIN t FOR SYSTEM_TIME AS OF s.ts ON ...)"
                        .into(),
                ));
            }
            for join in &mut table.joins {
                let Some(version) = version_of(&mut join.relation) else {
                    continue;
                };
                let table_time = (self.event_time_of)(&version.table).map(|column| {
                    ast::Expr::CompoundIdentifier(vec![
                        Ident::new(version.qualifier.clone()),
                        Ident::new(column),
                    ])
                });
                if let Err(error) = mark(&mut join.join_operator, version, table_time) {
                    return ControlFlow::Break(error);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// A table joined `FOR SYSTEM_TIME AS OF` a time.
struct Version {
    table: String,
    /// The name its columns are qualified by.
    qualifier: String,
    time: ast::Expr,
}

/// Takes the `FOR SYSTEM_TIME AS OF` time off a table.
fn version_of(relation: &mut TableFactor) -> Option<Version> {
    let TableFactor::Table {
        name,
        alias,
        version,
        ..
    } = relation
    else {
        return None;
    };
    let Some(TableVersion::ForSystemTimeAsOf(time)) = version.take() else {
        return None;
    };
    let table = name.0.last()?.as_ident()?.value.clone();
    let qualifier = match alias {
        Some(alias) => alias.name.value.clone(),
        None => table.clone(),
    };
    Some(Version {
        table,
        qualifier,
        time,
    })
}

/// Adds the marker for `version` to the condition of its join.
fn mark(
    operator: &mut JoinOperator,
    version: Version,
    table_time: Option<ast::Expr>,
) -> Result<()> {
    let qualifier = version.qualifier.as_str();
    let constraint = match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c) => c,
        _ => {
            return Err(SqlError::Unsupported(
                "temporal joins other than INNER and LEFT".into(),
            ));
        }
    };
    let JoinConstraint::On(condition) = constraint else {
        return Err(SqlError::Invalid(
            "a temporal join needs an ON condition on the table's key".into(),
        ));
    };
    let Some(table_column) = column_of(condition, qualifier) else {
        return Err(SqlError::Invalid(format!(
            "a temporal join needs an ON condition on the key of '{qualifier}'"
        )));
    };
    let marker = ast::Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(AS_OF_MARKER)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: [Some(version.time), Some(table_column), table_time]
                .into_iter()
                .flatten()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    });
    let original = std::mem::replace(condition, ast::Expr::Value(ast::Value::Null.into()));
    *condition = ast::Expr::BinaryOp {
        left: Box::new(ast::Expr::Nested(Box::new(original))),
        op: BinaryOperator::And,
        right: Box::new(marker),
    };
    Ok(())
}

/// A column of `qualifier` that `condition` reads.
fn column_of(condition: &ast::Expr, qualifier: &str) -> Option<ast::Expr> {
    let mut found = None;
    let _ = ast::visit_expressions(condition, |expr| {
        if let ast::Expr::CompoundIdentifier(parts) = expr
            && parts.len() == 2
            && parts[0].value.eq_ignore_ascii_case(qualifier)
        {
            found = Some(expr.clone());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// Takes the marker out of a join's filter: the probe time expression and the rest.
pub fn take_marker(filter: Option<&Expr>) -> Option<(Expr, Option<Expr>)> {
    let conjuncts = split_conjunction(filter?);
    let position = conjuncts.iter().position(|e| is_marker(e))?;
    let Expr::ScalarFunction(ScalarFunction { args, .. }) = conjuncts[position] else {
        return None;
    };
    let time = args.first()?.clone();
    let rest: Vec<Expr> = conjuncts
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != position)
        .map(|(_, e)| (*e).clone())
        .collect();
    Some((time, conjunction(rest)))
}

fn is_marker(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.func.name() == AS_OF_MARKER)
}

/// The marker as a function DataFusion can plan: volatile, so it is never folded away, and
/// true wherever it is evaluated.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AsOfMarker {
    signature: Signature,
}

impl AsOfMarker {
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::from(AsOfMarker {
            signature: Signature::variadic_any(Volatility::Volatile),
        }))
    }
}

impl ScalarUDFImpl for AsOfMarker {
    fn name(&self) -> &str {
        AS_OF_MARKER
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
    }
}
