//! `OverAggregate`: aggregates `OVER (PARTITION BY ... ORDER BY time <frame>)`, one output row
//! per input row.
//!
//! - **State**: rows not yet complete (at or after the watermark), and per partition and
//!   aggregate call a DataFusion accumulator with the argument values of the rows in its
//!   frame (for frames that slide, so they can be taken back).
//! - **Emits**: when the watermark passes a row's time, the row with its aggregate values
//!   appended; rows leave in time order (ties in arrival order). `RANGE` frames count every
//!   row of the same time as the current row; `ROWS` frames count rows in that order.
//! - **Watermark**: emits the rows before it, and drops a partition whose every bounded
//!   `RANGE` frame has slid past all of its rows.
//! - **Late rows**: a row whose time is already behind the watermark on arrival (or NULL)
//!   goes to the late side output.
//! - **End of input**: the `+inf` watermark before it has emitted every row.
//! - **In arrival order** (`ORDER BY` a processing-time attribute): each batch is emitted as
//!   it comes, its rows in arrival order; rows with the same processing time are peers of a
//!   `RANGE` frame. Nothing is late and the watermark changes nothing.
//! - **Checkpoint**: the watermark, the rows not yet emitted, and per partition (by key) and
//!   call the time and arguments of the rows in a sliding frame and the accumulator's state;
//!   a sliding accumulator whose state cannot take rows back (MIN, MAX, DISTINCT, ...) is
//!   rebuilt on load by feeding it its frame's rows again instead.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{SortColumn, take_record_batch};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, lexsort_to_indices};
use datafusion::arrow::datatypes::{
    DataType, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use crate::aggregate::{load_accumulators, save_accumulators};
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, EngineError, Result};

/// Which rows before the current one a call aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`.
    Rows(usize),
    /// `RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW`, in milliseconds.
    Range(Millis),
    /// `... BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (ROWS or RANGE).
    Unbounded { rows: bool },
}

impl Frame {
    fn slides(self) -> bool {
        !matches!(self, Frame::Unbounded { .. })
    }

    fn counts_peers(self) -> bool {
        matches!(self, Frame::Range(_) | Frame::Unbounded { rows: false })
    }
}

/// One aggregate `OVER` a frame.
#[derive(Debug, Clone)]
pub struct OverCall {
    pub function: Arc<AggregateFunctionExpr>,
    pub frame: Frame,
}

impl OverCall {
    /// A fresh accumulator for the call's frame.
    fn accumulator(&self) -> Result<Box<dyn Accumulator>> {
        Ok(if self.frame.slides() {
            crate::retract::sliding_accumulator(&self.function)?
        } else {
            self.function.create_accumulator()?
        })
    }

    /// Whether a checkpoint restores the call's accumulator from its state: always for a
    /// frame that only grows; for a sliding frame only where merging the state gives an
    /// accumulator that takes rows back as the original does (DataFusion's sliding MIN, MAX
    /// and DISTINCT accumulators hand over less than they keep; the variances and covariances
    /// are sluice's, `sql/src/variance.rs` and `sql/src/covariance.rs`), otherwise the frame's rows are fed again.
    fn restored_from_state(&self) -> bool {
        if !self.frame.slides() {
            return true;
        }
        let name = self.function.fun().name().to_ascii_lowercase();
        !self.function.is_distinct()
            && matches!(
                name.as_str(),
                "sum"
                    | "checked_sum"
                    | "count"
                    | "avg"
                    | "mean"
                    | "var"
                    | "var_pop"
                    | "stddev"
                    | "stddev_pop"
                    | "covar_samp"
                    | "covar_pop"
            )
    }
}

/// One call's state in one partition.
struct Framed {
    accumulator: Box<dyn Accumulator>,
    /// Time and argument values of the rows in the frame, oldest first (sliding frames only).
    rows: VecDeque<(Millis, Vec<ScalarValue>)>,
}

pub struct OverAggregate {
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    time_column: usize,
    calls: Vec<OverCall>,
    /// The input columns, then one column per call.
    schema: SchemaRef,
    keys: RowConverter,
    partitions: HashMap<Box<[u8]>, Vec<Framed>>,
    pending: Option<RecordBatch>,
    watermark: Millis,
    late: Vec<Changes>,
    /// Rows are aggregated as they come, in arrival order, rather than in event-time order.
    arrival_order: bool,
}

