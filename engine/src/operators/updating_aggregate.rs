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
//! - **Checkpoint**: per group (by key), its key, accumulator states, row count and the
//!   result last emitted, each as columns over every group.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, UInt8Array, UInt32Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::PhysicalExpr;

use crate::aggregate::{AggregateCall, inputs_of, load_accumulators, save_accumulators};
use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::{Changes, EngineError, Result, RowKind};

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

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        let mut groups: Vec<(&Box<[u8]>, &mut Group)> = self.groups.iter_mut().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        let count = groups.len();
        state.usize(count);
        let parser = self.keys.parser();
        let keys = self
            .keys
            .convert_rows(groups.iter().map(|(key, _)| parser.parse(key)))?;
        state.arrays(&keys, count)?;
        let rows: ArrayRef = Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|(_, group)| group.rows),
        ));
        state.arrays(&[rows], count)?;
        for (index, call) in self.calls.iter().enumerate() {
            save_accumulators(
                groups
                    .iter_mut()
                    .map(|(_, group)| &mut group.accumulators[index]),
                || call.accumulator(self.retracting),
                state,
            )?;
        }
        // Every kept group has emitted its result: one that has none is dropped.
        let mut emitted = Vec::with_capacity(self.calls.len());
        for index in 0..self.calls.len() {
            let values = groups
                .iter()
                .map(|(_, group)| {
                    group
                        .emitted
                        .as_ref()
                        .map(|values| values[index].clone())
                        .ok_or_else(|| {
                            EngineError::Checkpoint("a group has no result to save".into())
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            if count > 0 {
                emitted.push(ScalarValue::iter_to_array(values)?);
            }
        }
        state.arrays(&emitted, count)
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let count = state.usize()?;
        let (keys, _) = state.arrays()?;
        if count > 0 && keys.len() != self.group_by.len() {
            return Err(EngineError::Checkpoint(format!(
                "groups saved with {} key columns, expected {}",
                keys.len(),
                self.group_by.len()
            )));
        }
        let key_rows = if self.group_by.is_empty() || count == 0 {
            None
        } else {
            Some(self.keys.convert_columns(&keys)?)
        };
        let (rows, _) = state.arrays()?;
        let rows = rows
            .first()
            .and_then(|rows| rows.as_any().downcast_ref::<Int64Array>())
            .filter(|rows| rows.len() == count)
            .ok_or_else(|| EngineError::Checkpoint("row counts of groups are missing".into()))?
            .clone();
        let mut accumulators = Vec::with_capacity(self.calls.len());
        for call in &self.calls {
            accumulators.push(
                load_accumulators(count, || call.accumulator(self.retracting), state)?.into_iter(),
            );
        }
        let (emitted, _) = state.arrays()?;
        if count > 0 && emitted.len() != self.calls.len() {
            return Err(EngineError::Checkpoint(format!(
                "results of {} aggregate calls saved, expected {}",
                emitted.len(),
                self.calls.len()
            )));
        }
        for index in 0..count {
            let key: Box<[u8]> = key_rows
                .as_ref()
                .map_or(&[] as &[u8], |keys| keys.row(index).data())
                .into();
            let group = Group {
                accumulators: accumulators
                    .iter_mut()
                    .map(|accumulators| accumulators.next())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| EngineError::Checkpoint("an accumulator is missing".into()))?,
                rows: rows.value(index),
                emitted: Some(
                    emitted
                        .iter()
                        .map(|column| ScalarValue::try_from_array(column, index))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            self.groups.insert(key, group);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Float64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::max_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::aggregate::checkpoint_tests::{Random, Step, Tally, function, restore};

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, true),
            Field::new("value", DataType::Float64, true),
        ]))
    }

    /// `SELECT key, SUM(value), COUNT(value), MAX(value), AVG(value) ... GROUP BY key`, or
    /// without the key.
    fn aggregate(keyed: bool, retracting: bool) -> Result<UpdatingAggregate> {
        let input = input();
        let calls = [sum_udaf(), count_udaf(), max_udaf(), avg_udaf()]
            .into_iter()
            .map(|udaf| {
                Ok(AggregateCall {
                    function: function(udaf, 1, &input, false)?,
                    filter: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut fields = Vec::new();
        let mut group_by: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        if keyed {
            fields.push(input.field(0).clone());
            group_by.push(Arc::new(Column::new("key", 0)));
        }
        fields.extend(
            calls
                .iter()
                .map(|call| call.function.field().as_ref().clone()),
        );
        UpdatingAggregate::new(group_by, calls, retracting, Arc::new(Schema::new(fields)))
    }

    /// Batches of inserts and, when `retracting`, of updates and deletes of rows inserted
    /// before (a changelog only takes back what it gave).
    fn steps(random: &mut Random, retracting: bool) -> Result<Vec<Step>> {
        let mut live: Vec<(Option<i64>, Option<f64>)> = Vec::new();
        let mut steps = Vec::new();
        for _ in 0..(3 + random.below(8)) {
            let mut keys = Vec::new();
            let mut values = Vec::new();
            let mut kinds = Vec::new();
            for _ in 0..(1 + random.below(8)) {
                let fresh = (
                    (random.below(8) != 0).then(|| random.below(4) as i64),
                    (random.below(8) != 0).then(|| random.below(100) as f64 / 7.0),
                );
                let choice = random.below(3);
                if retracting && choice > 0 && !live.is_empty() {
                    let old = live.swap_remove(random.below(live.len() as u64) as usize);
                    keys.push(old.0);
                    values.push(old.1);
                    if choice == 1 {
                        kinds.push(RowKind::Delete as u8);
                        continue;
                    }
                    kinds.push(RowKind::UpdateBefore as u8);
                    kinds.push(RowKind::UpdateAfter as u8);
                } else {
                    kinds.push(RowKind::Insert as u8);
                }
                keys.push(fresh.0);
                values.push(fresh.1);
                live.push(fresh);
            }
            let rows = RecordBatch::try_new(
                input(),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Float64Array::from(values)),
                ],
            )?;
            steps.push(Step::Rows(Changes {
                rows,
                kinds: Some(UInt8Array::from(kinds)),
            }));
        }
        Ok(steps)
    }

    #[test]
    fn a_restored_operator_goes_on_as_the_one_that_saved() -> Result<()> {
        let mut tally = Tally::default();
        for seed in 0..50 {
            let mut random = Random::new(seed);
            let keyed = seed % 4 != 3;
            let retracting = seed % 2 == 0;
            let steps = steps(&mut random, retracting)?;
            let split = random.below(steps.len() as u64 + 1) as usize;
            let outcome = restore(|| aggregate(keyed, retracting), &steps, split, !retracting)?;
            tally.add(seed, &outcome);
        }
        tally.check();
        Ok(())
    }
}
