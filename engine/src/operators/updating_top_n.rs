//! `UpdatingTopN`: `ROW_NUMBER() OVER (PARTITION BY keys ORDER BY ...)` over a stream or a
//! changelog, kept to the first N (`WHERE rownum <= N`): Top-N, and with N = 1 and the time
//! attribute as the order, deduplication. Its result is a changelog of the ranked rows.
//!
//! - **State**: per partition, its rows in rank order (ties in arrival order); over an
//!   append-only input only the first N, which no row can leave for a later one, over a
//!   changelog every row (a retraction can bring a lower-ranked row up).
//! - **Emits**: after each input batch, per partition it changed (in the order the batch
//!   first touched them), the ranks 1..N whose row differs from before the batch, in rank
//!   order: `-U` of the old row and `+U` of the new one at a rank both had, `+I` at a rank
//!   that had none, `-D` at a rank that has none now. Each row carries its rank.
//! - **Watermark**: ignored; a row changes the ranking as it comes, whatever its time.
//! - **Late rows**: none.
//! - **End of input**: nothing more to emit.
//! - **Checkpoint**: the arrival count, and every kept row (by partition, then rank) with
//!   its arrival number, as one batch; keys and order are recomputed on load.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt8Array, UInt64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::operators::OrderKey;
use crate::state::{StateReader, StateWriter};
use crate::{Changes, EngineError, Result, RowKind};

/// A row's place in its partition: its order key (in the row format, so bytes compare as
/// the `ORDER BY` does), then its arrival number.
type Place = (Box<[u8]>, u64);

/// A row kept, as it came (in the row format of all input columns).
type Kept = Box<[u8]>;

pub struct UpdatingTopN {
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    order_by: Vec<OrderKey>,
    limit: usize,
    /// Whether the input is append-only: then only the first N rows of a partition are kept.
    append_only: bool,
    input_schema: SchemaRef,
    /// The input columns, then the rank.
    schema: SchemaRef,
    keys: RowConverter,
    orders: RowConverter,
    rows: RowConverter,
    partitions: HashMap<Box<[u8]>, BTreeMap<Place, Kept>>,
    arrivals: u64,
}

/// What `process` computes of a batch's rows: partition keys, order keys, whole rows.
struct Encoded {
    keys: Option<Rows>,
    orders: Rows,
    rows: Rows,
}

