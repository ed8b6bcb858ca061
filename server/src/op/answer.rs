//! What a request is answered with: a reply now, or one the publisher sends once durable.

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::ServeError;

pub(crate) enum Answer {
    /// The reply's fields, or the error.
    Now(Result<Value, ServeError>),
    Later(oneshot::Receiver<Result<Value, ServeError>>),
}

impl Answer {
    /// A reply known now, as the fields of its line.
    pub(crate) fn now<R: Serialize>(reply: Result<R, ServeError>) -> Answer {
        Answer::Now(reply.and_then(|reply| {
            serde_json::to_value(reply).map_err(|error| ServeError::Request(error.to_string()))
        }))
    }
}
