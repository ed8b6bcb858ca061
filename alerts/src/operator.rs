//! The operator that matches every row of its input against a shared [`AlertSet`].
//!
//! The set is shared with whoever registers and drops alerts, so alerts come and go
//! between batches without the query being restarted; an alert sees only rows that arrive
//! after it was registered.
//!
//! - **State**: the shared set (see [`AlertSet`]): its alert index and, per suppressed
//!   alert and key, the event times of notified firings that can still pass a row over;
//!   here, only the late firings not yet taken.
//! - **Emits**: for each batch, the firings the batch causes (all `+I`), at once: nothing
//!   waits for the watermark. Only inserts and the new versions of updated rows fire.
//! - **Watermark**: only drops suppression state (the times whose interval has ended) and
//!   makes rows behind it late; it emits nothing.
//! - **Late rows**: matched as any other. A firing of a suppressed alert on a late row that
//!   no kept time passes over cannot be decided (a dropped time might have): it is not
//!   notified but goes to the late side output (op `late`); one that a kept time passes over is
//!   passed over. Firings of alerts without suppression are emitted as on time.
//! - **End of input**: emits nothing more.

use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::datatypes::SchemaRef;
use sluice_engine::operator::{Operator, OperatorMetrics};
use sluice_engine::time::Millis;
use sluice_engine::{Changes, EngineError, Result};

use crate::AlertSet;

/// An [`AlertSet`] that an operator reads while others change it.
pub type SharedAlerts = Arc<Mutex<AlertSet>>;

/// Bytes an alert takes in the index, roughly, for the state metric.
const BYTES_PER_ALERT: usize = 1200;

pub struct AlertOperator {
    alerts: SharedAlerts,
    schema: SchemaRef,
    late: Vec<Changes>,
}

impl AlertOperator {
    pub fn new(alerts: SharedAlerts) -> Result<AlertOperator> {
        let schema = lock(&alerts)?.firings().clone();
        Ok(AlertOperator {
            alerts,
            schema,
            late: Vec::new(),
        })
    }
}

/// The set, locked; a set left poisoned by a panic elsewhere is still consistent between
/// batches, but is reported rather than trusted.
pub fn lock(alerts: &SharedAlerts) -> Result<MutexGuard<'_, AlertSet>> {
    alerts.lock().map_err(|_| {
        EngineError::Input("the alert set was left unusable by an earlier failure".into())
    })
}

impl Operator for AlertOperator {
    fn name(&self) -> &str {
        "alerts"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let fired = lock(&self.alerts)?
            .fire(&changes)
            .map_err(|e| EngineError::Input(e.to_string()))?;
        out.extend(fired.notified.map(Changes::inserts));
        self.late.extend(fired.late.map(Changes::late));
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, _out: &mut Vec<Changes>) -> Result<()> {
        lock(&self.alerts)?.expire(watermark);
        Ok(())
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn metrics(&self) -> OperatorMetrics {
        match self.alerts.lock() {
            Ok(set) => OperatorMetrics {
                state_bytes: set.len() * BYTES_PER_ALERT + set.suppressed_keys() * 64,
                open_windows: set.suppressed_keys(),
            },
            Err(_) => OperatorMetrics::default(),
        }
    }

    fn explain(&self) -> String {
        match self.alerts.lock() {
            Ok(set) => format!("{} alert(s)", set.len()),
            Err(_) => String::new(),
        }
    }
}
