//! Kafka tables: a `CREATE TABLE ... WITH ('connector' = 'kafka', ...)` read from a topic and
//! written to one, with Flink's option names.
//!
//! [`options`] reads and checks the options; [`source`] reads a topic's partitions from their
//! start offsets (to their end offsets when the table is bounded) and decodes the records as
//! the table's rows ([`rows`]); [`sink`] writes result rows as records, through [`writer`],
//! which also creates topics.

pub mod options;
pub mod rows;
pub mod sink;
pub mod source;
pub mod writer;

/// What can go wrong with a Kafka table.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// An option is missing, unknown or has a value the connector does not take.
    #[error("{0}")]
    Option(String),
    /// The broker or the client failed.
    #[error("{0}")]
    Client(String),
    #[error(transparent)]
    Engine(#[from] sluice_engine::EngineError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

pub type Result<T, E = KafkaError> = std::result::Result<T, E>;
