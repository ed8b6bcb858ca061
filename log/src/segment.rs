//! One segment of a partition's log: a file of records and the index of where each begins.
//!
//! The index file holds a 32-byte entry per record: its first offset, its position in the
//! log file, its append time, its row count and its payload length. A sealed segment's
//! index is trusted when it accounts for exactly the log file's bytes, and rebuilt by a scan
//! otherwise. The active segment is always scanned when opened: a torn record at its end
//! (cut short, or failing its CRC with nothing after it) is cut off; damage anywhere else is
//! an error naming the file and the byte.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{self, FRAME_BYTES, MAX_PAYLOAD_BYTES};
use crate::{LogError, Result};

const ENTRY_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub position: u64,
    pub append_time: i64,
    pub count: u32,
    pub len: u32,
}

impl IndexEntry {
    fn end(&self) -> u64 {
        self.position + FRAME_BYTES as u64 + self.len as u64
    }

    fn to_bytes(self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[0..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..16].copy_from_slice(&self.position.to_le_bytes());
        out[16..24].copy_from_slice(&self.append_time.to_le_bytes());
        out[24..28].copy_from_slice(&self.count.to_le_bytes());
        out[28..32].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let word = |at: usize| {
            let mut out = [0u8; 8];
            out.copy_from_slice(&bytes[at..at + 8]);
            out
        };
        let half = |at: usize| {
            let mut out = [0u8; 4];
            out.copy_from_slice(&bytes[at..at + 4]);
            out
        };
        IndexEntry {
            offset: u64::from_le_bytes(word(0)),
            position: u64::from_le_bytes(word(8)),
            append_time: i64::from_le_bytes(word(16)),
            count: u32::from_le_bytes(half(24)),
            len: u32::from_le_bytes(half(28)),
        }
    }
}

pub struct Segment {
    pub base: u64,
    pub log_path: PathBuf,
    index_path: PathBuf,
    pub index: Vec<IndexEntry>,
}

/// What opening the active segment found at its end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Bytes of a torn last record that were cut off.
    pub truncated_bytes: u64,
    /// Records cut off as parts of a publish that did not reach all its partitions.
    pub cut_parts: u64,
}

