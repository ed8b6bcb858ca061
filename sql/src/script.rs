//! Running a SQL script over inputs, as `sluice run` and the SQL test suite do.
//!
//! Every result-producing statement becomes a standing query whose results are collected
//! under an output name: a `CREATE VIEW` starts a query named after the view, an
//! `INSERT INTO sink SELECT ...` collects what it writes under the sink's name, and each
//! plain `SELECT` is named `q1`, `q2`, ... in script order. A query with windows also has a
//! late side output, named after its output with `.late` appended.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use sluice_engine::time::Millis;
use sluice_engine::{Changes, QueryId, StreamDef};

use crate::session::{Outcome, Session, StartedQuery};
use crate::statement::{ObjectKind, ParsedStatement, Statement};
use crate::{Result, SqlError};

/// A named result of a script, in the order the script first produced it.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    pub name: String,
    pub schema: SchemaRef,
}

#[derive(Default)]
pub struct Script {
    session: Session,
    outputs: Vec<ScriptOutput>,
    output_of: BTreeMap<QueryId, String>,
    /// Late side output names, for queries that have one.
    late_output_of: BTreeMap<QueryId, String>,
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
            let early = self.drain();
            self.drained_early.extend(early);
        }
        let outcome = self.session.execute(statement)?;
        match &outcome {
            Outcome::Dropped {
                kind: ObjectKind::View,
                name,
            } => {
                if let Some(id) = self.view_queries.remove(name) {
                    let early = self.drain();
                    self.drained_early.extend(early);
                    self.session.engine_mut().cancel(id)?;
                }
            }
            Outcome::Started(query) | Outcome::Materialized(query) => self.collect(query),
            Outcome::Created {
                kind: ObjectKind::View,
                name,
            } => {
                let query = self.session.start_view_query(name)?;
                self.view_queries.insert(name.clone(), query.id);
                self.collect(&query);
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
    pub fn drain(&mut self) -> Vec<(String, Changes)> {
        let mut drained = std::mem::take(&mut self.drained_early);
        for (id, results) in self.session.engine_mut().drain_results() {
            if let Some(name) = self.output_of.get(&id) {
                drained.extend(results.into_iter().map(|changes| (name.clone(), changes)));
            }
        }
        for (id, late) in self.session.engine_mut().drain_late_results() {
            if let Some(name) = self.late_output_of.get(&id) {
                drained.extend(late.into_iter().map(|changes| (name.clone(), changes)));
            }
        }
        drained
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

    fn collect(&mut self, query: &StartedQuery) {
        self.warnings.extend(
            query
                .warnings
                .iter()
                .map(|w| format!("query {}: {w}", query.name)),
        );
        self.output_of.insert(query.id, query.output.clone());
        self.add_output(&query.output, &query.schema);
        if let Some(schema) = &query.late_schema {
            let name = format!("{}.late", query.output);
            self.late_output_of.insert(query.id, name.clone());
            self.add_output(&name, schema);
        }
    }

    fn add_output(&mut self, name: &str, schema: &SchemaRef) {
        if !self.outputs.iter().any(|o| o.name == name) {
            self.outputs.push(ScriptOutput {
                name: name.to_string(),
                schema: schema.clone(),
            });
        }
    }
}
