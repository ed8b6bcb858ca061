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

mod convert;
mod csv;
mod debezium;
mod jsonl;
mod options;
mod rows;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use std::io::BufRead;

pub use self::csv::CsvRows;
pub use self::debezium::DebeziumRows;
pub use self::jsonl::JsonLinesRows;
pub use self::options::TextOptions;
pub use self::rows::{BATCH_ROWS, Decoded, OP_COLUMN, RowError, RowReader};
use crate::catalog::StreamDef;
use crate::{EngineError, Result};

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
    let options = TextOptions::of_stream(stream);
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
