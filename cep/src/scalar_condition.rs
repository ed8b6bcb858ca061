//! `DEFINE` conditions that read the match, tested one row at a time without DataFusion.
//!
//! A condition that reads the match so far (`LAST(DOWN.price, 1)`, `START.price`) must be
//! tested row by row, path by path, during the search. Building a one-row batch and running
//! DataFusion's expression for each test costs microseconds; most such conditions are
//! comparisons, `AND`/`OR`/`NOT` and `IS [NOT] NULL` over columns of the row and values of
//! the match, which this module evaluates directly over the stored rows, with SQL's
//! three-valued logic, ordering floats as Arrow's kernels do (IEEE 754's total order). A
//! condition with anything else (functions, arithmetic, other types) is not compiled and
//! keeps the general path; so is a single test whose values this module cannot compare
//! (mixed types).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator as BinaryOperator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CastExpr, Column, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};

use crate::Binding;
use crate::condition::{Condition, Derived};
use crate::navigation::Navigate;
use crate::partition::Partition;
use crate::store::RowStore;

/// A value as the conditions compare it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// A literal, owned.
#[derive(Debug, Clone)]
enum Constant {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Constant {
    fn value(&self) -> Value<'_> {
        match self {
            Constant::Null => Value::Null,
            Constant::Bool(b) => Value::Bool(*b),
            Constant::Int(i) => Value::Int(*i),
            Constant::Float(f) => Value::Float(*f),
            Constant::Str(s) => Value::Str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone)]
enum Node {
    /// Column `n` of the condition's schema: the input's columns, then the derived ones.
    Column(usize),
    Constant(Constant),
    Compare(Comparison, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    IsNull(Box<Node>),
    IsNotNull(Box<Node>),
    /// An integer read as a float (the planner's coercion).
    ToFloat(Box<Node>),
}

/// Where a derived column's value comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Input column `column`, `offset` rows away from the row tested.
    Shift { column: usize, offset: i64 },
    /// Input column `column` of the row a navigation finds in the match so far (the row
    /// tested bound to the variable being tested).
    Navigate {
        navigate: Step,
        variables: Option<Vec<usize>>,
        offset: usize,
        shift: i64,
        column: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    First,
    Last,
    Prev,
    Next,
}

/// What a test found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tested {
    Holds(bool),
    /// A row it reads has not come yet.
    NeedMore,
    /// Not decided here: test it the general way.
    General,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) struct ScalarCondition {
    predicate: Node,
    derived: Vec<Source>,
    /// How many of the schema's columns are the input's.
    inputs: usize,
}

/// The row a test reads, and what it can read around it.
struct Scope<'a> {
    store: &'a RowStore,
    partition: &'a Partition,
    row: usize,
    variable: usize,
    path: &'a [Binding],
    complete: bool,
}

impl ScalarCondition {
    /// `condition` compiled, if everything in it can be (see the module doc).
    pub(crate) fn compile(condition: &Condition, input: &Schema) -> Option<Self> {
        let inputs = input.fields().len();
        let readable = |column: usize| {
            input
                .fields()
                .get(column)
                .is_some_and(|f| readable_type(f.data_type()))
        };
        let mut derived = Vec::with_capacity(condition.derived.len());
        for source in &condition.derived {
            derived.push(match source {
                Derived::Shift(expression, offset) => {
                    let column = column_of(expression).filter(|c| readable(*c))?;
                    Source::Shift {
                        column,
                        offset: *offset,
                    }
                }
                Derived::Context(navigation) => {
                    if navigation.label.is_some() {
                        return None;
                    }
                    let navigate = match navigation.navigate {
                        Navigate::First => Step::First,
                        Navigate::Last => Step::Last,
                        Navigate::Prev => Step::Prev,
                        Navigate::Next => Step::Next,
                        _ => return None,
                    };
                    let column = navigation
                        .argument
                        .as_ref()
                        .and_then(column_of)
                        .filter(|c| readable(*c))?;
                    Source::Navigate {
                        navigate,
                        variables: navigation.variables.clone(),
                        offset: navigation.offset,
                        shift: navigation.shift,
                        column,
                    }
                }
            });
        }
        let schema = condition.schema.as_ref();
        let predicate = node(condition.predicate.as_ref(), schema)?;
        Some(ScalarCondition {
            predicate,
            derived,
            inputs,
        })
    }

