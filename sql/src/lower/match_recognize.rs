//! Lowering `MATCH_RECOGNIZE` to the `MatchRecognize` operator of `sluice-cep`.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use sluice_cep::{
    Condition, MatchRecognize, MatchRecognizeConfig, Navigate, Navigation, Program, Skip,
};
use sluice_engine::AggregateCall;

use super::{Lowered, Lowering, arrow_schema, session_not_aggregated};
use crate::match_recognize::SkipTo;
use crate::match_recognize::plan::{MatchRecognizeNode, NavKind};
use crate::{Result, SqlError};

impl Lowering<'_> {
    pub(super) fn lower_match_recognize(&mut self, node: &MatchRecognizeNode) -> Result<Lowered> {
        let plan = &node.plan;
        let input = self.lower(&node.input)?;
        if input.updating {
            return Err(SqlError::Unsupported(
                "MATCH_RECOGNIZE over an updating input".into(),
            ));
        }
        if input.session.is_some() {
            return Err(session_not_aggregated());
        }
        if input.event_time != Some(plan.time_column) {
            return Err(SqlError::Invalid(format!(
                "MATCH_RECOGNIZE ORDER BY {}: the first key must be the event-time attribute \
                 (the column of the input's WATERMARK)",
                node.input.schema().field(plan.time_column).name()
            )));
        }
        let input_schema = node.input.schema();
        let physical = |expr: &Expr, schema: &DFSchema| -> Result<Arc<dyn PhysicalExpr>> {
            Ok(self.state.create_physical_expr(expr.clone(), schema)?)
        };
        let program =
            Program::compile(&plan.pattern).map_err(|e| SqlError::Invalid(e.to_string()))?;
        let variables = program.variables().to_vec();
        let index_of = |name: &str| -> Result<usize> {
            variables.iter().position(|v| v == name).ok_or_else(|| {
                SqlError::Invalid(format!("'{name}' is not a variable of the PATTERN"))
            })
        };
        let mut conditions: Vec<Option<Condition>> = variables.iter().map(|_| None).collect();
        for condition in &plan.conditions {
            let shifts = condition
                .shifts
                .iter()
                .map(|(expr, offset)| Ok((physical(expr, input_schema)?, *offset)))
                .collect::<Result<Vec<_>>>()?;
            conditions[index_of(&condition.variable)?] = Some(Condition {
                predicate: physical(&condition.predicate, &condition.schema)?,
                shifts,
            });
        }
        let members = |name: &String| -> Result<Vec<usize>> {
            match plan.subsets.iter().find(|(subset, _)| subset == name) {
                Some((_, members)) => members.iter().map(|m| index_of(m)).collect(),
                None => Ok(vec![index_of(name)?]),
            }
        };
        let mut navigations = Vec::new();
        for navigation in &plan.navigations {
            let variables = match &navigation.variables {
                Some(names) => Some(
                    names
                        .iter()
                        .map(members)
                        .collect::<Result<Vec<_>>>()?
                        .concat(),
                ),
                None => None,
            };
            let (navigate, argument) = match navigation.kind {
                NavKind::First => (Navigate::First, navigation.argument.as_ref()),
                NavKind::Last => (Navigate::Last, navigation.argument.as_ref()),
                NavKind::Prev => (Navigate::Prev, navigation.argument.as_ref()),
                NavKind::Next => (Navigate::Next, navigation.argument.as_ref()),
                NavKind::Classifier => (Navigate::Classifier, None),
                NavKind::MatchNumber => (Navigate::MatchNumber, None),
                NavKind::Aggregate => {
                    let Some(call) = &navigation.argument else {
                        return Err(SqlError::Invalid("an aggregate without a call".into()));
                    };
                    let lowered = LoweredAggregateBuilder::new(
                        call,
                        input_schema,
                        input_schema.as_arrow(),
                        self.state.execution_props(),
                        &PhysicalPlanningContext::default(),
                    )
                    .build()?;
                    let call = AggregateCall {
                        function: lowered.aggregate,
                        filter: lowered.filter,
                    };
                    (Navigate::Aggregate(call), None)
                }
            };
            navigations.push(Navigation {
                navigate,
                variables,
                argument: argument.map(|a| physical(a, input_schema)).transpose()?,
                offset: navigation.offset,
            });
        }
        let skip = match &plan.skip {
            SkipTo::PastLastRow => Skip::PastLastRow,
            SkipTo::NextRow => Skip::ToNextRow,
            SkipTo::First(name) => Skip::ToFirst(index_of(name)?),
            SkipTo::Last(name) => Skip::ToLast(index_of(name)?),
        };
        let config = MatchRecognizeConfig {
            program,
            partition_by: plan
                .partition_by
                .iter()
                .map(|e| physical(e, input_schema))
                .collect::<Result<_>>()?,
            time_column: plan.time_column,
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
            schema: arrow_schema(&node.schema),
        };
        let input_arrow = self.builder.schema(input.node);
        self.builder.set_late_schema(input_arrow.clone())?;
        let operator = MatchRecognize::new(config, input_arrow)?;
        let node = self.builder.add(Box::new(operator), &[input.node]);
        Ok(Lowered {
            node,
            event_time: None,
            window: None,
            allowed_lateness: 0,
            updating: false,
            session: None,
            sliced: None,
        })
    }
}
