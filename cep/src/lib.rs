//! Row pattern recognition (`MATCH_RECOGNIZE`): patterns over row classes, matched in order.
//!
//! A [`Pattern`] is parsed from the text of a `PATTERN (...)` clause ([`parse_pattern`]) and
//! compiled to a [`Program`]. [`Program::find`] looks for the match that SQL:2016 prefers
//! among those starting at a row: it explores the pattern's alternatives in preference order
//! (greedy quantifiers try more rows first, reluctant ones fewer, alternatives left to
//! right), so the first match it completes is the preferred one. Rows are reached through
//! [`Rows`], which tells whether a row satisfies a variable's condition, and whether more
//! rows may still come: a search that would need a row not there yet answers
//! [`Found::NeedMore`] rather than guessing, which is what makes matching over a stream exact.

mod condition;
mod config;
mod error;
mod navigation;
mod operator;
mod partition;
mod partition_rows;
mod pattern;
mod program;
mod scalar_condition;
mod search;
mod store;

pub use condition::{Condition, Derived};
pub use config::{AllRows, MatchRecognizeConfig, Skip};
pub use error::CepError;
pub use navigation::{Navigate, Navigation, RowLabel};
pub use operator::MatchRecognize;
pub use pattern::{Pattern, parse_pattern};
pub use program::Program;
pub use search::{Binding, Found, Rows};

pub type Result<T, E = CepError> = std::result::Result<T, E>;
