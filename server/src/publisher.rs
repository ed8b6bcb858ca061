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

use crate::core::{Logged, Payload, StreamSync, decode};
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
        }
    }
}

/// Decodes, appends, syncs and feeds a group of publishes; gives each one's reply, or
/// `None` once the server's state is gone. The core is held while appending and while
/// feeding, not while decoding or waiting for the disk.
fn commit(shared: &Shared, group: &[Publish]) -> Option<Vec<Result<Value, ServeError>>> {
    let defs: Vec<_> = {
        let core = shared.core.lock().ok()?;
        group.iter().map(|p| core.stream_def(&p.stream)).collect()
    };
    let decoded: Vec<_> = group
        .iter()
        .zip(defs)
        .map(|(publish, def)| def.and_then(|def| decode(&def, &publish.payload)))
        .collect();
    let (logged, syncs) = {
        let mut core = shared.core.lock().ok()?;
        let logged: Vec<Result<Logged, ServeError>> = group
            .iter()
            .zip(decoded)
            .map(|(publish, changes)| changes.and_then(|c| core.append(&publish.stream, &c)))
            .collect();
        (logged, core.begin_sync())
    };
    let synced: Result<Vec<_>, ServeError> =
        syncs.and_then(|syncs| syncs.into_iter().map(StreamSync::wait).collect());
    let mut core = shared.core.lock().ok()?;
    if let Ok(ends) = &synced {
        for (stream, partition, end) in ends {
            core.mark_durable(stream, *partition, *end);
        }
    }
    let replies = logged
        .into_iter()
        .map(|result| {
            let logged = result?;
            // Fed even when the sync failed: the log holds the rows, and a restart would
            // feed them.
            let fed = core.feed(&logged);
            if let Err(error) = &synced {
                return Err(ServeError::Request(format!(
                    "the events were written but could not be made durable: {error}"
                )));
            }
            let places: Vec<Value> = logged
                .parts
                .iter()
                .map(|p| json!({"partition": p.partition, "offset": p.offset, "count": p.rows.num_rows()}))
                .collect();
            Ok(match fed {
                Ok(()) => json!({"appended": places}),
                Err(error) => json!({"appended": places,
                    "warning": format!("a standing query failed on them: {error}")}),
            })
        })
        .collect();
    // Size limits are kept as logs grow (age limits also on a timer).
    if let Err(error) = core.enforce_retention() {
        eprintln!("retention: {error}");
    }
    Some(replies)
}
