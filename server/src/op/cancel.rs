//! `cancel`: stops a standing query and deletes its result log.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancel {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelReply {
    /// The query's name.
    pub cancelled: String,
}

impl Op for Cancel {
    type Reply = CancelReply;
}

impl Cancel {
    pub(crate) async fn carry_out(self, context: &Context) -> Result<CancelReply, ServeError> {
        let name = self.name;
        let cancelled = name.clone();
        context
            .with_core(move |core| core.cancel(&name))
            .await
            .map(|()| CancelReply { cancelled })
    }
}
