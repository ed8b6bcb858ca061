//! An alert's condition compiled for evaluating one row at a time under SQL's three-valued
//! logic, and the parts of it an index can use.
//!
//! Comparisons of a column with a literal (`=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`,
//! `IN`, `LIKE 'prefix%'`, `IS [NOT] NULL`), `AND`, `OR` and `NOT` are compiled; anything
//! else (arithmetic, functions, general `LIKE`) stays a DataFusion expression, evaluated on
//! the whole batch when an alert that has one is a candidate (a residual).

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
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

use crate::{AlertError, Result};

/// The type a column is compared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Int,
    Float,
    Str,
    Bool,
}

impl Family {
    fn data_type(self) -> DataType {
        match self {
            Family::Int => DataType::Int64,
            Family::Float => DataType::Float64,
            Family::Str => DataType::Utf8,
            Family::Bool => DataType::Boolean,
        }
    }
}

/// A literal, in its family.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl Lit {
    fn family(&self) -> Family {
        match self {
            Lit::Int(_) => Family::Int,
            Lit::Float(_) => Family::Float,
            Lit::Str(_) => Family::Str,
            Lit::Bool(_) => Family::Bool,
        }
    }

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

/// How a column value compares with a literal of its family (`None` for NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
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

    pub(super) fn holds(self, ordering: Ordering) -> bool {
        match self {
            Compare::Eq => ordering == Ordering::Equal,
            Compare::NotEq => ordering != Ordering::Equal,
            Compare::Lt => ordering == Ordering::Less,
            Compare::LtEq => ordering != Ordering::Greater,
            Compare::Gt => ordering == Ordering::Greater,
            Compare::GtEq => ordering != Ordering::Less,
        }
    }
}

/// A column read in a family: which of a batch's [`Views`] a test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnRef {
    pub column: usize,
    pub family: Family,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// `TRUE`, `FALSE` or `NULL`.
    Const(Option<bool>),
    Compare {
        column: ColumnRef,
        op: Compare,
        lit: Lit,
    },
    Between {
        column: ColumnRef,
        low: Lit,
        high: Lit,
        negated: bool,
    },
    In {
        column: ColumnRef,
        list: Vec<Lit>,
        negated: bool,
    },
    Prefix {
        column: ColumnRef,
        prefix: String,
        negated: bool,
    },
    IsNull {
        column: usize,
        negated: bool,
    },
    /// A boolean column on its own.
    Truth(ColumnRef),
    /// A string column equal (or, negated, not equal) to a string, by its [`Symbols`]
    /// number: made by [`Symbols::intern`] when an alert is registered.
    SymbolEq {
        column: ColumnRef,
        symbol: u32,
        negated: bool,
    },
    /// A string column in (or not in) a list of strings, by their symbols.
    SymbolIn {
        column: ColumnRef,
        symbols: Vec<u32>,
        negated: bool,
    },
    /// Expression `n` of the alert's residuals.
    Residual(usize),
}

impl Cond {
    /// `self` with each test (each part that is not `AND`, `OR` or `NOT`) replaced by what
    /// `map` makes of it.
    fn map_tests(self, map: &mut impl FnMut(Cond) -> Cond) -> Cond {
        match self {
            Cond::And(parts) => Cond::And(parts.into_iter().map(|p| p.map_tests(map)).collect()),
            Cond::Or(parts) => Cond::Or(parts.into_iter().map(|p| p.map_tests(map)).collect()),
            Cond::Not(inner) => Cond::Not(Box::new(inner.map_tests(map))),
            test => map(test),
        }
    }

