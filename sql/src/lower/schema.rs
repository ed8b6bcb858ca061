//! Schema helpers the lowering of every plan node uses: Arrow schemas of DataFusion
//! schemas, and whether an expression passes an input column through.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;

/// Whether `expression` is column `index` of `schema`, possibly renamed.
pub(super) fn passes_column(expression: &Expr, schema: &DFSchema, index: usize) -> bool {
    match expression {
        Expr::Column(column) => schema.index_of_column(column).ok() == Some(index),
        Expr::Alias(alias) => passes_column(&alias.expr, schema, index),
        _ => false,
    }
}

/// The Arrow schema inside a DataFusion schema.
pub(super) fn arrow_schema(schema: &DFSchema) -> SchemaRef {
    Arc::new(schema.as_arrow().clone())
}
