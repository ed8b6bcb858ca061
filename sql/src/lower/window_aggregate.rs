//! Choosing the window aggregation operator for a `GROUP BY window_start, window_end`: a
//! window aggregate, a sliced window aggregate (`HOP` and `CUMULATE` windows aggregated per
//! slice, when nothing between the aggregation and the window table function needs the
//! windows themselves) or a session window aggregate.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};
use sluice_engine::operators::{SessionAggregate, SlicedWindowAggregate, WindowAggregate};
use sluice_engine::time::{Millis, parse_duration};
use sluice_engine::{AggregateCall, Operator};

use super::Lowering;
use super::node::Lowered;
use super::schema::passes_column;
use crate::window_tvf::WindowTvfNode;
use crate::{Result, SqlError};

impl Lowering<'_> {
    /// The window aggregation for `input` grouped by `keys` (which hold the window columns).
    pub(super) fn window_operator(
        &self,
        input: &Lowered,
        keys: &[Expr],
        input_schema: &DFSchema,
        calls: Vec<AggregateCall>,
        schema: SchemaRef,
    ) -> Result<Box<dyn Operator>> {
        let position = |column: Option<usize>| {
            column.and_then(|column| {
                keys.iter()
                    .position(|e| passes_column(e, input_schema, column))
            })
        };
        let (Some(window_start), Some(window_end)) = (
            position(input.window.map(|w| w.start)),
            position(input.window.map(|w| w.end)),
        ) else {
            return Err(SqlError::Invalid(
                "a window aggregation must group by window_start and window_end".into(),
            ));
        };
        let group_by = keys
            .iter()
            .map(|e| self.state.create_physical_expr(e.clone(), input_schema))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match (&input.session, input.sliced) {
            (None, Some(windows)) => Box::new(SlicedWindowAggregate::new(
                windows,
                group_by,
                window_start,
                window_end,
                calls,
                schema,
            )?),
            (None, None) => Box::new(WindowAggregate::new(
                group_by,
                window_start,
                window_end,
                calls,
                schema,
                input.allowed_lateness,
            )?),
            (Some(_), _) if input.allowed_lateness > 0 => {
                return Err(SqlError::Unsupported(
                    "'allowed-lateness' with SESSION windows".into(),
                ));
            }
            (Some(_), _) => Box::new(SessionAggregate::new(
                group_by,
                window_start,
                window_end,
                calls,
                schema,
            )?),
        })
    }

    /// Whether `aggregate` can aggregate the slices of `HOP` or `CUMULATE` windows instead of
    /// every window: its input reaches the window function through filters and projections
    /// that use the window columns only to pass `window_start` and `window_end` on unchanged,
    /// it groups by them as they are, and its sources allow no lateness.
    pub(super) fn aggregates_slices(&self, aggregate: &Aggregate, keys: &[Expr]) -> Result<bool> {
        const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];
        let uses_window = |e: &Expr| {
            e.column_refs()
                .iter()
                .any(|c| WINDOW_COLUMNS.contains(&c.name.as_str()))
        };
        // Passes window_start or window_end on under its own name.
        let bound = |name: &str| name == "window_start" || name == "window_end";
        let passes_window = |e: &Expr| match e {
            Expr::Column(c) => bound(&c.name),
            Expr::Alias(alias) => {
                matches!(alias.expr.as_ref(), Expr::Column(c) if c.name == alias.name)
                    && bound(&alias.name)
            }
            _ => false,
        };
        let names_window = |e: &Expr| {
            let name = match e {
                Expr::Column(c) => c.name.clone(),
                Expr::Alias(alias) => alias.name.clone(),
                other => other.schema_name().to_string(),
            };
            WINDOW_COLUMNS.contains(&name.as_str())
        };
        let clean = |e: &Expr| passes_window(e) || !(uses_window(e) || names_window(e));
        let grouped_bound = |name: &str| {
            keys.iter().any(|e| {
                passes_window(e) && matches!(e.clone().unalias(), Expr::Column(c) if c.name == name)
            })
        };
        if !keys.iter().all(clean)
            || !grouped_bound("window_start")
            || !grouped_bound("window_end")
            || aggregate.aggr_expr.iter().any(uses_window)
        {
            return Ok(false);
        }
        let mut plan = aggregate.input.as_ref();
        loop {
            plan = match plan {
                LogicalPlan::Projection(projection) if projection.expr.iter().all(clean) => {
                    &projection.input
                }
                LogicalPlan::Filter(filter) if !uses_window(&filter.predicate) => &filter.input,
                LogicalPlan::SubqueryAlias(alias) => &alias.input,
                LogicalPlan::Extension(extension) => {
                    let Some(node) = extension.node.as_any().downcast_ref::<WindowTvfNode>() else {
                        return Ok(false);
                    };
                    return Ok(
                        node.windows.slices().is_some() && self.allowed_lateness(&node.input)? == 0
                    );
                }
                _ => return Ok(false),
            };
        }
    }

    /// The largest `'allowed-lateness'` of the streams `plan` reads.
    fn allowed_lateness(&self, plan: &LogicalPlan) -> Result<Millis> {
        if let Some(hint) = self.hints.allowed_lateness {
            return Ok(hint);
        }
        let mut largest = 0;
        let mut failure = None;
        plan.apply(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Some(text) = self
                    .catalog
                    .get(scan.table_name.table())
                    .and_then(|stream| stream.option("allowed-lateness"))
            {
                match parse_duration(text) {
                    Ok(millis) => largest = largest.max(millis),
                    Err(error) => failure = Some(error),
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        match failure {
            Some(error) => Err(SqlError::Invalid(format!(
                "option 'allowed-lateness': {error}"
            ))),
            None => Ok(largest),
        }
    }
}
