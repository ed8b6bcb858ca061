//! Changes as log records: the rows, and their change kinds in a column of their own when
//! not all inserts.

use datafusion::arrow::array::{ArrayRef, AsArray, UInt8Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt8Type};
use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::{Changes, EngineError};

/// The column a log record of changes keeps their kinds in.
const KINDS_COLUMN: &str = "__op";

/// `changes` as a batch to log: its rows, and its kinds in [`KINDS_COLUMN`] when not all
/// inserts.
pub(super) fn with_kinds(changes: &Changes) -> Result<RecordBatch, EngineError> {
    let Some(kinds) = &changes.kinds else {
        return Ok(changes.rows.clone());
    };
    let mut fields: Vec<Field> = changes
        .rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(KINDS_COLUMN, DataType::UInt8, false));
    let mut columns = changes.rows.columns().to_vec();
    columns.push(std::sync::Arc::new(kinds.clone()) as ArrayRef);
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// A logged batch back as changes.
pub(super) fn split_kinds(batch: &RecordBatch) -> Result<Changes, EngineError> {
    let Ok(index) = batch.schema().index_of(KINDS_COLUMN) else {
        return Ok(Changes::inserts(batch.clone()));
    };
    let kinds: UInt8Array = batch.column(index).as_primitive::<UInt8Type>().clone();
    let mut rows = batch.clone();
    rows.remove_column(index);
    Ok(Changes {
        rows,
        kinds: Some(kinds),
    })
}