    /// Whether `row` of `partition`, bound to `variable` after the rows `path`, satisfies
    /// the condition.
    pub(crate) fn test(
        &self,
        store: &RowStore,
        partition: &Partition,
        variable: usize,
        row: usize,
        path: &[Binding],
        complete: bool,
    ) -> Tested {
        let scope = Scope {
            store,
            partition,
            row,
            variable,
            path,
            complete,
        };
        match self.evaluate(&self.predicate, &scope) {
            Ok(Value::Bool(holds)) => Tested::Holds(holds),
            Ok(Value::Null) => Tested::Holds(false),
            Ok(_) => Tested::General,
            Err(tested) => tested,
        }
    }

    fn evaluate<'a>(&'a self, node: &'a Node, scope: &Scope<'a>) -> Result<Value<'a>, Tested> {
        Ok(match node {
            Node::Column(column) if *column < self.inputs => {
                read(scope.store, scope.partition, scope.row, *column)?
            }
            Node::Column(column) => self.derived_value(*column - self.inputs, scope)?,
            Node::Constant(constant) => constant.value(),
            Node::Compare(comparison, left, right) => {
                let (left, right) = (self.evaluate(left, scope)?, self.evaluate(right, scope)?);
                compare(*comparison, left, right)?
            }
            Node::And(left, right) => {
                let left = truth(self.evaluate(left, scope)?)?;
                if left == Some(false) {
                    return Ok(Value::Bool(false));
                }
                let right = truth(self.evaluate(right, scope)?)?;
                match (left, right) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Node::Or(left, right) => {
                let left = truth(self.evaluate(left, scope)?)?;
                if left == Some(true) {
                    return Ok(Value::Bool(true));
                }
                let right = truth(self.evaluate(right, scope)?)?;
                match (left, right) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Node::Not(inner) => match truth(self.evaluate(inner, scope)?)? {
                Some(value) => Value::Bool(!value),
                None => Value::Null,
            },
            Node::IsNull(inner) => Value::Bool(self.evaluate(inner, scope)? == Value::Null),
            Node::IsNotNull(inner) => Value::Bool(self.evaluate(inner, scope)? != Value::Null),
            Node::ToFloat(inner) => match self.evaluate(inner, scope)? {
                Value::Int(i) => Value::Float(i as f64),
                Value::Float(f) => Value::Float(f),
                Value::Null => Value::Null,
                _ => return Err(Tested::General),
            },
        })
    }

    fn derived_value<'a>(&'a self, index: usize, scope: &Scope<'a>) -> Result<Value<'a>, Tested> {
        let Some(source) = self.derived.get(index) else {
            return Err(Tested::General);
        };
        let partition = scope.partition;
        let (row, column) = match source {
            Source::Shift { column, offset } => {
                let at = scope.row as i64 + offset;
                if at >= partition.available() as i64 && !scope.complete {
                    return Err(Tested::NeedMore);
                }
                (usize::try_from(at).ok(), *column)
            }
            Source::Navigate {
                navigate,
                variables,
                offset,
                shift,
                column,
            } => {
                let tested = Binding {
                    row: scope.row,
                    variable: scope.variable,
                    excluded: false,
                };
                let in_set = |b: &&Binding| {
                    variables
                        .as_ref()
                        .is_none_or(|set| set.contains(&b.variable))
                };
                let bound = scope.path.iter().chain(std::iter::once(&tested));
                let last = |bound: std::iter::Chain<_, _>| bound.rev().find(in_set);
                let found = match navigate {
                    Step::First => bound.filter(in_set).nth(*offset).map(|b| b.row),
                    Step::Last => bound.rev().filter(in_set).nth(*offset).map(|b| b.row),
                    Step::Prev => last(bound).and_then(|b: &Binding| b.row.checked_sub(*offset)),
                    Step::Next => last(bound).map(|b: &Binding| b.row + offset),
                };
                let found = found.and_then(|r| r.checked_add_signed(*shift as isize));
                (found, *column)
            }
        };
        match row {
            Some(row) if row >= partition.base && row < partition.available() => {
                read(scope.store, partition, row, column)
            }
            _ => Ok(Value::Null),
        }
    }
}

