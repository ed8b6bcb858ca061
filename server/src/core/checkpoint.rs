//! Checkpoints: the queries' state saved between two publishes, so that a restart loads it
//! and replays only what came after, however much input retention has deleted since.
//!
//! A checkpoint is taken under the core's lock, between two publishes fed to the queries,
//! which is a consistent cut: it records how many catalog journal entries had been applied,
//! the stamp of the latest publish fed, the next offset to feed of every stream partition,
//! the end of every result log (synced first: results up to the cut are never made again),
//! the queries that have failed, and the engine's state. The core is held for the cut's
//! bookkeeping and the fork of a child that saves the state it sees frozen (`saving_child`),
//! or, in process (`--checkpoint-in-process`, or when there can be no child), for saving the
//! state itself: that is the pause ingest sees. The file, `checkpoints/N`, is framed with a
//! checksum (`sluice_engine::checkpoint`) and written without the core: to a temporary name,
//! synced, renamed and the directory synced, so a checkpoint is whole or absent. The two
//! newest are kept.
//!
//! On start the newest checkpoint that reads whole is restored: the journal's first entries
//! are applied again (registering the queries it had, with no input), the engine loads the
//! state, and the replay feeds each partition from the checkpoint's offsets on. A damaged
//! newest checkpoint falls back to the one before, and without either the replay starts
//! from the retained input. A query whose state could not be restored, or whose input
//! retention has deleted, is stopped and marked **failed** with the reason (`stats`,
//! `list`); cancelling and registering it again starts it fresh. Retention never deletes
//! rows at or after the oldest kept checkpoint's offsets (see [`Core::retention_floor`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_engine::checkpoint;
use sluice_engine::state::StateWriter;
use sluice_engine::time::Millis;

use super::checkpoint_status::{LastCheckpoint, Offsets};
use super::saving_child::{self, QueryBytes, SavingChild};
use super::{Core, now};
use crate::ServeError;

const DIRECTORY: &str = "checkpoints";

const KEPT: usize = 2;

/// Where a checkpoint's cut is, as read back on start.
#[derive(Debug, Clone, Default)]
pub(super) struct Cut {
    pub(super) id: u64,
    /// The checkpoint format it was written in.
    pub(super) format: u32,
    /// Journal entries applied before the cut.
    pub(super) entries: u64,
    pub(super) fed_stamp: Millis,
    pub(super) registrations: u64,
    /// Per stream partition, the next offset to feed.
    pub(super) offsets: BTreeMap<(String, usize), u64>,
    /// Per query, the ends of its results, late rows and failed rows logs.
    pub(super) result_ends: BTreeMap<String, [u64; 3]>,
    /// Queries failed before the cut, with why.
    pub(super) failed: BTreeMap<String, String>,
}

fn directory(data_dir: &Path) -> PathBuf {
    data_dir.join(DIRECTORY)
}

/// The checkpoints in `data_dir`, newest first.
fn list(data_dir: &Path) -> Result<Vec<(u64, PathBuf)>, ServeError> {
    list_in(&directory(data_dir))
}

/// The checkpoints in directory `dir`, newest first.
fn list_in(dir: &Path) -> Result<Vec<(u64, PathBuf)>, ServeError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((id, entry.path()));
        }
    }
    found.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    Ok(found)
}

/// A checkpoint begun under the core's lock, to be written without it.
pub struct PendingCheckpoint {
    id: u64,
    dir: PathBuf,
    saving: Saving,
    offsets: Offsets,
    /// When it began, and how long beginning it held the core.
    begun: Instant,
    pause: Duration,
}

/// Where a pending checkpoint's state is.
enum Saving {
    /// Saved in this process, to be framed and written.
    Saved {
        state: StateWriter,
        sizes: QueryBytes,
    },
    /// Being saved and written to the temporary file by a child process.
    Child(SavingChild),
}

/// A checkpoint written and synced, to be recorded by the core.
pub struct WrittenCheckpoint {
    id: u64,
    offsets: Offsets,
    bytes: u64,
    /// Each query's bytes of state.
    sizes: QueryBytes,
    pause: Duration,
    /// How long it took from its beginning until written.
    took: Duration,
    /// Checkpoints deleted as older than the ones kept.
    deleted: Vec<u64>,
}

