//! Retention: applying each log's size and age limits, and warning a consumer group whose
//! committed offset has come near the retention edge or fallen behind it.

use super::retention_edge::RetentionEdge;
use super::{Core, Streams, now};
use crate::ServeError;

impl Core {
    /// Warnings for a group subscription's partitions whose committed offset has come near
    /// the retention edge or passed it, each said once until that changes.
    pub(super) fn retention_warnings(
        &mut self,
        streams: &Streams,
        id: u64,
        assigned: &[usize],
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(subscription) = self.subscriptions.get(&id) else {
            return warnings;
        };
        let (Some(group), Ok(log)) = (&subscription.group, self.log(streams, &subscription.target))
        else {
            return warnings;
        };
        let Some(offsets) = self.groups.get(group) else {
            return warnings;
        };
        let mut near = Vec::new();
        for &partition in assigned {
            let Some(part) = log.partitions().get(partition) else {
                continue;
            };
            let Some(committed) = offsets.get(&subscription.target.key(), partition) else {
                continue;
            };
            let Some(edge) = RetentionEdge::of(part, committed, &self.config) else {
                continue;
            };
            near.push((partition, edge));
            if subscription.warned.get(&partition) != Some(&edge) {
                let state = match edge {
                    RetentionEdge::Behind => "has fallen behind",
                    RetentionEdge::Near => "is near",
                };
                warnings.push(format!(
                    "group '{group}' {state} the retention edge of partition {partition}: \
                     committed offset {committed}, oldest kept {}, end {}",
                    part.start(),
                    part.end()
                ));
            }
        }
        if let Some(subscription) = self.subscriptions.get_mut(&id) {
            subscription.warned = near.into_iter().collect();
        }
        warnings
    }

    /// Applies retention to every log; a stream's rows the kept checkpoints still need stay
    /// (what that holds back is in `stats`, and logged once).
    pub fn enforce_retention(&mut self) -> Result<(), ServeError> {
        let now = now();
        self.streams.lock()?.enforce_retention(now)?;
        for query in self.queries.values_mut() {
            for output in query.outputs_mut() {
                output.log.enforce_retention(now)?;
            }
        }
        Ok(())
    }
}
