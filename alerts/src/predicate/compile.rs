//! The compiler from DataFusion expressions to the condition IR: comparisons of a column
//! with a literal, `AND`, `OR` and `NOT` become [`Cond`]s, anything else a residual
//! expression (a DataFusion physical expression); constant parts are folded when that
//! leaves fewer residuals.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Operator, expr::InList, expr::Like};
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::physical_expr::{PhysicalExpr, create_physical_expr};

use super::ir::{ColumnRef, Compare, Cond, Family, Lit};
use crate::{AlertError, Result};

impl Lit {
    /// `None` for a NULL literal; an error for a type no comparison here handles.
    fn from_scalar(value: &ScalarValue) -> Result<Option<Lit>, ()> {
        use ScalarValue as S;
        Ok(match value {
            S::Int8(v) => v.map(|v| Lit::Int(v.into())),
            S::Int16(v) => v.map(|v| Lit::Int(v.into())),
            S::Int32(v) | S::Date32(v) => v.map(|v| Lit::Int(v.into())),
            S::Int64(v) | S::Date64(v) => v.map(Lit::Int),
            S::UInt8(v) => v.map(|v| Lit::Int(v.into())),
            S::UInt16(v) => v.map(|v| Lit::Int(v.into())),
            S::UInt32(v) => v.map(|v| Lit::Int(v.into())),
            S::TimestampSecond(v, _)
            | S::TimestampMillisecond(v, _)
            | S::TimestampMicrosecond(v, _)
            | S::TimestampNanosecond(v, _) => v.map(Lit::Int),
            S::Float32(v) => v.map(|v| Lit::Float(v.into())),
            S::Float64(v) => v.map(Lit::Float),
            S::Utf8(v) | S::LargeUtf8(v) | S::Utf8View(v) => v.clone().map(Lit::Str),
            S::Boolean(v) => v.map(Lit::Bool),
            _ => return Err(()),
        })
    }
}

impl Compare {
    fn from_operator(op: Operator) -> Option<Compare> {
        Some(match op {
            Operator::Eq => Compare::Eq,
            Operator::NotEq => Compare::NotEq,
            Operator::Lt => Compare::Lt,
            Operator::LtEq => Compare::LtEq,
            Operator::Gt => Compare::Gt,
            Operator::GtEq => Compare::GtEq,
            _ => return None,
        })
    }

    /// The same test with the sides swapped (`lit < col` is `col > lit`).
    fn flipped(self) -> Compare {
        match self {
            Compare::Lt => Compare::Gt,
            Compare::LtEq => Compare::GtEq,
            Compare::Gt => Compare::Lt,
            Compare::GtEq => Compare::LtEq,
            other => other,
        }
    }
}

/// A condition compiled against a stream's schema, with its residual expressions.
pub struct Compiled {
    pub cond: Cond,
    pub residuals: Vec<Arc<dyn PhysicalExpr>>,
}

/// Compiles `expr` (a type-coerced boolean expression over `schema`).
pub fn compile(expr: &Expr, schema: &Arc<Schema>) -> Result<Compiled> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone())
        .map_err(|e| AlertError::Invalid(e.to_string()))?;
    let mut compiler = Compiler {
        schema,
        df_schema: &df_schema,
        props: ExecutionProps::new(),
        residuals: Vec::new(),
    };
    let cond = compiler.compile(expr)?;
    Ok(Compiled {
        cond,
        residuals: compiler.residuals,
    })
}

/// Compiles `expr` (type-coerced); when parts of it are left to DataFusion, also compiles
/// it with its constant parts evaluated (`price < 1000 * 500` becomes a comparison with a
/// literal), and keeps whichever leaves fewer parts to DataFusion. Folding costs more than
/// compiling, so plain conditions are not folded. (DataFusion's own simplifier is not used:
/// some of its rewrites do not keep SQL's three-valued logic under `NOT`.)
pub fn compile_coerced(expr: Expr, schema: &Arc<Schema>) -> Result<Compiled> {
    let compiled = compile(&expr, schema)?;
    if compiled.residuals.is_empty() {
        return Ok(compiled);
    }
    let folded = fold_constants(expr)?;
    let other = compile(&folded, schema)?;
    Ok(if other.residuals.len() < compiled.residuals.len() {
        other
    } else {
        compiled
    })
}

