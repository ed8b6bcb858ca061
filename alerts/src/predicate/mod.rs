//! An alert's condition compiled for evaluating one row at a time under SQL's three-valued
//! logic, and the parts of it an index can use.
//!
//! Comparisons of a column with a literal (`=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`,
//! `IN`, `LIKE 'prefix%'`, `IS [NOT] NULL`), `AND`, `OR` and `NOT` are compiled; anything
//! else (arithmetic, functions, general `LIKE`) stays a DataFusion expression, evaluated on
//! the whole batch when an alert that has one is a candidate (a residual).
//!
//! The condition IR is in `ir`, its compiler from DataFusion expressions in `compile`,
//! string interning in `intern`, a batch's columns as the IR reads them in `views`, and
//! three-valued evaluation in `evaluate`.

mod compile;
mod evaluate;
mod intern;
mod ir;
mod views;

pub use compile::{Compiled, compile, compile_coerced};
pub use evaluate::evaluate;
pub use intern::Symbols;
pub use ir::{ColumnRef, Compare, Cond, Family, Lit, columns_used, symbol_columns};
pub use views::Views;
