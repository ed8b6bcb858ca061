//! `WindowTopN`: `ROW_NUMBER()`, `RANK()` or `DENSE_RANK()` `OVER (PARTITION BY
//! window_start, window_end [, keys] ORDER BY ...)` over windowed rows, usually kept to the
//! first N (window Top-N, and with N = 1 window deduplication).
//!
//! - **State**: the rows of every open window (by `window_end`); with a limit N, once a
//!   window holds more than twice the rows it kept after its last pruning (and at least
//!   1024), it keeps only the rows ranked within N of their partition.
//! - **Emits**: when the watermark reaches a window's end, its rows ranked within N (all rows
//!   without a limit) with the rank appended, partitions in key order and each partition in
//!   rank order (ties in arrival order).
//! - **Watermark**: fires and drops the windows it reaches.
//! - **Late rows**: a row whose window has already fired (or that has no window) goes to the
//!   late side output.
//! - **End of input**: the `+inf` watermark before it has fired every window.
//! - **Checkpoint**: the watermark, and per open window its buffered rows (in arrival order,
//!   as one batch) and the row count at which it prunes next.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::millis;
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, Result};

/// Which rank the operator numbers rows with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    RowNumber,
    Rank,
    DenseRank,
}

/// What to rank by, and how many ranks to keep (all without a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopN {
    pub ranking: Ranking,
    pub limit: Option<usize>,
}

/// One `ORDER BY` key.
#[derive(Debug, Clone)]
pub struct OrderKey {
    pub expression: Arc<dyn PhysicalExpr>,
    pub options: SortOptions,
}

/// One open window's buffered rows.
struct Buffered {
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Prune again once `rows` reaches this.
    prune_at: usize,
}

pub struct WindowTopN {
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    order_by: Vec<OrderKey>,
    /// The input column holding `window_end`.
    window_end: usize,
    top: TopN,
    input_schema: SchemaRef,
    /// The input columns, then the rank.
    schema: SchemaRef,
    windows: BTreeMap<Millis, Buffered>,
    watermark: Millis,
    late: Vec<Changes>,
}

const MIN_PRUNE_ROWS: usize = 1024;

impl WindowTopN {
    /// `window_end` is the input column holding the window's end.
    pub fn new(
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        order_by: Vec<OrderKey>,
        window_end: usize,
        top: TopN,
        input_schema: SchemaRef,
        schema: SchemaRef,
    ) -> Self {
        WindowTopN {
            partition_by,
            order_by,
            window_end,
            top,
            input_schema,
            schema,
            windows: BTreeMap::new(),
            watermark: WATERMARK_MIN,
            late: Vec::new(),
        }
    }

    /// The rows of `batch` ranked within the limit, in output order, with their ranks.
    fn ranked(&self, batch: &RecordBatch) -> Result<(UInt32Array, Vec<u64>)> {
        let rows = batch.num_rows();
        let evaluate = |expression: &Arc<dyn PhysicalExpr>| -> Result<ArrayRef> {
            Ok(expression.evaluate(batch)?.into_array(rows)?)
        };
        let partitions = self
            .partition_by
            .iter()
            .map(evaluate)
            .collect::<Result<Vec<_>>>()?;
        let orders = self
            .order_by
            .iter()
            .map(|key| evaluate(&key.expression))
            .collect::<Result<Vec<_>>>()?;
        let mut sort: Vec<SortColumn> = partitions
            .iter()
            .map(|values| SortColumn {
                values: values.clone(),
                options: None,
            })
            .collect();
        sort.extend(
            orders
                .iter()
                .zip(&self.order_by)
                .map(|(values, key)| SortColumn {
                    values: values.clone(),
                    options: Some(key.options),
                }),
        );
        sort.push(SortColumn {
            values: Arc::new(UInt32Array::from_iter_values(0..rows as u32)),
            options: None,
        });
        let sorted = lexsort_to_indices(&sort, None)?;

        let fields = |arrays: &[ArrayRef]| {
            arrays
                .iter()
                .map(|a| SortField::new(a.data_type().clone()))
                .collect::<Vec<_>>()
        };
        let partition_rows =
            RowConverter::new(fields(&partitions))?.convert_columns(&partitions)?;
        // Without ORDER BY every row of a partition ties.
        let order_rows = if orders.is_empty() {
            None
        } else {
            Some(RowConverter::new(fields(&orders))?.convert_columns(&orders)?)
        };

        let mut kept = Vec::new();
        let mut ranks = Vec::new();
        let (mut number, mut rank, mut dense) = (0u64, 0u64, 0u64);
        let mut previous: Option<usize> = None;
        for index in sorted.values().iter().map(|i| *i as usize) {
            let same_partition =
                previous.is_some_and(|p| partition_rows.row(p) == partition_rows.row(index));
            if same_partition {
                number += 1;
                let tie = match (&order_rows, previous) {
                    (Some(order), Some(p)) => order.row(p) == order.row(index),
                    _ => true,
                };
                if !tie {
                    rank = number;
                    dense += 1;
                }
            } else {
                (number, rank, dense) = (1, 1, 1);
            }
            previous = Some(index);
            let value = match self.top.ranking {
                Ranking::RowNumber => number,
                Ranking::Rank => rank,
                Ranking::DenseRank => dense,
            };
            if self.top.limit.is_none_or(|limit| value <= limit as u64) {
                kept.push(index as u32);
                ranks.push(value);
            }
        }
        Ok((UInt32Array::from(kept), ranks))
    }

