//! `SessionAggregate`: `GROUP BY window_start, window_end [, keys]` over `SESSION` windows.
//!
//! Each row arrives with its proto-session `[time, time + gap)` as `window_start` and
//! `window_end`. A row joins every session its proto-session overlaps or touches (as in
//! Flink, `[a, b)` and `[b, c)` merge), and sessions it bridges merge into one (their
//! accumulator states are merged).
//!
//! - **State**: per grouping key, its open sessions, each with its bounds and one DataFusion
//!   row accumulator per aggregate call.
//! - **Emits**: when the watermark reaches a session's end (last row's time + gap), one `+I`
//!   row with the session's bounds; sessions that close together come out by end, then
//!   start, then key.
//! - **Watermark**: fires and drops the sessions it reaches. Allowed lateness does not apply.
//! - **Late rows**: a row whose session, after merging, has already ended at the watermark
//!   (or that has no window bounds) goes to the late side output.
//! - **End of input**: the `+inf` watermark before it has fired every session.
//! - **Checkpoint**: the watermark, and every open session (by key, then start) with its
//!   key, bounds and accumulator states, each as columns over every session.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int64Array, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use crate::aggregate::{AggregateCall, inputs_of, load_accumulators, save_accumulators};
use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::sessions::{Ends, OpenSessions, take_ended, touching};
use crate::state::{StateReader, StateWriter};
use crate::time::millis;
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, EngineError, Result};

struct Session {
    end: Millis,
    accumulators: Vec<Box<dyn Accumulator>>,
}

impl Ends for Session {
    fn end(&self) -> Millis {
        self.end
    }
}

pub struct SessionAggregate {
    group_by: Vec<Arc<dyn PhysicalExpr>>,
    window_start: usize,
    window_end: usize,
    calls: Vec<AggregateCall>,
    /// Group columns, then one column per call.
    schema: SchemaRef,
    keys: RowConverter,
    sessions: OpenSessions<Session>,
    watermark: Millis,
    late: Vec<Changes>,
}

impl SessionAggregate {
    pub fn new(
        group_by: Vec<Arc<dyn PhysicalExpr>>,
        window_start: usize,
        window_end: usize,
        calls: Vec<AggregateCall>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let fields = (0..group_by.len())
            .filter(|column| *column != window_start && *column != window_end)
            .map(|column| SortField::new(schema.field(column).data_type().clone()))
            .collect();
        Ok(SessionAggregate {
            group_by,
            window_start,
            window_end,
            calls,
            schema,
            keys: RowConverter::new(fields)?,
            sessions: HashMap::new(),
            watermark: WATERMARK_MIN,
            late: Vec::new(),
        })
    }

    /// Folds `absorbed` into `into`, through the accumulators' intermediate state.
    fn merge(into: &mut Session, mut absorbed: Session) -> Result<()> {
        into.end = into.end.max(absorbed.end);
        for (target, source) in into.accumulators.iter_mut().zip(&mut absorbed.accumulators) {
            let state = source
                .state()?
                .iter()
                .map(|value| value.to_array_of_size(1))
                .collect::<Result<Vec<_>, _>>()?;
            target.merge_batch(&state)?;
        }
        Ok(())
    }

    /// The output rows of `(key, start, session)` triples.
    fn output(&self, fired: Vec<(Box<[u8]>, Millis, Session)>) -> Result<RecordBatch> {
        let parser = self.keys.parser();
        let mut keys = self
            .keys
            .convert_rows(fired.iter().map(|(key, _, _)| parser.parse(key)))?
            .into_iter();
        let starts = TimestampMillisecondArray::from_iter_values(fired.iter().map(|f| f.1));
        let ends = TimestampMillisecondArray::from_iter_values(fired.iter().map(|f| f.2.end));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for column in 0..self.group_by.len() {
            if column == self.window_start {
                columns.push(Arc::new(starts.clone()));
            } else if column == self.window_end {
                columns.push(Arc::new(ends.clone()));
            } else if let Some(key) = keys.next() {
                columns.push(key);
            }
        }
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::new(); self.calls.len()];
        for (_, _, mut session) in fired {
            for (column, accumulator) in values.iter_mut().zip(&mut session.accumulators) {
                column.push(accumulator.evaluate()?);
            }
        }
        for column in values {
            columns.push(ScalarValue::iter_to_array(column)?);
        }
        batch_of(&self.schema, &columns, starts.len())
    }
}

