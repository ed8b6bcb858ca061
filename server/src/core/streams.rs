//! The streams' logs, under a lock of their own: a publish is stamped, appended, synced and
//! acknowledged holding only this lock, while the core feeds earlier publishes to the
//! standing queries — so a slow query delays results, never a publish.
//!
//! Every append also joins the queue of publishes not fed yet, in stamp order (the order a
//! replay feeds them in). The feeder takes them from its front once durable; nothing else
//! feeds them, so queries see publishes in that order whoever appended them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use sluice_engine::Changes;
use sluice_engine::catalog::StreamDef;
use sluice_engine::time::Millis;
use sluice_log::{Appended, PendingSync, StreamLog};

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::now;
use super::payload::Rejected;
use super::records::with_kinds;
use crate::ServeError;

/// Rows a publish appended to a stream's log, under one stamp.
#[derive(Debug, Clone)]
pub struct Logged {
    pub stream: String,
    pub stamp: Millis,
    pub parts: Vec<Appended>,
}

/// A sync of one stream partition, to wait on without holding any lock.
pub struct StreamSync {
    stream: String,
    partition: usize,
    pending: PendingSync,
}

impl StreamSync {
    /// Waits for the disk; gives what to pass to [`Streams::mark_durable`].
    pub fn wait(self) -> Result<(String, usize, u64), ServeError> {
        let end = self.pending.wait()?;
        Ok((self.stream, self.partition, end))
    }
}

/// What the log of a stream's rejected events is read as: the stream's name and this.
pub const REJECTED: &str = ".rejected";

/// The columns of a log of rejected events: the event's number in its publish (or its CSV
/// line), why it did not fit, and the event as sent.
fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

/// The most bytes of rows the publishes not fed yet may hold before new ones wait.
pub const MAX_UNFED_BYTES: usize = 256 << 20;

/// The most publishes the feeder takes at a time.
const FEED_BATCH: usize = 64;

/// A publish not fed yet, with the partitions it waits on to be durable (and the end each
/// must reach).
struct Unfed {
    logged: Logged,
    waiting: Vec<(usize, u64)>,
}

#[derive(Default)]
pub struct Streams {
    logs: BTreeMap<String, StreamLog>,
    /// Each stream that tolerates errors: its log of the events that did not fit, read as
    /// stream `NAME.rejected`.
    rejected: BTreeMap<String, StreamLog>,
    /// What each stream's publishes are decoded against.
    defs: BTreeMap<String, Arc<StreamDef>>,
    /// The stamp of the latest publish (or of the latest result, after a restart).
    last_stamp: Millis,
    unfed: VecDeque<Unfed>,
    /// The bytes of rows of `unfed`.
    unfed_bytes: usize,
    /// The stamp of the latest publish taken to be fed.
    taken_stamp: Millis,
    /// Per stream partition, the first offset retention keeps (see
    /// [`Streams::set_retention_floors`]).
    retention_floors: Option<BTreeMap<(String, usize), u64>>,
    held_back_bytes: u64,
}

impl Streams {
    /// The definition of stream `name`, to decode events for it with `decode`.
    pub fn def(&self, name: &str) -> Result<Arc<StreamDef>, ServeError> {
        self.defs
            .get(name)
            .cloned()
            .ok_or_else(|| ServeError::Request(format!("unknown stream '{name}'")))
    }

    /// Stream `name`'s log, or for `NAME.rejected` the events rejected from stream `NAME`.
    pub(super) fn log(&self, name: &str) -> Option<&StreamLog> {
        match name.strip_suffix(REJECTED) {
            Some(stream) if !self.logs.contains_key(name) => self.rejected.get(stream),
            _ => self.logs.get(name),
        }
    }

    /// [`Streams::log`], to change.
    fn log_mut(&mut self, name: &str) -> Option<&mut StreamLog> {
        match name.strip_suffix(REJECTED) {
            Some(stream) if !self.logs.contains_key(name) => self.rejected.get_mut(stream),
            _ => self.logs.get_mut(name),
        }
    }

    pub(super) fn logs(&self) -> &BTreeMap<String, StreamLog> {
        &self.logs
    }

    /// Keeps stream `name` with log `log` (unless it has one already) and definition `def`.
    pub(super) fn add(
        &mut self,
        name: &str,
        def: Arc<StreamDef>,
        log: impl FnOnce() -> Result<StreamLog, ServeError>,
    ) -> Result<(), ServeError> {
        if !self.logs.contains_key(name) {
            self.logs.insert(name.to_string(), log()?);
        }
        self.defs.insert(name.to_string(), def);
        Ok(())
    }

    /// Keeps `log` as stream `name`'s log of rejected events (unless it has one already).
    pub(super) fn add_rejected(
        &mut self,
        name: &str,
        log: impl FnOnce() -> Result<StreamLog, ServeError>,
    ) -> Result<(), ServeError> {
        if !self.rejected.contains_key(name) {
            self.rejected.insert(name.to_string(), log()?);
        }
        Ok(())
    }