    fn fire(&self, buffered: Buffered, out: &mut Vec<Changes>) -> Result<()> {
        let rows = concat_batches(&self.input_schema, &buffered.batches)?;
        let (kept, ranks) = self.ranked(&rows)?;
        if kept.is_empty() {
            return Ok(());
        }
        let mut columns = take_record_batch(&rows, &kept)?.columns().to_vec();
        let rank_type = self.schema.field(columns.len()).data_type();
        columns.push(cast(&UInt64Array::from(ranks), rank_type)?);
        out.push(Changes::inserts(RecordBatch::try_new(
            self.schema.clone(),
            columns,
        )?));
        Ok(())
    }

    /// Keeps only the rows that can still rank within the limit, in arrival order.
    fn prune(&self, buffered: &mut Buffered) -> Result<()> {
        let rows = concat_batches(&self.input_schema, &buffered.batches)?;
        let (kept, _) = self.ranked(&rows)?;
        let mut kept: Vec<u32> = kept.values().to_vec();
        kept.sort_unstable();
        let rows = take_record_batch(&rows, &UInt32Array::from(kept))?;
        buffered.rows = rows.num_rows();
        buffered.prune_at = (2 * buffered.rows).max(MIN_PRUNE_ROWS);
        buffered.batches = vec![rows];
        Ok(())
    }
}

