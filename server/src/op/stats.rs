//! `stats`: streams, queries, subscriptions and groups, with their offsets, lags and sizes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::Context;
use super::list::FailedEntry;
use super::wire::Op;
use crate::ServeError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {}

/// Each part as the server's state describes it (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Per stream and partition: start and end offsets, bytes.
    pub streams: Value,
    /// Per query: input streams, results, watermark, state bytes, late rows, failed rows.
    pub queries: Value,
    /// Per group and partition: committed offset, lag, `retention_edge`.
    pub groups: Value,
    /// Per subscription: target, group, lag.
    pub subscriptions: Value,
    /// Catalog entries that failed when replayed on start.
    #[serde(default)]
    pub failed: Vec<FailedEntry>,
    /// The last checkpoint, the last attempt's error, and what retention holds back for
    /// the kept ones.
    #[serde(default)]
    pub checkpoints: Value,
    /// Checkpoints found damaged or unusable on start, with why.
    #[serde(default)]
    pub checkpoint_problems: Vec<String>,
}

impl Op for Stats {
    type Reply = StatsReply;
}

impl Stats {
    pub(crate) async fn carry_out(self, context: &Context) -> Result<StatsReply, ServeError> {
        let stats = context.with_core(|core| core.stats()).await?;
        serde_json::from_value(stats).map_err(|error| ServeError::Request(error.to_string()))
    }
}
