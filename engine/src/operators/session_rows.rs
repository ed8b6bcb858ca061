//! `SessionRows`: the rows of `SESSION` windows themselves, without aggregation
//! (`SELECT * FROM TABLE(SESSION(...))`), each with the bounds of its final session.
//!
//! Each row arrives with its proto-session `[time, time + gap)` as `window_start` and
//! `window_end`; it joins every open session of its key the proto-session overlaps or
//! touches, and sessions it bridges merge into one, as in `SessionAggregate`.
//!
//! - **State**: per `PARTITION BY` key, its open sessions, each with its bounds and its rows
//!   (in pieces, one per input batch that added to it).
//! - **Emits**: when the watermark reaches a session's end (its last row's time + gap), its
//!   rows as `+I`, `window_start` and `window_end` the session's bounds and `window_time` its
//!   last millisecond; rows of a session in event-time order (ties in arrival order),
//!   sessions that close together by end, then start, then key.
//! - **Watermark**: fires and drops the sessions it reaches.
//! - **Late rows**: a row whose session, after merging, has already ended at the watermark
//!   (or with no window bounds) goes to the late side output.
//! - **End of input**: the `+inf` watermark before it has fired every session.
//! - **Checkpoint**: the watermark, and every open session (by key, then start) with its key,
//!   bounds and rows in arrival order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::sessions::{Ends, OpenSessions, take_ended, touching};
use crate::state::{StateReader, StateWriter};
use crate::time::{Millis, WATERMARK_MIN, millis};
use crate::{Changes, EngineError, Result};

/// Where the window columns are in the rows.
#[derive(Debug, Clone, Copy)]
pub struct SessionColumns {
    pub start: usize,
    pub end: usize,
    /// `window_time`, the rows' event-time attribute, unless a projection dropped it.
    pub time: Option<usize>,
}

struct Session {
    end: Millis,
    /// The session's rows, in arrival order.
    pieces: Vec<RecordBatch>,
}

impl Ends for Session {
    fn end(&self) -> Millis {
        self.end
    }
}

pub struct SessionRows {
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    columns: SessionColumns,
    schema: SchemaRef,
    keys: RowConverter,
    sessions: OpenSessions<Session>,
    watermark: Millis,
    late: Vec<Changes>,
}

impl SessionRows {
    pub fn new(
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        columns: SessionColumns,
        schema: SchemaRef,
    ) -> Result<Self> {
        let fields = partition_by
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(&schema)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(SessionRows {
            partition_by,
            columns,
            schema,
            keys: RowConverter::new(fields)?,
            sessions: HashMap::new(),
            watermark: WATERMARK_MIN,
            late: Vec::new(),
        })
    }

    fn key_rows(&self, batch: &RecordBatch) -> Result<Option<datafusion::arrow::row::Rows>> {
        if self.partition_by.is_empty() {
            return Ok(None);
        }
        let rows = batch.num_rows();
        let columns = self
            .partition_by
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        Ok(Some(self.keys.convert_columns(&columns)?))
    }

    /// A fired session's rows, in event-time order (a row's proto-session starts at its
    /// time), with its bounds.
    fn output(&self, start: Millis, session: Session) -> Result<RecordBatch> {
        let rows = concat_batches(&self.schema, &session.pieces)?;
        let count = rows.num_rows();
        let order = lexsort_to_indices(
            &[
                SortColumn {
                    values: rows.column(self.columns.start).clone(),
                    options: None,
                },
                SortColumn {
                    values: Arc::new(UInt32Array::from_iter_values(0..count as u32)),
                    options: None,
                },
            ],
            None,
        )?;
        let rows = take_record_batch(&rows, &order)?;
        let bound = |value: Millis| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from_value(value, count))
        };
        let mut columns = rows.columns().to_vec();
        columns[self.columns.start] = bound(start);
        columns[self.columns.end] = bound(session.end);
        if let Some(time) = self.columns.time {
            columns[time] = bound(session.end - 1);
        }
        batch_of(&self.schema, &columns, count)
    }
}

