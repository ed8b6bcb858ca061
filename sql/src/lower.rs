//! Lowering an optimized DataFusion logical plan to a graph of streaming operators.
//!
//! Each supported plan node becomes one operator; expressions become DataFusion physical
//! expressions evaluated per batch. Alongside each node the lowering tracks which output
//! column, if any, is the event-time attribute: it survives projections that pass the column
//! through (renamed or not), and unions whose inputs all carry it in the same place.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use sluice_engine::operators::{Filter, Project, Scan, Union, WindowAssign};
use sluice_engine::{Catalog, Changes, GraphBuilder, NodeId};

use crate::window_tvf::WindowTvfNode;
use crate::{Result, SqlError};

/// A lowered plan node: where its rows come out, and its event-time column.
#[derive(Debug, Clone, Copy)]
pub struct Lowered {
    pub node: NodeId,
    pub event_time: Option<usize>,
}

/// Builds a graph for one query.
pub struct Lowering<'a> {
    state: &'a SessionState,
    catalog: &'a Catalog,
    pub builder: GraphBuilder,
}

impl<'a> Lowering<'a> {
    pub fn new(state: &'a SessionState, catalog: &'a Catalog) -> Self {
        Lowering {
            state,
            catalog,
            builder: GraphBuilder::new(),
        }
    }

    pub fn lower(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if scan.fetch.is_some() || !scan.filters.is_empty() {
                    return Err(unsupported(plan));
                }
                let name = scan.table_name.table();
                let stream = self
                    .catalog
                    .get(name)
                    .ok_or_else(|| SqlError::Invalid(format!("unknown stream '{name}'")))?;
                let operator = Scan::new(stream.schema.clone(), scan.projection.clone())?;
                let node = self.builder.add_source(name, Box::new(operator));
                let event_time =
                    stream
                        .event_time
                        .as_ref()
                        .and_then(|time| match &scan.projection {
                            Some(columns) => columns.iter().position(|c| *c == time.column),
                            None => Some(time.column),
                        });
                Ok(Lowered { node, event_time })
            }
            LogicalPlan::Filter(filter) => {
                let input = self.lower(&filter.input)?;
                let predicate = self
                    .state
                    .create_physical_expr(filter.predicate.clone(), filter.input.schema())?;
                let schema = self.builder.schema(input.node);
                let node = self
                    .builder
                    .add(Box::new(Filter::new(predicate, schema)), &[input.node]);
                Ok(Lowered { node, ..input })
            }
            LogicalPlan::Projection(projection) => {
                let input = self.lower(&projection.input)?;
                let input_schema = projection.input.schema();
                let expressions = projection
                    .expr
                    .iter()
                    .map(|e| self.state.create_physical_expr(e.clone(), input_schema))
                    .collect::<Result<Vec<_>, _>>()?;
                let schema = arrow_schema(&projection.schema);
                let event_time = input.event_time.and_then(|time| {
                    projection
                        .expr
                        .iter()
                        .position(|e| passes_column(e, input_schema, time))
                });
                let operator = Project::new(expressions, schema);
                let node = self.builder.add(Box::new(operator), &[input.node]);
                Ok(Lowered { node, event_time })
            }
            LogicalPlan::SubqueryAlias(alias) => self.lower(&alias.input),
            LogicalPlan::Union(union) => {
                let inputs = union
                    .inputs
                    .iter()
                    .map(|input| self.lower(input))
                    .collect::<Result<Vec<_>>>()?;
                let first = inputs.first().and_then(|input| input.event_time);
                let event_time = first.filter(|_| inputs.iter().all(|i| i.event_time == first));
                let nodes: Vec<NodeId> = inputs.iter().map(|input| input.node).collect();
                let operator = Union::new(arrow_schema(&union.schema));
                let node = self.builder.add(Box::new(operator), &nodes);
                Ok(Lowered { node, event_time })
            }
            LogicalPlan::Extension(extension) => {
                let Some(node) = extension.node.as_any().downcast_ref::<WindowTvfNode>() else {
                    return Err(unsupported(plan));
                };
                let input = self.lower(&node.input)?;
                if input.event_time != Some(node.time_column) {
                    let column = node.input.schema().field(node.time_column).name();
                    return Err(SqlError::Invalid(format!(
                        "DESCRIPTOR({column}): window functions need the event-time \
                         attribute (the column of the input's WATERMARK)"
                    )));
                }
                let schema = arrow_schema(&node.schema);
                let operator = WindowAssign::new(node.windows, node.time_column, schema.clone());
                let node = self.builder.add(Box::new(operator), &[input.node]);
                // window_time, the last column, is the new event-time attribute.
                let event_time = Some(schema.fields().len() - 1);
                Ok(Lowered { node, event_time })
            }
            LogicalPlan::Values(values) => {
                let schema = arrow_schema(&values.schema);
                let rows = self.evaluate_values(&values.values, &schema)?;
                self.constant(schema, rows)
            }
            LogicalPlan::EmptyRelation(empty) => {
                let schema = arrow_schema(&empty.schema);
                let rows = usize::from(empty.produce_one_row);
                let options = RecordBatchOptions::new().with_row_count(Some(rows));
                let columns = schema
                    .fields()
                    .iter()
                    .map(|f| datafusion::arrow::array::new_null_array(f.data_type(), rows))
                    .collect();
                let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
                self.constant(schema, batch)
            }
            _ => Err(unsupported(plan)),
        }
    }

    fn constant(&mut self, schema: SchemaRef, rows: RecordBatch) -> Result<Lowered> {
        let operator = Scan::new(schema, None)?;
        let node = self
            .builder
            .add_constant(Box::new(operator), Changes::inserts(rows));
        Ok(Lowered {
            node,
            event_time: None,
        })
    }

    /// The rows of a `VALUES` list, each expression evaluated once.
    fn evaluate_values(&self, rows: &[Vec<Expr>], schema: &SchemaRef) -> Result<RecordBatch> {
        let empty = DFSchema::empty();
        let one_row = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (index, field) in schema.fields().iter().enumerate() {
            let mut values = Vec::with_capacity(rows.len());
            for row in rows {
                let expression = self
                    .state
                    .create_physical_expr(row[index].clone(), &empty)?;
                let value = expression.evaluate(&one_row)?.into_array(1)?;
                values.push(cast(&value, field.data_type())?);
            }
            let parts: Vec<&dyn datafusion::arrow::array::Array> =
                values.iter().map(|v| v.as_ref()).collect();
            columns.push(concat(&parts)?);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?)
    }
}

