//! The streaming operators, one per module.

mod filter;
mod project;
mod scan;
mod union;

pub use filter::Filter;
pub use project::Project;
pub use scan::Scan;
pub use union::Union;
