//! Pattern matching throughput: `MATCH_RECOGNIZE` over generated tickers and card payments.
//!
//! `cargo run --release -p sluice-benches --bin cep_bench -- v|fraud [EVENTS]`
//!
//! (a) `v`: prices of 1 000 symbols (random walks, 100 000 prices per second of event time)
//! through the V-shape pattern `A B+ C`. (b) `fraud`: payments on 100 000 cards (100 000 per
//! second) through a five-step pattern with `WITHIN INTERVAL '10' MINUTE EMIT TIMEOUTS`.
//! Batches of 8192 rows. Prints events/s over the engine's time only (generation excluded),
//! result rows, and the resident set size at each tenth of the run and at its peak.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use sluice_benches::ticker::{
    CARD_FRAUD, PAYMENTS_DDL, PaymentGenerator, TICKER_DDL, TickerGenerator, V_SHAPE,
};
use sluice_benches::{count_argument, main_of, process_memory_kib, result_rows, session_with};

const BATCH_ROWS: usize = 8192;

fn main() -> ExitCode {
    main_of("cep_bench", run)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    let events = count_argument(args.next(), 10_000_000)?;
    let (ddl, query, stream) = match mode.as_deref() {
        Some("v") => (TICKER_DDL, V_SHAPE, "ticker"),
        Some("fraud") => (PAYMENTS_DDL, CARD_FRAUD, "payments"),
        _ => return Err("usage: cep_bench v|fraud [EVENTS]".into()),
    };
    let (mut session, _) = session_with(&[ddl], query)?;
    let mut ticker = TickerGenerator::new(7, 1_000, 100_000);
    let mut payments = PaymentGenerator::new(7, 100_000, 100_000);
    let mut next = |rows: usize| -> Result<RecordBatch, ArrowError> {
        if stream == "ticker" {
            ticker.batch(rows)
        } else {
            payments.batch(rows)
        }
    };

    let mut engine_time = Duration::ZERO;
    let (mut fed, mut results) = (0u64, 0u64);
    let mut next_sample = events / 10;
    println!("events,rss_mib");
    while fed < events {
        let rows = BATCH_ROWS.min((events - fed) as usize);
        let batch = next(rows).map_err(|e| e.to_string())?;
        let started = Instant::now();
        session
            .engine_mut()
            .append(stream, &batch)
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
