//! The streaming operators, one per module.

mod filter;
mod interval_join;
mod join;
mod over_aggregate;
mod project;
mod regular_join;
mod scan;
mod session_aggregate;
mod session_rows;
mod sliced_window_aggregate;
mod temporal_join;
mod union;
mod updating_aggregate;
mod upsert_normalize;
mod window_aggregate;
mod window_assign;
mod window_join;
mod window_top_n;

pub use filter::Filter;
pub use interval_join::{IntervalJoin, TimeBound};
pub use join::{JoinCodec, JoinKind, JoinSide, Keys};
pub use over_aggregate::{Frame, OverAggregate, OverCall};
pub use project::Project;
pub use regular_join::RegularJoin;
pub use scan::Scan;
pub use session_aggregate::SessionAggregate;
pub use session_rows::{SessionColumns, SessionRows};
pub use sliced_window_aggregate::SlicedWindowAggregate;
pub use temporal_join::{TemporalJoin, VersionTime};
pub use union::Union;
pub use updating_aggregate::UpdatingAggregate;
pub use upsert_normalize::UpsertNormalize;
pub use window_aggregate::WindowAggregate;
pub use window_assign::WindowAssign;
pub use window_join::WindowJoin;
pub use window_top_n::{OrderKey, Ranking, TopN, WindowTopN};
