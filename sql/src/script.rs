//! Running a SQL script over inputs, as `sluice run` and the SQL test suite do.
//!
//! Every result-producing statement becomes a standing query whose results are collected
//! under an output name: a `CREATE VIEW` starts a query named after the view, an
//! `INSERT INTO sink SELECT ...` collects what it writes under the sink's name, and each
//! plain `SELECT` is named `q1`, `q2`, ... in script order. A query with windows also has a
//! late side output, named after its output with `.late` appended. Each alert is an output
//! too, named after the alert: its firings, as the event's columns. Rows a query could not
//! compute (a division by zero, an overflow) go to `NAME.errors`, an output added when the
//! first comes: the error and the row as JSON. Two outputs of different kinds never share a
//! name (see [`OutputSource`]); `sluice run` turns names into file names with
//! `sluice_log::file_name`, so that no two outputs share a file either.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast;
use sluice_engine::checkpoint;
use sluice_engine::failure::{failure_rows, failure_schema};
use sluice_engine::output::unpacked;
use sluice_engine::state::{StateReader, StateWriter};
use sluice_engine::time::Millis;
use sluice_engine::{Changes, QueryId, StreamDef};

use crate::session::{Outcome, Session, StartedQuery};
use crate::statement::{ObjectKind, ParsedStatement, Statement};
use crate::{Result, SqlError};

/// A named result of a script, in the order the script first produced it.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    pub name: String,
    pub source: OutputSource,
    pub schema: SchemaRef,
    /// Whether a query writing it may retract rows it wrote (`-U`, `-D`).
    pub updating: bool,
}

/// What an output holds. Two outputs never share a name: a statement whose output would
/// take a name another kind of output has is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSource {
    /// A plain `SELECT`'s results.
    Select,
    /// A view's rows.
    View,
    /// What `INSERT INTO` statements wrote to a sink, one output for them all.
    Sink,
    /// An alert's firings.
    Alert,
    /// The late rows of output `of`.
    Late { of: String },
    /// The rows output `of`'s query could not compute, with their errors; added when the
    /// first one comes.
    Errors { of: String },
}

impl OutputSource {
    fn describe(&self, name: &str) -> String {
        match self {
            OutputSource::Select => format!("the results of the SELECT named '{name}'"),
            OutputSource::View => format!("view '{name}'"),
            OutputSource::Sink => format!("the rows inserted into '{name}'"),
            OutputSource::Alert => format!("alert '{name}'"),
            OutputSource::Late { of } => format!("the late rows of '{of}'"),
            OutputSource::Errors { of } => format!("the rows '{of}' could not compute"),
        }
    }
}