impl Operator for SessionAggregate {
    fn name(&self) -> &str {
        "session_aggregate"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, _out: &mut Vec<Changes>) -> Result<()> {
        let batch = &changes.rows;
        let rows = batch.num_rows();
        let columns = self
            .group_by
            .iter()
            .map(|expression| expression.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let starts = millis(&columns[self.window_start])?;
        let ends = millis(&columns[self.window_end])?;
        let key_columns: Vec<ArrayRef> = columns
            .iter()
            .enumerate()
            .filter(|(column, _)| *column != self.window_start && *column != self.window_end)
            .map(|(_, array)| array.clone())
            .collect();
        let key_rows = if key_columns.is_empty() {
            None
        } else {
            Some(self.keys.convert_columns(&key_columns)?)
        };
        let inputs = self
            .calls
            .iter()
            .map(|call| call.input(batch))
            .collect::<Result<Vec<_>>>()?;

        let mut late = vec![false; rows];
        for (row, is_late) in late.iter_mut().enumerate() {
            if starts.is_null(row) || ends.is_null(row) {
                *is_late = true;
                continue;
            }
            let (start, end) = (starts.value(row), ends.value(row));
            let key: &[u8] = key_rows.as_ref().map_or(&[], |k| k.row(row).data());
            let sessions = self.sessions.entry(key.into()).or_default();
            // Every open session the proto-session [start, end) overlaps or touches.
            let overlapping = touching(sessions, start, end);
            if overlapping.is_empty() && end <= self.watermark {
                *is_late = true;
                continue;
            }
            let mut merged_start = start;
            let mut merged = Session {
                end,
                accumulators: self
                    .calls
                    .iter()
                    .map(|call| call.accumulator(false))
                    .collect::<Result<Vec<_>>>()?,
            };
            for session_start in overlapping {
                if let Some(session) = sessions.remove(&session_start) {
                    merged_start = merged_start.min(session_start);
                    Self::merge(&mut merged, session)?;
                }
            }
            let index = UInt32Array::from(vec![row as u32]);
            for (accumulator, input) in merged.accumulators.iter_mut().zip(&inputs) {
                accumulator.update_batch(&input.filtered(&index)?)?;
            }
            sessions.insert(merged_start, merged);
        }
        self.late.extend(changes.late_rows(&late)?);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        let fired = take_ended(&mut self.sessions, watermark);
        if fired.is_empty() {
            return Ok(());
        }
        out.push(Changes::inserts(self.output(fired)?));
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        inputs_of(&self.group_by, &self.calls)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        let mut sessions: Vec<(&[u8], Millis, &mut Session)> = Vec::new();
        let mut by_key: Vec<_> = self.sessions.iter_mut().collect();
        by_key.sort_by(|a, b| a.0.cmp(b.0));
        for (key, open) in by_key {
            for (start, session) in open.iter_mut() {
                sessions.push((key, *start, session));
            }
        }
        let count = sessions.len();
        state.usize(count);
        let parser = self.keys.parser();
        let key_columns = self
            .keys
            .convert_rows(sessions.iter().map(|(key, _, _)| parser.parse(key)))?;
        state.arrays(&key_columns, count)?;
        let starts: ArrayRef = Arc::new(Int64Array::from_iter_values(
            sessions.iter().map(|(_, start, _)| *start),
        ));
        let ends: ArrayRef = Arc::new(Int64Array::from_iter_values(
            sessions.iter().map(|(_, _, session)| session.end),
        ));
        state.arrays(&[starts, ends], count)?;
        for (index, call) in self.calls.iter().enumerate() {
            save_accumulators(
                sessions
                    .iter_mut()
                    .map(|(_, _, session)| &mut session.accumulators[index]),
                || call.accumulator(false),
                state,
            )?;
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        let count = state.usize()?;
        let (keys, _) = state.arrays()?;
        let key_fields = self.group_by.len().saturating_sub(2);
        if count > 0 && keys.len() != key_fields {
            return Err(EngineError::Checkpoint(format!(
                "sessions saved with {} key columns, expected {key_fields}",
                keys.len()
            )));
        }
        let key_rows = if key_fields == 0 || count == 0 {
            None
        } else {
            Some(self.keys.convert_columns(&keys)?)
        };
        let (bounds, _) = state.arrays()?;
        let column = |index: usize| {
            bounds
                .get(index)
                .and_then(|column| column.as_any().downcast_ref::<Int64Array>())
                .filter(|column| column.len() == count)
                .ok_or_else(|| EngineError::Checkpoint("session bounds are missing".into()))
        };
        let (starts, ends) = (column(0)?, column(1)?);
        let mut accumulators = Vec::with_capacity(self.calls.len());
        for call in &self.calls {
            accumulators
                .push(load_accumulators(count, || call.accumulator(false), state)?.into_iter());
        }
        for index in 0..count {
            let key: Box<[u8]> = key_rows
                .as_ref()
                .map_or(&[] as &[u8], |keys| keys.row(index).data())
                .into();
            let session = Session {
                end: ends.value(index),
                accumulators: accumulators
                    .iter_mut()
                    .map(|accumulators| accumulators.next())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| EngineError::Checkpoint("an accumulator is missing".into()))?,
            };
            self.sessions
                .entry(key)
                .or_default()
                .insert(starts.value(index), session);
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
                .map(|s| s.accumulators.iter().map(|a| a.size()).sum::<usize>())
                .sum(),
            open_windows: sessions.count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Float64Array;

    use super::*;
    use crate::aggregate::checkpoint_tests::{
        Random, Step, Tally, restore, windowed_aggregation, windowed_input,
    };
    use crate::time::WATERMARK_MAX;

    const GAP: Millis = 10;

    /// The aggregation of [`windowed_aggregation`].
    fn aggregate(keyed: bool) -> Result<SessionAggregate> {
        let (group_by, calls, schema) = windowed_aggregation(keyed)?;
        SessionAggregate::new(group_by, 0, 1, calls, schema)
    }

    /// Batches of rows roughly in time order, rising watermarks, then `+inf`.
    fn steps(random: &mut Random) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let mut time: Millis = 0;
        let mut watermark: Millis = -1;
        for _ in 0..(4 + random.below(10)) {
            if random.below(3) == 0 {
                watermark = watermark.max(time - random.below(6) as Millis);
                steps.push(Step::Watermark(watermark));
                watermark += 1;
                continue;
            }
            let mut keys = Vec::new();
            let mut values = Vec::new();
            let mut starts = Vec::new();
            for _ in 0..(1 + random.below(6)) {
                time += random.below(8) as Millis;
                keys.push((random.below(8) != 0).then(|| random.below(3) as i64));
                values.push((random.below(8) != 0).then(|| random.below(20) as f64 / 7.0));
                starts.push(time - random.below(25) as Millis);
            }
            let ends: Vec<Millis> = starts.iter().map(|start| start + GAP).collect();
            let rows = RecordBatch::try_new(
                windowed_input(),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Float64Array::from(values)),
                    Arc::new(TimestampMillisecondArray::from(starts)),
                    Arc::new(TimestampMillisecondArray::from(ends)),
                ],
            )?;
            steps.push(Step::Rows(Changes::inserts(rows)));
        }
        steps.push(Step::Watermark(WATERMARK_MAX));
        Ok(steps)
    }

    #[test]
    fn a_restored_operator_goes_on_as_the_one_that_saved() -> Result<()> {
        let mut tally = Tally::default();
        for seed in 0..50 {
            let mut random = Random::new(seed);
            let keyed = seed % 4 != 3;
            let steps = steps(&mut random)?;
            let split = random.below(steps.len() as u64) as usize;
            let outcome = restore(|| aggregate(keyed), &steps, split, true)?;
            tally.add(seed, &outcome);
        }
        tally.check();
        Ok(())
    }
}
