//! A batch's columns as typed Arrow arrays, each in the families alerts compare it in, and
//! per string column compared by interned string, each row's symbol.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::record_batch::RecordBatch;

use super::ir::{ColumnRef, Family, Lit};
use crate::{AlertError, Result};

/// A batch's columns, each in the families its alerts compare it in.
pub struct Views {
    ints: Vec<Option<Int64Array>>,
    floats: Vec<Option<Float64Array>>,
    pub(super) strs: Vec<Option<StringArray>>,
    bools: Vec<Option<BooleanArray>>,
    nulls: Vec<Option<Arc<dyn Array>>>,
    /// Per string column compared by symbol: each row's symbol ([`NO_SYMBOL`] for a string
    /// no alert names, [`NULL_SYMBOL`] for NULL).
    pub(super) symbols: Vec<Option<Vec<u32>>>,
}

/// The symbol of a string no alert compares with.
pub(super) const NO_SYMBOL: u32 = u32::MAX;
/// The symbol of NULL.
pub(super) const NULL_SYMBOL: u32 = u32::MAX - 1;

impl Views {
    /// Views of `batch`'s columns in each of `used`.
    pub fn new(batch: &RecordBatch, used: &[ColumnRef]) -> Result<Views> {
        let width = batch.num_columns();
        let mut views = Views {
            ints: vec![None; width],
            floats: vec![None; width],
            strs: vec![None; width],
            bools: vec![None; width],
            nulls: batch
                .columns()
                .iter()
                .map(|c| Some(Arc::clone(c)))
                .collect(),
            symbols: vec![None; width],
        };
        for column in used {
            let Some(source) = batch.columns().get(column.column) else {
                continue;
            };
            let cast = cast(source, &column.family.data_type())
                .map_err(|e| AlertError::Invalid(e.to_string()))?;
            let any = cast.as_any();
            match column.family {
                Family::Int => {
                    views.ints[column.column] = any.downcast_ref::<Int64Array>().cloned()
                }
                Family::Float => {
                    views.floats[column.column] = any.downcast_ref::<Float64Array>().cloned()
                }
                Family::Str => {
                    views.strs[column.column] = any.downcast_ref::<StringArray>().cloned()
                }
                Family::Bool => {
                    views.bools[column.column] = any.downcast_ref::<BooleanArray>().cloned()
                }
            }
        }
        Ok(views)
    }

    pub fn int(&self, column: usize, row: usize) -> Option<i64> {
        let array = self.ints.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    pub fn float(&self, column: usize, row: usize) -> Option<f64> {
        let array = self.floats.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    pub fn str(&self, column: usize, row: usize) -> Option<&str> {
        let array = self.strs.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    /// The symbol of the string at `row` (`None` for NULL).
    pub fn symbol(&self, column: usize, row: usize) -> Option<u32> {
        let symbols = self.symbols.get(column)?.as_ref()?;
        symbols.get(row).copied().filter(|s| *s != NULL_SYMBOL)
    }

    pub fn bool(&self, column: usize, row: usize) -> Option<bool> {
        let array = self.bools.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    pub(crate) fn int_array(&self, column: usize) -> Option<&Int64Array> {
        self.ints.get(column)?.as_ref()
    }

    pub(crate) fn float_array(&self, column: usize) -> Option<&Float64Array> {
        self.floats.get(column)?.as_ref()
    }

    /// Each row's symbol in string column `column`, when alerts compare it by symbol.
    pub(crate) fn symbols_of(&self, column: usize) -> Option<&[u32]> {
        self.symbols.get(column)?.as_deref()
    }

    pub(super) fn is_null(&self, column: usize, row: usize) -> bool {
        self.nulls
            .get(column)
            .and_then(Option::as_ref)
            .is_none_or(|array| array.is_null(row))
    }

    /// How the value of `column` at `row` orders against `lit` (`None` for NULL).
    pub(super) fn order(&self, column: ColumnRef, row: usize, lit: &Lit) -> Option<Ordering> {
        Some(match lit {
            Lit::Int(lit) => self.int(column.column, row)?.cmp(lit),
            Lit::Float(lit) => self.float(column.column, row)?.total_cmp(lit),
            Lit::Str(lit) => self.str(column.column, row)?.cmp(lit.as_str()),
            Lit::Bool(lit) => self.bool(column.column, row)?.cmp(lit),
        })
    }
}