#[derive(Default)]
pub struct Script {
    session: Session,
    outputs: Vec<ScriptOutput>,
    output_of: BTreeMap<QueryId, String>,
    /// Late side output names, for queries that have one.
    late_output_of: BTreeMap<QueryId, String>,
    /// The queries running alerts: their results are split by alert.
    alert_queries: BTreeSet<QueryId>,
    /// The query started for each view, stopped when the view is dropped.
    view_queries: BTreeMap<String, QueryId>,
    /// Results of stopped queries, not drained yet.
    drained_early: Vec<(String, Changes)>,
    /// Warnings of the queries started since the last call to [`Script::take_warnings`].
    warnings: Vec<String>,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares that the script's inputs all end, as `sluice run` feeds files (see
    /// [`Session::set_bounded_inputs`]).
    pub fn set_bounded_inputs(&mut self) {
        self.session.set_bounded_inputs();
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The outputs so far, in script order; each name appears once.
    pub fn outputs(&self) -> &[ScriptOutput] {
        &self.outputs
    }

    /// Runs one statement; a view also starts a query emitting its rows, which dropping the
    /// view stops.
    pub fn execute(&mut self, statement: &ParsedStatement) -> Result<Outcome> {
        if matches!(statement.statement, Statement::Drop(_)) {
            // Dropping may stop queries: keep what they emitted so far.
            let early = self.drain()?;
            self.drained_early.extend(early);
        }
        let outcome = self.session.execute(statement)?;
        match &outcome {
            Outcome::Dropped {
                kind: ObjectKind::View,
                name,
            } => {
                if let Some(id) = self.view_queries.remove(name) {
                    let early = self.drain()?;
                    self.drained_early.extend(early);
                    self.session.engine_mut().cancel(id)?;
                }
            }
            Outcome::Materialized(query) => self.collect(query, OutputSource::View)?,
            Outcome::Started(query) => {
                let source = match &statement.statement {
                    Statement::Sql(sql) if matches!(sql.as_ref(), ast::Statement::Query(_)) => {
                        OutputSource::Select
                    }
                    _ => OutputSource::Sink,
                };
                self.collect(query, source)?
            }
            Outcome::AlertCreated { name, started } => {
                if let Some(query) = started {
                    self.alert_queries.insert(query.id);
                }
                if let Some(events) = self.session.alert_events(name) {
                    self.add_output(name, OutputSource::Alert, &events)?;
                    if self.session.alert_suppressed(name) {
                        let late = OutputSource::Late { of: name.clone() };
                        self.add_output(&format!("{name}.late"), late, &events)?;
                    }
                }
            }
            Outcome::Created {
                kind: ObjectKind::View,
                name,
            } => {
                let query = self.session.start_view_query(name)?;
                self.view_queries.insert(name.clone(), query.id);
                self.collect(&query, OutputSource::View)?;
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Appends changes of physical rows to `stream`.
    pub fn feed(&mut self, stream: &str, changes: &Changes) -> Result<()> {
        Ok(self.session.engine_mut().append_changes(stream, changes)?)
    }

    /// Raises `stream`'s watermark.
    pub fn advance_watermark(&mut self, stream: &str, watermark: Millis) -> Result<()> {
        Ok(self
            .session
            .engine_mut()
            .advance_watermark(stream, watermark)?)
    }

    /// Ends all input: watermarks go to `+inf` and every pending result is emitted.
    pub fn finish(&mut self) -> Result<()> {
        Ok(self.session.engine_mut().finish()?)
    }

    /// Results emitted since the last call, with their output names.
    pub fn drain(&mut self) -> Result<Vec<(String, Changes)>> {
        let mut drained = std::mem::take(&mut self.drained_early);
        for (id, results) in self.session.engine_mut().drain_results() {
            if self.alert_queries.contains(&id) {
                for changes in results {
                    drained.extend(by_alert(&changes.rows, "", Changes::inserts)?);
                }
            } else if let Some(name) = self.output_of.get(&id) {
                drained.extend(results.into_iter().map(|changes| (name.clone(), changes)));
            }
        }
        for (id, failures) in self.session.engine_mut().drain_failures() {
            let of = match self.output_of.get(&id) {
                Some(name) => name.clone(),
                None => continue,
            };
            let name = format!("{of}.errors");
            self.add_output(&name, OutputSource::Errors { of }, &failure_schema())?;
            drained.push((name, Changes::inserts(failure_rows(&failures)?)));
        }
        for (id, late) in self.session.engine_mut().drain_late_results() {
            if self.alert_queries.contains(&id) {
                for changes in late {
                    drained.extend(by_alert(&changes.rows, ".late", Changes::late)?);
                }
            } else if let Some(name) = self.late_output_of.get(&id) {
                drained.extend(late.into_iter().map(|changes| (name.clone(), changes)));
            }
        }
        Ok(drained)
    }

    /// Everything the script's input has changed, as a checkpoint file: the engine's state
    /// and the error outputs rows have added. Call it once [`Script::drain`] has taken every
    /// result; a script that ran the same statements and no input takes it back with
    /// [`Script::restore`].
    pub fn checkpoint(&mut self) -> Result<Vec<u8>> {
        let mut state = StateWriter::new();
        self.save_state(&mut state)?;
        Ok(checkpoint::encode(&state.into_bytes()))
    }

    /// Takes back the state of checkpoint file `file` (see [`Script::checkpoint`]).
    pub fn restore(&mut self, file: &[u8]) -> Result<()> {
        let mut state = checkpoint::decode("the checkpoint", file)?.reader();
        self.load_state(&mut state)?;
        if !state.is_at_end() {
            return Err(SqlError::Invalid(
                "the checkpoint holds more state than the script's queries".into(),
            ));
        }
        Ok(())
    }

    /// Writes what [`Script::checkpoint`] frames.
    pub fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        if !self.drained_early.is_empty() {
            return Err(SqlError::Invalid(
                "results were not drained before the checkpoint".into(),
            ));
        }
        state.label("script");
        let errors: Vec<(&str, &str)> = self
            .outputs
            .iter()
            .filter_map(|output| match &output.source {
                OutputSource::Errors { of } => Some((output.name.as_str(), of.as_str())),
                _ => None,
            })
            .collect();
        state.usize(errors.len());
        for (name, of) in errors {
            state.string(name);
            state.string(of);
        }
        self.session.engine_mut().save_state(state)?;
        Ok(())
    }

    /// Reads what [`Script::save_state`] wrote.
    pub fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        state.label("script")?;
        for _ in 0..state.usize()? {
            let name = state.string()?;
            let of = state.string()?;
            self.add_output(&name, OutputSource::Errors { of }, &failure_schema())?;
        }
        let left_out = self.session.engine_mut().load_state(state)?;
        if let Some((id, reason)) = left_out.first() {
            let name = self.output_of.get(id).cloned().unwrap_or_default();
            return Err(SqlError::Invalid(format!(
                "the checkpoint does not fit query '{name}': {reason}"
            )));
        }
        Ok(())
    }

    /// Stops keeping stream history for later queries (call once every query is started).
    pub fn stop_retaining_history(&mut self) {
        self.session.engine_mut().stop_retaining_history();
    }

    /// Stream `name`; the error lists the streams there are.
    pub fn stream(&self, name: &str) -> Result<Arc<StreamDef>> {
        let catalog = self.session.engine().catalog();
        catalog.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = catalog.streams().map(|s| s.name.as_str()).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            SqlError::Invalid(format!("unknown stream '{name}' (streams: {known})"))
        })
    }

