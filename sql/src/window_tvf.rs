//! Flink's window table functions: `TUMBLE`, `HOP`, `CUMULATE`, `SESSION`.
//!
//! `FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))` reaches
//! DataFusion in three steps: the dialect parses `TABLE bid` as an argument
//! ([`crate::dialect`]); [`rewrite_window_tvfs`] turns the `TABLE(...)` factor into the table
//! function call `tumble('bid', 'bidtime', INTERVAL '10' MINUTES)` (arguments by position or
//! by Flink's names `DATA`, `TIMECOL`, `SIZE`, `SLIDE`, `STEP`, `OFFSET`, `GAP`); and
//! [`window_tvf_source`] answers that call with a [`WindowTvfNode`] over the input relation,
//! which [`crate::lower`] turns into the engine's `WindowAssign` operator. `SESSION(TABLE t
//! [PARTITION BY col, ...], DESCRIPTOR(ts), gap)` windows are only known once rows merge, so
//! they can only be aggregated, grouped by their partition columns.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use datafusion::common::{DFSchema, DFSchemaRef, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, LogicalPlanBuilder, TableSource, UserDefinedLogicalNodeCore,
};
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, TableFactor,
    TableFunctionArgs, Value, VisitMut, VisitorMut,
};
use sluice_engine::window::Windows;

use crate::dialect::TABLE_ARGUMENT;
use crate::names::identifier;
use crate::{Result, SqlError};

/// The window table functions, with their parameters in positional order.
const FUNCTIONS: [(&str, &[&str]); 4] = [
    ("tumble", &["data", "timecol", "size", "offset"]),
    ("hop", &["data", "timecol", "slide", "size", "offset"]),
    ("cumulate", &["data", "timecol", "step", "size", "offset"]),
    ("session", &["data", "timecol", "gap"]),
];

/// Rewrites every window table function in `statement` into a table function call.
pub fn rewrite_window_tvfs(statement: &mut ast::Statement) -> Result<()> {
    let mut rewriter = Rewriter;
    match statement.visit(&mut rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(error) => Err(error),
    }
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = SqlError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::TableFunction {
            expr: ast::Expr::Function(function),
            alias,
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let name = function.name.to_string().to_ascii_lowercase();
        let Some((_, parameters)) = FUNCTIONS.iter().find(|(n, _)| *n == name) else {
            return ControlFlow::Continue(());
        };
        match table_function_args(&name, parameters, &function.args) {
            Ok(args) => {
                *factor = TableFactor::Table {
                    name: ObjectName::from(vec![Ident::new(name)]),
                    alias: alias.take(),
                    args: Some(TableFunctionArgs {
                        args,
                        settings: None,
                    }),
                    with_hints: vec![],
                    version: None,
                    with_ordinality: false,
                    partitions: vec![],
                    json_path: None,
                    sample: None,
                    index_hints: vec![],
                };
                ControlFlow::Continue(())
            }
            Err(error) => ControlFlow::Break(error),
        }
    }
}

