//! Lowering an optimized DataFusion logical plan to a graph of streaming operators.
//!
//! Each supported plan node becomes one operator; expressions become DataFusion physical
//! expressions evaluated per batch. Alongside each node the lowering tracks which output
//! column, if any, is the event-time attribute: it survives projections that pass the column
//! through (renamed or not), and unions whose inputs all carry it in the same place. It
//! tracks the window columns of window table functions the same way, for the aggregations
//! grouped by them.
//!
//! This file holds the dispatch over plan nodes and the nodes lowered to one operator each;
//! aggregations (`lower/aggregate.rs`, `lower/window_aggregate.rs`,
//! `lower/grouping_sets.rs`), joins (`lower/join.rs`) and `MATCH_RECOGNIZE`
//! (`lower/match_recognize.rs`) are lowered in files of their own, and what a lowered node
//! carries is described in `lower/node.rs`.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use sluice_engine::operators::{
    Filter, OverAggregate, Project, Ranking, Scan, SessionColumns, SessionRows, TopN, Union,
    UpdatingTopN, UpsertNormalize, WindowAssign, WindowTopN,
};
use sluice_engine::time::parse_duration;
use sluice_engine::window::Windows;
use sluice_engine::{Catalog, Changes, GraphBuilder, NodeId, StreamDef};

use self::proctime::is_proctime;
use self::schema::{arrow_schema, passes_column};
use crate::hints::QueryHints;
use crate::match_recognize::plan::MatchRecognizeNode;
use crate::over::over_plan;
use crate::settings::Settings;
use crate::top_n::{is_top_n, rank_limit, top_n_partition, top_n_plan};
use crate::window_tvf::WindowTvfNode;
use crate::{Result, SqlError};

mod aggregate;
mod grouping_sets;
mod join;
mod match_recognize;
mod node;
mod proctime;
mod schema;
mod sort;
mod window_aggregate;

