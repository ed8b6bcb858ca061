//! `register`: a standing query whose results go to its own log.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    pub name: String,
    /// A `SELECT`.
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterReply {
    /// The query's name.
    pub registered: String,
}

impl Op for Register {
    type Reply = RegisterReply;
}

impl Register {
    pub(crate) async fn carry_out(self, context: &Context) -> Result<RegisterReply, ServeError> {
        let Register { name, sql } = self;
        let registered = name.clone();
        context
            .with_core(move |core| core.register(&name, &sql))
            .await
            .map(|()| RegisterReply { registered })
    }
}
