//! A Kafka table's records decoded into its rows, batch by batch, as an input file's are.
//!
//! A record's value is one row: a JSON object (`'json'`, fields by name), a Debezium change
//! event (`'debezium-json'`), a CSV line (`'csv'`, fields by position, as Flink reads them),
//! or the value itself in the table's one column (`'raw'`).
//! Each batch of records is decoded by the engine's file decoders, so values convert, and bad
//! rows are rejected, exactly as in files; a rejected row is reported with its partition and
//! offset (the offset as its "line"), and with `'errors.deadletter.topic'` also written to
//! that topic as it was read, with headers `sluice.error.topic`, `.partition`, `.offset` and
//! `.reason`. Records without a value (tombstones) carry no row.

use std::collections::VecDeque;
use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::DataType;
use sluice_engine::input::{self, BATCH_ROWS, Decoded, FileFormat, RowError, RowReader};
use sluice_engine::{Changes, StreamDef};

use crate::options::{Format, KafkaOptions};
use crate::source::{Record, TopicReader};
use crate::writer::{OutRecord, TopicWriter};
use crate::{KafkaError, Result};

/// A bounded Kafka table read as batches of rows.
pub struct KafkaRows {
    reader: TopicReader,
    stream: Arc<StreamDef>,
    format: Format,
    decoded: VecDeque<Decoded>,
    /// With `'errors.deadletter.topic'`: where rejected records are also written.
    dead_letters: Option<(TopicWriter, String)>,
}

impl KafkaRows {
    /// Opens `stream`'s topic. Only what is built so far is taken: no key fields, no
    /// `upsert-kafka`.
    pub fn open(stream: Arc<StreamDef>, options: &KafkaOptions) -> Result<Self> {
        let name = &stream.name;
        if options.upsert {
            return Err(KafkaError::Option(format!(
                "table '{name}': 'upsert-kafka' tables cannot be read yet"
            )));
        }
        if !options.key_fields.is_empty() {
            return Err(KafkaError::Option(format!(
                "table '{name}': columns read from the record key ('key.fields') are not \
                 supported yet"
            )));
        }
        if options.value_format == Format::Raw {
            let fields = stream.physical_schema.fields();
            let one_text_column = fields.len() == 1
                && matches!(fields[0].data_type(), DataType::Utf8 | DataType::Binary);
            if !one_text_column {
                return Err(KafkaError::Option(format!(
                    "table '{name}': the 'raw' format reads each record's value into the \
                     table's one column, of type STRING or BYTES"
                )));
            }
        }
        let debezium = options.value_format == Format::DebeziumJson;
        if debezium != stream.is_debezium() {
            return Err(KafkaError::Option(format!(
                "table '{name}': 'format' = 'debezium-json' must be given as the table's format"
            )));
        }
        let dead_letters = match &options.deadletter_topic {
            Some(topic) => Some((
                TopicWriter::open(&options.bootstrap_servers, &options.client)?,
                topic.clone(),
            )),
            None => None,
        };
        Ok(KafkaRows {
            reader: TopicReader::open(options)?,
            stream,
            format: options.value_format,
            decoded: VecDeque::new(),
            dead_letters,
        })
    }

    /// The error reported for `record`, rejected for `reason`; with a dead-letter topic,
    /// the record is also written there (its key and value as they were), with headers
    /// naming its topic, partition, offset and the reason.
    fn rejected(&self, record: &Record, reason: &str) -> Result<RowError> {
        if let Some((writer, topic)) = &self.dead_letters {
            let partition = record.partition.to_string();
            let offset = record.offset.to_string();
            let headers: [(&str, &[u8]); 4] = [
                ("sluice.error.topic", self.reader.topic().as_bytes()),
                ("sluice.error.partition", partition.as_bytes()),
                ("sluice.error.offset", offset.as_bytes()),
                ("sluice.error.reason", reason.as_bytes()),
            ];
            let dead = OutRecord {
                partition: None,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                timestamp: record.timestamp,
                headers: &headers,
            };
            writer.send(topic, dead)?;
        }
        Ok(RowError {
            line: record.offset as u64,
            reason: format!("partition {}: {reason}", record.partition),
        })
    }

