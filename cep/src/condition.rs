//! `DEFINE` conditions: what they read besides the row (rows some way off, and the match so
//! far), and testing one row against one when it reads the match.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array, new_null_array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;
use sluice_engine::{EngineError, Result};

use crate::Binding;
use crate::navigation::{Navigation, navigation_value};
use crate::operator::MatchRecognizeConfig;
use crate::partition::Partition;

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

/// Whether `row` satisfies `condition` of `variable` after the rows `path` of the match so
/// far; `None` when a row it reads has not come yet.
pub(crate) fn holds_in_context(
    condition: &Condition,
    variable: usize,
    row: usize,
    path: &[Binding],
    config: &MatchRecognizeConfig,
    state: &Partition,
    complete: bool,
) -> Result<Option<bool>> {
    let relative = row - state.base;
    let rows = state.rows()?;
    let mut columns = rows.slice(relative, 1).columns().to_vec();
    let mut with_row = path.to_vec();
    with_row.push(Binding {
        row,
        variable,
        excluded: false,
    });
    let schema = condition.schema.clone();
    for (index, derived) in condition.derived.iter().enumerate() {
        let data_type = schema.field(rows.num_columns() + index).data_type();
        let value = match derived {
            Derived::Shift(expression, offset) => {
                let at = relative as i64 + offset;
                if at >= rows.num_rows() as i64 && !complete {
                    return Ok(None);
                }
                if at < 0 || at >= rows.num_rows() as i64 {
                    new_null_array(data_type, 1)
                } else {
                    expression
                        .evaluate(&rows.slice(at as usize, 1))?
                        .into_array(1)?
                }
            }
            Derived::Context(navigation) => {
                let value = navigation_value(
                    navigation,
                    config.program.variables(),
                    state,
                    &with_row,
                    0,
                    data_type,
                    None,
                )?;
                value.to_array_of_size(1)?
            }
        };
        columns.push(value);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(1));
    let batch = RecordBatch::try_new_with_options(schema, columns, &options)?;
    let holds = condition.predicate.evaluate(&batch)?.into_array(1)?;
    let Some(holds) = holds.as_boolean_opt() else {
        return Err(EngineError::Input(
            "a DEFINE condition is not a boolean".into(),
        ));
    };
    Ok(Some(holds.is_valid(0) && holds.value(0)))
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
