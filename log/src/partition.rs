//! One partition of a stream's log: an append-only series of segments, with offsets
//! counting rows from the partition's first.
//!
//! Appends go to the last (active) segment, which is sealed and a new one started once it
//! passes the configured size. An append is durable only after [`PartitionLog::sync`];
//! callers decide when (after each batch, or once for a group of them). The sync can also
//! run apart from the log ([`PartitionLog::begin_sync`]), so readers are not held up by
//! the disk; [`PartitionLog::durable_end`] says how far the log is known durable.
//! Retention deletes whole segments from the oldest, never the active one.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;

use super::LogConfig;
use super::record::{self, FRAME_BYTES};
use super::segment::{IndexEntry, Recovered, Segment};
use crate::Millis;
use crate::{LogError, Result};

pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Oldest first; never empty.
    segments: Vec<Segment>,
    log_file: File,
    index_file: File,
    /// Whether an append has not been synced yet.
    unsynced: bool,
    /// The offset every row before which is durable.
    durable_end: u64,
}

/// A sync of a partition's appends so far, to run without holding the log.
pub struct PendingSync {
    file: File,
    end: u64,
}

impl PendingSync {
    /// Waits for the disk; gives the offset every row before which is now durable.
    pub fn wait(self) -> Result<u64> {
        self.file.sync_data()?;
        Ok(self.end)
    }
}

/// Rows read from a log, with the offset of the first.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub offset: u64,
    pub rows: RecordBatch,
}

