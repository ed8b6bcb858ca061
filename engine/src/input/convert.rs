//! Text fields to a stream's column types: whole columns converted with Arrow's casts, each
//! row's change kind read from its `op` text, and the rows that fail set aside with their
//! line and reason. A time outside the years 1 to 9999 fails too.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray, UInt8Array};
use datafusion::arrow::compute::{
    CastOptions, cast, cast_with_options, filter, filter_record_batch,
};
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::rows::{Decoded, RowError};
use crate::types::sql_type_name;
use crate::{Changes, Result, RowKind};

/// Each row's change kind from its `op` text; a row with another text, or with a change an
/// append-only stream cannot take, is added to `errors`.
pub(super) fn kinds_of(
    op: &StringArray,
    changelog: bool,
    errors: &mut Vec<(usize, String)>,
) -> UInt8Array {
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
pub(super) fn convert_text_columns(
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
pub(super) fn relaxed(schema: &SchemaRef) -> SchemaRef {
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
pub(super) fn drop_rejected(
    schema: &SchemaRef,
    all: RecordBatch,
    kinds: Option<UInt8Array>,
    lines: &[u64],
    mut errors: Vec<(usize, String)>,
) -> Result<Decoded> {
    times_out_of_range(&all, &mut errors)?;
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
pub(super) fn missing_values(
    schema: &SchemaRef,
    all: &RecordBatch,
    errors: &mut Vec<(usize, String)>,
) {
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

/// The first and last milliseconds a timestamp may hold: the years 1 to 9999, as the SQL
/// standard's `TIMESTAMP`. Within them, watermark and window arithmetic cannot overflow.
const FIRST_MILLI: i64 = -62_135_596_800_000;
const LAST_MILLI: i64 = 253_402_300_799_999;

/// Rows of `all` whose timestamps fall outside the years 1 to 9999, with the reason.
fn times_out_of_range(all: &RecordBatch, errors: &mut Vec<(usize, String)>) -> Result<()> {
    let schema = all.schema();
    for (field, column) in schema.fields().iter().zip(all.columns()) {
        let DataType::Timestamp(unit, _) = field.data_type() else {
            continue;
        };
        let values = cast(column, &DataType::Int64)?;
        let values = values.as_primitive::<Int64Type>();
        for row in (0..values.len()).filter(|row| values.is_valid(*row)) {
            let value = values.value(row);
            let millis = match unit {
                TimeUnit::Second => value.checked_mul(1_000),
                TimeUnit::Millisecond => Some(value),
                TimeUnit::Microsecond => Some(value.div_euclid(1_000)),
                TimeUnit::Nanosecond => Some(value.div_euclid(1_000_000)),
            };
            if !millis.is_some_and(|m| (FIRST_MILLI..=LAST_MILLI).contains(&m)) {
                errors.push((
                    row,
                    format!(
                        "column '{}': the time is outside the years 1 to 9999",
                        field.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::TimestampMillisecondArray;
    use datafusion::arrow::datatypes::Field;

    use super::*;

    #[test]
    fn times_past_the_year_9999_are_rejected() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]));
        let times = TimestampMillisecondArray::from(vec![
            Some(0),
            Some(i64::MAX),
            None,
            Some(LAST_MILLI),
            Some(LAST_MILLI + 1),
            Some(FIRST_MILLI),
            Some(FIRST_MILLI - 1),
        ]);
        let all = RecordBatch::try_new(schema.clone(), vec![Arc::new(times)])?;
        let decoded = drop_rejected(&schema, all, None, &[1, 2, 3, 4, 5, 6, 7], Vec::new())?;
        assert_eq!(decoded.rows.num_rows(), 4);
        let lines: Vec<u64> = decoded.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 5, 7]);
        assert_eq!(
            decoded.errors[0].reason,
            "column 'ts': the time is outside the years 1 to 9999"
        );
        Ok(())
    }
}
