//! `subscribe`: rows of a stream, a query's results, or alert firings, pushed on the
//! connection from a starting point, alone or in a consumer group.

use std::sync::Arc;
use std::time::Duration;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sluice_sql::session::alerts_query_name;
use tokio::sync::{mpsc, oneshot};

use super::context::Context;
use super::wire::{Op, Pushed};
use crate::core::{StartAt, Target};
use crate::{ServeError, Shared};

/// The most rows a subscription fetches at a time.
const FETCH_ROWS: usize = 512;

/// Exactly one of `stream`, `query`, `alert` and `alerts` is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A standing query's results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// One alert's firings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// Every firing of the alerts on a stream or view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<String>,
    /// Where to start in partitions not read yet: the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Start>,
    /// The consumer group sharing the partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscribeReply {
    pub subscription: u64,
    /// The partitions this subscription reads.
    pub partitions: Vec<usize>,
}

impl Op for Subscribe {
    type Reply = SubscribeReply;
}

/// Where a subscription starts: `"earliest"`, `"latest"`, an offset, or `{"time": ms}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(u64),
    /// The first row appended at or after this time, in milliseconds since the epoch.
    Time(i64),
}

impl Serialize for Start {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Start::Earliest => serializer.serialize_str("earliest"),
            Start::Latest => serializer.serialize_str("latest"),
            Start::Offset(offset) => serializer.serialize_u64(*offset),
            Start::Time(ms) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("time", ms)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Start {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match &value {
            Value::String(from) if from == "earliest" => Ok(Start::Earliest),
            Value::String(from) if from == "latest" => Ok(Start::Latest),
            Value::Number(offset) if offset.as_u64().is_some() => {
                Ok(Start::Offset(offset.as_u64().unwrap_or_default()))
            }
            Value::Object(at) if at.get("time").and_then(Value::as_i64).is_some() => Ok(
                Start::Time(at.get("time").and_then(Value::as_i64).unwrap_or_default()),
            ),
            other => Err(D::Error::custom(format!(
                "expected \"earliest\", \"latest\", an offset or {{\"time\": ms}}, not {other}"
            ))),
        }
    }
}

impl From<Start> for StartAt {
    fn from(start: Start) -> StartAt {
        match start {
            Start::Earliest => StartAt::Earliest,
            Start::Latest => StartAt::Latest,
            Start::Offset(offset) => StartAt::Offset(offset),
            Start::Time(ms) => StartAt::Time(ms),
        }
    }
}

impl Subscribe {
    fn target(&self) -> Result<Target, ServeError> {
        let targets = [
            self.stream
                .as_ref()
                .map(|s| Target::Stream(s.to_ascii_lowercase())),
            self.query.clone().map(Target::Query),
            self.alert
                .as_ref()
                .map(|a| Target::Alert(a.to_ascii_lowercase())),
            self.alerts
                .as_ref()
                .map(|s| Target::Query(alerts_query_name(&s.to_ascii_lowercase()))),
        ];
        let mut targets = targets.into_iter().flatten();
        match (targets.next(), targets.next()) {
            (Some(target), None) => Ok(target),
            _ => Err(ServeError::Request(
                "subscribe needs one of \"stream\", \"query\", \"alert\" (one alert's \
                 firings) or \"alerts\" (every firing on a stream or view), naming it"
                    .into(),
            )),
        }
    }

    /// Subscribes, and starts the task that pushes the rows once the reply is sent.
    pub(crate) async fn carry_out(
        self,
        context: &mut Context,
    ) -> Result<SubscribeReply, ServeError> {
        let target = self.target()?;
        let start = self.from.map_or(StartAt::Latest, StartAt::from);
        let group = self.group;
        let (id, partitions) = context
            .with_core(move |core| {
                let id = core.subscribe(target, group, start)?;
                Ok((id, core.assigned(id)?))
            })
            .await?;
        let (sent, replied) = oneshot::channel();
        context.sent = Some(sent);
        let shared = Arc::clone(&context.shared);
        let outgoing = context.outgoing.clone();
        let task = tokio::spawn(async move {
            // Rows follow the reply that names the subscription.
            if replied.await.is_ok() {
                push(shared, id, outgoing).await;
            }
        });
        context.subscriptions.insert(id, task);
        Ok(SubscribeReply {
            subscription: id,
            partitions,
        })
    }
}

/// Sends a subscription's rows as they come, as fast as the client takes them.
async fn push(shared: Arc<Shared>, id: u64, outgoing: mpsc::Sender<String>) {
    loop {
        // Registered before fetching, so an append during the fetch is not missed.
        let appended = shared.appended.notified();
        tokio::pin!(appended);
        appended.as_mut().enable();
        let fetching = Arc::clone(&shared);
        let fetched = tokio::task::spawn_blocking(move || {
            let mut core = fetching
                .core
                .lock()
                .map_err(|_| ServeError::Request("the server's state is unavailable".into()))?;
            core.fetch(id, FETCH_ROWS)
        })
        .await;
        let fetch = match fetched {
            Ok(Ok(fetch)) => fetch,
            Ok(Err(error)) => {
                let notice = Pushed::Error {
                    error: error.to_string(),
                    subscription: id,
                };
                let _ = outgoing.send(line(&notice)).await;
                return;
            }
            Err(_) => return,
        };
        for warning in fetch.warnings {
            let notice = Pushed::Warning {
                subscription: id,
                warning,
            };
            if outgoing.send(line(&notice)).await.is_err() {
                return;
            }
        }
        if fetch.rows.is_empty() {
            // Also look again now and then: a group's partitions may have moved.
            let _ = tokio::time::timeout(Duration::from_millis(200), appended).await;
            continue;
        }
        for row in fetch.rows {
            // A `Pushed::Row`, written directly: the row is JSON already, its columns in
            // order.
            let line = format!(
                "{{\"subscription\":{id},\"partition\":{},\"offset\":{},\"row\":{}}}",
                row.partition, row.offset, row.row
            );
            if outgoing.send(line).await.is_err() {
                return;
            }
        }
    }
}

/// A notice as its line.
fn line(notice: &Pushed) -> String {
    serde_json::to_string(notice).unwrap_or_default()
}
