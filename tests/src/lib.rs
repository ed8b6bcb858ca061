//! The streaming SQL test suite's runner.
//!
//! A test file is a sequence of blocks separated by blank lines; `#` starts a comment line.
//!
//! ```text
//! statement ok                 -- the SQL below (up to a blank line) must succeed
//! statement error <text>       -- it must fail with a message containing <text>
//! statement warning <text>     -- it must succeed and warn with a message containing <text>
//! statement rows               -- a bounded statement (SHOW, DESCRIBE) and, after a line
//! ----                         --   `----`, its exact answer as CSV with a header
//! input <stream> [csv|jsonl]   -- rows to append (CSV with a header row, or JSON lines);
//! ----                         -- optionally followed by the rows it must reject,
//! <line>: <reason>             --   one per line, numbered within the block
//! watermark <stream> <time>    -- raise the stream's watermark (YYYY-MM-DD HH:MM:SS[.fff])
//! output <name>                -- the rows <name> emitted since its last check, exactly:
//! op,col,...                   --   a header, then one CSV line per row, in emission order
//! finish                       -- end all input (watermarks to +inf)
//! bounded                      -- the inputs end, as `sluice run` feeds files: queries
//!                              --   started after it may sort at end of input
//! ```
//!
//! Statements run as in `sluice run` (views and `INSERT ... SELECT` produce outputs named
//! after them, SELECTs are `q1`, `q2`, ...). At the end of the file input is finished if it
//! was not, and any emitted row that no `output` block checked fails the test.
//!
//! # Completion
//!
//! [`complete_test_file`] runs a file and writes what it observed in place of what it
//! expected, as DataFusion's sqllogictest runner does with `--complete`; the suite does this
//! to its files with `cargo test -p sluice-tests --test sql_suite -- --complete [FILTER]`.
//! It rewrites the rows under `output` blocks, the answer under `statement rows` (adding the
//! `----` if missing), the rejected rows of `input` blocks, and the expected message of
//! `statement error` / `statement warning` lines (the first line of the observed message; a
//! `statement ok` that fails becomes `statement error`, and the other way round). An empty
//! expectation (`output q1` alone, `statement error` without text) counts as a placeholder and
//! is filled in. Everything else, comments, blank lines and statements included, stays byte
//! for byte, and a file whose expectations all hold is left unchanged. Comment lines inside a
//! rewritten block of rows move to its top. A file that fails for any other reason (an
//! unknown directive, rows no `output` block checks) is not rewritten.

mod blocks;
pub mod fuzz;
mod rewrite;
mod runner;
pub mod support;

pub use runner::{
    Cut, Failure, complete_test_file, run_leniently, run_test_file, run_test_file_with_restart,
};