impl PendingCheckpoint {
    /// Writes the state to a temporary name and syncs it (or waits for the child doing so),
    /// renames it, syncs the directory; then deletes all but the newest kept checkpoints.
    pub fn write(self) -> Result<WrittenCheckpoint, ServeError> {
        let temporary = temporary_path(&self.dir, self.id);
        let (bytes, sizes) = match self.saving {
            Saving::Saved { state, sizes } => (write_state(state, &temporary)?, sizes),
            Saving::Child(child) => match child.wait(saving_child::DEADLINE) {
                Ok(sizes) => (fs::metadata(&temporary)?.len(), sizes),
                Err(error) => {
                    let _ = fs::remove_file(&temporary);
                    return Err(error);
                }
            },
        };
        fs::rename(&temporary, self.dir.join(self.id.to_string()))?;
        File::open(&self.dir)?.sync_all()?;
        let mut deleted = Vec::new();
        for (old, path) in list_in(&self.dir)?.into_iter().skip(KEPT) {
            fs::remove_file(&path)?;
            deleted.push(old);
        }
        Ok(WrittenCheckpoint {
            id: self.id,
            offsets: self.offsets,
            bytes,
            sizes,
            pause: self.pause,
            took: self.begun.elapsed(),
            deleted,
        })
    }
}

fn temporary_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.tmp"))
}