impl Operator for SessionRows {
    fn name(&self) -> &str {
        "session_rows"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, _out: &mut Vec<Changes>) -> Result<()> {
        let batch = &changes.rows;
        let rows = batch.num_rows();
        let starts = millis(batch.column(self.columns.start))?;
        let ends = millis(batch.column(self.columns.end))?;
        let key_rows = self.key_rows(batch)?;
        let mut late = vec![false; rows];
        // Each row's session in this batch, by its start when the row joined it; sessions
        // merged later in the batch are followed through `moved`.
        let mut joined: Vec<Option<(Box<[u8]>, Millis)>> = vec![None; rows];
        let mut moved: HashMap<(Box<[u8]>, Millis), Millis> = HashMap::new();
        for (row, is_late) in late.iter_mut().enumerate() {
            if starts.is_null(row) || ends.is_null(row) {
                *is_late = true;
                continue;
            }
            let (start, end) = (starts.value(row), ends.value(row));
            let key: Box<[u8]> = key_rows
                .as_ref()
                .map_or(&[] as &[u8], |k| k.row(row).data())
                .into();
            let sessions = self.sessions.entry(key.clone()).or_default();
            let overlapping = touching(sessions, start, end);
            if overlapping.is_empty() && end <= self.watermark {
                *is_late = true;
                continue;
            }
            let mut merged_start = start;
            let mut merged = Session {
                end,
                pieces: Vec::new(),
            };
            let mut absorbed = Vec::new();
            for session_start in overlapping {
                if let Some(session) = sessions.remove(&session_start) {
                    merged_start = merged_start.min(session_start);
                    merged.end = merged.end.max(session.end);
                    merged.pieces.extend(session.pieces);
                    absorbed.push(session_start);
                }
            }
            for old in absorbed.into_iter().filter(|old| *old != merged_start) {
                moved.insert((key.clone(), old), merged_start);
            }
            sessions.insert(merged_start, merged);
            joined[row] = Some((key, merged_start));
        }
        // Each session's rows of this batch, as one piece.
        let mut pieces: BTreeMap<(Box<[u8]>, Millis), Vec<u32>> = BTreeMap::new();
        for (row, session) in joined.into_iter().enumerate() {
            let Some((key, mut start)) = session else {
                continue;
            };
            while let Some(next) = moved.get(&(key.clone(), start)) {
                start = *next;
            }
            pieces.entry((key, start)).or_default().push(row as u32);
        }
        for ((key, start), rows) in pieces {
            let piece = take_record_batch(batch, &UInt32Array::from(rows))?;
            let session = self
                .sessions
                .get_mut(&key)
                .and_then(|sessions| sessions.get_mut(&start))
                .ok_or_else(|| EngineError::Input("a session row lost its session".into()))?;
            session.pieces.push(piece);
        }
        self.late.extend(changes.late_rows(&late)?);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        let batches = take_ended(&mut self.sessions, watermark)
            .into_iter()
            .map(|(_, start, session)| self.output(start, session))
            .collect::<Result<Vec<_>>>()?;
        if !batches.is_empty() {
            out.push(Changes::inserts(concat_batches(&self.schema, &batches)?));
        }
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.partition_by.clone()
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        let mut by_key: Vec<_> = self.sessions.iter().collect();
        by_key.sort_by(|a, b| a.0.cmp(b.0));
        let open: Vec<(Millis, &Session)> = by_key
            .into_iter()
            .flat_map(|(_, sessions)| sessions.iter().map(|(start, s)| (*start, s)))
            .collect();
        state.usize(open.len());
        for (start, session) in open {
            state.i64(start);
            state.i64(session.end);
            state.batch(&concat_batches(&self.schema, &session.pieces)?)?;
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        for _ in 0..state.usize()? {
            let start = state.i64()?;
            let end = state.i64()?;
            let rows = state.batch(&self.schema)?;
            let key: Box<[u8]> = match self.key_rows(&rows)? {
                Some(keys) if keys.num_rows() > 0 => keys.row(0).data().into(),
                Some(_) => {
                    return Err(EngineError::Checkpoint("a session without rows".into()));
                }
                None => Box::default(),
            };
            let session = Session {
                end,
                pieces: vec![rows],
            };
            self.sessions.entry(key).or_default().insert(start, session);
        }
        Ok(())
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn metrics(&self) -> OperatorMetrics {
        let sessions = self.sessions.values().flat_map(|s| s.values());
        OperatorMetrics {
            state_bytes: sessions
                .clone()
                .flat_map(|s| &s.pieces)
                .map(RecordBatch::get_array_memory_size)
                .sum(),
            open_windows: sessions.count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::time::WATERMARK_MAX;

    const GAP: Millis = 10;

    fn schema() -> SchemaRef {
        let time = || DataType::Timestamp(TimeUnit::Millisecond, None);
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("ts", time(), true),
            Field::new("window_start", time(), true),
            Field::new("window_end", time(), true),
            Field::new("window_time", time(), true),
        ]))
    }

    fn operator() -> Result<SessionRows> {
        SessionRows::new(
            vec![Arc::new(Column::new("k", 0))],
            SessionColumns {
                start: 2,
                end: 3,
                time: Some(4),
            },
            schema(),
        )
    }

    /// Rows of `(key, time)`, each with its proto-session.
    fn rows(rows: &[(i64, Millis)]) -> Result<Changes> {
        let times = || TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1));
        let shifted =
            |by: Millis| TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 + by));
        Ok(Changes::inserts(RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(times()),
                Arc::new(times()),
                Arc::new(shifted(GAP)),
                Arc::new(shifted(GAP - 1)),
            ],
        )?))
    }

    /// Each output row as `(key, ts, start, end, time)`.
    fn table(out: &[Changes]) -> Result<Vec<[i64; 5]>> {
        let mut table = Vec::new();
        for changes in out {
            let batch = &changes.rows;
            let key = batch.column(0).as_any().downcast_ref::<Int64Array>();
            let Some(key) = key else {
                return Err(EngineError::Input("key column".into()));
            };
            let times = (1..5)
                .map(|c| millis(batch.column(c)))
                .collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                table.push([
                    key.value(row),
                    times[0].value(row),
                    times[1].value(row),
                    times[2].value(row),
                    times[3].value(row),
                ]);
            }
        }
        Ok(table)
    }

    #[test]
    fn rows_come_out_with_their_final_session_when_it_closes() -> Result<()> {
        let mut operator = operator()?;
        let mut out = Vec::new();
        // Key 1: 0 and 25 are apart until 20 and 10 bridge them (out of order, sessions that
        // touch merge); key 2: 3.
        operator.process(0, rows(&[(1, 0), (1, 25), (2, 3)])?, &mut out)?;
        operator.process(0, rows(&[(1, 20), (1, 10)])?, &mut out)?;
        operator.on_watermark(13, &mut out)?;
        assert_eq!(table(&out)?, vec![[2, 3, 3, 13, 12]]);
        out.clear();
        operator.on_watermark(WATERMARK_MAX, &mut out)?;
        assert_eq!(
            table(&out)?,
            vec![
                [1, 0, 0, 35, 34],
                [1, 10, 0, 35, 34],
                [1, 20, 0, 35, 34],
                [1, 25, 0, 35, 34],
            ]
        );
        Ok(())
    }

    #[test]
    fn a_row_whose_session_has_closed_is_late() -> Result<()> {
        let mut operator = operator()?;
        let mut out = Vec::new();
        operator.process(0, rows(&[(1, 0)])?, &mut out)?;
        operator.on_watermark(10, &mut out)?;
        operator.process(0, rows(&[(1, 5), (1, 0)])?, &mut out)?;
        let late: usize = operator.take_late().iter().map(Changes::num_rows).sum();
        assert_eq!(late, 0, "5's session [5, 15) is still open");
        operator.process(0, rows(&[(3, -20)])?, &mut out)?;
        let late: usize = operator.take_late().iter().map(Changes::num_rows).sum();
        assert_eq!(late, 1);
        Ok(())
    }

    #[test]
    fn a_restored_operator_goes_on_as_the_one_that_saved() -> Result<()> {
        let steps = [
            rows(&[(1, 0), (2, 4), (1, 8)])?,
            rows(&[(2, 30), (1, 15)])?,
            rows(&[(1, 60), (2, 12)])?,
        ];
        for split in 0..=steps.len() {
            let mut whole = operator()?;
            let mut expected = Vec::new();
            for (index, step) in steps.iter().enumerate() {
                whole.process(0, step.clone(), &mut expected)?;
                whole.on_watermark(index as Millis * 20, &mut expected)?;
            }
            whole.on_watermark(WATERMARK_MAX, &mut expected)?;

            let mut first = operator()?;
            let mut actual = Vec::new();
            for (index, step) in steps[..split].iter().enumerate() {
                first.process(0, step.clone(), &mut actual)?;
                first.on_watermark(index as Millis * 20, &mut actual)?;
            }
            let mut saved = StateWriter::new();
            first.save_state(&mut saved)?;
            let bytes = saved.into_bytes();
            let mut second = operator()?;
            second.load_state(&mut StateReader::new(&bytes))?;
            for (index, step) in steps.iter().enumerate().skip(split) {
                second.process(0, step.clone(), &mut actual)?;
                second.on_watermark(index as Millis * 20, &mut actual)?;
            }
            second.on_watermark(WATERMARK_MAX, &mut actual)?;
            assert_eq!(table(&actual)?, table(&expected)?, "split at {split}");
        }
        Ok(())
    }
}
