//! Planning a `MATCH_RECOGNIZE` clause: DataFusion resolves and types its expressions, and a
//! plan node carries them to the lowering.
//!
//! Each call that reads the match (`FIRST`, `LAST`, `PREV`, `NEXT`, aggregates over a
//! variable's rows, `CLASSIFIER()`, `MATCH_NUMBER()`, and `A.col`, which is `LAST(A.col)`)
//! becomes a column `__nav<n>` of a small schema, and each measure an expression over it; a
//! `DEFINE` condition reads the row's columns and a column `__d<n>` for each such call in it:
//! `PREV`/`NEXT` of the row itself is its expression read some rows away, anything else a
//! value of the match so far, with the row being tested counted as bound to the variable.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DFSchema, DFSchemaRef, ScalarValue, plan_datafusion_err};
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, TableSource, UserDefinedLogicalNodeCore,
};
use datafusion::sql::planner::{ContextProvider, PlannerContext, SqlToRel};
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, VisitMut, VisitorMut,
};
use sluice_cep::Pattern;
use sluice_engine::time::Millis;

use super::{EmptyMatches, MatchClause, SkipTo};
use crate::window_tvf::PlannedTable;
use crate::{Result, SqlError};

/// What a navigation column reads from a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NavKind {
    First,
    Last,
    Prev,
    Next,
    /// `argument` is the aggregate call, over the input's columns.
    Aggregate,
    Classifier,
    MatchNumber,
}

/// One navigation column.
#[derive(Debug, Clone)]
pub struct NavPlan {
    /// `FINAL`: over the whole match; else (`RUNNING`) over its rows up to the output row.
    pub is_final: bool,
    pub kind: NavKind,
    /// The variables whose rows it reads (`None`: every row of the match).
    pub variables: Option<Vec<String>>,
    pub argument: Option<Expr>,
    pub offset: usize,
    /// `CLASSIFIER()` or `MATCH_NUMBER()` of the row navigated to, read instead of an argument
    /// (`FIRST(CLASSIFIER())`, `PREV(MATCH_NUMBER())`).
    pub label: Option<NavKind>,
    /// Rows to move from the row `FIRST` or `LAST` finds before reading it: `PREV(LAST(A.x),
    /// 2)` is -2, `NEXT(FIRST(B.x))` is 1.
    pub shift: i64,
    /// `RUNNING` (false) or `FINAL` (true) written on the call itself, which wins over its
    /// measure's.
    pub own_semantics: Option<bool>,
}

/// A column a condition reads besides the row's own.
#[derive(Debug, Clone)]
pub enum Derived {
    /// An expression over the input, read this many rows away (`PREV` of the row itself
    /// negative, `NEXT` positive).
    Shift(Expr, i64),
    /// A value of the match so far, the row being tested counted as bound to the variable.
    Context(NavPlan),
}

/// A variable's condition over its extended schema (the input's columns, then the derived
/// columns).
#[derive(Debug, Clone)]
pub struct ConditionPlan {
    pub variable: String,
    pub predicate: Expr,
    pub derived: Vec<Derived>,
    pub schema: DFSchemaRef,
}

/// A planned `MATCH_RECOGNIZE` clause.
#[derive(Debug, Clone)]
pub struct MatchPlan {
    /// The clause as written: it identifies the plan.
    pub text: String,
    pub partition_by: Vec<Expr>,
    /// The input column of the first `ORDER BY` key.
    pub time_column: usize,
    pub tie_breakers: Vec<(Expr, bool)>,
    pub pattern: Pattern,
    pub conditions: Vec<ConditionPlan>,
    pub navigations: Vec<NavPlan>,
    pub navigation_schema: DFSchemaRef,
    pub measures: Vec<Expr>,
    pub skip: SkipTo,
    pub within: Option<Millis>,
    pub emit_timeouts: bool,
    pub subsets: Vec<(String, Vec<String>)>,
    pub all_rows: Option<EmptyMatches>,
    /// The input columns the clause reads, when the operator need not keep the others (one
    /// row per match).
    pub read_columns: Option<Vec<usize>>,
    /// The output's event-time column: with all rows per match the input's; with one row per
    /// match the first measure that is the event time of the match's last row
    /// (`MATCH_ROWTIME()`, `LAST(ts)` of every row), if there is one.
    pub output_time: Option<usize>,
}

