//! `publish`: events (JSON objects, or CSV text with a header) appended to a stream's log,
//! answered once durable.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use super::context::Context;
use super::wire::Op;
use crate::ServeError;
use crate::core::Payload;
use std::sync::atomic::Ordering;

use crate::publisher;

/// One of `event`, `events` and `csv` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Value>>,
    /// A header line, then rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<String>,
}

/// The publisher writes this reply once the rows are durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishReply {
    /// Where the rows went: one entry per partition written.
    pub appended: Vec<Appended>,
    /// Events that did not fit a stream that tolerates errors, kept in `STREAM.rejected`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedEvent>,
}

/// An event of a publish that did not fit its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// Its number in the publish (or its CSV line), from 1.
    pub event: u64,
    pub reason: String,
}

/// Rows of a publish appended to one partition, from `offset` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appended {
    pub partition: usize,
    pub offset: u64,
    pub count: usize,
}

impl Op for Publish {
    type Reply = PublishReply;
}

impl Publish {
    /// Events to `stream`.
    pub fn events(stream: impl Into<String>, events: Vec<Value>) -> Publish {
        Publish {
            stream: stream.into(),
            event: None,
            events: Some(events),
            csv: None,
        }
    }

    /// CSV text (a header line, then rows) to `stream`.
    pub fn csv(stream: impl Into<String>, csv: String) -> Publish {
        Publish {
            stream: stream.into(),
            event: None,
            events: None,
            csv: Some(csv),
        }
    }

    /// Queues the publish; gives where its answer will come.
    pub(crate) async fn carry_out(
        self,
        context: &Context,
    ) -> Result<oneshot::Receiver<Result<Value, ServeError>>, ServeError> {
        let payload = match (self.events, self.event, self.csv) {
            (Some(events), None, None) => Payload::Events(events),
            (None, Some(event), None) => Payload::Events(vec![event]),
            (None, None, Some(csv)) => Payload::Csv(csv),
            _ => {
                return Err(ServeError::Request(
                    "publish needs \"event\": {...}, \"events\": [{...}, ...] or \"csv\": \
                     \"header\\nrows...\""
                        .into(),
                ));
            }
        };
        // Counted before the check, so that a stopping server that has seen no publish in
        // flight takes no more.
        let shared = &context.shared;
        shared.publishing.fetch_add(1, Ordering::SeqCst);
        let shutting_down = || {
            shared.publishing.fetch_sub(1, Ordering::SeqCst);
            ServeError::Request("the server is shutting down".into())
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return Err(shutting_down());
        }
        let (reply, answer) = oneshot::channel();
        let publish = publisher::Publish {
            stream: self.stream,
            payload,
            reply,
        };
        shared
            .publisher
            .send(publish)
            .await
            .map_err(|_| shutting_down())?;
        Ok(answer)
    }
}
