//! `auth`: the token, required before any other request when the server has one.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthReply {
    pub authenticated: bool,
}

impl Op for Auth {
    type Reply = AuthReply;
}

impl Auth {
    pub(crate) fn carry_out(self, context: &mut Context) -> Result<AuthReply, ServeError> {
        match &context.shared.config.token {
            Some(token) if Some(token) != self.token.as_ref() => {
                Err(ServeError::Request("the token is wrong".into()))
            }
            _ => {
                context.authenticated = true;
                Ok(AuthReply {
                    authenticated: true,
                })
            }
        }
    }
}