    /// How costly evaluating the condition is, roughly: numbers before strings, lists and
    /// trees, residual expressions last.
    fn cost(&self) -> u8 {
        match self {
            Cond::Const(_) => 0,
            Cond::IsNull { .. } | Cond::Truth(_) | Cond::SymbolEq { .. } => 1,
            Cond::Compare { column, .. } | Cond::Between { column, .. }
                if column.family != Family::Str =>
            {
                2
            }
            Cond::Compare { .. } | Cond::Between { .. } | Cond::Prefix { .. } => 3,
            Cond::In { .. } | Cond::SymbolIn { .. } => 4,
            Cond::And(_) | Cond::Or(_) | Cond::Not(_) => 5,
            Cond::Residual(_) => 6,
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
                        if low.family() == column.1 && high.family() == column.1 =>
                    {
                        Some(Cond::Between {
                            column: ColumnRef {
                                column: column.0,
                                family: column.1,
                            },
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
                    .map(|item| literal(item).flatten().filter(|l| l.family() == column.1))
                    .collect();
                lits.map(|list| Cond::In {
                    column: ColumnRef {
                        column: column.0,
                        family: column.1,
                    },
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
                (Some(column), Some(Some(Lit::Str(pattern)))) if column.1 == Family::Str => {
                    prefix_of(&pattern).map(|prefix| Cond::Prefix {
                        column: ColumnRef {
                            column: column.0,
                            family: Family::Str,
                        },
                        prefix,
                        negated: *negated,
                    })
                }
                _ => None,
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                self.column(inner).map(|column| Cond::IsNull {
                    column: column.0,
                    negated: matches!(expr, Expr::IsNotNull(_)),
                })
            }
            Expr::Column(_) => self
                .column(expr)
                .filter(|column| column.1 == Family::Bool)
                .map(|column| {
                    Cond::Truth(ColumnRef {
                        column: column.0,
                        family: Family::Bool,
                    })
                }),
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
    fn column(&self, expr: &Expr) -> Option<(usize, Family)> {
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
        family_of(&data_type).map(|family| (column, family))
    }
}

/// `column op lit`; `None` when the literal is of another family (left to DataFusion).
fn compare(column: (usize, Family), op: Compare, lit: Option<Lit>) -> Option<Cond> {
    match lit {
        Some(lit) if lit.family() == column.1 => Some(Cond::Compare {
            column: ColumnRef {
                column: column.0,
                family: column.1,
            },
            op,
            lit,
        }),
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

/// A batch's columns, each in the families its alerts compare it in.
pub struct Views {
    ints: Vec<Option<Int64Array>>,
    floats: Vec<Option<Float64Array>>,
    strs: Vec<Option<StringArray>>,
    bools: Vec<Option<BooleanArray>>,
    nulls: Vec<Option<Arc<dyn Array>>>,
    /// Per string column compared by symbol: each row's symbol ([`NO_SYMBOL`] for a string
    /// no alert names, [`NULL_SYMBOL`] for NULL).
    symbols: Vec<Option<Vec<u32>>>,
}

/// The symbol of a string no alert compares with.
const NO_SYMBOL: u32 = u32::MAX;
/// The symbol of NULL.
const NULL_SYMBOL: u32 = u32::MAX - 1;

/// The strings alerts compare string columns with for equality, numbered: rows are
/// compared by number, once each string is looked up per row.
#[derive(Default)]
pub struct Symbols {
    numbers: datafusion::common::HashMap<Box<str>, u32>,
    /// The strings, by number.
    texts: Vec<Box<str>>,
}

impl Symbols {
    fn number(&mut self, text: &str) -> u32 {
        if let Some(&number) = self.numbers.get(text) {
            return number;
        }
        let number = self.texts.len() as u32;
        self.numbers.insert(text.into(), number);
        self.texts.push(text.into());
        number
    }

    /// The symbol of `text`, when an alert compares with it.
    pub fn symbol(&self, text: &str) -> Option<u32> {
        self.numbers.get(text).copied()
    }

    fn text(&self, symbol: u32) -> Lit {
        Lit::Str(
            self.texts
                .get(symbol as usize)
                .map_or_else(String::new, |t| t.to_string()),
        )
    }

    /// `cond` as it was before [`Symbols::intern`].
    pub fn restore(&self, cond: Cond) -> Cond {
        cond.map_tests(&mut |test| match test {
            Cond::SymbolEq {
                column,
                symbol,
                negated,
            } => Cond::Compare {
                column,
                op: if negated { Compare::NotEq } else { Compare::Eq },
                lit: self.text(symbol),
            },
            Cond::SymbolIn {
                column,
                symbols,
                negated,
            } => Cond::In {
                column,
                list: symbols.into_iter().map(|s| self.text(s)).collect(),
                negated,
            },
            other => other,
        })
    }

    /// `cond` with its string equalities and lists compared by symbol.
    pub fn intern(&mut self, cond: Cond) -> Cond {
        cond.map_tests(&mut |test| match test {
            Cond::Compare {
                column,
                op: op @ (Compare::Eq | Compare::NotEq),
                lit: Lit::Str(text),
            } if column.family == Family::Str => Cond::SymbolEq {
                column,
                symbol: self.number(&text),
                negated: op == Compare::NotEq,
            },
            Cond::In {
                column,
                list,
                negated,
            } if column.family == Family::Str
                && list.iter().all(|lit| matches!(lit, Lit::Str(_))) =>
            {
                let symbols = list
                    .iter()
                    .filter_map(|lit| match lit {
                        Lit::Str(text) => Some(self.number(text)),
                        _ => None,
                    })
                    .collect();
                Cond::SymbolIn {
                    column,
                    symbols,
                    negated,
                }
            }
            other => other,
        })
    }

    /// Gives `views` the symbols of the string columns in `columns`.
    pub fn look_up(&self, views: &mut Views, columns: &[usize]) {
        for &column in columns {
            let Some(Some(strings)) = views.strs.get(column) else {
                continue;
            };
            let numbers = (0..strings.len())
                .map(|row| {
                    if strings.is_null(row) {
                        NULL_SYMBOL
                    } else {
                        self.numbers
                            .get(strings.value(row))
                            .copied()
                            .unwrap_or(NO_SYMBOL)
                    }
                })
                .collect();
            if let Some(slot) = views.symbols.get_mut(column) {
                *slot = Some(numbers);
            }
        }
    }
}

impl Views {
    /// Views of `batch`'s columns in each of `used`.
    pub fn new(batch: &RecordBatch, used: &[ColumnRef]) -> Result<Views> {
        let width = batch.num_columns();
        let mut views = Views {
            ints: vec![None; width],
            floats: vec![None; width],
            strs: vec![None; width],
            bools: vec![None; width],
            nulls: batch
                .columns()
                .iter()
                .map(|c| Some(Arc::clone(c)))
                .collect(),
            symbols: vec![None; width],
        };
        for column in used {
            let Some(source) = batch.columns().get(column.column) else {
                continue;
            };
            let cast = cast(source, &column.family.data_type())
                .map_err(|e| AlertError::Invalid(e.to_string()))?;
            let any = cast.as_any();
            match column.family {
                Family::Int => {
                    views.ints[column.column] = any.downcast_ref::<Int64Array>().cloned()
                }
                Family::Float => {
                    views.floats[column.column] = any.downcast_ref::<Float64Array>().cloned()
                }
                Family::Str => {
                    views.strs[column.column] = any.downcast_ref::<StringArray>().cloned()
                }
                Family::Bool => {
                    views.bools[column.column] = any.downcast_ref::<BooleanArray>().cloned()
                }
            }
        }
        Ok(views)
    }

    pub fn int(&self, column: usize, row: usize) -> Option<i64> {
        let array = self.ints.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    pub fn float(&self, column: usize, row: usize) -> Option<f64> {
        let array = self.floats.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    pub fn str(&self, column: usize, row: usize) -> Option<&str> {
        let array = self.strs.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    /// The symbol of the string at `row` (`None` for NULL).
    pub fn symbol(&self, column: usize, row: usize) -> Option<u32> {
        let symbols = self.symbols.get(column)?.as_ref()?;
        symbols.get(row).copied().filter(|s| *s != NULL_SYMBOL)
    }

    pub fn bool(&self, column: usize, row: usize) -> Option<bool> {
        let array = self.bools.get(column)?.as_ref()?;
        array.is_valid(row).then(|| array.value(row))
    }

    pub(super) fn int_array(&self, column: usize) -> Option<&Int64Array> {
        self.ints.get(column)?.as_ref()
    }

    pub(super) fn float_array(&self, column: usize) -> Option<&Float64Array> {
        self.floats.get(column)?.as_ref()
    }

    /// Each row's symbol in string column `column`, when alerts compare it by symbol.
    pub(super) fn symbols_of(&self, column: usize) -> Option<&[u32]> {
        self.symbols.get(column)?.as_deref()
    }

    fn is_null(&self, column: usize, row: usize) -> bool {
        self.nulls
            .get(column)
            .and_then(Option::as_ref)
            .is_none_or(|array| array.is_null(row))
    }

    /// How the value of `column` at `row` orders against `lit` (`None` for NULL).
    fn order(&self, column: ColumnRef, row: usize, lit: &Lit) -> Option<Ordering> {
        Some(match lit {
            Lit::Int(lit) => self.int(column.column, row)?.cmp(lit),
            Lit::Float(lit) => self.float(column.column, row)?.total_cmp(lit),
            Lit::Str(lit) => self.str(column.column, row)?.cmp(lit.as_str()),
            Lit::Bool(lit) => self.bool(column.column, row)?.cmp(lit),
        })
    }
}

/// The truth of `cond` at `row`; `residual(n)` gives residual `n`'s results for the batch.
pub fn evaluate(
    cond: &Cond,
    views: &Views,
    row: usize,
    residual: &mut dyn FnMut(usize) -> Result<Option<bool>>,
) -> Result<Option<bool>> {
    Ok(match cond {
        Cond::And(parts) => {
            let mut result = Some(true);
            for part in parts {
                match evaluate(part, views, row, residual)? {
                    Some(false) => return Ok(Some(false)),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        Cond::Or(parts) => {
            let mut result = Some(false);
            for part in parts {
                match evaluate(part, views, row, residual)? {
                    Some(true) => return Ok(Some(true)),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
        Cond::Not(inner) => evaluate(inner, views, row, residual)?.map(|b| !b),
        Cond::Const(value) => *value,
        Cond::SymbolEq {
            column,
            symbol,
            negated,
        } => views
            .symbol(column.column, row)
            .map(|value| (value == *symbol) != *negated),
        Cond::SymbolIn {
            column,
            symbols,
            negated,
        } => views
            .symbol(column.column, row)
            .map(|value| symbols.contains(&value) != *negated),
        Cond::Compare { column, op, lit } => views.order(*column, row, lit).map(|o| op.holds(o)),
        Cond::Between {
            column,
            low,
            high,
            negated,
        } => {
            let above = views.order(*column, row, low).map(|o| o != Ordering::Less);
            let below = views
                .order(*column, row, high)
                .map(|o| o != Ordering::Greater);
            let within = match (above, below) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            };
            within.map(|w| w != *negated)
        }
        Cond::In {
            column,
            list,
            negated,
        } => {
            let mut found = Some(false);
            for lit in list {
                match views.order(*column, row, lit) {
                    None => found = None,
                    Some(Ordering::Equal) => {
                        found = Some(true);
                        break;
                    }
                    Some(_) => {}
                }
            }
            found.map(|f| f != *negated)
        }
        Cond::Prefix {
            column,
            prefix,
            negated,
        } => views
            .str(column.column, row)
            .map(|value| value.starts_with(prefix.as_str()) != *negated),
        Cond::IsNull { column, negated } => Some(views.is_null(*column, row) != *negated),
        Cond::Truth(column) => views.bool(column.column, row),
        Cond::Residual(index) => residual(*index)?,
    })
}

/// The columns (and families) `cond` reads.
pub fn columns_used(cond: &Cond, out: &mut Vec<ColumnRef>) {
    match cond {
        Cond::And(parts) | Cond::Or(parts) => parts.iter().for_each(|p| columns_used(p, out)),
        Cond::Not(inner) => columns_used(inner, out),
        Cond::Compare { column, .. }
        | Cond::Between { column, .. }
        | Cond::In { column, .. }
        | Cond::Prefix { column, .. }
        | Cond::SymbolEq { column, .. }
        | Cond::SymbolIn { column, .. }
        | Cond::Truth(column) => out.push(*column),
        Cond::Const(_) | Cond::IsNull { .. } | Cond::Residual(_) => {}
    }
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

    #[test]
    fn string_equalities_compare_by_symbol_and_come_back_as_written() {
        let column = ColumnRef {
            column: 0,
            family: Family::Str,
        };
        let cond = Cond::And(vec![
            Cond::Compare {
                column,
                op: Compare::NotEq,
                lit: Lit::Str("Seoul".into()),
            },
            Cond::In {
                column,
                list: vec![Lit::Str("Busan".into()), Lit::Str("Seoul".into())],
                negated: false,
            },
        ]);
        let mut symbols = Symbols::default();
        let interned = symbols.intern(cond.clone());
        assert!(matches!(
            &interned,
            Cond::And(parts) if matches!(
                parts.as_slice(),
                [
                    Cond::SymbolEq { symbol: 0, negated: true, .. },
                    Cond::SymbolIn { symbols, negated: false, .. },
                ] if symbols == &[1, 0]
            )
        ));
        assert_eq!(
            format!("{:?}", symbols.restore(interned)),
            format!("{cond:?}")
        );
    }
}
