//! Names as the catalog stores them: identifiers folded to lower case unless quoted, and
//! one-part object names.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};
use datafusion::sql::sqlparser::parser::ParserError;

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
            Some(ident) => Ok(identifier(ident)),
            None => Err(ParserError::ParserError(format!("'{name}' is not a name"))),
        },
        _ => Err(ParserError::ParserError(format!(
            "'{name}': qualified names are not supported"
        ))),
    }
}