impl PartitionLog {
    /// Opens the partition in `dir` (creating it when new), recovering the active segment.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(PartitionLog, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let bases = Segment::bases(dir)?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let recovered = match bases.split_last() {
            None => {
                segments.push(Segment::create(dir, 0)?);
                Recovered::default()
            }
            Some((last, sealed)) => {
                for base in sealed {
                    segments.push(Segment::open_sealed(dir, *base)?);
                }
                let (active, recovered) = Segment::recover(dir, *last)?;
                segments.push(active);
                recovered
            }
        };
        for pair in segments.windows(2) {
            if pair[0].end() != pair[1].base {
                return Err(LogError::Corrupt {
                    file: pair[1].log_path.display().to_string(),
                    position: 0,
                    reason: format!(
                        "the segment starts at offset {} but the one before ends at {}",
                        pair[1].base,
                        pair[0].end()
                    ),
                });
            }
        }
        let (log_file, index_file) = active(&segments)?.writers()?;
        let durable_end = active(&segments)?.end();
        Ok((
            PartitionLog {
                dir: dir.to_path_buf(),
                config,
                segments,
                log_file,
                index_file,
                unsynced: false,
                durable_end,
            },
            recovered,
        ))
    }

    /// The offset of the oldest row kept.
    pub fn start(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.base)
    }

    /// The offset the next row appended gets.
    pub fn end(&self) -> u64 {
        self.segments.last().map_or(0, Segment::end)
    }

    /// The offset after the oldest segment: rows before it go first when retention deletes
    /// (`None` while there is only the active segment, which is never deleted).
    pub fn oldest_segment_end(&self) -> Option<u64> {
        match self.segments.as_slice() {
            [oldest, _, ..] => Some(oldest.end()),
            _ => None,
        }
    }

    /// The bytes the partition's records take.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(Segment::bytes).sum()
    }

    /// Appends `rows` (not yet durable: see [`PartitionLog::sync`]); gives the first row's
    /// offset.
    pub fn append(&mut self, rows: &RecordBatch, now: Millis) -> Result<u64> {
        self.append_part(rows, now, 1)
    }

    /// [`PartitionLog::append`] of one of the `parts` records of a publish.
    pub fn append_part(&mut self, rows: &RecordBatch, now: Millis, parts: usize) -> Result<u64> {
        let offset = self.end();
        let bytes = record::encode(rows, offset, now, parts)?;
        let full = active(&self.segments)?.bytes() + bytes.len() as u64 > self.config.segment_bytes;
        if full && !active(&self.segments)?.index.is_empty() {
            self.roll(offset)?;
        }
        let segment = active_mut(&mut self.segments)?;
        let position = segment.bytes();
        self.unsynced = true;
        if let Err(error) = self.log_file.write_all(&bytes) {
            // Leave no partial record behind for the next append to follow.
            self.log_file.set_len(position)?;
            return Err(error.into());
        }
        segment.push(
            IndexEntry {
                offset,
                position,
                append_time: now,
                count: rows.num_rows() as u32,
                len: (bytes.len() - FRAME_BYTES) as u32,
            },
            &mut self.index_file,
        )?;
        Ok(offset)
    }

    /// Makes every append so far durable.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(pending) = self.begin_sync()? {
            let end = pending.wait()?;
            self.mark_durable(end);
        }
        Ok(())
    }

    /// A sync of the appends so far, for the caller to wait on and then report with
    /// [`PartitionLog::mark_durable`]; `None` when there is nothing to sync.
    pub fn begin_sync(&mut self) -> Result<Option<PendingSync>> {
        if !self.unsynced {
            return Ok(None);
        }
        let file = self.log_file.try_clone()?;
        self.unsynced = false;
        Ok(Some(PendingSync {
            file,
            end: self.end(),
        }))
    }

    /// Records that every row before `end` is durable.
    pub fn mark_durable(&mut self, end: u64) {
        self.durable_end = self.durable_end.max(end);
    }

    /// The offset every row before which is known durable.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// The append time of the partition's last record and how many parts its publish has;
    /// `None` when the partition holds no record.
    pub(crate) fn last_record(&self) -> Result<Option<(Millis, usize)>> {
        let Some(segment) = self.segments.iter().rev().find(|s| !s.index.is_empty()) else {
            return Ok(None);
        };
        let Some(entry) = segment.index.last() else {
            return Ok(None);
        };
        let mut file = File::open(&segment.log_path)?;
        let payload = segment.payload(&mut file, entry)?;
        Ok(Some((entry.append_time, record::parts(&payload)?)))
    }

    /// Cuts off the last record, which must be in the active segment: a part of a publish
    /// that did not reach all its partitions.
    pub(crate) fn cut_last_record(&mut self) -> Result<()> {
        let segment = active_mut(&mut self.segments)?;
        let Some(entry) = segment.index.pop() else {
            return Err(LogError::Corrupt {
                file: segment.log_path.display().to_string(),
                position: 0,
                reason: "a part of an incomplete publish is not in the active segment".into(),
            });
        };
        self.log_file.set_len(entry.position)?;
        self.log_file.sync_all()?;
        segment.write_index()?;
        let (log_file, index_file) = segment.writers()?;
        self.log_file = log_file;
        self.index_file = index_file;
        self.durable_end = self.durable_end.min(self.end());
        Ok(())
    }

    fn roll(&mut self, base: u64) -> Result<()> {
        self.sync()?;
        self.index_file.sync_data()?;
        let segment = Segment::create(&self.dir, base)?;
        let (log_file, index_file) = segment.writers()?;
        self.segments.push(segment);
        self.log_file = log_file;
        self.index_file = index_file;
        sync_dir(&self.dir)
    }

    /// Rows from `from` on, whole records of at most `max_rows` rows in all (but at least
    /// one record's when there is any). Rows before the oldest kept are gone: reading starts
    /// at the oldest then.
    pub fn read(&self, from: u64, max_rows: usize) -> Result<Vec<Fetched>> {
        let from = from.max(self.start());
        let mut out = Vec::new();
        let mut taken = 0usize;
        let first = self.segments.partition_point(|s| s.end() <= from);
        for segment in &self.segments[first..] {
            let at = segment
                .index
                .partition_point(|e| e.offset + e.count as u64 <= from);
            let mut file = File::open(&segment.log_path)?;
            for entry in &segment.index[at..] {
                if !out.is_empty() && taken + entry.count as usize > max_rows {
                    return Ok(out);
                }
                let payload = segment.payload(&mut file, entry)?;
                let rows = record::rows(&payload)?;
                let skip = from.saturating_sub(entry.offset) as usize;
                let rows = rows.slice(skip, rows.num_rows() - skip);
                taken += rows.num_rows();
                out.push(Fetched {
                    offset: entry.offset + skip as u64,
                    rows,
                });
            }
        }
        Ok(out)
    }

    /// When the record holding `offset` was appended.
    pub fn append_time(&self, offset: u64) -> Option<Millis> {
        let segment = self.segments.iter().rev().find(|s| s.base <= offset)?;
        let at = segment
            .index
            .partition_point(|e| e.offset + e.count as u64 <= offset);
        segment
            .index
            .get(at)
            .filter(|e| e.offset <= offset)
            .map(|e| e.append_time)
    }

    /// The offset of the first row appended at or after `time` (the end when none was).
    pub fn offset_at(&self, time: Millis) -> u64 {
        self.segments
            .iter()
            .flat_map(|s| &s.index)
            .find(|e| e.append_time >= time)
            .map_or(self.end(), |e| e.offset)
    }

    /// Deletes the oldest segments while the partition is over its size limit or they are
    /// older than the age limit (by their last append); gives how many went.
    pub fn enforce_retention(&mut self, now: Millis) -> Result<usize> {
        Ok(self.enforce_retention_keeping(now, u64::MAX)?.deleted)
    }

    /// [`PartitionLog::enforce_retention`], except that no row at or after offset `keep_from`
    /// is deleted: the oldest segment holding one stays, and every segment after it, whatever
    /// their size or age.
    pub fn enforce_retention_keeping(&mut self, now: Millis, keep_from: u64) -> Result<Retained> {
        let mut retained = Retained::default();
        let mut bytes = self.bytes();
        let mut index = 0;
        // Segments go oldest first while the limits say so; the last one is active.
        while index + 1 < self.segments.len() {
            let oldest = &self.segments[index];
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| bytes > limit);
            let too_old = self.config.retention_age.is_some_and(|age| {
                oldest
                    .index
                    .last()
                    .is_some_and(|e| e.append_time.saturating_add(age) < now)
            });
            if !too_big && !too_old {
                break;
            }
            bytes -= oldest.bytes();
            if oldest.end() > keep_from || retained.held_back_bytes > 0 {
                retained.held_back_bytes += oldest.bytes();
            } else {
                retained.deleted += 1;
            }
            index += 1;
        }
        for segment in self.segments.drain(..retained.deleted).collect::<Vec<_>>() {
            segment.delete()?;
        }
        if retained.deleted > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(retained)
    }
}