    /// `records`' values as the table's one column (`'raw'`): bytes as they are, or text,
    /// where a value that is not UTF-8 is rejected. A tombstone is a NULL.
    fn decode_raw(&mut self, records: &[Record]) -> Result<()> {
        let schema = self.stream.physical_schema.clone();
        let mut errors = Vec::new();
        let column: ArrayRef = match schema.field(0).data_type() {
            DataType::Binary => Arc::new(BinaryArray::from_iter(
                records.iter().map(|r| r.value.as_deref()),
            )),
            _ => {
                let mut kept = Vec::with_capacity(records.len());
                for record in records {
                    match record.value.as_deref().map(std::str::from_utf8) {
                        Some(Err(_)) => {
                            errors.push(self.rejected(record, "the value is not UTF-8 text")?)
                        }
                        Some(Ok(text)) => kept.push(Some(text)),
                        None => kept.push(None),
                    }
                }
                Arc::new(StringArray::from(kept))
            }
        };
        let rows = RecordBatch::try_new(schema, vec![column])?;
        self.decoded.push_back(Decoded {
            rows: Changes::inserts(rows),
            errors,
        });
        Ok(())
    }

    /// Decodes `records` into batches, reporting bad rows by partition and offset.
    fn decode(&mut self, records: &[Record]) -> Result<()> {
        if self.format == Format::Raw {
            return self.decode_raw(records);
        }
        let mut text = Vec::new();
        // Per line of `text`, the record it belongs to (the CSV header belongs to none).
        let mut line_records: Vec<Option<usize>> = Vec::new();
        let format = match self.format {
            Format::Csv => {
                let names: Vec<String> = self
                    .stream
                    .physical_schema
                    .fields()
                    .iter()
                    .map(|f| format!("\"{}\"", f.name().replace('"', "\"\"")))
                    .collect();
                text.extend_from_slice(names.join(",").as_bytes());
                text.push(b'\n');
                line_records.push(None);
                FileFormat::Csv
            }
            _ => FileFormat::JsonLines,
        };
        for (index, record) in records.iter().enumerate() {
            let Some(value) = &record.value else {
                continue;
            };
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            let value = value.strip_suffix(b"\r").unwrap_or(value);
            match self.format {
                // JSON allows line breaks only between tokens: as spaces they mean the same.
                Format::Json | Format::DebeziumJson => text.extend(
                    value
                        .iter()
                        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
                ),
                _ => text.extend_from_slice(value),
            }
            text.push(b'\n');
            let lines = match self.format {
                Format::Csv => 1 + value.iter().filter(|&&b| b == b'\n').count(),
                _ => 1,
            };
            line_records.extend(std::iter::repeat_n(Some(index), lines));
        }
        let mut reader = input::reader(Cursor::new(text), format, &self.stream)?;
        while let Some(mut decoded) = reader.next_batch()? {
            let mut errors = Vec::with_capacity(decoded.errors.len());
            for error in std::mem::take(&mut decoded.errors) {
                let record = line_records
                    .get(error.line.saturating_sub(1) as usize)
                    .copied()
                    .flatten()
                    .and_then(|index| records.get(index));
                errors.push(match record {
                    Some(record) => self.rejected(record, &error.reason)?,
                    None => error,
                });
            }
            decoded.errors = errors;
            self.decoded.push_back(decoded);
        }
        Ok(())
    }
}

impl RowReader for KafkaRows {
    fn next_batch(&mut self) -> sluice_engine::Result<Option<Decoded>> {
        loop {
            if let Some(decoded) = self.decoded.pop_front() {
                return Ok(Some(decoded));
            }
            let records = self.reader.next_records(BATCH_ROWS).map_err(engine_error)?;
            if records.is_empty() {
                // The end: the dead letters are acknowledged before the run goes on.
                if let Some((writer, _)) = &self.dead_letters {
                    writer.flush().map_err(engine_error)?;
                }
                return Ok(None);
            }
            self.decode(&records).map_err(engine_error)?;
        }
    }
}

fn engine_error(error: KafkaError) -> sluice_engine::EngineError {
    match error {
        KafkaError::Engine(error) => error,
        other => sluice_engine::EngineError::Input(other.to_string()),
    }
}
