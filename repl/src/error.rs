//! Errors of the `sluice` command.

use sluice_engine::EngineError;
use sluice_sql::SqlError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A statement of the script failed; `location` is `FILE:LINE`.
    #[error("{location}: {source}")]
    Statement {
        location: String,
        #[source]
        source: SqlError,
    },
    #[error("{0}")]
    Usage(String),
    /// A bad input row under `--strict`.
    #[error("{path}:{line}: {reason}")]
    BadRow {
        path: String,
        line: u64,
        reason: String,
    },
    #[error("{path}: {source}")]
    Input {
        path: String,
        #[source]
        source: EngineError,
    },
    /// A Kafka table's options, broker or topic.
    #[error("Kafka table '{table}': {source}")]
    Kafka {
        table: String,
        #[source]
        source: sluice_kafka::KafkaError,
    },
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
