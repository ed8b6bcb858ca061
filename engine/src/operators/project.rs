//! `Project`: computes the output columns of each row.
//!
//! - **State**: none.
//! - **Emits**: for each incoming batch, at once, one output row per input row, each column
//!   evaluated as a DataFusion physical expression over the whole batch; row kinds are kept.
//!   A row where an expression fails (division by zero, overflow, a failed cast) is left
//!   out and reported as a failure.
//! - **Watermark**: passed through; nothing to expire.
//! - **Late rows**: passed through like any other row.
//! - **End of input**: nothing more.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;

use crate::failure::{checked_arithmetic, evaluate_each};
use crate::operator::Operator;
use crate::{Changes, Result, RowFailure};

pub struct Project {
    expressions: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    failures: Vec<RowFailure>,
}

impl Project {
    /// One expression per column of `schema`.
    pub fn new(expressions: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Project {
            expressions: expressions.into_iter().map(checked_arithmetic).collect(),
            schema,
            failures: Vec::new(),
        }
    }
}

impl Operator for Project {
    fn keeps_state(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        "project"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let rows = changes.num_rows();
        let mut columns = Vec::with_capacity(self.expressions.len());
        let mut failed: BTreeMap<usize, String> = BTreeMap::new();
        for expression in &self.expressions {
            let (column, failures) = evaluate_each(expression, &changes.rows)?;
            columns.push(column);
            for (row, error) in failures {
                failed.entry(row).or_insert(error);
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        if failed.is_empty() {
            out.push(changes.with_rows(batch));
            return Ok(());
        }
        let keep = BooleanArray::from_iter((0..rows).map(|row| Some(!failed.contains_key(&row))));
        self.failures.extend(
            failed
                .into_iter()
                .map(|(row, error)| RowFailure::of(&changes.rows, row, error)),
        );
        let kept = changes.with_rows(batch).filter(&keep)?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
        Ok(())
    }

    fn take_failures(&mut self) -> Vec<RowFailure> {
        std::mem::take(&mut self.failures)
    }
}