impl Segment {
    fn paths(dir: &Path, base: u64) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{base:020}.log")),
            dir.join(format!("{base:020}.index")),
        )
    }

    /// The base offsets of the segments in `dir`, in order.
    pub fn bases(dir: &Path) -> Result<Vec<u64>> {
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name.strip_suffix(".log").and_then(|b| b.parse().ok()) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        Ok(bases)
    }

    pub fn create(dir: &Path, base: u64) -> Result<Segment> {
        let (log_path, index_path) = Self::paths(dir, base);
        File::create(&log_path)?;
        File::create(&index_path)?;
        Ok(Segment {
            base,
            log_path,
            index_path,
            index: Vec::new(),
        })
    }

    /// Opens a sealed segment: every record in it must be intact.
    pub fn open_sealed(dir: &Path, base: u64) -> Result<Segment> {
        let (log_path, index_path) = Self::paths(dir, base);
        let size = std::fs::metadata(&log_path)?.len();
        let index = match std::fs::read(&index_path) {
            Ok(bytes) if bytes.len() % ENTRY_BYTES == 0 => bytes
                .chunks_exact(ENTRY_BYTES)
                .map(IndexEntry::from_bytes)
                .collect(),
            _ => Vec::new(),
        };
        let consistent = index.last().map_or(size == 0, |last| last.end() == size)
            && index.first().is_none_or(|first| first.position == 0);
        let mut segment = Segment {
            base,
            log_path,
            index_path,
            index,
        };
        if !consistent {
            let (index, _) = scan(&segment.log_path, false)?;
            segment.index = index;
            segment.write_index()?;
        }
        Ok(segment)
    }

    /// Opens the active segment, cutting off a torn record at its end.
    pub fn recover(dir: &Path, base: u64) -> Result<(Segment, Recovered)> {
        let (log_path, index_path) = Self::paths(dir, base);
        let (index, valid) = scan(&log_path, true)?;
        let size = std::fs::metadata(&log_path)?.len();
        if valid < size {
            let file = OpenOptions::new().write(true).open(&log_path)?;
            file.set_len(valid)?;
            file.sync_all()?;
        }
        let segment = Segment {
            base,
            log_path,
            index_path,
            index,
        };
        segment.write_index()?;
        Ok((
            segment,
            Recovered {
                truncated_bytes: size - valid,
                cut_parts: 0,
            },
        ))
    }

    pub(crate) fn write_index(&self) -> Result<()> {
        let mut bytes = Vec::with_capacity(self.index.len() * ENTRY_BYTES);
        for entry in &self.index {
            bytes.extend_from_slice(&entry.to_bytes());
        }
        let mut file = File::create(&self.index_path)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        Ok(())
    }

    /// Opens the files for appending.
    pub fn writers(&self) -> Result<(File, File)> {
        let open = |path: &Path| OpenOptions::new().append(true).open(path);
        Ok((open(&self.log_path)?, open(&self.index_path)?))
    }

    /// Records an appended record in the index (and its file, through `index_file`).
    pub fn push(&mut self, entry: IndexEntry, index_file: &mut File) -> Result<()> {
        index_file.write_all(&entry.to_bytes())?;
        self.index.push(entry);
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.index.last().map_or(0, IndexEntry::end)
    }

    /// The offset after the segment's last row.
    pub fn end(&self) -> u64 {
        self.index
            .last()
            .map_or(self.base, |e| e.offset + e.count as u64)
    }

    /// The record's payload, checked against its CRC.
    pub fn payload(&self, file: &mut File, entry: &IndexEntry) -> Result<Vec<u8>> {
        file.seek(SeekFrom::Start(entry.position))?;
        let mut framing = [0u8; FRAME_BYTES];
        file.read_exact(&mut framing)?;
        let (len, crc) = record::frame(&framing);
        let mut payload = vec![0u8; len.min(MAX_PAYLOAD_BYTES)];
        file.read_exact(&mut payload)?;
        if len != entry.len as usize || !record::intact(&payload, crc) {
            return Err(damaged(
                &self.log_path,
                entry.position,
                "the record fails its CRC",
            ));
        }
        Ok(payload)
    }

    pub fn delete(self) -> Result<()> {
        std::fs::remove_file(&self.log_path)?;
        std::fs::remove_file(&self.index_path)?;
        Ok(())
    }
}

fn damaged(path: &Path, position: u64, reason: &str) -> LogError {
    LogError::Corrupt {
        file: path.display().to_string(),
        position,
        reason: reason.into(),
    }
}

/// Reads every record of a log file: the index of the intact ones and the length they take.
/// With `torn_tail`, a last record cut short or failing its CRC ends the scan; otherwise
/// (and for damage followed by more bytes) it is an error.
fn scan(path: &Path, torn_tail: bool) -> Result<(Vec<IndexEntry>, u64)> {
    let size = std::fs::metadata(path)?.len();
    let mut reader = BufReader::new(File::open(path)?);
    let mut index = Vec::new();
    let mut position = 0u64;
    let mut expected: Option<u64> = None;
    while position < size {
        let torn = |reason: &str| {
            if torn_tail {
                Ok(position)
            } else {
                Err(damaged(path, position, reason))
            }
        };
        if size - position < FRAME_BYTES as u64 {
            return torn("the last record is cut short").map(|at| (index, at));
        }
        let mut framing = [0u8; FRAME_BYTES];
        reader.read_exact(&mut framing)?;
        let (len, crc) = record::frame(&framing);
        let end = position + FRAME_BYTES as u64 + len as u64;
        if len > MAX_PAYLOAD_BYTES || end > size {
            // A length past the end: torn if nothing intact could follow it.
            return torn("the last record is cut short").map(|at| (index, at));
        }
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload)?;
        if !record::intact(&payload, crc) {
            if end == size {
                return torn("the last record fails its CRC").map(|at| (index, at));
            }
            return Err(damaged(path, position, "a record fails its CRC"));
        }
        let header = record::header(&payload);
        if expected.is_some_and(|e| e != header.offset) {
            return Err(damaged(
                path,
                position,
                "a record's offset breaks the sequence",
            ));
        }
        expected = Some(header.offset + header.count as u64);
        index.push(IndexEntry {
            offset: header.offset,
            position,
            append_time: header.append_time,
            count: header.count,
            len: len as u32,
        });
        position = end;
    }
    Ok((index, position))
}
