//! The SQL front end's error type.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use sluice_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL; the message names the position.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Valid SQL that does not make sense here: unknown names, wrong types, ...
    #[error("{0}")]
    Invalid(String),
    /// Valid SQL that sluice cannot run (yet) as a streaming query.
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;

impl From<ParserError> for SqlError {
    fn from(error: ParserError) -> Self {
        match error {
            ParserError::ParserError(message) | ParserError::TokenizerError(message) => {
                SqlError::Syntax(message)
            }
            ParserError::RecursionLimitExceeded => {
                SqlError::Syntax("the statement is nested too deeply".into())
            }
        }
    }
}

impl From<DataFusionError> for SqlError {
    fn from(error: DataFusionError) -> Self {
        match error.find_root() {
            DataFusionError::SQL(parser, _) => SqlError::Syntax(parser.to_string()),
            DataFusionError::NotImplemented(message) => SqlError::Unsupported(message.clone()),
            DataFusionError::Plan(message) => SqlError::Invalid(message.clone()),
            DataFusionError::SchemaError(error, _) => SqlError::Invalid(error.to_string()),
            other => SqlError::Invalid(other.to_string()),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for SqlError {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        SqlError::Engine(EngineError::Arrow(error))
    }
}
