//! The writer thread: appends publishes to the logs and acknowledges them once durable.
//!
//! It takes every publish waiting (up to a bound), appends each, syncs the logs once for
//! all of them (with [`Durability::EveryBatch`]; with an interval, when the interval has
//! passed since the last sync), and answers each publish, holding only the streams' lock.
//! The feeder thread ([`start_feeder`]) then feeds them to the standing queries under the
//! core's, so a slow query delays results, not acknowledgements. The queue holds at most
//! [`QUEUE`] publishes: a producer that outruns the disk waits to enqueue, so its
//! acknowledgements come later; and publishes wait to be appended while the ones not fed
//! yet hold more than `MAX_UNFED_BYTES`, so one that outruns the queries waits too.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::core::{Logged, Payload, Rejected, SharedStreams, decode, now};
use crate::{Durability, ServeError, Shared};

const QUEUE: usize = 1024;
/// The most publishes one sync covers.
const GROUP: usize = 256;

pub(crate) struct Publish {
    pub stream: String,
    pub payload: Payload,
    pub reply: oneshot::Sender<Result<Value, ServeError>>,
}

pub(crate) type Handle = mpsc::Sender<Publish>;

pub(crate) fn start(shared: Weak<Shared>, durability: Durability) -> Handle {
    let (sender, receiver) = mpsc::channel(QUEUE);
    std::thread::spawn(move || run(shared, durability, receiver));
    sender
}

fn run(shared: Weak<Shared>, durability: Durability, mut queue: mpsc::Receiver<Publish>) {
    let mut last_sync = Instant::now();
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        if let Durability::Interval(interval) = durability {
            // Let publishes gather until the interval has passed.
            if let Some(wait) = interval.checked_sub(last_sync.elapsed()) {
                std::thread::sleep(wait);
                while group.len() < GROUP {
                    match queue.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
            }
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(replies) = commit(&shared, &group) else {
            return;
        };
        last_sync = Instant::now();
        shared.appended.notify_waiters();
        for (publish, reply) in group.into_iter().zip(replies) {
            let _ = publish.reply.send(reply);
            shared.publishing.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What a publish appended to its stream, if anything, and the events its stream set apart.
struct Accepted {
    logged: Option<Logged>,
    rejected: Vec<Rejected>,
}

/// Decodes, appends and syncs a group of publishes, leaving them to the feeder; gives each
/// one's reply, or `None` once the server's state is gone. Only the streams are held, while
/// appending: a query being fed does not hold up a publish.
fn commit(shared: &Shared, group: &[Publish]) -> Option<Vec<Result<Value, ServeError>>> {
    let defs: Vec<_> = {
        let streams = shared.streams.lock().ok()?;
        group.iter().map(|p| streams.def(&p.stream)).collect()
    };
    let decoded: Vec<_> = group
        .iter()
        .zip(defs)
        .map(|(publish, def)| def.and_then(|def| decode(&def, &publish.payload)))
        .collect();
    shared.streams.wait_for_room().ok()?;
    let accepted: Vec<Result<Accepted, ServeError>> = {
        let mut streams = shared.streams.lock().ok()?;
        group
            .iter()
            .zip(decoded)
            .map(|(publish, decoded)| {
                let decoded = decoded?;
                let logged = match &decoded.changes {
                    Some(changes) => Some(streams.append(&publish.stream, changes)?),
                    None => None,
                };
                if !decoded.rejected.is_empty() {
                    let stamp = logged.as_ref().map(|l| l.stamp);
                    streams.reject(&publish.stream, stamp, &decoded.rejected)?;
                }
                Ok(Accepted {
                    logged,
                    rejected: decoded.rejected,
                })
            })
            .collect()
    };
    let synced = shared.streams.sync();
    // Size limits are kept as logs grow (age limits also on a timer).
    if let Err(error) = shared
        .streams
        .lock()
        .and_then(|mut streams| streams.enforce_retention(now()))
    {
        eprintln!("retention: {error}");
    }
    let replies = accepted
        .into_iter()
        .map(|result| {
            let accepted = result?;
            if let Err(error) = &synced {
                return Err(ServeError::Request(format!(
                    "the events were written but could not be made durable: {error}"
                )));
            }
            let places: Vec<Value> = accepted
                .logged
                .iter()
                .flat_map(|logged| &logged.parts)
                .map(|p| json!({"partition": p.partition, "offset": p.offset, "count": p.rows.num_rows()}))
                .collect();
            if accepted.rejected.is_empty() {
                return Ok(json!({"appended": places}));
            }
            let rejected: Vec<Value> = accepted
                .rejected
                .iter()
                .map(|r| json!({"event": r.number, "reason": r.reason}))
                .collect();
            Ok(json!({"appended": places, "rejected": rejected}))
        })
        .collect();
    Some(replies)
}

/// Feeds durable publishes to the standing queries, in stamp order, as they come; wakes the
/// requests waiting to see them and the subscribers of query results.
pub(crate) fn start_feeder(shared: Weak<Shared>, streams: Arc<SharedStreams>) {
    std::thread::spawn(move || {
        loop {
            let durable = match streams.wait_durable(Duration::from_millis(500)) {
                Ok(durable) => durable,
                Err(_) => return,
            };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if durable.is_empty() {
                continue;
            }
            {
                let Ok(mut core) = shared.core.lock() else {
                    return;
                };
                for logged in &durable {
                    if let Err(error) = core.feed(logged) {
                        eprintln!(
                            "a standing query failed on the publish to '{}' stamped {}: {error}",
                            logged.stream, logged.stamp
                        );
                    }
                }
            }
            shared.fed.notify_all();
            shared.appended.notify_waiters();
        }
    });
}
