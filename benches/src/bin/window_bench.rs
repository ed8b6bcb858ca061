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
use std::time::{Duration, Instant};

use sluice_benches::nexmark::{BID_DDL, BidGenerator};
use sluice_benches::{count_argument, main_of, process_memory_kib, result_rows, session_with};

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
    let mut engine_time = Duration::ZERO;
    let mut fed = 0u64;
    let mut results = 0u64;
    let mut next_sample = events / 10;
    println!("events,rss_mib");
    while fed < events {
        let rows = BATCH_ROWS.min((events - fed) as usize);
        let batch = generator.batch(rows).map_err(|e| e.to_string())?;
        let started = Instant::now();
        session
            .engine_mut()
            .append("bid", &batch)
            .map_err(|e| e.to_string())?;
        let drained = session.engine_mut().drain_results();
        engine_time += started.elapsed();
        results += result_rows(&drained);
        fed += rows as u64;
        if fed >= next_sample {
            println!("{fed},{:.1}", process_memory_kib("VmRSS:") as f64 / 1024.0);
            next_sample += events / 10;
        }
    }
    let started = Instant::now();
    session.engine_mut().finish().map_err(|e| e.to_string())?;
    let drained = session.engine_mut().drain_results();
    engine_time += started.elapsed();
    results += result_rows(&drained);

    let seconds = engine_time.as_secs_f64();
    println!("events: {fed}");
    println!("result rows: {results}");
    println!("engine seconds: {seconds:.2}");
    println!("events/s: {:.0}", fed as f64 / seconds);
    println!(
        "peak RSS: {:.1} MiB",
        process_memory_kib("VmHWM:") as f64 / 1024.0
    );
    Ok(())
}
