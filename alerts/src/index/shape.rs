//! Shapes: the ways rows are hash-partitioned for the index keys of one kind, by a column's
//! value, by the cell of a numeric column's value, by a string column's first bytes, or all
//! in one partition; and the hash of the partition a row is in.

use super::cells::{cell_of_width, cell_width};
use super::hash::{cell_hash, row_hash, value_hash};
use crate::predicate::{ColumnRef, Family, Views};

/// How rows are put in partitions: by a column's value, by the cell of a numeric
/// column's value (cells `2^level` wide), by a string column's first bytes, or all in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Value(ColumnRef),
    Cell(ColumnRef, i32),
    Prefix(ColumnRef, usize),
    All,
}

impl Shape {
    /// The string column partitions are by the value of, when there is one.
    pub(super) fn symbol_column(self) -> Option<usize> {
        match self {
            Shape::Value(column) if column.family == Family::Str => Some(column.column),
            _ => None,
        }
    }

    /// The hash of the partition `row` is in; `None` when it is in none (a NULL, a string
    /// shorter than the prefix).
    pub(super) fn row_hash(self, views: &Views, row: usize) -> Option<u64> {
        match self {
            Shape::Value(column) => row_hash(views, column, row),
            Shape::Cell(column, level) => {
                cell_of_width(number_at(views, column, row)?, cell_width(level)).map(cell_hash)
            }
            Shape::Prefix(column, length) => {
                let value = views.str(column.column, row)?;
                let prefix = value.get(..length)?;
                Some(value_hash(3, prefix.as_bytes()))
            }
            Shape::All => Some(0),
        }
    }
}

/// The value of numeric column `column` at `row`, as a float.
fn number_at(views: &Views, column: ColumnRef, row: usize) -> Option<f64> {
    match column.family {
        Family::Int => views.int(column.column, row).map(|v| v as f64),
        Family::Float => views.float(column.column, row),
        _ => None,
    }
}
