//! `OVER` windows over a stream: DataFusion window expressions as [`OverCall`]s.
//!
//! A streaming `OVER` must be ordered by the event-time attribute or a processing-time
//! attribute (arrival order), ascending, and end its
//! frame at the current row: `ROWS BETWEEN n PRECEDING AND CURRENT ROW`, `RANGE BETWEEN
//! INTERVAL '...' PRECEDING AND CURRENT ROW`, or `UNBOUNDED PRECEDING`. Only aggregate
//! functions are supported.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion::logical_expr::{
    Expr, ExprSchemable, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use sluice_engine::operators::{Frame, OverCall};

use crate::window_tvf::interval_millis;
use crate::{Result, SqlError};

/// The partitioning shared by a window node's expressions, and one call per expression.
pub struct OverPlan {
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    pub partition_types: Vec<DataType>,
    pub calls: Vec<OverCall>,
    /// The time attribute the windows are ordered by.
    pub order_by: Expr,
}

/// Translates `window_expr`; `is_time_attribute` says whether an ORDER BY expression is one
/// of the input's time attributes (event or processing time).
pub fn over_plan(
    window_expr: &[Expr],
    input_schema: &DFSchema,
    state: &SessionState,
    is_time_attribute: impl Fn(&Expr) -> bool,
) -> Result<OverPlan> {
    let mut partition: Option<&[Expr]> = None;
    let mut order: Option<&Expr> = None;
    let mut calls = Vec::with_capacity(window_expr.len());
    let arrow_schema = Arc::new(input_schema.as_arrow().clone());
    for expression in window_expr {
        let (name, function) = match expression {
            Expr::Alias(alias) => (alias.name.clone(), alias.expr.as_ref()),
            other => (other.schema_name().to_string(), other),
        };
        let Expr::WindowFunction(window) = function else {
            return Err(SqlError::Unsupported(format!(
                "window expression {function}"
            )));
        };
        let WindowFunction { fun, params } = window.as_ref();
        let WindowFunctionParams {
            args,
            partition_by,
            order_by,
            window_frame,
            filter,
            distinct,
            ..
        } = params;
        let WindowFunctionDefinition::AggregateUDF(aggregate) = fun else {
            return Err(SqlError::Unsupported(format!(
                "{fun} OVER a stream: only aggregate functions can run over a stream window"
            )));
        };
        if filter.is_some() {
            return Err(SqlError::Unsupported("FILTER in an OVER aggregate".into()));
        }
        match partition {
            Some(first) if first != partition_by.as_slice() => {
                return Err(SqlError::Unsupported(
                    "OVER windows with different PARTITION BY in one SELECT".into(),
                ));
            }
            _ => partition = Some(partition_by),
        }
        match order_by.as_slice() {
            [sort] if sort.asc && is_time_attribute(&sort.expr) => match order {
                Some(first) if *first != sort.expr => {
                    return Err(SqlError::Unsupported(
                        "OVER windows with different ORDER BY in one SELECT".into(),
                    ));
                }
                _ => order = Some(&sort.expr),
            },
            _ => {
                return Err(SqlError::Invalid(
                    "an OVER window over a stream must be ORDER BY the event-time attribute \
                     or a PROCTIME() attribute, ascending"
                        .into(),
                ));
            }
        }
        let frame = frame(window_frame)?;
        let arguments = args
            .iter()
            .map(|arg| state.create_physical_expr(arg.clone(), input_schema))
            .collect::<Result<Vec<_>, _>>()?;
        let function = AggregateExprBuilder::new(Arc::clone(aggregate), arguments)
            .schema(Arc::clone(&arrow_schema))
            .alias(name)
            .with_distinct(*distinct)
            .build()?;
        calls.push(OverCall {
            function: Arc::new(function),
            frame,
        });
    }
    let partition_by = partition.unwrap_or_default();
    let Some(order_by) = order.cloned() else {
        return Err(SqlError::Invalid(
            "an OVER window without a window function".into(),
        ));
    };
    Ok(OverPlan {
        order_by,
        partition_types: partition_by
            .iter()
            .map(|e| e.get_type(input_schema))
            .collect::<Result<Vec<_>, _>>()?,
        partition_by: partition_by
            .iter()
            .map(|e| state.create_physical_expr(e.clone(), input_schema))
            .collect::<Result<Vec<_>, _>>()?,
        calls,
    })
}

fn frame(window_frame: &WindowFrame) -> Result<Frame> {
    let unsupported = || {
        SqlError::Unsupported(format!(
            "window frame '{window_frame}' over a stream: frames end at CURRENT ROW and start \
             UNBOUNDED PRECEDING, n PRECEDING (ROWS) or INTERVAL '...' PRECEDING (RANGE)"
        ))
    };
    if !matches!(window_frame.end_bound, WindowFrameBound::CurrentRow) {
        return Err(unsupported());
    }
    let rows = match window_frame.units {
        WindowFrameUnits::Rows => true,
        WindowFrameUnits::Range => false,
        WindowFrameUnits::Groups => return Err(unsupported()),
    };
    match &window_frame.start_bound {
        WindowFrameBound::Preceding(value) if value.is_null() => Ok(Frame::Unbounded { rows }),
        WindowFrameBound::CurrentRow if rows => Ok(Frame::Rows(0)),
        WindowFrameBound::CurrentRow => Ok(Frame::Range(0)),
        WindowFrameBound::Preceding(value) if rows => {
            let preceding = u64::try_from(value.clone()).map_err(|_| unsupported())?;
            Ok(Frame::Rows(
                usize::try_from(preceding).map_err(|_| unsupported())?,
            ))
        }
        WindowFrameBound::Preceding(value) => interval_millis(value)
            .map(Frame::Range)
            .ok_or_else(unsupported),
        WindowFrameBound::Following(_) => Err(unsupported()),
    }
}
