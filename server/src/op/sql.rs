//! `sql`: statements run on the session, one result each.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_sql::{Session, parse_statements};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sql {
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlReply {
    /// One per statement: what it did, or the rows of a `SHOW`, `DESCRIBE` or `EXPLAIN`.
    pub results: Vec<Value>,
}

impl Op for Sql {
    type Reply = SqlReply;
}

impl Sql {
    /// Runs the statements on the core. A group of alert statements is parsed off the core,
    /// checked on it, compiled off it (publishes go on meanwhile), then applied on it.
    pub(crate) async fn carry_out(self, context: &Context) -> Result<SqlReply, ServeError> {
        let sql = self.sql;
        let text = sql.clone();
        let parsed = tokio::task::spawn_blocking(move || parse_statements(&text))
            .await
            .map_err(|e| ServeError::Request(e.to_string()))?;
        let statements = match parsed {
            Ok(statements) if Session::is_alert_group(&statements) => statements,
            // Errors and other statements are for the core to tell.
            _ => {
                let results = context
                    .with_core(move |core| core.execute_sql(&sql))
                    .await?;
                return Ok(SqlReply { results });
            }
        };
        let group = context
            .with_core(move |core| core.alert_group(statements))
            .await?;
        let (group, compiled) = tokio::task::spawn_blocking(move || {
            let compiled = group.compile();
            (group, compiled)
        })
        .await
        .map_err(|e| ServeError::Request(e.to_string()))?;
        let (replies, group) = context
            .with_core(move |core| Ok((core.apply_alert_group(&sql, &group, compiled), group)))
            .await?;
        // Thousands of parsed statements take milliseconds to free: not on the core.
        tokio::task::spawn_blocking(move || drop(group));
        replies.map(|results| SqlReply { results })
    }
}
