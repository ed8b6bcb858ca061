//! Alerts: `CREATE ALERT`, `DROP ALERT` and `SHOW ALERTS`.
//!
//! The alerts on one source (a stream or a view) form one [`AlertSet`], run by one query
//! named `alerts:SOURCE` that reads the source and emits the firings: the alert's name
//! and the event's columns. The query starts with the source's first alert and stops when
//! its last alert is dropped. A group of alert statements is all or nothing: every
//! condition is compiled (a large group on every core) before any alert is registered, so
//! one bad condition registers nothing. Compiling needs no access to the session: a server
//! checks a group ([`Session::alert_group`]), compiles it without holding the session
//! ([`AlertGroup::compile`]), and applies it ([`Session::apply_alert_group`]), compiling
//! again under the session if anything changed it in between.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::sql::planner::{PlannerContext, SqlToRel};
use sluice_alerts::{
    AlertOperator, AlertSet, Compiled, SharedAlerts, Suppression, compile_coerced, is_time_type,
    lock,
};
use sluice_engine::QueryGraph;
use sluice_engine::time::parse_duration;

use super::Session;
use super::alert_registry::{AlertDef, RunningSet};
use super::outcome::{Outcome, StartedQuery};
use super::text_batch::text_columns;
use crate::context::PlanningContext;
use crate::hints::QueryHints;
use crate::statement::{CreateAlert, ObjectKind, ParsedStatement, Statement};
use crate::{Result, SqlError};

/// The options `WITH (...)` takes after an alert's condition.
const OPTIONS: [&str; 3] = ["suppress", "suppress.key", "suppress.time"];

/// A statement of a group, checked and compiled, ready to apply.
enum Step {
    Create {
        name: String,
        def: Box<AlertDef>,
        compiled: Compiled,
        suppression: Option<Suppression>,
    },
    Drop(String),
    Unchanged(String),
}

/// A statement of a group, checked: ready to apply, or a condition still to compile (the
/// statement's position in the group).
enum Checked {
    Ready(Step),
    Create(usize),
}

/// A group of statements, checked: each statement's step, the sources its conditions are
/// on, and the queries that would run the alerts of sources that have none yet.
struct Checks {
    steps: Vec<Checked>,
    sources: HashMap<String, Source>,
    new_sets: BTreeMap<String, NewSet>,
}

impl Checks {
    /// The positions of the statements whose conditions are to compile, in order.
    fn creates(&self) -> Vec<usize> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Checked::Create(at) => Some(*at),
                Checked::Ready(_) => None,
            })
            .collect()
    }

    /// Every statement's step, given the compiled steps of [`Checks::creates`], and the
    /// new sources' queries.
    fn into_steps(self, compiled: Vec<Step>) -> ReadySteps {
        let mut compiled = compiled.into_iter();
        let mut ready = Vec::with_capacity(self.steps.len());
        for step in self.steps {
            match step {
                Checked::Ready(step) => ready.push(step),
                Checked::Create(..) => ready.extend(compiled.next()),
            }
        }
        ReadySteps {
            steps: ready,
            new_sets: self.new_sets,
        }
    }
}

/// A group's steps, ready to apply, and the queries that would run the alerts of sources
/// that have none yet.
struct ReadySteps {
    steps: Vec<Step>,
    new_sets: BTreeMap<String, NewSet>,
}

/// A group of `CREATE ALERT` / `DROP ALERT` statements checked against a session, with
/// all that compiling their conditions needs, owned: see the module's description.
pub struct AlertGroup {
    /// The session's [`Session::generation`] when the group was checked.
    generation: u64,
    statements: Vec<ParsedStatement>,
    context: PlanningContext<'static>,
    /// The statements whose conditions are compiled, by position, and their sources.
    creates: Vec<usize>,
    sources: HashMap<String, Source>,
}

/// The conditions of an [`AlertGroup`], compiled (or the first that failed).
pub struct CompiledGroup(Result<Vec<Step>>);