    /// Warnings of the queries started since the last call, e.g. about unbounded state.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn collect(&mut self, query: &StartedQuery, source: OutputSource) -> Result<()> {
        self.warnings.extend(
            query
                .warnings
                .iter()
                .map(|w| format!("query {}: {w}", query.name)),
        );
        self.add_output(&query.output, source, &query.schema)?;
        if query.updating
            && let Some(output) = self.outputs.iter_mut().find(|o| o.name == query.output)
        {
            output.updating = true;
        }
        self.output_of.insert(query.id, query.output.clone());
        if let Some(schema) = &query.late_schema {
            let name = format!("{}.late", query.output);
            let late = OutputSource::Late {
                of: query.output.clone(),
            };
            self.add_output(&name, late, schema)?;
            self.late_output_of.insert(query.id, name);
        }
        Ok(())
    }

    /// Adds output `name`, unless it is there already (a sink written by several
    /// statements, a view or alert made again); an output of another kind with that name is
    /// an error.
    fn add_output(&mut self, name: &str, source: OutputSource, schema: &SchemaRef) -> Result<()> {
        match self.outputs.iter().find(|o| o.name == name) {
            None => {
                self.outputs.push(ScriptOutput {
                    name: name.to_string(),
                    source,
                    schema: schema.clone(),
                    updating: false,
                });
                Ok(())
            }
            Some(output) if output.source == source => Ok(()),
            Some(output) => Err(SqlError::Invalid(format!(
                "the output name '{name}' is taken by {}; choose another name",
                output.source.describe(name)
            ))),
        }
    }
}

/// Firings (the alert's name, then the event's columns) split by alert, in the order each
/// alert first fired, into outputs named by the alert and `suffix`; each part keeps the
/// event's columns only, as changes made by `changes`.
fn by_alert(
    firings: &RecordBatch,
    suffix: &str,
    changes: fn(RecordBatch) -> Changes,
) -> Result<Vec<(String, Changes)>> {
    let firings = &unpacked(firings)?;
    let names = firings
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| SqlError::Invalid("firings without an alert name".into()))?;
    let mut rows: Vec<(&str, Vec<u32>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for row in 0..names.len() {
        let name = names.value(row);
        let at = *position.entry(name).or_insert_with(|| {
            rows.push((name, Vec::new()));
            rows.len() - 1
        });
        rows[at].1.push(row as u32);
    }
    let mut events = firings.clone();
    events.remove_column(0);
    rows.into_iter()
        .map(|(name, indices)| {
            let part = take_record_batch(&events, &UInt32Array::from(indices))?;
            Ok((format!("{name}{suffix}"), changes(part)))
        })
        .collect()
}
