//! A partition as the pattern search sees it ([`Rows`]): which rows satisfy each variable's
//! condition, testing a row against a condition that reads the match so far, and the rows'
//! event times.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, new_null_array};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use sluice_engine::time::{Millis, WATERMARK_MIN};
use sluice_engine::{EngineError, Result};

use crate::condition::{Condition, Derived};
use crate::config::MatchRecognizeConfig;
use crate::navigation::navigation_value;
use crate::partition::Partition;
use crate::scalar_condition::{ScalarCondition, Tested};
use crate::store::RowStore;
use crate::{Binding, Rows};

/// A partition seen by the search.
pub(crate) struct PartitionRows<'a> {
    pub(crate) partition: &'a Partition,
    pub(crate) config: &'a MatchRecognizeConfig,
    pub(crate) complete: bool,
    pub(crate) future: Millis,
    /// Rows (numbered as in the partition) a condition that reads the match could not be
    /// computed for, with the first error each gave; the search treats the condition as not
    /// holding, and the operator reports the row.
    pub(crate) failed: BTreeMap<usize, String>,
    /// The rows, for the conditions compiled to be tested without DataFusion.
    pub(crate) store: &'a RowStore,
    /// Per variable, its condition compiled so, if it reads the match and could be.
    pub(crate) scalar: &'a [Option<ScalarCondition>],
    /// The partition's rows gathered for a test the compiled condition left to DataFusion,
    /// when the partition's own are not (see [`Partition::gather`]).
    pub(crate) gathered: OnceCell<RecordBatch>,
}

impl PartitionRows<'_> {
    /// The partition's rows from its base, as one batch.
    fn rows(&self) -> Result<&RecordBatch> {
        if let Ok(rows) = self.partition.rows() {
            return Ok(rows);
        }
        if self.gathered.get().is_none() {
            let rows = self.store.gather(self.partition.refs.iter())?;
            let _ = self.gathered.set(rows);
        }
        self.gathered
            .get()
            .ok_or_else(|| EngineError::Input("a pattern partition's rows are missing".into()))
    }
}

impl PartitionRows<'_> {
    /// The variables whose context-free conditions `row` satisfies, once classified.
    pub(crate) fn class(&self, row: usize) -> Option<u64> {
        self.partition
            .classes
            .get(row - self.partition.base)
            .copied()
    }
}

impl Rows for PartitionRows<'_> {
    fn available(&self) -> usize {
        self.partition.available()
    }

    fn complete(&self) -> bool {
        self.complete
    }

    fn holds(&mut self, variable: usize, row: usize, path: &[Binding]) -> Option<bool> {
        if let Some(Some(scalar)) = self.scalar.get(variable) {
            match scalar.test(
                self.store,
                self.partition,
                variable,
                row,
                path,
                self.complete,
            ) {
                Tested::Holds(holds) => return Some(holds),
                Tested::NeedMore => return None,
                Tested::General => {}
            }
        }
        if let Some(condition) = self.config.conditions[variable]
            .as_ref()
            .filter(|c| c.reads_match())
        {
            let holds = self.rows().and_then(|rows| {
                holds_in_context(
                    condition,
                    variable,
                    row,
                    path,
                    self.config,
                    self.partition,
                    rows,
                    self.complete,
                )
            });
            return match holds {
                Ok(holds) => holds,
                Err(error) => {
                    self.failed
                        .entry(row)
                        .or_insert_with(|| self.config.condition_failed(variable, error));
                    Some(false)
                }
            };
        }
        Some(self.class(row)? & (1 << variable) != 0)
    }

    fn context_free(&self) -> bool {
        !self
            .config
            .conditions
            .iter()
            .flatten()
            .any(Condition::reads_match)
    }

    fn time(&self, row: usize) -> i64 {
        self.partition
            .times
            .get(row.saturating_sub(self.partition.base))
            .copied()
            .unwrap_or(WATERMARK_MIN)
    }

    fn future_time(&self) -> i64 {
        self.future
    }
}

/// Whether `row` satisfies `condition` of `variable` after the rows `path` of the match so
/// far; `None` when a row it reads has not come yet. `rows` are the partition's from its
/// base.
#[allow(clippy::too_many_arguments)]
fn holds_in_context(
    condition: &Condition,
    variable: usize,
    row: usize,
    path: &[Binding],
    config: &MatchRecognizeConfig,
    state: &Partition,
    rows: &RecordBatch,
    complete: bool,
) -> Result<Option<bool>> {
    let relative = row - state.base;
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
                // A plain column is read from `rows`, which need not be the partition's own.
                let values = match &navigation.argument {
                    Some(argument)
                        if argument
                            .downcast_ref::<datafusion::physical_expr::expressions::Column>()
                            .is_some() =>
                    {
                        Some(argument.evaluate(rows)?.into_array(rows.num_rows())?)
                    }
                    _ => None,
                };
                let value = navigation_value(
                    navigation,
                    config.program.variables(),
                    state,
                    &with_row,
                    0,
                    data_type,
                    values.as_ref(),
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
