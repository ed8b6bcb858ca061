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

use datafusion::arrow::array::{Array, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

use crate::Result;
use crate::time::millis;
use crate::time::{Millis, WATERMARK_MIN};

#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    /// The event-time column and the watermark expression, for streams with event time.
    event_time: Option<(usize, Arc<dyn PhysicalExpr>)>,
    /// With the usual `ts - INTERVAL '...'` over the event-time column: the interval in
    /// milliseconds, so that the marks are computed without evaluating the expression.
    delay: Option<Millis>,
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
        let delay = event_time
            .as_ref()
            .and_then(|(column, expression)| fixed_delay(*column, expression.as_ref()));
        WatermarkGenerator {
            event_time,
            delay,
            current: WATERMARK_MIN,
        }
    }

    /// The watermark expression's value for each row: the event time less the fixed delay
    /// where there is one (and no time overflows), else the expression evaluated.
    fn marks(&self, rows: &RecordBatch) -> Result<TimestampMillisecondArray> {
        let Some((column, expression)) = &self.event_time else {
            return Ok(TimestampMillisecondArray::from(Vec::<i64>::new()));
        };
        let times = rows.column(*column);
        if let Some(delay) = self.delay
            && times.data_type() == &DataType::Timestamp(TimeUnit::Millisecond, None)
        {
            let times = millis(times)?;
            if let Ok(marks) = times.try_unary::<_, _, ()>(|t| t.checked_sub(delay).ok_or(())) {
                return Ok(marks);
            }
        }
        millis(&expression.evaluate(rows)?.into_array(rows.num_rows())?)
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
        let Some((column, _)) = &self.event_time else {
            return Ok(vec![whole(None)]);
        };
        let marks = self.marks(rows)?;
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

/// The delay in milliseconds when `expression` is `column - INTERVAL` with an interval of
/// whole milliseconds and no months or days (whose length depends on the date).
fn fixed_delay(column: usize, expression: &dyn PhysicalExpr) -> Option<Millis> {
    let binary = expression.downcast_ref::<BinaryExpr>()?;
    let left = binary.left().downcast_ref::<Column>()?;
    let right = binary.right().downcast_ref::<Literal>()?;
    if *binary.op() != Operator::Minus || left.index() != column {
        return None;
    }
    match right.value() {
        ScalarValue::IntervalMonthDayNano(Some(interval))
            if interval.months == 0
                && interval.days == 0
                && interval.nanoseconds % 1_000_000 == 0 =>
        {
            Some(interval.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(interval)) if interval.days == 0 => {
            Some(Millis::from(interval.milliseconds))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::ArrayRef;
    use datafusion::arrow::datatypes::IntervalMonthDayNano;
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn ts_less(interval: IntervalMonthDayNano) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(
            Arc::new(Column::new("ts", 0)),
            Operator::Minus,
            Arc::new(Literal::new(ScalarValue::IntervalMonthDayNano(Some(
                interval,
            )))),
        ))
    }

    #[test]
    fn a_fixed_delay_gives_the_expressions_watermarks() {
        let four_seconds = ts_less(IntervalMonthDayNano::new(0, 0, 4_000_000_000));
        assert_eq!(fixed_delay(0, four_seconds.as_ref()), Some(4_000));
        assert_eq!(fixed_delay(1, four_seconds.as_ref()), None);
        let one_day = ts_less(IntervalMonthDayNano::new(0, 1, 0));
        assert_eq!(fixed_delay(0, one_day.as_ref()), None);

        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]));
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(10_000),
            Some(9_000),
            None,
            Some(5_000),
            Some(12_000),
            Some(i64::MIN + 1),
        ]));
        let rows = RecordBatch::try_new(schema, vec![times]).map_err(crate::EngineError::from);
        let Ok(rows) = rows else {
            panic!("a batch of times");
        };
        let mut fast = WatermarkGenerator::new(Some((0, four_seconds.clone())));
        let mut evaluated = WatermarkGenerator {
            delay: None,
            ..fast.clone()
        };
        assert_eq!(fast.delay, Some(4_000));
        // The last time overflows with the delay: both fall back to the expression's error.
        assert_eq!(
            fast.segments(&rows).map_err(|e| e.to_string()),
            evaluated.segments(&rows).map_err(|e| e.to_string())
        );
        let in_range = rows.slice(0, 5);
        let segments = fast.segments(&in_range).map_err(|e| e.to_string());
        assert_eq!(
            segments,
            evaluated.segments(&in_range).map_err(|e| e.to_string())
        );
        assert_eq!(fast.current(), 8_000);
        assert_eq!(
            segments.map(|s| s.iter().map(|s| s.watermark).collect::<Vec<_>>()),
            Ok(vec![Some(6_000), Some(8_000)])
        );
    }
}