/// The plan node: the input's rows matched, one row per match.
#[derive(Debug, Clone)]
pub struct MatchRecognizeNode {
    pub input: LogicalPlan,
    pub plan: Arc<MatchPlan>,
    pub schema: DFSchemaRef,
}

impl PartialEq for MatchRecognizeNode {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input && self.plan.text == other.plan.text
    }
}

impl Eq for MatchRecognizeNode {}

impl Hash for MatchRecognizeNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.plan.text.hash(state);
    }
}

impl PartialOrd for MatchRecognizeNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(Ordering::Equal) => self.plan.text.partial_cmp(&other.plan.text),
            unequal => unequal,
        }
    }
}

impl UserDefinedLogicalNodeCore for MatchRecognizeNode {
    fn name(&self) -> &str {
        "MatchRecognize"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MatchRecognize: PATTERN ({})", self.plan.pattern)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| plan_datafusion_err!("MatchRecognize takes one input"))?;
        Ok(MatchRecognizeNode {
            input,
            ..self.clone()
        })
    }
}

/// Answers `__match_recognize('table', 'clause')`; `input` plans a scan of the table.
pub fn match_recognize_source<C: ContextProvider>(
    args: &[Expr],
    context: &C,
    input: impl Fn(&str) -> datafusion::error::Result<LogicalPlan>,
) -> datafusion::error::Result<Arc<dyn TableSource>> {
    let text = |index: usize| match args.get(index) {
        Some(Expr::Literal(ScalarValue::Utf8(Some(text)), _)) => Ok(text.clone()),
        _ => Err(plan_datafusion_err!("MATCH_RECOGNIZE: malformed clause")),
    };
    let table = text(0)?;
    let clause_text = text(1)?;
    let input = input(&table)?;
    let node = build(&clause_text, input, context).map_err(|e| plan_datafusion_err!("{e}"))?;
    Ok(Arc::new(PlannedTable::of(node)))
}

