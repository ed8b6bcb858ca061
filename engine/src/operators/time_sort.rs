//! `TimeSort`: `ORDER BY` the event-time attribute ascending (then further keys) over a
//! stream: rows come out in that order as the watermark passes them.
//!
//! - **State**: the rows the watermark has not passed yet, as they came.
//! - **Emits**: when the watermark passes rows, those rows as they came (`+I`), ordered by
//!   time, then the further `ORDER BY` keys, then arrival.
//! - **Watermark**: releases the rows before it.
//! - **Late rows**: a row behind the watermark when it comes (or with a NULL time) goes to
//!   the late side output: the rows of its time have already been released.
//! - **End of input**: the `+inf` watermark before it has released every row.
//! - **Checkpoint**: the watermark and the rows waiting, in arrival order, as one batch.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::operator::{Operator, OperatorMetrics};
use crate::operators::OrderKey;
use crate::state::{StateReader, StateWriter};
use crate::time::{Millis, WATERMARK_MIN, millis};
use crate::{Changes, Result};

pub struct TimeSort {
    time_column: usize,
    /// The `ORDER BY` keys after the time.
    then_by: Vec<OrderKey>,
    schema: SchemaRef,
    waiting: Option<RecordBatch>,
    watermark: Millis,
    late: Vec<Changes>,
}

impl TimeSort {
    pub fn new(time_column: usize, then_by: Vec<OrderKey>, schema: SchemaRef) -> Self {
        TimeSort {
            time_column,
            then_by,
            schema,
            waiting: None,
            watermark: WATERMARK_MIN,
            late: Vec::new(),
        }
    }

    /// `rows` in output order.
    fn sorted(&self, rows: &RecordBatch) -> Result<RecordBatch> {
        let count = rows.num_rows();
        let mut sort = vec![SortColumn {
            values: rows.column(self.time_column).clone(),
            options: None,
        }];
        for key in &self.then_by {
            sort.push(SortColumn {
                values: key.expression.evaluate(rows)?.into_array(count)?,
                options: Some(key.options),
            });
        }
        sort.push(SortColumn {
            values: Arc::new(UInt32Array::from_iter_values(0..count as u32)),
            options: None,
        });
        let order = lexsort_to_indices(&sort, None)?;
        Ok(take_record_batch(rows, &order)?)
    }
}

impl Operator for TimeSort {
    fn name(&self) -> &str {
        "time_sort"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, _out: &mut Vec<Changes>) -> Result<()> {
        let times = millis(changes.rows.column(self.time_column))?;
        let late: Vec<bool> = times
            .iter()
            .map(|t| t.is_none_or(|t| t < self.watermark))
            .collect();
        self.late.extend(changes.late_rows(&late)?);
        let on_time = BooleanArray::from_iter(late.iter().map(|l| Some(!l)));
        let rows = filter_record_batch(&changes.rows, &on_time)?;
        self.waiting = Some(match self.waiting.take() {
            Some(waiting) => concat_batches(&self.schema, [&waiting, &rows])?,
            None => rows,
        });
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        let Some(waiting) = self.waiting.take() else {
            return Ok(());
        };
        let times = millis(waiting.column(self.time_column))?;
        let ready =
            BooleanArray::from_iter(times.iter().map(|t| Some(t.is_some_and(|t| t < watermark))));
        let released = filter_record_batch(&waiting, &ready)?;
        let kept = filter_record_batch(&waiting, &datafusion::arrow::compute::not(&ready)?)?;
        if kept.num_rows() > 0 {
            self.waiting = Some(kept);
        }
        if released.num_rows() > 0 {
            out.push(Changes::inserts(self.sorted(&released)?));
        }
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.then_by
            .iter()
            .map(|key| Arc::clone(&key.expression))
            .collect()
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        let empty = RecordBatch::new_empty(self.schema.clone());
        state.batch(self.waiting.as_ref().unwrap_or(&empty))
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        let waiting = state.batch(&self.schema)?;
        self.waiting = (waiting.num_rows() > 0).then_some(waiting);
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self
                .waiting
                .as_ref()
                .map_or(0, RecordBatch::get_array_memory_size),
            open_windows: 0,
        }
    }
}
