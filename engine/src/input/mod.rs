//! Decoding input files into batches of a stream's physical rows.
//!
//! Values are read as text and converted with Arrow's casts, one column at a time over a
//! whole batch; a row whose value does not convert, whose field count is wrong, or that has
//! NULL in a NOT NULL column is reported with its line and the reason, and left out of the
//! batch. Every other row is kept.

mod csv;
mod jsonl;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

pub use self::csv::CsvRows;
pub use self::jsonl::JsonLinesRows;
use crate::types::sql_type_name;
use crate::{EngineError, Result};

/// Rows per decoded batch.
pub const BATCH_ROWS: usize = 8192;

/// An input row that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file where the row starts.
    pub line: u64,
    pub reason: String,
}

/// One batch of decoded rows, and the rows of the same stretch of input that were rejected.
#[derive(Debug)]
pub struct Decoded {
    pub rows: RecordBatch,
    pub errors: Vec<RowError>,
}

/// A file read batch by batch.
pub trait RowReader {
    /// The next batch, or `None` at end of file.
    fn next_batch(&mut self) -> Result<Option<Decoded>>;
}

/// How text fields are read.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// A field with exactly this text is NULL (an empty field always is).
    pub null_literal: Option<String>,
}

/// Opens `path` as CSV (`.csv`) or JSON lines (`.jsonl`, `.json`) rows of `schema`.
pub fn open(path: &Path, schema: SchemaRef, options: TextOptions) -> Result<Box<dyn RowReader>> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let file = File::open(path)
        .map_err(|error| EngineError::Input(format!("cannot open {}: {error}", path.display())))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    match extension.as_deref() {
        Some("csv") => Ok(Box::new(CsvRows::new(reader, schema, options)?)),
        Some("jsonl" | "json") => Ok(Box::new(JsonLinesRows::new(reader, schema))),
        _ => Err(EngineError::Input(format!(
            "{}: unknown input format (expected .csv, .jsonl or .json)",
            path.display()
        ))),
    }
}

/// Text columns converted to `schema`'s types, with the rows that failed to convert.
///
/// `text[i]` holds column `i`'s fields (NULL where absent); `lines[r]` is row `r`'s line.
/// Rows already known to be bad are passed in `errors` (by row index) and dropped too.
fn convert_text_columns(
    schema: &SchemaRef,
    text: Vec<StringArray>,
    lines: &[u64],
    mut errors: Vec<(usize, String)>,
) -> Result<Decoded> {
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(text.len());
    for (field, strings) in schema.fields().iter().zip(&text) {
        let converted = cast_with_options(strings, field.data_type(), &options)?;
        if converted.null_count() != strings.null_count() || !field.is_nullable() {
            for row in 0..strings.len() {
                if converted.is_valid(row) {
                    continue;
                }
                let reason = if strings.is_valid(row) {
                    format!(
                        "column '{}': cannot read '{}' as {}",
                        field.name(),
                        strings.value(row),
                        sql_type_name(field.data_type())
                    )
                } else if !field.is_nullable() {
                    format!(
                        "column '{}' is NOT NULL but the value is missing",
                        field.name()
                    )
                } else {
                    continue;
                };
                errors.push((row, reason));
            }
        }
        columns.push(converted);
    }
    // Rejected rows may hold NULL in NOT NULL columns: assemble on a nullable copy of the
    // schema, drop them, then check the rows that remain against the real schema.
    let relaxed = SchemaRef::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let options = RecordBatchOptions::new().with_row_count(Some(lines.len()));
    let all = RecordBatch::try_new_with_options(relaxed, columns, &options)?;
    if errors.is_empty() {
        return Ok(Decoded {
            rows: RecordBatch::try_new_with_options(
                schema.clone(),
                all.columns().to_vec(),
                &options,
            )?,
            errors: Vec::new(),
        });
    }
    let mut keep = vec![true; lines.len()];
    for (row, _) in &errors {
        keep[*row] = false;
    }
    let kept = filter_record_batch(&all, &BooleanArray::from(keep))?;
    let options = RecordBatchOptions::new().with_row_count(Some(kept.num_rows()));
    let rows =
        RecordBatch::try_new_with_options(schema.clone(), kept.columns().to_vec(), &options)?;
    errors.sort_by_key(|(row, _)| *row);
    errors.dedup_by_key(|(row, _)| *row);
    Ok(Decoded {
        rows,
        errors: errors
            .into_iter()
            .map(|(row, reason)| RowError {
                line: lines[row],
                reason,
            })
            .collect(),
    })
}