fn build<C: ContextProvider>(
    text: &str,
    input: LogicalPlan,
    context: &C,
) -> Result<MatchRecognizeNode> {
    let clause = MatchClause::parse(text)?;
    let planner = SqlToRel::new(context);
    let input_schema = input.schema().clone();
    let to_expr = |expr: ast::Expr, schema: &DFSchema| -> Result<Expr> {
        Ok(planner.sql_to_expr(expr, schema, &mut PlannerContext::new())?)
    };
    let variables = clause.pattern.variables();
    let is_variable = |name: &str| {
        variables.iter().any(|v| v == name) || clause.subsets.iter().any(|(s, _)| s == name)
    };
    let is_aggregate = |name: &str| context.get_aggregate_meta(name).is_some();
    for (name, members) in &clause.subsets {
        if let Some(unknown) = members.iter().find(|m| !variables.contains(m)) {
            return Err(SqlError::Invalid(format!(
                "SUBSET {name}: '{unknown}' is not a variable of the PATTERN"
            )));
        }
    }

    let partition_by = clause
        .partition_by
        .iter()
        .map(|e| to_expr(e.clone(), &input_schema))
        .collect::<Result<Vec<_>>>()?;
    let Some((first, rest)) = clause.order_by.split_first() else {
        return Err(SqlError::Invalid(
            "MATCH_RECOGNIZE needs ORDER BY the event-time attribute".into(),
        ));
    };
    let time_column = match to_expr(first.expr.clone(), &input_schema)? {
        Expr::Column(column) if first.options.asc != Some(false) => {
            input_schema.index_of_column(&column)?
        }
        _ => {
            return Err(SqlError::Invalid(format!(
                "MATCH_RECOGNIZE ORDER BY {first}: the first key must be the event-time \
                 attribute, ascending"
            )));
        }
    };
    let tie_breakers = rest
        .iter()
        .map(|key| {
            Ok((
                to_expr(key.expr.clone(), &input_schema)?,
                key.options.asc == Some(false),
            ))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut conditions = Vec::new();
    for (name, definition) in &clause.defines {
        if !variables.contains(name) {
            return Err(SqlError::Invalid(format!(
                "DEFINE {name}: '{name}' is not a variable of the PATTERN"
            )));
        }
        let mut rewriter = Rewriter::new(Mode::Define(name.clone()), &is_variable, &is_aggregate);
        let mut definition = definition.clone();
        rewriter.rewrite(&mut definition)?;
        let mut derived = Vec::new();
        let mut fields: Vec<Field> = input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (index, call) in rewriter.calls.into_iter().enumerate() {
            let own = call
                .variables
                .as_ref()
                .is_none_or(|v| v.len() == 1 && v[0] == *name);
            let nav = navigation_plan(call, &to_expr, &input_schema)?;
            let data_type = nav_type(&nav, &input_schema)?;
            fields.push(Field::new(format!("__d{index}"), data_type, true));
            derived.push(match (&nav.kind, &nav.argument) {
                (NavKind::Prev | NavKind::Next, Some(argument)) if own => {
                    let offset = nav.offset as i64;
                    let offset = if nav.kind == NavKind::Prev {
                        -offset
                    } else {
                        offset
                    };
                    Derived::Shift(argument.clone(), offset)
                }
                _ => Derived::Context(nav),
            });
        }
        let schema = Arc::new(DFSchema::from_unqualified_fields(
            fields.into(),
            Default::default(),
        )?);
        let predicate = to_expr(definition, &schema)?;
        conditions.push(ConditionPlan {
            variable: name.clone(),
            predicate,
            derived,
            schema,
        });
    }

    let mut rewriter = Rewriter::new(Mode::Measures, &is_variable, &is_aggregate);
    rewriter.rowtime = Some(Ident::with_quote(
        '"',
        input_schema.field(time_column).name(),
    ));
    let mut measure_asts = Vec::new();
    // Whether each call belongs to a FINAL measure.
    let mut finals = Vec::new();
    for (expr, _, is_final) in &clause.measures {
        let mut expr = expr.clone();
        rewriter.rewrite(&mut expr)?;
        finals.resize(rewriter.calls.len(), *is_final);
        measure_asts.push(expr);
    }
    let mut navigations = Vec::new();
    let mut nav_fields = Vec::new();
    for (index, call) in rewriter.calls.into_iter().enumerate() {
        let mut nav = navigation_plan(call, &to_expr, &input_schema)?;
        nav.is_final = nav.own_semantics.unwrap_or(finals[index]) || clause.all_rows.is_none();
        nav_fields.push(Field::new(
            format!("__nav{index}"),
            nav_type(&nav, &input_schema)?,
            true,
        ));
        navigations.push(nav);
    }
    let navigation_schema = Arc::new(DFSchema::from_unqualified_fields(
        nav_fields.into(),
        Default::default(),
    )?);
    let measures = measure_asts
        .into_iter()
        .map(|e| to_expr(e, &navigation_schema))
        .collect::<Result<Vec<_>>>()?;

    // One row per match: the partition columns, then the measures; all rows per match: the
    // input's columns, then the measures.
    let mut fields = Vec::new();
    if clause.all_rows.is_some() {
        fields.extend(input_schema.fields().iter().map(|f| f.as_ref().clone()));
    } else {
        for expr in &partition_by {
            let (_, field) = expr.to_field(&input_schema)?;
            let name = match expr {
                Expr::Column(column) => column.name.clone(),
                other => other.schema_name().to_string(),
            };
            fields.push(field.as_ref().clone().with_name(name));
        }
    }
    for (expr, (_, alias, _)) in measures.iter().zip(&clause.measures) {
        let data_type = expr.get_type(&navigation_schema)?;
        fields.push(Field::new(alias.clone(), data_type, true));
    }
    let schema = Arc::new(DFSchema::from_unqualified_fields(
        fields.into(),
        Default::default(),
    )?);
    let output_time = match clause.all_rows {
        Some(_) => Some(time_column),
        None => measures
            .iter()
            .position(|measure| {
                is_match_rowtime(
                    measure,
                    &navigations,
                    input_schema.field(time_column).name(),
                )
            })
            .map(|measure| partition_by.len() + measure),
    };
    let read_columns = named_columns(&input_schema, &clause);
    let plan = MatchPlan {
        read_columns,
        text: text.to_string(),
        partition_by,
        time_column,
        tie_breakers,
        pattern: clause.pattern,
        conditions,
        navigations,
        navigation_schema,
        measures,
        skip: clause.skip,
        within: clause.within,
        emit_timeouts: clause.emit_timeouts,
        subsets: clause.subsets,
        all_rows: clause.all_rows,
        output_time,
    };
    Ok(MatchRecognizeNode {
        input,
        plan: Arc::new(plan),
        schema,
    })
}

/// Whether `measure` is the event time of the match's last row: `FINAL LAST` of the input's
/// event-time column over every row, read as it is.
fn is_match_rowtime(measure: &Expr, navigations: &[NavPlan], time_column: &str) -> bool {
    let Expr::Column(column) = measure else {
        return false;
    };
    let Some(index) = column.name.strip_prefix("__nav") else {
        return false;
    };
    let Some(nav) = index.parse::<usize>().ok().and_then(|i| navigations.get(i)) else {
        return false;
    };
    let reads_time = match &nav.argument {
        Some(Expr::Column(argument)) => argument.name == time_column,
        _ => false,
    };
    nav.kind == NavKind::Last
        && nav.is_final
        && nav.variables.is_none()
        && nav.offset == 0
        && nav.shift == 0
        && nav.label.is_none()
        && reads_time
}

/// The input columns the clause names (by name, so perhaps a few more), with one row per
/// match, whose output has no other input column; `None` with all rows per match.
fn named_columns(input: &DFSchema, clause: &MatchClause) -> Option<Vec<usize>> {
    clause.all_rows.is_none().then_some(())?;
    let mut named: Vec<String> = Vec::new();
    let mut note = |expr: &ast::Expr| {
        let _ = ast::visit_expressions(expr, |e| {
            match e {
                ast::Expr::Identifier(ident) => named.push(ident.value.clone()),
                ast::Expr::CompoundIdentifier(parts) => {
                    named.extend(parts.last().map(|p| p.value.clone()))
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
    };
    clause.partition_by.iter().for_each(&mut note);
    clause.order_by.iter().for_each(|key| note(&key.expr));
    clause.measures.iter().for_each(|(expr, _, _)| note(expr));
    clause.defines.iter().for_each(|(_, expr)| note(expr));
    Some(
        input
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| named.iter().any(|n| n.eq_ignore_ascii_case(field.name())))
            .map(|(index, _)| index)
            .collect(),
    )
}

/// A call planned: its argument resolved over the input.
fn navigation_plan(
    call: Call,
    to_expr: &dyn Fn(ast::Expr, &DFSchema) -> Result<Expr>,
    input: &DFSchema,
) -> Result<NavPlan> {
    let argument = match call.argument {
        Some(argument) if call.kind == NavKind::Aggregate && call.label.is_some() => {
            Some(to_expr(argument, &with_label_columns(input)?)?)
        }
        Some(argument) => Some(to_expr(argument, input)?),
        None => None,
    };
    Ok(NavPlan {
        is_final: true,
        kind: call.kind,
        variables: call.variables,
        argument,
        offset: call.offset,
        label: call.label,
        shift: call.shift,
        own_semantics: call.is_final,
    })
}

/// `__final_last` and the like (`RUNNING`/`FINAL` joined to `FIRST`/`LAST` when the clause
/// was read): whether `FINAL`, and the navigation.
fn semantics_of(name: &str) -> Option<(bool, &'static str)> {
    match name {
        "__running_first" => Some((false, "first")),
        "__running_last" => Some((false, "last")),
        "__final_first" => Some((true, "first")),
        "__final_last" => Some((true, "last")),
        _ => None,
    }
}

/// The columns an aggregate reads `CLASSIFIER()` and `MATCH_NUMBER()` of its rows from,
/// after the input's own (`COUNT(CLASSIFIER())`, `string_agg(CLASSIFIER(), '')`).
pub const LABEL_COLUMNS: [(&str, DataType); 2] = [
    ("__classifier", DataType::Utf8),
    ("__match_number", DataType::UInt64),
];

/// Replaces `CLASSIFIER()` and `MATCH_NUMBER()` in `expr` by their [`LABEL_COLUMNS`]; says
/// whether there were any.
fn labels_to_columns(expr: &mut ast::Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions_mut(expr, |e| {
        let column = match label_of(e) {
            Some(NavKind::Classifier) => LABEL_COLUMNS[0].0,
            Some(NavKind::MatchNumber) => LABEL_COLUMNS[1].0,
            _ => return std::ops::ControlFlow::<()>::Continue(()),
        };
        *e = ast::Expr::Identifier(ast::Ident::new(column));
        found = true;
        std::ops::ControlFlow::Continue(())
    });
    found
}

/// `schema` with the [`LABEL_COLUMNS`] after its own.
pub fn with_label_columns(schema: &DFSchema) -> Result<DFSchema> {
    let labels = DFSchema::from_unqualified_fields(
        LABEL_COLUMNS
            .iter()
            .map(|(name, data_type)| Field::new(*name, data_type.clone(), true))
            .collect::<Vec<_>>()
            .into(),
        std::collections::HashMap::new(),
    )?;
    Ok(schema.join(&labels)?)
}

/// `CLASSIFIER()` or `MATCH_NUMBER()`, when `expr` is one of them.
fn label_of(expr: &ast::Expr) -> Option<NavKind> {
    let ast::Expr::Function(function) = expr else {
        return None;
    };
    let no_arguments = match &function.args {
        FunctionArguments::None => true,
        FunctionArguments::List(list) => list.args.is_empty(),
        FunctionArguments::Subquery(_) => false,
    };
    match function.name.to_string().to_ascii_lowercase().as_str() {
        "classifier" if no_arguments => Some(NavKind::Classifier),
        "match_number" if no_arguments => Some(NavKind::MatchNumber),
        _ => None,
    }
}

/// The type of a navigation's values.
fn nav_type(nav: &NavPlan, input: &DFSchema) -> Result<DataType> {
    Ok(match (&nav.kind, &nav.argument) {
        (NavKind::Classifier, _) => DataType::Utf8,
        (NavKind::MatchNumber, _) => DataType::Int64,
        (NavKind::Aggregate, Some(argument)) if nav.label.is_some() => {
            argument.get_type(&with_label_columns(input)?)?
        }
        _ if nav.label == Some(NavKind::Classifier) => DataType::Utf8,
        _ if nav.label == Some(NavKind::MatchNumber) => DataType::Int64,
        (_, Some(argument)) => argument.get_type(input)?,
        (_, None) => DataType::Null,
    })
}

enum Mode {
    /// The condition of this variable.
    Define(String),
    Measures,
}

/// A call that reads the match, as written (qualifiers taken off its argument).
struct Call {
    kind: NavKind,
    variables: Option<Vec<String>>,
    argument: Option<ast::Expr>,
    offset: usize,
    label: Option<NavKind>,
    shift: i64,
    /// `RUNNING` (false) or `FINAL` (true) written on the call itself.
    is_final: Option<bool>,
}

/// Replaces the calls that read the match by columns `__nav<n>` (`__shift<n>` in `DEFINE`).
struct Rewriter<'a> {
    mode: Mode,
    is_variable: &'a dyn Fn(&str) -> bool,
    is_aggregate: &'a dyn Fn(&str) -> bool,
    calls: Vec<Call>,
    error: Option<SqlError>,
    /// The event-time column, which `MATCH_ROWTIME()` reads (in `MEASURES`).
    rowtime: Option<Ident>,
}

impl<'a> Rewriter<'a> {
    fn new(
        mode: Mode,
        is_variable: &'a dyn Fn(&str) -> bool,
        is_aggregate: &'a dyn Fn(&str) -> bool,
    ) -> Self {
        Rewriter {
            mode,
            is_variable,
            is_aggregate,
            calls: Vec::new(),
            error: None,
            rowtime: None,
        }
    }

    fn rewrite(&mut self, expr: &mut ast::Expr) -> Result<()> {
        let _ = expr.visit(self);
        match self.error.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn column_name(&self) -> String {
        match self.mode {
            Mode::Define(_) => format!("__d{}", self.calls.len()),
            Mode::Measures => format!("__nav{}", self.calls.len()),
        }
    }

    /// The call `expr` stands for, if it reads the match.
    fn call_of(&self, expr: &ast::Expr) -> Result<Option<Call>> {
        match expr {
            ast::Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && (self.is_variable)(&super::variable(&parts[0])) =>
            {
                let variable = super::variable(&parts[0]);
                match &self.mode {
                    Mode::Define(defined) if *defined == variable => Ok(None),
                    _ => Ok(Some(Call {
                        kind: NavKind::Last,
                        variables: Some(vec![variable]),
                        argument: Some(ast::Expr::Identifier(parts[1].clone())),
                        offset: 0,
                        label: None,
                        shift: 0,
                        is_final: None,
                    })),
                }
            }
            ast::Expr::Identifier(ident) if matches!(self.mode, Mode::Measures) => Ok(Some(Call {
                kind: NavKind::Last,
                variables: None,
                argument: Some(ast::Expr::Identifier(ident.clone())),
                offset: 0,
                label: None,
                shift: 0,
                is_final: None,
            })),
            ast::Expr::Function(function) => self.function_call(function),
            _ => Ok(None),
        }
    }

    fn function_call(&self, function: &ast::Function) -> Result<Option<Call>> {
        let name = function.name.to_string().to_ascii_lowercase();
        let args: Vec<&FunctionArg> = match &function.args {
            FunctionArguments::List(list) => list.args.iter().collect(),
            _ => Vec::new(),
        };
        if let Some((is_final, navigation)) = semantics_of(&name) {
            // `RUNNING LAST(...)`/`FINAL FIRST(...)` inside an expression: the call as
            // written, with its own semantics.
            let mut plain = function.clone();
            plain.name = ast::ObjectName::from(vec![Ident::new(navigation)]);
            return Ok(self.function_call(&plain)?.map(|call| Call {
                is_final: Some(is_final),
                ..call
            }));
        }
        if name == "match_rowtime" {
            return self.match_rowtime(&args).map(Some);
        }
        let kind = match name.as_str() {
            "first" => NavKind::First,
            "last" => NavKind::Last,
            "prev" => NavKind::Prev,
            "next" => NavKind::Next,
            "classifier" => NavKind::Classifier,
            "match_number" => NavKind::MatchNumber,
            name if (self.is_aggregate)(name) => NavKind::Aggregate,
            _ => return Ok(None),
        };
        match kind {
            NavKind::Classifier | NavKind::MatchNumber => {
                if let Mode::Define(defined) = &self.mode {
                    return Err(SqlError::Unsupported(format!(
                        "DEFINE {defined}: MATCH_NUMBER() or CLASSIFIER(S) in a condition"
                    )));
                }
                // `CLASSIFIER(S)`: the variable of the last row up to here bound to S, a
                // variable or a SUBSET.
                let variables = match (&kind, args.as_slice()) {
                    (_, []) => None,
                    (
                        NavKind::Classifier,
                        [
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Identifier(
                                name,
                            ))),
                        ],
                    ) => Some(vec![self.known(&name.to_string())?]),
                    _ => {
                        return Err(SqlError::Invalid(format!(
                            "{}: expected no argument{}",
                            name.to_uppercase(),
                            match kind {
                                NavKind::Classifier => " or a variable",
                                _ => "",
                            }
                        )));
                    }
                };
                Ok(Some(Call {
                    kind,
                    variables,
                    argument: None,
                    offset: 0,
                    label: None,
                    shift: 0,
                    is_final: None,
                }))
            }
            NavKind::Aggregate => {
                let mut stripped = function.clone();
                let mut variables = None;
                let mut reads_labels = false;
                if let FunctionArguments::List(list) = &mut stripped.args {
                    for arg in &mut list.args {
                        if let FunctionArg::Unnamed(inner) = arg {
                            match inner {
                                FunctionArgExpr::QualifiedWildcard(name) => {
                                    variables = Some(vec![self.known(&name.to_string())?]);
                                    *inner = FunctionArgExpr::Wildcard;
                                }
                                FunctionArgExpr::Expr(expr) => {
                                    reads_labels |= labels_to_columns(expr);
                                    if let Some(found) = self.strip(expr)? {
                                        variables = Some(vec![found]);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                Ok(Some(Call {
                    kind,
                    variables,
                    argument: Some(ast::Expr::Function(stripped)),
                    offset: 0,
                    // Any label: the call reads both label columns.
                    label: reads_labels.then_some(NavKind::Classifier),
                    shift: 0,
                    is_final: None,
                }))
            }
            _ => {
                let mut argument = match args.first() {
                    Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))) => expr.clone(),
                    _ => {
                        return Err(SqlError::Invalid(format!(
                            "{}: expected an expression argument",
                            name.to_uppercase()
                        )));
                    }
                };
                let offset = match args.get(1) {
                    None => usize::from(matches!(kind, NavKind::Prev | NavKind::Next)),
                    Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Value(value)))) => {
                        match &value.value {
                            ast::Value::Number(n, _) => n.parse().map_err(|_| {
                                SqlError::Invalid(format!(
                                    "{}: the offset {n} is not a row count",
                                    name.to_uppercase()
                                ))
                            })?,
                            other => {
                                return Err(SqlError::Invalid(format!(
                                    "{}: the offset {other} is not a row count",
                                    name.to_uppercase()
                                )));
                            }
                        }
                    }
                    Some(other) => {
                        return Err(SqlError::Invalid(format!(
                            "{}: the offset {other} is not a row count",
                            name.to_uppercase()
                        )));
                    }
                };
                // `PREV(LAST(A.x), 2)`: physical navigation from the row a logical one finds.
                if let (NavKind::Prev | NavKind::Next, ast::Expr::Function(inner)) =
                    (&kind, &argument)
                {
                    let inner_name = inner.name.to_string().to_ascii_lowercase();
                    if inner_name == "first"
                        || inner_name == "last"
                        || semantics_of(&inner_name).is_some()
                    {
                        let Some(found) = self.function_call(inner)? else {
                            return Ok(None);
                        };
                        let rows = i64::try_from(offset).map_err(|_| {
                            SqlError::Invalid(format!("{}: offset too large", name.to_uppercase()))
                        })?;
                        return Ok(Some(Call {
                            shift: if kind == NavKind::Prev { -rows } else { rows },
                            ..found
                        }));
                    }
                }
                if let Some(label) = label_of(&argument) {
                    return Ok(Some(Call {
                        kind,
                        variables: None,
                        argument: None,
                        offset,
                        label: Some(label),
                        shift: 0,
                        is_final: None,
                    }));
                }
                let variable = self.strip(&mut argument)?;
                Ok(Some(Call {
                    kind,
                    variables: variable.map(|v| vec![v]),
                    argument: Some(argument),
                    offset,
                    label: None,
                    shift: 0,
                    is_final: None,
                }))
            }
        }
    }

    /// `MATCH_ROWTIME()`: the event time of the match's last row, `FINAL LAST(<time column>)`.
    fn match_rowtime(&self, args: &[&FunctionArg]) -> Result<Call> {
        let Some(column) = self.rowtime.clone() else {
            return Err(SqlError::Invalid(
                "MATCH_ROWTIME() is a measure: it may not appear in DEFINE".into(),
            ));
        };
        if !args.is_empty() {
            return Err(SqlError::Invalid(
                "MATCH_ROWTIME: expected no argument".into(),
            ));
        }
        Ok(Call {
            kind: NavKind::Last,
            variables: None,
            argument: Some(ast::Expr::Identifier(column)),
            offset: 0,
            label: None,
            shift: 0,
            is_final: Some(true),
        })
    }

    /// A variable or subset name the pattern knows, written `name` (quoted or not).
    fn known(&self, name: &str) -> Result<String> {
        let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.to_string(),
            None => name.to_ascii_uppercase(),
        };
        if (self.is_variable)(&name) {
            Ok(name)
        } else {
            Err(SqlError::Invalid(format!(
                "'{name}' is not a variable of the PATTERN"
            )))
        }
    }

    /// Takes the variable qualifiers off `expr`'s columns; the variable they name (all must
    /// name the same one).
    fn strip(&self, expr: &mut ast::Expr) -> Result<Option<String>> {
        let mut found: Option<String> = None;
        let mut error = None;
        let _ = ast::visit_expressions_mut(expr, |e| {
            if let ast::Expr::CompoundIdentifier(parts) = e
                && parts.len() == 2
            {
                let variable = super::variable(&parts[0]);
                if (self.is_variable)(&variable) {
                    if found.as_ref().is_some_and(|f| *f != variable) {
                        error = Some(SqlError::Unsupported(
                            "a navigation over the rows of two variables at once".into(),
                        ));
                    }
                    found = Some(variable);
                    *e = ast::Expr::Identifier(parts[1].clone());
                }
            }
            ControlFlow::<()>::Continue(())
        });
        match error {
            Some(error) => Err(error),
            None => Ok(found),
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut ast::Expr) -> ControlFlow<()> {
        // In its own DEFINE, `B.price` is the row's `price`.
        if let (Mode::Define(defined), ast::Expr::CompoundIdentifier(parts)) = (&self.mode, &*expr)
            && parts.len() == 2
            && super::variable(&parts[0]) == *defined
        {
            *expr = ast::Expr::Identifier(parts[1].clone());
            return ControlFlow::Continue(());
        }
        // In its own DEFINE, `CLASSIFIER()` of the row is the variable being defined.
        if let Mode::Define(defined) = &self.mode
            && label_of(expr) == Some(NavKind::Classifier)
        {
            *expr = ast::Expr::value(ast::Value::SingleQuotedString(defined.clone()));
            return ControlFlow::Continue(());
        }
        match self.call_of(expr) {
            Ok(Some(call)) => {
                *expr = ast::Expr::Identifier(Ident::new(self.column_name()));
                self.calls.push(call);
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(error) => {
                self.error = Some(error);
                ControlFlow::Break(())
            }
        }
    }
}
