//! Window aggregation throughput over Nexmark bids, and memory over a long run.
//!
//! `cargo run --release -p sluice-benches --bin window_bench -- tumble|hop [EVENTS]`
//!
//! Feeds generated bids (100 000 per second of event time, batches of 8192) through
//! (a) `tumble`: TUMBLE 10 s, COUNT/SUM/MAX per auction, or (b) `hop`: HOP 10 s sliding by
//! 2 s, the same aggregates. Prints events/s counted over the engine's time only (generation
//! excluded), the result rows, and the resident set size at each tenth of the run and at its
//! peak.

use std::process::ExitCode;

use sluice_benches::nexmark::{BID_DDL, BidGenerator};
use sluice_benches::{count_argument, feed_and_report, main_of, session_with};

const BATCH_ROWS: usize = 8192;
const EVENTS_PER_SECOND: u64 = 100_000;

const TUMBLE: &str = "SELECT auction, window_start, window_end, COUNT(*) AS bids,
  SUM(price) AS volume, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end";

const HOP: &str = "SELECT auction, window_start, window_end, COUNT(*) AS bids,
  SUM(price) AS volume, MAX(price) AS top
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end";

fn main() -> ExitCode {
    main_of("window_bench", run)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let query = match args.next().as_deref() {
        Some("tumble") => TUMBLE,
        Some("hop") => HOP,
        _ => return Err("usage: window_bench tumble|hop [EVENTS]".into()),
    };
    let events = count_argument(args.next(), 10_000_000)?;
    let (mut session, _) = session_with(&[BID_DDL], query)?;

    let mut generator = BidGenerator::new(7, EVENTS_PER_SECOND);
    feed_and_report(&mut session, "bid", events, BATCH_ROWS, |rows| {
        generator.batch(rows).map_err(|e| e.to_string())
    })
}