impl OverAggregate {
    pub fn new(
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        partition_types: Vec<DataType>,
        time_column: usize,
        calls: Vec<OverCall>,
        schema: SchemaRef,
    ) -> Result<Self> {
        for call in calls.iter().filter(|call| call.frame.slides()) {
            crate::retract::sliding_accumulator(&call.function).map_err(|_| {
                EngineError::Input(format!(
                    "{} cannot take back rows, so it cannot aggregate over a sliding frame",
                    call.function.name()
                ))
            })?;
        }
        let keys = RowConverter::new(partition_types.into_iter().map(SortField::new).collect())?;
        Ok(OverAggregate {
            partition_by,
            time_column,
            calls,
            schema,
            keys,
            partitions: HashMap::new(),
            pending: None,
            watermark: WATERMARK_MIN,
            late: Vec::new(),
            arrival_order: false,
        })
    }

    /// Orders rows by arrival: `time_column` is then a processing-time attribute.
    pub fn in_arrival_order(mut self) -> Self {
        self.arrival_order = true;
        self
    }

    fn times(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        Ok(cast(
            batch.column(self.time_column),
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )?)
    }

    fn new_partition(&self) -> Result<Vec<Framed>> {
        self.calls
            .iter()
            .map(|call| {
                Ok(Framed {
                    accumulator: call.accumulator()?,
                    rows: VecDeque::new(),
                })
            })
            .collect()
    }

    /// The schema of the input rows: the output's without the calls' columns.
    fn input_schema(&self) -> SchemaRef {
        let fields = self.schema.fields();
        let columns = fields.len().saturating_sub(self.calls.len());
        Arc::new(Schema::new(fields[..columns].to_vec()))
    }

