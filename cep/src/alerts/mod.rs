//! Search on streams: many standing conditions (alerts) over one stream, each row matched
//! against all of them through an index rather than one by one.
//!
//! [`predicate`] compiles a condition (a type-coerced DataFusion expression) for exact
//! evaluation under SQL's three-valued logic; [`AlertIndex`] finds the alerts that might
//! hold for a row and evaluates only those.

mod index;
mod predicate;

pub use index::{AlertId, AlertIndex};
pub use predicate::{Compiled, compile};
