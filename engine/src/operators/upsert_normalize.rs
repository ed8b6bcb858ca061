//! `UpsertNormalize`: the rows of an upsert table (`PRIMARY KEY ... NOT ENFORCED`) as a
//! changelog.
//!
//! - **State**: the latest row of every key, kept as long as its key (a table is never
//!   complete).
//! - **Emits**: at once, for each incoming row in order: `+I` for a new key, `-U` (the key's
//!   previous row) then `+U` (the new one) for a changed row, nothing for a row equal to the
//!   key's current one; a `-D` input removes the key and emits `-D` with its current row, and
//!   a `-U` input is dropped when a `+U` for the same key follows it in the same batch (which
//!   replaces the row), and deletes its key otherwise.
//! - **Watermark**: passed through; it expires nothing.
//! - **Late rows**: normalised like any other row.
//! - **End of input**: nothing more.
//! - **Checkpoint**: the latest row of every key, as columns, by key.

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, UInt8Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};

use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::{Changes, EngineError, Result, RowKind};

pub struct UpsertNormalize {
    /// The key columns.
    key: Vec<usize>,
    schema: SchemaRef,
    keys: RowConverter,
    rows: RowConverter,
    latest: HashMap<OwnedRow, OwnedRow>,
}

impl UpsertNormalize {
    pub fn new(key: Vec<usize>, schema: SchemaRef) -> Result<Self> {
        let field = |column: usize| SortField::new(schema.field(column).data_type().clone());
        Ok(UpsertNormalize {
            keys: RowConverter::new(key.iter().map(|c| field(*c)).collect())?,
            rows: RowConverter::new((0..schema.fields().len()).map(field).collect())?,
            key,
            schema,
            latest: HashMap::new(),
        })
    }
}

impl UpsertNormalize {
    fn delete(&mut self, key: OwnedRow, emitted: &mut Vec<(RowKind, OwnedRow)>) {
        if let Some(previous) = self.latest.remove(&key) {
            emitted.push((RowKind::Delete, previous));
        }
    }
}

impl Operator for UpsertNormalize {
    fn name(&self) -> &str {
        "upsert_normalize"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let batch = &changes.rows;
        let key_columns: Vec<ArrayRef> =
            self.key.iter().map(|c| batch.column(*c).clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let rows = self.rows.convert_columns(batch.columns())?;
        let mut emitted: Vec<(RowKind, OwnedRow)> = Vec::new();
        // A `-U` whose `+U` has not come yet: the key it retracts.
        let mut retracted: Option<OwnedRow> = None;
        for index in 0..batch.num_rows() {
            let key = keys.row(index).owned();
            let row = rows.row(index).owned();
            let kind = changes.kind(index);
            if let Some(pending) = retracted.take()
                && !(kind == RowKind::UpdateAfter && pending == key)
            {
                // The update moved the row to another key: the old key is gone.
                self.delete(pending, &mut emitted);
            }
            match kind {
                RowKind::Delete => self.delete(key, &mut emitted),
                RowKind::UpdateBefore => retracted = Some(key),
                _ => match self.latest.insert(key, row.clone()) {
                    None => emitted.push((RowKind::Insert, row)),
                    Some(previous) if previous != row => {
                        emitted.push((RowKind::UpdateBefore, previous));
                        emitted.push((RowKind::UpdateAfter, row));
                    }
                    Some(_) => {}
                },
            }
        }
        if let Some(pending) = retracted {
            self.delete(pending, &mut emitted);
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let columns = self
            .rows
            .convert_rows(emitted.iter().map(|(_, row)| row.row()))?;
        let options = RecordBatchOptions::new().with_row_count(Some(emitted.len()));
        let rows = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        let kinds = UInt8Array::from_iter_values(emitted.iter().map(|(kind, _)| *kind as u8));
        out.push(Changes {
            rows,
            kinds: Some(kinds),
        });
        Ok(())
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        let mut latest: Vec<(&OwnedRow, &OwnedRow)> = self.latest.iter().collect();
        latest.sort_by(|a, b| a.0.cmp(b.0));
        let columns = self
            .rows
            .convert_rows(latest.iter().map(|(_, row)| row.row()))?;
        state.arrays(&columns, latest.len())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let (columns, rows) = state.arrays()?;
        if rows == 0 {
            return Ok(());
        }
        if columns.len() != self.schema.fields().len() {
            return Err(EngineError::Checkpoint(format!(
                "rows of {} columns saved for a table of {}",
                columns.len(),
                self.schema.fields().len()
            )));
        }
        let key_columns: Vec<ArrayRef> = self.key.iter().map(|c| columns[*c].clone()).collect();
        let keys = self.keys.convert_columns(&key_columns)?;
        let converted = self.rows.convert_columns(&columns)?;
        for index in 0..rows {
            self.latest
                .insert(keys.row(index).owned(), converted.row(index).owned());
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self
                .latest
                .iter()
                .map(|(key, row)| key.as_ref().len() + row.as_ref().len())
                .sum(),
            open_windows: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::aggregate::checkpoint_tests::{Random, Step, Tally, restore};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("value", DataType::Int64, true),
        ]))
    }

    /// Batches of upserts, updates and deletes over a few keys.
    fn steps(random: &mut Random) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        for _ in 0..(4 + random.below(8)) {
            let rows = 1 + random.below(6) as usize;
            let mut ids = Vec::new();
            let mut values = Vec::new();
            let mut kinds = Vec::new();
            for _ in 0..rows {
                ids.push((random.below(6) != 0).then(|| random.below(5) as i64));
                values.push((random.below(8) != 0).then(|| random.below(3) as i64));
                kinds.push(match random.below(10) {
                    0 | 1 => RowKind::Delete,
                    2 => RowKind::UpdateBefore,
                    3 | 4 => RowKind::UpdateAfter,
                    _ => RowKind::Insert,
                } as u8);
            }
            let batch = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(Int64Array::from(values)),
                ],
            )?;
            steps.push(Step::Rows(Changes {
                rows: batch,
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
            let steps = steps(&mut random)?;
            let split = random.below(steps.len() as u64 + 1) as usize;
            let outcome = restore(
                || UpsertNormalize::new(vec![0], schema()),
                &steps,
                split,
                true,
            )?;
            tally.add(seed, &outcome);
        }
        tally.check();
        Ok(())
    }
}
