//! Subscribing and unsubscribing, the partitions each member of a consumer group reads,
//! acknowledgements committing the group's offsets, and subscriptions ended when their
//! target goes away.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_log::{GroupOffsets, StreamLog};
use sluice_sql::session::alerts_query_name;

use super::result_log::Output;
use super::subscription::{StartAt, Subscription, Target};
use super::{Core, Streams};
use crate::ServeError;

impl Core {
    /// The log `target` reads (`streams` locked).
    pub(super) fn log<'a>(
        &'a self,
        streams: &'a Streams,
        target: &Target,
    ) -> Result<&'a StreamLog, ServeError> {
        match target {
            Target::Stream(name) => streams
                .log(name)
                .ok_or_else(|| ServeError::Request(format!("unknown stream '{name}'"))),
            Target::Query(name) => self
                .query_output(name)
                .ok_or_else(|| ServeError::Request(format!("no query named '{name}'"))),
            Target::Alert(name) => self
                .session
                .alert_source_of(name)
                .and_then(|source| self.queries.get(&alerts_query_name(source)))
                .map(|q| &q.results.log)
                .ok_or_else(|| ServeError::Request(format!("no alert named '{name}'"))),
        }
    }

    /// The log of the query output named `name`: a query's results by the query's name,
    /// its late rows and failed rows as `NAME.late` and `NAME.errors`.
    fn query_output(&self, name: &str) -> Option<&StreamLog> {
        if let Some(query) = self.queries.get(name) {
            return Some(&query.results.log);
        }
        let (name, output) = Output::of(name);
        self.queries.get(name).map(|q| &q.output(output).log)
    }

    pub fn subscribe(
        &mut self,
        target: Target,
        group: Option<String>,
        start: StartAt,
    ) -> Result<u64, ServeError> {
        if let Some(group) = &group
            && !self.groups.contains_key(group)
        {
            let offsets = GroupOffsets::open(&self.data_dir.join("groups"), group)?;
            self.groups.insert(group.clone(), offsets);
        }
        // "Latest" means the end as of now, not as of the first read, for each partition
        // the group has no committed offset in.
        let mut positions = BTreeMap::new();
        if start == StartAt::Latest {
            let offsets = group.as_ref().and_then(|g| self.groups.get(g));
            let shared = Arc::clone(&self.streams);
            let streams = shared.lock()?;
            for (partition, part) in self.log(&streams, &target)?.partitions().iter().enumerate() {
                if offsets.is_some_and(|o| o.get(&target.key(), partition).is_some()) {
                    continue;
                }
                let end = match target {
                    Target::Stream(_) => part.durable_end(),
                    Target::Query(_) | Target::Alert(_) => part.end(),
                };
                positions.insert(partition, end);
            }
        }
        let id = self.next_subscription;
        self.next_subscription += 1;
        self.subscriptions.insert(
            id,
            Subscription {
                target,
                group,
                start,
                positions,
                warned: Default::default(),
            },
        );
        Ok(id)
    }

    /// Ends every subscription to `target`; each reader is told `reason` at its next fetch.
    pub(super) fn end_subscriptions(&mut self, target: &Target, reason: &str) {
        let ended: Vec<u64> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.target == *target)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.subscriptions.remove(&id);
            self.ended.insert(id, reason.to_string());
        }
    }

    pub fn unsubscribe(&mut self, id: u64) {
        self.ended.remove(&id);
        self.subscriptions.remove(&id);
    }

    /// The partitions of its target a subscription reads: all of them, or in a group its
    /// share (partition `p` goes to the `p mod n`-th of the group's `n` subscriptions to
    /// the target, by subscription number).
    pub fn assigned(&self, id: u64) -> Result<Vec<usize>, ServeError> {
        self.assigned_in(&*self.streams.lock()?, id)
    }

    /// [`Core::assigned`], with the streams locked already.
    pub(super) fn assigned_in(&self, streams: &Streams, id: u64) -> Result<Vec<usize>, ServeError> {
        let subscription = self
            .subscriptions
            .get(&id)
            .ok_or_else(|| ServeError::Request(format!("no subscription {id}")))?;
        let partitions = self.log(streams, &subscription.target)?.partitions().len();
        let Some(group) = &subscription.group else {
            return Ok((0..partitions).collect());
        };
        let members: Vec<u64> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.group.as_ref() == Some(group) && s.target == subscription.target)
            .map(|(id, _)| *id)
            .collect();
        let me = members.iter().position(|m| *m == id).unwrap_or_default();
        Ok((0..partitions)
            .filter(|p| p % members.len().max(1) == me)
            .collect())
    }

    /// Acknowledges a subscription's rows up to `offset` of a partition: in a group, its
    /// next offset there is committed durably.
    pub fn ack(&mut self, id: u64, partition: usize, offset: u64) -> Result<(), ServeError> {
        let subscription = self
            .subscriptions
            .get(&id)
            .ok_or_else(|| ServeError::Request(format!("no subscription {id}")))?;
        let shared = Arc::clone(&self.streams);
        let streams = shared.lock()?;
        let log = self.log(&streams, &subscription.target)?;
        let Some(part) = log.partitions().get(partition) else {
            return Err(ServeError::Request(format!(
                "there is no partition {partition} to ack: the subscription reads {}",
                match log.partitions().len() {
                    1 => "partition 0 only".to_string(),
                    count => format!("partitions 0 to {}", count - 1),
                }
            )));
        };
        if offset >= part.end() {
            return Err(ServeError::Request(format!(
                "offset {offset} of partition {partition} has not been written: its offsets end \
                 before {}",
                part.end()
            )));
        }
        let Some(group) = &subscription.group else {
            return Ok(());
        };
        let key = subscription.target.key();
        if let Some(offsets) = self.groups.get_mut(group) {
            let next = offsets.get(&key, partition).unwrap_or(0).max(offset + 1);
            offsets.commit(&key, partition, next)?;
        }
        Ok(())
    }
}
