//! `TemporalJoin`: `s JOIN t FOR SYSTEM_TIME AS OF s.ts ON s.k = t.k`, inner or left: each
//! row of the stream `s` (input 0) joined with the version of its key in the table `t`
//! (input 1, a changelog) that was current at the row's time.
//!
//! Event time (`AS OF` the stream's event-time attribute): the table's versions are its
//! rows by their event time; a `-D` ends its key's version at the latest table time seen so
//! far (at least its own time); `-U` is ignored (its `+U` follows). Processing time (`AS OF`
//! a `PROCTIME()` column): each stream row is joined at once with its key's latest row.
//!
//! - **State**: with event time, the stream's rows waiting for the watermark, and per key
//!   the versions a waiting or future row can still need; with processing time, each key's
//!   latest row, which is all the state keeps.
//! - **Emits**: with event time, when the watermark passes a stream row's time (the table's
//!   versions up to it are then complete), `+I` of the row joined with the version valid
//!   then, in time order (ties in arrival order); with processing time, at once. A LEFT join
//!   emits a row without a version padded with NULLs, an INNER join drops it.
//! - **Watermark**: emits the waiting stream rows it passes; a version is dropped once a
//!   later version of its key is at or below the watermark.
//! - **Late rows**: with event time, a stream row that arrives behind the watermark (or with
//!   a NULL time) goes to the late output; table rows become versions like any other. With
//!   processing time nothing is late.
//! - **End of input**: the `+inf` watermark emits every waiting row.
//! - **Checkpoint**: the watermark and the latest table time, the waiting stream rows in
//!   time and arrival order with their keys, and per key its versions by start time
//!   (deletions included) and whether it has several to prune.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, Row};
use datafusion::physical_expr::PhysicalExpr;

use super::join::{
    JoinCodec, JoinKind, JoinSide, bool_column, i64_column, saved_bools, saved_i64s, saved_u64s,
    saved_usizes, u64_column, usize_column,
};
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, EngineError, Result, RowKind};

/// Which time a stream row looks the table up at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionTime {
    /// The row's event time: versions by the table's event time.
    Event,
    /// When the row is processed: the latest version.
    Processing,
}

/// A stream row waiting for the watermark.
struct Waiting {
    /// `None` for a NULL key, which matches nothing.
    key: Option<Box<[u8]>>,
    row: OwnedRow,
}

pub struct TemporalJoin {
    kind: JoinKind,
    version_time: VersionTime,
    codec: JoinCodec,
    waiting: BTreeMap<(Millis, u64), Waiting>,
    /// Per key, its versions by the time they start; `None` for a deletion.
    versions: HashMap<Box<[u8]>, BTreeMap<Millis, Option<OwnedRow>>>,
    /// Keys with more than one version, to prune at the next watermark.
    several: HashSet<Box<[u8]>>,
    /// The latest event time seen on the table.
    table_time: Millis,
    watermark: Millis,
    sequence: u64,
    late: Vec<Changes>,
}