    /// Computes the aggregates of `ready` (rows sorted by time) and emits them.
    fn emit(&mut self, ready: RecordBatch, out: &mut Vec<Changes>) -> Result<()> {
        let rows = ready.num_rows();
        let times = self.times(&ready)?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let keys = self
            .partition_by
            .iter()
            .map(|expression| expression.evaluate(&ready)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let key_rows = if keys.is_empty() {
            None
        } else {
            Some(self.keys.convert_columns(&keys)?)
        };
        let arguments = self
            .calls
            .iter()
            .map(|call| {
                call.function
                    .expressions()
                    .iter()
                    .map(|expression| expression.evaluate(&ready)?.into_array(rows))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(rows); self.calls.len()];
        for column in &mut values {
            column.resize(rows, ScalarValue::Null);
        }

        let mut run_start = 0;
        while run_start < rows {
            let time = times.value(run_start);
            let mut run_end = run_start + 1;
            while run_end < rows && times.value(run_end) == time {
                run_end += 1;
            }
            // Rows of the same time, by partition in first-seen order.
            let mut run_partitions: Vec<(Box<[u8]>, Vec<usize>)> = Vec::new();
            for row in run_start..run_end {
                let key: &[u8] = key_rows.as_ref().map_or(&[], |k| k.row(row).data());
                match run_partitions.iter_mut().find(|(k, _)| k.as_ref() == key) {
                    Some((_, members)) => members.push(row),
                    None => run_partitions.push((key.into(), vec![row])),
                }
            }
            for (key, members) in run_partitions {
                let mut partition = match self.partitions.remove(&key) {
                    Some(partition) => partition,
                    None => self.new_partition()?,
                };
                for (call, (framed, call_arguments)) in
                    partition.iter_mut().zip(&arguments).enumerate()
                {
                    let frame = self.calls[call].frame;
                    for &row in &members {
                        let slices: Vec<ArrayRef> =
                            call_arguments.iter().map(|a| a.slice(row, 1)).collect();
                        framed.accumulator.update_batch(&slices)?;
                        if frame.slides() {
                            let scalars = slices
                                .iter()
                                .map(|a| ScalarValue::try_from_array(a, 0))
                                .collect::<Result<Vec<_>, _>>()?;
                            framed.rows.push_back((time, scalars));
                        }
                        if let Frame::Rows(preceding) = frame {
                            while framed.rows.len() > preceding + 1 {
                                retract_oldest(framed)?;
                            }
                        }
                        if !frame.counts_peers() {
                            values[call][row] = framed.accumulator.evaluate()?;
                        }
                    }
                    if let Frame::Range(range) = frame {
                        while framed
                            .rows
                            .front()
                            .is_some_and(|(t, _)| *t < time.saturating_sub(range))
                        {
                            retract_oldest(framed)?;
                        }
                    }
                    if frame.counts_peers() {
                        let value = framed.accumulator.evaluate()?;
                        for &row in &members {
                            values[call][row] = value.clone();
                        }
                    }
                }
                self.partitions.insert(key, partition);
            }
            run_start = run_end;
        }

        let mut columns = ready.columns().to_vec();
        for (column, field) in values
            .into_iter()
            .zip(&self.schema.fields()[ready.num_columns()..])
        {
            columns.push(cast(
                &ScalarValue::iter_to_array(column)?,
                field.data_type(),
            )?);
        }
        out.push(Changes::inserts(RecordBatch::try_new(
            self.schema.clone(),
            columns,
        )?));
        Ok(())
    }
}

fn retract_oldest(framed: &mut Framed) -> Result<()> {
    if let Some((_, scalars)) = framed.rows.pop_front() {
        let arrays = scalars
            .iter()
            .map(|s| s.to_array_of_size(1))
            .collect::<Result<Vec<_>, _>>()?;
        framed.accumulator.retract_batch(&arrays)?;
    }
    Ok(())
}

impl Operator for OverAggregate {
    fn name(&self) -> &str {
        "over_aggregate"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        if self.arrival_order {
            return match changes.rows.num_rows() {
                0 => Ok(()),
                _ => self.emit(changes.rows, out),
            };
        }
        let times = self.times(&changes.rows)?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let late: Vec<bool> = (0..times.len())
            .map(|row| times.is_null(row) || times.value(row) < self.watermark)
            .collect();
        self.late.extend(changes.late_rows(&late)?);
        let on_time = BooleanArray::from_iter(late.iter().map(|l| Some(!l)));
        let rows = filter_record_batch(&changes.rows, &on_time)?;
        self.pending = Some(match self.pending.take() {
            Some(pending) => concat_batches(&pending.schema(), [&pending, &rows])?,
            None => rows,
        });
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.partition_by
            .iter()
            .cloned()
            .chain(
                self.calls
                    .iter()
                    .flat_map(|call| call.function.expressions()),
            )
            .collect()
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        if let Some(pending) = self.pending.take() {
            let times = self.times(&pending)?;
            let ready_mask = BooleanArray::from_iter(
                times
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .map(|t| Some(t.is_some_and(|t| t < watermark))),
            );
            let ready = filter_record_batch(&pending, &ready_mask)?;
            let waiting = filter_record_batch(
                &pending,
                &BooleanArray::from_iter(ready_mask.iter().map(|r| r.map(|r| !r))),
            )?;
            if waiting.num_rows() > 0 {
                self.pending = Some(waiting);
            }
            if ready.num_rows() > 0 {
                let order = UInt32Array::from_iter_values(0..ready.num_rows() as u32);
                let sort = [
                    SortColumn {
                        values: self.times(&ready)?,
                        options: None,
                    },
                    SortColumn {
                        values: Arc::new(order),
                        options: None,
                    },
                ];
                let sorted = take_record_batch(&ready, &lexsort_to_indices(&sort, None)?)?;
                self.emit(sorted, out)?;
            }
        }
        // Partitions whose bounded RANGE frames hold only rows the watermark has left behind
        // can never contribute again.
        if self
            .calls
            .iter()
            .all(|call| matches!(call.frame, Frame::Range(_)))
        {
            let calls = &self.calls;
            self.partitions.retain(|_, partition| {
                partition.iter().zip(calls).any(|(framed, call)| {
                    let Frame::Range(range) = call.frame else {
                        return true;
                    };
                    framed
                        .rows
                        .back()
                        .is_some_and(|(t, _)| *t >= watermark.saturating_sub(range))
                })
            });
        }
        Ok(())
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        match &self.pending {
            Some(pending) => {
                state.bool(true);
                state.batch(pending)?;
            }
            None => state.bool(false),
        }
        let mut partitions: Vec<(&Box<[u8]>, &mut Vec<Framed>)> =
            self.partitions.iter_mut().collect();
        partitions.sort_by(|a, b| a.0.cmp(b.0));
        let count = partitions.len();
        state.usize(count);
        let parser = self.keys.parser();
        let keys = self
            .keys
            .convert_rows(partitions.iter().map(|(key, _)| parser.parse(key)))?;
        state.arrays(&keys, count)?;
        for (index, call) in self.calls.iter().enumerate() {
            if call.frame.slides() {
                // The frames' rows, one after the other, and how many each has.
                let lengths: ArrayRef = Arc::new(UInt64Array::from_iter_values(
                    partitions
                        .iter()
                        .map(|(_, partition)| partition[index].rows.len() as u64),
                ));
                state.arrays(&[lengths], count)?;
                let rows: Vec<&(Millis, Vec<ScalarValue>)> = partitions
                    .iter()
                    .flat_map(|(_, partition)| &partition[index].rows)
                    .collect();
                let mut columns: Vec<ArrayRef> = Vec::new();
                if !rows.is_empty() {
                    columns.push(Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|(time, _)| *time),
                    )));
                    let arguments = rows.first().map_or(0, |(_, values)| values.len());
                    for argument in 0..arguments {
                        columns.push(ScalarValue::iter_to_array(
                            rows.iter().map(|(_, values)| values[argument].clone()),
                        )?);
                    }
                }
                state.arrays(&columns, rows.len())?;
            }
            if call.restored_from_state() {
                save_accumulators(
                    partitions
                        .iter_mut()
                        .map(|(_, partition)| &mut partition[index].accumulator),
                    || call.accumulator(),
                    state,
                )?;
            }
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        self.pending = if state.bool()? {
            Some(state.batch(&self.input_schema())?)
        } else {
            None
        };
        let count = state.usize()?;
        let (keys, _) = state.arrays()?;
        if count > 0 && keys.len() != self.partition_by.len() {
            return Err(EngineError::Checkpoint(format!(
                "partitions saved with {} key columns, expected {}",
                keys.len(),
                self.partition_by.len()
            )));
        }
        let key_rows = if self.partition_by.is_empty() || count == 0 {
            None
        } else {
            Some(self.keys.convert_columns(&keys)?)
        };
        let mut partitions: Vec<Vec<Framed>> = (0..count).map(|_| Vec::new()).collect();
        for call in &self.calls {
            let mut frames: Vec<VecDeque<(Millis, Vec<ScalarValue>)>> =
                (0..count).map(|_| VecDeque::new()).collect();
            let mut fed: Vec<Option<Vec<ArrayRef>>> = (0..count).map(|_| None).collect();
            if call.frame.slides() {
                let (lengths, _) = state.arrays()?;
                let lengths = lengths
                    .first()
                    .and_then(|lengths| lengths.as_any().downcast_ref::<UInt64Array>())
                    .filter(|lengths| lengths.len() == count)
                    .ok_or_else(|| {
                        EngineError::Checkpoint("the lengths of frames are missing".into())
                    })?
                    .clone();
                let (columns, rows) = state.arrays()?;
                let arguments = call.function.expressions().len();
                if rows > 0 && columns.len() != 1 + arguments {
                    return Err(EngineError::Checkpoint(format!(
                        "frame rows of {} columns, expected {}",
                        columns.len(),
                        1 + arguments
                    )));
                }
                let times = match columns.first() {
                    Some(times) => {
                        times.as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
                            EngineError::Checkpoint("frame times are not integers".into())
                        })?
                    }
                    None => &Int64Array::from(Vec::<i64>::new()),
                };
                let mut offset = 0;
                for (partition, length) in lengths.values().iter().enumerate() {
                    let length = *length as usize;
                    if offset + length > rows {
                        return Err(EngineError::Checkpoint(
                            "frames hold more rows than were saved".into(),
                        ));
                    }
                    for row in offset..offset + length {
                        let values = columns[1..]
                            .iter()
                            .map(|column| ScalarValue::try_from_array(column, row))
                            .collect::<Result<Vec<_>, _>>()?;
                        frames[partition].push_back((times.value(row), values));
                    }
                    if length > 0 {
                        fed[partition] = Some(
                            columns[1..]
                                .iter()
                                .map(|column| column.slice(offset, length))
                                .collect(),
                        );
                    }
                    offset += length;
                }
            }
            let accumulators = if call.restored_from_state() {
                load_accumulators(count, || call.accumulator(), state)?
            } else {
                fed.into_iter()
                    .map(|rows| {
                        let mut accumulator = call.accumulator()?;
                        if let Some(rows) = rows {
                            accumulator.update_batch(&rows)?;
                        }
                        Ok(accumulator)
                    })
                    .collect::<Result<Vec<_>>>()?
            };
            for ((partition, accumulator), rows) in
                partitions.iter_mut().zip(accumulators).zip(frames)
            {
                partition.push(Framed { accumulator, rows });
            }
        }
        for (index, partition) in partitions.into_iter().enumerate() {
            let key: Box<[u8]> = key_rows
                .as_ref()
                .map_or(&[] as &[u8], |keys| keys.row(index).data())
                .into();
            self.partitions.insert(key, partition);
        }
        Ok(())
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn metrics(&self) -> OperatorMetrics {
        let framed: usize = self
            .partitions
            .iter()
            .map(|(key, partition)| {
                key.len()
                    + partition
                        .iter()
                        .map(|f| f.accumulator.size() + f.rows.len() * 16)
                        .sum::<usize>()
            })
            .sum();
        OperatorMetrics {
            state_bytes: framed
                + self
                    .pending
                    .as_ref()
                    .map_or(0, RecordBatch::get_array_memory_size),
            open_windows: self.partitions.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::aggregate::checkpoint_tests::{Random, Step, Tally, function, restore};
    use crate::time::WATERMARK_MAX;

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, true),
            Field::new("value", DataType::Float64, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    /// Aggregates of `value` over sliding and growing frames, `PARTITION BY key` or not; or
    /// only over `RANGE` frames, whose partitions expire.
    fn over(keyed: bool, only_ranges: bool) -> Result<OverAggregate> {
        let input = input();
        let frames = if only_ranges {
            vec![
                (sum_udaf(), false, Frame::Range(10)),
                (max_udaf(), false, Frame::Range(5)),
                (count_udaf(), true, Frame::Range(20)),
            ]
        } else {
            vec![
                (sum_udaf(), false, Frame::Range(10)),
                (min_udaf(), false, Frame::Range(10)),
                (max_udaf(), false, Frame::Rows(2)),
                (avg_udaf(), false, Frame::Rows(3)),
                (count_udaf(), true, Frame::Rows(4)),
                (sum_udaf(), false, Frame::Unbounded { rows: false }),
                (max_udaf(), false, Frame::Unbounded { rows: true }),
            ]
        };
        let calls = frames
            .into_iter()
            .map(|(udaf, distinct, frame)| {
                Ok(OverCall {
                    function: function(udaf, 1, &input, distinct)?,
                    frame,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(
            calls
                .iter()
                .map(|call| call.function.field().as_ref().clone()),
        );
        let (partition_by, partition_types): (Vec<Arc<dyn PhysicalExpr>>, _) = if keyed {
            (vec![Arc::new(Column::new("key", 0))], vec![DataType::Int64])
        } else {
            (Vec::new(), Vec::new())
        };
        OverAggregate::new(
            partition_by,
            partition_types,
            2,
            calls,
            Arc::new(Schema::new(fields)),
        )
    }

    /// Batches of rows roughly in time order, rising watermarks, then `+inf`.
    fn steps(random: &mut Random) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        let mut time: Millis = 0;
        let mut watermark: Millis = -1;
        for _ in 0..(4 + random.below(12)) {
            if random.below(3) == 0 {
                watermark = watermark.max(time - random.below(10) as Millis);
                steps.push(Step::Watermark(watermark));
                watermark += 1;
                continue;
            }
            let mut keys = Vec::new();
            let mut values = Vec::new();
            let mut times = Vec::new();
            for _ in 0..(1 + random.below(8)) {
                time += random.below(4) as Millis;
                keys.push((random.below(8) != 0).then(|| random.below(3) as i64));
                values.push((random.below(8) != 0).then(|| random.below(20) as f64 / 7.0));
                times.push(time - random.below(10) as Millis);
            }
            let rows = RecordBatch::try_new(
                input(),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Float64Array::from(values)),
                    Arc::new(TimestampMillisecondArray::from(times)),
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
            let only_ranges = seed % 3 == 1;
            let steps = steps(&mut random)?;
            let split = random.below(steps.len() as u64) as usize;
            let outcome = restore(|| over(keyed, only_ranges), &steps, split, true)?;
            tally.add(seed, &outcome);
        }
        tally.check();
        Ok(())
    }
}
