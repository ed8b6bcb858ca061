//! `quit`: the server answers, then closes the connection.

use serde::{Deserialize, Serialize};

use super::wire::Op;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Quit {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuitReply {
    pub bye: bool,
}

impl Op for Quit {
    type Reply = QuitReply;
}

impl Quit {
    pub(crate) fn carry_out(self) -> QuitReply {
        QuitReply { bye: true }
    }
}
