//! The session's alerts: each alert's definition by name, and the running alert set of each
//! source (the query that runs it and the [`SharedAlerts`] it evaluates).

use std::collections::BTreeMap;

use sluice_alerts::SharedAlerts;
use sluice_engine::QueryId;

/// The session's alerts, and the running set of each source.
#[derive(Default)]
pub(super) struct Alerts {
    pub(super) sets: BTreeMap<String, RunningSet>,
    pub(super) defs: BTreeMap<String, AlertDef>,
}

/// The alert set running on one source.
pub(super) struct RunningSet {
    pub(super) query: QueryId,
    pub(super) shared: SharedAlerts,
    /// The events' event-time column, if they have one.
    pub(super) event_time: Option<usize>,
}

/// One alert's definition.
pub(super) struct AlertDef {
    /// The stream or view it is on.
    pub(super) source: String,
    /// The condition and the options as SQL prints them, for `SHOW ALERTS` (made as the
    /// condition is compiled, apart from the session).
    pub(super) condition: String,
    pub(super) options: String,
}
