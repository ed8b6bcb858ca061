//! Watermark generation for one reader of one stream.
//!
//! The watermark is the running maximum of the stream's declared watermark expression
//! (`WATERMARK FOR ts AS ts - INTERVAL '5' SECOND`) over every row read so far, raised further
//! by explicit watermark marks in the log (from a test's `watermark` step or from the query
//! feeding a derived stream). It never goes back. It is computed from the rows read, so a
//! reader replaying the same log sees the same watermarks at the same places.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::{cast, max};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::Result;
use crate::time::{Millis, WATERMARK_MIN};

#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    expression: Option<Arc<dyn PhysicalExpr>>,
    current: Millis,
}

impl WatermarkGenerator {
    /// A generator for a stream with the watermark `expression`, or without event time.
    pub fn new(expression: Option<Arc<dyn PhysicalExpr>>) -> Self {
        WatermarkGenerator {
            expression,
            current: WATERMARK_MIN,
        }
    }

    pub fn current(&self) -> Millis {
        self.current
    }

    /// Reads a batch of complete rows; returns the new watermark if it advanced.
    pub fn observe(&mut self, rows: &RecordBatch) -> Result<Option<Millis>> {
        let Some(expression) = &self.expression else {
            return Ok(None);
        };
        let values = expression.evaluate(rows)?.into_array(rows.num_rows())?;
        let millis = cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        match max(millis.as_primitive::<TimestampMillisecondType>()) {
            Some(candidate) => Ok(self.advance(candidate)),
            None => Ok(None),
        }
    }

    /// An explicit watermark mark; returns the new watermark if it advanced.
    pub fn advance(&mut self, watermark: Millis) -> Option<Millis> {
        (watermark > self.current).then(|| {
            self.current = watermark;
            watermark
        })
    }
}
