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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, Row};
use datafusion::physical_expr::PhysicalExpr;

use super::join::{JoinCodec, JoinKind, JoinSide};
use crate::operator::{Operator, OperatorMetrics};
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
