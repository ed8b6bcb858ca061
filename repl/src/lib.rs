//! The `sluice` command: `sluice run` replays input files through a SQL script, `sluice
//! serve` serves the line protocol over the durable log, and `sluice repl` / `sluice demo`
//! are the interactive shell and the demo on top of it.

pub mod error;
pub mod feed;
pub mod run;
pub mod shell;

pub use error::CliError;
