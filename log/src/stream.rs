//! A stream's log: its partitions, and which partition each published row goes to.
//!
//! `stream.json` in the stream's directory records the partition count and key column,
//! fixed when the stream's log is created. With a key, a row goes to the partition its
//! key's hash (CRC-32 of its row encoding) picks, so a key's rows stay in order in one
//! partition; without one, each published batch goes whole to the next partition in turn.

use std::path::{Path, PathBuf};

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use super::partition::sync_dir;
use super::{LogConfig, PartitionLog, PendingSync, Recovered};
use crate::Millis;
use crate::{LogError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Layout {
    partitions: usize,
    key: Option<String>,
}

/// Rows a publish appended to one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub partition: usize,
    /// The first row's offset.
    pub offset: u64,
    /// The rows, in the order appended.
    pub rows: RecordBatch,
}

pub struct StreamLog {
    dir: PathBuf,
    layout: Layout,
    partitions: Vec<PartitionLog>,
    next_partition: usize,
}

impl StreamLog {
    /// Opens the stream's log in `dir`, creating it with `partitions` partitions keyed by
    /// `key` when it is new; an existing log must have been created the same way.
    pub fn open(
        dir: &Path,
        partitions: usize,
        key: Option<&str>,
        config: LogConfig,
    ) -> Result<(StreamLog, Vec<Recovered>)> {
        if partitions == 0 {
            return Err(LogError::Invalid(
                "a stream needs at least one partition".into(),
            ));
        }
        let layout = Layout {
            partitions,
            key: key.map(str::to_string),
        };
        let layout_path = dir.join("stream.json");
        match std::fs::read(&layout_path) {
            Ok(bytes) => {
                let stored: Layout = serde_json::from_slice(&bytes).map_err(|e| {
                    LogError::Invalid(format!("{} is unreadable: {e}", layout_path.display()))
                })?;
                if stored != layout {
                    return Err(LogError::Invalid(format!(
                        "the log in {} has {} partitions keyed by {:?}, not {} keyed by {:?}",
                        dir.display(),
                        stored.partitions,
                        stored.key,
                        partitions,
                        key
                    )));
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let bytes =
                    serde_json::to_vec(&layout).map_err(|e| LogError::Invalid(e.to_string()))?;
                std::fs::write(&layout_path, bytes)?;
                sync_dir(dir)?;
            }
            Err(error) => return Err(error.into()),
        }
        let mut logs = Vec::with_capacity(partitions);
        let mut recovered = Vec::with_capacity(partitions);
        for partition in 0..partitions {
            let (log, found) = PartitionLog::open(&dir.join(partition.to_string()), config)?;
            logs.push(log);
            recovered.push(found);
        }
        cut_incomplete_publishes(&mut logs, &mut recovered)?;
        Ok((
            StreamLog {
                dir: dir.to_path_buf(),
                layout,
                partitions: logs,
                next_partition: 0,
            },
            recovered,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn partitions(&self) -> &[PartitionLog] {
        &self.partitions
    }

    pub fn partition_mut(&mut self, partition: usize) -> Option<&mut PartitionLog> {
        self.partitions.get_mut(partition)
    }

    /// Appends `rows` across the partitions (not yet durable: see [`StreamLog::sync`]).
    pub fn publish(&mut self, rows: &RecordBatch, now: Millis) -> Result<Vec<Appended>> {
        if rows.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let count = self.partitions.len();
        let mut appended = Vec::new();
        let Some(key) = &self.layout.key else {
            let partition = self.next_partition % count;
            self.next_partition = (partition + 1) % count;
            let offset = self.partitions[partition].append(rows, now)?;
            appended.push(Appended {
                partition,
                offset,
                rows: rows.clone(),
            });
            return Ok(appended);
        };
        let column = rows
            .column_by_name(key)
            .ok_or_else(|| LogError::Invalid(format!("the rows have no key column '{key}'")))?;
        let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())])?;
        let keys = converter.convert_columns(std::slice::from_ref(column))?;
        let mut chosen: Vec<Vec<u32>> = vec![Vec::new(); count];
        for (row, key) in keys.iter().enumerate() {
            let partition = crc32fast::hash(key.as_ref()) as usize % count;
            chosen[partition].push(row as u32);
        }
        let parts = chosen.iter().filter(|indices| !indices.is_empty()).count();
        for (partition, indices) in chosen.into_iter().enumerate() {
            if indices.is_empty() {
                continue;
            }
            let part = take_record_batch(rows, &UInt32Array::from(indices))?;
            let offset = self.partitions[partition].append_part(&part, now, parts)?;
            appended.push(Appended {
                partition,
                offset,
                rows: part,
            });
        }
        Ok(appended)
    }

    /// Makes every publish so far durable.
    pub fn sync(&mut self) -> Result<()> {
        for partition in &mut self.partitions {
            partition.sync()?;
        }
        Ok(())
    }

    /// Syncs of every partition with appends not yet synced, by partition, to wait on
    /// without holding the log (see [`PartitionLog::begin_sync`]).
    pub fn begin_sync(&mut self) -> Result<Vec<(usize, PendingSync)>> {
        let mut pending = Vec::new();
        for (index, partition) in self.partitions.iter_mut().enumerate() {
            if let Some(sync) = partition.begin_sync()? {
                pending.push((index, sync));
            }
        }
        Ok(pending)
    }

    /// Applies retention to every partition; gives how many segments went.
    pub fn enforce_retention(&mut self, now: Millis) -> Result<usize> {
        let mut deleted = 0;
        for partition in &mut self.partitions {
            deleted += partition.enforce_retention(now)?;
        }
        Ok(deleted)
    }
}

/// A publish is all or nothing across partitions. Its parts are written one partition after
/// another and acknowledged once all are synced, so a crash can leave only the last
/// publishes incomplete, each a part in some partitions and nothing in others. While the
/// latest record of the stream (the greatest append time among the partitions' last
/// records, unique to a publish) is found in fewer partitions than its publish has parts,
/// those records are cut off.
fn cut_incomplete_publishes(
    partitions: &mut [PartitionLog],
    recovered: &mut [Recovered],
) -> Result<()> {
    loop {
        let last = partitions
            .iter()
            .map(PartitionLog::last_record)
            .collect::<Result<Vec<_>>>()?;
        let Some((latest, parts)) = last.iter().flatten().copied().max() else {
            return Ok(());
        };
        let holding: Vec<usize> = (0..last.len())
            .filter(|p| last[*p].is_some_and(|(time, _)| time == latest))
            .collect();
        if holding.len() >= parts {
            return Ok(());
        }
        for partition in holding {
            partitions[partition].cut_last_record()?;
            recovered[partition].cut_parts += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn rows(keys: &[&str], values: &[i64]) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from(values.to_vec())),
            ],
        )?)
    }

    /// Per partition, its (key, value) rows in offset order.
    fn contents(log: &StreamLog) -> Result<Vec<Vec<(String, i64)>>> {
        let mut out = Vec::new();
        for partition in log.partitions() {
            let mut rows = Vec::new();
            for fetched in partition.read(0, usize::MAX)? {
                let keys = fetched.rows.column(0).as_string::<i32>();
                let values = fetched.rows.column(1).as_primitive::<Int64Type>();
                for i in 0..fetched.rows.num_rows() {
                    rows.push((keys.value(i).to_string(), values.value(i)));
                }
            }
            out.push(rows);
        }
        Ok(out)
    }

    #[test]
    fn a_keys_rows_stay_in_one_partition_in_order() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut log, _) = StreamLog::open(dir.path(), 3, Some("k"), LogConfig::default())?;
        let keys = ["a", "b", "c", "d", "e", "f"];
        for round in 0..4 {
            let values: Vec<i64> = (0..6).map(|i| round * 10 + i).collect();
            log.publish(&rows(&keys, &values)?, 0)?;
        }
        log.sync()?;
        let partitions = contents(&log)?;
        for key in keys {
            let holding: Vec<usize> = (0..3)
                .filter(|p| partitions[*p].iter().any(|(k, _)| k == key))
                .collect();
            assert_eq!(holding.len(), 1, "{key} is in partitions {holding:?}");
            let values: Vec<i64> = partitions[holding[0]]
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .collect();
            let index = keys.iter().position(|k| *k == key).unwrap_or_default() as i64;
            assert_eq!(values, (0..4).map(|r| r * 10 + index).collect::<Vec<_>>());
        }
        assert!(partitions.iter().filter(|p| !p.is_empty()).count() > 1);
        // Reopened the same way it reads the same; another way is refused.
        drop(log);
        let (log, _) = StreamLog::open(dir.path(), 3, Some("k"), LogConfig::default())?;
        assert_eq!(contents(&log)?, partitions);
        let refused = StreamLog::open(dir.path(), 4, Some("k"), LogConfig::default());
        assert!(refused.is_err());
        Ok(())
    }

    #[test]
    fn a_publish_cut_short_by_a_crash_is_cut_off_in_every_partition() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut log, _) = StreamLog::open(dir.path(), 4, Some("k"), LogConfig::default())?;
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
        log.publish(&rows(&keys, &[1, 2, 3, 4, 5, 6, 7, 8])?, 100)?;
        log.sync()?;
        let complete = contents(&log)?;
        let first_segment = |partition: usize| {
            dir.path()
                .join(partition.to_string())
                .join(format!("{:020}.log", 0))
        };
        let sizes = (0..4)
            .map(|p| Ok(std::fs::metadata(first_segment(p))?.len()))
            .collect::<Result<Vec<u64>>>()?;
        let appended = log.publish(&rows(&keys, &[11, 12, 13, 14, 15, 16, 17, 18])?, 200)?;
        log.sync()?;
        drop(log);
        assert!(appended.len() >= 2, "{} parts", appended.len());
        // The process stopped before the second publish's last part was written.
        let last = appended[appended.len() - 1].partition;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(first_segment(last))?;
        file.set_len(sizes[last])?;
        drop(file);
        let (log, recovered) = StreamLog::open(dir.path(), 4, Some("k"), LogConfig::default())?;
        assert_eq!(contents(&log)?, complete);
        let cut: u64 = recovered.iter().map(|r| r.cut_parts).sum();
        assert_eq!(cut, appended.len() as u64 - 1);
        // A complete publish is kept, and appends go on after it.
        drop(log);
        let (mut log, recovered) = StreamLog::open(dir.path(), 4, Some("k"), LogConfig::default())?;
        assert_eq!(recovered.iter().map(|r| r.cut_parts).sum::<u64>(), 0);
        log.publish(&rows(&["a"], &[21])?, 300)?;
        log.sync()?;
        let holding_a = complete
            .iter()
            .position(|p| p.iter().any(|(k, _)| k == "a"));
        let after = contents(&log)?;
        if let Some(partition) = holding_a {
            assert_eq!(after[partition].last(), Some(&("a".to_string(), 21)));
        }
        Ok(())
    }

    #[test]
    fn without_a_key_batches_go_to_each_partition_in_turn() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut log, _) = StreamLog::open(dir.path(), 2, None, LogConfig::default())?;
        let mut places = Vec::new();
        for (keys, values) in [
            (&["a", "b"][..], &[1, 2][..]),
            (&["c"], &[3]),
            (&["d"], &[4]),
        ] {
            let batch = rows(keys, values)?;
            for appended in log.publish(&batch, 0)? {
                assert_eq!(appended.rows, batch);
                places.push((appended.partition, appended.offset));
            }
        }
        assert_eq!(places, vec![(0, 0), (1, 0), (0, 2)]);
        Ok(())
    }
}
