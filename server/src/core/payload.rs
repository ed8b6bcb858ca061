//! A publish's payload, JSON events or CSV text, decoded for its stream into one batch of
//! changes: all rows are accepted or none, unless the stream tolerates errors, when the
//! events that do not fit are set apart.

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

/// An event (or CSV line) that does not fit its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The event's number in the publish, or the CSV line's, from 1.
    pub number: u64,
    pub reason: String,
    /// The event as sent.
    pub text: String,
}

/// A publish's rows, decoded.
pub struct Decoded {
    /// The rows that fit, if any.
    pub changes: Option<Changes>,
    /// Events that did not fit, when the stream tolerates them (otherwise the publish fails).
    pub rejected: Vec<Rejected>,
}

/// Decodes a publish's rows for `def`'s stream, in one batch. Unless the stream tolerates
/// errors (`'errors.tolerance' = 'all'`), all are accepted or none.
pub fn decode(def: &StreamDef, payload: &Payload) -> Result<Decoded, ServeError> {
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
    let what = match payload {
        Payload::Csv(_) => "line",
        Payload::Events(_) => "event",
    };
    let tolerant = def.tolerates_errors();
    let mut rows = reader(text.as_bytes(), format, def)?;
    let mut batches = Vec::new();
    let mut rejected = Vec::new();
    // The payload's lines, split once the first event is rejected.
    let mut lines: Option<Vec<&str>> = None;
    while let Some(decoded) = rows.next_batch()? {
        for error in decoded.errors {
            if !tolerant {
                return Err(ServeError::Request(format!(
                    "{what} {} does not fit stream '{}': {}",
                    error.line, def.name, error.reason
                )));
            }
            let lines = lines.get_or_insert_with(|| text.lines().collect());
            let line = usize::try_from(error.line.saturating_sub(1)).unwrap_or(usize::MAX);
            rejected.push(Rejected {
                number: error.line,
                text: lines.get(line).copied().unwrap_or_default().to_string(),
                reason: error.reason,
            });
        }
        if decoded.rows.num_rows() > 0 {
            batches.push(decoded.rows);
        }
    }
    if batches.is_empty() && rejected.is_empty() {
        return Err(ServeError::Request("the publish has no events".into()));
    }
    let changes = match batches.is_empty() {
        true => None,
        false => Some(Changes::concat(&batches)?),
    };
    Ok(Decoded { changes, rejected })
}
