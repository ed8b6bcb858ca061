//! A subscription: what it reads (a stream, a query's results or an alert's firings),
//! its consumer group, where it starts reading a partition, and how far it has read.

use std::collections::BTreeMap;

use sluice_engine::time::Millis;

use super::retention_edge::RetentionEdge;

/// What a subscription reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Stream(String),
    /// A query's results; `alerts:SOURCE` is every firing of the alerts on SOURCE.
    Query(String),
    /// One alert's firings: those of its source's alert query, filtered.
    Alert(String),
}

impl Target {
    /// The name a group's committed offsets for this target are kept under.
    pub(super) fn key(&self) -> String {
        match self {
            Target::Stream(name) => format!("stream:{name}"),
            Target::Query(name) => format!("query:{name}"),
            Target::Alert(name) => format!("alert:{name}"),
        }
    }
}

/// Where a subscription starts reading a partition it has not read yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Offset(u64),
    Time(Millis),
}

pub(super) struct Subscription {
    pub(super) target: Target,
    pub(super) group: Option<String>,
    pub(super) start: StartAt,
    /// The next offset to deliver, per partition read so far.
    pub(super) positions: BTreeMap<usize, u64>,
    /// Partitions the subscription's group was last told are near the retention edge or
    /// behind it, and which.
    pub(super) warned: BTreeMap<usize, RetentionEdge>,
}
