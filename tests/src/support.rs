//! Helpers for the property tests: a seeded random source, result rows as sorted text, and
//! DataFusion's batch answer to compare with.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// A xorshift generator: the same seed always gives the same numbers.
pub struct Random(pub u64);

impl Random {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Every row of `batches` as comma-separated text (`NULL` for nulls), sorted.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("format: {e}"));
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            rows.push(cells.join(","));
        }
    }
    rows.sort();
    rows
}

/// The rows DataFusion answers `sql` with over the tables `(name, rows)`, sorted.
pub fn batch_query(sql: &str, tables: Vec<(&str, RecordBatch)>) -> Vec<String> {
    let context = SessionContext::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let batches = runtime.block_on(async {
        for (name, rows) in tables {
            let table = MemTable::try_new(rows.schema(), vec![vec![rows]])
                .unwrap_or_else(|e| panic!("table {name}: {e}"));
            if let Err(error) = context.register_table(name, Arc::new(table)) {
                panic!("register {name}: {error}");
            }
        }
        match context.sql(sql).await {
            Ok(frame) => frame.collect().await,
            Err(error) => Err(error),
        }
    });
    sorted_rows(&batches.unwrap_or_else(|e| panic!("{sql}: {e}")))
}
