//! The alerts crate's error type.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AlertError {
    /// An alert's condition cannot be compiled or evaluated, or a name or limit is refused.
    #[error("alert: {0}")]
    Invalid(String),
}