    /// Refuses publishes to stream `name` from now on (its log is kept).
    pub(super) fn forget(&mut self, name: &str) {
        self.defs.remove(name);
    }

    /// Notes a stamp given before the server started, so new ones come after it.
    pub(super) fn saw_stamp(&mut self, stamp: Millis) {
        self.last_stamp = self.last_stamp.max(stamp);
    }

    /// A new stamp: publishes are stamped in the order they happen, so a replay can follow
    /// it.
    fn next_stamp(&mut self) -> Millis {
        self.last_stamp = now().max(self.last_stamp + 1);
        self.last_stamp
    }

    /// Appends rows to `stream`'s log under a new stamp (durable once synced: see
    /// [`SharedStreams::sync`]), and queues them to be fed; gives what went to each
    /// partition, in the order the engine is to be fed it.
    pub fn append(&mut self, stream: &str, changes: &Changes) -> Result<Logged, ServeError> {
        let stamp = self.next_stamp();
        let log = self
            .logs
            .get_mut(stream)
            .ok_or_else(|| ServeError::Request(format!("unknown stream '{stream}'")))?;
        let parts = log.publish(&with_kinds(changes)?, stamp)?;
        let logged = Logged {
            stream: stream.to_string(),
            stamp,
            parts,
        };
        self.unfed_bytes += bytes_of(&logged);
        self.unfed.push_back(Unfed {
            waiting: logged
                .parts
                .iter()
                .map(|part| (part.partition, part.offset + part.rows.num_rows() as u64))
                .collect(),
            logged: logged.clone(),
        });
        Ok(logged)
    }