/// The call's arguments in positional order, the table and column as string literals.
fn table_function_args(
    name: &str,
    parameters: &[&str],
    arguments: &FunctionArguments,
) -> Result<Vec<FunctionArg>> {
    let usage = || {
        SqlError::Invalid(format!(
            "{}(TABLE t, DESCRIPTOR(time_column), {}) expects these arguments",
            name.to_uppercase(),
            parameters[2..].join(", ").to_uppercase()
        ))
    };
    let FunctionArguments::List(list) = arguments else {
        return Err(usage());
    };
    let mut slots: Vec<Option<ast::Expr>> = vec![None; parameters.len()];
    for (position, argument) in list.args.iter().enumerate() {
        let (slot, expr) = match argument {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => (position, expr),
            FunctionArg::Named {
                name: parameter,
                arg: FunctionArgExpr::Expr(expr),
                ..
            } => {
                let wanted = parameter.value.to_ascii_lowercase();
                let slot = parameters
                    .iter()
                    .position(|p| *p == wanted)
                    .ok_or_else(|| {
                        SqlError::Invalid(format!(
                            "{} has no parameter {}",
                            name.to_uppercase(),
                            parameter.value
                        ))
                    })?;
                (slot, expr)
            }
            _ => return Err(usage()),
        };
        match slots.get_mut(slot) {
            Some(place @ None) => *place = Some(expr.clone()),
            _ => return Err(usage()),
        }
    }
    // Every parameter but a trailing `offset` is required.
    let required = parameters.len() - usize::from(parameters.last() == Some(&"offset"));
    if slots[..required].iter().any(Option::is_none) {
        return Err(usage());
    }
    let mut table = wrapped_names(slots[0].as_ref(), TABLE_ARGUMENT)
        .filter(|names| !names.is_empty())
        .ok_or_else(|| {
            SqlError::Invalid(format!(
                "{}: the first argument must be TABLE name",
                name.to_uppercase()
            ))
        })?;
    let partition = table.split_off(1);
    if !partition.is_empty() && name != "session" {
        return Err(SqlError::Invalid(format!(
            "{}: only SESSION takes PARTITION BY",
            name.to_uppercase()
        )));
    }
    let column = wrapped_names(slots[1].as_ref(), "DESCRIPTOR")
        .filter(|names| names.len() == 1)
        .ok_or_else(|| {
            SqlError::Invalid(format!(
                "{}: the second argument must be DESCRIPTOR(time_column)",
                name.to_uppercase()
            ))
        })?;
    let mut args: Vec<FunctionArg> = table
        .into_iter()
        .chain(column)
        .map(string_argument)
        .collect();
    args.extend(
        slots[2..]
            .iter()
            .flatten()
            .map(|expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(expr.clone()))),
    );
    // PARTITION BY columns come last, as names.
    args.extend(partition.into_iter().map(string_argument));
    Ok(args)
}

/// The names in `WRAPPER(name, ...)`.
fn wrapped_names(expr: Option<&ast::Expr>, wrapper: &str) -> Option<Vec<String>> {
    let ast::Expr::Function(function) = expr? else {
        return None;
    };
    if !function.name.to_string().eq_ignore_ascii_case(wrapper) {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Identifier(ident))) => {
                Some(identifier(ident))
            }
            _ => None,
        })
        .collect()
}

fn string_argument(text: String) -> FunctionArg {
    FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::value(
        Value::SingleQuotedString(text),
    )))
}

/// Answers the table function call `name(args)` if it is a window table function; `input`
/// plans a scan of the named relation.
pub fn window_tvf_source(
    name: &str,
    args: &[Expr],
    input: impl Fn(&str) -> datafusion::error::Result<LogicalPlan>,
) -> Option<datafusion::error::Result<Arc<dyn TableSource>>> {
    FUNCTIONS.iter().find(|(n, _)| *n == name)?;
    Some(build_source(name, args, input))
}

