//! `auth`: the token, required before any other request when the server has one.

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::wire::Op;
use crate::ServeError;
use crate::throttle::{FAILURES_PER_CONNECTION, same_token};

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
    /// Checks the token; a wrong one is answered late and logged, and the connection's
    /// last allowed wrong token closes it (see [`crate::throttle`]).
    pub(crate) async fn carry_out(self, context: &mut Context) -> Result<AuthReply, ServeError> {
        let shared = &context.shared;
        let right = match (&shared.config.token, &self.token) {
            (None, _) => true,
            (Some(expected), Some(given)) => same_token(given, expected),
            (Some(_), None) => false,
        };
        if right {
            shared.auth_throttle.succeeded(context.peer);
            context.authenticated = true;
            return Ok(AuthReply {
                authenticated: true,
            });
        }
        let (delay, recent) = shared.auth_throttle.failed(context.peer);
        context.failed_auths += 1;
        eprintln!(
            "auth: wrong token from {} ({recent} recent failure(s) from that address)",
            context.peer
        );
        tokio::time::sleep(delay).await;
        if context.failed_auths >= FAILURES_PER_CONNECTION {
            context.closing = true;
            return Err(ServeError::Request(format!(
                "the token is wrong; after {FAILURES_PER_CONNECTION} wrong tokens the \
                 connection closes"
            )));
        }
        Err(ServeError::Request("the token is wrong".into()))
    }
}
