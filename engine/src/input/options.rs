//! How a stream's text inputs (CSV, JSON lines) are read: its NULL spelling, and whether an
//! `op` column may carry updates and deletes.

use crate::catalog::StreamDef;

/// How text fields are read.
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// A field with exactly this text is NULL (an empty field always is).
    pub null_literal: Option<String>,
    /// Whether rows may be updates and deletes; otherwise only `+I` is accepted in `op`.
    pub changelog: bool,
}

impl TextOptions {
    /// How text inputs of `stream` are read: `'csv.null-literal'` adds a NULL spelling, and
    /// an `op` column is read as each row's change kind.
    pub fn of_stream(stream: &StreamDef) -> Self {
        TextOptions {
            null_literal: stream.option("csv.null-literal").map(str::to_string),
            changelog: stream.reads_changes(),
        }
    }
}
