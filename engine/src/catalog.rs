//! Stream definitions: schemas, computed columns, the event-time attribute and its watermark.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;

use crate::{EngineError, Result};

/// A column computed from the others when a row enters the stream (`name AS expr`).
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    pub name: String,
    /// Evaluated over the stream's physical columns.
    pub expression: Arc<dyn PhysicalExpr>,
    /// The expression as the user wrote it.
    pub sql: String,
}

/// The event-time attribute of a stream and the watermark strategy declared for it.
#[derive(Debug, Clone)]
pub struct EventTime {
    /// Index of the event-time column in the stream's schema.
    pub column: usize,
    /// Evaluated over each batch of complete rows; the watermark is its running maximum.
    pub watermark: Arc<dyn PhysicalExpr>,
    /// The watermark expression as the user wrote it, e.g. `ts - INTERVAL '5' SECOND`.
    pub watermark_sql: String,
}

/// A declared stream (or upsert table).
#[derive(Debug, Clone)]
pub struct StreamDef {
    pub name: String,
    /// Every column, in declaration order, computed ones included.
    pub schema: SchemaRef,
    /// The columns inputs carry: `schema` without the computed columns.
    pub physical_schema: SchemaRef,
    /// For each column of `schema`: where it comes from.
    pub layout: Vec<ColumnSource>,
    pub event_time: Option<EventTime>,
    /// `PRIMARY KEY (...) NOT ENFORCED` columns: the stream is an upsert table.
    pub primary_key: Vec<String>,
    /// `WITH (...)` options, in declaration order.
    pub options: Vec<(String, String)>,
    /// Whether rows may be retractions without a primary key to normalise them by: a
    /// materialized view's changelog, or a `'debezium-json'` stream without `PRIMARY KEY`.
    pub changelog: bool,
}

/// Where a stream column's values come from.
#[derive(Debug, Clone)]
pub enum ColumnSource {
    /// Column `n` of the physical rows.
    Physical(usize),
    Computed(ComputedColumn),
}

impl StreamDef {
    /// Whether the stream is keyed (an upsert table) rather than append-only.
    pub fn is_table(&self) -> bool {
        !self.primary_key.is_empty()
    }

    /// Whether rows may be updates and deletes (`-U`, `+U`, `-D`), not only inserts.
    pub fn reads_changes(&self) -> bool {
        self.is_table() || self.changelog
    }

    /// Whether input files are Debezium change events (`'format' = 'debezium-json'`).
    pub fn is_debezium(&self) -> bool {
        self.option("format")
            .is_some_and(|f| f.eq_ignore_ascii_case("debezium-json"))
    }

    /// Whether events that do not fit the stream are skipped and kept apart
    /// (`'errors.tolerance' = 'all'`, Kafka Connect's name) rather than failing their publish.
    pub fn tolerates_errors(&self) -> bool {
        self.option("errors.tolerance")
            .is_some_and(|value| value.eq_ignore_ascii_case("all"))
    }

    /// The value of `WITH` option `key` (keys compare case-insensitively).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Complete rows of `schema` from physical rows, evaluating the computed columns.
    pub fn complete(&self, physical: &RecordBatch) -> Result<RecordBatch> {
        self.check_physical(physical)?;
        if self.layout.len() == physical.num_columns() {
            return Ok(RecordBatch::try_new_with_options(
                self.schema.clone(),
                physical.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(physical.num_rows())),
            )?);
        }
        let columns = self
            .layout
            .iter()
            .map(|source| match source {
                ColumnSource::Physical(index) => Ok(physical.column(*index).clone()),
                ColumnSource::Computed(column) => Ok(column
                    .expression
                    .evaluate(physical)?
                    .into_array(physical.num_rows())?),
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(physical.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// The physical columns of complete rows (drops the computed ones).
    pub fn physical_part(&self, complete: &RecordBatch) -> Result<RecordBatch> {
        let indices: Vec<usize> = self
            .layout
            .iter()
            .enumerate()
            .filter(|(_, source)| matches!(source, ColumnSource::Physical(_)))
            .map(|(index, _)| index)
            .collect();
        let projected = complete.project(&indices)?;
        Ok(RecordBatch::try_new_with_options(
            self.physical_schema.clone(),
            projected.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(complete.num_rows())),
        )?)
    }

    fn check_physical(&self, physical: &RecordBatch) -> Result<()> {
        let expected = self.physical_schema.fields();
        let actual = physical.schema();
        let mismatch = |reason: String| EngineError::SchemaMismatch {
            stream: self.name.clone(),
            reason,
        };
        if actual.fields().len() != expected.len() {
            return Err(mismatch(format!(
                "expected {} columns, got {}",
                expected.len(),
                actual.fields().len()
            )));
        }
        for (want, got) in expected.iter().zip(actual.fields()) {
            if want.data_type() != got.data_type() {
                return Err(mismatch(format!(
                    "column '{}' is {}, got {}",
                    want.name(),
                    want.data_type(),
                    got.data_type()
                )));
            }
        }
        Ok(())
    }
}

/// The streams the engine knows, by name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    streams: BTreeMap<String, Arc<StreamDef>>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Arc<StreamDef>> {
        self.streams.get(name)
    }

    pub fn streams(&self) -> impl Iterator<Item = &Arc<StreamDef>> {
        self.streams.values()
    }

    pub fn insert(&mut self, stream: StreamDef) -> Result<Arc<StreamDef>> {
        if self.streams.contains_key(&stream.name) {
            return Err(EngineError::AlreadyExists(stream.name));
        }
        let stream = Arc::new(stream);
        self.streams.insert(stream.name.clone(), stream.clone());
        Ok(stream)
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<StreamDef>> {
        self.streams.remove(name)
    }
}
