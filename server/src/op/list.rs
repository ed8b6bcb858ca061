//! `list`: the names of the streams and of the standing queries.

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
}

impl Op for List {
    type Reply = ListReply;
}

impl List {
    pub(crate) async fn carry_out(self, context: &Context) -> Result<ListReply, ServeError> {
        let names = context.with_core(|core| Ok(core.names())).await?;
        serde_json::from_value(names).map_err(|error| ServeError::Request(error.to_string()))
    }
}
