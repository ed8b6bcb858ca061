//! The pattern crate's error type.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CepError {
    /// The `PATTERN` text is not a valid row pattern; the message says where.
    #[error("PATTERN: {0}")]
    Syntax(String),
    /// A valid pattern that cannot be used as written.
    #[error("PATTERN: {0}")]
    Invalid(String),
}
