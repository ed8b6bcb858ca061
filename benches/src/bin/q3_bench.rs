//! Nexmark query 3: auctions joined with the `person` table (a regular, updating join).
//!
//! `cargo run --release -p sluice-benches --bin q3_bench -- [PERSON_ROWS]`
//!
//! Each batch brings 100 person rows (one in ten updates an earlier person, who moves city
//! and state) and three auctions for every new person, by sellers who mostly registered
//! recently. The query keeps every person and auction, as a regular join does. Prints
//! events/s (person rows and auctions) over the engine's time only, result rows (inserts
//! and retractions), the join's state at the end, and peak RSS.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sluice_benches::nexmark::{AUCTION_DDL, PERSON_DDL, PersonAuctionGenerator, Q3};
use sluice_benches::{count_argument, main_of, process_memory_kib, result_rows, session_with};

const PERSONS_PER_BATCH: usize = 100;

fn main() -> ExitCode {
    main_of("q3_bench", run)
}

fn run() -> Result<(), String> {
    let persons = count_argument(std::env::args().nth(1), 1_000_000)?;
    let (mut session, query) = session_with(&[PERSON_DDL, AUCTION_DDL], Q3)?;

    let mut generator = PersonAuctionGenerator::new(7, 10);
    let mut engine_time = Duration::ZERO;
    let (mut events, mut results, mut sent) = (0u64, 0u64, 0u64);
    while sent < persons {
        let count = PERSONS_PER_BATCH.min((persons - sent) as usize);
        let (person_rows, auction_rows) = generator.next(count).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let engine = session.engine_mut();
        engine
            .append("person", &person_rows)
            .map_err(|e| e.to_string())?;
        engine
            .append("auction", &auction_rows)
            .map_err(|e| e.to_string())?;
        let drained = engine.drain_results();
        engine_time += started.elapsed();
        results += result_rows(&drained);
        events += (person_rows.num_rows() + auction_rows.num_rows()) as u64;
        sent += count as u64;
    }
    let started = Instant::now();
    session.engine_mut().finish().map_err(|e| e.to_string())?;
    let drained = session.engine_mut().drain_results();
    engine_time += started.elapsed();
    results += result_rows(&drained);
    let state: usize = session
        .engine()
        .query_metrics(query)
        .unwrap_or_default()
        .iter()
        .map(|node| node.operator_metrics.state_bytes)
        .sum();

    let seconds = engine_time.as_secs_f64();
    println!("events: {events} ({sent} person rows)");
    println!("result rows: {results}");
    println!("engine seconds: {seconds:.2}");
    println!("events/s: {:.0}", events as f64 / seconds);
    println!("state at end: {:.1} MiB", state as f64 / (1024.0 * 1024.0));
    println!(
        "peak RSS: {:.1} MiB",
        process_memory_kib("VmHWM:") as f64 / 1024.0
    );
    Ok(())
}
