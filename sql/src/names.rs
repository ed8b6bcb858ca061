//! Names as the catalog stores them: identifiers folded to lower case unless quoted, and
//! one-part object names of at most [`MAX_NAME_BYTES`] bytes.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};
use datafusion::sql::sqlparser::parser::ParserError;
use sluice_engine::limits::MAX_NAME_BYTES;

/// An identifier as the catalog stores it: unquoted ones are case-insensitive (lower case).
pub fn identifier(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// A one-part object name (sluice has no schemas).
pub fn object_name(name: &ObjectName) -> Result<String, ParserError> {
    match name.0.as_slice() {
        [part] => match part.as_ident() {
            Some(ident) => checked(identifier(ident)),
            None => Err(ParserError::ParserError(format!("'{name}' is not a name"))),
        },
        _ => Err(ParserError::ParserError(format!(
            "'{name}': qualified names are not supported"
        ))),
    }
}

/// `name`, if it is not empty and within [`MAX_NAME_BYTES`].
pub fn checked(name: String) -> Result<String, ParserError> {
    if name.is_empty() {
        return Err(ParserError::ParserError("a name cannot be empty".into()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(ParserError::ParserError(format!(
            "the name '{name}' is {} bytes long (limit {MAX_NAME_BYTES})",
            name.len()
        )));
    }
    Ok(name)
}
