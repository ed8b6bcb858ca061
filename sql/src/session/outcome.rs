//! What a statement did ([`Outcome`]), and the standing queries it started
//! ([`StartedQuery`]).

use std::fmt;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::QueryId;

use crate::statement::ObjectKind;

/// A standing query that was started.
#[derive(Debug, Clone)]
pub struct StartedQuery {
    pub id: QueryId,
    pub name: String,
    /// Where results are written: the view or sink name, else the query name.
    pub output: String,
    pub schema: SchemaRef,
    /// The schema of the late side output, for queries with windows.
    pub late_schema: Option<SchemaRef>,
    /// The stream the query inserts into, if any.
    pub target: Option<String>,
    /// What its author should know, e.g. that its state grows without bound.
    pub warnings: Vec<String>,
    /// Whether its results are a changelog with retractions (`-U`, `-D`), not appends.
    pub updating: bool,
}

/// What a statement did.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created {
        kind: ObjectKind,
        name: String,
    },
    Dropped {
        kind: ObjectKind,
        name: String,
    },
    /// Rows a bounded `INSERT` appended.
    Inserted {
        stream: String,
        rows: usize,
    },
    Started(StartedQuery),
    /// A materialized view and the query that maintains it.
    Materialized(StartedQuery),
    /// A bounded answer: `SHOW`, `DESCRIBE`.
    Rows(RecordBatch),
    /// An alert was registered; with the source's first alert, the query that runs the
    /// source's alerts started.
    AlertCreated {
        name: String,
        started: Option<StartedQuery>,
    },
    /// An alert was dropped; with the source's last alert, the query that ran the
    /// source's alerts stopped (its id and name).
    AlertDropped {
        name: String,
        stopped: Option<(QueryId, String)>,
    },
    /// Nothing changed (`IF EXISTS` / `IF NOT EXISTS`).
    Unchanged(String),
    /// A session setting changed.
    Set {
        key: String,
        value: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Created { kind, name } => write!(f, "created {} {name}", kind.noun()),
            Outcome::Dropped { kind, name } => write!(f, "dropped {} {name}", kind.noun()),
            Outcome::Inserted { stream, rows } => write!(f, "inserted {rows} row(s) into {stream}"),
            Outcome::Started(query) => match &query.target {
                Some(target) => write!(f, "started query {} inserting into {target}", query.name),
                None => write!(f, "started query {}", query.name),
            },
            Outcome::Materialized(query) => {
                write!(f, "created materialized view {}", query.output)
            }
            Outcome::AlertCreated { name, .. } => write!(f, "created alert {name}"),
            Outcome::AlertDropped { name, .. } => write!(f, "dropped alert {name}"),
            Outcome::Rows(rows) => write!(f, "{} row(s)", rows.num_rows()),
            Outcome::Unchanged(reason) => f.write_str(reason),
            Outcome::Set { key, value } => write!(f, "set '{key}' = '{value}'"),
        }
    }
}
