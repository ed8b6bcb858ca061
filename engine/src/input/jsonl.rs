//! JSON lines input: one JSON object per line, fields matched to columns by name.
//!
//! Batches are decoded with Arrow's JSON decoder; when a batch fails, its lines are decoded
//! one at a time so that only the bad lines are rejected, each with its line number. Fields
//! the stream does not have are ignored; a missing field is NULL. An `op` field the stream
//! does not have gives each row's change kind. A byte-order mark at the start is skipped.

use std::io::BufRead;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::ReaderBuilder;

use super::convert::{drop_rejected, kinds_of, missing_values, relaxed};
use super::options::TextOptions;
use super::rows::{BATCH_ROWS, Decoded, OP_COLUMN, RowError, RowReader};
use crate::{EngineError, Result};

/// The byte-order mark some editors put at the start of a UTF-8 file; skipped.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines of JSON objects decoded into batches of a schema, bad lines set aside.
pub(super) struct JsonLines<R: BufRead> {
    input: R,
    /// What each object is decoded into.
    schema: SchemaRef,
    line: u64,
    buffer: Vec<u8>,
}

/// Decoded objects, the line of each, and the lines that did not decode.
pub(super) struct DecodedLines {
    pub rows: RecordBatch,
    pub lines: Vec<u64>,
    pub errors: Vec<RowError>,
}

impl<R: BufRead> JsonLines<R> {
    pub fn new(input: R, schema: SchemaRef) -> Self {
        JsonLines {
            input,
            schema,
            line: 0,
            buffer: Vec::with_capacity(1 << 20),
        }
    }

    /// Decodes `text` (whole lines) in one go.
    fn decode_all(&self, text: &[u8]) -> Result<Option<RecordBatch>> {
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .with_batch_size(BATCH_ROWS)
            .with_strict_mode(false)
            .build_decoder()?;
        let consumed = decoder.decode(text)?;
        if consumed != text.len() {
            return Err(EngineError::Input("more rows than one batch holds".into()));
        }
        Ok(decoder.flush()?)
    }

    /// The next batch of up to [`BATCH_ROWS`] lines, or `None` at end of input.
    pub fn next_lines(&mut self) -> Result<Option<DecodedLines>> {
        self.buffer.clear();
        let mut starts = Vec::with_capacity(BATCH_ROWS);
        let mut lines = Vec::with_capacity(BATCH_ROWS);
        while lines.len() < BATCH_ROWS {
            let start = self.buffer.len();
            let read = self
                .input
                .read_until(b'\n', &mut self.buffer)
                .map_err(|error| EngineError::Input(format!("cannot read JSON lines: {error}")))?;
            if read == 0 {
                break;
            }
            self.line += 1;
            if self.line == 1 && self.buffer.starts_with(UTF8_BOM) {
                self.buffer.drain(..UTF8_BOM.len());
            }
            if self.buffer[start..].iter().all(u8::is_ascii_whitespace) {
                self.buffer.truncate(start);
                continue;
            }
            if self.buffer.last() != Some(&b'\n') {
                self.buffer.push(b'\n');
            }
            starts.push(start);
            lines.push(self.line);
        }
        if lines.is_empty() {
            return Ok(None);
        }
        if let Ok(Some(rows)) = self.decode_all(&self.buffer)
            && rows.num_rows() == lines.len()
        {
            return Ok(Some(DecodedLines {
                rows,
                lines,
                errors: Vec::new(),
            }));
        }
        // Some line is bad: decode line by line to keep every good one.
        let mut good = Vec::new();
        let mut good_lines = Vec::new();
        let mut errors = Vec::new();
        for (index, start) in starts.iter().enumerate() {
            let end = starts.get(index + 1).copied().unwrap_or(self.buffer.len());
            let reason = match self.decode_all(&self.buffer[*start..end]) {
                Ok(Some(rows)) if rows.num_rows() == 1 => {
                    good.push(rows);
                    good_lines.push(lines[index]);
                    continue;
                }
                Ok(_) => "not a JSON object".to_string(),
                Err(error) => json_reason(&error),
            };
            errors.push(RowError {
                line: lines[index],
                reason,
            });
        }
        Ok(Some(DecodedLines {
            rows: concat_batches(&self.schema, &good)?,
            lines: good_lines,
            errors,
        }))
    }
}