/// The input column an expression reads as it is, if that is all it does.
fn column_of(expression: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    expression.downcast_ref::<Column>().map(Column::index)
}

fn readable_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::Utf8View
            | DataType::Timestamp(TimeUnit::Millisecond, None)
    )
}

/// `expression` as a node, if every part of it can be evaluated here.
fn node(expression: &dyn PhysicalExpr, schema: &Schema) -> Option<Node> {
    let any = expression;
    if let Some(column) = any.downcast_ref::<Column>() {
        let field = schema.fields().get(column.index())?;
        return readable_type(field.data_type()).then_some(Node::Column(column.index()));
    }
    if let Some(literal) = any.downcast_ref::<Literal>() {
        return constant(literal.value()).map(Node::Constant);
    }
    if let Some(binary) = any.downcast_ref::<BinaryExpr>() {
        let left = Box::new(node(binary.left().as_ref(), schema)?);
        let right = Box::new(node(binary.right().as_ref(), schema)?);
        let comparison = match binary.op() {
            BinaryOperator::And => return Some(Node::And(left, right)),
            BinaryOperator::Or => return Some(Node::Or(left, right)),
            BinaryOperator::Eq => Comparison::Eq,
            BinaryOperator::NotEq => Comparison::NotEq,
            BinaryOperator::Lt => Comparison::Lt,
            BinaryOperator::LtEq => Comparison::LtEq,
            BinaryOperator::Gt => Comparison::Gt,
            BinaryOperator::GtEq => Comparison::GtEq,
            _ => return None,
        };
        // Both sides must be of one type, as the planner's coercion leaves them.
        let types = (
            binary.left().data_type(schema).ok()?,
            binary.right().data_type(schema).ok()?,
        );
        if types.0 != types.1 {
            return None;
        }
        return Some(Node::Compare(comparison, left, right));
    }
    if let Some(not) = any.downcast_ref::<NotExpr>() {
        return Some(Node::Not(Box::new(node(not.arg().as_ref(), schema)?)));
    }
    if let Some(is_null) = any.downcast_ref::<IsNullExpr>() {
        return Some(Node::IsNull(Box::new(node(
            is_null.arg().as_ref(),
            schema,
        )?)));
    }
    if let Some(is_not_null) = any.downcast_ref::<IsNotNullExpr>() {
        return Some(Node::IsNotNull(Box::new(node(
            is_not_null.arg().as_ref(),
            schema,
        )?)));
    }
    if let Some(cast) = any.downcast_ref::<CastExpr>() {
        let from = cast.expr().data_type(schema).ok()?;
        let inner = node(cast.expr().as_ref(), schema)?;
        return match (from, cast.cast_type()) {
            (from, to) if from == *to => Some(inner),
            (
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::Float32,
                DataType::Float64,
            ) => Some(Node::ToFloat(Box::new(inner))),
            (
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32,
                DataType::Int64,
            ) => Some(inner),
            _ => None,
        };
    }
    None
}

fn constant(value: &ScalarValue) -> Option<Constant> {
    if value.is_null() {
        return Some(Constant::Null);
    }
    Some(match value {
        ScalarValue::Boolean(Some(b)) => Constant::Bool(*b),
        ScalarValue::Int8(Some(i)) => Constant::Int(i64::from(*i)),
        ScalarValue::Int16(Some(i)) => Constant::Int(i64::from(*i)),
        ScalarValue::Int32(Some(i)) => Constant::Int(i64::from(*i)),
        ScalarValue::Int64(Some(i)) => Constant::Int(*i),
        ScalarValue::UInt8(Some(i)) => Constant::Int(i64::from(*i)),
        ScalarValue::UInt16(Some(i)) => Constant::Int(i64::from(*i)),
        ScalarValue::UInt32(Some(i)) => Constant::Int(i64::from(*i)),
        ScalarValue::Float32(Some(f)) => Constant::Float(f64::from(*f)),
        ScalarValue::Float64(Some(f)) => Constant::Float(*f),
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Constant::Str(s.clone()),
        ScalarValue::TimestampMillisecond(Some(t), None) => Constant::Int(*t),
        _ => return None,
    })
}

