//! SQL statements run on the server (DDL, `INSERT`, `SHOW`, `SET`, alert statements):
//! each gives a reply; what changed the catalog is recorded in the journal, a created
//! stream or table gets its log, and inserted rows are appended to it like a publish.

use serde_json::{Value, json};
use sluice_engine::Changes;
use sluice_log::{StreamLog, file_name};
use sluice_sql::session::{AlertGroup, CompiledGroup};
use sluice_sql::{Outcome, ParsedStatement};

use super::journal::CatalogEntry;
use super::json_rows::rows_as_json;
use super::subscription::Target;
use super::{Core, internal};
use crate::ServeError;

impl Core {
    /// Runs SQL statements (DDL, `INSERT`, `SHOW`, `SET`, ...); gives a reply per statement.
    pub fn execute_sql(&mut self, sql: &str) -> Result<Vec<Value>, ServeError> {
        let outcomes = self.session.execute_sql(sql)?;
        self.reply(sql, outcomes)
    }

    /// A group of alert statements, checked, to compile off the core.
    pub fn alert_group(&self, statements: Vec<ParsedStatement>) -> Result<AlertGroup, ServeError> {
        Ok(self.session.alert_group(statements)?)
    }

    /// Applies the alert statements `sql`, checked as `group` and compiled off the core;
    /// gives a reply per statement.
    pub fn apply_alert_group(
        &mut self,
        sql: &str,
        group: &AlertGroup,
        compiled: CompiledGroup,
    ) -> Result<Vec<Value>, ServeError> {
        let outcomes = self.session.apply_alert_group(group, compiled)?;
        self.reply(sql, outcomes)
    }

    /// Records what the statements `sql` did, which gave `outcomes`; a reply per statement.
    fn reply(&mut self, sql: &str, outcomes: Vec<Outcome>) -> Result<Vec<Value>, ServeError> {
        let mut replies = Vec::new();
        let mut changed = false;
        for outcome in outcomes {
            match outcome {
                Outcome::Created { kind, name } => {
                    changed = true;
                    if let Some(def) = self.session.engine().catalog().get(&name).cloned()
                        && matches!(kind.noun(), "stream" | "table")
                    {
                        let dir = self.data_dir.join("streams").join(file_name(&name));
                        let config = self.config;
                        let partitions = match def.option("partitions") {
                            None => 1,
                            Some(text) => text.parse().map_err(|_| {
                                internal(format!(
                                    "'partitions' = '{text}' is not a partition count"
                                ))
                            })?,
                        };
                        let key = def.option("key").map(str::to_string);
                        let tolerant = def.tolerates_errors();
                        let mut streams = self.streams.lock()?;
                        streams.add(&name, def, || {
                            let (log, _) =
                                StreamLog::open(&dir, partitions, key.as_deref(), config)?;
                            Ok(log)
                        })?;
                        if tolerant {
                            // Stream names never hold a '.' once made file names.
                            let dir = dir.with_file_name(format!("{}.rejected", file_name(&name)));
                            streams.add_rejected(&name, || {
                                let (log, _) = StreamLog::open(&dir, 1, None, config)?;
                                Ok(log)
                            })?;
                        }
                    }
                    replies.push(json!({"created": kind.noun(), "name": name}));
                }
                Outcome::Dropped { kind, name } => {
                    changed = true;
                    if matches!(kind.noun(), "stream" | "table") {
                        self.streams.lock()?.forget(&name);
                    }
                    replies.push(json!({"dropped": kind.noun(), "name": name}));
                }
                Outcome::Inserted { stream, rows } => {
                    replies.push(json!({"inserted": rows, "stream": stream}));
                }
                Outcome::AlertCreated { name, started } => {
                    changed = true;
                    if let Some(query) = started {
                        let source = self.session.alert_source_of(&name).unwrap_or(&name);
                        let dir =
                            format!("alerts.{}.{}", file_name(source), self.registrations + 1);
                        self.add_query(&query.name, query.id, dir)?;
                    }
                    replies.push(json!({"created": "alert", "name": name}));
                }
                Outcome::AlertDropped { name, stopped } => {
                    changed = true;
                    self.end_subscriptions(
                        &Target::Alert(name.clone()),
                        &format!("alert '{name}' was dropped"),
                    );
                    if let Some((_, query)) = stopped {
                        self.remove_query(&query)?;
                    }
                    replies.push(json!({"dropped": "alert", "name": name}));
                }
                Outcome::Started(query) | Outcome::Materialized(query) => {
                    // A SELECT run as a statement: register it under its name instead.
                    self.session.engine_mut().cancel(query.id)?;
                    return Err(ServeError::Request(format!(
                        "a query runs as a registered query: use {{\"op\":\"register\",\"name\":\
                         \"...\",\"sql\":\"...\"}} (it would have been '{}')",
                        query.name
                    )));
                }
                Outcome::Rows(rows) => {
                    let columns: Vec<String> = rows
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect();
                    replies.push(json!({"columns": columns, "rows": rows_as_json(&rows)?}));
                }
                Outcome::Unchanged(text) => replies.push(json!({"unchanged": text})),
                Outcome::Set { key, value } => {
                    changed = true;
                    replies.push(json!({"set": key, "value": value}));
                }
            }
        }
        if changed {
            self.remember(CatalogEntry::Statement {
                sql: sql.to_string(),
                at: self.fed_stamp,
            })?;
        }
        self.collect_results(self.fed_stamp)?;
        // Inserted rows are published like any others: the feeder feeds them in turn, and
        // the next request sees them.
        for (stream, rows) in self.session.take_inserted() {
            self.streams
                .lock()?
                .append(&stream, &Changes::inserts(rows))?;
        }
        self.streams.sync()?;
        Ok(replies)
    }
}