impl UpdatingTopN {
    pub fn new(
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        order_by: Vec<OrderKey>,
        limit: usize,
        append_only: bool,
        input_schema: SchemaRef,
        schema: SchemaRef,
    ) -> Result<Self> {
        let keys = partition_by
            .iter()
            .map(|e| Ok(SortField::new(e.data_type(&input_schema)?)))
            .collect::<Result<Vec<_>>>()?;
        let orders = order_by
            .iter()
            .map(|key| {
                Ok(SortField::new_with_options(
                    key.expression.data_type(&input_schema)?,
                    key.options,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = input_schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(UpdatingTopN {
            partition_by,
            order_by,
            limit,
            append_only,
            keys: RowConverter::new(keys)?,
            orders: RowConverter::new(orders)?,
            rows: RowConverter::new(rows)?,
            input_schema,
            schema,
            partitions: HashMap::new(),
            arrivals: 0,
        })
    }

    fn encode(&self, batch: &RecordBatch) -> Result<Encoded> {
        let count = batch.num_rows();
        let evaluate = |e: &Arc<dyn PhysicalExpr>| -> Result<ArrayRef> {
            Ok(e.evaluate(batch)?.into_array(count)?)
        };
        let keys = if self.partition_by.is_empty() {
            None
        } else {
            let columns = self
                .partition_by
                .iter()
                .map(evaluate)
                .collect::<Result<Vec<_>>>()?;
            Some(self.keys.convert_columns(&columns)?)
        };
        let orders = self
            .order_by
            .iter()
            .map(|key| evaluate(&key.expression))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoded {
            keys,
            orders: self.orders.convert_columns(&orders)?,
            rows: self.rows.convert_columns(batch.columns())?,
        })
    }

    /// The first N rows of a partition, in rank order.
    fn top(&self, key: &[u8]) -> Vec<Kept> {
        self.partitions
            .get(key)
            .map(|ranked| ranked.values().take(self.limit).cloned().collect())
            .unwrap_or_default()
    }

    /// The changes that turn ranking `before` into `after`, rank by rank.
    fn diff(before: &[Kept], after: &[Kept], out: &mut Vec<(RowKind, Kept, u64)>) {
        for rank in 0..before.len().max(after.len()) {
            let number = rank as u64 + 1;
            match (before.get(rank), after.get(rank)) {
                (Some(old), Some(new)) if old != new => {
                    out.push((RowKind::UpdateBefore, old.clone(), number));
                    out.push((RowKind::UpdateAfter, new.clone(), number));
                }
                (Some(old), None) => out.push((RowKind::Delete, old.clone(), number)),
                (None, Some(new)) => out.push((RowKind::Insert, new.clone(), number)),
                _ => {}
            }
        }
    }

    /// Rows in the row format, with their kinds and ranks, as a batch of changes.
    fn output(&self, changes: Vec<(RowKind, Kept, u64)>) -> Result<Changes> {
        let parser = self.rows.parser();
        let mut columns = self
            .rows
            .convert_rows(changes.iter().map(|(_, row, _)| parser.parse(row)))?;
        columns.push(Arc::new(UInt64Array::from_iter_values(
            changes.iter().map(|(_, _, rank)| *rank),
        )));
        let kinds = UInt8Array::from_iter_values(changes.iter().map(|(kind, _, _)| *kind as u8));
        Ok(Changes {
            rows: batch_of(&self.schema, &columns, changes.len())?,
            kinds: Some(kinds),
        })
    }

    /// Takes back the earliest kept row equal to `row` at order `order`, if there is one.
    fn retract(ranked: &mut BTreeMap<Place, Kept>, order: &[u8], row: &[u8]) {
        let from: Place = (order.into(), 0);
        let to: Place = (order.into(), u64::MAX);
        let found = ranked
            .range(from..=to)
            .find(|(_, kept)| kept.as_ref() == row)
            .map(|(place, _)| place.clone());
        if let Some(place) = found {
            ranked.remove(&place);
        }
    }
}

impl Operator for UpdatingTopN {
    fn name(&self) -> &str {
        "top_n"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let encoded = self.encode(&changes.rows)?;
        // Each touched partition's ranking before the batch, in the order first touched.
        let mut before: Vec<(Box<[u8]>, Vec<Kept>)> = Vec::new();
        let mut touched: HashSet<Box<[u8]>> = HashSet::new();
        for index in 0..changes.num_rows() {
            let key: &[u8] = encoded.keys.as_ref().map_or(&[], |k| k.row(index).data());
            if touched.insert(key.into()) {
                before.push((key.into(), self.top(key)));
            }
            let order = encoded.orders.row(index).data();
            let row = encoded.rows.row(index).data();
            let limit = self.limit;
            let append_only = self.append_only;
            let ranked = self.partitions.entry(key.into()).or_default();
            match changes.kind(index) {
                RowKind::Insert | RowKind::UpdateAfter => {
                    ranked.insert((order.into(), self.arrivals), row.into());
                    self.arrivals += 1;
                    if append_only {
                        while ranked.len() > limit {
                            ranked.pop_last();
                        }
                    }
                }
                RowKind::UpdateBefore | RowKind::Delete => Self::retract(ranked, order, row),
                other => {
                    return Err(EngineError::Input(format!(
                        "a {} row cannot be ranked",
                        other.code()
                    )));
                }
            }
        }
        let mut emitted = Vec::new();
        for (key, old) in before {
            let new = self.top(&key);
            Self::diff(&old, &new, &mut emitted);
            if self.partitions.get(&key).is_some_and(BTreeMap::is_empty) {
                self.partitions.remove(&key);
            }
        }
        if !emitted.is_empty() {
            out.push(self.output(emitted)?);
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

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.u64(self.arrivals);
        let mut partitions: Vec<_> = self.partitions.iter().collect();
        partitions.sort_by(|a, b| a.0.cmp(b.0));
        let kept: Vec<(u64, &Kept)> = partitions
            .into_iter()
            .flat_map(|(_, ranked)| ranked.iter().map(|((_, arrival), row)| (*arrival, row)))
            .collect();
        let parser = self.rows.parser();
        let columns = self
            .rows
            .convert_rows(kept.iter().map(|(_, row)| parser.parse(row)))?;
        state.batch(&batch_of(&self.input_schema, &columns, kept.len())?)?;
        let arrivals: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            kept.iter().map(|(arrival, _)| *arrival),
        ));
        state.arrays(&[arrivals], kept.len())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.arrivals = state.u64()?;
        let rows = state.batch(&self.input_schema)?;
        let (arrays, count) = state.arrays()?;
        let arrivals = arrays
            .first()
            .and_then(|a| a.as_any().downcast_ref::<UInt64Array>())
            .filter(|a| a.len() == rows.num_rows() && count == rows.num_rows())
            .ok_or_else(|| EngineError::Checkpoint("Top-N arrival numbers are missing".into()))?;
        let encoded = self.encode(&rows)?;
        for index in 0..rows.num_rows() {
            let key: &[u8] = encoded.keys.as_ref().map_or(&[], |k| k.row(index).data());
            let place = (
                encoded.orders.row(index).data().into(),
                arrivals.value(index),
            );
            self.partitions
                .entry(key.into())
                .or_default()
                .insert(place, encoded.rows.row(index).data().into());
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self
                .partitions
                .iter()
                .map(|(key, ranked)| {
                    key.len()
                        + ranked
                            .iter()
                            .map(|((order, _), row)| order.len() + row.len() + 8)
                            .sum::<usize>()
                })
                .sum(),
            open_windows: self.partitions.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{Int64Array, UInt8Array};
    use datafusion::arrow::compute::SortOptions;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::aggregate::checkpoint_tests::Random;

    fn input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn operator(limit: usize, append_only: bool) -> Result<UpdatingTopN> {
        let mut fields = input().fields().to_vec();
        fields.push(Arc::new(Field::new("rn", DataType::UInt64, false)));
        UpdatingTopN::new(
            vec![Arc::new(Column::new("k", 0))],
            vec![OrderKey {
                expression: Arc::new(Column::new("v", 1)),
                options: SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            }],
            limit,
            append_only,
            input(),
            Arc::new(Schema::new(fields)),
        )
    }

    /// Rows `(k, v)` with kinds.
    fn changes(rows: &[(i64, i64, RowKind)]) -> Result<Changes> {
        Ok(Changes {
            rows: RecordBatch::try_new(
                input(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                ],
            )?,
            kinds: Some(UInt8Array::from_iter_values(rows.iter().map(|r| r.2 as u8))),
        })
    }

    /// The ranking the operator's changes add up to: `(k, v, rank)` present.
    fn fold(out: &[Changes], into: &mut BTreeMap<(i64, i64, u64), i64>) -> Result<()> {
        for changes in out {
            let columns = changes.rows.columns();
            let (Some(k), Some(v), Some(rank)) = (
                columns[0].as_any().downcast_ref::<Int64Array>(),
                columns[1].as_any().downcast_ref::<Int64Array>(),
                columns[2].as_any().downcast_ref::<UInt64Array>(),
            ) else {
                return Err(EngineError::Input("unexpected output columns".into()));
            };
            for row in 0..changes.num_rows() {
                let key = (k.value(row), v.value(row), rank.value(row));
                let count = into.entry(key).or_default();
                *count += match changes.kind(row) {
                    RowKind::Insert | RowKind::UpdateAfter => 1,
                    _ => -1,
                };
                if *count < 0 {
                    return Err(EngineError::Input(format!("took back absent {key:?}")));
                }
                if *count == 0 {
                    into.remove(&key);
                }
            }
        }
        Ok(())
    }

    /// Over random changelogs in random batches, the changes add up to the first N of each
    /// partition's present rows (by `v` descending, ties in arrival order), ranked.
    #[test]
    fn the_changes_add_up_to_the_ranking_of_the_rows_present() -> Result<()> {
        for seed in 0..60u64 {
            let mut random = Random::new(seed);
            let limit = 1 + random.below(3) as usize;
            let append_only = seed % 2 == 0;
            let mut top = operator(limit, append_only)?;
            // Present rows per partition, with their arrival numbers.
            let mut present: BTreeMap<i64, Vec<(i64, u64)>> = BTreeMap::new();
            let mut arrival = 0;
            let mut result = BTreeMap::new();
            for _ in 0..30 {
                let mut rows = Vec::new();
                for _ in 0..1 + random.below(5) {
                    let k = random.below(3) as i64;
                    let v = random.below(6) as i64;
                    let retract = !append_only && random.below(3) == 0;
                    let rows_of = present.entry(k).or_default();
                    if retract {
                        if let Some(at) = rows_of.iter().position(|(value, _)| *value == v) {
                            rows_of.remove(at);
                        }
                        rows.push((k, v, RowKind::Delete));
                    } else {
                        rows_of.push((v, arrival));
                        arrival += 1;
                        rows.push((k, v, RowKind::Insert));
                    }
                }
                let mut out = Vec::new();
                top.process(0, changes(&rows)?, &mut out)?;
                fold(&out, &mut result)?;
                let mut expected = BTreeMap::new();
                for (k, rows_of) in &present {
                    let mut ranked = rows_of.clone();
                    ranked.sort_by_key(|(v, arrival)| (std::cmp::Reverse(*v), *arrival));
                    for (rank, (v, _)) in ranked.iter().take(limit).enumerate() {
                        expected.insert((*k, *v, rank as u64 + 1), 1);
                    }
                }
                assert_eq!(result, expected, "seed {seed}");
            }
        }
        Ok(())
    }
}
