//! Lowering an optimized DataFusion logical plan to a graph of streaming operators.
//!
//! Each supported plan node becomes one operator; expressions become DataFusion physical
//! expressions evaluated per batch. Alongside each node the lowering tracks which output
//! column, if any, is the event-time attribute: it survives projections that pass the column
//! through (renamed or not), and unions whose inputs all carry it in the same place. It
//! tracks the window columns of window table functions the same way, for the aggregations
//! grouped by them.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::DFSchema;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::SessionState;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr, GroupingSet, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::physical_expr::expressions::{Column, Literal};
use sluice_engine::operators::{
    Filter, OverAggregate, Project, Scan, SessionAggregate, SlicedWindowAggregate, TopN, Union,
    UpdatingAggregate, UpsertNormalize, WindowAggregate, WindowAssign, WindowTopN,
};
use sluice_engine::time::{Millis, parse_duration};
use sluice_engine::window::Windows;
use sluice_engine::{AggregateCall, Catalog, Changes, GraphBuilder, NodeId, Operator, StreamDef};

use crate::hints::QueryHints;
use crate::match_recognize::plan::MatchRecognizeNode;
use crate::over::over_plan;
use crate::settings::Settings;
use crate::top_n::{is_top_n, rank_limit, top_n_plan};
use crate::window_tvf::WindowTvfNode;
use crate::{Result, SqlError};

mod join;
mod match_recognize;

/// A lowered plan node: where its rows come out, its event-time column, the columns holding
/// the `window_start` and `window_end` of a window table function if they survive, and the
/// allowed lateness of its sources.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub node: NodeId,
    pub event_time: Option<usize>,
    pub window: Option<(usize, usize)>,
    /// How long windowed state waits for late rows after the watermark passes a window
    /// (the source's `'allowed-lateness'` option; the largest over a union's inputs).
    pub allowed_lateness: Millis,
    /// Whether its rows are a changelog with retractions (`-U`, `-D`) rather than appends.
    pub updating: bool,
    /// For rows of a `SESSION` window function, which must be aggregated: where its
    /// `PARTITION BY` columns are (`None` for one a projection dropped).
    pub session: Option<Vec<Option<usize>>>,
    /// For rows assigned to the slices of these windows rather than to the windows.
    pub sliced: Option<Windows>,
}

/// Builds a graph for one query.
pub struct Lowering<'a> {
    state: &'a SessionState,
    catalog: &'a Catalog,
    pub builder: GraphBuilder,
    /// Set while lowering the input of a window aggregation that aggregates slices: the
    /// window table function below it assigns rows to slices instead of windows.
    slice_next_window_tvf: bool,
    /// Set while lowering the window Top-N under a `WHERE rownum <= N`: the N.
    top_n_limit: Option<usize>,
    /// Options the query's hints set for every stream it reads.
    hints: QueryHints,
    /// The session's settings.
    settings: Settings,
    /// What the query's author should know about it, e.g. that its state has no bound.
    pub warnings: Vec<String>,
}

impl<'a> Lowering<'a> {
    pub fn new(state: &'a SessionState, catalog: &'a Catalog) -> Self {
        Lowering {
            state,
            catalog,
            builder: GraphBuilder::new(),
            slice_next_window_tvf: false,
            top_n_limit: None,
            hints: QueryHints::default(),
            settings: Settings::default(),
            warnings: Vec::new(),
        }
    }

    /// Applies the session's settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Applies the query's hints to every stream it reads.
    pub fn with_hints(mut self, hints: QueryHints) -> Self {
        self.hints = hints;
        self
    }

