//! Lowering `Aggregate` nodes: `GROUP BY window_start, window_end [, keys]` over a window
//! table function becomes a window aggregation (one per grouping set for `GROUPING SETS`,
//! `ROLLUP` and `CUBE`, united); any other `GROUP BY` or `SELECT DISTINCT` an updating
//! aggregation emitting a changelog. Also the aggregate function calls, as DataFusion
//! accumulators.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr};
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use sluice_engine::AggregateCall;
use sluice_engine::operators::{Project, Union, UpdatingAggregate};

use super::Lowering;
use super::grouping_sets::{Grouping, KeySet, grouping_sets, pad_grouping_set};
use super::node::{Lowered, WindowColumns, session_not_aggregated};
use super::schema::{arrow_schema, passes_column};
use crate::{Result, SqlError};

impl Lowering<'_> {
    /// `GROUP BY window_start, window_end [, keys]` over a window table function (with
    /// `GROUPING SETS`, `ROLLUP` or `CUBE`: one window aggregation per set, their rows padded
    /// with NULLs and the grouping id, then united), or else an updating aggregation.
    pub(super) fn lower_aggregate(&mut self, aggregate: &Aggregate) -> Result<Lowered> {
        let Grouping { keys, sets } = grouping_sets(&aggregate.group_expr)?;
        self.slice_next_window_tvf = self.aggregates_slices(aggregate, &keys)?;
        let input = self.lower(&aggregate.input);
        self.slice_next_window_tvf = false;
        let input = input?;
        let input_schema = aggregate.input.schema();
        let grouped = |column: usize| {
            keys.iter()
                .position(|e| passes_column(e, input_schema, column))
        };
        let window = input.window.and_then(|window| {
            Some(WindowColumns {
                start: grouped(window.start)?,
                end: grouped(window.end)?,
            })
        });
        let Some(grouped_window) = window else {
            if input.session.is_some() {
                return Err(session_not_aggregated());
            }
            if sets.is_some() {
                return Err(SqlError::Unsupported(
                    "GROUPING SETS, ROLLUP and CUBE over a stream without window_start and \
                     window_end"
                        .into(),
                ));
            }
            return self.lower_updating_aggregate(aggregate, input);
        };
        if input.updating {
            return Err(SqlError::Unsupported(
                "a window aggregation over an updating input".into(),
            ));
        }
        if let Some(partition) = &input.session
            && !partition.iter().all(|c| c.and_then(grouped).is_some())
        {
            return Err(SqlError::Invalid(
                "SESSION windows with PARTITION BY must be grouped by the partition columns too"
                    .into(),
            ));
        }
        let calls = self.aggregate_calls(aggregate)?;
        let schema = arrow_schema(&aggregate.schema);
        // A window aggregation over another one (DataFusion plans COUNT(DISTINCT x) so) sees
        // rows only as their window closes; the first one has the query's late output.
        let reports_late = !self.builder.has_late_schema();
        if reports_late {
            self.builder
                .set_late_schema(self.builder.schema(input.node))?;
        }
        let node = match sets {
            None => {
                let operator = self.window_operator(&input, &keys, input_schema, calls, schema)?;
                let node = self.builder.add(operator, &[input.node]);
                if !reports_late {
                    self.builder.ignore_late(node);
                }
                node
            }
            Some(sets) => {
                let mut parts = Vec::with_capacity(sets.len());
                for (ordinal, set) in sets.iter().enumerate() {
                    if !set.contains(&grouped_window.start) || !set.contains(&grouped_window.end) {
                        return Err(SqlError::Invalid(
                            "every grouping set of a window aggregation must contain \
                             window_start and window_end"
                                .into(),
                        ));
                    }
                    let set_keys: Vec<Expr> = set.iter().map(|&k| keys[k].clone()).collect();
                    let aggregates = &schema.fields()[keys.len() + 1..];
                    let set_schema = Arc::new(Schema::new(
                        set.iter()
                            .map(|&k| schema.field(k).clone())
                            .chain(aggregates.iter().map(|f| f.as_ref().clone()))
                            .collect::<Vec<_>>(),
                    ));
                    let operator = self.window_operator(
                        &input,
                        &set_keys,
                        input_schema,
                        calls.clone(),
                        set_schema.clone(),
                    )?;
                    let set_node = self.builder.add(operator, &[input.node]);
                    if ordinal > 0 || !reports_late {
                        // The first set's aggregation reports the late rows; they are the same.
                        self.builder.ignore_late(set_node);
                    }
                    // Sets with the same keys in another order are duplicates too.
                    let sorted = |set: &KeySet| {
                        let mut set = set.clone();
                        set.sort_unstable();
                        set
                    };
                    let duplicate = sets[..ordinal]
                        .iter()
                        .filter(|earlier| sorted(earlier) == sorted(set))
                        .count();
                    let padding = pad_grouping_set(set, keys.len(), duplicate, &schema)?;
                    let project = Project::new(padding, schema.clone());
                    parts.push(self.builder.add(Box::new(project), &[set_node]));
                }
                self.builder
                    .add(Box::new(Union::new(schema.clone())), &parts)
            }
        };
        Ok(Lowered {
            node,
            event_time: None,
            window,
            allowed_lateness: 0,
            updating: input.allowed_lateness > 0 && input.session.is_none(),
            session: None,
            sliced: None,
        })
    }

    /// `GROUP BY` without a window, or `SELECT DISTINCT`: a changelog of results.
    fn lower_updating_aggregate(
        &mut self,
        aggregate: &Aggregate,
        input: Lowered,
    ) -> Result<Lowered> {
        let input_schema = aggregate.input.schema();
        let group_by = aggregate
            .group_expr
            .iter()
            .map(|e| self.state.create_physical_expr(e.clone(), input_schema))
            .collect::<Result<Vec<_>, _>>()?;
        let calls = self.aggregate_calls(aggregate)?;
        let schema = arrow_schema(&aggregate.schema);
        let operator = UpdatingAggregate::new(group_by, calls, input.updating, schema)?;
        let node = self.builder.add(Box::new(operator), &[input.node]);
        Ok(Lowered {
            node,
            event_time: None,
            window: None,
            allowed_lateness: 0,
            updating: true,
            session: None,
            sliced: None,
        })
    }

    /// The aggregate function calls of `aggregate`, as DataFusion accumulators.
    fn aggregate_calls(&self, aggregate: &Aggregate) -> Result<Vec<AggregateCall>> {
        let input_schema = aggregate.input.schema();
        let physical_input = input_schema.as_arrow();
        let planning = PhysicalPlanningContext::default();
        aggregate
            .aggr_expr
            .iter()
            .map(|e| {
                let name = match e {
                    Expr::Alias(alias) => alias.name.clone(),
                    _ => e.schema_name().to_string(),
                };
                let lowered = LoweredAggregateBuilder::new(
                    e,
                    input_schema,
                    physical_input,
                    self.state.execution_props(),
                    &planning,
                )
                .with_name(name)
                .build()?;
                Ok(AggregateCall {
                    function: lowered.aggregate,
                    filter: lowered.filter,
                })
            })
            .collect()
    }
}