/// `expr` with each largest part that reads no column (and calls no volatile function)
/// replaced by its value.
fn fold_constants(expr: Expr) -> Result<Expr> {
    let no_columns = DFSchema::empty();
    let props = ExecutionProps::new();
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        Vec::new(),
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| AlertError::Invalid(e.to_string()))?;
    expr.transform_down(|part| {
        let foldable = !matches!(part, Expr::Literal(..))
            && part.column_refs().is_empty()
            && !part.is_volatile();
        if !foldable {
            return Ok(Transformed::no(part));
        }
        let physical = create_physical_expr(
            &part,
            &no_columns,
            &props,
            &PhysicalPlanningContext::default(),
        )?;
        let value = match physical.evaluate(&one_row)? {
            ColumnarValue::Scalar(value) => value,
            ColumnarValue::Array(array) => ScalarValue::try_from_array(&array, 0)?,
        };
        Ok(Transformed::new(
            Expr::Literal(value, None),
            true,
            TreeNodeRecursion::Jump,
        ))
    })
    .map(|transformed| transformed.data)
    .map_err(|e| AlertError::Invalid(e.to_string()))
}

struct Compiler<'a> {
    schema: &'a Arc<Schema>,
    df_schema: &'a DFSchema,
    props: ExecutionProps,
    residuals: Vec<Arc<dyn PhysicalExpr>>,
}

impl Compiler<'_> {
    fn compile(&mut self, expr: &Expr) -> Result<Cond> {
        let compiled = match expr {
            Expr::BinaryExpr(binary) if matches!(binary.op, Operator::And | Operator::Or) => {
                // Nested ANDs (ORs) become one list.
                let and = binary.op == Operator::And;
                let mut parts = Vec::new();
                for side in [&binary.left, &binary.right] {
                    match (self.compile(side)?, and) {
                        (Cond::And(more), true) | (Cond::Or(more), false) => parts.extend(more),
                        (part, _) => parts.push(part),
                    }
                }
                if and {
                    // Cheap and selective tests first: evaluation stops at the first false.
                    parts.sort_by_key(Cond::cost);
                    Some(Cond::And(parts))
                } else {
                    Some(Cond::Or(parts))
                }
            }
            Expr::Not(inner) => Some(Cond::Not(Box::new(self.compile(inner)?))),
            Expr::Literal(ScalarValue::Boolean(value), _) => Some(Cond::Const(*value)),
            Expr::BinaryExpr(binary) => Compare::from_operator(binary.op).and_then(|op| {
                match (self.column(&binary.left), literal(&binary.right)) {
                    (Some(column), Some(lit)) => compare(column, op, lit),
                    _ => match (literal(&binary.left), self.column(&binary.right)) {
                        (Some(lit), Some(column)) => compare(column, op.flipped(), lit),
                        _ => None,
                    },
                }
            }),
            Expr::Between(between) => {
                match (
                    self.column(&between.expr),
                    literal(&between.low),
                    literal(&between.high),
                ) {
                    (Some(column), Some(Some(low)), Some(Some(high)))
                        if low.family() == column.family && high.family() == column.family =>
                    {
                        Some(Cond::Between {
                            column,
                            low,
                            high,
                            negated: between.negated,
                        })
                    }
                    _ => None,
                }
            }
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) => self.column(expr).and_then(|column| {
                let lits: Option<Vec<Lit>> = list
                    .iter()
                    .map(|item| {
                        literal(item)
                            .flatten()
                            .filter(|l| l.family() == column.family)
                    })
                    .collect();
                lits.map(|list| Cond::In {
                    column,
                    list,
                    negated: *negated,
                })
            }),
            Expr::Like(Like {
                negated,
                expr,
                pattern,
                escape_char: None,
                case_insensitive: false,
            }) => match (self.column(expr), literal(pattern)) {
                (Some(column), Some(Some(Lit::Str(pattern)))) if column.family == Family::Str => {
                    prefix_of(&pattern).map(|prefix| Cond::Prefix {
                        column,
                        prefix,
                        negated: *negated,
                    })
                }
                _ => None,
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                self.column(inner).map(|column| Cond::IsNull {
                    column: column.column,
                    negated: matches!(expr, Expr::IsNotNull(_)),
                })
            }
            Expr::Column(_) => self
                .column(expr)
                .filter(|column| column.family == Family::Bool)
                .map(Cond::Truth),
            _ => None,
        };
        match compiled {
            Some(cond) => Ok(cond),
            None => {
                let physical = create_physical_expr(
                    expr,
                    self.df_schema,
                    &self.props,
                    &PhysicalPlanningContext::default(),
                )
                .map_err(|e| AlertError::Invalid(e.to_string()))?;
                self.residuals.push(physical);
                Ok(Cond::Residual(self.residuals.len() - 1))
            }
        }
    }

    /// A column (possibly cast) and the family it is compared in.
    fn column(&self, expr: &Expr) -> Option<ColumnRef> {
        let (column, data_type) = match expr {
            Expr::Column(column) => {
                let index = self.schema.index_of(&column.name).ok()?;
                (index, self.schema.field(index).data_type().clone())
            }
            Expr::Cast(cast) => match cast.expr.as_ref() {
                Expr::Column(column) => (
                    self.schema.index_of(&column.name).ok()?,
                    cast.field.data_type().clone(),
                ),
                _ => return None,
            },
            _ => return None,
        };
        family_of(&data_type).map(|family| ColumnRef { column, family })
    }
}