    pub fn lower(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() || !scan.filters.is_empty() {
                    return Err(unsupported(plan));
                }
                let name = scan.table_name.table();
                let stream = self
                    .catalog
                    .get(name)
                    .ok_or_else(|| SqlError::Invalid(format!("unknown stream '{name}'")))?;
                let node = if stream.is_table() {
                    self.lower_table_scan(name, stream, scan.projection.as_deref())?
                } else {
                    let operator = Scan::new(stream.schema.clone(), scan.projection.clone())?;
                    self.builder.add_source(name, Box::new(operator))
                };
                let event_time =
                    stream
                        .event_time
                        .as_ref()
                        .and_then(|time| match &scan.projection {
                            Some(columns) => columns.iter().position(|c| *c == time.column),
                            None => Some(time.column),
                        });
                let allowed_lateness = match (
                    self.hints.allowed_lateness,
                    stream.option("allowed-lateness"),
                ) {
                    (Some(hint), _) => hint,
                    (None, Some(text)) => parse_duration(text).map_err(|e| {
                        SqlError::Invalid(format!("{name}: option 'allowed-lateness': {e}"))
                    })?,
                    (None, None) => 0,
                };
                Ok(Lowered {
                    node,
                    event_time,
                    window: None,
                    allowed_lateness,
                    updating: stream.is_table(),
                    session: None,
                    sliced: None,
                })
            }
            LogicalPlan::Filter(filter) => {
                // `WHERE rownum <= N` over a window Top-N: the operator keeps only N ranks.
                if let LogicalPlan::Window(window) = filter.input.as_ref()
                    && is_top_n(window)
                {
                    self.top_n_limit = rank_limit(&filter.predicate, window);
                }
                let input = self.lower(&filter.input);
                self.top_n_limit = None;
                let input = input?;
                let predicate = self
                    .state
                    .create_physical_expr(filter.predicate.clone(), filter.input.schema())?;
                let schema = self.builder.schema(input.node);
                let node = self
                    .builder
                    .add(Box::new(Filter::new(predicate, schema)), &[input.node]);
                Ok(Lowered { node, ..input })
            }
            LogicalPlan::Projection(projection) => {
                let input = self.lower(&projection.input)?;
                let input_schema = projection.input.schema();
                let expressions = projection
                    .expr
                    .iter()
                    .map(|e| self.state.create_physical_expr(e.clone(), input_schema))
                    .collect::<Result<Vec<_>, _>>()?;
                let schema = arrow_schema(&projection.schema);
                let passed = |column: usize| {
                    projection
                        .expr
                        .iter()
                        .position(|e| passes_column(e, input_schema, column))
                };
                let event_time = input.event_time.and_then(passed);
                let window = input
                    .window
                    .and_then(|(start, end)| Some((passed(start)?, passed(end)?)));
                let session = input.session.as_ref().map(|partition| {
                    partition
                        .iter()
                        .map(|column| column.and_then(passed))
                        .collect()
                });
                let operator = Project::new(expressions, schema);
                let node = self.builder.add(Box::new(operator), &[input.node]);
                Ok(Lowered {
                    node,
                    event_time,
                    window,
                    session,
                    ..input
                })
            }
            LogicalPlan::SubqueryAlias(alias) => self.lower(&alias.input),
            LogicalPlan::Union(union) => {
                let inputs = union
                    .inputs
                    .iter()
                    .map(|input| self.lower(input))
                    .collect::<Result<Vec<_>>>()?;
                let first = inputs.first().and_then(|input| input.event_time);
                let event_time = first.filter(|_| inputs.iter().all(|i| i.event_time == first));
                let nodes: Vec<NodeId> = inputs.iter().map(|input| input.node).collect();
                let operator = Union::new(arrow_schema(&union.schema));
                let node = self.builder.add(Box::new(operator), &nodes);
                if inputs.iter().any(|i| i.session.is_some()) {
                    return Err(session_not_aggregated());
                }
                let allowed_lateness = inputs.iter().map(|i| i.allowed_lateness).max();
                Ok(Lowered {
                    node,
                    event_time,
                    window: None,
                    allowed_lateness: allowed_lateness.unwrap_or(0),
                    updating: inputs.iter().any(|i| i.updating),
                    session: None,
                    sliced: None,
                })
            }
            LogicalPlan::Extension(extension) => {
                if let Some(node) = extension.node.as_any().downcast_ref::<MatchRecognizeNode>() {
                    return self.lower_match_recognize(node);
                }
                let Some(node) = extension.node.as_any().downcast_ref::<WindowTvfNode>() else {
                    return Err(unsupported(plan));
                };
                let slicing = std::mem::take(&mut self.slice_next_window_tvf);
                let input = self.lower(&node.input)?;
                if input.updating {
                    return Err(SqlError::Unsupported(
                        "window table functions over an updating table".into(),
                    ));
                }
                if input.event_time != Some(node.time_column) {
                    let column = node.input.schema().field(node.time_column).name();
                    return Err(SqlError::Invalid(format!(
                        "DESCRIPTOR({column}): window functions need the event-time \
                         attribute (the column of the input's WATERMARK)"
                    )));
                }
                let schema = arrow_schema(&node.schema);
                let session = matches!(node.windows, Windows::Session { .. })
                    .then(|| node.partition.iter().map(|column| Some(*column)).collect());
                let (assigned, sliced) = match node.windows.slices() {
                    Some(slices) if slicing => (slices, Some(node.windows)),
                    _ => (node.windows, None),
                };
                let operator = WindowAssign::new(assigned, node.time_column, schema.clone());
                let node = self.builder.add(Box::new(operator), &[input.node]);
                // The appended columns: window_start, window_end, and window_time, the new
                // event-time attribute.
                let columns = schema.fields().len();
                Ok(Lowered {
                    node,
                    event_time: Some(columns - 1),
                    window: Some((columns - 3, columns - 2)),
                    session,
                    sliced,
                    ..input
                })
            }
            LogicalPlan::Aggregate(aggregate) => self.lower_aggregate(aggregate),
            LogicalPlan::Join(join) => self.lower_join(join),
            LogicalPlan::Window(window) if is_top_n(window) => {
                let limit = self.top_n_limit.take();
                let input = self.lower(&window.input)?;
                if input.updating || input.session.is_some() {
                    return Err(SqlError::Unsupported(
                        "ROW_NUMBER, RANK and DENSE_RANK over an updating input".into(),
                    ));
                }
                let input_schema = window.input.schema();
                let Some((start, end)) = input.window else {
                    return Err(SqlError::Unsupported(
                        "ROW_NUMBER, RANK and DENSE_RANK over a stream other than per window \
                         (PARTITION BY window_start, window_end [, ...])"
                            .into(),
                    ));
                };
                let plan = top_n_plan(window, self.state, |partition| {
                    [start, end].iter().all(|column| {
                        partition
                            .iter()
                            .any(|e| passes_column(e, input_schema, *column))
                    })
                })?;
                let operator = WindowTopN::new(
                    plan.partition_by,
                    plan.order_by,
                    end,
                    TopN {
                        ranking: plan.ranking,
                        limit,
                    },
                    self.builder.schema(input.node),
                    arrow_schema(&window.schema),
                );
                // Rows straight from a window table function can be late; a window
                // aggregation upstream has the query's late output, and its results arrive
                // as their window closes, so they never are.
                if !self.builder.has_late_schema() {
                    self.builder
                        .set_late_schema(self.builder.schema(input.node))?;
                }
                let node = self.builder.add(Box::new(operator), &[input.node]);
                Ok(Lowered { node, ..input })
            }
            LogicalPlan::Window(window) => {
                let input = self.lower(&window.input)?;
                let input_schema = window.input.schema();
                let Some(time_column) = input.event_time else {
                    return Err(SqlError::Invalid(
                        "an OVER window over a stream must be ORDER BY the event-time \
                         attribute, ascending (the input has none)"
                            .into(),
                    ));
                };
                if input.updating {
                    return Err(SqlError::Unsupported(
                        "an OVER window over an updating input".into(),
                    ));
                }
                if input.session.is_some() {
                    return Err(session_not_aggregated());
                }
                let plan = over_plan(&window.window_expr, input_schema, self.state, |e| {
                    passes_column(e, input_schema, time_column)
                })?;
                let operator = OverAggregate::new(
                    plan.partition_by,
                    plan.partition_types,
                    time_column,
                    plan.calls,
                    arrow_schema(&window.schema),
                )?;
                self.builder
                    .set_late_schema(self.builder.schema(input.node))?;
                let node = self.builder.add(Box::new(operator), &[input.node]);
                Ok(Lowered { node, ..input })
            }
            LogicalPlan::Values(values) => {
                let schema = arrow_schema(&values.schema);
                let rows = self.evaluate_values(&values.values, &schema)?;
                self.constant(schema, rows)
            }
            LogicalPlan::EmptyRelation(empty) => {
                let schema = arrow_schema(&empty.schema);
                let rows = usize::from(empty.produce_one_row);
                let options = RecordBatchOptions::new().with_row_count(Some(rows));
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| datafusion::arrow::array::new_null_array(f.data_type(), rows))
                    .collect();
                let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
                self.constant(schema, batch)
            }
            _ => Err(unsupported(plan)),
        }
    }

    fn constant(&mut self, schema: SchemaRef, rows: RecordBatch) -> Result<Lowered> {
        let operator = Scan::new(schema, None)?;
        let node = self
            .builder
            .add_constant(Box::new(operator), Changes::inserts(rows));
        Ok(Lowered {
            node,
            event_time: None,
            window: None,
            allowed_lateness: 0,
            updating: false,
            session: None,
            sliced: None,
        })
    }

    /// An upsert table read as a changelog: all of its columns, normalised by primary key,
    /// then the `projection` the query reads.
    fn lower_table_scan(
        &mut self,
        name: &str,
        stream: &StreamDef,
        projection: Option<&[usize]>,
    ) -> Result<NodeId> {
        let scan = Scan::new(stream.schema.clone(), None)?;
        let mut node = self.builder.add_source(name, Box::new(scan));
        let key = stream
            .primary_key
            .iter()
            .map(|column| stream.schema.index_of(column))
            .collect::<Result<Vec<_>, _>>()?;
        let normalize = UpsertNormalize::new(key, stream.schema.clone())?;
        node = self.builder.add(Box::new(normalize), &[node]);
        if let Some(columns) = projection {
            let expressions: Vec<Arc<dyn PhysicalExpr>> = columns
                .iter()
                .map(|&c| Arc::new(Column::new(stream.schema.field(c).name(), c)) as _)
                .collect();
            let schema = Arc::new(stream.schema.project(columns)?);
            node = self
                .builder
                .add(Box::new(Project::new(expressions, schema)), &[node]);
        }
        Ok(node)
    }

    /// `GROUP BY window_start, window_end [, keys]` over a window table function (with
    /// `GROUPING SETS`, `ROLLUP` or `CUBE`: one window aggregation per set, their rows padded
    /// with NULLs and the grouping id, then united), or else an updating aggregation.
    fn lower_aggregate(&mut self, aggregate: &Aggregate) -> Result<Lowered> {
        let (keys, sets) = grouping_sets(&aggregate.group_expr)?;
        self.slice_next_window_tvf = self.aggregates_slices(aggregate, &keys)?;
        let input = self.lower(&aggregate.input);
        self.slice_next_window_tvf = false;
        let input = input?;
        let input_schema = aggregate.input.schema();
        let grouped = |column: usize| {
            keys.iter()
                .position(|e| passes_column(e, input_schema, column))
        };
        let window = input
            .window
            .and_then(|(start, end)| Some((grouped(start)?, grouped(end)?)));
        let Some((window_start, window_end)) = window else {
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
                    if !set.contains(&window_start) || !set.contains(&window_end) {
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

    /// The window aggregation for `input` grouped by `keys` (which hold the window columns).
    fn window_operator(
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
            position(input.window.map(|w| w.0)),
            position(input.window.map(|w| w.1)),
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
    fn aggregates_slices(&self, aggregate: &Aggregate, keys: &[Expr]) -> Result<bool> {
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

    /// The rows of a `VALUES` list, each expression evaluated once.
    fn evaluate_values(&self, rows: &[Vec<Expr>], schema: &SchemaRef) -> Result<RecordBatch> {
        let empty = DFSchema::empty();
        let one_row = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (index, field) in schema.fields().iter().enumerate() {
            let mut values = Vec::with_capacity(rows.len());
            for row in rows {
                let expression = self
                    .state
                    .create_physical_expr(row[index].clone(), &empty)?;
                let value = expression.evaluate(&one_row)?.into_array(1)?;
                values.push(cast(&value, field.data_type())?);
            }
            let parts: Vec<&dyn datafusion::arrow::array::Array> =
                values.iter().map(|v| v.as_ref()).collect();
            columns.push(concat(&parts)?);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?)
    }
}

/// One grouping set: positions in the distinct grouping keys.
type KeySet = Vec<usize>;

/// The distinct grouping keys of `group_expr` and, for `GROUPING SETS`, `ROLLUP` or `CUBE`,
/// each set as positions in those keys.
fn grouping_sets(group_expr: &[Expr]) -> Result<(Vec<Expr>, Option<Vec<KeySet>>)> {
    let [Expr::GroupingSet(grouping)] = group_expr else {
        if group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
            return Err(SqlError::Unsupported(
                "this mix of grouping sets and keys".into(),
            ));
        }
        return Ok((group_expr.to_vec(), None));
    };
    let keys: Vec<Expr> = grouping.distinct_expr().into_iter().cloned().collect();
    let position = |e: &Expr| keys.iter().position(|k| k == e).unwrap_or_default();
    let count = keys.len();
    let sets = match grouping {
        GroupingSet::Rollup(_) => (0..=count).rev().map(|n| (0..n).collect()).collect(),
        GroupingSet::Cube(_) => (0..1usize << count)
            .rev()
            .map(|mask| {
                (0..count)
                    .filter(|k| mask & (1 << (count - 1 - k)) != 0)
                    .collect()
            })
            .collect(),
        GroupingSet::GroupingSets(sets) => sets
            .iter()
            .map(|set| set.iter().map(position).collect())
            .collect(),
    };
    Ok((keys, Some(sets)))
}

/// Expressions over one grouping set's aggregation output (its keys, then the aggregates)
/// that give the full output: every key (NULL where the set lacks it), the grouping id, and
/// the aggregates. The grouping id follows DataFusion: one bit per key, the first key highest,
/// set where the key is not grouped; duplicates of a set carry their ordinal above those bits.
fn pad_grouping_set(
    set: &[usize],
    keys: usize,
    duplicate: usize,
    schema: &SchemaRef,
) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    let mut expressions: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(schema.fields().len());
    for key in 0..keys {
        expressions.push(match set.iter().position(|k| *k == key) {
            Some(column) => Arc::new(Column::new(schema.field(key).name(), column)),
            None => Arc::new(Literal::new(ScalarValue::try_from(
                schema.field(key).data_type(),
            )?)),
        });
    }
    let id = (0..keys).fold(0u64, |id, key| (id << 1) | u64::from(!set.contains(&key)));
    let id = id | ((duplicate as u64) << keys);
    let id = ScalarValue::UInt64(Some(id)).cast_to(schema.field(keys).data_type())?;
    expressions.push(Arc::new(Literal::new(id)));
    for (offset, field) in schema.fields()[keys + 1..].iter().enumerate() {
        expressions.push(Arc::new(Column::new(field.name(), set.len() + offset)));
    }
    Ok(expressions)
}

/// Whether `expression` is column `index` of `schema`, possibly renamed.
fn passes_column(expression: &Expr, schema: &DFSchema, index: usize) -> bool {
    match expression {
        Expr::Column(column) => schema.index_of_column(column).ok() == Some(index),
        Expr::Alias(alias) => passes_column(&alias.expr, schema, index),
        _ => false,
    }
}

fn arrow_schema(schema: &DFSchema) -> SchemaRef {
    Arc::new(schema.as_arrow().clone())
}

pub fn session_not_aggregated() -> SqlError {
    SqlError::Unsupported(
        "SESSION windows other than in GROUP BY window_start, window_end [, keys]".into(),
    )
}

/// Names what a plan node needs that streaming queries do not have yet.
fn unsupported(plan: &LogicalPlan) -> SqlError {
    let what = match plan {
        LogicalPlan::Distinct(_) => "SELECT DISTINCT over a stream",
        LogicalPlan::Sort(_) => "ORDER BY over an unbounded stream",
        LogicalPlan::Limit(_) => "LIMIT over an unbounded stream",
        LogicalPlan::TableScan(_) => "LIMIT over an unbounded stream",
        LogicalPlan::Subquery(_) => "subqueries",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::RecursiveQuery(_) => "recursive queries",
        _ => return SqlError::Unsupported(format!("'{}' in a streaming query", plan.display())),
    };
    SqlError::Unsupported(what.to_string())
}
