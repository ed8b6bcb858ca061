//! The streaming operators, one per module.

mod filter;
mod project;
mod scan;
mod union;
mod window_assign;

pub use filter::Filter;
pub use project::Project;
pub use scan::Scan;
pub use union::Union;
pub use window_assign::WindowAssign;