fn build_source(
    name: &str,
    args: &[Expr],
    input: impl Fn(&str) -> datafusion::error::Result<LogicalPlan>,
) -> datafusion::error::Result<Arc<dyn TableSource>> {
    let text = |index: usize| match args.get(index) {
        Some(Expr::Literal(ScalarValue::Utf8(Some(text)), _)) => Ok(text.clone()),
        _ => plan_err!("{name}: argument {} must be a name", index + 1),
    };
    // Sizes, then (SESSION only) PARTITION BY column names.
    let sizes = args[2..]
        .iter()
        .take_while(|arg| !matches!(arg, Expr::Literal(ScalarValue::Utf8(_), _)))
        .count();
    let durations = args[2..2 + sizes]
        .iter()
        .map(|arg| duration(name, arg))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let offset = |index: usize| durations.get(index).copied().unwrap_or(0);
    let windows = match (name, durations.as_slice()) {
        ("tumble", [size, ..]) => Windows::Tumble {
            size: *size,
            offset: offset(1),
        },
        ("hop", [slide, size, ..]) => Windows::Hop {
            slide: *slide,
            size: *size,
            offset: offset(2),
        },
        ("cumulate", [step, size, ..]) => Windows::Cumulate {
            step: *step,
            size: *size,
            offset: offset(2),
        },
        ("session", [gap]) => Windows::Session { gap: *gap },
        _ => return plan_err!("{name}: missing window sizes"),
    };
    windows
        .validate()
        .map_err(|reason| plan_datafusion_err!("{}: {reason}", name.to_uppercase()))?;
    let table = text(0)?;
    let column = text(1)?;
    let input = input(&table)?;
    let time_column = input
        .schema()
        .index_of_column_by_name(None, &column)
        .ok_or_else(|| {
            plan_datafusion_err!("DESCRIPTOR({column}): '{table}' has no such column")
        })?;
    let zone = match input.schema().field(time_column).data_type() {
        DataType::Timestamp(_, zone) => zone.clone(),
        other => {
            return plan_err!(
                "DESCRIPTOR({column}): the column is {}, not a timestamp",
                sluice_engine::types::sql_type_name(other)
            );
        }
    };
    let window_type = DataType::Timestamp(TimeUnit::Millisecond, zone);
    let mut fields: Vec<_> = input
        .schema()
        .iter()
        .map(|(qualifier, field)| (qualifier.cloned(), field.clone()))
        .collect();
    // A row with a NULL time has NULL window columns.
    let nullable = input.schema().field(time_column).is_nullable();
    for window_column in ["window_start", "window_end", "window_time"] {
        fields.push((
            None,
            Arc::new(Field::new(window_column, window_type.clone(), nullable)),
        ));
    }
    let partition = (2 + sizes..args.len())
        .map(|index| {
            let column = text(index)?;
            input
                .schema()
                .index_of_column_by_name(None, &column)
                .ok_or_else(|| {
                    plan_datafusion_err!("PARTITION BY {column}: '{table}' has no such column")
                })
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let schema = Arc::new(DFSchema::new_with_metadata(fields, Default::default())?);
    let node = WindowTvfNode {
        input,
        windows,
        time_column,
        partition,
        schema,
    };
    Ok(Arc::new(PlannedTable::of(node)))
}

/// An interval of days or less as milliseconds; `None` for other values.
pub(crate) fn interval_millis(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(interval)) if interval.months == 0 => {
            Some(i64::from(interval.days) * 86_400_000 + interval.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(interval)) => {
            Some(i64::from(interval.days) * 86_400_000 + i64::from(interval.milliseconds))
        }
        _ => None,
    }
}

/// A literal interval as milliseconds.
fn duration(name: &str, arg: &Expr) -> datafusion::error::Result<i64> {
    if let Expr::Literal(value, _) = arg
        && let Some(millis) = interval_millis(value)
    {
        return Ok(millis);
    }
    plan_err!(
        "{}: window sizes must be INTERVAL literals in days or less, not {arg}",
        name.to_uppercase()
    )
}

/// The relation a table function call stands for: a plan, inlined where it is read.
pub struct PlannedTable {
    schema: SchemaRef,
    plan: LogicalPlan,
}

impl PlannedTable {
    /// The relation of the extension node `node`.
    pub fn of<N: datafusion::logical_expr::UserDefinedLogicalNode + 'static>(node: N) -> Self {
        PlannedTable {
            schema: Arc::new(node.schema().as_arrow().clone()),
            plan: LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            }),
        }
    }
}

impl TableSource for PlannedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(&self.plan))
    }
}

/// The plan node of a window table function: its input's rows, each once per window, with
/// `window_start`, `window_end` and `window_time` appended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowTvfNode {
    pub input: LogicalPlan,
    pub windows: Windows,
    /// The input column with event time (named by `DESCRIPTOR`).
    pub time_column: usize,
    /// `SESSION`'s `PARTITION BY` input columns.
    pub partition: Vec<usize>,
    pub schema: DFSchemaRef,
}

impl PartialOrd for WindowTvfNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(Ordering::Equal) => {
                Some((self.windows, self.time_column, &self.partition).cmp(&(
                    other.windows,
                    other.time_column,
                    &other.partition,
                )))
            }
            unequal => unequal,
        }
    }
}

impl UserDefinedLogicalNodeCore for WindowTvfNode {
    fn name(&self) -> &str {
        "WindowTvf"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "WindowTvf: {:?} on column {}",
            self.windows, self.time_column
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| plan_datafusion_err!("WindowTvf takes one input"))?;
        Ok(WindowTvfNode {
            input,
            ..self.clone()
        })
    }
}

/// A scan of `source` named `name`, views inlined.
pub fn scan(name: &str, source: Arc<dyn TableSource>) -> datafusion::error::Result<LogicalPlan> {
    LogicalPlanBuilder::scan(name, source, None)?.build()
}
