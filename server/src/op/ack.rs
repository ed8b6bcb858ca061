//! `ack`: a subscriber has taken a partition's rows up to an offset; in a group, the group
//! resumes after it.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub subscription: u64,
    pub partition: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckReply {
    pub acked: u64,
}

impl Op for Ack {
    type Reply = AckReply;
}

impl Ack {
    pub(crate) async fn carry_out(self, context: &Context) -> Result<AckReply, ServeError> {
        let Ack {
            subscription,
            partition,
            offset,
        } = self;
        if !context.subscriptions.contains_key(&subscription) {
            return Err(ServeError::Request(format!(
                "no subscription {subscription} on this connection"
            )));
        }
        context
            .with_core(move |core| {
                core.ack(subscription, partition as usize, offset)?;
                Ok(AckReply { acked: offset })
            })
            .await
    }
}
