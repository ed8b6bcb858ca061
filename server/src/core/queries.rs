//! Standing queries: registering one (a view and the query running it, with logs of its
//! own under `results/`), cancelling it, and forgetting it with its subscribers and its logs.

use datafusion::sql::sqlparser::ast;
use sluice_engine::QueryId;
use sluice_engine::limits::MAX_NAME_BYTES;
use sluice_log::file_name;
use sluice_sql::parse_statements;
use sluice_sql::statement::Statement;

use super::Core;
use super::journal::CatalogEntry;
use super::result_log::Query;
use super::subscription::Target;
use crate::ServeError;

impl Core {
    /// Starts a standing query named `name` whose results go to its own log.
    pub fn register(&mut self, name: &str, sql: &str) -> Result<(), ServeError> {
        let dir = format!("{}.{}", file_name(name), self.registrations + 1);
        self.start_query(name, sql, dir.clone())?;
        self.remember(CatalogEntry::Register {
            name: name.to_string(),
            sql: sql.to_string(),
            at: self.fed_stamp,
            dir: Some(dir),
        })
    }

    pub(super) fn start_query(
        &mut self,
        name: &str,
        sql: &str,
        dir: String,
    ) -> Result<(), ServeError> {
        check_registration(name, sql)?;
        if self.queries.contains_key(name) {
            return Err(ServeError::Request(format!(
                "query '{name}' already exists"
            )));
        }
        let view = format!("CREATE VIEW \"{name}\" AS {sql}");
        self.session.execute_sql(&view)?;
        let started = match self.session.start_view_query(name) {
            Ok(started) => started,
            Err(error) => {
                // Leave no view behind a query that did not start.
                let _ = self.session.execute_sql(&format!("DROP VIEW \"{name}\""));
                return Err(error.into());
            }
        };
        self.add_query(name, started.id, dir)
    }

    /// Keeps the results of running query `id` in result log `dir`, under `name`.
    pub(super) fn add_query(
        &mut self,
        name: &str,
        id: QueryId,
        dir: String,
    ) -> Result<(), ServeError> {
        self.registrations += 1;
        let query = Query::open(id, &self.data_dir.join("results"), &dir, self.config)?;
        self.streams.lock()?.saw_stamp(query.last_stamp());
        self.queries.insert(name.to_string(), query);
        self.update_retention_floors()?;
        // Results of the registration itself (a table's current rows).
        self.collect_results(self.fed_stamp)
    }

    /// Stops query `name` and deletes its result log.
    pub fn cancel(&mut self, name: &str) -> Result<(), ServeError> {
        let query = self
            .queries
            .get(name)
            .ok_or_else(|| ServeError::Request(format!("no query named '{name}'")))?;
        if name.starts_with("alerts:") {
            return Err(ServeError::Request(format!(
                "'{name}' runs alerts: it stops when its last alert is dropped (DROP ALERT)"
            )));
        }
        self.session.engine_mut().cancel(query.id)?;
        self.session.execute_sql(&format!("DROP VIEW \"{name}\""))?;
        self.remember(CatalogEntry::Cancel {
            name: name.to_string(),
            at: self.fed_stamp,
        })?;
        self.remove_query(name)
    }

    /// Forgets query `name` (stopped already), its subscribers and its result log.
    pub(super) fn remove_query(&mut self, name: &str) -> Result<(), ServeError> {
        let Some(query) = self.queries.remove(name) else {
            return Ok(());
        };
        self.failed_queries.remove(name);
        self.update_retention_floors()?;
        for output in [
            name.to_string(),
            format!("{name}.late"),
            format!("{name}.errors"),
        ] {
            self.end_subscriptions(
                &Target::Query(output),
                &format!("query '{name}' was stopped"),
            );
        }
        query.remove(&self.data_dir.join("results"))
    }
}

/// Checks that `name` is a plain identifier and `sql` exactly one query, so that the view
/// statement built from them is that one view and nothing else.
fn check_registration(name: &str, sql: &str) -> Result<(), ServeError> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_BYTES;
    if !plain {
        return Err(ServeError::Request(format!(
            "query name {name:?}: a query name is letters, digits and '_', not starting with a \
             digit, at most {MAX_NAME_BYTES} bytes"
        )));
    }
    let statements = parse_statements(sql)?;
    let one_query = match statements.as_slice() {
        [parsed] => match &parsed.statement {
            Statement::Sql(statement) => matches!(statement.as_ref(), ast::Statement::Query(_)),
            _ => false,
        },
        _ => false,
    };
    if !one_query {
        return Err(ServeError::Request(format!(
            "register takes one SELECT; {} statement(s) were sent",
            statements.len()
        )));
    }
    Ok(())
}