impl Operator for WindowTopN {
    fn name(&self) -> &str {
        "window_top_n"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, _out: &mut Vec<Changes>) -> Result<()> {
        let ends = millis(changes.rows.column(self.window_end))?;
        let mut by_window: BTreeMap<Millis, Vec<bool>> = BTreeMap::new();
        let mut late = vec![false; ends.len()];
        for (row, is_late) in late.iter_mut().enumerate() {
            if ends.is_null(row) || ends.value(row) <= self.watermark {
                *is_late = true;
            } else {
                by_window
                    .entry(ends.value(row))
                    .or_insert_with(|| vec![false; ends.len()])[row] = true;
            }
        }
        self.late.extend(changes.late_rows(&late)?);
        let whole = by_window.len() == 1;
        for (end, mask) in by_window {
            let rows = if whole && mask.iter().all(|m| *m) {
                changes.rows.clone()
            } else {
                changes.filter(&BooleanArray::from(mask))?.rows
            };
            let mut buffered = self.windows.remove(&end).unwrap_or(Buffered {
                batches: Vec::new(),
                rows: 0,
                prune_at: MIN_PRUNE_ROWS,
            });
            buffered.rows += rows.num_rows();
            buffered.batches.push(rows);
            if self.top.limit.is_some() && buffered.rows >= buffered.prune_at {
                self.prune(&mut buffered)?;
            }
            self.windows.insert(end, buffered);
        }
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.partition_by
            .iter()
            .cloned()
            .chain(self.order_by.iter().map(|key| Arc::clone(&key.expression)))
            .collect()
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        let open = self.windows.split_off(&watermark.saturating_add(1));
        for (_, buffered) in std::mem::replace(&mut self.windows, open) {
            self.fire(buffered, out)?;
        }
        Ok(())
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        state.usize(self.windows.len());
        for (end, buffered) in &self.windows {
            state.i64(*end);
            state.usize(buffered.prune_at);
            state.batch(&concat_batches(&self.input_schema, &buffered.batches)?)?;
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        for _ in 0..state.usize()? {
            let end = state.i64()?;
            let prune_at = state.usize()?;
            let rows = state.batch(&self.input_schema)?;
            let buffered = Buffered {
                rows: rows.num_rows(),
                batches: vec![rows],
                prune_at,
            };
            self.windows.insert(end, buffered);
        }
        Ok(())
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self
                .windows
                .values()
                .flat_map(|b| &b.batches)
                .map(RecordBatch::get_array_memory_size)
                .sum(),
            open_windows: self.windows.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::checkpoint_tests::{Random, Step, Tally, restore};
    use crate::time::WATERMARK_MAX;
    use datafusion::arrow::array::{AsArray, Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::compute::filter_record_batch;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::Column;

    /// `key`, `price`, `window_end`; then the rank.
    fn schemas() -> (SchemaRef, SchemaRef) {
        let fields = vec![
            Field::new("key", DataType::Int64, false),
            Field::new("price", DataType::Int64, false),
            Field::new(
                "window_end",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ];
        let input = Arc::new(Schema::new(fields.clone()));
        let mut with_rank = fields;
        with_rank.push(Field::new("rownum", DataType::UInt64, false));
        (input, Arc::new(Schema::new(with_rank)))
    }

    fn top(limit: Option<usize>) -> WindowTopN {
        ranked(Ranking::RowNumber, limit)
    }

    fn ranked(ranking: Ranking, limit: Option<usize>) -> WindowTopN {
        let (input, output) = schemas();
        WindowTopN::new(
            vec![
                Arc::new(Column::new("window_end", 2)),
                Arc::new(Column::new("key", 0)),
            ],
            vec![OrderKey {
                expression: Arc::new(Column::new("price", 1)),
                options: SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            }],
            2,
            TopN { ranking, limit },
            input,
            output,
        )
    }

    fn run(operator: &mut WindowTopN, batches: &[RecordBatch]) -> Result<RecordBatch> {
        let mut out = Vec::new();
        for batch in batches {
            operator.process(0, Changes::inserts(batch.clone()), &mut out)?;
        }
        operator.on_watermark(i64::MAX, &mut out)?;
        let rows: Vec<RecordBatch> = out.into_iter().map(|c| c.rows).collect();
        Ok(concat_batches(&operator.schema(), &rows)?)
    }

    #[test]
    fn pruning_to_the_limit_keeps_the_same_top_rows() -> Result<()> {
        let (input, _) = schemas();
        let mut state = 42u64;
        let batches: Vec<RecordBatch> = (0..20)
            .map(|_| {
                let mut keys = Vec::new();
                let mut prices = Vec::new();
                for _ in 0..500 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    keys.push((state % 7) as i64);
                    prices.push((state >> 8) as i64 % 1000);
                }
                RecordBatch::try_new(
                    input.clone(),
                    vec![
                        Arc::new(Int64Array::from(keys)),
                        Arc::new(Int64Array::from(prices)),
                        Arc::new(TimestampMillisecondArray::from(vec![1000; 500])),
                    ],
                )
            })
            .collect::<Result<_, _>>()?;
        let limited = run(&mut top(Some(3)), &batches)?;
        let all = run(&mut top(None), &batches)?;
        let ranks = all
            .column(3)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        let mask = BooleanArray::from_iter(ranks.iter().map(|r| r.map(|r| r <= 3)));
        assert_eq!(limited, filter_record_batch(&all, &mask)?);
        assert_eq!(limited.num_rows(), 7 * 3);
        Ok(())
    }

    /// Batches of rows for windows ending every 10 ms, some large enough to prune, rising
    /// watermarks, then `+inf`.
    fn steps(random: &mut Random) -> Result<Vec<Step>> {
        let (input, _) = schemas();
        let mut steps = Vec::new();
        let mut time: Millis = 0;
        let mut watermark: Millis = -1;
        for _ in 0..(4 + random.below(10)) {
            if random.below(3) == 0 {
                watermark = watermark.max(time - random.below(25) as Millis);
                steps.push(Step::Watermark(watermark));
                watermark += 1;
                continue;
            }
            let rows = if random.below(3) == 0 {
                300 + random.below(400) as usize
            } else {
                1 + random.below(8) as usize
            };
            let mut keys = Vec::new();
            let mut prices = Vec::new();
            let mut ends = Vec::new();
            for _ in 0..rows {
                time += i64::from(random.below(80) == 0);
                let at = time - random.below(15) as Millis;
                keys.push(random.below(3) as i64);
                prices.push(random.below(6) as i64);
                ends.push(at - at.rem_euclid(10) + 10);
            }
            let batch = RecordBatch::try_new(
                input.clone(),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Int64Array::from(prices)),
                    Arc::new(TimestampMillisecondArray::from(ends)),
                ],
            )?;
            steps.push(Step::Rows(Changes::inserts(batch)));
        }
        steps.push(Step::Watermark(WATERMARK_MAX));
        Ok(steps)
    }

    #[test]
    fn a_restored_operator_goes_on_as_the_one_that_saved() -> Result<()> {
        let mut tally = Tally::default();
        for seed in 0..50 {
            let mut random = Random::new(seed);
            let ranking =
                [Ranking::RowNumber, Ranking::Rank, Ranking::DenseRank][seed as usize % 3];
            let limit = (seed % 4 != 3).then_some(1 + seed as usize % 3);
            let steps = steps(&mut random)?;
            let split = random.below(steps.len() as u64) as usize;
            let outcome = restore(|| Ok(ranked(ranking, limit)), &steps, split, true)?;
            tally.add(seed, &outcome);
        }
        tally.check();
        Ok(())
    }
}
