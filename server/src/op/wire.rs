//! The protocol's lines other than requests: the reply envelope (`ok`, `error`, the
//! request's `id`), the lines pushed for subscriptions, and [`Op`], which ties each
//! request to the reply it gets.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A request of the protocol, and the fields of the reply it gets.
pub trait Op {
    type Reply: Serialize + DeserializeOwned;
}

/// A reply line: `{"ok": true, ...}` with the reply's fields, or `{"ok": false, "error":
/// ...}`; either carries the request's `id` when it had one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The reply's own fields.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl ReplyLine {
    /// The reply's fields as `R`, or the error the server gave.
    pub fn into_reply<R: DeserializeOwned>(self) -> Result<R, String> {
        if !self.ok {
            return Err(self
                .error
                .unwrap_or_else(|| "an unexplained error".to_string()));
        }
        serde_json::from_value(Value::Object(self.fields))
            .map_err(|error| format!("the reply is not as expected: {error}"))
    }
}

/// A line pushed for a subscription, without `ok`.
///
/// Fields are declared in the order the server writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pushed {
    /// A row of the subscription's stream, query or alerts (its `op` first, as written).
    Row {
        subscription: u64,
        partition: usize,
        offset: u64,
        row: Map<String, Value>,
    },
    /// A notice about the subscription's group and retention.
    Warning { subscription: u64, warning: String },
    /// The last line of a subscription whose query or alert went away.
    Error { error: String, subscription: u64 },
}

impl Pushed {
    pub fn subscription(&self) -> u64 {
        match self {
            Pushed::Row { subscription, .. }
            | Pushed::Warning { subscription, .. }
            | Pushed::Error { subscription, .. } => *subscription,
        }
    }
}

/// Any line the server sends: lines with `ok` are replies, the others are pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerLine {
    Reply(ReplyLine),
    Pushed(Pushed),
}
