//! The server's state: the SQL session, each stream's log, each standing query's result
//! log, consumer groups and subscriptions. Connections reach it under one lock.
//!
//! A publish is stamped (strictly increasing), appended to the stream's log, synced, then
//! fed to the engine; what each query emits goes to the query's result log under the same
//! stamp. Stream subscribers see rows once durable. What the server has been told
//! (statements, registered and cancelled queries) is kept in `catalog.jsonl` with the stamp
//! of the last publish fed before it. On start, the entries and every stream's retained
//! records are replayed in stamp order, so each query sees what it saw when live; results
//! of stamps a result log already holds are not appended again. Result logs are therefore
//! not synced: a restart makes them again from the streams' logs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt8Array, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt8Type};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_engine::catalog::StreamDef;
use sluice_engine::input::{FileFormat, reader};
use sluice_engine::output::to_output_batch;
use sluice_engine::time::Millis;
use sluice_engine::{Changes, EngineError, QueryId};
use sluice_log::{
    Appended, Fetched, GroupOffsets, LogConfig, PartitionLog, PendingSync, StreamLog,
};
use sluice_sql::session::{AlertGroup, CompiledGroup, alerts_query_name};
use sluice_sql::{ALERT_COLUMN, Outcome, ParsedStatement, Session};

use crate::ServeError;

