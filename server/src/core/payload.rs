//! A publish's payload, JSON events or CSV text, decoded for its stream into one batch of
//! changes: all rows are accepted or none.

use serde_json::Value;
use sluice_engine::Changes;
use sluice_engine::catalog::StreamDef;
use sluice_engine::input::{FileFormat, reader};

use crate::ServeError;

/// What a publish carries.
pub enum Payload {
    /// JSON objects.
    Events(Vec<Value>),
    /// CSV text with a header line.
    Csv(String),
}

/// Decodes a publish's rows for `def`'s stream, in one batch: all are accepted or none.
pub fn decode(def: &StreamDef, payload: &Payload) -> Result<Changes, ServeError> {
    let (text, format) = match payload {
        Payload::Csv(text) => (std::borrow::Cow::Borrowed(text.as_str()), FileFormat::Csv),
        Payload::Events(events) => {
            let mut text = String::new();
            for (index, event) in events.iter().enumerate() {
                if !event.is_object() {
                    return Err(ServeError::Request(format!(
                        "event {} is not a JSON object",
                        index + 1
                    )));
                }
                text.push_str(&event.to_string());
                text.push('\n');
            }
            (std::borrow::Cow::Owned(text), FileFormat::JsonLines)
        }
    };
    let mut rows = reader(text.as_bytes(), format, def)?;
    let mut batches = Vec::new();
    while let Some(decoded) = rows.next_batch()? {
        if let Some(error) = decoded.errors.first() {
            return Err(ServeError::Request(format!(
                "{} {} does not fit stream '{}': {}",
                match payload {
                    Payload::Csv(_) => "line",
                    Payload::Events(_) => "event",
                },
                error.line,
                def.name,
                error.reason
            )));
        }
        batches.push(decoded.rows);
    }
    if batches.is_empty() {
        return Err(ServeError::Request("the publish has no events".into()));
    }
    Ok(Changes::concat(&batches)?)
}
