//! The log's error type.

use arrow::error::ArrowError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A request the log cannot take: a bad group name, a batch over the limits, a layout
    /// that does not match the one on disk.
    #[error("{0}")]
    Invalid(String),
    /// A file of the log does not hold what it should; nothing after `position` is trusted.
    #[error("{file} is damaged at byte {position}: {reason}")]
    Corrupt {
        file: String,
        position: u64,
        reason: String,
    },
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
