//! `ping`: whether the server answers.

use serde::{Deserialize, Serialize};

use super::wire::Op;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ping {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingReply {
    pub pong: bool,
}

impl Op for Ping {
    type Reply = PingReply;
}

impl Ping {
    pub(crate) fn carry_out(self) -> PingReply {
        PingReply { pong: true }
    }
}
