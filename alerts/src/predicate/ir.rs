//! The condition IR: an alert's condition as a tree of typed tests of one row (a column
//! compared with a literal in the column's family, a prefix, a NULL test, a string
//! equality by interned string), joined by `AND`, `OR` and `NOT`, with the parts left to
//! DataFusion as residual expressions.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;

/// The type a column is compared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Int,
    Float,
    Str,
    Bool,
}

impl Family {
    pub(super) fn data_type(self) -> DataType {
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
    pub(super) fn family(&self) -> Family {
        match self {
            Lit::Int(_) => Family::Int,
            Lit::Float(_) => Family::Float,
            Lit::Str(_) => Family::Str,
            Lit::Bool(_) => Family::Bool,
        }
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

/// A column read in a family: which of a batch's [`Views`](super::views::Views) a test reads.
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
    /// A string column equal (or, negated, not equal) to a string, by its interned
    /// string's number ([`Symbols`](super::intern::Symbols)): made by
    /// [`Symbols::intern`](super::intern::Symbols::intern) when an alert is registered.
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
    pub(super) fn map_tests(self, map: &mut impl FnMut(Cond) -> Cond) -> Cond {
        match self {
            Cond::And(parts) => Cond::And(parts.into_iter().map(|p| p.map_tests(map)).collect()),
            Cond::Or(parts) => Cond::Or(parts.into_iter().map(|p| p.map_tests(map)).collect()),
            Cond::Not(inner) => Cond::Not(Box::new(inner.map_tests(map))),
            test => map(test),
        }
    }

    /// How costly evaluating the condition is, roughly: numbers before strings, lists and
    /// trees, residual expressions last.
    pub(super) fn cost(&self) -> u8 {
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

/// Adds the columns `cond` compares by symbol to `out`.
pub fn symbol_columns(cond: &Cond, out: &mut BTreeSet<usize>) {
    match cond {
        Cond::And(parts) | Cond::Or(parts) => parts.iter().for_each(|p| symbol_columns(p, out)),
        Cond::Not(inner) => symbol_columns(inner, out),
        Cond::SymbolEq { column, .. } | Cond::SymbolIn { column, .. } => {
            out.insert(column.column);
        }
        _ => {}
    }
}
