//! Replay on start: the catalog journal's entries and every stream's retained records,
//! applied and fed to the engine in the order they happened, so each standing query sees
//! what it saw when live.

use std::collections::VecDeque;

use sluice_engine::time::Millis;
use sluice_log::Fetched;

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
    /// Rebuilds the queries: applies the catalog's entries and feeds every stream's
    /// retained records to the engine, in the order they happened (by publish stamp; an
    /// entry comes after the publishes stamped up to its `at`).
    pub(super) fn replay(&mut self, entries: Vec<CatalogEntry>) -> Result<(), ServeError> {
        let mut entries = entries.into_iter().peekable();
        let mut cursors: Vec<Cursor> = Vec::new();
        loop {
            // Streams are created by entries: start reading the new ones.
            for (name, log) in self.streams.lock()?.logs() {
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
            self.streams.lock()?.saw_stamp(stamp);
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