impl TemporalJoin {
    pub fn new(
        kind: JoinKind,
        version_time: VersionTime,
        stream: JoinSide,
        table: JoinSide,
        residual: Option<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(EngineError::Input(
                "a temporal join is INNER or LEFT".into(),
            ));
        }
        if version_time == VersionTime::Event
            && (stream.time_column.is_none() || table.time_column.is_none())
        {
            return Err(EngineError::Input(
                "an event-time temporal join needs the event time of the stream and the table"
                    .into(),
            ));
        }
        Ok(TemporalJoin {
            kind,
            version_time,
            codec: JoinCodec::new(stream, table, residual, schema)?,
            waiting: BTreeMap::new(),
            versions: HashMap::new(),
            several: HashSet::new(),
            table_time: WATERMARK_MIN,
            watermark: WATERMARK_MIN,
            sequence: 0,
            late: Vec::new(),
        })
    }

    /// The version of `key` valid at `time`.
    fn version(&self, key: Option<&[u8]>, time: Millis) -> Option<&OwnedRow> {
        let versions = self.versions.get(key?)?;
        let (_, version) = match self.version_time {
            VersionTime::Event => versions.range(..=time).next_back()?,
            VersionTime::Processing => versions.last_key_value()?,
        };
        version.as_ref()
    }

    /// Joins stream rows with the versions valid at their times and emits the result.
    fn emit(
        &self,
        rows: &[(Millis, Option<&[u8]>, Row<'_>)],
        out: &mut Vec<Changes>,
    ) -> Result<()> {
        let pairs: Vec<(Option<Row<'_>>, Option<Row<'_>>)> = rows
            .iter()
            .map(|(time, key, row)| {
                let version = self.version(*key, *time).map(OwnedRow::row);
                (Some(*row), version)
            })
            .collect();
        let found: Vec<_> = pairs.iter().filter(|(_, v)| v.is_some()).copied().collect();
        let (joined, passed) = self.codec.matching(&found)?;
        if self.kind == JoinKind::Inner {
            let kept = filter_record_batch(&joined, &BooleanArray::from(passed))?;
            if kept.num_rows() > 0 {
                out.push(Changes::inserts(kept));
            }
            return Ok(());
        }
        // LEFT: a row without a valid version, or whose pair fails the condition, is padded.
        let mut passed = passed.into_iter();
        let padded: Vec<(Option<Row<'_>>, Option<Row<'_>>)> = pairs
            .iter()
            .map(|&(row, version)| {
                let keep = version.is_some() && passed.next() == Some(true);
                (row, version.filter(|_| keep))
            })
            .collect();
        let rows = self.codec.joined(&padded)?;
        if rows.num_rows() > 0 {
            out.push(Changes::inserts(rows));
        }
        Ok(())
    }

    fn process_stream(&mut self, changes: &Changes, out: &mut Vec<Changes>) -> Result<()> {
        let batch = &changes.rows;
        let keys = self.codec.keys(0, batch)?;
        let rows = self.codec.rows(0, batch)?;
        let key_of = |row: usize| keys.valid[row].then(|| keys.rows.row(row).data());
        if self.version_time == VersionTime::Processing {
            let probes: Vec<_> = (0..batch.num_rows())
                .map(|row| (0, key_of(row), rows.row(row)))
                .collect();
            return self.emit(&probes, out);
        }
        let Some(times) = self.codec.times(0, batch)? else {
            return Ok(());
        };
        let mut late = vec![false; batch.num_rows()];
        for (row, is_late) in late.iter_mut().enumerate() {
            if times.is_null(row) || times.value(row) < self.watermark {
                *is_late = true;
                continue;
            }
            self.sequence += 1;
            self.waiting.insert(
                (times.value(row), self.sequence),
                Waiting {
                    key: key_of(row).map(Box::from),
                    row: rows.row(row).owned(),
                },
            );
        }
        self.late.extend(changes.late_rows(&late)?);
        Ok(())
    }

    fn process_table(&mut self, changes: &Changes) -> Result<()> {
        let batch = &changes.rows;
        let keys = self.codec.keys(1, batch)?;
        let rows = self.codec.rows(1, batch)?;
        let times = self.codec.times(1, batch)?;
        for row in 0..batch.num_rows() {
            if !keys.valid[row] {
                continue;
            }
            let time = match &times {
                Some(times) if times.is_valid(row) => times.value(row),
                _ => self.table_time,
            };
            self.table_time = self.table_time.max(time);
            let version = match changes.kind(row) {
                RowKind::UpdateBefore => continue,
                RowKind::Delete => {
                    // A deletion takes effect no earlier than the table time it arrives at.
                    let at = time.max(self.table_time);
                    (at, None)
                }
                _ => (time, Some(rows.row(row).owned())),
            };
            let key: Box<[u8]> = keys.rows.row(row).data().into();
            let versions = self.versions.entry(key.clone()).or_default();
            if self.version_time == VersionTime::Processing {
                versions.clear();
            }
            versions.insert(version.0, version.1);
            if versions.len() > 1 {
                self.several.insert(key);
            }
        }
        Ok(())
    }

    /// Drops the versions no stream row at or after the watermark can need.
    fn prune(&mut self) {
        let watermark = self.watermark;
        for key in std::mem::take(&mut self.several) {
            let Some(versions) = self.versions.get_mut(&key) else {
                continue;
            };
            // Keep the last version at or below the watermark, and every later one.
            let current = versions.range(..=watermark).next_back().map(|(t, _)| *t);
            if let Some(current) = current {
                *versions = versions.split_off(&current);
            }
            if versions.first_key_value().is_some_and(|(_, v)| v.is_none()) {
                versions.pop_first();
            }
            match versions.len() {
                0 => {
                    self.versions.remove(&key);
                }
                1 => {}
                _ => {
                    self.several.insert(key);
                }
            }
        }
    }
}

impl Operator for TemporalJoin {
    fn name(&self) -> &str {
        "temporal_join"
    }

    fn schema(&self) -> SchemaRef {
        self.codec.schema().clone()
    }

    fn process(&mut self, input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        match input {
            0 => self.process_stream(&changes, out),
            _ => self.process_table(&changes),
        }
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        if self.version_time == VersionTime::Event {
            let mut ready = Vec::new();
            while let Some(entry) = self.waiting.first_entry() {
                if entry.key().0 >= watermark {
                    break;
                }
                let ((time, _), waiting) = entry.remove_entry();
                ready.push((time, waiting));
            }
            if !ready.is_empty() {
                let probes: Vec<_> = ready
                    .iter()
                    .map(|(time, w)| (*time, w.key.as_deref(), w.row.row()))
                    .collect();
                self.emit(&probes, out)?;
            }
        }
        self.prune();
        Ok(())
    }

    fn take_failures(&mut self) -> Vec<crate::RowFailure> {
        self.codec.take_failures()
    }

    fn screened_inputs(&self, input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.codec.side(input.min(1)).keys.clone()
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        state.i64(self.table_time);
        state.u64(self.sequence);
        state.arrays(
            &[
                i64_column(self.waiting.keys().map(|(time, _)| *time)),
                u64_column(self.waiting.keys().map(|(_, sequence)| *sequence)),
            ],
            self.waiting.len(),
        )?;
        self.codec
            .save_optional_keys(self.waiting.values().map(|w| w.key.as_deref()), state)?;
        self.codec
            .save_rows(0, self.waiting.values().map(|w| w.row.row()), state)?;
        // By key, so that the same state always gives the same bytes.
        let mut keys: Vec<_> = self.versions.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        state.arrays(
            &[
                usize_column(keys.iter().map(|(_, versions)| versions.len())),
                bool_column(keys.iter().map(|(key, _)| self.several.contains(*key))),
            ],
            keys.len(),
        )?;
        self.codec
            .save_keys(keys.iter().map(|(key, _)| &***key), state)?;
        let versions = || keys.iter().flat_map(|(_, versions)| versions.iter());
        state.arrays(
            &[
                i64_column(versions().map(|(start, _)| *start)),
                bool_column(versions().map(|(_, row)| row.is_some())),
            ],
            versions().count(),
        )?;
        self.codec.save_rows(
            1,
            versions().filter_map(|(_, row)| row.as_ref().map(OwnedRow::row)),
            state,
        )?;
        // Keys to prune that have no versions left.
        let mut gone: Vec<&[u8]> = self
            .several
            .iter()
            .filter(|key| !self.versions.contains_key(*key))
            .map(|key| &**key)
            .collect();
        gone.sort_unstable();
        self.codec.save_keys(gone, state)
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let damaged = |what: &str| {
            EngineError::Checkpoint(format!("the saved {what} of a temporal join do not fit"))
        };
        self.watermark = state.i64()?;
        self.table_time = state.i64()?;
        self.sequence = state.u64()?;
        let (columns, count) = state.arrays()?;
        let times = saved_i64s(&columns, 0, count)?;
        let sequences = saved_u64s(&columns, 1, count)?;
        let keys = self.codec.load_optional_keys(state)?;
        let rows = self.codec.load_rows(0, state)?;
        if keys.len() != count || rows.num_rows() != count {
            return Err(damaged("waiting rows"));
        }
        let waiting: BTreeMap<(Millis, u64), Waiting> = times
            .into_iter()
            .zip(sequences)
            .zip(keys.into_iter().zip(rows.iter()))
            .map(|(at, (key, row))| {
                (
                    at,
                    Waiting {
                        key,
                        row: row.owned(),
                    },
                )
            })
            .collect();
        if waiting.len() != count {
            return Err(damaged("waiting rows"));
        }
        let (columns, count) = state.arrays()?;
        let lengths = saved_usizes(&columns, 0, count)?;
        let several_flags = saved_bools(&columns, 1, count)?;
        let keys = self.codec.load_keys(state)?;
        let (columns, total) = state.arrays()?;
        let starts = saved_i64s(&columns, 0, total)?;
        let present = saved_bools(&columns, 1, total)?;
        let rows = self.codec.load_rows(1, state)?;
        if keys.len() != count
            || lengths.iter().sum::<usize>() != total
            || present.iter().filter(|present| **present).count() != rows.num_rows()
        {
            return Err(damaged("versions"));
        }
        let mut rows = rows.iter();
        let mut versions = starts.into_iter().zip(present).map(|(start, present)| {
            let row = if present {
                rows.next().map(|row| row.owned())
            } else {
                None
            };
            (start, row)
        });
        let mut by_key = HashMap::with_capacity(count);
        let mut several = HashSet::new();
        for ((key, length), is_several) in keys.into_iter().zip(lengths).zip(several_flags) {
            let key_versions: BTreeMap<Millis, Option<OwnedRow>> =
                versions.by_ref().take(length).collect();
            if key_versions.len() != length {
                return Err(damaged("versions"));
            }
            if is_several {
                several.insert(key.clone());
            }
            if by_key.insert(key, key_versions).is_some() {
                return Err(damaged("keys"));
            }
        }
        several.extend(self.codec.load_keys(state)?);
        self.waiting = waiting;
        self.versions = by_key;
        self.several = several;
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let waiting: usize = self
            .waiting
            .values()
            .map(|w| w.row.as_ref().len() + 32)
            .sum();
        let versions: usize = self
            .versions
            .values()
            .flat_map(BTreeMap::values)
            .map(|v| v.as_ref().map_or(0, |row| row.as_ref().len()) + 24)
            .sum();
        OperatorMetrics {
            state_bytes: waiting + versions,
            open_windows: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::UInt8Array;

    use super::super::join::checkpoint_tests::{
        Random, Script, Step, inserts, joined_schema, residual, restore, restores_alike, same, side,
    };
    use super::*;
    use crate::time::WATERMARK_MAX;

    #[test]
    fn a_restored_join_goes_on_as_the_original() -> Result<()> {
        let mut mattered = 0;
        for seed in 0..50u64 {
            let mut random = Random::new(seed);
            let kind = [JoinKind::Inner, JoinKind::Left][seed as usize % 2];
            let version_time = if seed % 4 < 3 {
                VersionTime::Event
            } else {
                VersionTime::Processing
            };
            let dictionary = seed % 3 == 1;
            let condition = seed % 5 != 2;
            let build = || {
                let (stream, table) = (side("l", dictionary), side("r", false));
                let schema = joined_schema(&stream, &table);
                TemporalJoin::new(
                    kind,
                    version_time,
                    stream,
                    table,
                    condition.then(residual),
                    schema,
                )
            };
            let script = Script {
                updating: [false, true],
                align: 0,
                steps: 40,
            };
            if restores_alike(seed, &mut random, build, &script, dictionary)? {
                mattered += 1;
            }
        }
        assert!(mattered >= 30, "the state mattered in {mattered} runs only");
        Ok(())
    }

    #[test]
    fn a_deletion_after_a_restore_takes_effect_at_the_table_time_reached_before() -> Result<()> {
        let build = || {
            let (stream, table) = (side("l", false), side("r", false));
            let schema = joined_schema(&stream, &table);
            TemporalJoin::new(
                JoinKind::Inner,
                VersionTime::Event,
                stream,
                table,
                None,
                schema,
            )
        };
        let (stream, table) = (side("l", false).schema, side("r", false).schema);
        let mut deletion = inserts(&table, &[(Some("a"), Some(20), 1)])?;
        deletion.kinds = Some(UInt8Array::from(vec![RowKind::Delete as u8]));
        let steps = [
            Step::Rows(1, inserts(&table, &[(Some("a"), Some(10), 1)])?),
            Step::Rows(1, inserts(&table, &[(Some("b"), Some(50), 2)])?),
            // Takes effect at 50, the table time reached: `a` is still there at 30.
            Step::Rows(1, deletion),
            Step::Rows(0, inserts(&stream, &[(Some("a"), Some(30), 0)])?),
            Step::Watermark(0, WATERMARK_MAX),
            Step::Watermark(1, WATERMARK_MAX),
        ];
        let outcome = restore(build, &steps, 2)?;
        assert!(same(&outcome.expected, &outcome.restored));
        let rows: usize = outcome.expected.iter().map(Changes::num_rows).sum();
        assert_eq!(rows, 1);
        Ok(())
    }
}
