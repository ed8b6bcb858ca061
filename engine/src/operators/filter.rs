//! `Filter`: keeps the rows for which a predicate is true.
//!
//! - **State**: none.
//! - **Emits**: for each incoming batch, at once, the rows where the predicate is TRUE (NULL
//!   counts as false, as in SQL), each keeping its row kind.
//! - **Watermark**: passed through; nothing to expire.
//! - **Late rows**: passed through like any other row.
//! - **End of input**: nothing more.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::prep_null_mask_filter;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;

use crate::operator::Operator;
use crate::{Changes, Result};

pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef) -> Self {
        Filter { predicate, schema }
    }
}

impl Operator for Filter {
    fn name(&self) -> &str {
        "filter"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let result = self
            .predicate
            .evaluate(&changes.rows)?
            .into_array(changes.num_rows())?;
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
}