/// Whether `expression` is column `index` of `schema`, possibly renamed.
fn passes_column(expression: &Expr, schema: &DFSchema, index: usize) -> bool {
    match expression {
        Expr::Column(column) => schema.index_of_column(column).ok() == Some(index),
        Expr::Alias(alias) => passes_column(&alias.expr, schema, index),
        _ => false,
    }
}

fn arrow_schema(schema: &DFSchema) -> SchemaRef {
    Arc::new(schema.as_arrow().clone())
}

/// Names what a plan node needs that streaming queries do not have yet.
fn unsupported(plan: &LogicalPlan) -> SqlError {
    let what = match plan {
        LogicalPlan::Aggregate(_) => "GROUP BY and aggregate functions over a stream",
        LogicalPlan::Distinct(_) => "SELECT DISTINCT over a stream",
        LogicalPlan::Join(_) => "joins",
        LogicalPlan::Window(_) => "OVER windows",
        LogicalPlan::Sort(_) => "ORDER BY over an unbounded stream",
        LogicalPlan::Limit(_) => "LIMIT over an unbounded stream",
        LogicalPlan::TableScan(_) => "LIMIT over an unbounded stream",
        LogicalPlan::Subquery(_) => "subqueries",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::RecursiveQuery(_) => "recursive queries",
        _ => return SqlError::Unsupported(format!("'{}' in a streaming query", plan.display())),
    };
    SqlError::Unsupported(what.to_string())
}
