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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{SortColumn, take_record_batch};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, lexsort_to_indices};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use crate::operator::{Operator, OperatorMetrics};
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
            call.function.create_sliding_accumulator().map_err(|_| {
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
        })
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
                let accumulator = if call.frame.slides() {
                    call.function.create_sliding_accumulator()?
                } else {
                    call.function.create_accumulator()?
                };
                Ok(Framed {
                    accumulator,
                    rows: VecDeque::new(),
                })
            })
            .collect()
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

    fn process(&mut self, _input: usize, changes: Changes, _out: &mut Vec<Changes>) -> Result<()> {
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
