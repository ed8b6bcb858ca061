//! `list`: the names of the streams and of the standing queries, and the catalog entries
//! that failed on start.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct List {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListReply {
    pub streams: Vec<String>,
    pub queries: Vec<String>,
    /// Catalog entries that failed when replayed on start.
    #[serde(default)]
    pub failed: Vec<FailedEntry>,
}

/// A catalog entry that no longer runs (say, a definition that a newer version refuses):
/// what it was and why it failed. The rest of the catalog runs without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedEntry {
    /// The statement, or `register NAME: SQL`, or `cancel NAME`.
    pub entry: String,
    pub error: String,
}

impl Op for List {
    type Reply = ListReply;
}

impl List {
    pub(crate) async fn carry_out(self, context: &Context) -> Result<ListReply, ServeError> {
        let names = context.with_core(|core| core.names()).await?;
        serde_json::from_value(names).map_err(|error| ServeError::Request(error.to_string()))
    }
}