impl AlertGroup {
    /// Compiles the group's conditions (a large group on every core).
    pub fn compile(&self) -> CompiledGroup {
        let statements: Vec<&ParsedStatement> = self.statements.iter().collect();
        let creates = creates_at(&statements, &self.creates);
        CompiledGroup(compile_all(&self.context, &creates, &self.sources))
    }
}

/// The `CREATE ALERT` statements among `statements` at `positions`.
fn creates_at<'a>(statements: &[&'a ParsedStatement], positions: &[usize]) -> Vec<&'a CreateAlert> {
    positions
        .iter()
        .filter_map(|&at| match &statements.get(at)?.statement {
            Statement::CreateAlert(create) => Some(create.as_ref()),
            _ => None,
        })
        .collect()
}

/// Creates below this many compile on the calling thread alone.
const PARALLEL_FROM: usize = 512;

/// The `Step::Create` of each of `creates`, in order, compiled on every core for a large
/// group; the first bad condition, in statement order, is the error.
fn compile_all(
    context: &PlanningContext,
    creates: &[&CreateAlert],
    sources: &HashMap<String, Source>,
) -> Result<Vec<Step>> {
    let compile_chunk = |chunk: &[&CreateAlert]| -> Result<Vec<Step>> {
        let planner = SqlToRel::new(context);
        chunk
            .iter()
            .map(|create| compile_create(&planner, create, sources))
            .collect()
    };
    let threads = crate::parallel::cores();
    if creates.len() < PARALLEL_FROM || threads < 2 {
        return compile_chunk(creates);
    }
    let chunks: Vec<_> = creates.chunks(creates.len().div_ceil(threads)).collect();
    let compiled = crate::parallel::on_each(&chunks, |chunk| compile_chunk(chunk))
        .ok_or_else(|| SqlError::Invalid("compiling alerts failed".into()))?;
    let mut steps = Vec::with_capacity(creates.len());
    for chunk in compiled {
        steps.extend(chunk?);
    }
    Ok(steps)
}

