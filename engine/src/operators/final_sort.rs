//! `FinalSort`: any `ORDER BY` (with `LIMIT`/`OFFSET`) over inputs that end (`sluice run`
//! over files): the query's final rows, sorted, at end of input.
//!
//! - **State**: the rows the query's result holds so far, each with how many times it is
//!   there (a changelog's retractions take rows back) and when it first came.
//! - **Emits**: nothing until end of input; then every row still there as `+I`, in `ORDER
//!   BY` order (ties in order of first arrival), after skipping `OFFSET` rows and up to the
//!   `LIMIT`.
//! - **Watermark**: ignored.
//! - **Late rows**: none.
//! - **End of input**: emits the sorted rows.
//! - **Checkpoint**: the rows there (in order of first arrival, as one batch) with their
//!   counts and arrival numbers, and the arrival count.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::operators::OrderKey;
use crate::state::{StateReader, StateWriter};
use crate::{Changes, EngineError, Result, RowKind};

/// A row of the result: how many times it is there, and its first arrival.
#[derive(Debug, Clone, Copy)]
struct Held {
    count: u64,
    arrival: u64,
}

pub struct FinalSort {
    order_by: Vec<OrderKey>,
    skip: usize,
    fetch: Option<usize>,
    schema: SchemaRef,
    rows: RowConverter,
    held: HashMap<Box<[u8]>, Held>,
    arrivals: u64,
}

impl FinalSort {
    pub fn new(
        order_by: Vec<OrderKey>,
        skip: usize,
        fetch: Option<usize>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(FinalSort {
            order_by,
            skip,
            fetch,
            rows: RowConverter::new(fields)?,
            schema,
            held: HashMap::new(),
            arrivals: 0,
        })
    }

    /// The rows held, each as often as it is there, in order of first arrival, with their
    /// counts and arrival numbers.
    fn held_rows(&self) -> Result<(RecordBatch, Vec<Held>)> {
        let mut held: Vec<(&Box<[u8]>, &Held)> = self.held.iter().collect();
        held.sort_by_key(|(_, h)| h.arrival);
        let parser = self.rows.parser();
        let columns = self
            .rows
            .convert_rows(held.iter().map(|(row, _)| parser.parse(row)))?;
        let batch = batch_of(&self.schema, &columns, held.len())?;
        Ok((batch, held.into_iter().map(|(_, h)| *h).collect()))
    }
}

impl Operator for FinalSort {
    fn name(&self) -> &str {
        "final_sort"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, _out: &mut Vec<Changes>) -> Result<()> {
        let rows = self.rows.convert_columns(changes.rows.columns())?;
        for index in 0..changes.num_rows() {
            let row = rows.row(index);
            match changes.kind(index) {
                RowKind::Insert | RowKind::UpdateAfter => {
                    let arrival = self.arrivals;
                    self.arrivals += 1;
                    self.held
                        .entry(row.data().into())
                        .or_insert(Held { count: 0, arrival })
                        .count += 1;
                }
                RowKind::UpdateBefore | RowKind::Delete => {
                    if let Some(held) = self.held.get_mut(row.data()) {
                        held.count -= 1;
                        if held.count == 0 {
                            self.held.remove(row.data());
                        }
                    }
                }
                other => {
                    return Err(EngineError::Input(format!(
                        "a {} row cannot be sorted",
                        other.code()
                    )));
                }
            }
        }
        Ok(())
    }

    fn on_end_of_input(&mut self, out: &mut Vec<Changes>) -> Result<()> {
        let (rows, held) = self.held_rows()?;
        // Each row as often as it is there.
        let repeated = UInt32Array::from_iter_values(
            held.iter()
                .enumerate()
                .flat_map(|(index, h)| std::iter::repeat_n(index as u32, h.count as usize)),
        );
        let rows = take_record_batch(&rows, &repeated)?;
        let count = rows.num_rows();
        let mut sort = Vec::with_capacity(self.order_by.len() + 1);
        for key in &self.order_by {
            sort.push(SortColumn {
                values: key.expression.evaluate(&rows)?.into_array(count)?,
                options: Some(key.options),
            });
        }
        sort.push(SortColumn {
            values: Arc::new(UInt32Array::from_iter_values(0..count as u32)),
            options: None,
        });
        let order = lexsort_to_indices(&sort, None)?;
        let end = self
            .fetch
            .map_or(count, |fetch| self.skip.saturating_add(fetch).min(count));
        let start = self.skip.min(end);
        let order = order.slice(start, end - start);
        self.held.clear();
        if order.is_empty() {
            return Ok(());
        }
        out.push(Changes::inserts(take_record_batch(&rows, &order)?));
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.order_by
            .iter()
            .map(|key| Arc::clone(&key.expression))
            .collect()
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.u64(self.arrivals);
        let (rows, held) = self.held_rows()?;
        state.batch(&rows)?;
        let counts: ArrayRef =
            Arc::new(UInt64Array::from_iter_values(held.iter().map(|h| h.count)));
        let arrivals: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            held.iter().map(|h| h.arrival),
        ));
        state.arrays(&[counts, arrivals], held.len())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.arrivals = state.u64()?;
        let rows = state.batch(&self.schema)?;
        let (arrays, count) = state.arrays()?;
        let column = |index: usize| {
            arrays
                .get(index)
                .and_then(|a| a.as_any().downcast_ref::<UInt64Array>())
                .filter(|a| a.len() == rows.num_rows() && count == rows.num_rows())
                .ok_or_else(|| EngineError::Checkpoint("sorted rows' counts are missing".into()))
        };
        let (counts, arrivals) = (column(0)?, column(1)?);
        let converted = self.rows.convert_columns(rows.columns())?;
        for index in 0..rows.num_rows() {
            self.held.insert(
                converted.row(index).data().into(),
                Held {
                    count: counts.value(index),
                    arrival: arrivals.value(index),
                },
            );
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self.held.keys().map(|row| row.len() + 16).sum(),
            open_windows: 0,
        }
    }
}
