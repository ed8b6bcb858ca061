//! Decoding input files into batches of a stream's physical rows.
//!
//! Values are read as text and converted with Arrow's casts, one column at a time over a
//! whole batch; a row whose value does not convert, whose field count is wrong, or that has
//! NULL in a NOT NULL column is reported with its line and the reason, and left out of the
//! batch. Every other row is kept.
//!
//! A stream that reads changes (a table, or a changelog stream) takes each row's change kind
//! from an `op` column or field (`+I`, `-U`, `+U`, `-D`) when the file has one, or from
//! Debezium change events (`'format' = 'debezium-json'`). An append-only stream accepts only
//! `+I` there.

mod csv;
mod debezium;
mod jsonl;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use std::io::BufRead;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray, UInt8Array};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter, filter_record_batch};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

pub use self::csv::CsvRows;
pub use self::debezium::DebeziumRows;
pub use self::jsonl::JsonLinesRows;
use crate::catalog::StreamDef;
use crate::types::sql_type_name;
use crate::{Changes, EngineError, Result, RowKind};

/// The column or field that carries a row's change kind.
pub const OP_COLUMN: &str = "op";

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
    pub rows: Changes,
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
    /// Whether rows may be updates and deletes; otherwise only `+I` is accepted in `op`.
    pub changelog: bool,
}

/// The layout of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    JsonLines,
}

impl FileFormat {
    /// The format named by a file's extension: `.csv`, or `.jsonl`/`.json`.
    pub fn of_path(path: &Path) -> Result<Self> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(FileFormat::Csv),
            Some("jsonl" | "json") => Ok(FileFormat::JsonLines),
            _ => Err(EngineError::Input(format!(
                "{}: unknown input format (expected .csv, .jsonl or .json)",
                path.display()
            ))),
        }
    }
}

/// Opens `path` as rows of `stream`, in the format its extension names.
pub fn open(path: &Path, stream: &StreamDef) -> Result<Box<dyn RowReader>> {
    let format = FileFormat::of_path(path)?;
    let file = File::open(path)
        .map_err(|error| EngineError::Input(format!("cannot open {}: {error}", path.display())))?;
    reader(BufReader::with_capacity(1 << 20, file), format, stream)
}

/// Reads `input` as rows of `stream` in `format`.
pub fn reader<'a, R: BufRead + 'a>(
    input: R,
    format: FileFormat,
    stream: &StreamDef,
) -> Result<Box<dyn RowReader + 'a>> {
    let schema = stream.physical_schema.clone();
    let options = stream.text_options();
    match format {
        FileFormat::JsonLines if stream.is_debezium() => {
            Ok(Box::new(DebeziumRows::new(input, schema)))
        }
        FileFormat::Csv if stream.is_debezium() => Err(EngineError::Input(format!(
            "stream '{}' reads Debezium change events ('format' = 'debezium-json'): \
             give it a JSON lines file",
            stream.name
        ))),
        FileFormat::Csv => Ok(Box::new(CsvRows::new(input, schema, options)?)),
        FileFormat::JsonLines => Ok(Box::new(JsonLinesRows::new(input, schema, options))),
    }
}

/// Each row's change kind from its `op` text; a row with another text, or with a change an
/// append-only stream cannot take, is added to `errors`.
fn kinds_of(op: &StringArray, changelog: bool, errors: &mut Vec<(usize, String)>) -> UInt8Array {
    let kinds = (0..op.len()).map(|row| {
        let code = op.is_valid(row).then(|| op.value(row).trim());
        match code.map(|code| (code, RowKind::from_code(code))) {
            None => RowKind::Insert as u8,
            Some((_, Some(kind))) if changelog || kind == RowKind::Insert => kind as u8,
            Some((code, Some(_))) => {
                errors.push((
                    row,
                    format!(
                        "op '{code}': the stream is append-only (it has no PRIMARY KEY), \
                         so it takes only +I rows"
                    ),
                ));
                RowKind::Insert as u8
            }
            Some((code, None)) => {
                errors.push((row, format!("op '{code}' is not one of +I, -U, +U, -D")));
                RowKind::Insert as u8
            }
        }
    });
    UInt8Array::from_iter_values(kinds)
}