    /// Keeps `rejected`, events of a publish to `stream` that did not fit it, in its log of
    /// rejected events, under the publish's stamp (a new one when nothing else was
    /// appended).
    pub fn reject(
        &mut self,
        stream: &str,
        stamp: Option<Millis>,
        rejected: &[Rejected],
    ) -> Result<(), ServeError> {
        let stamp = match stamp {
            Some(stamp) => stamp,
            None => self.next_stamp(),
        };
        let log = self.rejected.get_mut(stream).ok_or_else(|| {
            ServeError::Request(format!("stream '{stream}' keeps no rejected events"))
        })?;
        let rows = RecordBatch::try_new(
            rejected_schema(),
            vec![
                Arc::new(UInt64Array::from_iter_values(
                    rejected.iter().map(|r| r.number),
                )),
                Arc::new(StringArray::from_iter_values(
                    rejected.iter().map(|r| r.reason.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rejected.iter().map(|r| r.text.as_str()),
                )),
            ],
        )?;
        log.publish(&with_kinds(&Changes::inserts(rows))?, stamp)?;
        Ok(())
    }

    /// Syncs of every stream partition (and log of rejected events) appended to since its
    /// last sync.
    fn begin_sync(&mut self) -> Result<Vec<StreamSync>, ServeError> {
        let mut syncs = Vec::new();
        let rejected = self
            .rejected
            .iter_mut()
            .map(|(name, log)| (format!("{name}{REJECTED}"), log));
        let logs = self.logs.iter_mut().map(|(name, log)| (name.clone(), log));
        for (name, log) in logs.chain(rejected) {
            for (partition, pending) in log.begin_sync()? {
                syncs.push(StreamSync {
                    stream: name.clone(),
                    partition,
                    pending,
                });
            }
        }
        Ok(syncs)
    }

    /// Records that a stream partition is durable up to `end`: subscribers see rows only
    /// that far, and publishes no longer wait on it.
    fn mark_durable(&mut self, stream: &str, partition: usize, end: u64) {
        if let Some(part) = self
            .log_mut(stream)
            .and_then(|log| log.partition_mut(partition))
        {
            part.mark_durable(end);
        }
        for unfed in self.unfed.iter_mut().filter(|u| u.logged.stream == stream) {
            unfed
                .waiting
                .retain(|&(waiting, until)| waiting != partition || until > end);
        }
    }

    /// Stops the publishes stamped up to `stamp` from waiting to be durable: their sync
    /// failed, and they are fed all the same (the log holds the rows, and a restart would
    /// feed them).
    fn stop_waiting_through(&mut self, stamp: Millis) {
        for unfed in self.unfed.iter_mut().filter(|u| u.logged.stamp <= stamp) {
            unfed.waiting.clear();
        }
    }

    /// Whether the publish at the front of the queue is durable, to be fed.
    fn front_durable(&self) -> bool {
        self.unfed.front().is_some_and(|u| u.waiting.is_empty())
    }

    /// The durable publishes at the front of the queue (up to [`FEED_BATCH`]), taken to be
    /// fed, in stamp order.
    fn take_durable(&mut self) -> Vec<Logged> {
        let mut taken = Vec::new();
        while taken.len() < FEED_BATCH && self.front_durable() {
            if let Some(unfed) = self.unfed.pop_front() {
                self.taken_stamp = unfed.logged.stamp;
                self.unfed_bytes -= bytes_of(&unfed.logged);
                taken.push(unfed.logged);
            }
        }
        taken
    }

    /// The stamp of the latest publish that is durable with all before it: once the
    /// queries have been fed up to it, they have seen every acknowledged publish.
    pub fn durable_stamp(&self) -> Millis {
        self.unfed
            .iter()
            .take_while(|u| u.waiting.is_empty())
            .last()
            .map_or(self.taken_stamp, |u| u.logged.stamp)
    }

    /// Sets the offset from which each stream partition's rows are kept whatever retention
    /// says (see `Core::update_retention_floors`); a partition without one, or every
    /// partition when `None`, is not held back.
    pub(super) fn set_retention_floors(&mut self, floors: Option<BTreeMap<(String, usize), u64>>) {
        self.retention_floors = floors;
    }

    /// Bytes retention held back at its last run for the rows checkpoints need.
    pub(super) fn held_back_bytes(&self) -> u64 {
        self.held_back_bytes
    }

    /// Applies retention to every stream's log, keeping in each partition the rows from its
    /// retention floor on (see [`Streams::set_retention_floors`]).
    pub fn enforce_retention(&mut self, now: Millis) -> Result<(), ServeError> {
        let mut held_back = 0;
        for (name, log) in &mut self.logs {
            for partition in 0..log.partitions().len() {
                let keep_from = match &self.retention_floors {
                    None => u64::MAX,
                    Some(floors) => floors
                        .get(&(name.clone(), partition))
                        .copied()
                        .unwrap_or(u64::MAX),
                };
                if let Some(part) = log.partition_mut(partition) {
                    held_back += part
                        .enforce_retention_keeping(now, keep_from)?
                        .held_back_bytes;
                }
            }
        }
        for log in self.rejected.values_mut() {
            log.enforce_retention(now)?;
        }
        if held_back > 0 && self.held_back_bytes == 0 {
            eprintln!(
                "retention: {held_back} bytes kept past the retention limits: the oldest kept \
                 checkpoint needs them (see stats: checkpoints)"
            );
        }
        self.held_back_bytes = held_back;
        Ok(())
    }
}

/// The bytes of `logged`'s rows.
fn bytes_of(logged: &Logged) -> usize {
    logged
        .parts
        .iter()
        .map(|part| part.rows.get_array_memory_size())
        .sum()
}

/// The streams, shared by the core and the publisher; the signal that publishes became
/// durable, for the feeder, and that the feeder took some, for the publisher.
#[derive(Default)]
pub struct SharedStreams {
    streams: Mutex<Streams>,
    durable: Condvar,
    room: Condvar,
}

fn unavailable<T>(_: T) -> ServeError {
    ServeError::Request("the server's streams are unavailable".into())
}

impl SharedStreams {
    pub fn lock(&self) -> Result<MutexGuard<'_, Streams>, ServeError> {
        self.streams.lock().map_err(unavailable)
    }

    /// Makes every append so far durable, then wakes the feeder. When the disk fails, the
    /// publishes appended so far are fed all the same.
    pub fn sync(&self) -> Result<(), ServeError> {
        let (syncs, appended) = {
            let mut streams = self.lock()?;
            (streams.begin_sync(), streams.last_stamp)
        };
        let synced: Result<Vec<_>, ServeError> =
            syncs.and_then(|syncs| syncs.into_iter().map(StreamSync::wait).collect());
        {
            let mut streams = self.lock()?;
            match &synced {
                Ok(ends) => {
                    for (stream, partition, end) in ends {
                        streams.mark_durable(stream, *partition, *end);
                    }
                }
                Err(_) => streams.stop_waiting_through(appended),
            }
        }
        self.durable.notify_all();
        synced.map(drop)
    }

    /// The durable publishes at the front of the queue, waiting up to `timeout` for some.
    pub fn wait_durable(&self, timeout: Duration) -> Result<Vec<Logged>, ServeError> {
        let mut streams = self.lock()?;
        if !streams.front_durable() {
            streams = self
                .durable
                .wait_timeout(streams, timeout)
                .map_err(unavailable)?
                .0;
        }
        let taken = streams.take_durable();
        if !taken.is_empty() {
            self.room.notify_all();
        }
        Ok(taken)
    }

    /// Waits while the publishes not fed yet hold more than [`MAX_UNFED_BYTES`].
    pub fn wait_for_room(&self) -> Result<(), ServeError> {
        let mut streams = self.lock()?;
        while streams.unfed_bytes > MAX_UNFED_BYTES {
            streams = self.room.wait(streams).map_err(unavailable)?;
        }
        Ok(())
    }
}
