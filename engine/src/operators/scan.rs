//! `Scan`: where a stream's rows enter a query.
//!
//! - **State**: none.
//! - **Emits**: each incoming batch at once, narrowed to the columns the query reads.
//! - **Watermark**: passed through unchanged (the engine generates it from the stream's
//!   declared bound before it reaches this operator); nothing to expire.
//! - **Late rows**: passed through like any other row.
//! - **End of input**: nothing more.

use datafusion::arrow::datatypes::SchemaRef;

use crate::operator::Operator;
use crate::{Changes, Result};

pub struct Scan {
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
}

impl Scan {
    /// Reads rows of `stream_schema`, keeping only `projection` (all columns when `None`).
    pub fn new(stream_schema: SchemaRef, projection: Option<Vec<usize>>) -> Result<Self> {
        let schema = match &projection {
            Some(columns) => SchemaRef::new(stream_schema.project(columns)?),
            None => stream_schema,
        };
        Ok(Scan { projection, schema })
    }
}

impl Operator for Scan {
    fn keeps_state(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        "scan"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        match &self.projection {
            Some(columns) => {
                let rows = changes.rows.project(columns)?;
                out.push(changes.with_rows(rows));
            }
            None => out.push(changes),
        }
        Ok(())
    }
}
