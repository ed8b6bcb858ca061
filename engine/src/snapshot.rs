//! The current contents of a changelog stream (a materialized view): every row present,
//! kept up to date as changes are appended.
//!
//! Inserts, update-afters, and the expired rows of outer joins and timed-out matches add a
//! row; update-befores and deletes remove one occurrence of an equal row (a removal of a row that is not present changes nothing). Rows are kept in
//! the order of their encoded values, so a snapshot lists them in a stable order.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};

use crate::{Changes, Result, RowKind};

pub struct Snapshot {
    schema: SchemaRef,
    rows: RowConverter,
    /// Each present row and how many times it is present.
    present: BTreeMap<OwnedRow, usize>,
}

impl Snapshot {
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Snapshot {
            rows: RowConverter::new(fields)?,
            schema,
            present: BTreeMap::new(),
        })
    }

    /// Applies appended changes (rows of the snapshot's schema).
    pub fn apply(&mut self, changes: &Changes) -> Result<()> {
        let rows = self.rows.convert_columns(changes.rows.columns())?;
        for (index, row) in rows.iter().enumerate() {
            match changes.kind(index) {
                RowKind::Insert | RowKind::UpdateAfter | RowKind::Expired | RowKind::Timeout => {
                    *self.present.entry(row.owned()).or_default() += 1;
                }
                RowKind::UpdateBefore | RowKind::Delete => {
                    let row = row.owned();
                    if let Some(count) = self.present.get_mut(&row) {
                        *count -= 1;
                        if *count == 0 {
                            self.present.remove(&row);
                        }
                    }
                }
                RowKind::Late => {}
            }
        }
        Ok(())
    }

    /// Every present row, as often as it is present.
    pub fn rows(&self) -> Result<RecordBatch> {
        let rows = self
            .present
            .iter()
            .flat_map(|(row, count)| std::iter::repeat_n(row.row(), *count));
        let columns = self.rows.convert_rows(rows)?;
        let count = self.present.values().sum();
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Bytes held by the present rows.
    pub fn bytes(&self) -> usize {
        self.present.keys().map(|row| row.as_ref().len() + 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, Int64Array, UInt8Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    #[test]
    fn keeps_what_the_changes_leave() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let mut snapshot = Snapshot::new(schema.clone())?;
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![3, 1, 3, 1, 2, 9]))],
        )?;
        let kinds = [
            RowKind::Insert,
            RowKind::Insert,
            RowKind::Insert,
            RowKind::UpdateBefore,
            RowKind::UpdateAfter,
            RowKind::Delete,
        ];
        snapshot.apply(&Changes {
            rows: batch,
            kinds: Some(UInt8Array::from_iter_values(kinds.map(|k| k as u8))),
        })?;
        let rows = snapshot.rows()?;
        let values: Vec<i64> = rows.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(values, vec![2, 3, 3]);
        Ok(())
    }
}