/// Plans, type-checks and compiles the condition of `create` on its source.
fn compile_create(
    planner: &SqlToRel<PlanningContext>,
    create: &CreateAlert,
    sources: &HashMap<String, Source>,
) -> Result<Step> {
    let name = &create.name;
    let in_alert = |e: SqlError| SqlError::Invalid(format!("alert '{name}': {e}"));
    let source = sources.get(&create.source).ok_or_else(|| {
        in_alert(SqlError::Invalid(format!(
            "unknown stream or view '{}'",
            create.source
        )))
    })?;
    let expr = planner
        .sql_to_expr(
            create.condition.clone(),
            &source.df_schema,
            &mut PlannerContext::new(),
        )
        .map_err(|e| in_alert(e.into()))?;
    let expr = source
        .simplifier
        .coerce(expr, &source.df_schema)
        .map_err(|e| in_alert(e.into()))?;
    let data_type = expr
        .get_type(&source.df_schema)
        .map_err(|e| in_alert(e.into()))?;
    if !matches!(data_type, DataType::Boolean | DataType::Null) {
        return Err(in_alert(SqlError::Invalid(format!(
            "the condition '{}' is {}, not a boolean",
            create.condition,
            sluice_engine::types::sql_type_name(&data_type)
        ))));
    }
    let compiled = compile_coerced(expr, &source.events)
        .map_err(|e| in_alert(SqlError::Invalid(e.to_string())))?;
    let suppression = suppression(create, source).map_err(in_alert)?;
    Ok(Step::Create {
        name: name.clone(),
        def: Box::new(AlertDef {
            source: create.source.clone(),
            condition: create.condition.to_string(),
            options: create
                .options
                .iter()
                .map(|(k, v)| format!("'{k}' = '{v}'"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        compiled,
        suppression,
    })
}

/// A source with no running set yet: the query that would run its first alerts.
struct NewSet {
    graph: QueryGraph,
    shared: SharedAlerts,
    event_time: Option<usize>,
}

/// What compiling a condition on a source needs.
struct Source {
    events: SchemaRef,
    df_schema: Arc<DFSchema>,
    /// Coerces conditions' types.
    simplifier: ExprSimplifier,
    event_time: Option<usize>,
}

/// The alert names there are as a group of statements is checked.
struct GroupNames<'a> {
    registered: &'a BTreeMap<String, AlertDef>,
    added: HashSet<String>,
    removed: HashSet<String>,
}

impl GroupNames<'_> {
    fn contains(&self, name: &str) -> bool {
        self.added.contains(name)
            || (self.registered.contains_key(name) && !self.removed.contains(name))
    }

    fn add(&mut self, name: &str) {
        self.added.insert(name.to_string());
    }

    /// Removes `name`; gives whether it was there.
    fn remove(&mut self, name: &str) -> bool {
        if self.added.remove(name) {
            return true;
        }
        self.contains(name) && self.removed.insert(name.to_string())
    }
}

/// The name of the query that runs the alerts on `source`.
pub fn alerts_query_name(source: &str) -> String {
    format!("alerts:{source}")
}

impl Session {
    /// Whether every statement is `CREATE ALERT` or `DROP ALERT`.
    pub(super) fn all_alert_statements<'a>(
        statements: impl IntoIterator<Item = &'a Statement>,
    ) -> bool {
        statements.into_iter().all(|statement| match statement {
            Statement::CreateAlert(_) => true,
            Statement::Drop(drop) => drop.kind == ObjectKind::Alert,
            _ => false,
        })
    }

    /// Runs one `CREATE ALERT` or `DROP ALERT`.
    pub(super) fn alter_alert(&mut self, statement: &ParsedStatement) -> Result<Outcome> {
        self.alter_alerts(&[statement])?
            .pop()
            .ok_or_else(|| SqlError::Invalid("an alert statement did nothing".into()))
    }

    /// Runs a group of `CREATE ALERT` / `DROP ALERT` statements, all or nothing.
    pub(super) fn alter_alerts(&mut self, statements: &[&ParsedStatement]) -> Result<Vec<Outcome>> {
        let checks = self.check_alerts(statements)?;
        let creates = creates_at(statements, &checks.creates());
        let compiled = compile_all(&self.planning_context(), &creates, &checks.sources)?;
        self.apply_alert_steps(checks.into_steps(compiled))
    }

    /// Whether `statements` are a group of `CREATE ALERT` and `DROP ALERT` statements.
    pub fn is_alert_group(statements: &[ParsedStatement]) -> bool {
        !statements.is_empty()
            && Self::all_alert_statements(statements.iter().map(|s| &s.statement))
    }

    /// A group of alert statements (see [`Session::is_alert_group`]), checked, to compile
    /// apart from the session (see the module's description).
    pub fn alert_group(&self, statements: Vec<ParsedStatement>) -> Result<AlertGroup> {
        if !Self::is_alert_group(&statements) {
            return Err(SqlError::Invalid(
                "only CREATE ALERT and DROP ALERT run in a group of alert statements".into(),
            ));
        }
        let group: Vec<&ParsedStatement> = statements.iter().collect();
        let checks = self.check_alerts(&group)?;
        Ok(AlertGroup {
            generation: self.generation,
            context: self.planning_context().into_owned(),
            creates: checks.creates(),
            sources: checks.sources,
            statements,
        })
    }

    /// Applies a group compiled apart from the session; when the session changed since
    /// the group was checked, checks and compiles it again first.
    /// The group is borrowed so that its statements, which take a while to free, can be
    /// freed elsewhere.
    pub fn apply_alert_group(
        &mut self,
        group: &AlertGroup,
        compiled: CompiledGroup,
    ) -> Result<Vec<Outcome>> {
        let changed = group.generation != self.generation;
        self.generation += 1;
        let statements: Vec<&ParsedStatement> = group.statements.iter().collect();
        if changed {
            return self.alter_alerts(&statements);
        }
        let ready = self.check_alerts(&statements)?.into_steps(compiled.0?);
        self.apply_alert_steps(ready)
    }

    /// Applies the steps of a checked and compiled group.
    fn apply_alert_steps(&mut self, ready: ReadySteps) -> Result<Vec<Outcome>> {
        let ReadySteps {
            steps,
            mut new_sets,
        } = ready;
        let mut outcomes = Vec::with_capacity(steps.len());
        // Per source whose alerts were dropped, the outcome of its last drop.
        let mut last_drop: BTreeMap<String, usize> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Unchanged(reason) => outcomes.push(Outcome::Unchanged(reason)),
                Step::Create {
                    name,
                    def,
                    compiled,
                    suppression,
                } => {
                    let mut started = None;
                    if !self.alerts.sets.contains_key(&def.source)
                        && let Some(new) = new_sets.remove(&def.source)
                    {
                        started = Some(self.start_alert_set(&def.source, new)?);
                    }
                    let set = self.alerts.sets.get(&def.source).ok_or_else(|| {
                        SqlError::Invalid(format!("no alerts run on '{}'", def.source))
                    })?;
                    lock(&set.shared)?
                        .insert(&name, compiled, suppression)
                        .map_err(|e| SqlError::Invalid(e.to_string()))?;
                    self.alerts.defs.insert(name.clone(), *def);
                    outcomes.push(Outcome::AlertCreated { name, started });
                }
                Step::Drop(name) => {
                    if let Some(def) = self.alerts.defs.remove(&name) {
                        if let Some(set) = self.alerts.sets.get(&def.source) {
                            lock(&set.shared)?.remove(&name);
                        }
                        last_drop.insert(def.source, outcomes.len());
                    }
                    outcomes.push(Outcome::AlertDropped {
                        name,
                        stopped: None,
                    });
                }
            }
        }
        for (source, at) in last_drop {
            let empty = match self.alerts.sets.get(&source) {
                Some(set) => lock(&set.shared)?.is_empty(),
                None => false,
            };
            if empty && let Some(set) = self.alerts.sets.remove(&source) {
                self.engine.cancel(set.query)?;
                if let Some(Outcome::AlertDropped { stopped, .. }) = outcomes.get_mut(at) {
                    *stopped = Some((set.query, alerts_query_name(&source)));
                }
            }
        }
        Ok(outcomes)
    }

    /// Checks every statement of a group.
    fn check_alerts(&self, statements: &[&ParsedStatement]) -> Result<Checks> {
        // The alerts the group creates and drops, on top of those registered.
        let mut names = GroupNames {
            registered: &self.alerts.defs,
            added: HashSet::new(),
            removed: HashSet::new(),
        };
        let mut sources: HashMap<String, Source> = HashMap::new();
        let mut new_sets = BTreeMap::new();
        let mut steps = Vec::with_capacity(statements.len());
        for (at, parsed) in statements.iter().enumerate() {
            match &parsed.statement {
                Statement::CreateAlert(create) => {
                    let name = &create.name;
                    if names.contains(name) {
                        if create.if_not_exists {
                            steps.push(Checked::Ready(Step::Unchanged(format!(
                                "alert '{name}' already exists"
                            ))));
                            continue;
                        }
                        return Err(SqlError::Invalid(format!("alert '{name}' already exists")));
                    }
                    if self.exists(name) {
                        return Err(self.already_exists(name));
                    }
                    let in_alert = |e: SqlError| SqlError::Invalid(format!("alert '{name}': {e}"));
                    if !sources.contains_key(&create.source) {
                        let source = self
                            .alert_source(&create.source, &mut new_sets)
                            .map_err(in_alert)?;
                        sources.insert(create.source.clone(), source);
                    }
                    names.add(name);
                    steps.push(Checked::Create(at));
                }
                Statement::Drop(drop) => {
                    if names.remove(&drop.name) {
                        steps.push(Checked::Ready(Step::Drop(drop.name.clone())));
                    } else if drop.if_exists {
                        steps.push(Checked::Ready(Step::Unchanged(format!(
                            "alert '{}' does not exist",
                            drop.name
                        ))));
                    } else {
                        return Err(SqlError::Invalid(format!("unknown alert '{}'", drop.name)));
                    }
                }
                _ => {
                    return Err(SqlError::Invalid(
                        "only CREATE ALERT and DROP ALERT run in a group of alert statements"
                            .into(),
                    ));
                }
            }
        }
        Ok(Checks {
            steps,
            sources,
            new_sets,
        })
    }

    /// The events of `source` as alerts see them; for a source with no alerts yet, also
    /// the query that would run them (added to `new_sets`).
    fn alert_source(
        &self,
        source: &str,
        new_sets: &mut BTreeMap<String, NewSet>,
    ) -> Result<Source> {
        let (events, event_time) = match self.alerts.sets.get(source) {
            Some(set) => (lock(&set.shared)?.events().clone(), set.event_time),
            None => {
                let new = self.new_alert_set(source)?;
                let events = lock(&new.shared)?.events().clone();
                let event_time = new.event_time;
                new_sets.insert(source.to_string(), new);
                (events, event_time)
            }
        };
        let df_schema = Arc::new(DFSchema::try_from(events.as_ref().clone())?);
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(df_schema.clone())
                .build(),
        );
        Ok(Source {
            events,
            df_schema,
            simplifier,
            event_time,
        })
    }

    /// The query that reads `source` and runs an (empty) alert set over it.
    fn new_alert_set(&self, source: &str) -> Result<NewSet> {
        if !self.exists(source) {
            return Err(SqlError::Invalid(format!(
                "unknown stream or view '{source}'"
            )));
        }
        let quoted = source.replace('"', "\"\"");
        let select = crate::parse_statements(&format!("SELECT * FROM \"{quoted}\""))?;
        let Some(Statement::Sql(statement)) = select.into_iter().next().map(|s| s.statement) else {
            return Err(SqlError::Invalid(format!("cannot read '{source}'")));
        };
        let plan = self.plan(*statement)?;
        let optimized = self.optimize(&plan)?;
        let mut lowering = self.lowering(QueryHints::default());
        let lowered = lowering.lower_query(&optimized)?;
        let events = lowering.builder.schema(lowered.node);
        let set = AlertSet::new(events).map_err(|e| SqlError::Invalid(e.to_string()))?;
        let firings = set.firings().clone();
        let shared = Arc::new(Mutex::new(set));
        let operator = AlertOperator::new(shared.clone())?;
        // The late firings of suppressed alerts are the query's late side output, unless
        // the source already has one (a window's late rows); then they are not reported.
        let reports_late = !lowering.builder.has_late_schema();
        if reports_late {
            lowering.builder.set_late_schema(firings)?;
        }
        let node = lowering.builder.add(Box::new(operator), &[lowered.node]);
        if !reports_late {
            lowering.builder.ignore_late(node);
        }
        Ok(NewSet {
            graph: lowering.builder.build(node),
            shared,
            event_time: lowered.event_time,
        })
    }

    fn start_alert_set(&mut self, source: &str, new: NewSet) -> Result<StartedQuery> {
        let name = alerts_query_name(source);
        let schema = new.graph.schema();
        let late_schema = new.graph.late_schema();
        let id = self.engine.register_query(&name, new.graph, None)?;
        self.alerts.sets.insert(
            source.to_string(),
            RunningSet {
                query: id,
                shared: new.shared,
                event_time: new.event_time,
            },
        );
        Ok(StartedQuery {
            id,
            name: name.clone(),
            output: name,
            schema,
            late_schema,
            target: None,
            warnings: Vec::new(),
            updating: false,
        })
    }

    /// The schema of alert `name`'s firings in a file: the event's columns.
    pub fn alert_events(&self, name: &str) -> Option<SchemaRef> {
        let def = self.alerts.defs.get(name)?;
        let set = self.alerts.sets.get(&def.source)?;
        lock(&set.shared).ok().map(|set| set.events().clone())
    }

    /// Whether alert `name` has a suppression, so late firings (see `AlertSet`).
    pub fn alert_suppressed(&self, name: &str) -> bool {
        let Some(set) = self
            .alerts
            .defs
            .get(name)
            .and_then(|def| self.alerts.sets.get(&def.source))
        else {
            return false;
        };
        lock(&set.shared).is_ok_and(|set| set.suppresses(name))
    }

    /// The source alert `name` is on.
    pub fn alert_source_of(&self, name: &str) -> Option<&str> {
        self.alerts.defs.get(name).map(|def| def.source.as_str())
    }

    /// An alert reading `name`, if any: a stream or view with alerts cannot be dropped.
    pub(super) fn alert_reading(&self, name: &str) -> Option<&str> {
        self.alerts
            .defs
            .iter()
            .find(|(_, def)| def.source == name)
            .map(|(alert, _)| alert.as_str())
    }

    /// `SHOW ALERTS`: name, source, condition, options and firings so far, by name; made
    /// column by column from the definitions, as a million alerts make a large answer.
    pub(super) fn show_alerts(&self) -> Result<RecordBatch> {
        let sets = self
            .alerts
            .sets
            .values()
            .map(|set| lock(&set.shared))
            .collect::<sluice_engine::Result<Vec<_>>>()?;
        // Each source's alerts come in order of name, as the definitions do: each
        // definition's count is found by walking its source's list alongside.
        let mut by_source: HashMap<&str, _> = self
            .alerts
            .sets
            .keys()
            .zip(&sets)
            .map(|(source, set)| (source.as_str(), set.fired_by_name().peekable()))
            .collect();
        let defs = &self.alerts.defs;
        let fired = defs.iter().map(|(name, def)| {
            let mut fired = 0;
            if let Some(counts) = by_source.get_mut(def.source.as_str()) {
                while let Some((other, count)) =
                    counts.next_if(|(other, _)| *other <= name.as_str())
                {
                    if other == name {
                        fired = count;
                    }
                }
            }
            fired.to_string()
        });
        let text = |field: fn(&AlertDef) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(defs.values().map(field)))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(defs.keys())),
            text(|def| &def.source),
            text(|def| &def.condition),
            text(|def| &def.options),
            Arc::new(StringArray::from_iter_values(fired)),
        ];
        text_columns(
            &["name", "source", "condition", "options", "fired"],
            columns,
        )
    }
}

