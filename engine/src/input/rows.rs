//! What reading an input file yields: batches of decoded rows ([`Decoded`]) from a
//! [`RowReader`], each with the rows of the same stretch of input that were rejected.

use crate::{Changes, Result};

/// The column or field that carries a row's change kind.
pub const OP_COLUMN: &str = "op";

/// Rows per decoded batch.
pub const BATCH_ROWS: usize = 8192;

/// An input row that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file where the row starts.
    pub line: u64,
    pub reason: String,
}

/// One batch of decoded rows, and the rows of the same stretch of input that were rejected.
#[derive(Debug)]
pub struct Decoded {
    pub rows: Changes,
    pub errors: Vec<RowError>,
}

/// A file read batch by batch.
pub trait RowReader {
    /// The next batch, or `None` at end of file.
    fn next_batch(&mut self) -> Result<Option<Decoded>>;
}
