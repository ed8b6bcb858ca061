//! The `sluice` command: `sluice run` replays input files through a SQL script.

pub mod error;
pub mod feed;
pub mod run;
pub mod serve;
pub mod shell;

pub use error::CliError;