/// Column `column` of the partition's row `row` (numbered as in the partition).
fn read<'a>(
    store: &'a RowStore,
    partition: &Partition,
    row: usize,
    column: usize,
) -> Result<Value<'a>, Tested> {
    let Some(place) = row
        .checked_sub(partition.base)
        .and_then(|r| partition.refs.get(r))
    else {
        return Ok(Value::Null);
    };
    let (array, index) = store.cell(*place, column).ok_or(Tested::General)?;
    value_at(array, index)
}

fn value_at(array: &ArrayRef, index: usize) -> Result<Value<'_>, Tested> {
    use datafusion::arrow::datatypes::{
        Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
        TimestampMillisecondType, UInt8Type, UInt16Type, UInt32Type,
    };
    if array.is_null(index) {
        return Ok(Value::Null);
    }
    // One match on the type, then the one cast it calls for (this runs for every value a
    // condition reads).
    Ok(match array.data_type() {
        DataType::Int8 => Value::Int(i64::from(array.as_primitive::<Int8Type>().value(index))),
        DataType::Int16 => Value::Int(i64::from(array.as_primitive::<Int16Type>().value(index))),
        DataType::Int32 => Value::Int(i64::from(array.as_primitive::<Int32Type>().value(index))),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(index)),
        DataType::UInt8 => Value::Int(i64::from(array.as_primitive::<UInt8Type>().value(index))),
        DataType::UInt16 => Value::Int(i64::from(array.as_primitive::<UInt16Type>().value(index))),
        DataType::UInt32 => Value::Int(i64::from(array.as_primitive::<UInt32Type>().value(index))),
        DataType::Timestamp(TimeUnit::Millisecond, None) => Value::Int(
            array
                .as_primitive::<TimestampMillisecondType>()
                .value(index),
        ),
        DataType::Float32 => {
            Value::Float(f64::from(array.as_primitive::<Float32Type>().value(index)))
        }
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(index)),
        DataType::Boolean => Value::Bool(array.as_boolean().value(index)),
        DataType::Utf8 => Value::Str(array.as_string::<i32>().value(index)),
        DataType::Utf8View => Value::Str(array.as_string_view().value(index)),
        _ => return Err(Tested::General),
    })
}

/// The truth of a boolean value (`None`: unknown).
fn truth(value: Value<'_>) -> Result<Option<bool>, Tested> {
    match value {
        Value::Bool(b) => Ok(Some(b)),
        Value::Null => Ok(None),
        _ => Err(Tested::General),
    }
}

fn compare<'a>(
    comparison: Comparison,
    left: Value<'a>,
    right: Value<'a>,
) -> Result<Value<'a>, Tested> {
    use std::cmp::Ordering;
    let order: Ordering = match (left, right) {
        (Value::Null, _) | (_, Value::Null) => return Ok(Value::Null),
        (Value::Int(a), Value::Int(b)) => a.cmp(&b),
        // Arrow's kernels order floats by IEEE 754's total order (-0 < +0, NaN last).
        (Value::Float(a), Value::Float(b)) => a.total_cmp(&b),
        (Value::Str(a), Value::Str(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(&b),
        _ => return Err(Tested::General),
    };
    Ok(Value::Bool(match comparison {
        Comparison::Eq => order == Ordering::Equal,
        Comparison::NotEq => order != Ordering::Equal,
        Comparison::Lt => order == Ordering::Less,
        Comparison::LtEq => order != Ordering::Greater,
        Comparison::Gt => order == Ordering::Greater,
        Comparison::GtEq => order != Ordering::Less,
    }))
}
