//! `SlicedWindowAggregate`: `GROUP BY window_start, window_end [, keys]` over `HOP` and
//! `CUMULATE` windows, each row aggregated once.
//!
//! Rows arrive assigned to slices (the tumbling windows of the slide or step) instead of to
//! every window they fall in; a window's result merges the states of its slices.
//!
//! - **State**: per slice (by its end), its grouping keys and one DataFusion groups
//!   accumulator per call; a slice whose end the watermark has passed is frozen into keys and
//!   intermediate states, and rows that still reach it add further frozen parts.
//! - **Emits**: when the watermark reaches a window's end, one `+I` row per group of the
//!   window, computed by merging the states of the window's slices (windows in end order,
//!   groups in slice order, then as first seen).
//! - **Watermark**: fires the windows it reaches, and drops a slice once every window
//!   containing it has fired.
//! - **Late rows**: a row whose every window has fired (or that has no window) goes to the
//!   late side output with op `late`.
//! - **End of input**: the `+inf` watermark before it has fired every window.
//! - **Checkpoint**: the watermark, the ends of the windows waiting to fire, and per kept
//!   slice its frozen parts and its live groups (keys and accumulator states).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::TimestampMillisecondArray;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::aggregate::{AggregateCall, FrozenGroups, GroupedAggregates, inputs_of};
use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::millis;
use crate::time::{Millis, WATERMARK_MIN};
use crate::window::Windows;
use crate::{Changes, EngineError, Result};

/// One slice's state: what was frozen, and rows since.
#[derive(Default)]
struct Slice {
    frozen: Vec<FrozenGroups>,
    live: Option<GroupedAggregates>,
}

pub struct SlicedWindowAggregate {
    windows: Windows,
    group_by: Vec<Arc<dyn PhysicalExpr>>,
    window_start: usize,
    window_end: usize,
    key_schema: SchemaRef,
    calls: Vec<AggregateCall>,
    /// Group columns, then one column per call.
    schema: SchemaRef,
    slices: BTreeMap<Millis, Slice>,
    /// Ends of windows with data that have not fired.
    pending: BTreeSet<Millis>,
    watermark: Millis,
    late: Vec<Changes>,
}

impl SlicedWindowAggregate {
    /// `windows` are the real windows; rows carry their slice in the `window_start` and
    /// `window_end` grouping columns.
    pub fn new(
        windows: Windows,
        group_by: Vec<Arc<dyn PhysicalExpr>>,
        window_start: usize,
        window_end: usize,
        calls: Vec<AggregateCall>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let key_fields: Vec<FieldRef> = (0..group_by.len())
            .filter(|column| *column != window_start && *column != window_end)
            .map(|column| schema.fields()[column].clone())
            .collect();
        Ok(SlicedWindowAggregate {
            windows,
            group_by,
            window_start,
            window_end,
            key_schema: Arc::new(Schema::new(key_fields)),
            calls,
            schema,
            slices: BTreeMap::new(),
            pending: BTreeSet::new(),
            watermark: WATERMARK_MIN,
            late: Vec::new(),
        })
    }

    /// The result of the window ending at `end`, merged from its slices.
    fn window_result(&mut self, end: Millis) -> Result<RecordBatch> {
        let start = self.windows.window_start(end);
        let mut merged = GroupedAggregates::new(&self.key_schema, &self.calls)?;
        for slice in self
            .slices
            .range_mut(start.saturating_add(1)..=end)
            .map(|(_, s)| s)
        {
            if let Some(live) = slice.live.take() {
                slice.frozen.push(live.freeze()?);
            }
            for part in &slice.frozen {
                merged.merge(part)?;
            }
        }
        let rows = merged.len();
        let (keys, values) = merged.finish()?;
        let mut keys = keys.into_iter();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for column in 0..self.group_by.len() {
            if column == self.window_start {
                columns.push(Arc::new(TimestampMillisecondArray::from(vec![start; rows])));
            } else if column == self.window_end {
                columns.push(Arc::new(TimestampMillisecondArray::from(vec![end; rows])));
            } else if let Some(key) = keys.next() {
                columns.push(key);
            }
        }
        columns.extend(values);
        batch_of(&self.schema, &columns, rows)
    }
}

