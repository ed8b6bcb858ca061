//! Lowering `ORDER BY` (with `LIMIT`/`OFFSET`) at the end of a query.
//!
//! - First key the event-time attribute, ascending, no `LIMIT`: a streaming sort
//!   ([`TimeSort`]), rows released as the watermark passes them.
//! - With a `LIMIT` (no `OFFSET`): an updating Top-N over the whole result
//!   ([`UpdatingTopN`] without partitions), as Flink runs it.
//! - Anything else: when every input ends (`sluice run`), the final rows sorted at end of
//!   input ([`FinalSort`]); a standing query refuses it.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::logical_expr::{FetchType, Limit, LogicalPlan, SkipType, Sort, SortExpr};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use sluice_engine::operators::{FinalSort, OrderKey, Project, TimeSort, UpdatingTopN};

use super::Lowering;
use super::node::Lowered;
use super::schema::passes_column;
use crate::{Result, SqlError};

impl Lowering<'_> {
    /// `LIMIT`/`OFFSET` over `ORDER BY`; other limits are refused.
    pub(super) fn lower_limit(&mut self, limit: &Limit) -> Result<Lowered> {
        let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
            return Err(SqlError::Unsupported(
                "LIMIT over a stream without ORDER BY (ORDER BY ... LIMIT n keeps the first n \
                 rows as they change)"
                    .into(),
            ));
        };
        let skip = match limit.get_skip_type()? {
            SkipType::Literal(skip) => skip,
            SkipType::UnsupportedExpr => {
                return Err(SqlError::Unsupported(
                    "an OFFSET that is not a number".into(),
                ));
            }
        };
        let fetch = match limit.get_fetch_type()? {
            FetchType::Literal(fetch) => fetch,
            FetchType::UnsupportedExpr => {
                return Err(SqlError::Unsupported("a LIMIT that is not a number".into()));
            }
        };
        let fetch = match (fetch, sort.fetch) {
            (Some(a), Some(b)) => Some(a.min(b.saturating_sub(skip))),
            (a, b) => a.or(b.map(|b| b.saturating_sub(skip))),
        };
        self.lower_sort(sort, skip, fetch)
    }

    pub(super) fn lower_sort(
        &mut self,
        sort: &Sort,
        skip: usize,
        fetch: Option<usize>,
    ) -> Result<Lowered> {
        let late_before = self.builder.has_late_schema();
        let input = self.lower(&sort.input)?;
        let input = self.session_rows(input)?;
        // Rows from an operator with the late side output (a window aggregation, a pattern)
        // come before the watermark passes them: none is late here.
        let late_upstream = !late_before && self.builder.has_late_schema();
        let input_schema = sort.input.schema();
        let order_by = sort
            .expr
            .iter()
            .map(|key| order_key(key, self, input_schema))
            .collect::<Result<Vec<_>>>()?;
        let schema = self.builder.schema(input.node);
        // The event-time attribute, when it is the first key, ascending, of an append-only
        // input, and no LIMIT or OFFSET follows.
        let time_column = input.event_time.filter(|time| {
            !input.updating
                && fetch.is_none()
                && skip == 0
                && sort.expr.first().is_some_and(|first| {
                    first.asc && passes_column(&first.expr, input_schema, *time)
                })
        });
        if let Some(time_column) = time_column {
            let operator = TimeSort::new(time_column, order_by[1..].to_vec(), schema.clone());
            let node = self.builder.add(Box::new(operator), &[input.node]);
            match late_upstream {
                true => self.builder.ignore_late(node),
                false => self.builder.set_late_schema(schema)?,
            }
            return Ok(Lowered { node, ..input });
        }
        if self.settings.bounded_inputs {
            let operator = FinalSort::new(order_by, skip, fetch, schema)?;
            let node = self.builder.add(Box::new(operator), &[input.node]);
            return Ok(Lowered {
                node,
                event_time: None,
                window: None,
                updating: false,
                ..input
            });
        }
        let Some(limit) = fetch.filter(|_| skip == 0) else {
            return Err(SqlError::Unsupported(
                "ORDER BY over an unbounded stream: a standing query can sort by its \
                 event-time attribute first, ascending (rows come out as the watermark passes \
                 them), or keep the first rows as they change (ORDER BY ... LIMIT n, without \
                 OFFSET); any order works in `sluice run` over files, sorted at end of input"
                    .into(),
            ));
        };
        self.lower_sorted_limit(input, order_by, limit, schema)
    }

    /// The first `limit` rows in `order_by` order, as an updating Top-N without its rank.
    fn lower_sorted_limit(
        &mut self,
        input: Lowered,
        order_by: Vec<OrderKey>,
        limit: usize,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<Lowered> {
        let mut ranked_fields = schema.fields().to_vec();
        ranked_fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
            "__rank",
            datafusion::arrow::datatypes::DataType::UInt64,
            false,
        )));
        let ranked = Arc::new(datafusion::arrow::datatypes::Schema::new(ranked_fields));
        let operator = UpdatingTopN::new(
            Vec::new(),
            order_by,
            limit,
            !input.updating,
            schema.clone(),
            ranked,
        )?;
        let node = self.builder.add(Box::new(operator), &[input.node]);
        let columns: Vec<Arc<dyn PhysicalExpr>> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(index, field)| Arc::new(Column::new(field.name(), index)) as _)
            .collect();
        let node = self
            .builder
            .add(Box::new(Project::new(columns, schema)), &[node]);
        Ok(Lowered {
            node,
            event_time: None,
            window: None,
            updating: true,
            ..input
        })
    }
}

/// One `ORDER BY` key, over the sort's input.
fn order_key(
    key: &SortExpr,
    lowering: &Lowering<'_>,
    input_schema: &datafusion::common::DFSchema,
) -> Result<OrderKey> {
    Ok(OrderKey {
        expression: lowering
            .state
            .create_physical_expr(key.expr.clone(), input_schema)?,
        options: SortOptions {
            descending: !key.asc,
            nulls_first: key.nulls_first,
        },
    })
}
