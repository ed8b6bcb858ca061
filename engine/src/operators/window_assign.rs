//! `WindowAssign`: the window table functions `TUMBLE`, `HOP` and `CUMULATE`.
//!
//! - **State**: none.
//! - **Emits**: for each incoming row, at once, one row per window its event time falls in,
//!   with `window_start`, `window_end` and `window_time` (`window_end` minus 1 ms, the new
//!   event-time attribute) appended; rows come out in input order, each row's windows by
//!   ascending start. A row whose event time is NULL belongs to no window: it comes out once,
//!   with NULL window columns, and window operators send it to the late side output.
//! - **Watermark**: passed through; nothing to expire.
//! - **Late rows**: assigned like any other row (aggregations downstream decide what is
//!   late).
//! - **End of input**: nothing more.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::operator::Operator;
use crate::time::millis;
use crate::window::Windows;
use crate::{Changes, Result};

pub struct WindowAssign {
    windows: Windows,
    /// The input column holding event time.
    time_column: usize,
    /// Input columns, then `window_start`, `window_end`, `window_time`.
    schema: SchemaRef,
}

impl WindowAssign {
    pub fn new(windows: Windows, time_column: usize, schema: SchemaRef) -> Self {
        WindowAssign {
            windows,
            time_column,
            schema,
        }
    }
}

impl Operator for WindowAssign {
    fn keeps_state(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        "window_assign"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let times = millis(changes.rows.column(self.time_column))?;
        let mut rows = Vec::with_capacity(times.len());
        let mut starts = Vec::with_capacity(times.len());
        let mut ends = Vec::with_capacity(times.len());
        let mut windows = Vec::new();
        for row in 0..times.len() {
            if times.is_null(row) {
                // No window: NULL bounds, which window operators treat as late.
                rows.push(row as u32);
                starts.push(None);
                ends.push(None);
                continue;
            }
            windows.clear();
            self.windows.assign(times.value(row), &mut windows);
            for &(start, end) in &windows {
                rows.push(row as u32);
                starts.push(Some(start));
                ends.push(Some(end));
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(rows);
        let mut columns = changes
            .rows
            .columns()
            .iter()
            .map(|column| take(column.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        let zone = match self.schema.field(columns.len()).data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let window_times = ends
            .iter()
            .map(|end| end.map(|end| end - 1))
            .collect::<Vec<_>>();
        for values in [starts, ends, window_times] {
            let array = TimestampMillisecondArray::from(values).with_timezone_opt(zone.clone());
            columns.push(Arc::new(array) as ArrayRef);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        let kinds = match &changes.kinds {
            Some(kinds) => take(kinds, &indices, None)?
                .as_any()
                .downcast_ref()
                .cloned(),
            None => None,
        };
        out.push(Changes { rows: batch, kinds });
        Ok(())
    }
}