impl Operator for SlicedWindowAggregate {
    fn name(&self) -> &str {
        "sliced_window_aggregate"
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
        let ends = millis(&columns[self.window_end])?;

        let mut by_slice: BTreeMap<Millis, Vec<u32>> = BTreeMap::new();
        let mut late = vec![false; rows];
        let mut any_late = false;
        for (row, is_late) in late.iter_mut().enumerate() {
            if ends.is_null(row) || self.windows.last_window_end(ends.value(row)) <= self.watermark
            {
                *is_late = true;
                any_late = true;
            } else {
                by_slice
                    .entry(ends.value(row))
                    .or_default()
                    .push(row as u32);
            }
        }
        self.late.extend(changes.late_rows(&late)?);
        if by_slice.is_empty() {
            return Ok(());
        }

        let inputs = self
            .calls
            .iter()
            .map(|call| call.input(batch))
            .collect::<Result<Vec<_>>>()?;
        let keys: Vec<ArrayRef> = columns
            .iter()
            .enumerate()
            .filter(|(column, _)| *column != self.window_start && *column != self.window_end)
            .map(|(_, array)| array.clone())
            .collect();
        let whole_batch = by_slice.len() == 1 && !any_late;
        for (slice_end, indices) in by_slice {
            let (slice_keys, slice_inputs, count) = if whole_batch {
                (keys.clone(), inputs.clone(), rows)
            } else {
                let indices = UInt32Array::from(indices);
                let slice_keys = keys
                    .iter()
                    .map(|array| take(array.as_ref(), &indices, None))
                    .collect::<Result<Vec<_>, _>>()?;
                let slice_inputs = inputs
                    .iter()
                    .map(|input| input.take(&indices))
                    .collect::<Result<Vec<_>>>()?;
                (slice_keys, slice_inputs, indices.len())
            };
            let slice = self.slices.entry(slice_end).or_default();
            let live = match &mut slice.live {
                Some(live) => live,
                None => slice
                    .live
                    .insert(GroupedAggregates::new(&self.key_schema, &self.calls)?),
            };
            live.update(&slice_keys, &slice_inputs, count)?;
            let watermark = self.watermark;
            self.pending.extend(
                self.windows
                    .window_ends_of_slice(slice_end)
                    .into_iter()
                    .filter(|end| *end > watermark),
            );
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        let still_pending = self.pending.split_off(&watermark.saturating_add(1));
        let firing = std::mem::replace(&mut self.pending, still_pending);
        for end in firing {
            let rows = self.window_result(end)?;
            if rows.num_rows() > 0 {
                out.push(Changes::inserts(rows));
            }
        }
        let windows = self.windows;
        self.slices
            .retain(|slice_end, _| windows.last_window_end(*slice_end) > watermark);
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        inputs_of(&self.group_by, &self.calls)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        let pending: ArrayRef =
            Arc::new(Int64Array::from_iter_values(self.pending.iter().copied()));
        state.arrays(&[pending], self.pending.len())?;
        state.usize(self.slices.len());
        for (end, slice) in &mut self.slices {
            state.i64(*end);
            state.usize(slice.frozen.len());
            for part in &slice.frozen {
                part.save_state(state)?;
            }
            match &mut slice.live {
                Some(live) => {
                    state.bool(true);
                    live.save_state(state)?;
                }
                None => state.bool(false),
            }
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        let (pending, _) = state.arrays()?;
        let pending = pending
            .first()
            .and_then(|ends| ends.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| EngineError::Checkpoint("the pending windows are missing".into()))?;
        self.pending = pending.values().iter().copied().collect();
        for _ in 0..state.usize()? {
            let end = state.i64()?;
            let frozen = (0..state.usize()?)
                .map(|_| FrozenGroups::load_state(state, self.calls.len()))
                .collect::<Result<Vec<_>>>()?;
            let live = if state.bool()? {
                let mut live = GroupedAggregates::new(&self.key_schema, &self.calls)?;
                live.load_state(state)?;
                Some(live)
            } else {
                None
            };
            self.slices.insert(end, Slice { frozen, live });
        }
        Ok(())
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self
                .slices
                .values()
                .map(|slice| {
                    slice.frozen.iter().map(FrozenGroups::size).sum::<usize>()
                        + slice.live.as_ref().map_or(0, GroupedAggregates::size)
                })
                .sum(),
            open_windows: self.pending.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, Int64Array};

    use super::*;
    use crate::aggregate::checkpoint_tests::{
        Random, Step, Tally, restore, windowed_aggregation, windowed_input,
    };
    use crate::time::WATERMARK_MAX;

    /// The aggregation of [`windowed_aggregation`].
    fn aggregate(windows: Windows, keyed: bool) -> Result<SlicedWindowAggregate> {
        let (group_by, calls, schema) = windowed_aggregation(keyed)?;
        SlicedWindowAggregate::new(windows, group_by, 0, 1, calls, schema)
    }

    /// Batches of rows roughly in time order, rising watermarks, then `+inf`.
    fn steps(random: &mut Random, windows: Windows) -> Result<Vec<Step>> {
        let Some(Windows::Tumble { size: slice, .. }) = windows.slices() else {
            return Err(EngineError::Input("not sliced windows".into()));
        };
        let mut steps = Vec::new();
        let mut time: Millis = 0;
        let mut watermark: Millis = -1;
        for _ in 0..(4 + random.below(12)) {
            if random.below(3) == 0 {
                watermark = watermark.max(time - random.below(12) as Millis);
                steps.push(Step::Watermark(watermark));
                watermark += 1;
                continue;
            }
            let mut keys = Vec::new();
            let mut values = Vec::new();
            let mut starts = Vec::new();
            for _ in 0..(1 + random.below(8)) {
                time += random.below(4) as Millis;
                let at = time - random.below(15) as Millis;
                keys.push((random.below(8) != 0).then(|| random.below(3) as i64));
                values.push((random.below(8) != 0).then(|| random.below(20) as f64 / 7.0));
                starts.push(at - at.rem_euclid(slice));
            }
            let ends: Vec<Millis> = starts.iter().map(|start| start + slice).collect();
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
            let windows = if seed % 2 == 0 {
                Windows::Hop {
                    slide: 5,
                    size: 15,
                    offset: 0,
                }
            } else {
                Windows::Cumulate {
                    step: 5,
                    size: 20,
                    offset: 0,
                }
            };
            let keyed = seed % 4 != 3;
            let steps = steps(&mut random, windows)?;
            let split = random.below(steps.len() as u64) as usize;
            let outcome = restore(|| aggregate(windows, keyed), &steps, split, true)?;
            tally.add(seed, &outcome);
        }
        tally.check();
        Ok(())
    }
}