pub use node::{Lowered, WindowColumns, session_not_aggregated};

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

    /// Lowers a whole query: rows of `SESSION` windows come out with their sessions' bounds.
    pub fn lower_query(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        let lowered = self.lower(plan)?;
        self.session_rows(lowered)
    }

    /// `input`, whose rows, if they come from a `SESSION` window function, are held until
    /// their session closes and then carry its bounds ([`SessionRows`]).
    fn session_rows(&mut self, input: Lowered) -> Result<Lowered> {
        let Some(partition) = &input.session else {
            return Ok(input);
        };
        let Some(window) = input.window else {
            return Err(session_not_aggregated());
        };
        let schema = self.builder.schema(input.node);
        let partition_by = partition
            .iter()
            .map(|column| {
                let column = column.ok_or_else(session_not_aggregated)?;
                Ok(Arc::new(Column::new(schema.field(column).name(), column)) as _)
            })
            .collect::<Result<Vec<Arc<dyn PhysicalExpr>>>>()?;
        let columns = SessionColumns {
            start: window.start,
            end: window.end,
            time: input.event_time,
        };
        let operator = SessionRows::new(partition_by, columns, schema.clone())?;
        self.builder.set_late_schema(schema)?;
        let node = self.builder.add(Box::new(operator), &[input.node]);
        Ok(Lowered {
            node,
            session: None,
            ..input
        })
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
                let mut input = input?;
                // A condition on more than a SESSION window's partition columns filters its
                // rows, not the rows its sessions are formed from.
                if let Some(partition) = &input.session {
                    let schema = filter.input.schema();
                    let only_partition = filter.predicate.column_refs().iter().all(|column| {
                        let index = schema.index_of_column(column).ok();
                        index.is_some() && partition.contains(&index)
                    });
                    if !only_partition {
                        input = self.session_rows(input)?;
                    }
                }
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
                let window = input.window.and_then(|window| {
                    Some(WindowColumns {
                        start: passed(window.start)?,
                        end: passed(window.end)?,
                    })
                });
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
                    .map(|input| {
                        let lowered = self.lower(input)?;
                        self.session_rows(lowered)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let first = inputs.first().and_then(|input| input.event_time);
                let event_time = first.filter(|_| inputs.iter().all(|i| i.event_time == first));
                let nodes: Vec<NodeId> = inputs.iter().map(|input| input.node).collect();
                let operator = Union::new(arrow_schema(&union.schema));
                let node = self.builder.add(Box::new(operator), &nodes);
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
                    window: Some(WindowColumns {
                        start: columns - 3,
                        end: columns - 2,
                    }),
                    session,
                    sliced,
                    ..input
                })
            }
            LogicalPlan::Aggregate(aggregate) => self.lower_aggregate(aggregate),
            LogicalPlan::Sort(sort) => self.lower_sort(sort, 0, sort.fetch),
            LogicalPlan::Limit(limit) => self.lower_limit(limit),
            LogicalPlan::Join(join) => self.lower_join(join),
            LogicalPlan::Window(window) if is_top_n(window) => {
                let limit = self.top_n_limit.take();
                let input = self.lower(&window.input)?;
                let input = self.session_rows(input)?;
                let input_schema = window.input.schema();
                let per_window = input.window.is_some_and(|WindowColumns { start, end }| {
                    let partition = top_n_partition(window);
                    [start, end].iter().all(|column| {
                        partition
                            .iter()
                            .any(|e| passes_column(e, input_schema, *column))
                    })
                });
                if !per_window {
                    return self.lower_updating_top_n(window, input, limit);
                }
                if input.updating {
                    return Err(SqlError::Unsupported(
                        "ROW_NUMBER, RANK and DENSE_RANK over an updating input".into(),
                    ));
                }
                let Some(WindowColumns { end, .. }) = input.window else {
                    return self.lower_updating_top_n(window, input, limit);
                };
                let plan = top_n_plan(window, self.state)?;
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
                let input = self.session_rows(input)?;
                let input_schema = window.input.schema();
                if input.updating {
                    return Err(SqlError::Unsupported(
                        "an OVER window over an updating input".into(),
                    ));
                }
                let proctime = |column: usize| is_proctime(&window.input, column, self.catalog);
                let time_attribute = |e: &Expr| {
                    input
                        .event_time
                        .is_some_and(|time| passes_column(e, input_schema, time))
                        || (0..input_schema.fields().len())
                            .any(|c| passes_column(e, input_schema, c) && proctime(c))
                };
                let plan = over_plan(
                    &window.window_expr,
                    input_schema,
                    self.state,
                    time_attribute,
                )?;
                let Some(time_column) = (0..input_schema.fields().len())
                    .find(|c| passes_column(&plan.order_by, input_schema, *c))
                else {
                    return Err(SqlError::Invalid(format!(
                        "OVER (ORDER BY {}): expected a time attribute",
                        plan.order_by
                    )));
                };
                let arrival_order = input.event_time != Some(time_column);
                let mut operator = OverAggregate::new(
                    plan.partition_by,
                    plan.partition_types,
                    time_column,
                    plan.calls,
                    arrow_schema(&window.schema),
                )?;
                if arrival_order {
                    // In arrival order nothing is late.
                    operator = operator.in_arrival_order();
                } else {
                    self.builder
                        .set_late_schema(self.builder.schema(input.node))?;
                }
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

    /// `ROW_NUMBER() OVER (PARTITION BY keys ORDER BY ...)` kept to `limit` rows per
    /// partition, over a stream or a changelog without windows: a changelog of the ranking.
    fn lower_updating_top_n(
        &mut self,
        window: &datafusion::logical_expr::Window,
        input: Lowered,
        limit: Option<usize>,
    ) -> Result<Lowered> {
        let plan = top_n_plan(window, self.state)?;
        if plan.ranking != Ranking::RowNumber {
            return Err(SqlError::Unsupported(
                "RANK and DENSE_RANK over a stream without windows (use ROW_NUMBER)".into(),
            ));
        }
        let Some(limit) = limit.filter(|limit| *limit > 0) else {
            return Err(SqlError::Unsupported(
                "ROW_NUMBER over a stream without a limit: add WHERE rownum <= N (Top-N) or \
                 rownum = 1 (deduplication) right above it"
                    .into(),
            ));
        };
        let operator = UpdatingTopN::new(
            plan.partition_by,
            plan.order_by,
            limit,
            !input.updating,
            self.builder.schema(input.node),
            arrow_schema(&window.schema),
        )?;
        let node = self.builder.add(Box::new(operator), &[input.node]);
        Ok(Lowered {
            node,
            event_time: None,
            window: None,
            updating: true,
            session: None,
            sliced: None,
            ..input
        })
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
