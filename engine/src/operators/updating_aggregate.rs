//! `UpdatingAggregate`: `GROUP BY keys` without a window, and `SELECT DISTINCT`.
//!
//! - **State**: per distinct key, one DataFusion row accumulator per aggregate call (one that
//!   can take rows back when the input is itself a changelog), the number of rows counted,
//!   and the result last emitted; it lives as long as its group.
//! - **Emits**: after each input batch, for every group the batch changed, in the order the
//!   batch first touched them: `+I` for a new group, `-U` (the row emitted before) then `+U`
//!   (the new row) for a changed result, `-D` when a group's last row is taken back; nothing
//!   when the result is unchanged.
//! - **Watermark**: passed through; results are never final, so it changes nothing and
//!   expires nothing.
//! - **Late rows**: aggregated like any other row.
//! - **End of input**: nothing more.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt8Array, UInt32Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use crate::aggregate::{AggregateCall, inputs_of};
use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::{Changes, Result, RowKind};

struct Group {
    accumulators: Vec<Box<dyn Accumulator>>,
    rows: i64,
    emitted: Option<Vec<ScalarValue>>,
}

/// The rows of one batch that belong to one group.
#[derive(Default)]
struct Touched {
    added: Vec<u32>,
    removed: Vec<u32>,
}

pub struct UpdatingAggregate {
    group_by: Vec<Arc<dyn PhysicalExpr>>,
    calls: Vec<AggregateCall>,
    /// Whether the input carries retractions (`-U`, `-D`).
    retracting: bool,
    schema: SchemaRef,
    keys: RowConverter,
    groups: HashMap<Box<[u8]>, Group>,
}

impl UpdatingAggregate {
    pub fn new(
        group_by: Vec<Arc<dyn PhysicalExpr>>,
        calls: Vec<AggregateCall>,
        retracting: bool,
        schema: SchemaRef,
    ) -> Result<Self> {
        let fields = schema.fields()[..group_by.len()]
            .iter()
            .map(|field| SortField::new(field.data_type().clone()))
            .collect();
        // Fail now, not on the first row, when a function cannot take rows back.
        for call in &calls {
            call.accumulator(retracting)?;
        }
        Ok(UpdatingAggregate {
            group_by,
            calls,
            retracting,
            schema,
            keys: RowConverter::new(fields)?,
            groups: HashMap::new(),
        })
    }

    fn new_group(&self) -> Result<Group> {
        Ok(Group {
            accumulators: self
                .calls
                .iter()
                .map(|call| call.accumulator(self.retracting))
                .collect::<Result<Vec<_>>>()?,
            rows: 0,
            emitted: None,
        })
    }

    /// Builds the output batch for `(kind, key, values)` rows.
    fn output(&self, changes: Vec<(RowKind, Box<[u8]>, Vec<ScalarValue>)>) -> Result<Changes> {
        let parser = self.keys.parser();
        let mut columns = self
            .keys
            .convert_rows(changes.iter().map(|(_, key, _)| parser.parse(key)))?;
        for call in 0..self.calls.len() {
            let values = changes.iter().map(|(_, _, values)| values[call].clone());
            columns.push(ScalarValue::iter_to_array(values)?);
        }
        let rows = batch_of(&self.schema, &columns, changes.len())?;
        let kinds = UInt8Array::from_iter_values(changes.iter().map(|(kind, _, _)| *kind as u8));
        Ok(Changes {
            rows,
            kinds: Some(kinds),
        })
    }
}

impl Operator for UpdatingAggregate {
    fn name(&self) -> &str {
        "updating_aggregate"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let batch = &changes.rows;
        let rows = batch.num_rows();
        let keys = self
            .group_by
            .iter()
            .map(|expression| expression.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let key_rows = if keys.is_empty() {
            None
        } else {
            Some(self.keys.convert_columns(&keys)?)
        };

        // Rows by group, in the order the batch first touches each group.
        let mut order: Vec<Box<[u8]>> = Vec::new();
        let mut touched: HashMap<Box<[u8]>, Touched> = HashMap::new();
        for row in 0..rows {
            let key: &[u8] = key_rows.as_ref().map_or(&[], |k| k.row(row).data());
            let entry = match touched.get_mut(key) {
                Some(entry) => entry,
                None => {
                    order.push(key.into());
                    touched.entry(key.into()).or_default()
                }
            };
            match changes.kind(row) {
                RowKind::Insert | RowKind::UpdateAfter | RowKind::Expired | RowKind::Timeout => {
                    entry.added.push(row as u32)
                }
                RowKind::UpdateBefore | RowKind::Delete => entry.removed.push(row as u32),
                RowKind::Late => {}
            }
        }

        let inputs = self
            .calls
            .iter()
            .map(|call| call.input(batch))
            .collect::<Result<Vec<_>>>()?;
        let mut emitted = Vec::new();
        for key in order {
            let Some(rows_of_group) = touched.remove(&key) else {
                continue;
            };
            let mut group = match self.groups.remove(&key) {
                Some(group) => group,
                None => self.new_group()?,
            };
            let added = UInt32Array::from(rows_of_group.added);
            let removed = UInt32Array::from(rows_of_group.removed);
            for (accumulator, input) in group.accumulators.iter_mut().zip(&inputs) {
                if !added.is_empty() {
                    accumulator.update_batch(&input.filtered(&added)?)?;
                }
                if !removed.is_empty() {
                    accumulator.retract_batch(&input.filtered(&removed)?)?;
                }
            }
            group.rows += added.len() as i64 - removed.len() as i64;
            if group.rows <= 0 {
                if let Some(before) = group.emitted {
                    emitted.push((RowKind::Delete, key, before));
                }
                continue;
            }
            let after = group
                .accumulators
                .iter_mut()
                .map(|accumulator| accumulator.evaluate())
                .collect::<Result<Vec<_>, _>>()?;
            match group.emitted.take() {
                None => emitted.push((RowKind::Insert, key.clone(), after.clone())),
                Some(before) if before != after => {
                    emitted.push((RowKind::UpdateBefore, key.clone(), before));
                    emitted.push((RowKind::UpdateAfter, key.clone(), after.clone()));
                }
                Some(_) => {}
            }
            group.emitted = Some(after);
            self.groups.insert(key, group);
        }
        if !emitted.is_empty() {
            out.push(self.output(emitted)?);
        }
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        inputs_of(&self.group_by, &self.calls)
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self
                .groups
                .iter()
                .map(|(key, group)| {
                    key.len()
                        + group
                            .accumulators
                            .iter()
                            .map(|accumulator| accumulator.size())
                            .sum::<usize>()
                })
                .sum(),
            open_windows: 0,
        }
    }
}
