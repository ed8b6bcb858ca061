//! Rows encoded as JSON objects: one line a row for subscribers, or parsed values for a
//! bounded answer in a reply.

use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::internal;
use crate::ServeError;

/// Each row of `rows` as a JSON object.
pub(super) fn json_rows(rows: &RecordBatch) -> Result<Vec<String>, ServeError> {
    let mut bytes = Vec::new();
    {
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut bytes);
        writer.write(rows)?;
        writer.finish()?;
    }
    let text = String::from_utf8(bytes).map_err(internal)?;
    Ok(text.lines().map(str::to_string).collect())
}

/// A bounded answer (`SHOW`, `DESCRIBE`) as JSON objects.
pub(super) fn rows_as_json(rows: &RecordBatch) -> Result<Vec<Value>, ServeError> {
    let mut out = Vec::new();
    for line in json_rows(rows)? {
        out.push(serde_json::from_str(&line).map_err(internal)?);
    }
    Ok(out)
}
