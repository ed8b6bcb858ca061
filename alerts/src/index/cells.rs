//! Cell geometry: a bounded numeric range as the cells it covers, fixed-width buckets of a
//! power-of-two width (a one-dimensional grid), a quarter of the smallest power of two at
//! least the range's width, so a range covers two to five cells.

use crate::predicate::ColumnRef;

/// A bounded numeric range, as the cells of one size it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Cells {
    pub(super) column: ColumnRef,
    /// Cells are `2^level` wide.
    pub(super) level: i32,
    pub(super) first: i64,
    pub(super) last: i64,
}

impl Cells {
    /// The cells of `[low, high]`: two to five of a quarter of the smallest power-of-two
    /// size at least its width.
    pub(super) fn of(column: ColumnRef, low: f64, high: f64) -> Option<Cells> {
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return None;
        }
        let level = (high - low)
            .max(f64::MIN_POSITIVE)
            .log2()
            .ceil()
            .clamp(-40.0, 62.0) as i32
            - CELLS_PER_WIDTH_LOG2;
        let first = cell(low, level)?;
        let last = cell(high, level)?;
        Some(Cells {
            column,
            level,
            first,
            last,
        })
    }
}

/// How much smaller than a range's width its cells are, as a power of two.
const CELLS_PER_WIDTH_LOG2: i32 = 2;

/// The cell of size `2^level` that `value` falls in.
fn cell(value: f64, level: i32) -> Option<i64> {
    cell_of_width(value, cell_width(level))
}

pub(super) fn cell_width(level: i32) -> f64 {
    2f64.powi(level)
}

/// The cell of size `width` that `value` falls in.
pub(super) fn cell_of_width(value: f64, width: f64) -> Option<i64> {
    let cell = (value / width).floor();
    (cell.is_finite() && cell.abs() < 9.0e18).then_some(cell as i64)
}