/// The suppression `WITH (...)` asks for, checked against the source's columns.
fn suppression(create: &CreateAlert, source: &Source) -> Result<Option<Suppression>> {
    let mut interval = None;
    let mut key = Vec::new();
    let mut time = source.event_time;
    let column = |name: &str| -> Result<usize> {
        let name = name.trim();
        source
            .events
            .index_of(name)
            .or_else(|_| source.events.index_of(&name.to_ascii_lowercase()))
            .map_err(|_| {
                SqlError::Invalid(format!("unknown column '{name}' in '{}'", create.source))
            })
    };
    for (option, value) in &create.options {
        match option.as_str() {
            "suppress" => {
                interval = Some(
                    parse_duration(value)
                        .map_err(|e| SqlError::Invalid(format!("option 'suppress': {e}")))?,
                );
            }
            "suppress.key" => {
                key = value.split(',').map(column).collect::<Result<Vec<_>>>()?;
            }
            "suppress.time" => {
                let at = column(value)?;
                if !is_time_type(source.events.field(at).data_type()) {
                    return Err(SqlError::Invalid(format!(
                        "option 'suppress.time': '{value}' is not a timestamp column"
                    )));
                }
                time = Some(at);
            }
            other => {
                return Err(SqlError::Invalid(format!(
                    "unknown option '{other}' (an alert takes {})",
                    OPTIONS.join(", ")
                )));
            }
        }
    }
    let Some(interval) = interval else {
        if create.options.is_empty() {
            return Ok(None);
        }
        return Err(SqlError::Invalid(
            "'suppress.key' and 'suppress.time' need 'suppress' (the interval)".into(),
        ));
    };
    if interval <= 0 {
        return Err(SqlError::Invalid(
            "option 'suppress': the interval must be positive".into(),
        ));
    }
    let Some(time) = time else {
        return Err(SqlError::Invalid(format!(
            "'{}' has no event-time column to measure 'suppress' in: name a timestamp \
             column with 'suppress.time'",
            create.source
        )));
    };
    Ok(Some(Suppression {
        interval,
        key,
        time,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_statements;

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// The names of the alerts `outcomes` created.
    fn created(outcomes: &[Outcome]) -> Vec<&str> {
        outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::AlertCreated { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    fn session() -> Result<Session> {
        let mut session = Session::new();
        session.execute_sql("CREATE STREAM s (a INT, b STRING)")?;
        Ok(session)
    }

    #[test]
    fn a_group_compiled_apart_is_applied() -> TestResult {
        let mut session = session()?;
        assert!(!Session::is_alert_group(&parse_statements("SHOW ALERTS")?));
        let sql = "CREATE ALERT x ON s WHERE a > 1; DROP ALERT IF EXISTS w; \
                   CREATE ALERT y ON s WHERE b = 'q'";
        let group = session.alert_group(parse_statements(sql)?)?;
        let compiled = group.compile();
        let outcomes = session.apply_alert_group(&group, compiled)?;
        assert_eq!(created(&outcomes), ["x", "y"]);
        assert!(matches!(
            outcomes.get(1),
            Some(Outcome::Unchanged(reason)) if reason == "alert 'w' does not exist"
        ));
        assert_eq!(session.alert_source_of("y"), Some("s"));
        Ok(())
    }

    #[test]
    fn a_bad_condition_found_apart_registers_nothing() -> TestResult {
        let mut session = session()?;
        let sql = "CREATE ALERT x ON s WHERE a > 1; CREATE ALERT y ON s WHERE nosuch = 1";
        let group = session.alert_group(parse_statements(sql)?)?;
        let compiled = group.compile();
        let error = session.apply_alert_group(&group, compiled).err();
        let error = error.ok_or("a bad condition was applied")?.to_string();
        assert!(error.starts_with("alert 'y': "), "{error}");
        assert_eq!(session.alert_source_of("x"), None);
        Ok(())
    }

    #[test]
    fn a_group_is_checked_again_when_the_session_changed_meanwhile() -> TestResult {
        let mut session = session()?;
        let sql = "CREATE ALERT x ON s WHERE a > 1; CREATE ALERT y ON s WHERE b = 'q'";
        let group = session.alert_group(parse_statements(sql)?)?;
        // Another request registers `x` while the group compiles.
        session.execute_sql("CREATE ALERT x ON s WHERE a < 0")?;
        let compiled = group.compile();
        let error = session.apply_alert_group(&group, compiled).err();
        let error = error.ok_or("a name was registered twice")?.to_string();
        assert_eq!(error, "alert 'x' already exists");
        assert_eq!(session.alert_source_of("y"), None);

        // And the stream the group's alerts are on is dropped and made again, with other
        // columns: the condition no longer type-checks.
        let group = session.alert_group(parse_statements("CREATE ALERT z ON s WHERE b = 'q'")?)?;
        session.execute_sql("DROP ALERT x; DROP STREAM s; CREATE STREAM s (b INT)")?;
        let compiled = group.compile();
        let error = session.apply_alert_group(&group, compiled).err();
        let error = error.ok_or("a stale condition was applied")?.to_string();
        assert!(error.starts_with("alert 'z': "), "{error}");
        Ok(())
    }
}
