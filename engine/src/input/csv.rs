//! CSV input: a header row names the columns; an empty field is NULL.
//!
//! Columns are matched to the stream's by name (case-insensitively); columns the stream does
//! not have are ignored, and a header missing one of the stream's columns is an error. An
//! `op` column the stream does not have gives each row's change kind. A row that is not
//! valid UTF-8 is rejected alone, and so is a row whose quoted field is never closed (it
//! would take the rest of the file).

use std::io::Read;

use datafusion::arrow::array::{StringArray, StringBuilder};
use datafusion::arrow::datatypes::SchemaRef;

use super::convert::convert_text_columns;
use super::options::TextOptions;
use super::rows::{BATCH_ROWS, Decoded, OP_COLUMN, RowReader};
use crate::{EngineError, Result};

pub struct CsvRows<R: Read> {
    reader: csv::Reader<Counted<R>>,
    schema: SchemaRef,
    /// For each stream column, its field index in the file.
    positions: Vec<usize>,
    /// The field index of the `op` column, if the file has one.
    op_position: Option<usize>,
    header_len: usize,
    null_literal: Option<String>,
    changelog: bool,
    /// The record read into, reused row after row (taken while a row is converted).
    record: Option<csv::ByteRecord>,
}

/// The input, with the double quotes read so far counted and whether its end was reached.
struct Counted<R> {
    inner: R,
    quotes: u64,
    at_end: bool,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.at_end |= read == 0 && !buffer.is_empty();
        self.quotes += memchr::memchr_iter(b'"', &buffer[..read]).count() as u64;
        Ok(read)
    }
}

impl<R: Read> CsvRows<R> {
    /// Reads the header of `input`, a CSV file of `schema`'s columns.
    pub fn new(input: R, schema: SchemaRef, options: TextOptions) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(Counted {
                inner: input,
                quotes: 0,
                at_end: false,
            });
        let header = reader
            .headers()
            .map_err(|error| EngineError::Input(format!("cannot read the CSV header: {error}")))?
            .clone();
        let mut positions = Vec::with_capacity(schema.fields().len());
        let mut missing = Vec::new();
        for field in schema.fields() {
            match header
                .iter()
                .position(|name| name.trim().eq_ignore_ascii_case(field.name()))
            {
                Some(position) => positions.push(position),
                None => missing.push(field.name().as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(EngineError::Input(format!(
                "the CSV header lacks column(s) {}",
                missing.join(", ")
            )));
        }
        let op_position = header
            .iter()
            .position(|name| name.trim().eq_ignore_ascii_case(OP_COLUMN))
            .filter(|_| schema.index_of(OP_COLUMN).is_err());
        Ok(CsvRows {
            reader,
            schema,
            positions,
            op_position,
            header_len: header.len(),
            null_literal: options.null_literal,
            changelog: options.changelog,
            record: Some(csv::ByteRecord::new()),
        })
    }
}

impl<R: Read> CsvRows<R> {
    /// Whether the row just read, with `fields`, ran to the end of the input inside a quoted
    /// field: the input ended, one of its fields spans lines (only a quoted one can), and
    /// the input holds an odd number of double quotes (each closed field has an even number).
    fn unclosed_quote(&self, fields: &csv::StringRecord) -> bool {
        let input = self.reader.get_ref();
        input.at_end
            && input.quotes % 2 == 1
            && fields.iter().any(|field| field.contains(['\n', '\r']))
    }
}

impl<R: Read> RowReader for CsvRows<R> {
    fn next_batch(&mut self) -> Result<Option<Decoded>> {
        let mut builders: Vec<StringBuilder> = (0..self.positions.len())
            .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8))
            .collect();
        let mut op = StringBuilder::new();
        let mut lines = Vec::with_capacity(BATCH_ROWS);
        let mut errors = Vec::new();
        while lines.len() < BATCH_ROWS {
            let record = self.record.get_or_insert_with(csv::ByteRecord::new);
            let more = self
                .reader
                .read_byte_record(record)
                .map_err(|error| EngineError::Input(format!("cannot read CSV: {error}")))?;
            if !more {
                break;
            }
            let line = record.position().map_or(0, |p| p.line());
            let row = lines.len();
            lines.push(line);
            let Some(record) = self.record.take() else {
                break;
            };
            let fields = match csv::StringRecord::from_byte_record(record) {
                Ok(fields) => fields,
                Err(error) => {
                    self.record = Some(error.into_byte_record());
                    errors.push((row, "the row is not valid UTF-8".to_string()));
                    builders.iter_mut().for_each(StringBuilder::append_null);
                    if self.op_position.is_some() {
                        op.append_null();
                    }
                    continue;
                }
            };
            if self.unclosed_quote(&fields) {
                errors.push((
                    row,
                    "a quoted field opened in this row is never closed: the rest of the file \
                     was read as that field"
                        .to_string(),
                ));
            } else if fields.len() != self.header_len {
                errors.push((
                    row,
                    format!(
                        "expected {} fields, found {}",
                        self.header_len,
                        fields.len()
                    ),
                ));
            }
            for (builder, &position) in builders.iter_mut().zip(&self.positions) {
                match fields.get(position) {
                    Some(field)
                        if !field.is_empty() && Some(field) != self.null_literal.as_deref() =>
                    {
                        builder.append_value(field)
                    }
                    _ => builder.append_null(),
                }
            }
            if let Some(position) = self.op_position {
                op.append_option(fields.get(position).filter(|f| !f.is_empty()));
            }
            self.record = Some(fields.into_byte_record());
        }
        if lines.is_empty() {
            return Ok(None);
        }
        let text: Vec<StringArray> = builders.iter_mut().map(StringBuilder::finish).collect();
        let op = self.op_position.map(|_| op.finish());
        let op = op.as_ref().map(|op| (op, self.changelog));
        convert_text_columns(&self.schema, text, op, &lines, errors).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn reports_bad_rows_by_line_and_keeps_the_rest() -> Result<()> {
        let input = "name,id,extra\na,1,x\nb,oops,x\n,3,x\nd,4\ne,,x\n";
        let mut rows = CsvRows::new(input.as_bytes(), schema(), TextOptions::default())?;
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        assert_eq!(decoded.rows.num_rows(), 2);
        let reasons: Vec<(u64, &str)> = decoded
            .errors
            .iter()
            .map(|e| (e.line, e.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (3, "column 'id': cannot read 'oops' as INT"),
                (5, "expected 3 fields, found 2"),
                (6, "column 'id' is NOT NULL but the value is missing"),
            ]
        );
        assert!(rows.next_batch()?.is_none());
        Ok(())
    }

