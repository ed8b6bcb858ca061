//! `Union`: `UNION ALL` of several inputs.
//!
//! - **State**: none.
//! - **Emits**: every incoming batch at once, its columns cast to the union's common types.
//! - **Watermark**: the minimum over the inputs (the graph combines them), so a slow input
//!   holds the union back rather than making the other's rows late; nothing to expire.
//! - **Late rows**: passed through like any other row.
//! - **End of input**: nothing more (it comes once every input has ended).

use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::operator::Operator;
use crate::{Changes, Result};

pub struct Union {
    schema: SchemaRef,
}

impl Union {
    pub fn new(schema: SchemaRef) -> Self {
        Union { schema }
    }
}

impl Operator for Union {
    fn keeps_state(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        "union"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let columns = changes
            .rows
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| cast_with_options(column, field.data_type(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        let batch_options = RecordBatchOptions::new().with_row_count(Some(changes.num_rows()));
        let rows = RecordBatch::try_new_with_options(self.schema.clone(), columns, &batch_options)?;
        out.push(changes.with_rows(rows));
        Ok(())
    }
}