/// `rows` with their change kinds; all inserts when there are no kinds.
fn changes_of(rows: RecordBatch, kinds: Option<UInt8Array>) -> Changes {
    match kinds {
        Some(kinds) if kinds.values().iter().any(|k| *k != RowKind::Insert as u8) => Changes {
            rows,
            kinds: Some(kinds),
        },
        _ => Changes::inserts(rows),
    }
}

/// Text columns converted to `schema`'s types, with the rows that failed to convert.
///
/// `text[i]` holds column `i`'s fields (NULL where absent); `lines[r]` is row `r`'s line;
/// `op` the rows' change kinds, if the input has them.
/// Rows already known to be bad are passed in `errors` (by row index) and dropped too.
fn convert_text_columns(
    schema: &SchemaRef,
    text: Vec<StringArray>,
    op: Option<(&StringArray, bool)>,
    lines: &[u64],
    mut errors: Vec<(usize, String)>,
) -> Result<Decoded> {
    let kinds = op.map(|(op, changelog)| kinds_of(op, changelog, &mut errors));
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
    let options = RecordBatchOptions::new().with_row_count(Some(lines.len()));
    let all = RecordBatch::try_new_with_options(relaxed(schema), columns, &options)?;
    drop_rejected(schema, all, kinds, lines, errors)
}

/// `schema` with every column nullable: rows about to be rejected may hold NULL in NOT NULL
/// columns, so batches are assembled on it, the rejected rows dropped, and the rest checked
/// against the real schema.
fn relaxed(schema: &SchemaRef) -> SchemaRef {
    SchemaRef::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// The rows of `all` (on the relaxed `schema`) except those in `errors` (by row index), as
/// rows of `schema`, and the errors with their lines.
fn drop_rejected(
    schema: &SchemaRef,
    all: RecordBatch,
    kinds: Option<UInt8Array>,
    lines: &[u64],
    mut errors: Vec<(usize, String)>,
) -> Result<Decoded> {
    let (kept, kinds) = if errors.is_empty() {
        (all, kinds)
    } else {
        let mut keep = vec![true; all.num_rows()];
        for (row, _) in &errors {
            keep[*row] = false;
        }
        let keep = BooleanArray::from(keep);
        let kinds = match kinds {
            Some(kinds) => filter(&kinds, &keep)?
                .as_any()
                .downcast_ref::<UInt8Array>()
                .cloned(),
            None => None,
        };
        (filter_record_batch(&all, &keep)?, kinds)
    };
    let options = RecordBatchOptions::new().with_row_count(Some(kept.num_rows()));
    let rows =
        RecordBatch::try_new_with_options(schema.clone(), kept.columns().to_vec(), &options)?;
    errors.sort_by_key(|(row, _)| *row);
    errors.dedup_by_key(|(row, _)| *row);
    Ok(Decoded {
        rows: changes_of(rows, kinds),
        errors: errors
            .into_iter()
            .map(|(row, reason)| RowError {
                line: lines[row],
                reason,
            })
            .collect(),
    })
}

/// Rows of `all` that hold NULL in a NOT NULL column of `schema`, with the reason.
fn missing_values(schema: &SchemaRef, all: &RecordBatch, errors: &mut Vec<(usize, String)>) {
    for (field, column) in schema.fields().iter().zip(all.columns()) {
        if field.is_nullable() || column.null_count() == 0 {
            continue;
        }
        for row in (0..column.len()).filter(|row| column.is_null(*row)) {
            errors.push((
                row,
                format!(
                    "column '{}' is NOT NULL but the value is missing",
                    field.name()
                ),
            ));
        }
    }
}
