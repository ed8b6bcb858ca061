//! Record batches of text columns: the answers of `SHOW`, `DESCRIBE` and `EXPLAIN`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use crate::Result;

/// A batch of text columns named `headers`.
pub(super) fn text_batch(headers: &[&str], rows: Vec<Vec<String>>) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = (0..headers.len())
        .map(|column| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|row| row[column].as_str()),
            )) as ArrayRef
        })
        .collect();
    text_columns(headers, columns)
}

/// A batch of text `columns` (non-null) named `headers`.
pub(super) fn text_columns(headers: &[&str], columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(
        headers
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(schema, columns)?)
}
