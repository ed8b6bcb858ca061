//! The streaming operators, one per module.

mod filter;
mod interval_join;
mod over_aggregate;
mod project;
mod scan;
mod session_aggregate;
mod sliced_window_aggregate;
mod union;
mod updating_aggregate;
mod upsert_normalize;
mod window_aggregate;
mod window_assign;
mod window_top_n;

pub use filter::Filter;
pub use interval_join::{IntervalJoin, JoinKind, JoinSide, TimeBound};
pub use over_aggregate::{Frame, OverAggregate, OverCall};
pub use project::Project;
pub use scan::Scan;
pub use session_aggregate::SessionAggregate;
pub use sliced_window_aggregate::SlicedWindowAggregate;
pub use union::Union;
pub use updating_aggregate::UpdatingAggregate;
pub use upsert_normalize::UpsertNormalize;
pub use window_aggregate::WindowAggregate;
pub use window_assign::WindowAssign;
pub use window_top_n::{OrderKey, Ranking, TopN, WindowTopN};
