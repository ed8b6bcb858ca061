//! Session settings: `SET 'key' = 'value'`, applied to the queries started after it.

use sluice_engine::time::{Millis, parse_duration};

use crate::{Result, SqlError};

/// How long a regular join keeps a key's rows after their last write (`0` keeps them).
pub const STATE_TTL: &str = "table.exec.state.ttl";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub state_ttl: Option<Millis>,
    /// Whether every input ends (`sluice run` over files), so a query may hold its results
    /// until then (`ORDER BY` other than by the event time). Not a `SET` key.
    pub bounded_inputs: bool,
}

impl Settings {
    /// Applies `SET 'key' = 'value'`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if key.eq_ignore_ascii_case(STATE_TTL) {
            let millis = parse_duration(value)
                .map_err(|e| SqlError::Invalid(format!("setting '{STATE_TTL}': {e}")))?;
            self.state_ttl = (millis > 0).then_some(millis);
            return Ok(());
        }
        Err(SqlError::Invalid(format!(
            "unknown setting '{key}' (the settings are '{STATE_TTL}')"
        )))
    }
}