/// Frames `state` (with its checksum) into file `path` and syncs it; gives the file's bytes.
fn write_state(state: StateWriter, path: &Path) -> Result<u64, ServeError> {
    let bytes = checkpoint::encode(&state.into_bytes());
    let mut file = File::create(path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(bytes.len() as u64)
}

impl Core {
    /// Begins a checkpoint between two publishes (the caller holds the core): records the
    /// cut, and saves the queries' state here or, `in_child`, has a forked child save it
    /// (`saving_child`), which holds the core only for the fork. The caller writes it with
    /// [`PendingCheckpoint::write`], then tells the core with [`Core::checkpoint_written`].
    pub fn prepare_checkpoint(&mut self, in_child: bool) -> Result<PendingCheckpoint, ServeError> {
        let started = Instant::now();
        self.next_checkpoint += 1;
        let id = self.next_checkpoint;
        // Results up to the cut are not made again after a restart: they must be on disk.
        for query in self.queries.values_mut() {
            for output in query.outputs_mut() {
                output.log.sync()?;
            }
        }
        let mut state = StateWriter::new();
        state.label("server");
        state.u64(self.journal_entries);
        state.i64(self.fed_stamp);
        state.u64(self.registrations);
        // Every partition, fed or not: one nothing was fed from yet starts at its oldest row.
        let mut offsets = Offsets::new();
        for (name, log) in self.streams.lock()?.logs() {
            for (partition, part) in log.partitions().iter().enumerate() {
                let key = (name.clone(), partition);
                let next = self.fed_offsets.get(&key).copied().unwrap_or(part.start());
                offsets.insert(key, next);
            }
        }
        state.usize(offsets.len());
        for ((stream, partition), offset) in &offsets {
            state.string(stream);
            state.usize(*partition);
            state.u64(*offset);
        }
        state.usize(self.queries.len());
        for (name, query) in &self.queries {
            state.string(name);
            for output in [&query.results, &query.late, &query.errors] {
                state.u64(output.end());
            }
        }
        state.usize(self.failed_queries.len());
        for (name, reason) in &self.failed_queries {
            state.string(name);
            state.string(reason);
        }
        let dir = directory(&self.data_dir);
        fs::create_dir_all(&dir)?;
        let engine = self.session.engine_mut();
        // The state moves into the child's save; should there be no child (the fork itself
        // failed, for want of memory or processes), it is saved here instead.
        let mut unsaved = Some(state);
        let child = match in_child {
            false => None,
            true => {
                let temporary = temporary_path(&dir, id);
                let (slot, engine) = (&mut unsaved, &mut *engine);
                let forked = saving_child::fork_saving(move || {
                    let mut state = slot.take().ok_or_else(|| {
                        ServeError::Checkpoint("the state was already saved".into())
                    })?;
                    let sizes = engine.save_state(&mut state)?;
                    write_state(state, &temporary)?;
                    Ok(sizes)
                });
                match forked {
                    Ok(child) => Some(child),
                    Err(error) => {
                        eprintln!("checkpoint {id}: {error}: saving it in this process instead");
                        None
                    }
                }
            }
        };
        let saving = match (child, unsaved) {
            (Some(child), _) => Saving::Child(child),
            (None, Some(mut state)) => {
                let sizes = engine.save_state(&mut state)?;
                Saving::Saved { state, sizes }
            }
            (None, None) => {
                return Err(ServeError::Checkpoint(
                    "the state was neither saved nor left to save".into(),
                ));
            }
        };
        Ok(PendingCheckpoint {
            id,
            dir,
            saving,
            offsets,
            begun: started,
            pause: started.elapsed(),
        })
    }

    /// Records how writing a checkpoint went: a written one becomes the newest kept, and
    /// retention may go on up to the oldest kept; a failure is kept for `stats`.
    pub fn checkpoint_written(
        &mut self,
        written: Result<WrittenCheckpoint, ServeError>,
    ) -> Result<(), ServeError> {
        let written = match written {
            Ok(written) => written,
            Err(error) => {
                self.checkpoints.error = Some(error.to_string());
                return Err(error);
            }
        };
        self.checkpoints.error = None;
        let status = &mut self.checkpoints;
        status.query_bytes = written.sizes.into_iter().collect();
        status
            .kept
            .retain(|(kept, _)| !written.deleted.contains(kept));
        status.kept.push((written.id, written.offsets));
        status.kept.sort_by_key(|(id, _)| *id);
        while status.kept.len() > KEPT {
            status.kept.remove(0);
        }
        status.last = Some(LastCheckpoint {
            id: written.id,
            at: now(),
            bytes: written.bytes,
            pause: written.pause,
            took: written.took,
        });
        self.update_retention_floors()
    }

    /// Tells the streams what retention must keep for the kept checkpoints: in each
    /// partition of a stream that a query keeping state reads, the rows from the oldest kept
    /// checkpoint's next offset to feed on (all of them for a partition no kept checkpoint
    /// covers, so that a replay from the start still finds them). Other streams, and all
    /// streams when checkpoints are off, are not held back.
    pub(super) fn update_retention_floors(&self) -> Result<(), ServeError> {
        let engine = self.session.engine();
        let held: std::collections::BTreeSet<String> = engine
            .queries()
            .into_iter()
            .filter(|query| engine.query_keeps_state(query.id))
            .flat_map(|query| query.sources)
            .collect();
        let oldest = self.checkpoints.kept.first().map(|(_, offsets)| offsets);
        let mut streams = self.streams.lock()?;
        let floors = self.checkpointing.then(|| {
            let mut floors = Offsets::new();
            for (name, log) in streams.logs() {
                if !held.contains(name) {
                    continue;
                }
                for partition in 0..log.partitions().len() {
                    let key = (name.clone(), partition);
                    let floor = oldest.and_then(|o| o.get(&key).copied()).unwrap_or(0);
                    floors.insert(key, floor);
                }
            }
            floors
        });
        streams.set_retention_floors(floors);
        Ok(())
    }

    /// The newest checkpoint in the data directory that reads whole, with its state; a
    /// damaged one is reported and the one before it tried.
    pub(super) fn newest_checkpoint(&mut self) -> Result<Option<(Cut, Vec<u8>)>, ServeError> {
        for (id, path) in list(&self.data_dir)? {
            self.next_checkpoint = self.next_checkpoint.max(id);
            let file = fs::read(&path)?;
            match read_cut(id, &path, &file) {
                Ok(cut) => {
                    self.checkpoints.kept.insert(0, (id, cut.0.offsets.clone()));
                    return Ok(Some(cut));
                }
                Err(error) => {
                    eprintln!("checkpoint {}: not used: {error}", path.display());
                    self.checkpoint_problems
                        .push(format!("checkpoint {id}: {error}"));
                }
            }
        }
        Ok(None)
    }
}

/// The cut of checkpoint file `file`, and the engine's state that follows it in the file.
fn read_cut(id: u64, path: &Path, file: &[u8]) -> Result<(Cut, Vec<u8>), ServeError> {
    let decoded = checkpoint::decode(&path.display().to_string(), file)?;
    let body = decoded.state;
    let mut state = decoded.reader();
    state.label("server")?;
    let mut cut = Cut {
        id,
        format: decoded.format,
        entries: state.u64()?,
        fed_stamp: state.i64()?,
        registrations: state.u64()?,
        ..Cut::default()
    };
    for _ in 0..state.usize()? {
        let stream = state.string()?;
        let partition = state.usize()?;
        cut.offsets.insert((stream, partition), state.u64()?);
    }
    for _ in 0..state.usize()? {
        let name = state.string()?;
        let ends = [state.u64()?, state.u64()?, state.u64()?];
        cut.result_ends.insert(name, ends);
    }
    for _ in 0..state.usize()? {
        let name = state.string()?;
        cut.failed.insert(name, state.string()?);
    }
    let engine = body[body.len() - state.remaining()..].to_vec();
    Ok((cut, engine))
}
