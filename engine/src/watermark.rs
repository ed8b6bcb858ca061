//! Watermark generation for one reader of one stream.
//!
//! The watermark is the running maximum of the stream's declared watermark expression
//! (`WATERMARK FOR ts AS ts - INTERVAL '5' SECOND`) over every row read so far, raised further
//! by explicit watermark marks in the stream (from a test's `watermark` step or from the
//! query feeding a derived stream). It never goes back. It is computed from the rows read, so
//! a reader replaying the stream's history sees the same watermarks at the same places.
//!
//! The watermark applies from row to row, not only between batches: [`WatermarkGenerator::
//! segments`] cuts a batch before each row that is behind the watermark of the rows before
//! it, so that the watermark of those rows takes effect first and the row counts as late
//! exactly when it would have, had the rows arrived one by one. Rows in time order need no
//! cut, so a well-ordered batch stays whole.

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::Result;
use crate::time::millis;
use crate::time::{Millis, WATERMARK_MIN};

#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    /// The event-time column and the watermark expression, for streams with event time.
    event_time: Option<(usize, Arc<dyn PhysicalExpr>)>,
    current: Millis,
}

/// Rows `offset..offset + length` of a batch, and the watermark they raise, if they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub offset: usize,
    pub length: usize,
    pub watermark: Option<Millis>,
}

impl WatermarkGenerator {
    /// A generator for a stream with event-time column `column` and the watermark
    /// `expression`, or for a stream without event time.
    pub fn new(event_time: Option<(usize, Arc<dyn PhysicalExpr>)>) -> Self {
        WatermarkGenerator {
            event_time,
            current: WATERMARK_MIN,
        }
    }

    pub fn current(&self) -> Millis {
        self.current
    }

    /// Reads a batch of complete rows: the segments to process in order, each with the
    /// watermark to raise after it.
    pub fn segments(&mut self, rows: &RecordBatch) -> Result<Vec<Segment>> {
        let whole = |watermark| Segment {
            offset: 0,
            length: rows.num_rows(),
            watermark,
        };
        let Some((column, expression)) = &self.event_time else {
            return Ok(vec![whole(None)]);
        };
        let marks = millis(&expression.evaluate(rows)?.into_array(rows.num_rows())?)?;
        let times = millis(rows.column(*column))?;

        let mut segments = Vec::new();
        let mut offset = 0;
        let mut running = self.current;
        for row in 0..rows.num_rows() {
            if row > offset && !times.is_null(row) && times.value(row) < running {
                segments.push(Segment {
                    offset,
                    length: row - offset,
                    watermark: self.advance(running),
                });
                offset = row;
            }
            if !marks.is_null(row) {
                running = running.max(marks.value(row));
            }
        }
        segments.push(Segment {
            offset,
            length: rows.num_rows() - offset,
            watermark: self.advance(running),
        });
        Ok(segments)
    }

    /// An explicit watermark mark; returns the new watermark if it advanced.
    pub fn advance(&mut self, watermark: Millis) -> Option<Millis> {
        (watermark > self.current).then(|| {
            self.current = watermark;
            watermark
        })
    }
}
