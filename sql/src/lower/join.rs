//! Lowering joins: temporal, window, interval and regular joins.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan};
use sluice_engine::operators::{
    Correlation, Existence, IntervalJoin, JoinKind, JoinSide, RegularJoin, SemiJoin, TemporalJoin,
    VersionTime, WindowJoin,
};
use sluice_engine::{Catalog, Operator, StreamDef};

use super::Lowering;
use super::node::{Lowered, WindowColumns};
use super::schema::{arrow_schema, passes_column};
use crate::interval_join::split_time_bound;
use crate::temporal_join::take_marker;
use crate::{Result, SqlError};

/// The operator a join lowers to, and what its output carries.
struct JoinOperator {
    operator: Box<dyn Operator>,
    /// The output's event-time column.
    event_time: Option<usize>,
    /// Whether the output is a changelog with retractions.
    updating: bool,
}

impl Lowering<'_> {
    /// A join: a temporal join (`FOR SYSTEM_TIME AS OF`), a window join (two window table
    /// functions joined on their windows), an interval join (two append-only streams whose
    /// condition bounds their event times both ways), else a regular join with an updating
    /// result.
    pub(super) fn lower_join(&mut self, join: &Join) -> Result<Lowered> {
        // Semi and anti joins (EXISTS, IN, NOT EXISTS, NOT IN) keep left rows only.
        let existence = match join.join_type {
            JoinType::LeftSemi => Some(Existence::Semi),
            JoinType::LeftAnti if join.null_aware => Some(Existence::NotIn),
            JoinType::LeftAnti => Some(Existence::Anti),
            _ => None,
        };
        let kind = match join.join_type {
            JoinType::Inner | JoinType::LeftSemi | JoinType::LeftAnti => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::Right => JoinKind::Right,
            JoinType::Full => JoinKind::Full,
            other => {
                return Err(SqlError::Unsupported(format!("{other} joins over streams")));
            }
        };
        if join.on.is_empty() {
            return Err(SqlError::Unsupported(
                "joins without an equality condition on keys".into(),
            ));
        }
        let left = self.lower(&join.left)?;
        let left = self.session_rows(left)?;
        let right = self.lower(&join.right)?;
        let right = self.session_rows(right)?;
        let (left_schema, right_schema) = (join.left.schema(), join.right.schema());
        let side = |lowered: &Lowered, schema: &DFSchema, keys: Vec<&Expr>| {
            Ok::<_, SqlError>(JoinSide {
                keys: keys
                    .into_iter()
                    .map(|e| self.state.create_physical_expr(e.clone(), schema))
                    .collect::<Result<Vec<_>, _>>()?,
                time_column: lowered.event_time,
                schema: self.builder.schema(lowered.node),
            })
        };
        let left_side = side(&left, left_schema, join.on.iter().map(|(l, _)| l).collect())?;
        let right_side = side(
            &right,
            right_schema,
            join.on.iter().map(|(_, r)| r).collect(),
        )?;
        // The joined columns, which the residual condition reads (a semi join's output has
        // the left ones only).
        let joined = match existence {
            Some(_) => Arc::new(left_schema.as_ref().clone().join(right_schema)?),
            None => join.schema.clone(),
        };
        let residual = |expr: Option<Expr>| {
            expr.map(|e| self.state.create_physical_expr(e, &joined))
                .transpose()
        };
        let schema = arrow_schema(&joined);
        // NOT IN: the join keys after the first (the IN operand) correlate the subquery.
        let correlation = match existence {
            Some(Existence::NotIn) => {
                let keys = |side: usize, schema: &DFSchema| {
                    join.on[1..]
                        .iter()
                        .map(|(l, r)| {
                            let e = if side == 0 { l } else { r };
                            self.state.create_physical_expr(e.clone(), schema)
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                Some(Correlation::new(
                    [keys(0, left_schema)?, keys(1, right_schema)?],
                    &self.builder.schema(left.node),
                )?)
            }
            _ => None,
        };
        // Both sides' windows, when the join pairs them (a window join).
        let windows = left
            .window
            .zip(right.window)
            .filter(|(l, r)| joins_windows(join, *l, *r));
        let bounded = match (
            left.updating || right.updating,
            left.event_time,
            right.event_time,
        ) {
            (false, Some(left_time), Some(right_time)) => split_time_bound(
                join.filter.as_ref(),
                (left_schema, left_time),
                (right_schema, right_time),
            ),
            _ => None,
        };
        let JoinOperator {
            operator,
            event_time,
            updating,
        } = if let Some(existence) = existence.filter(|_| windows.is_none()) {
            if join.filter.is_some() && existence == Existence::NotIn {
                return Err(SqlError::Unsupported(
                    "NOT IN with a subquery correlated other than by equalities (write NOT \
                     EXISTS)"
                        .into(),
                ));
            }
            self.warnings.push(
                "the semi or anti join keeps every row of both inputs, so its state grows \
                 without bound (a state TTL does not bound it yet)"
                    .to_string(),
            );
            let operator = SemiJoin::new(
                existence,
                left_side,
                right_side,
                residual(join.filter.clone())?,
                correlation,
                schema,
            )?;
            JoinOperator {
                operator: Box::new(operator),
                event_time: None,
                updating: true,
            }
        } else if let Some((time, rest)) = take_marker(join.filter.as_ref()) {
            let version_time = self.temporal_version_time(join, &left, &right, &time)?;
            if version_time == VersionTime::Event {
                self.builder
                    .set_late_schema(self.builder.schema(left.node))?;
            }
            let operator = TemporalJoin::new(
                kind,
                version_time,
                left_side,
                right_side,
                residual(rest)?,
                schema,
            )?;
            JoinOperator {
                operator: Box::new(operator),
                event_time: left.event_time,
                updating: false,
            }
        } else if let Some((left_window, right_window)) = windows {
            if left.updating
                || right.updating
                || left.allowed_lateness.max(right.allowed_lateness) > 0
            {
                return Err(SqlError::Unsupported(
                    "window joins over updating inputs or with allowed lateness".into(),
                ));
            }
            let late_schema = qualified_schema(&joined);
            self.builder.set_late_schema(late_schema.clone())?;
            let mut operator = WindowJoin::new(
                kind,
                left_side,
                right_side,
                [left_window.end, right_window.end],
                residual(join.filter.clone())?,
                schema,
                late_schema,
            )?;
            let mut event_time = None;
            if let Some(existence) = existence {
                // The left rows as they are, when their window closes.
                operator = operator.keeping(existence, correlation);
                event_time = left.event_time;
            }
            JoinOperator {
                operator: Box::new(operator),
                event_time,
                updating: false,
            }
        } else if let Some((bound, rest)) = bounded {
            let operator =
                IntervalJoin::new(kind, bound, left_side, right_side, residual(rest)?, schema)?;
            JoinOperator {
                operator: Box::new(operator),
                event_time: left.event_time,
                updating: false,
            }
        } else {
            if self.settings.state_ttl.is_none() {
                self.warnings.push(
                    "the regular join keeps every row of both inputs, so its state grows \
                     without bound: bound the join in event time (an interval join), or set a \
                     state TTL (SET 'table.exec.state.ttl' = '1 h')"
                        .to_string(),
                );
            }
            let operator = RegularJoin::new(
                kind,
                left_side,
                right_side,
                residual(join.filter.clone())?,
                self.settings.state_ttl,
                schema,
            )?;
            JoinOperator {
                operator: Box::new(operator),
                event_time: None,
                updating: true,
            }
        };
        let node = self.builder.add(operator, &[left.node, right.node]);
        // A window semi or anti join keeps the left rows' windows.
        let window = left.window.filter(|_| existence.is_some() && !updating);
        Ok(Lowered {
            node,
            event_time,
            window,
            allowed_lateness: 0,
            updating,
            session: None,
            sliced: None,
        })
    }

    /// Checks a temporal join `left JOIN right FOR SYSTEM_TIME AS OF time`, and tells which
    /// time it looks versions up at.
    fn temporal_version_time(
        &self,
        join: &Join,
        left: &Lowered,
        right: &Lowered,
        time: &Expr,
    ) -> Result<VersionTime> {
        if !matches!(join.join_type, JoinType::Inner | JoinType::Left) {
            return Err(SqlError::Unsupported(
                "temporal joins other than INNER and LEFT".into(),
            ));
        }
        if left.updating {
            return Err(SqlError::Unsupported(
                "a temporal join of an updating input (the probe side must be append-only)".into(),
            ));
        }
        let Some(table) = scanned_stream(&join.right, self.catalog).filter(|t| t.is_table()) else {
            return Err(SqlError::Invalid(
                "FOR SYSTEM_TIME AS OF needs a table with a PRIMARY KEY".into(),
            ));
        };
        let right_keys: Vec<&str> = join
            .on
            .iter()
            .filter_map(|(_, r)| match r {
                Expr::Column(column) => Some(column.name.as_str()),
                _ => None,
            })
            .collect();
        if let Some(missing) = table
            .primary_key
            .iter()
            .find(|key| !right_keys.contains(&key.as_str()))
        {
            return Err(SqlError::Invalid(format!(
                "a temporal join with '{}' needs an equality on each of its PRIMARY KEY \
                 columns; '{missing}' has none",
                table.name
            )));
        }
        let left_schema = join.left.schema();
        let column = match time {
            Expr::Column(column) => left_schema.index_of_column(column).ok(),
            _ => None,
        };
        let Some(column) = column else {
            return Err(SqlError::Invalid(format!(
                "FOR SYSTEM_TIME AS OF {time}: expected a time column of the joined stream"
            )));
        };
        if left.event_time == Some(column) {
            if right.event_time.is_none() {
                return Err(SqlError::Invalid(format!(
                    "an event-time temporal join needs the event-time attribute of '{}' \
                     (a WATERMARK) to order its versions",
                    table.name
                )));
            }
            return Ok(VersionTime::Event);
        }
        match left_schema.field(column).data_type() {
            DataType::Timestamp(_, Some(_)) => Ok(VersionTime::Processing),
            _ => Err(SqlError::Invalid(format!(
                "FOR SYSTEM_TIME AS OF {time}: expected the stream's event-time attribute (an \
                 event-time temporal join) or a PROCTIME() column (a processing-time one)"
            ))),
        }
    }
}

/// Whether a join's keys pair the two sides' `window_start` and `window_end` columns.
fn joins_windows(join: &Join, left: WindowColumns, right: WindowColumns) -> bool {
    let pairs = |l: usize, r: usize| {
        join.on.iter().any(|(le, re)| {
            passes_column(le, join.left.schema(), l) && passes_column(re, join.right.schema(), r)
        })
    };
    pairs(left.start, right.start) && pairs(left.end, right.end)
}

/// The stream a plan reads, when it is one scan under aliases, projections and filters.
fn scanned_stream<'c>(plan: &LogicalPlan, catalog: &'c Catalog) -> Option<&'c Arc<StreamDef>> {
    match plan {
        LogicalPlan::TableScan(scan) => catalog.get(scan.table_name.table()),
        LogicalPlan::SubqueryAlias(alias) => scanned_stream(&alias.input, catalog),
        LogicalPlan::Projection(projection) => scanned_stream(&projection.input, catalog),
        LogicalPlan::Filter(filter) => scanned_stream(&filter.input, catalog),
        _ => None,
    }
}

/// `schema` with each column named by its qualifier too (`l.num`), to tell sides apart.
fn qualified_schema(schema: &DFSchema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .iter()
        .map(|(qualifier, field)| {
            let name = match qualifier {
                Some(qualifier) => format!("{qualifier}.{}", field.name()),
                None => field.name().clone(),
            };
            field.as_ref().clone().with_name(name)
        })
        .collect();
    Arc::new(Schema::new(fields))
}