/// `column op lit`; `None` when the literal is of another family (left to DataFusion).
fn compare(column: ColumnRef, op: Compare, lit: Option<Lit>) -> Option<Cond> {
    match lit {
        Some(lit) if lit.family() == column.family => Some(Cond::Compare { column, op, lit }),
        // A comparison with NULL is NULL.
        None => Some(Cond::Const(None)),
        Some(_) => None,
    }
}

/// `Some(None)` for a NULL literal, `Some(Some(..))` for a usable one.
fn literal(expr: &Expr) -> Option<Option<Lit>> {
    match expr {
        Expr::Literal(value, _) => Lit::from_scalar(value).ok(),
        // A literal the type coercion cast: cast it now.
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Literal(value, _) => {
                let value = value.cast_to(cast.field.data_type()).ok()?;
                Lit::from_scalar(&value).ok()
            }
            _ => None,
        },
        _ => None,
    }
}

fn family_of(data_type: &DataType) -> Option<Family> {
    use DataType as D;
    Some(match data_type {
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 => Family::Int,
        D::Date32 | D::Date64 | D::Timestamp(_, _) => Family::Int,
        D::Float32 | D::Float64 => Family::Float,
        D::Utf8 | D::LargeUtf8 | D::Utf8View => Family::Str,
        D::Boolean => Family::Bool,
        _ => return None,
    })
}

/// The prefix of a `LIKE` pattern of the form `abc%` (no other wildcards or escapes).
fn prefix_of(pattern: &str) -> Option<String> {
    let prefix = pattern.strip_suffix('%')?;
    if prefix.contains(['%', '_', '\\']) {
        return None;
    }
    Some(prefix.to_string())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::{col, lit};

    use super::*;

    #[test]
    fn constant_parts_are_folded_only_when_something_is_left_to_datafusion() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "price",
            DataType::Int64,
            true,
        )]));
        let plain = compile_coerced(col("price").lt(lit(500_000i64)), &schema)?;
        assert!(plain.residuals.is_empty());
        let arithmetic = col("price").lt(lit(1000i64) * lit(500i64));
        assert_eq!(compile(&arithmetic, &schema)?.residuals.len(), 1);
        let folded = compile_coerced(arithmetic, &schema)?;
        assert!(folded.residuals.is_empty());
        assert!(matches!(
            folded.cond,
            Cond::Compare {
                op: Compare::Lt,
                lit: Lit::Int(500_000),
                ..
            }
        ));
        Ok(())
    }
}