/// Rows of a stream, one JSON object per line.
pub struct JsonLinesRows<R: BufRead> {
    lines: JsonLines<R>,
    schema: SchemaRef,
    /// Whether objects are read with an `op` field after the stream's columns.
    with_op: bool,
    changelog: bool,
}

impl<R: BufRead> JsonLinesRows<R> {
    pub fn new(input: R, schema: SchemaRef, options: TextOptions) -> Self {
        let with_op = schema.index_of(OP_COLUMN).is_err();
        let mut fields: Vec<Field> = relaxed(&schema)
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        if with_op {
            fields.push(Field::new(OP_COLUMN, DataType::Utf8, true));
        }
        JsonLinesRows {
            lines: JsonLines::new(input, Arc::new(Schema::new(fields))),
            schema,
            with_op,
            changelog: options.changelog,
        }
    }
}

impl<R: BufRead> RowReader for JsonLinesRows<R> {
    fn next_batch(&mut self) -> Result<Option<Decoded>> {
        let Some(decoded) = self.lines.next_lines()? else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        let mut rows = decoded.rows;
        let kinds = if self.with_op {
            let op = rows
                .column(rows.num_columns() - 1)
                .as_string::<i32>()
                .clone();
            rows.remove_column(rows.num_columns() - 1);
            Some(kinds_of(&op, self.changelog, &mut errors))
        } else {
            None
        };
        missing_values(&self.schema, &rows, &mut errors);
        let mut result = drop_rejected(&self.schema, rows, kinds, &decoded.lines, errors)?;
        result.errors.extend(decoded.errors);
        result.errors.sort_by_key(|e| e.line);
        Ok(Some(result))
    }
}

/// Arrow's JSON error without its error-kind prefix; syntax errors say so.
fn json_reason(error: &EngineError) -> String {
    let text = error.to_string();
    let reason = text
        .strip_prefix("Json error: ")
        .or_else(|| text.strip_prefix("Parser error: "))
        .unwrap_or(&text);
    if reason.starts_with("whilst decoding field") {
        reason.to_string()
    } else {
        format!("invalid JSON: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn rejects_only_the_bad_lines() -> Result<()> {
        let input = "{\"id\": 1, \"name\": \"a\"}\n\n{\"id\": \"x1\"}\n{\"name\": \"c\", \"other\": 5}\nnot json\n";
        let mut rows = JsonLinesRows::new(input.as_bytes(), schema(), TextOptions::default());
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        assert_eq!(decoded.rows.num_rows(), 2);
        let lines: Vec<u64> = decoded.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 5]);
        Ok(())
    }

    #[test]
    fn a_byte_order_mark_is_skipped() -> Result<()> {
        let input = "\u{feff}{\"id\": 1}\n{\"id\": 2}\n";
        let mut rows = JsonLinesRows::new(input.as_bytes(), schema(), TextOptions::default());
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        assert_eq!(decoded.rows.num_rows(), 2);
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        Ok(())
    }

    #[test]
    fn an_op_field_gives_change_kinds() -> Result<()> {
        let input = "{\"id\": 1, \"op\": \"+I\"}\n{\"id\": 1, \"op\": \"-D\"}\n{\"id\": 2}\n";
        let options = TextOptions {
            changelog: true,
            ..TextOptions::default()
        };
        let mut rows = JsonLinesRows::new(input.as_bytes(), schema(), options);
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        let kinds: Vec<&str> = (0..decoded.rows.num_rows())
            .map(|row| decoded.rows.kind(row).code())
            .collect();
        assert_eq!(kinds, vec!["+I", "-D", "+I"]);
        assert!(decoded.errors.is_empty());
        Ok(())
    }
}
