//! A session: statements in, catalog changes and running queries out.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionConfig;
use datafusion::sql::planner::SqlToRel;
use datafusion::sql::sqlparser::ast;
use sluice_engine::catalog::ColumnSource;
use sluice_engine::limits::MAX_VIEW_DEPTH;
use sluice_engine::output::OP_COLUMN;
use sluice_engine::time::format_millis;
use sluice_engine::types::sql_type_name;
use sluice_engine::{Engine, QueryGraph, QueryId};

use self::alert_registry::Alerts;
use self::text_batch::text_batch;
use crate::context::PlanningContext;
use crate::ddl::stream_def;
use crate::functions::ProcTime;
use crate::hints::{QueryHints, query_hints};
use crate::lower::Lowering;
use crate::settings::Settings;
use crate::statement::{self, ObjectKind, ParsedStatement, Show, Statement, parse_statements};
use crate::{Result, SqlError};

mod alert_registry;
mod alerts;
mod materialized;
mod outcome;
#[cfg(test)]
mod state_round_trip_tests;
mod text_batch;

pub use alerts::{AlertGroup, CompiledGroup, alerts_query_name};
pub use outcome::{Outcome, StartedQuery};

pub use crate::view::View;

pub struct Session {
    engine: Engine,
    state: SessionState,
    views: BTreeMap<String, View>,
    /// Materialized views (streams the engine keeps a snapshot of), with their queries.
    materialized: BTreeMap<String, String>,
    settings: Settings,
    /// The number in the last plain SELECT's name (q1, q2, ...).
    selects: usize,
    /// INSERT ... SELECT queries started so far.
    inserts: usize,
    alerts: Alerts,
    /// Where `INSERT ... VALUES` rows go instead of the engine, once asked for (see
    /// [`Session::capture_inserts`]).
    captured: Option<Vec<(String, RecordBatch)>>,
    /// How many times statements have run: anything that changes what a statement means
    /// (names, schemas, settings) changes it.
    generation: u64,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        let config = SessionConfig::new().with_target_partitions(1);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        // Registering a function under a fresh name cannot fail.
        let _ = state.register_udf(ProcTime::udf());
        let _ = state.register_udf(crate::temporal_join::AsOfMarker::udf());
        // Variances, covariances and regressions whose state restores exactly, in place of
        // DataFusion's.
        for function in crate::variance::functions()
            .into_iter()
            .chain(crate::covariance::functions())
            .chain(crate::regression::functions())
        {
            let _ = state.register_udaf(function);
        }
        Session {
            engine: Engine::new(),
            state,
            views: BTreeMap::new(),
            materialized: BTreeMap::new(),
            settings: Settings::default(),
            selects: 0,
            inserts: 0,
            alerts: Alerts::default(),
            captured: None,
            generation: 0,
        }
    }

    /// From now on, the rows of a bounded `INSERT` are kept for [`Session::take_inserted`]
    /// rather than appended: a caller that logs its inputs appends them itself.
    pub fn capture_inserts(&mut self) {
        self.captured.get_or_insert_with(Vec::new);
    }

    /// The rows bounded `INSERT`s produced since the last call, by stream (the physical
    /// columns), when captured.
    pub fn take_inserted(&mut self) -> Vec<(String, RecordBatch)> {
        self.captured
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn views(&self) -> impl Iterator<Item = &View> {
        self.views.values()
    }

    /// Parses and runs every statement of `sql`, stopping at the first error. A script of
    /// only `CREATE ALERT` and `DROP ALERT` statements runs all or nothing.
    pub fn execute_sql(&mut self, sql: &str) -> Result<Vec<Outcome>> {
        self.generation += 1;
        let statements = parse_statements(sql)?;
        if statements.len() > 1
            && Self::all_alert_statements(statements.iter().map(|s| &s.statement))
        {
            let group: Vec<&ParsedStatement> = statements.iter().collect();
            return self.alter_alerts(&group);
        }
        statements
            .iter()
            .map(|statement| self.execute(statement))
            .collect()
    }

    pub fn execute(&mut self, parsed: &ParsedStatement) -> Result<Outcome> {
        self.generation += 1;
        match &parsed.statement {
            Statement::CreateStream(create) => {
                let kind = if create.primary_key.is_empty() {
                    ObjectKind::Stream
                } else {
                    ObjectKind::Table
                };
                if self.exists(&create.name) {
                    if create.if_not_exists {
                        return Ok(Outcome::Unchanged(format!(
                            "'{}' already exists",
                            create.name
                        )));
                    }
                    return Err(self.already_exists(&create.name));
                }
                let def = stream_def(create, &self.state, &self.planning_context())?;
                self.engine.create_stream(def)?;
                Ok(Outcome::Created {
                    kind,
                    name: create.name.clone(),
                })
            }
            Statement::CreateAlert(_) => self.alter_alert(parsed),
            Statement::Drop(drop) if drop.kind == ObjectKind::Alert => self.alter_alert(parsed),
            Statement::Drop(drop) => self.drop(drop),
            Statement::Show(show) => self.show(*show).map(Outcome::Rows),
            Statement::Describe(name) => self.describe(name).map(Outcome::Rows),
            Statement::Set { key, value } => {
                self.settings.set(key, value)?;
                Ok(Outcome::Set {
                    key: key.clone(),
                    value: value.clone(),
                })
            }
            Statement::Sql(statement) => match statement.as_ref() {
                ast::Statement::Query(_) => {
                    if let Some(rows) = self.snapshot_query(statement)? {
                        return Ok(Outcome::Rows(rows));
                    }
                    let hints = query_hints(statement)?;
                    let plan = self.plan(statement.as_ref().clone())?;
                    let name = self.next_select_name();
                    self.start(&name, &name, &plan, None, hints)
                        .map(Outcome::Started)
                }
                ast::Statement::Insert(_) => self.insert(statement.as_ref().clone()),
                ast::Statement::Explain { statement, .. } => {
                    self.explain(statement).map(Outcome::Rows)
                }
                ast::Statement::CreateView(create) => self.create_view(create, statement),
                other => Err(SqlError::Unsupported(format!(
                    "statement '{}'",
                    first_words(&other.to_string())
                ))),
            },
        }
    }

    /// The name of the next plain `SELECT`: `qN` for the next `N` that names no stream,
    /// view or alert.
    fn next_select_name(&mut self) -> String {
        loop {
            self.selects += 1;
            let name = format!("q{}", self.selects);
            let taken = self.views.contains_key(&name)
                || self.engine.catalog().get(&name).is_some()
                || self.alert_events(&name).is_some();
            if !taken {
                return name;
            }
        }
    }

    /// Starts a query that emits the rows of view `name`, with the view's name.
    pub fn start_view_query(&mut self, name: &str) -> Result<StartedQuery> {
        let view = self
            .views
            .get(name)
            .ok_or_else(|| SqlError::Invalid(format!("unknown view '{name}'")))?;
        let plan = view.plan.clone();
        let hints = view.hints;
        self.start(name, name, &plan, None, hints)
    }

    fn start(
        &mut self,
        name: &str,
        output: &str,
        plan: &LogicalPlan,
        target: Option<&str>,
        hints: QueryHints,
    ) -> Result<StartedQuery> {
        let (graph, warnings, updating) = self.build_graph(plan, hints)?;
        if graph.schema().index_of(OP_COLUMN).is_ok() {
            return Err(SqlError::Invalid(format!(
                "the query has a column named '{OP_COLUMN}', the name of every result's change \
                 kind column: rename it with AS"
            )));
        }
        let mut started = self.register(name, output, graph, warnings, target)?;
        started.updating = updating;
        Ok(started)
    }

    /// The operator graph of `plan`, the warnings its lowering gave, and whether its
    /// results are a changelog with retractions.
    fn build_graph(
        &self,
        plan: &LogicalPlan,
        hints: QueryHints,
    ) -> Result<(QueryGraph, Vec<String>, bool)> {
        let optimized = self.optimize(plan)?;
        let mut lowering = self.lowering(hints);
        let lowered = lowering.lower_query(&optimized)?;
        let warnings = std::mem::take(&mut lowering.warnings);
        Ok((
            lowering.builder.build(lowered.node),
            warnings,
            lowered.updating,
        ))
    }

    fn register(
        &mut self,
        name: &str,
        output: &str,
        graph: QueryGraph,
        warnings: Vec<String>,
        target: Option<&str>,
    ) -> Result<StartedQuery> {
        let schema = graph.schema();
        let late_schema = graph.late_schema();
        let id = self.engine.register_query(name, graph, target)?;
        Ok(StartedQuery {
            id,
            name: name.to_string(),
            output: output.to_string(),
            schema,
            late_schema,
            target: target.map(str::to_string),
            warnings,
            updating: false,
        })
    }

    /// Declares that every input of the session ends (`sluice run` over files): queries
    /// started after this may sort their results at end of input.
    pub fn set_bounded_inputs(&mut self) {
        self.settings.bounded_inputs = true;
    }

    /// A lowering for a query with `hints`, under the session's settings.
    fn lowering(&self, hints: QueryHints) -> Lowering<'_> {
        Lowering::new(&self.state, self.engine.catalog())
            .with_hints(hints)
            .with_settings(self.settings)
    }

    fn insert(&mut self, statement: ast::Statement) -> Result<Outcome> {
        let hints = query_hints(&statement)?;
        let plan = self.plan(statement)?;
        let LogicalPlan::Dml(dml) = &plan else {
            return Err(SqlError::Unsupported("this form of INSERT".into()));
        };
        if !matches!(dml.op, WriteOp::Insert(_)) {
            return Err(SqlError::Unsupported(format!("{}", dml.op)));
        }
        let target = dml.table_name.table().to_string();
        let def = self
            .engine
            .catalog()
            .get(&target)
            .cloned()
            .ok_or_else(|| SqlError::Invalid(format!("'{target}' is a view, not a stream")))?;
        let input = self.optimize(&dml.input)?;
        let mut lowering = self.lowering(hints);
        let lowered = lowering.lower_query(&input)?;
        let mut graph = lowering.builder.build(lowered.node);
        if !graph.is_bounded() {
            self.inserts += 1;
            let name = format!("insert{}", self.inserts);
            return self
                .start(&name, &target, &dml.input, Some(&target), hints)
                .map(Outcome::Started);
        }
        let mut results = Vec::new();
        graph.start(&mut results)?;
        let mut rows = 0;
        for changes in results {
            rows += changes.num_rows();
            let physical = def.physical_part(&changes.rows)?;
            match &mut self.captured {
                Some(captured) => captured.push((target.clone(), physical)),
                None => self.engine.append(&target, &physical)?,
            }
        }
        Ok(Outcome::Inserted {
            stream: target,
            rows,
        })
    }

    fn create_view(
        &mut self,
        create: &ast::CreateView,
        statement: &ast::Statement,
    ) -> Result<Outcome> {
        let name = statement::object_name(&create.name)?;
        if create.materialized {
            return self.create_materialized_view(&name, create, statement);
        }
        let replacing = create.or_replace && self.views.contains_key(&name);
        if self.exists(&name) && !replacing {
            if create.if_not_exists {
                return Ok(Outcome::Unchanged(format!("'{name}' already exists")));
            }
            return Err(self.already_exists(&name));
        }
        let mut dependencies = BTreeSet::new();
        let _ = ast::visit_relations(&create.query, |relation| {
            if let Ok(name) = statement::object_name(relation) {
                dependencies.insert(name);
            }
            ControlFlow::<()>::Continue(())
        });
        if dependencies.contains(&name) {
            return Err(SqlError::Invalid(format!(
                "view '{name}' cannot read itself"
            )));
        }
        let depth = 1 + dependencies
            .iter()
            .filter_map(|read| self.views.get(read))
            .map(|view| view.depth)
            .max()
            .unwrap_or(0);
        if depth > MAX_VIEW_DEPTH {
            return Err(SqlError::Invalid(format!(
                "view '{name}' would be planned on {} views, one on another (limit \
                 {MAX_VIEW_DEPTH}): read a materialized view instead",
                depth - 1
            )));
        }
        let plan = self.plan(statement.clone())?;
        let LogicalPlan::Ddl(DdlStatement::CreateView(view)) = plan else {
            return Err(SqlError::Unsupported("this form of CREATE VIEW".into()));
        };
        self.views.insert(
            name.clone(),
            View {
                name: name.clone(),
                sql: crate::match_recognize::restore_match_recognize(&create.query.to_string()),
                plan: view.input.as_ref().clone(),
                dependencies,
                depth,
                hints: query_hints(statement)?,
            },
        );
        Ok(Outcome::Created {
            kind: ObjectKind::View,
            name,
        })
    }

    fn drop(&mut self, drop: &statement::Drop) -> Result<Outcome> {
        let name = &drop.name;
        let is_materialized = self.materialized.contains_key(name);
        let is_view = self.views.contains_key(name);
        let is_stream = self.engine.catalog().get(name).is_some() && !is_materialized;
        let found = match drop.kind {
            ObjectKind::View => is_view,
            ObjectKind::MaterializedView => is_materialized,
            ObjectKind::Stream | ObjectKind::Table => is_stream,
            ObjectKind::Alert => false,
        };
        if !found {
            if is_view || is_stream || is_materialized {
                let actual = if is_view {
                    "a view"
                } else if is_materialized {
                    "a materialized view"
                } else {
                    "a stream"
                };
                return Err(SqlError::Invalid(format!(
                    "'{name}' is {actual}, not a {}",
                    drop.kind.noun()
                )));
            }
            if drop.if_exists {
                return Ok(Outcome::Unchanged(format!("'{name}' does not exist")));
            }
            return Err(SqlError::Invalid(format!(
                "unknown {} '{name}'",
                drop.kind.noun()
            )));
        }
        if let Some(alert) = self.alert_reading(name) {
            return Err(SqlError::Invalid(format!(
                "cannot drop '{name}': alert '{alert}' reads it"
            )));
        }
        if let Some(user) = self.views.values().find(|v| v.dependencies.contains(name)) {
            return Err(SqlError::Invalid(format!(
                "cannot drop '{name}': view '{}' reads it",
                user.name
            )));
        }
        if is_view {
            self.views.remove(name);
        } else {
            if is_materialized {
                let queries = self.engine.queries();
                if let Some(reader) = queries.iter().find(|q| q.sources.contains(name)) {
                    return Err(SqlError::Invalid(format!(
                        "cannot drop '{name}': query '{}' reads it",
                        reader.name
                    )));
                }
                let writers: Vec<QueryId> = self
                    .engine
                    .queries()
                    .into_iter()
                    .filter(|q| q.target.as_deref() == Some(name.as_str()))
                    .map(|q| q.id)
                    .collect();
                for id in writers {
                    self.engine.cancel(id)?;
                }
                self.materialized.remove(name);
            }
            self.engine.drop_stream(name)?;
        }
        Ok(Outcome::Dropped {
            kind: drop.kind,
            name: name.clone(),
        })
    }

    fn show(&self, show: Show) -> Result<RecordBatch> {
        match show {
            Show::Alerts => self.show_alerts(),
            Show::Tables => {
                let rows = self
                    .engine
                    .catalog()
                    .streams()
                    .map(|s| {
                        let kind = if s.is_table() { "table" } else { "stream" };
                        let watermark = s.event_time.as_ref().map_or(String::new(), |time| {
                            format!(
                                "FOR {} AS {}",
                                s.schema.field(time.column).name(),
                                time.watermark_sql
                            )
                        });
                        vec![s.name.clone(), kind.to_string(), watermark]
                    })
                    .collect();
                text_batch(&["name", "kind", "watermark"], rows)
            }
            Show::Views => {
                let mut rows: Vec<Vec<String>> = self
                    .views
                    .values()
                    .map(|v| vec![v.name.clone(), "view".into(), v.sql.clone()])
                    .chain(self.materialized.iter().map(|(name, sql)| {
                        vec![name.clone(), "materialized view".into(), sql.clone()]
                    }))
                    .collect();
                rows.sort();
                text_batch(&["name", "kind", "query"], rows)
            }
            Show::Operators => {
                let mut rows = Vec::new();
                for query in self.engine.queries() {
                    let operators = self.engine.query_metrics(query.id).unwrap_or_default();
                    for (node, metrics) in operators.into_iter().enumerate() {
                        rows.push(vec![
                            query.name.clone(),
                            node.to_string(),
                            metrics.operator,
                            metrics.rows_in.to_string(),
                            metrics.rows_out.to_string(),
                            format_millis(metrics.watermark),
                            metrics.operator_metrics.open_windows.to_string(),
                            metrics.operator_metrics.state_bytes.to_string(),
                        ]);
                    }
                }
                text_batch(
                    &[
                        "query",
                        "node",
                        "operator",
                        "rows_in",
                        "rows_out",
                        "watermark",
                        "open_windows",
                        "state_bytes",
                    ],
                    rows,
                )
            }
            Show::Queries => {
                let rows = self
                    .engine
                    .queries()
                    .into_iter()
                    .map(|q| {
                        vec![
                            q.id.to_string(),
                            q.name,
                            q.sources.join(", "),
                            q.target.unwrap_or_default(),
                            format_millis(q.watermark),
                            q.open_windows.to_string(),
                            q.state_bytes.to_string(),
                            q.late_rows.to_string(),
                        ]
                    })
                    .collect();
                text_batch(
                    &[
                        "id",
                        "name",
                        "reads",
                        "inserts_into",
                        "watermark",
                        "open_windows",
                        "state_bytes",
                        "late_rows",
                    ],
                    rows,
                )
            }
        }
    }

    /// `EXPLAIN query`: the operators the query would run, one row each, in graph order.
    fn explain(&self, statement: &ast::Statement) -> Result<RecordBatch> {
        if !matches!(statement, ast::Statement::Query(_)) {
            return Err(SqlError::Unsupported(
                "EXPLAIN of anything but a query".into(),
            ));
        }
        let hints = query_hints(statement)?;
        let plan = self.plan(statement.clone())?;
        let (graph, _, _) = self.build_graph(&plan, hints)?;
        let rows = graph
            .explain()
            .into_iter()
            .enumerate()
            .map(|(node, (operator, inputs, detail))| {
                let inputs: Vec<String> = inputs.iter().map(ToString::to_string).collect();
                vec![node.to_string(), operator, inputs.join(", "), detail]
            })
            .collect();
        text_batch(&["node", "operator", "inputs", "detail"], rows)
    }

    fn describe(&self, name: &str) -> Result<RecordBatch> {
        let headers = ["column", "type", "nullable", "extra"];
        if let Some(stream) = self.engine.catalog().get(name) {
            let rows = stream
                .schema
                .fields()
                .iter()
                .zip(&stream.layout)
                .enumerate()
                .map(|(index, (field, source))| {
                    let mut extra = Vec::new();
                    if let ColumnSource::Computed(column) = source {
                        extra.push(format!("AS {}", column.sql));
                    }
                    if let Some(time) = stream.event_time.as_ref().filter(|t| t.column == index) {
                        extra.push(format!("event time, WATERMARK AS {}", time.watermark_sql));
                    }
                    if stream.primary_key.contains(field.name()) {
                        extra.push("PRIMARY KEY NOT ENFORCED".to_string());
                    }
                    column_row(field, extra.join("; "))
                })
                .collect();
            return text_batch(&headers, rows);
        }
        if let Some(view) = self.views.get(name) {
            let event_time = self.event_time_of(&view.plan);
            let rows = view
                .plan
                .schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(index, field)| {
                    let extra = if event_time == Some(index) {
                        "event time"
                    } else {
                        ""
                    };
                    column_row(field, extra.to_string())
                })
                .collect();
            return text_batch(&headers, rows);
        }
        Err(SqlError::Invalid(format!(
            "unknown stream or view '{name}'"
        )))
    }

    /// The column of `plan`'s output that carries the event-time attribute, if one does.
    fn event_time_of(&self, plan: &LogicalPlan) -> Option<usize> {
        let optimized = self.optimize(plan).ok()?;
        let mut lowering = Lowering::new(&self.state, self.engine.catalog());
        lowering.lower_query(&optimized).ok()?.event_time
    }

    /// `plan` optimised by DataFusion, with integer sums checked for overflow, ready to
    /// lower.
    fn optimize(&self, plan: &LogicalPlan) -> Result<LogicalPlan> {
        crate::checked_sum::checked_sums(self.state.optimize(plan)?)
    }

    fn plan(&self, mut statement: ast::Statement) -> Result<LogicalPlan> {
        crate::unnamed_columns::name_unnamed_columns(&mut statement);
        crate::group_window::rewrite_group_windows(&mut statement)?;
        crate::window_tvf::rewrite_window_tvfs(&mut statement)?;
        let catalog = self.engine.catalog();
        let event_time_of = |table: &str| {
            let stream = catalog.get(table)?;
            let time = stream.event_time.as_ref()?;
            Some(stream.schema.field(time.column).name().clone())
        };
        crate::temporal_join::rewrite_temporal_joins(&mut statement, &event_time_of)?;
        let context = self.planning_context();
        Ok(SqlToRel::new(&context).sql_statement_to_plan(statement)?)
    }

    fn planning_context(&self) -> PlanningContext<'_> {
        PlanningContext::new(
            &self.state,
            self.engine.catalog().streams().map(Arc::as_ref),
            self.views.values(),
        )
    }

    fn exists(&self, name: &str) -> bool {
        self.views.contains_key(name) || self.engine.catalog().get(name).is_some()
    }

    fn already_exists(&self, name: &str) -> SqlError {
        let kind = if self.views.contains_key(name) {
            "a view"
        } else {
            "a stream"
        };
        SqlError::Invalid(format!("'{name}' already exists as {kind}"))
    }
}

fn column_row(field: &Field, extra: String) -> Vec<String> {
    vec![
        field.name().clone(),
        sql_type_name(field.data_type()),
        if field.is_nullable() { "YES" } else { "NO" }.to_string(),
        extra,
    ]
}

/// The first two words of a statement, to name what is not supported.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}
