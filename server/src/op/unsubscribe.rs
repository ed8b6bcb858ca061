//! `unsubscribe`: stops a subscription's rows.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribe {
    pub subscription: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeReply {
    pub unsubscribed: u64,
}

impl Op for Unsubscribe {
    type Reply = UnsubscribeReply;
}

impl Unsubscribe {
    pub(crate) async fn carry_out(
        self,
        context: &mut Context,
    ) -> Result<UnsubscribeReply, ServeError> {
        let subscription = self.subscription;
        if let Some(task) = context.subscriptions.remove(&subscription) {
            task.abort();
        }
        context
            .with_core(move |core| {
                core.unsubscribe(subscription);
                Ok(UnsubscribeReply {
                    unsubscribed: subscription,
                })
            })
            .await
    }
}
