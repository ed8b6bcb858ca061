//! `Filter`: keeps the rows for which a predicate is true.
//!
//! - **State**: none.
//! - **Emits**: for each incoming batch, at once, the rows where the predicate is TRUE (NULL
//!   counts as false, as in SQL), each keeping its row kind. A row whose predicate fails
//!   (division by zero, overflow) is left out and reported as a failure.
//! - **Watermark**: passed through; nothing to expire.
//! - **Late rows**: passed through like any other row.
//! - **End of input**: nothing more.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::prep_null_mask_filter;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;

use crate::failure::{checked_arithmetic, evaluate_each};
use crate::operator::Operator;
use crate::{Changes, Result, RowFailure};

pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
    failures: Vec<RowFailure>,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef) -> Self {
        Filter {
            predicate: checked_arithmetic(predicate),
            schema,
            failures: Vec::new(),
        }
    }
}

impl Operator for Filter {
    fn keeps_state(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        "filter"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let (result, failed) = evaluate_each(&self.predicate, &changes.rows)?;
        self.failures.extend(
            failed
                .into_iter()
                .map(|(row, error)| RowFailure::of(&changes.rows, row, error)),
        );
        let mask = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "filter predicate {} is {}, not BOOLEAN",
                    self.predicate,
                    result.data_type()
                ))
            })?;
        let mask = if mask.null_count() > 0 {
            prep_null_mask_filter(mask)
        } else {
            mask.clone()
        };
        match mask.true_count() {
            0 => {}
            n if n == changes.num_rows() => out.push(changes),
            _ => out.push(changes.filter(&mask)?),
        }
        Ok(())
    }

    fn take_failures(&mut self) -> Vec<RowFailure> {
        std::mem::take(&mut self.failures)
    }
}
