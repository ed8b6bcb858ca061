//! Replay on start: the newest checkpoint restored, then the catalog journal's entries and
//! every stream's retained records after it, applied and fed to the engine in the order they
//! happened, so each standing query sees what it saw when live. A query whose state cannot
//! be made right — its checkpointed state did not load, or input it needs was deleted by
//! retention — is stopped and marked failed, never left running on wrong state.

use std::collections::{BTreeSet, VecDeque};

use sluice_engine::QueryId;
use sluice_engine::state::StateReader;
use sluice_engine::time::{Millis, with_arrival_time};
use sluice_log::Fetched;

use super::checkpoint::Cut;
use super::journal::CatalogEntry;
use super::records::split_kinds;
use super::{Core, FailedEntry};
use crate::ServeError;

/// Reads one stream partition's records in order, a chunk at a time, while replaying.
struct Cursor {
    stream: String,
    partition: usize,
    next: u64,
    /// Records read and not fed yet, each with its publish stamp.
    buffered: VecDeque<(Millis, Fetched)>,
}

impl Core {
    /// Restores the newest usable checkpoint: applies the journal entries it had applied
    /// (taking them off `entries`) and loads the queries' state. Gives its cut, from which
    /// the replay goes on.
    pub(super) fn restore(
        &mut self,
        entries: &mut Vec<CatalogEntry>,
    ) -> Result<Option<Cut>, ServeError> {
        let Some((cut, state)) = self.newest_checkpoint()? else {
            return Ok(None);
        };
        let applied = usize::try_from(cut.entries).unwrap_or(usize::MAX);
        if applied > entries.len() {
            return Err(ServeError::Request(format!(
                "checkpoint {} follows {applied} catalog entries, but catalog.jsonl holds {}:                  the catalog was changed; move the checkpoints directory away to replay from                  the retained input",
                cut.id,
                entries.len()
            )));
        }
        // The queries these entries register take their state from the checkpoint.
        self.restoring = true;
        for entry in entries.drain(..applied) {
            self.fed_stamp = entry.at();
            self.apply(entry)?;
        }
        self.restoring = false;
        let left_out = self
            .session
            .engine_mut()
            .load_state(&mut StateReader::of_format(&state, cut.format))
            .map_err(|error| {
                ServeError::Request(format!(
                    "checkpoint {} does not fit the catalog: {error}; move the checkpoints                      directory away to replay from the retained input",
                    cut.id
                ))
            })?;
        // A registration that failed again on this start is not counted: keep numbering
        // result logs after the ones the checkpoint knew of.
        self.registrations = self.registrations.max(cut.registrations);
        self.fed_stamp = cut.fed_stamp;
        self.streams.lock()?.saw_stamp(cut.fed_stamp);
        self.fed_offsets = cut.offsets.clone();
        for (id, reason) in left_out {
            let name = self.query_name(id);
            let reason = cut.failed.get(&name).cloned().unwrap_or(reason);
            self.fail_query(&name, reason)?;
        }
        for (name, ends) in &cut.result_ends {
            let Some(query) = self.queries.get(name) else {
                continue;
            };
            let now = [query.results.end(), query.late.end(), query.errors.end()];
            if now.iter().zip(ends).any(|(now, then)| now < then) {
                self.fail_query(
                    name,
                    format!("its output logs lost rows checkpoint {} covers", cut.id),
                )?;
            }
        }
        Ok(Some(cut))
    }

