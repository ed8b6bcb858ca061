//! Search on streams: many standing conditions (alerts) over one stream, each row matched
//! against all of them through an index rather than one by one.
//!
//! [`predicate`] compiles a condition (a type-coerced DataFusion expression) for exact
//! evaluation under SQL's three-valued logic; [`AlertIndex`] finds the alerts that might
//! hold for a row (in the posting list of the row's partition) and evaluates only those;
//! [`AlertSet`] names the alerts, suppresses repeated firings and makes firing rows;
//! [`AlertOperator`] runs a set in a query.

mod arranged;
mod conjuncts;
mod error;
mod index;
mod masks;
mod operator;
mod predicate;
mod set;

pub use error::AlertError;
pub use index::{AlertId, AlertIndex, Matches, Unindexed};
pub use operator::{AlertOperator, SharedAlerts, lock};
pub use predicate::{Compiled, compile, compile_coerced};
pub use set::{ALERT_COLUMN, AlertSet, Fired, Suppression, is_time_type};

pub type Result<T, E = AlertError> = std::result::Result<T, E>;
