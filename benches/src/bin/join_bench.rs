//! Interval join throughput: bids joined with their auction within 10 seconds.
//!
//! `cargo run --release -p sluice-benches --bin join_bench -- [AUCTIONS]`
//!
//! 1 000 auctions open per second of event time with 100 bids each; every bid goes to one of
//! the 10 000 most recently opened auctions, so about 10 000 keys are live in the join. The
//! query joins each bid with its auction when the bid comes at most 10 s after the auction
//! opened. Prints events/s (auctions and bids) over the engine's time only, result rows, the
//! join's state at the end of input, and peak RSS.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sluice_benches::nexmark::{AUCTION_DDL, AuctionBidGenerator, BID_DDL};
use sluice_benches::{count_argument, main_of, process_memory_kib, result_rows, session_with};

const JOIN: &str = "SELECT b.auction, b.price, a.seller, b.date_time
FROM bid b JOIN auction a ON b.auction = a.id
  AND b.date_time BETWEEN a.date_time AND a.date_time + INTERVAL '10' SECOND";

const AUCTIONS_PER_BATCH: usize = 80;

fn main() -> ExitCode {
    main_of("join_bench", run)
}

fn run() -> Result<(), String> {
    let auctions = count_argument(std::env::args().nth(1), 100_000)?;
    let (mut session, query) = session_with(&[BID_DDL, AUCTION_DDL], JOIN)?;

    let mut generator = AuctionBidGenerator::new(11, 1_000, 100, 10_000);
    let mut engine_time = Duration::ZERO;
    let (mut events, mut results, mut opened) = (0u64, 0u64, 0u64);
    let mut peak_state = 0usize;
    while opened < auctions {
        let count = AUCTIONS_PER_BATCH.min((auctions - opened) as usize);
        let (auction_rows, bid_rows) = generator.next(count).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let engine = session.engine_mut();
        engine
            .append("auction", &auction_rows)
            .map_err(|e| e.to_string())?;
        engine.append("bid", &bid_rows).map_err(|e| e.to_string())?;
        let drained = engine.drain_results();
        engine_time += started.elapsed();
        results += result_rows(&drained);
        events += (auction_rows.num_rows() + bid_rows.num_rows()) as u64;
        opened += count as u64;
        let state: usize = session
            .engine()
            .query_metrics(query)
            .unwrap_or_default()
            .iter()
            .map(|node| node.operator_metrics.state_bytes)
            .sum();
        peak_state = peak_state.max(state);
    }
    let started = Instant::now();
    session.engine_mut().finish().map_err(|e| e.to_string())?;
    let drained = session.engine_mut().drain_results();
    engine_time += started.elapsed();
    results += result_rows(&drained);

    let seconds = engine_time.as_secs_f64();
    println!("events: {events} ({opened} auctions)");
    println!("result rows: {results}");
    println!("engine seconds: {seconds:.2}");
    println!("events/s: {:.0}", events as f64 / seconds);
    println!(
        "peak join state: {:.1} MiB",
        peak_state as f64 / (1024.0 * 1024.0)
    );
    println!(
        "peak RSS: {:.1} MiB",
        process_memory_kib("VmHWM:") as f64 / 1024.0
    );
    Ok(())
}