/// What applying retention to a partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// Segments deleted.
    pub deleted: usize,
    /// Bytes retention would have deleted but kept, because rows in them were still needed.
    pub held_back_bytes: u64,
}

fn active(segments: &[Segment]) -> Result<&Segment> {
    segments
        .last()
        .ok_or_else(|| LogError::Invalid("a log partition has no segment".into()))
}

fn active_mut(segments: &mut [Segment]) -> Result<&mut Segment> {
    segments
        .last_mut()
        .ok_or_else(|| LogError::Invalid("a log partition has no segment".into()))
}

/// Makes a directory's entries (files created, renamed or deleted) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn rows(values: std::ops::Range<i64>) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        Ok(RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(values))],
        )?)
    }

    /// Every value read from `from` on, with its offset.
    fn values(log: &PartitionLog, from: u64) -> Result<Vec<(u64, i64)>> {
        let mut out = Vec::new();
        for fetched in log.read(from, usize::MAX)? {
            let column = fetched.rows.column(0).as_primitive::<Int64Type>();
            for (i, value) in column.values().iter().enumerate() {
                out.push((fetched.offset + i as u64, *value));
            }
        }
        Ok(out)
    }

    fn small_segments() -> LogConfig {
        LogConfig {
            segment_bytes: 1_000,
            ..LogConfig::default()
        }
    }

    /// Ten batches of ten rows, values equal to offsets, synced.
    fn hundred_rows(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        let (mut log, _) = PartitionLog::open(dir, config)?;
        for batch in 0..10 {
            let offset = log.append(&rows(batch * 10..batch * 10 + 10)?, 1_000 * batch)?;
            assert_eq!(offset, batch as u64 * 10);
        }
        log.sync()?;
        Ok(log)
    }

    fn expected(from: i64) -> Vec<(u64, i64)> {
        (from..100).map(|v| (v as u64, v)).collect()
    }

    fn last_segment(dir: &Path) -> Result<PathBuf> {
        let bases = Segment::bases(dir)?;
        let last = bases.last().ok_or(LogError::Invalid("no segment".into()))?;
        Ok(dir.join(format!("{last:020}.log")))
    }

    #[test]
    fn rows_read_back_by_offset_across_segments_and_reopening() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let log = hundred_rows(dir.path(), small_segments())?;
        assert!(log.segments.len() > 2, "{} segments", log.segments.len());
        assert_eq!((log.start(), log.end()), (0, 100));
        assert_eq!(values(&log, 0)?, expected(0));
        // From inside a batch, and in bounded reads.
        assert_eq!(values(&log, 37)?, expected(37));
        let first = log.read(37, 5)?;
        assert_eq!(
            (first.len(), first[0].offset, first[0].rows.num_rows()),
            (1, 37, 3)
        );
        assert!(log.read(100, 10)?.is_empty());
        drop(log);
        let (mut log, recovered) = PartitionLog::open(dir.path(), small_segments())?;
        assert_eq!(recovered, Recovered::default());
        assert_eq!(values(&log, 0)?, expected(0));
        assert_eq!(log.append(&rows(100..102)?, 20_000)?, 100);
        assert_eq!(log.offset_at(5_000), 50);
        assert_eq!(log.offset_at(20_000), 100);
        assert_eq!(log.offset_at(30_000), 102);
        Ok(())
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_appending_goes_on() -> Result<()> {
        let dir = tempfile::tempdir()?;
        drop(hundred_rows(dir.path(), LogConfig::default())?);
        let path = last_segment(dir.path())?;
        let size = std::fs::metadata(&path)?.len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)?
            .set_len(size - 7)?;
        let (mut log, recovered) = PartitionLog::open(dir.path(), LogConfig::default())?;
        assert!(recovered.truncated_bytes > 0);
        assert_eq!(log.end(), 90);
        assert_eq!(values(&log, 0)?, expected(0)[..90].to_vec());
        assert_eq!(log.append(&rows(90..100)?, 0)?, 90);
        log.sync()?;
        drop(log);
        let (log, recovered) = PartitionLog::open(dir.path(), LogConfig::default())?;
        assert_eq!(recovered, Recovered::default());
        assert_eq!(values(&log, 0)?, expected(0));
        Ok(())
    }

    #[test]
    fn a_damaged_last_record_is_cut_off_but_damage_before_it_is_an_error() -> Result<()> {
        let dir = tempfile::tempdir()?;
        drop(hundred_rows(dir.path(), LogConfig::default())?);
        let path = last_segment(dir.path())?;
        let mut bytes = std::fs::read(&path)?;
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes)?;
        let (log, recovered) = PartitionLog::open(dir.path(), LogConfig::default())?;
        assert!(recovered.truncated_bytes > 0);
        assert_eq!(log.end(), 90);
        drop(log);
        // Now damage the first record: records after it are intact, so it is no torn tail.
        let mut bytes = std::fs::read(&path)?;
        bytes[30] ^= 0xff;
        std::fs::write(&path, &bytes)?;
        match PartitionLog::open(dir.path(), LogConfig::default()) {
            Err(LogError::Corrupt { file, position, .. }) => {
                assert_eq!((file, position), (path.display().to_string(), 0));
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("damage in the middle went unnoticed"),
        }
        Ok(())
    }

    #[test]
    fn damage_in_a_sealed_segment_is_reported_when_read() -> Result<()> {
        let dir = tempfile::tempdir()?;
        drop(hundred_rows(dir.path(), small_segments())?);
        let first = dir.path().join(format!("{:020}.log", 0));
        let mut bytes = std::fs::read(&first)?;
        bytes[40] ^= 0xff;
        std::fs::write(&first, &bytes)?;
        let (log, _) = PartitionLog::open(dir.path(), small_segments())?;
        let error = log.read(0, usize::MAX).err().map(|e| e.to_string());
        assert_eq!(
            error,
            Some(format!(
                "{} is damaged at byte 0: the record fails its CRC",
                first.display()
            ))
        );
        Ok(())
    }

    #[test]
    fn retention_deletes_whole_oldest_segments() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut log = hundred_rows(dir.path(), small_segments())?;
        let segments = log.segments.len();
        // By age: the segments whose last append is before 4.5 s.
        log.config.retention_age = Some(1_000);
        let by_age = log.enforce_retention(5_500)?;
        assert!(by_age > 0 && log.segments.len() == segments - by_age);
        assert!(
            log.start() > 0 && log.start() <= 50,
            "start {}",
            log.start()
        );
        let start = log.start() as i64;
        assert_eq!(values(&log, 0)?, expected(start));
        // By size: down to one segment's worth, never the active one.
        log.config.retention_bytes = Some(1);
        log.enforce_retention(0)?;
        assert_eq!(log.segments.len(), 1);
        assert_eq!(log.end(), 100);
        assert_eq!(Segment::bases(dir.path())?.len(), 1);
        Ok(())
    }

    #[test]
    fn retention_keeps_every_segment_from_the_one_holding_the_floor() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut log = hundred_rows(dir.path(), small_segments())?;
        log.config.retention_bytes = Some(1);
        let bases: Vec<u64> = log.segments.iter().map(|s| s.base).collect();
        // A floor inside the third segment: the first two go, the rest stay, held back.
        let floor = bases[2] + 1;
        let held: u64 = log.segments[2..log.segments.len() - 1]
            .iter()
            .map(Segment::bytes)
            .sum();
        let retained = log.enforce_retention_keeping(0, floor)?;
        assert_eq!(
            retained,
            Retained {
                deleted: 2,
                held_back_bytes: held
            }
        );
        assert_eq!(log.start(), bases[2]);
        assert_eq!(values(&log, 0)?, expected(bases[2] as i64));
        // Once the floor moves to the end, everything but the active segment goes.
        let retained = log.enforce_retention_keeping(0, 100)?;
        assert_eq!(retained.held_back_bytes, 0);
        assert_eq!(log.segments.len(), 1);
        Ok(())
    }
}