    /// Rebuilds the queries: applies the catalog's entries and feeds every stream's
    /// retained records to the engine, in the order they happened (by publish stamp; an
    /// entry comes after the publishes stamped up to its `at`), from `cut` on when a
    /// checkpoint was restored.
    pub(super) fn replay(
        &mut self,
        entries: Vec<CatalogEntry>,
        cut: Option<Cut>,
    ) -> Result<(), ServeError> {
        let mut entries = entries.into_iter().peekable();
        let mut cursors: Vec<Cursor> = Vec::new();
        loop {
            // Streams are created by entries: start reading the new ones.
            let mut deleted = Vec::new();
            for (name, log) in self.streams.lock()?.logs() {
                for (partition, part) in log.partitions().iter().enumerate() {
                    if !cursors
                        .iter()
                        .any(|c| &c.stream == name && c.partition == partition)
                    {
                        let key = (name.clone(), partition);
                        let from = cut.as_ref().and_then(|cut| cut.offsets.get(&key).copied());
                        if let Some(from) = from
                            && from < part.start()
                        {
                            deleted.push((name.clone(), partition, from, part.start()));
                        }
                        cursors.push(Cursor {
                            stream: name.clone(),
                            partition,
                            next: from.unwrap_or(0).max(part.start()),
                            buffered: Default::default(),
                        });
                    }
                }
            }
            for (stream, partition, from, start) in deleted {
                let reason = format!(
                    "stream '{stream}' partition {partition}: retention deleted offsets {from} to                      {start}, which the checkpoint's state needs"
                );
                self.fail_readers_of(&stream, &reason)?;
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
            self.streams.lock()?.saw_stamp(stamp);
            self.fed_stamp = stamp;
            let changes = split_kinds(&record.rows)?;
            let stream = cursors[index].stream.clone();
            self.fed_offsets.insert(
                (stream.clone(), cursors[index].partition),
                record.offset + record.rows.num_rows() as u64,
            );
            let engine = self.session.engine_mut();
            with_arrival_time(stamp, || engine.append_changes(&stream, &changes))?;
            self.collect_results(stamp)?;
        }
    }

    /// Reads the cursor's next chunk of records.
    fn fill(&self, cursor: &mut Cursor) -> Result<(), ServeError> {
        let streams = self.streams.lock()?;
        let Some(part) = streams
            .log(&cursor.stream)
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

    /// Does again what a journal entry recorded.
    /// Carries out a journal entry. One that fails for what it says (not for the disk) is
    /// kept in [`Core::failed`] and logged, and the replay goes on without it.
    fn apply(&mut self, entry: CatalogEntry) -> Result<(), ServeError> {
        self.journal_entries += 1;
        let at = entry.at();
        let before: BTreeSet<QueryId> = self.queries.values().map(|q| q.id).collect();
        let (described, outcome) = match entry {
            CatalogEntry::Statement { sql, .. } => {
                let outcome = self.execute_sql(&sql).map(drop);
                (sql, outcome)
            }
            CatalogEntry::Register { name, sql, dir, .. } => {
                let dir = dir.unwrap_or_else(|| name.clone());
                let outcome = self.start_query(&name, &sql, dir);
                (format!("register {name}: {sql}"), outcome)
            }
            CatalogEntry::Cancel { name, .. } => {
                let outcome = self.cancel(&name);
                (format!("cancel {name}"), outcome)
            }
        };
        let registered: Vec<QueryId> = self
            .queries
            .values()
            .map(|q| q.id)
            .filter(|id| !before.contains(id))
            .collect();
        if !self.restoring {
            for id in registered {
                self.check_retained_input(id, at)?;
            }
        }
        match outcome {
            Ok(()) => Ok(()),
            Err(error @ (ServeError::Io(_) | ServeError::Log(_) | ServeError::InUse(_))) => {
                Err(error)
            }
            Err(error) => {
                eprintln!("catalog: failed on start, left out: {described}: {error}");
                self.failed.push(FailedEntry {
                    entry: described,
                    error: error.to_string(),
                });
                Ok(())
            }
        }
    }
}

impl Core {
    /// The name of running query `id`.
    fn query_name(&self, id: QueryId) -> String {
        self.queries
            .iter()
            .find(|(_, query)| query.id == id)
            .map(|(name, _)| name.clone())
            .unwrap_or_default()
    }

    /// Fails query `id`, registered (on replay) after the publish stamped `registered_at`, if
    /// it keeps state and retention may have deleted records published after that: the
    /// oldest record kept of one of its streams came later.
    fn check_retained_input(
        &mut self,
        id: QueryId,
        registered_at: Millis,
    ) -> Result<(), ServeError> {
        let engine = self.session.engine();
        if !engine.query_keeps_state(id) {
            return Ok(());
        }
        let Some(info) = engine.queries().into_iter().find(|q| q.id == id) else {
            return Ok(());
        };
        let mut reason = None;
        {
            let streams = self.streams.lock()?;
            for stream in &info.sources {
                let Some(log) = streams.log(stream) else {
                    continue;
                };
                for (partition, part) in log.partitions().iter().enumerate() {
                    let oldest = part.append_time(part.start());
                    if part.start() > 0 && oldest.is_some_and(|stamp| stamp > registered_at) {
                        reason = Some(format!(
                            "stream '{stream}' partition {partition}: retention deleted offsets \
                             before {} that it had read, and no checkpoint holds its state",
                            part.start()
                        ));
                    }
                }
            }
        }
        match reason {
            Some(reason) => {
                let name = self.query_name(id);
                self.fail_query(&name, reason)
            }
            None => Ok(()),
        }
    }

    /// Fails every query that keeps state and reads `stream`.
    fn fail_readers_of(&mut self, stream: &str, reason: &str) -> Result<(), ServeError> {
        let readers: Vec<QueryId> = self
            .session
            .engine()
            .queries()
            .into_iter()
            .filter(|q| q.sources.iter().any(|s| s == stream))
            .map(|q| q.id)
            .filter(|id| self.session.engine().query_keeps_state(*id))
            .collect();
        for id in readers {
            let name = self.query_name(id);
            self.fail_query(&name, reason.to_string())?;
        }
        Ok(())
    }

    /// Stops query `name`, keeping its output logs, and marks it failed with `reason`.
    pub(super) fn fail_query(&mut self, name: &str, reason: String) -> Result<(), ServeError> {
        let Some(query) = self.queries.get(name) else {
            return Ok(());
        };
        self.session.engine_mut().cancel(query.id)?;
        eprintln!(
            "query '{name}' failed on start: {reason}; cancel and register it again to start it fresh"
        );
        self.failed_queries.insert(name.to_string(), reason);
        self.update_retention_floors()
    }
}