    fn rejected(input: &[u8]) -> Result<(usize, Vec<(u64, String)>)> {
        let mut rows = CsvRows::new(input, schema(), TextOptions::default())?;
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        assert!(rows.next_batch()?.is_none());
        let errors = decoded.errors.into_iter().map(|e| (e.line, e.reason));
        Ok((decoded.rows.num_rows(), errors.collect()))
    }

    #[test]
    fn a_row_of_bad_utf8_is_rejected_alone() -> Result<()> {
        let (kept, errors) = rejected(b"id,name\n1,a\n2,b\xff\n3,c\n")?;
        assert_eq!(kept, 2);
        assert_eq!(errors, vec![(3, "the row is not valid UTF-8".to_string())]);
        Ok(())
    }

    #[test]
    fn an_unclosed_quote_is_reported_not_swallowed() -> Result<()> {
        let (kept, errors) = rejected(b"id,name\n1,a\n2,\"b\n3,c\n4,d\n")?;
        assert_eq!(kept, 1);
        let reason = "a quoted field opened in this row is never closed: the rest of the file \
                      was read as that field";
        assert_eq!(errors, vec![(3, reason.to_string())]);
        // A closed quoted field over several lines at the end is a row like any other.
        let (kept, errors) = rejected(b"id,name\n1,a\n2,\"b\n3,c\"\n")?;
        assert_eq!((kept, errors), (2, vec![]));
        Ok(())
    }

    #[test]
    fn an_op_column_gives_change_kinds() -> Result<()> {
        let input = "op,id,name\n+I,1,a\n-D,1,a\nX,2,b\n+U,3,\n";
        let options = TextOptions {
            changelog: true,
            ..TextOptions::default()
        };
        let mut rows = CsvRows::new(input.as_bytes(), schema(), options)?;
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        let kinds: Vec<&str> = (0..decoded.rows.num_rows())
            .map(|row| decoded.rows.kind(row).code())
            .collect();
        assert_eq!(kinds, vec!["+I", "-D", "+U"]);
        let reasons: Vec<(u64, &str)> = decoded
            .errors
            .iter()
            .map(|e| (e.line, e.reason.as_str()))
            .collect();
        assert_eq!(reasons, vec![(4, "op 'X' is not one of +I, -U, +U, -D")]);
        let mut append_only = CsvRows::new(input.as_bytes(), schema(), TextOptions::default())?;
        let Some(decoded) = append_only.next_batch()? else {
            panic!("expected a batch");
        };
        assert_eq!(decoded.rows.num_rows(), 1);
        assert_eq!(decoded.errors.len(), 3);
        Ok(())
    }

    #[test]
    fn a_header_without_a_stream_column_is_an_error() {
        let result = CsvRows::new("name\nx\n".as_bytes(), schema(), TextOptions::default());
        assert!(
            matches!(result, Err(EngineError::Input(m)) if m == "the CSV header lacks column(s) id")
        );
    }
}
