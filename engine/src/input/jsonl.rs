//! JSON lines input: one JSON object per line, fields matched to columns by name.
//!
//! Batches are decoded with Arrow's JSON decoder; when a batch fails, its lines are decoded
//! one at a time so that only the bad lines are rejected, each with its line number. Fields
//! the stream does not have are ignored; a missing field is NULL.

use std::io::BufRead;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::Decoder;
use datafusion::arrow::record_batch::RecordBatch;

use super::{BATCH_ROWS, Decoded, RowError, RowReader};
use crate::{EngineError, Result};

pub struct JsonLinesRows<R: BufRead> {
    input: R,
    schema: SchemaRef,
    line: u64,
    buffer: Vec<u8>,
}

impl<R: BufRead> JsonLinesRows<R> {
    pub fn new(input: R, schema: SchemaRef) -> Self {
        JsonLinesRows {
            input,
            schema,
            line: 0,
            buffer: Vec::with_capacity(1 << 20),
        }
    }

    fn decoder(&self) -> Result<Decoder> {
        Ok(ReaderBuilder::new(self.schema.clone())
            .with_batch_size(BATCH_ROWS)
            .with_strict_mode(false)
            .build_decoder()?)
    }

    /// Decodes `text` (whole lines) in one go.
    fn decode_all(&self, text: &[u8]) -> Result<Option<RecordBatch>> {
        let mut decoder = self.decoder()?;
        let consumed = decoder.decode(text)?;
        if consumed != text.len() {
            return Err(EngineError::Input("more rows than one batch holds".into()));
        }
        Ok(decoder.flush()?)
    }
}

impl<R: BufRead> RowReader for JsonLinesRows<R> {
    fn next_batch(&mut self) -> Result<Option<Decoded>> {
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
            return Ok(Some(Decoded {
                rows,
                errors: Vec::new(),
            }));
        }
        // Some line is bad: decode line by line to keep every good one.
        let mut good = Vec::new();
        let mut errors = Vec::new();
        for (index, start) in starts.iter().enumerate() {
            let end = starts.get(index + 1).copied().unwrap_or(self.buffer.len());
            match self.decode_all(&self.buffer[*start..end]) {
                Ok(Some(rows)) if rows.num_rows() == 1 => good.push(rows),
                Ok(_) => errors.push(RowError {
                    line: lines[index],
                    reason: "not a JSON object".into(),
                }),
                Err(error) => errors.push(RowError {
                    line: lines[index],
                    reason: json_reason(&error),
                }),
            }
        }
        Ok(Some(Decoded {
            rows: concat_batches(&self.schema, &good)?,
            errors,
        }))
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

    #[test]
    fn rejects_only_the_bad_lines() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let input = "{\"id\": 1, \"name\": \"a\"}\n\n{\"id\": \"x1\"}\n{\"name\": \"c\", \"other\": 5}\nnot json\n";
        let mut rows = JsonLinesRows::new(input.as_bytes(), schema);
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        assert_eq!(decoded.rows.num_rows(), 2);
        let lines: Vec<u64> = decoded.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 5]);
        Ok(())
    }
}
