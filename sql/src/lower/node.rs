//! The lowered plan node ([`Lowered`]): the operator its rows come out of, and what the
//! lowering tracks about them — the event-time column, the window columns of a window table
//! function, the allowed lateness, whether they are a changelog, `SESSION` partitioning and
//! window slicing.

use sluice_engine::NodeId;
use sluice_engine::time::Millis;
use sluice_engine::window::Windows;

use crate::SqlError;

/// A lowered plan node: where its rows come out, its event-time column, the columns holding
/// the `window_start` and `window_end` of a window table function if they survive, and the
/// allowed lateness of its sources.
#[derive(Debug, Clone)]
pub struct Lowered {
    pub node: NodeId,
    pub event_time: Option<usize>,
    pub window: Option<WindowColumns>,
    /// How long windowed state waits for late rows after the watermark passes a window
    /// (the source's `'allowed-lateness'` option; the largest over a union's inputs).
    pub allowed_lateness: Millis,
    /// Whether its rows are a changelog with retractions (`-U`, `-D`) rather than appends.
    pub updating: bool,
    /// For rows of a `SESSION` window function, which must be aggregated: where its
    /// `PARTITION BY` columns are (`None` for one a projection dropped).
    pub session: Option<Vec<Option<usize>>>,
    /// For rows assigned to the slices of these windows rather than to the windows.
    pub sliced: Option<Windows>,
}

/// Where the `window_start` and `window_end` columns of a window table function are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowColumns {
    pub start: usize,
    pub end: usize,
}

/// The error for rows of a `SESSION` window function ([`Lowered::session`]) that reach
/// anything but their aggregation without the columns that make their sessions.
pub fn session_not_aggregated() -> SqlError {
    SqlError::Unsupported(
        "rows of a SESSION window without window_start, window_end and its PARTITION BY \
         columns (keep them, or GROUP BY window_start, window_end [, keys])"
            .into(),
    )
}
