//! What the server holds, for `stats` and `list`: streams, standing queries, consumer
//! groups and subscriptions with their offsets, lag and state.

use serde_json::{Value, json};

use super::retention_edge::RetentionEdge;
use super::subscription::Target;
use super::{Core, now};
use crate::ServeError;

impl Core {
    /// Streams, queries and groups with their offsets, lag and state.
    pub fn stats(&self) -> Result<Value, ServeError> {
        let locked = self.streams.lock()?;
        let streams: Vec<Value> = locked
            .logs()
            .iter()
            .map(|(name, log)| {
                let partitions: Vec<Value> = log
                    .partitions()
                    .iter()
                    .map(|p| json!({"start": p.start(), "end": p.end(), "bytes": p.bytes()}))
                    .collect();
                json!({"name": name, "partitions": partitions})
            })
            .collect();
        let infos = self.session.engine().queries();
        let queries: Vec<Value> = self
            .queries
            .iter()
            .map(|(name, query)| {
                let info = infos.iter().find(|i| i.id == query.id);
                json!({
                    "name": name,
                    "inputs": info.map(|i| &i.sources),
                    "results": query.results.end(),
                    "watermark": info.map(|i| i.watermark),
                    "state_bytes": info.map(|i| i.state_bytes),
                    "late_rows": info.map(|i| i.late_rows),
                    "failed_rows": info.map(|i| i.failed_rows),
                    "failed": self.failed_queries.get(name),
                    "checkpoint": self.checkpoints.of_query(query.id, now()),
                })
            })
            .collect();
        let mut groups = Vec::new();
        for (group, offsets) in &self.groups {
            let targets: std::collections::BTreeSet<&Target> = self
                .subscriptions
                .values()
                .filter(|s| s.group.as_ref() == Some(group))
                .map(|s| &s.target)
                .collect();
            for target in targets {
                let Ok(log) = self.log(&locked, target) else {
                    continue;
                };
                for (partition, part) in log.partitions().iter().enumerate() {
                    let committed = offsets.get(&target.key(), partition);
                    let lag = part.end() - committed.unwrap_or(part.start()).min(part.end());
                    groups.push(json!({
                        "group": group,
                        "target": target.key(),
                        "partition": partition,
                        "committed": committed,
                        "lag": lag,
                        "retention_edge": match committed.and_then(|c| RetentionEdge::of(part, c, &self.config)) {
                            Some(RetentionEdge::Behind) => "behind",
                            Some(RetentionEdge::Near) => "near",
                            None => "clear",
                        },
                    }));
                }
            }
        }
        let mut subscriptions = Vec::new();
        for (id, subscription) in &self.subscriptions {
            let Ok(log) = self.log(&locked, &subscription.target) else {
                continue;
            };
            let mut lag = 0;
            for partition in self.assigned_in(&locked, *id).unwrap_or_default() {
                let Some(part) = log.partitions().get(partition) else {
                    continue;
                };
                let position = self.next_offset(subscription, partition, part);
                lag += part.end().saturating_sub(position);
            }
            subscriptions.push(json!({
                "subscription": id,
                "target": subscription.target.key(),
                "group": subscription.group,
                "lag": lag,
            }));
        }
        Ok(
            json!({"streams": streams, "queries": queries, "groups": groups,
               "subscriptions": subscriptions, "failed": self.failed,
               "checkpoints": self.checkpoints.to_json(locked.held_back_bytes(), now()),
               "checkpoint_problems": self.checkpoint_problems}),
        )
    }

    /// The names of the streams and the standing queries, for `list`.
    pub fn names(&self) -> Result<Value, ServeError> {
        Ok(json!({
            "streams": self.streams.lock()?.logs().keys().collect::<Vec<_>>(),
            "queries": self.queries.keys().collect::<Vec<_>>(),
            "failed": self.failed,
        }))
    }
}
