//! Debezium change events (`'format' = 'debezium-json'`), one JSON object per line.
//!
//! An event holds `before` and `after` (rows of the stream's physical columns, or null) and
//! `op`; with Kafka Connect's schemas enabled, all three sit under `payload`. Op `c` (create)
//! and `r` (snapshot read) become `+I` of `after`, `u` becomes `-U` of `before` (when the
//! event carries it) and `+U` of `after`, and `d` becomes `-D` of `before`. An event without
//! the rows its op needs, with another op, or that is not JSON is rejected with its line; the
//! other events of the file are kept.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StructArray, UInt8Array};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::convert::{drop_rejected, missing_values, relaxed};
use super::jsonl::JsonLines;
use super::rows::{Decoded, RowError, RowReader};
use crate::{Result, RowKind};

pub struct DebeziumRows<R: BufRead> {
    lines: JsonLines<R>,
    schema: SchemaRef,
}

/// One event's fields: `before`, `after` and `op`, at the top level or under `payload`.
struct Envelope<'a> {
    before: &'a StructArray,
    after: &'a StructArray,
    op: &'a StringArray,
}

impl<R: BufRead> DebeziumRows<R> {
    pub fn new(input: R, schema: SchemaRef) -> Self {
        let row = DataType::Struct(relaxed(&schema).fields().clone());
        let envelope = Fields::from(vec![
            Field::new("before", row.clone(), true),
            Field::new("after", row, true),
            Field::new("op", DataType::Utf8, true),
        ]);
        let mut fields: Vec<Field> = envelope.iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("payload", DataType::Struct(envelope), true));
        DebeziumRows {
            lines: JsonLines::new(input, Arc::new(Schema::new(fields))),
            schema,
        }
    }
}

fn envelope(columns: &[ArrayRef]) -> Envelope<'_> {
    Envelope {
        before: columns[0].as_struct(),
        after: columns[1].as_struct(),
        op: columns[2].as_string::<i32>(),
    }
}

impl<R: BufRead> RowReader for DebeziumRows<R> {
    fn next_batch(&mut self) -> Result<Option<Decoded>> {
        let Some(decoded) = self.lines.next_lines()? else {
            return Ok(None);
        };
        let events = &decoded.rows;
        let top = envelope(events.columns());
        let payload = events.column(3).as_struct();
        let nested = envelope(payload.columns());
        // The rows to emit, as (source array, row): 0 top-level `before`, 1 `after`, 2 the
        // payload's `before`, 3 its `after`.
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut kinds = Vec::new();
        let mut lines = Vec::new();
        let mut errors = decoded.errors;
        for (event, &line) in decoded.lines.iter().enumerate() {
            let (fields, base) = if payload.is_valid(event) {
                (&nested, 2)
            } else {
                (&top, 0)
            };
            let op = fields.op.is_valid(event).then(|| fields.op.value(event));
            let has_before = fields.before.is_valid(event);
            let has_after = fields.after.is_valid(event);
            let emitted: Result<Vec<(RowKind, usize)>, String> = match op {
                Some("c" | "r") if has_after => Ok(vec![(RowKind::Insert, base + 1)]),
                Some("u") if has_after && has_before => Ok(vec![
                    (RowKind::UpdateBefore, base),
                    (RowKind::UpdateAfter, base + 1),
                ]),
                Some("u") if has_after => Ok(vec![(RowKind::UpdateAfter, base + 1)]),
                Some("d") if has_before => Ok(vec![(RowKind::Delete, base)]),
                Some(op @ ("c" | "r" | "u")) => Err(format!("op '{op}' without 'after'")),
                Some("d") => Err("op 'd' without 'before'".to_string()),
                Some(op) => Err(format!("op '{op}' is not one of c, r, u, d")),
                None => Err("a change event needs an 'op'".to_string()),
            };
            match emitted {
                Ok(rows) => {
                    for (kind, source) in rows {
                        picks.push((source, event));
                        kinds.push(kind as u8);
                        lines.push(line);
                    }
                }
                Err(reason) => errors.push(RowError { line, reason }),
            }
        }
        let sources = [top.before, top.after, nested.before, nested.after];
        let columns = (0..self.schema.fields().len())
            .map(|column| {
                let arrays: Vec<&dyn Array> =
                    sources.iter().map(|s| s.column(column).as_ref()).collect();
                interleave(&arrays, &picks)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(picks.len()));
        let rows = RecordBatch::try_new_with_options(relaxed(&self.schema), columns, &options)?;
        // A row with a NULL in a NOT NULL column rejects its whole event.
        let mut missing = Vec::new();
        missing_values(&self.schema, &rows, &mut missing);
        let bad_lines: BTreeSet<u64> = missing.iter().map(|(row, _)| lines[*row]).collect();
        let mut rejected: Vec<(usize, String)> = missing;
        rejected.extend(
            (0..lines.len())
                .filter(|row| bad_lines.contains(&lines[*row]))
                .map(|row| (row, String::new())),
        );
        rejected.sort_by_key(|(row, reason)| (*row, reason.is_empty()));
        let kinds = UInt8Array::from(kinds);
        let mut result = drop_rejected(&self.schema, rows, Some(kinds), &lines, rejected)?;
        // Keep one reason per rejected event.
        result.errors.retain(|e| !e.reason.is_empty());
        result.errors.dedup_by_key(|e| e.line);
        result.errors.extend(errors);
        result.errors.sort_by_key(|e| e.line);
        Ok(Some(result))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn events_become_changes_and_bad_events_are_rejected() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let input = [
            r#"{"before": null, "after": {"id": 1, "name": "a"}, "op": "c"}"#,
            r#"{"payload": {"before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "b"}, "op": "u"}}"#,
            r#"{"before": null, "after": null, "op": "d"}"#,
            r#"{"before": {"id": 1, "name": "b"}, "op": "x"}"#,
            r#"{"after": {"name": "no id"}, "op": "r"}"#,
            r#"{"before": {"id": 1, "name": "b"}, "after": null, "op": "d"}"#,
            "{not json",
        ]
        .join("\n");
        let mut rows = DebeziumRows::new(input.as_bytes(), schema);
        let Some(decoded) = rows.next_batch()? else {
            panic!("expected a batch");
        };
        let kinds: Vec<&str> = (0..decoded.rows.num_rows())
            .map(|row| decoded.rows.kind(row).code())
            .collect();
        assert_eq!(kinds, vec!["+I", "-U", "+U", "-D"]);
        let ids = decoded
            .rows
            .rows
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!(ids, &Int32Array::from(vec![1, 1, 1, 1]));
        let errors: Vec<(u64, &str)> = decoded
            .errors
            .iter()
            .map(|e| (e.line, e.reason.as_str()))
            .collect();
        assert_eq!(
            errors[..3],
            [
                (3, "op 'd' without 'before'"),
                (4, "op 'x' is not one of c, r, u, d"),
                (5, "column 'id' is NOT NULL but the value is missing"),
            ]
        );
        assert_eq!(errors[3].0, 7);
        Ok(())
    }
}
