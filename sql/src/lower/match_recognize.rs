//! Lowering `MATCH_RECOGNIZE` to the `MatchRecognize` operator of `sluice-cep`.

use std::sync::Arc;

use datafusion::common::DFSchemaRef;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{EmptyRelation, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use sluice_cep::{
    AllRows, Condition, Derived, MatchRecognize, MatchRecognizeConfig, Navigate, Navigation,
    Program, RowLabel, Skip,
};
use sluice_engine::AggregateCall;

use super::Lowering;
use super::node::Lowered;
use super::proctime::is_proctime;
use super::schema::arrow_schema;
use crate::match_recognize::plan::{
    Derived as DerivedPlan, LABEL_COLUMNS, MatchRecognizeNode, NavKind, NavPlan,
};
use crate::match_recognize::{EmptyMatches, SkipTo};
use crate::{Result, SqlError};

impl Lowering<'_> {
    /// `expr` with DataFusion's type coercion applied, as the analyzer does for queries.
    fn coerced(&self, expr: &Expr, schema: &DFSchemaRef) -> Result<Expr> {
        let empty = LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: schema.clone(),
        });
        let plan = LogicalPlanBuilder::from(empty)
            .project(vec![expr.clone()])?
            .build()?;
        let analyzed = self.state.analyzer().execute_and_check(
            plan,
            self.state.config_options(),
            |_, _| {},
        )?;
        match analyzed {
            LogicalPlan::Projection(projection) => Ok(projection.expr[0].clone().unalias()),
            _ => Ok(expr.clone()),
        }
    }

    /// The aggregate call `call` over `input`, with DataFusion's type coercion applied.
    fn coerced_aggregate(&self, call: &Expr, input: &LogicalPlan) -> Result<Expr> {
        let plan = LogicalPlanBuilder::from(input.clone())
            .aggregate(Vec::<Expr>::new(), vec![call.clone()])?
            .build()?;
        let analyzed = self.state.analyzer().execute_and_check(
            plan,
            self.state.config_options(),
            |_, _| {},
        )?;
        match analyzed {
            LogicalPlan::Aggregate(aggregate) => Ok(aggregate.aggr_expr[0].clone().unalias()),
            _ => Ok(call.clone()),
        }
    }

    pub(super) fn lower_match_recognize(&mut self, node: &MatchRecognizeNode) -> Result<Lowered> {
        let plan = &node.plan;
        let late_upstream = !self.builder.has_late_schema();
        let input = self.lower(&node.input)?;
        let input = self.session_rows(input)?;
        // Rows from an operator with the late side output (another pattern, a window
        // aggregation) come before the watermark passes them, so none is late here.
        let late_upstream = late_upstream && self.builder.has_late_schema();
        if input.updating {
            return Err(SqlError::Unsupported(
                "MATCH_RECOGNIZE over an updating input".into(),
            ));
        }
        let arrival_order = input.event_time != Some(plan.time_column)
            && is_proctime(&node.input, plan.time_column, self.catalog);
        if arrival_order && !plan.tie_breakers.is_empty() {
            return Err(SqlError::Unsupported(
                "MATCH_RECOGNIZE ORDER BY a PROCTIME() attribute (arrival order) with further \
                 keys"
                    .into(),
            ));
        }
        if input.event_time != Some(plan.time_column) && !arrival_order {
            return Err(SqlError::Invalid(format!(
                "MATCH_RECOGNIZE ORDER BY {}: the first key must be the event-time attribute \
                 (the column of the input's WATERMARK) or a PROCTIME() attribute",
                node.input.schema().field(plan.time_column).name()
            )));
        }
        let input_schema = node.input.schema();
        let physical = |expr: &Expr, schema: &DFSchemaRef| -> Result<Arc<dyn PhysicalExpr>> {
            let coerced = self.coerced(expr, schema)?;
            Ok(self.state.create_physical_expr(coerced, schema)?)
        };
        let program =
            Program::compile(&plan.pattern).map_err(|e| SqlError::Invalid(e.to_string()))?;
        let variables = program.variables().to_vec();
        let index_of = |name: &str| -> Result<usize> {
            variables.iter().position(|v| v == name).ok_or_else(|| {
                SqlError::Invalid(format!("'{name}' is not a variable of the PATTERN"))
            })
        };
        let members = |name: &String| -> Result<Vec<usize>> {
            match plan.subsets.iter().find(|(subset, _)| subset == name) {
                Some((_, members)) => members.iter().map(|m| index_of(m)).collect(),
                None => Ok(vec![index_of(name)?]),
            }
        };
        let navigation = |nav: &NavPlan| -> Result<Navigation> {
            let variables = match &nav.variables {
                Some(names) => Some(
                    names
                        .iter()
                        .map(members)
                        .collect::<Result<Vec<_>>>()?
                        .concat(),
                ),
                None => None,
            };
            let navigate = match nav.kind {
                NavKind::First => Navigate::First,
                NavKind::Last => Navigate::Last,
                NavKind::Prev => Navigate::Prev,
                NavKind::Next => Navigate::Next,
                NavKind::Classifier => Navigate::Classifier,
                NavKind::MatchNumber => Navigate::MatchNumber,
                NavKind::Aggregate => {
                    let Some(call) = &nav.argument else {
                        return Err(SqlError::Invalid("an aggregate without a call".into()));
                    };
                    // An aggregate of CLASSIFIER() or MATCH_NUMBER() reads them from columns
                    // after the input's own, which the operator adds to the rows it takes.
                    let input = match nav.label {
                        Some(_) => with_label_columns(&node.input)?,
                        None => node.input.clone(),
                    };
                    let call = self.coerced_aggregate(call, &input)?;
                    let aggregated_schema = input.schema();
                    let lowered = LoweredAggregateBuilder::new(
                        &call,
                        aggregated_schema,
                        aggregated_schema.as_arrow(),
                        self.state.execution_props(),
                        &PhysicalPlanningContext::default(),
                    )
                    .build()?;
                    Navigate::Aggregate(AggregateCall {
                        function: lowered.aggregate,
                        filter: lowered.filter,
                    })
                }
            };
            let argument = match (&navigate, &nav.argument) {
                (Navigate::Aggregate(_), _) | (_, None) => None,
                (_, Some(argument)) => Some(physical(argument, input_schema)?),
            };
            let label = match nav.label {
                Some(NavKind::Classifier) => Some(RowLabel::Classifier),
                Some(NavKind::MatchNumber) => Some(RowLabel::MatchNumber),
                _ => None,
            };
            Ok(Navigation {
                is_final: nav.is_final,
                navigate,
                variables,
                argument,
                offset: nav.offset,
                label,
                shift: nav.shift,
            })
        };
        let mut conditions: Vec<Option<Condition>> = variables.iter().map(|_| None).collect();
        for condition in &plan.conditions {
            let derived = condition
                .derived
                .iter()
                .map(|d| match d {
                    DerivedPlan::Shift(expr, offset) => {
                        Ok(Derived::Shift(physical(expr, input_schema)?, *offset))
                    }
                    DerivedPlan::Context(nav) => Ok(Derived::Context(navigation(nav)?)),
                })
                .collect::<Result<Vec<_>>>()?;
            conditions[index_of(&condition.variable)?] = Some(Condition {
                predicate: physical(&condition.predicate, &condition.schema)?,
                derived,
                schema: arrow_schema(&condition.schema),
            });
        }
        let navigations = plan
            .navigations
            .iter()
            .map(navigation)
            .collect::<Result<Vec<_>>>()?;
        let skip = match &plan.skip {
            SkipTo::PastLastRow => Skip::PastLastRow,
            SkipTo::NextRow => Skip::ToNextRow,
            SkipTo::First(name) => Skip::ToFirst(index_of(name)?),
            SkipTo::Last(name) => Skip::ToLast(index_of(name)?),
        };
        let config = MatchRecognizeConfig {
            program,
            all_rows: plan.all_rows.map(|mode| match mode {
                EmptyMatches::Show => AllRows::ShowEmpty,
                EmptyMatches::Omit => AllRows::OmitEmpty,
                EmptyMatches::WithUnmatched => AllRows::WithUnmatched,
            }),
            partition_by: plan
                .partition_by
                .iter()
                .map(|e| physical(e, input_schema))
                .collect::<Result<_>>()?,
            time_column: plan.time_column,
            arrival_order,
            tie_breakers: plan
                .tie_breakers
                .iter()
                .map(|(e, descending)| Ok((physical(e, input_schema)?, *descending)))
                .collect::<Result<_>>()?,
            conditions,
            navigations,
            navigation_schema: arrow_schema(&plan.navigation_schema),
            measures: plan
                .measures
                .iter()
                .map(|e| physical(e, &plan.navigation_schema))
                .collect::<Result<_>>()?,
            skip,
            within: plan.within,
            emit_timeouts: plan.emit_timeouts,
            idle_ttl: self.settings.state_ttl,
            output_event_time: plan.output_time.is_some() && !arrival_order,
            read_columns: plan.read_columns.clone(),
            schema: arrow_schema(&node.schema),
        };
        let input_arrow = self.builder.schema(input.node);
        // In arrival order nothing is late.
        let reports_late = !late_upstream && !arrival_order;
        if reports_late {
            self.builder.set_late_schema(input_arrow.clone())?;
        }
        let operator = MatchRecognize::new(config, input_arrow)?;
        let node = self.builder.add(Box::new(operator), &[input.node]);
        if !reports_late {
            self.builder.ignore_late(node);
        }
        Ok(Lowered {
            node,
            event_time: plan.output_time.filter(|_| !arrival_order),
            window: None,
            allowed_lateness: 0,
            updating: false,
            session: None,
            sliced: None,
        })
    }
}

/// `input` with `CLASSIFIER()` and `MATCH_NUMBER()` as NULL columns after its own (see
/// `LABEL_COLUMNS`), to plan aggregates that read them.
fn with_label_columns(input: &LogicalPlan) -> Result<LogicalPlan> {
    let mut columns: Vec<Expr> = input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    for (name, data_type) in LABEL_COLUMNS {
        let null = datafusion::common::ScalarValue::try_from(&data_type)?;
        columns.push(datafusion::logical_expr::lit(null).alias(name));
    }
    Ok(LogicalPlanBuilder::from(input.clone())
        .project(columns)?
        .build()?)
}
