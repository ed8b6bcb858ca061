//! `Project`: computes the output columns of each row.
//!
//! - **State**: none.
//! - **Emits**: for each incoming batch, at once, one output row per input row, each column
//!   evaluated as a DataFusion physical expression over the whole batch; row kinds are kept.
//! - **Watermark**: passed through; nothing to expire.
//! - **Late rows**: passed through like any other row.
//! - **End of input**: nothing more.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;

use crate::operator::Operator;
use crate::{Changes, Result};

pub struct Project {
    expressions: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl Project {
    /// One expression per column of `schema`.
    pub fn new(expressions: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Project {
            expressions,
            schema,
        }
    }
}

impl Operator for Project {
    fn name(&self) -> &str {
        "project"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let rows = changes.num_rows();
        let columns = self
            .expressions
            .iter()
            .map(|expression| expression.evaluate(&changes.rows)?.into_array(rows))
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        out.push(changes.with_rows(batch));
        Ok(())
    }
}