/// The column a log record of changes keeps their kinds in.
const KINDS_COLUMN: &str = "__op";

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
    fn key(&self) -> String {
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

struct Subscription {
    target: Target,
    group: Option<String>,
    start: StartAt,
    /// The next offset to deliver, per partition read so far.
    positions: BTreeMap<usize, u64>,
    /// Partitions the subscription's group was last told are near the retention edge
    /// (`false`) or behind it (`true`).
    warned: BTreeMap<usize, bool>,
}

struct Query {
    id: QueryId,
    /// The result log's directory under `results/`.
    dir: String,
    log: StreamLog,
    /// What the result log held when the server started: results of earlier inputs are
    /// not appended again while the inputs are replayed.
    logged: Resume,
}

/// The last input stamp a result log holds results of, and how many results of it.
#[derive(Debug, Clone, Copy, Default)]
struct Resume {
    stamp: Millis,
    count: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum CatalogEntry {
    Statement {
        sql: String,
        /// The stamp of the latest publish when it ran.
        #[serde(default)]
        at: Millis,
    },
    Register {
        name: String,
        sql: String,
        #[serde(default)]
        at: Millis,
        /// The result log's directory; the name when absent.
        #[serde(default)]
        dir: Option<String>,
    },
    Cancel {
        name: String,
        #[serde(default)]
        at: Millis,
    },
}

impl CatalogEntry {
    fn at(&self) -> Millis {
        match self {
            CatalogEntry::Statement { at, .. }
            | CatalogEntry::Register { at, .. }
            | CatalogEntry::Cancel { at, .. } => *at,
        }
    }
}

/// Rows a publish appended to a stream's log, under one stamp.
pub struct Logged {
    pub stream: String,
    pub stamp: Millis,
    pub parts: Vec<Appended>,
}

/// A sync of one stream partition, to wait on without holding the core.
pub struct StreamSync {
    stream: String,
    partition: usize,
    pending: PendingSync,
}

impl StreamSync {
    /// Waits for the disk; gives what to pass to [`Core::mark_durable`].
    pub fn wait(self) -> Result<(String, usize, u64), ServeError> {
        let end = self.pending.wait()?;
        Ok((self.stream, self.partition, end))
    }
}

/// Reads one stream partition's records in order, a chunk at a time, while replaying.
struct Cursor {
    stream: String,
    partition: usize,
    next: u64,
    buffered: std::collections::VecDeque<(Millis, Fetched)>,
}

/// What a subscription is sent next: rows, and notices about its group.
#[derive(Default)]
pub struct Fetch {
    pub rows: Vec<Delivered>,
    /// A line for each partition whose group's committed offset has come near the retention
    /// edge (within the oldest segment, which retention deletes next) or fallen behind it;
    /// said once until it is no longer so.
    pub warnings: Vec<String>,
}

/// A row delivered to a subscriber.
pub struct Delivered {
    pub partition: usize,
    pub offset: u64,
    /// The row as a JSON object, `op` first.
    pub row: String,
}

pub struct Core {
    /// Held locked while the server runs, so no second one opens the same directory.
    _lock: std::fs::File,
    session: Session,
    data_dir: PathBuf,
    config: LogConfig,
    streams: BTreeMap<String, StreamLog>,
    queries: BTreeMap<String, Query>,
    groups: BTreeMap<String, GroupOffsets>,
    subscriptions: BTreeMap<u64, Subscription>,
    /// Subscriptions whose target went away, with what happened, until their reader is told.
    ended: BTreeMap<u64, String>,
    next_subscription: u64,
    /// While replaying on start: nothing is written to the catalog.
    replaying: bool,
    /// The append time given to the latest publish.
    last_stamp: Millis,
    /// The stamp of the latest publish fed to the engine: catalog entries record it, so a
    /// replay applies them between the same publishes.
    fed_stamp: Millis,
    /// Queries registered so far, numbering their result logs.
    registrations: u64,
}

fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

fn internal(error: impl std::fmt::Display) -> ServeError {
    ServeError::Request(error.to_string())
}

impl Core {
    /// Opens the server's state in `data_dir`, replaying what it holds.
    pub fn open(data_dir: &Path, config: LogConfig) -> Result<Core, ServeError> {
        std::fs::create_dir_all(data_dir)?;
        let lock = std::fs::File::create(data_dir.join("lock"))?;
        if let Err(error) = lock.try_lock() {
            return Err(match error {
                std::fs::TryLockError::WouldBlock => {
                    ServeError::InUse(data_dir.display().to_string())
                }
                std::fs::TryLockError::Error(error) => error.into(),
            });
        }
        let mut core = Core {
            _lock: lock,
            session: Session::new(),
            data_dir: data_dir.to_path_buf(),
            config,
            streams: BTreeMap::new(),
            queries: BTreeMap::new(),
            groups: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            ended: BTreeMap::new(),
            next_subscription: 1,
            replaying: true,
            last_stamp: 0,
            fed_stamp: 0,
            registrations: 0,
        };
        // A query sees what is published after it is registered, on replay as when live.
        core.session.engine_mut().stop_retaining_history();
        // Inserted rows go through the stream's log like published ones.
        core.session.capture_inserts();
        let catalog = core.data_dir.join("catalog.jsonl");
        let text = match std::fs::read_to_string(&catalog) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error.into()),
        };
        let mut entries = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry: CatalogEntry = serde_json::from_str(line)
                .map_err(|e| internal(format!("{} is unreadable: {e}", catalog.display())))?;
            entries.push(entry);
        }
        core.replay(entries)?;
        core.replaying = false;
        Ok(core)
    }

    /// Rebuilds the queries: applies the catalog's entries and feeds every stream's
    /// retained records to the engine, in the order they happened (by publish stamp; an
    /// entry comes after the publishes stamped up to its `at`).
    fn replay(&mut self, entries: Vec<CatalogEntry>) -> Result<(), ServeError> {
        let mut entries = entries.into_iter().peekable();
        let mut cursors: Vec<Cursor> = Vec::new();
        loop {
            // Streams are created by entries: start reading the new ones.
            for (name, log) in &self.streams {
                for (partition, part) in log.partitions().iter().enumerate() {
                    if !cursors
                        .iter()
                        .any(|c| &c.stream == name && c.partition == partition)
                    {
                        cursors.push(Cursor {
                            stream: name.clone(),
                            partition,
                            next: part.start(),
                            buffered: Default::default(),
                        });
                    }
                }
            }
            for cursor in &mut cursors {
                if cursor.buffered.is_empty() {
                    self.fill(cursor)?;
                }
            }
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.buffered.front().map(|(stamp, _)| (*stamp, i)))
                .min_by(|a, b| {
                    let (ca, cb) = (&cursors[a.1], &cursors[b.1]);
                    (a.0, &ca.stream, ca.partition).cmp(&(b.0, &cb.stream, cb.partition))
                });
            let entry_first = match (entries.peek(), next) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(entry), Some((stamp, _))) => entry.at() < stamp,
            };
            if entry_first {
                if let Some(entry) = entries.next() {
                    self.apply(entry)?;
                }
                continue;
            }
            let Some((stamp, index)) = next else { continue };
            let Some((_, record)) = cursors[index].buffered.pop_front() else {
                continue;
            };
            self.last_stamp = self.last_stamp.max(stamp);
            self.fed_stamp = stamp;
            let changes = split_kinds(&record.rows)?;
            let stream = cursors[index].stream.clone();
            self.session
                .engine_mut()
                .append_changes(&stream, &changes)?;
            self.collect_results(stamp)?;
        }
    }

    /// Reads the cursor's next chunk of records.
    fn fill(&self, cursor: &mut Cursor) -> Result<(), ServeError> {
        let Some(part) = self
            .streams
            .get(&cursor.stream)
            .and_then(|log| log.partitions().get(cursor.partition))
        else {
            return Ok(());
        };
        for record in part.read(cursor.next, 1 << 14)? {
            cursor.next = record.offset + record.rows.num_rows() as u64;
            let stamp = part.append_time(record.offset).unwrap_or_default();
            cursor.buffered.push_back((stamp, record));
        }
        Ok(())
    }

    fn apply(&mut self, entry: CatalogEntry) -> Result<(), ServeError> {
        match entry {
            CatalogEntry::Statement { sql, .. } => {
                self.execute_sql(&sql)?;
            }
            CatalogEntry::Register { name, sql, dir, .. } => {
                let dir = dir.unwrap_or_else(|| name.clone());
                self.start_query(&name, &sql, dir)?;
            }
            CatalogEntry::Cancel { name, .. } => self.cancel(&name)?,
        }
        Ok(())
    }

    fn remember(&mut self, entry: CatalogEntry) -> Result<(), ServeError> {
        if self.replaying {
            return Ok(());
        }
        let path = self.data_dir.join("catalog.jsonl");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut line = serde_json::to_string(&entry).map_err(internal)?;
        line.push('\n');
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        Ok(())
    }

    /// Runs SQL statements (DDL, `INSERT`, `SHOW`, `SET`, ...); gives a reply per statement.
    pub fn execute_sql(&mut self, sql: &str) -> Result<Vec<Value>, ServeError> {
        let outcomes = self.session.execute_sql(sql)?;
        self.reply(sql, outcomes)
    }

    /// A group of alert statements, checked, to compile off the core.
    pub fn alert_group(&self, statements: Vec<ParsedStatement>) -> Result<AlertGroup, ServeError> {
        Ok(self.session.alert_group(statements)?)
    }

    /// Applies the alert statements `sql`, checked as `group` and compiled off the core;
    /// gives a reply per statement.
    pub fn apply_alert_group(
        &mut self,
        sql: &str,
        group: &AlertGroup,
        compiled: CompiledGroup,
    ) -> Result<Vec<Value>, ServeError> {
        let outcomes = self.session.apply_alert_group(group, compiled)?;
        self.reply(sql, outcomes)
    }

    /// Records what the statements `sql` did, which gave `outcomes`; a reply per statement.
    fn reply(&mut self, sql: &str, outcomes: Vec<Outcome>) -> Result<Vec<Value>, ServeError> {
        let mut replies = Vec::new();
        let mut changed = false;
        for outcome in outcomes {
            match outcome {
                Outcome::Created { kind, name } => {
                    changed = true;
                    if let Some(def) = self.session.engine().catalog().get(&name).cloned() {
                        let logged = matches!(kind.noun(), "stream" | "table");
                        if logged && !self.streams.contains_key(&name) {
                            let partitions = match def.option("partitions") {
                                None => 1,
                                Some(text) => text.parse().map_err(|_| {
                                    internal(format!(
                                        "'partitions' = '{text}' is not a partition count"
                                    ))
                                })?,
                            };
                            let key = def.option("key");
                            let dir = self.data_dir.join("streams").join(&name);
                            let (log, _) = StreamLog::open(&dir, partitions, key, self.config)?;
                            self.streams.insert(name.clone(), log);
                        }
                    }
                    replies.push(json!({"created": kind.noun(), "name": name}));
                }
                Outcome::Dropped { kind, name } => {
                    changed = true;
                    replies.push(json!({"dropped": kind.noun(), "name": name}));
                }
                Outcome::Inserted { stream, rows } => {
                    replies.push(json!({"inserted": rows, "stream": stream}));
                }
                Outcome::AlertCreated { name, started } => {
                    changed = true;
                    if let Some(query) = started {
                        let source = self.session.alert_source_of(&name).unwrap_or(&name);
                        let dir = format!("alerts.{source}.{}", self.registrations + 1);
                        self.add_query(&query.name, query.id, dir)?;
                    }
                    replies.push(json!({"created": "alert", "name": name}));
                }
                Outcome::AlertDropped { name, stopped } => {
                    changed = true;
                    self.end_subscriptions(
                        &Target::Alert(name.clone()),
                        &format!("alert '{name}' was dropped"),
                    );
                    if let Some((_, query)) = stopped {
                        self.remove_query(&query)?;
                    }
                    replies.push(json!({"dropped": "alert", "name": name}));
                }
                Outcome::Started(query) | Outcome::Materialized(query) => {
                    // A SELECT run as a statement: register it under its name instead.
                    self.session.engine_mut().cancel(query.id)?;
                    return Err(ServeError::Request(format!(
                        "a query runs as a registered query: use {{\"op\":\"register\",\"name\":\
                         \"...\",\"sql\":\"...\"}} (it would have been '{}')",
                        query.name
                    )));
                }
                Outcome::Rows(rows) => {
                    let columns: Vec<String> = rows
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect();
                    replies.push(json!({"columns": columns, "rows": rows_as_json(&rows)?}));
                }
                Outcome::Unchanged(text) => replies.push(json!({"unchanged": text})),
                Outcome::Set { key, value } => {
                    changed = true;
                    replies.push(json!({"set": key, "value": value}));
                }
            }
        }
        if changed {
            self.remember(CatalogEntry::Statement {
                sql: sql.to_string(),
                at: self.fed_stamp,
            })?;
        }
        self.collect_results(self.fed_stamp)?;
        for (stream, rows) in self.session.take_inserted() {
            let logged = self.append(&stream, &Changes::inserts(rows))?;
            self.sync_now()?;
            self.feed(&logged)?;
        }
        Ok(replies)
    }

    /// Starts a standing query named `name` whose results go to its own log.
    pub fn register(&mut self, name: &str, sql: &str) -> Result<(), ServeError> {
        let dir = format!("{name}.{}", self.registrations + 1);
        self.start_query(name, sql, dir.clone())?;
        self.remember(CatalogEntry::Register {
            name: name.to_string(),
            sql: sql.to_string(),
            at: self.fed_stamp,
            dir: Some(dir),
        })
    }

    fn start_query(&mut self, name: &str, sql: &str, dir: String) -> Result<(), ServeError> {
        if self.queries.contains_key(name) {
            return Err(ServeError::Request(format!(
                "query '{name}' already exists"
            )));
        }
        let view = format!("CREATE VIEW {name} AS {sql}");
        self.session.execute_sql(&view)?;
        let started = match self.session.start_view_query(name) {
            Ok(started) => started,
            Err(error) => {
                // Leave no view behind a query that did not start.
                let _ = self.session.execute_sql(&format!("DROP VIEW {name}"));
                return Err(error.into());
            }
        };
        self.add_query(name, started.id, dir)
    }

    /// Keeps the results of running query `id` in result log `dir`, under `name`.
    fn add_query(&mut self, name: &str, id: QueryId, dir: String) -> Result<(), ServeError> {
        self.registrations += 1;
        let (log, _) = StreamLog::open(
            &self.data_dir.join("results").join(&dir),
            1,
            None,
            self.config,
        )?;
        let logged = log.partitions().first().map_or(Resume::default(), |part| {
            let last = part
                .end()
                .checked_sub(1)
                .and_then(|offset| part.append_time(offset));
            match last {
                None => Resume::default(),
                Some(stamp) => Resume {
                    stamp,
                    count: part.end() - part.offset_at(stamp),
                },
            }
        });
        self.last_stamp = self.last_stamp.max(logged.stamp);
        self.queries.insert(
            name.to_string(),
            Query {
                id,
                dir,
                log,
                logged,
            },
        );
        // Results of the registration itself (a table's current rows).
        self.collect_results(self.fed_stamp)
    }

    /// Stops query `name` and deletes its result log.
    pub fn cancel(&mut self, name: &str) -> Result<(), ServeError> {
        let query = self
            .queries
            .get(name)
            .ok_or_else(|| ServeError::Request(format!("no query named '{name}'")))?;
        if name.starts_with("alerts:") {
            return Err(ServeError::Request(format!(
                "'{name}' runs alerts: it stops when its last alert is dropped (DROP ALERT)"
            )));
        }
        self.session.engine_mut().cancel(query.id)?;
        self.session.execute_sql(&format!("DROP VIEW {name}"))?;
        self.remember(CatalogEntry::Cancel {
            name: name.to_string(),
            at: self.fed_stamp,
        })?;
        self.remove_query(name)
    }

    /// Forgets query `name` (stopped already), its subscribers and its result log.
    fn remove_query(&mut self, name: &str) -> Result<(), ServeError> {
        let Some(query) = self.queries.remove(name) else {
            return Ok(());
        };
        self.end_subscriptions(
            &Target::Query(name.to_string()),
            &format!("query '{name}' was stopped"),
        );
        drop(query.log);
        let dir = self.data_dir.join("results").join(&query.dir);
        match std::fs::remove_dir_all(dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
            _ => Ok(()),
        }
    }

    /// The definition of stream `name`, to decode events for it with [`decode`].
    pub fn stream_def(&self, name: &str) -> Result<Arc<StreamDef>, ServeError> {
        self.session
            .engine()
            .catalog()
            .get(name)
            .cloned()
            .ok_or_else(|| ServeError::Request(format!("unknown stream '{name}'")))
    }

    /// Appends rows to `stream`'s log under a new stamp (durable once synced: see
    /// [`Core::begin_sync`]); gives what went to each partition, in the order the engine is
    /// to be fed it.
    pub fn append(&mut self, stream: &str, changes: &Changes) -> Result<Logged, ServeError> {
        // Publishes are stamped in the order they happen, so a replay can follow it.
        let stamp = now().max(self.last_stamp + 1);
        let log = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| ServeError::Request(format!("unknown stream '{stream}'")))?;
        let parts = log.publish(&with_kinds(changes)?, stamp)?;
        self.last_stamp = stamp;
        Ok(Logged {
            stream: stream.to_string(),
            stamp,
            parts,
        })
    }

    /// Syncs of every stream partition appended to since its last sync.
    pub fn begin_sync(&mut self) -> Result<Vec<StreamSync>, ServeError> {
        let mut syncs = Vec::new();
        for (name, log) in &mut self.streams {
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

    /// Makes every append durable before going on.
    fn sync_now(&mut self) -> Result<(), ServeError> {
        for sync in self.begin_sync()? {
            let (stream, partition, end) = sync.wait()?;
            self.mark_durable(&stream, partition, end);
        }
        Ok(())
    }

    /// Records that a stream partition is durable up to `end`: subscribers see rows only
    /// that far.
    pub fn mark_durable(&mut self, stream: &str, partition: usize, end: u64) {
        if let Some(part) = self
            .streams
            .get_mut(stream)
            .and_then(|log| log.partition_mut(partition))
        {
            part.mark_durable(end);
        }
    }

    /// Feeds logged rows to the standing queries; their results go to the result logs.
    pub fn feed(&mut self, logged: &Logged) -> Result<(), ServeError> {
        self.fed_stamp = logged.stamp;
        for part in &logged.parts {
            let changes = split_kinds(&part.rows)?;
            self.session
                .engine_mut()
                .append_changes(&logged.stream, &changes)?;
        }
        self.collect_results(logged.stamp)
    }

    /// Appends what the queries emitted to their result logs, stamped with the publish
    /// that caused it. The result logs are not synced: they are made again from the
    /// streams' logs on a restart.
    fn collect_results(&mut self, stamp: Millis) -> Result<(), ServeError> {
        let results = self.session.engine_mut().drain_results();
        for (id, changes) in results {
            let Some(query) = self.queries.values_mut().find(|q| q.id == id) else {
                continue;
            };
            for change in changes {
                let mut rows = to_output_batch(&change)?;
                if stamp < query.logged.stamp {
                    continue;
                }
                if stamp == query.logged.stamp {
                    let skipped = query.logged.count.min(rows.num_rows() as u64) as usize;
                    query.logged.count -= skipped as u64;
                    rows = rows.slice(skipped, rows.num_rows() - skipped);
                }
                if rows.num_rows() > 0 {
                    query.log.publish(&rows, stamp)?;
                }
            }
        }
        self.session.engine_mut().drain_late_results();
        Ok(())
    }

    fn log(&self, target: &Target) -> Result<&StreamLog, ServeError> {
        match target {
            Target::Stream(name) => self
                .streams
                .get(name)
                .ok_or_else(|| ServeError::Request(format!("unknown stream '{name}'"))),
            Target::Query(name) => self
                .queries
                .get(name)
                .map(|q| &q.log)
                .ok_or_else(|| ServeError::Request(format!("no query named '{name}'"))),
            Target::Alert(name) => self
                .session
                .alert_source_of(name)
                .and_then(|source| self.queries.get(&alerts_query_name(source)))
                .map(|q| &q.log)
                .ok_or_else(|| ServeError::Request(format!("no alert named '{name}'"))),
        }
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
            for (partition, part) in self.log(&target)?.partitions().iter().enumerate() {
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
    fn end_subscriptions(&mut self, target: &Target, reason: &str) {
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
        let subscription = self
            .subscriptions
            .get(&id)
            .ok_or_else(|| ServeError::Request(format!("no subscription {id}")))?;
        let partitions = self.log(&subscription.target)?.partitions().len();
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

    /// The next rows for a subscription, at most about `max_rows`, from its assigned
    /// partitions; advances its positions past them.
    pub fn fetch(&mut self, id: u64, max_rows: usize) -> Result<Fetch, ServeError> {
        if let Some(reason) = self.ended.remove(&id) {
            return Err(ServeError::Request(reason));
        }
        let assigned = self.assigned(id)?;
        let mut warnings = self.retention_warnings(id, &assigned);
        let Some(subscription) = self.subscriptions.get(&id) else {
            return Ok(Fetch::default());
        };
        let log = self.log(&subscription.target)?;
        let mut delivered = Vec::new();
        let mut positions = Vec::new();
        for partition in assigned {
            let Some(part) = log.partitions().get(partition) else {
                continue;
            };
            let position = self.next_offset(subscription, partition, part);
            if position < part.start() {
                warnings.push(format!(
                    "rows {position}..{} of partition {partition} were deleted by retention \
                     before they were delivered",
                    part.start()
                ));
            }
            let mut next = position.max(part.start());
            // Stream rows are delivered once durable; results are made again on a restart.
            let end = match subscription.target {
                Target::Stream(_) => part.durable_end(),
                Target::Query(_) | Target::Alert(_) => part.end(),
            };
            if delivered.len() < max_rows && next < end {
                for fetched in part.read(next, max_rows - delivered.len())? {
                    if fetched.offset >= end {
                        break;
                    }
                    let (rows, offsets) = match &subscription.target {
                        Target::Stream(_) => (to_output_batch(&split_kinds(&fetched.rows)?)?, None),
                        Target::Query(_) => (fetched.rows.clone(), None),
                        Target::Alert(name) => {
                            let (rows, kept) = firings_of(&fetched.rows, name)?;
                            (rows, Some(kept))
                        }
                    };
                    for (i, row) in json_rows(&rows)?.into_iter().enumerate() {
                        let at = offsets.as_ref().and_then(|o| o.get(i)).copied();
                        delivered.push(Delivered {
                            partition,
                            offset: fetched.offset + at.unwrap_or(i) as u64,
                            row,
                        });
                    }
                    next = fetched.offset + fetched.rows.num_rows() as u64;
                }
            }
            positions.push((partition, next));
        }
        if let Some(subscription) = self.subscriptions.get_mut(&id) {
            subscription.positions.extend(positions);
        }
        Ok(Fetch {
            rows: delivered,
            warnings,
        })
    }

    /// Whether a group's committed offset `committed` in `part` is behind the retention edge
    /// (`Some(true)`), near it (`Some(false)`: within the oldest segment, which retention
    /// deletes next), or neither.
    fn retention_edge(&self, part: &PartitionLog, committed: u64) -> Option<bool> {
        let retained = self.config.retention_bytes.is_some() || self.config.retention_age.is_some();
        if committed < part.start() {
            Some(true)
        } else if retained && part.oldest_segment_end().is_some_and(|end| committed < end) {
            Some(false)
        } else {
            None
        }
    }

    /// Warnings for a group subscription's partitions whose committed offset has come near
    /// the retention edge or passed it, each said once until that changes.
    fn retention_warnings(&mut self, id: u64, assigned: &[usize]) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(subscription) = self.subscriptions.get(&id) else {
            return warnings;
        };
        let (Some(group), Ok(log)) = (&subscription.group, self.log(&subscription.target)) else {
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
            let Some(behind) = self.retention_edge(part, committed) else {
                continue;
            };
            near.push((partition, behind));
            if subscription.warned.get(&partition) != Some(&behind) {
                let state = if behind {
                    "has fallen behind"
                } else {
                    "is near"
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

    /// The next offset `subscription` reads in `partition` (`part`): where it got to, or
    /// its group's committed offset, or where it was asked to start.
    fn next_offset(
        &self,
        subscription: &Subscription,
        partition: usize,
        part: &PartitionLog,
    ) -> u64 {
        if let Some(position) = subscription.positions.get(&partition) {
            return *position;
        }
        let committed = subscription.group.as_ref().and_then(|g| {
            self.groups
                .get(g)
                .and_then(|o| o.get(&subscription.target.key(), partition))
        });
        committed.unwrap_or(match subscription.start {
            StartAt::Earliest => part.start(),
            StartAt::Latest => part.end(),
            StartAt::Offset(offset) => offset,
            StartAt::Time(time) => part.offset_at(time),
        })
    }

    /// Acknowledges a subscription's rows up to `offset` of a partition: in a group, its
    /// next offset there is committed durably.
    pub fn ack(&mut self, id: u64, partition: usize, offset: u64) -> Result<(), ServeError> {
        let subscription = self
            .subscriptions
            .get(&id)
            .ok_or_else(|| ServeError::Request(format!("no subscription {id}")))?;
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

    /// Streams, queries and groups with their offsets, lag and state.
    pub fn stats(&self) -> Value {
        let streams: Vec<Value> = self
            .streams
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
                    "results": query.log.partitions().first().map_or(0, |p| p.end()),
                    "watermark": info.map(|i| i.watermark),
                    "state_bytes": info.map(|i| i.state_bytes),
                    "late_rows": info.map(|i| i.late_rows),
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
                let Ok(log) = self.log(target) else { continue };
                for (partition, part) in log.partitions().iter().enumerate() {
                    let committed = offsets.get(&target.key(), partition);
                    let lag = part.end() - committed.unwrap_or(part.start()).min(part.end());
                    groups.push(json!({
                        "group": group,
                        "target": target.key(),
                        "partition": partition,
                        "committed": committed,
                        "lag": lag,
                        "retention_edge": match committed.and_then(|c| self.retention_edge(part, c)) {
                            Some(true) => "behind",
                            Some(false) => "near",
                            None => "clear",
                        },
                    }));
                }
            }
        }
        let mut subscriptions = Vec::new();
        for (id, subscription) in &self.subscriptions {
            let Ok(log) = self.log(&subscription.target) else {
                continue;
            };
            let mut lag = 0;
            for partition in self.assigned(*id).unwrap_or_default() {
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
        json!({"streams": streams, "queries": queries, "groups": groups,
               "subscriptions": subscriptions})
    }

    pub fn names(&self) -> Value {
        json!({
            "streams": self.streams.keys().collect::<Vec<_>>(),
            "queries": self.queries.keys().collect::<Vec<_>>(),
        })
    }

    /// Applies retention to every log.
    pub fn enforce_retention(&mut self) -> Result<(), ServeError> {
        let now = now();
        for log in self.streams.values_mut() {
            log.enforce_retention(now)?;
        }
        for query in self.queries.values_mut() {
            query.log.enforce_retention(now)?;
        }
        Ok(())
    }
}

/// What a publish carries.
pub enum Payload {
    /// JSON objects.
    Events(Vec<Value>),
    /// CSV text with a header line.
    Csv(String),
}

/// Decodes a publish's rows for `def`'s stream, in one batch: all are accepted or none.
pub fn decode(def: &StreamDef, payload: &Payload) -> Result<Changes, ServeError> {
    let (text, format) = match payload {
        Payload::Csv(text) => (std::borrow::Cow::Borrowed(text.as_str()), FileFormat::Csv),
        Payload::Events(events) => {
            let mut text = String::new();
            for (index, event) in events.iter().enumerate() {
                if !event.is_object() {
                    return Err(ServeError::Request(format!(
                        "event {} is not a JSON object",
                        index + 1
                    )));
                }
                text.push_str(&event.to_string());
                text.push('\n');
            }
            (std::borrow::Cow::Owned(text), FileFormat::JsonLines)
        }
    };
    let mut rows = reader(text.as_bytes(), format, def)?;
    let mut batches = Vec::new();
    while let Some(decoded) = rows.next_batch()? {
        if let Some(error) = decoded.errors.first() {
            return Err(ServeError::Request(format!(
                "{} {} does not fit stream '{}': {}",
                match payload {
                    Payload::Csv(_) => "line",
                    Payload::Events(_) => "event",
                },
                error.line,
                def.name,
                error.reason
            )));
        }
        batches.push(decoded.rows);
    }
    if batches.is_empty() {
        return Err(ServeError::Request("the publish has no events".into()));
    }
    Ok(Changes::concat(&batches)?)
}

/// `changes` as a batch to log: its rows, and its kinds in [`KINDS_COLUMN`] when not all
/// inserts.
fn with_kinds(changes: &Changes) -> Result<RecordBatch, EngineError> {
    let Some(kinds) = &changes.kinds else {
        return Ok(changes.rows.clone());
    };
    let mut fields: Vec<Field> = changes
        .rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(KINDS_COLUMN, DataType::UInt8, false));
    let mut columns = changes.rows.columns().to_vec();
    columns.push(std::sync::Arc::new(kinds.clone()) as ArrayRef);
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// A logged batch back as changes.
fn split_kinds(batch: &RecordBatch) -> Result<Changes, EngineError> {
    let Ok(index) = batch.schema().index_of(KINDS_COLUMN) else {
        return Ok(Changes::inserts(batch.clone()));
    };
    let kinds: UInt8Array = batch.column(index).as_primitive::<UInt8Type>().clone();
    let mut rows = batch.clone();
    rows.remove_column(index);
    Ok(Changes {
        rows,
        kinds: Some(kinds),
    })
}

/// The rows of result rows `rows` (of an alert query) that are firings of alert `name`,
/// and their positions in `rows`.
fn firings_of(rows: &RecordBatch, name: &str) -> Result<(RecordBatch, Vec<usize>), ServeError> {
    let names = rows
        .column_by_name(ALERT_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| internal("alert results without the alert's name"))?;
    let kept: Vec<usize> = (0..names.len())
        .filter(|&row| names.is_valid(row) && names.value(row) == name)
        .collect();
    let indices = UInt32Array::from_iter_values(kept.iter().map(|&row| row as u32));
    Ok((take_record_batch(rows, &indices)?, kept))
}

/// Each row of `rows` as a JSON object.
fn json_rows(rows: &RecordBatch) -> Result<Vec<String>, ServeError> {
    let mut bytes = Vec::new();
    {
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut bytes);
        writer.write(rows)?;
        writer.finish()?;
    }
    let text = String::from_utf8(bytes).map_err(internal)?;
    Ok(text.lines().map(str::to_string).collect())
}

/// A bounded answer (`SHOW`, `DESCRIBE`) as JSON objects.
fn rows_as_json(rows: &RecordBatch) -> Result<Vec<Value>, ServeError> {
    let mut out = Vec::new();
    for line in json_rows(rows)? {
        out.push(serde_json::from_str(&line).map_err(internal)?);
    }
    Ok(out)
}
