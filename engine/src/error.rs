//! The engine's error type.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Everything that can go wrong inside the runtime, phrased for the person who caused it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown stream '{0}'")]
    UnknownStream(String),
    #[error("'{0}' already exists")]
    AlreadyExists(String),
    #[error("cannot drop '{name}': it is used by {user}")]
    InUse { name: String, user: String },
    #[error("query would feed stream '{0}' back into itself")]
    Cycle(String),
    #[error("rows for '{stream}' do not match its schema: {reason}")]
    SchemaMismatch { stream: String, reason: String },
    #[error("{0}")]
    Input(String),
    #[error("operator '{operator}' failed: {source}")]
    Operator {
        operator: String,
        #[source]
        source: DataFusionError,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{file} is damaged at byte {position}: {reason}")]
    Corrupt {
        file: String,
        position: u64,
        reason: String,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
