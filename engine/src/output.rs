//! Writing results: CSV, JSON lines or aligned tables, each row led by its `op`.
//!
//! Timestamps are written `YYYY-MM-DD HH:MM:SS[.fff]` (zoned ones in UTC with their offset
//! dropped), dates `YYYY-MM-DD`, NULL as an empty CSV field or JSON `null`. Dictionary
//! columns (as alert firings refer to their events) are written as their values.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::{LineDelimitedWriter, WriterBuilder as JsonWriterBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches_with_options;

use crate::time::TIMESTAMP_FORMAT;
use crate::{Changes, Result};

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Csv,
    JsonLines,
}

impl OutputFormat {
    /// The file extension for this format, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Csv => "csv",
            OutputFormat::JsonLines => "jsonl",
        }
    }
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("")
        .with_timestamp_format(Some(TIMESTAMP_FORMAT))
        .with_timestamp_tz_format(Some(TIMESTAMP_FORMAT))
        .with_datetime_format(Some(TIMESTAMP_FORMAT))
}

/// The name of the column that leads every written row with its change kind.
pub const OP_COLUMN: &str = "op";

/// The schema of written rows: `op`, then the result columns, times and nested values as
/// text, dictionaries as their values.
pub fn output_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields = vec![Field::new(OP_COLUMN, DataType::Utf8, false)];
    fields.extend(schema.fields().iter().map(|field| {
        let data_type = value_type(field.data_type());
        if written_as_text(data_type) {
            Field::new(field.name(), DataType::Utf8, true)
        } else {
            Field::new(field.name(), data_type.clone(), true)
        }
    }));
    Arc::new(Schema::new(fields))
}

/// The type of a column's values: a dictionary's value type, else its own.
pub fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => value_type(values),
        other => other,
    }
}

/// `rows` with each dictionary column replaced by its values, row by row.
pub fn unpacked(rows: &RecordBatch) -> Result<RecordBatch> {
    if !rows
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(..)))
    {
        return Ok(rows.clone());
    }
    let mut fields = Vec::with_capacity(rows.num_columns());
    let mut columns = Vec::with_capacity(rows.num_columns());
    for (field, column) in rows.schema().fields().iter().zip(rows.columns()) {
        let data_type = value_type(field.data_type());
        columns.push(cast(column, data_type)?);
        fields.push(field.as_ref().clone().with_data_type(data_type.clone()));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// `changes` as written rows: the `op` column first, times and nested values as text.
pub fn to_output_batch(changes: &Changes) -> Result<RecordBatch> {
    let rows = &unpacked(&changes.rows)?;
    let codes: StringArray = (0..rows.num_rows())
        .map(|row| Some(changes.kind(row).code()))
        .collect();
    let mut columns: Vec<ArrayRef> = vec![Arc::new(codes)];
    let options = format_options();
    for column in rows.columns() {
        if written_as_text(column.data_type()) {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let mut text = StringBuilder::with_capacity(column.len(), column.len() * 23);
            for row in 0..column.len() {
                if column.is_null(row) {
                    text.append_null();
                } else {
                    text.append_value(formatter.value(row).to_string());
                }
            }
            columns.push(Arc::new(text.finish()));
        } else {
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        output_schema(&rows.schema()),
        columns,
    )?)
}

/// Times (in the result time format) and nested values such as lists (`[1, 2]`) are
/// written as text.
fn written_as_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    ) || data_type.is_nested()
}

/// Writes a query's results to `out` as they come.
pub struct ResultWriter<W: Write> {
    format: OutputFormat,
    out: W,
}

impl<W: Write> ResultWriter<W> {
    /// Starts the output of a query with result `schema` (CSV writes the header now, so a
    /// query without results still leaves a file with its header).
    pub fn new(mut out: W, format: OutputFormat, schema: &SchemaRef) -> Result<Self> {
        if format == OutputFormat::Csv {
            let empty = RecordBatch::new_empty(output_schema(schema));
            CsvWriterBuilder::new()
                .with_header(true)
                .build(&mut out)
                .write(&empty)?;
        }
        Ok(ResultWriter { format, out })
    }

    /// Goes on with an output whose start (the CSV header included) `out` already holds.
    pub fn appending(out: W, format: OutputFormat) -> Self {
        ResultWriter { format, out }
    }

    /// Where the results go.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn write(&mut self, changes: &Changes) -> Result<()> {
        if changes.num_rows() == 0 {
            return Ok(());
        }
        let batch = to_output_batch(changes)?;
        match self.format {
            OutputFormat::Csv => CsvWriterBuilder::new()
                .with_header(false)
                .build(&mut self.out)
                .write(&batch)?,
            OutputFormat::JsonLines => {
                let mut writer: LineDelimitedWriter<&mut W> = JsonWriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build(&mut self.out);
                writer.write(&batch)?;
                writer.finish()?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        Ok(self.out.flush()?)
    }
}

/// Results as an aligned text table with an `op` column.
pub fn format_table(schema: &SchemaRef, changes: &[Changes]) -> Result<String> {
    let batches = changes
        .iter()
        .map(to_output_batch)
        .collect::<Result<Vec<_>>>()?;
    if batches.is_empty() {
        let empty = RecordBatch::new_empty(output_schema(schema));
        return Ok(pretty_format_batches_with_options(&[empty], &format_options())?.to_string());
    }
    Ok(pretty_format_batches_with_options(&batches, &format_options())?.to_string())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int32Array, Int32DictionaryArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    /// Rows whose columns refer to values (as alert firings do): a name and a time.
    fn referring() -> Result<RecordBatch> {
        let names: ArrayRef = Arc::new(StringArray::from(vec!["cheap", "near"]));
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![0, 61_000]));
        let keys = Int32Array::from(vec![1, 0, 1]);
        let name = Int32DictionaryArray::try_new(keys.clone(), names)?;
        let time = Int32DictionaryArray::try_new(Int32Array::from(vec![0, 1, 1]), times)?;
        let dictionary =
            |values: DataType| DataType::Dictionary(Box::new(DataType::Int32), Box::new(values));
        let schema = Schema::new(vec![
            Field::new("alert", dictionary(DataType::Utf8), false),
            Field::new(
                "at",
                dictionary(DataType::Timestamp(TimeUnit::Millisecond, None)),
                true,
            ),
        ]);
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(name), Arc::new(time)],
        )?)
    }

    #[test]
    fn dictionary_columns_are_written_as_their_values() -> Result<()> {
        let rows = referring()?;
        let plain = unpacked(&rows)?;
        assert_eq!(plain.schema().field(0).data_type(), &DataType::Utf8);
        let names = plain
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| a.iter().flatten().collect::<Vec<_>>());
        assert_eq!(names, Some(vec!["near", "cheap", "near"]));
        let schema = output_schema(&rows.schema());
        let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            vec![&DataType::Utf8, &DataType::Utf8, &DataType::Utf8]
        );
        let table = format_table(&rows.schema(), &[Changes::inserts(rows.clone())])?;
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            vec![
                "+----+-------+---------------------+",
                "| op | alert | at                  |",
                "+----+-------+---------------------+",
                "| +I | near  | 1970-01-01 00:00:00 |",
                "| +I | cheap | 1970-01-01 00:01:01 |",
                "| +I | near  | 1970-01-01 00:01:01 |",
                "+----+-------+---------------------+",
            ]
        );
        Ok(())
    }
}
