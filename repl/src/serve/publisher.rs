//! The writer thread: appends publishes to the logs and acknowledges them once durable.
//!
//! It takes every publish waiting (up to a bound), appends each, syncs the logs once for
//! all of them (with [`Durability::EveryBatch`]; with an interval, when the interval has
//! passed since the last sync), feeds the rows to the standing queries, and then answers
//! each publish. The queue holds at most [`QUEUE`] publishes: a producer that outruns the
//! disk waits to enqueue, so its acknowledgements come later.

use std::sync::Weak;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{Durability, ServeError, Shared};

const QUEUE: usize = 1024;
/// The most publishes one sync covers.
const GROUP: usize = 256;

pub(crate) struct Publish {
    pub stream: String,
    pub events: Vec<Value>,
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
        let replies = {
            let Ok(mut core) = shared.core.lock() else {
                return;
            };
            let mut appended = Vec::with_capacity(group.len());
            for publish in &group {
                let result = core
                    .decode(&publish.stream, &publish.events)
                    .and_then(|all| {
                        let mut parts = Vec::new();
                        for changes in &all {
                            parts.extend(core.append(&publish.stream, changes)?);
                        }
                        Ok(parts)
                    });
                appended.push(result);
            }
            let synced = core.sync();
            last_sync = Instant::now();
            let mut replies = Vec::with_capacity(group.len());
            for (publish, result) in group.iter().zip(appended) {
                replies.push(match (&synced, result) {
                    (Err(error), Ok(_)) => Err(ServeError::Request(format!(
                        "the events were written but could not be made durable: {error}"
                    ))),
                    (_, Err(error)) => Err(error),
                    (Ok(()), Ok(parts)) => {
                        let places: Vec<Value> = parts
                            .iter()
                            .map(|p| {
                                json!({"partition": p.partition, "offset": p.offset,
                                       "count": p.rows.num_rows()})
                            })
                            .collect();
                        match core.feed(&publish.stream, &parts) {
                            Ok(()) => Ok(json!({"appended": places})),
                            Err(error) => Ok(json!({"appended": places,
                                "warning": format!("a standing query failed on them: {error}")})),
                        }
                    }
                });
            }
            replies
        };
        shared.appended.notify_waiters();
        for (publish, reply) in group.into_iter().zip(replies) {
            let _ = publish.reply.send(reply);
        }
    }
}
