//! sluice's SQL front end.
//!
//! Statements are parsed with `sqlparser` (the version DataFusion uses), extended for Flink's
//! DDL ([`statement`]); queries are planned and optimized by DataFusion against sluice's
//! streams and views ([`context`]) and lowered to streaming operator graphs ([`lower`]).
//! A [`Session`] ties this to an engine; a [`Script`] runs whole files the way `sluice run`
//! and the SQL test suite do.

mod checked_sum;
pub mod context;
mod covariance;
pub mod ddl;
mod depth;
pub mod dialect;
mod error;
pub mod functions;
pub mod group_window;
pub mod hints;
pub mod interval_join;
mod location;
pub mod lower;
pub mod match_recognize;
mod names;
pub mod over;
mod parallel;
mod regression;
pub mod script;
pub mod session;
pub mod settings;
pub mod statement;
pub mod temporal_join;
pub mod top_n;
#[cfg(test)]
mod two_column_tests;
pub mod types;
mod unnamed_columns;
mod variance;
mod view;
mod wide_sum;
pub mod window_tvf;

pub use error::{Result, SqlError};
pub use script::Script;
pub use session::{Outcome, Session, StartedQuery};
pub use sluice_alerts::ALERT_COLUMN;
pub use statement::{ParsedStatement, parse_statements};
