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
//! ```
//!
//! Statements run as in `sluice run` (views and `INSERT ... SELECT` produce outputs named
//! after them, SELECTs are `q1`, `q2`, ...). At the end of the file input is finished if it
//! was not, and any emitted row that no `output` block checked fails the test.

mod blocks;
mod runner;
pub mod support;

pub use runner::{Failure, run_test_file};
