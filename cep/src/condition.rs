//! `DEFINE` conditions: what they read besides the row (rows some way off, and the match so
//! far), and reading a column some rows away.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;
use sluice_engine::Result;

use crate::navigation::Navigation;

/// A column a condition reads besides the row's own.
pub enum Derived {
    /// An expression over the rows, read `offset` rows away (`PREV` of the row itself
    /// negative, `NEXT` positive).
    Shift(Arc<dyn PhysicalExpr>, i64),
    /// A value of the match so far, the row being tested counted as bound to the variable.
    Context(Navigation),
}

/// A variable's `DEFINE` condition over a row: its columns followed by the derived ones.
pub struct Condition {
    pub predicate: Arc<dyn PhysicalExpr>,
    pub derived: Vec<Derived>,
    /// What the predicate reads: the input's columns, then one per derived column.
    pub schema: SchemaRef,
}

impl Condition {
    /// Whether the condition reads the match so far (it is then tested row by row, path by
    /// path, rather than for all rows at once).
    pub(crate) fn reads_match(&self) -> bool {
        self.derived
            .iter()
            .any(|d| matches!(d, Derived::Context(_)))
    }

    pub(crate) fn shifts(&self) -> impl Iterator<Item = (&Arc<dyn PhysicalExpr>, i64)> {
        self.derived.iter().filter_map(|d| match d {
            Derived::Shift(expression, offset) => Some((expression, *offset)),
            Derived::Context(_) => None,
        })
    }
}

/// `values[start..end]` read `offset` rows away (NULL outside `values`).
pub(crate) fn shifted(
    values: &ArrayRef,
    start: usize,
    end: usize,
    offset: i64,
) -> Result<ArrayRef> {
    let indices: Vec<Option<u32>> = (start..end)
        .map(|row| {
            let at = row as i64 + offset;
            (at >= 0 && (at as usize) < values.len()).then_some(at as u32)
        })
        .collect();
    Ok(take(values.as_ref(), &UInt32Array::from(indices), None)?)
}
