//! Writing a query's result rows to a Kafka table's topic, one record per row.
//!
//! `'json'` writes each row as a JSON object, `'csv'` as a CSV line (times in the result
//! time format, as `sluice run` writes files), and `'raw'` its one STRING or BYTES column as
//! it is; these take inserts only, as in Flink, since a
//! reader of such a topic cannot tell an update from a new row. `'debezium-json'` writes
//! every change as a Debezium event: an insert or `+U` as `{"before": null, "after": {...},
//! "op": "c"}`, a delete or `-U` as `{"before": {...}, "after": null, "op": "d"}` (Flink's
//! encoding of updates). Records have no key: the client spreads them over the partitions.
//! Delivery is at least once: [`KafkaSink::flush`] returns when the broker has acknowledged
//! every record written.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::LineDelimited;
use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::output::to_output_batch;
use sluice_engine::{Changes, RowKind};

use crate::options::{DeliveryGuarantee, Format, KafkaOptions};
use crate::writer::{OutRecord, TopicWriter};
use crate::{KafkaError, Result};

/// A Kafka table written by `INSERT INTO`.
pub struct KafkaSink {
    table: String,
    topic: String,
    format: Format,
    writer: TopicWriter,
}

impl KafkaSink {
    /// A sink to table `table`'s topic, for results that are `updating` (may retract rows)
    /// or not; what is not built yet is refused here.
    pub fn open(table: &str, options: &KafkaOptions, updating: bool) -> Result<Self> {
        if updating && options.value_format != Format::DebeziumJson {
            return Err(updates_refused(table, options.value_format));
        }
        if options.upsert || options.key_format.is_some() {
            return Err(KafkaError::Option(format!(
                "table '{table}': writing record keys ('upsert-kafka', 'key.format') is not \
                 supported yet"
            )));
        }

        if options.delivery == DeliveryGuarantee::ExactlyOnce {
            return Err(KafkaError::Option(format!(
                "table '{table}': 'sink.delivery-guarantee' = 'exactly-once' is not supported \
                 yet; 'at-least-once' is"
            )));
        }
        Ok(KafkaSink {
            table: table.to_string(),
            topic: options.topic.clone(),
            format: options.value_format,
            writer: TopicWriter::open(&options.bootstrap_servers, &options.client)?,
        })
    }

    /// Queues a record per row of `changes`.
    pub fn write(&mut self, changes: &Changes) -> Result<()> {
        if changes.num_rows() == 0 {
            return Ok(());
        }
        if self.format == Format::Raw {
            self.inserts_only(changes)?;
            return self.write_raw(&changes.rows);
        }
        let written = to_output_batch(changes)?;
        // Without the leading `op` column.
        let columns: Vec<usize> = (1..written.num_columns()).collect();
        let rows = written.project(&columns)?;
        match self.format {
            // Written above, without the text conversions.
            Format::Raw => {}
            Format::Json => {
                self.inserts_only(changes)?;
                for object in json_objects(&rows)? {
                    self.send(Some(object.as_bytes()))?;
                }
            }
            Format::Csv => {
                self.inserts_only(changes)?;
                for row in 0..rows.num_rows() {
                    let mut line = Vec::new();
                    CsvWriterBuilder::new()
                        .with_header(false)
                        .build(&mut line)
                        .write(&rows.slice(row, 1))?;
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    self.send(Some(line))?;
                }
            }
            Format::DebeziumJson => {
                for (row, object) in json_objects(&rows)?.iter().enumerate() {
                    let event = match changes.kind(row) {
                        RowKind::Delete | RowKind::UpdateBefore => {
                            format!("{{\"before\":{object},\"after\":null,\"op\":\"d\"}}")
                        }
                        _ => format!("{{\"before\":null,\"after\":{object},\"op\":\"c\"}}"),
                    };
                    self.send(Some(event.as_bytes()))?;
                }
            }
        }
        Ok(())
    }

    /// Each row's one column as a record's value, as it is (`'raw'`); a NULL is a tombstone.
    fn write_raw(&self, rows: &RecordBatch) -> Result<()> {
        if rows.num_columns() != 1 {
            return Err(KafkaError::Option(format!(
                "table '{}': the 'raw' format writes one column, and the query has {}",
                self.table,
                rows.num_columns()
            )));
        }
        let column = rows.column(0);
        let values: Vec<Option<&[u8]>> = if let Some(text) = column.as_string_opt::<i32>() {
            text.iter().map(|v| v.map(str::as_bytes)).collect()
        } else if let Some(bytes) = column.as_binary_opt::<i32>() {
            bytes.iter().collect()
        } else {
            return Err(KafkaError::Option(format!(
                "table '{}': the 'raw' format writes a STRING or BYTES column, not {}",
                self.table,
                column.data_type()
            )));
        };
        for value in values {
            self.send(value)?;
        }
        Ok(())
    }

    /// Waits until the broker has acknowledged every record written.
    pub fn flush(&self) -> Result<()> {
        self.writer.flush()
    }

    /// Queues a record of `value` (`None`: a tombstone) without key or time.
    fn send(&self, value: Option<&[u8]>) -> Result<()> {
        let record = OutRecord {
            partition: None,
            key: None,
            value,
            timestamp: None,
            headers: &[],
        };
        self.writer.send(&self.topic, record)
    }

    fn inserts_only(&self, changes: &Changes) -> Result<()> {
        let updating = (0..changes.num_rows()).any(|row| {
            matches!(
                changes.kind(row),
                RowKind::Delete | RowKind::UpdateBefore | RowKind::UpdateAfter
            )
        });
        if updating {
            return Err(updates_refused(&self.table, self.format));
        }
        Ok(())
    }
}

fn updates_refused(table: &str, format: Format) -> KafkaError {
    KafkaError::Option(format!(
        "table '{table}': the query's results are updated, and a '{}' topic cannot say so; \
         write them as 'debezium-json'",
        match format {
            Format::Csv => "csv",
            Format::Raw => "raw",
            _ => "json",
        }
    ))
}

/// Each row of `rows` as a JSON object (NULLs written as `null`).
fn json_objects(rows: &RecordBatch) -> Result<Vec<String>> {
    let mut text = Vec::new();
    {
        let mut writer = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(&mut text);
        writer.write(rows)?;
        writer.finish()?;
    }
    let text = String::from_utf8(text)
        .map_err(|e| KafkaError::Client(format!("a row's JSON is not UTF-8: {e}")))?;
    Ok(text.lines().map(str::to_string).collect())
}
