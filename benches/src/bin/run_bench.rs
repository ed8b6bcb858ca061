//! `sluice run` end to end from a CSV file: Nexmark bids through a V-shape pattern, read,
//! decoded, matched and written as `sluice run SCRIPT --input bid=FILE --output DIR` does
//! (in this process, through the same code).
//!
//! `cargo run --release -p sluice-benches --bin run_bench -- flink-v|prev-v [EVENTS]`
//!
//! The bids (100 000 per second of event time, up to 2 s out of order) are written to a CSV
//! file in a scratch directory first; that is not timed. Prints the run's CPU seconds (user
//! and system, from `/proc/self/stat`) and wall seconds, events per CPU second, result rows
//! and the peak resident set size.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::csv::WriterBuilder;
use sluice_benches::nexmark::{BID_DDL, BidGenerator, FLINK_V_SHAPE, PREV_V_SHAPE};
use sluice_benches::{count_argument, cpu_seconds, main_of, process_memory_kib};
use sluice_repl::run::{RunArgs, run as run_script};

const BATCH_ROWS: usize = 8192;

fn main() -> std::process::ExitCode {
    main_of("run_bench", bench)
}

fn bench() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    let events = count_argument(args.next(), 2_000_000)?;
    let query = match mode.as_deref() {
        Some("flink-v") => FLINK_V_SHAPE,
        Some("prev-v") => PREV_V_SHAPE,
        _ => return Err("usage: run_bench flink-v|prev-v [EVENTS]".into()),
    };
    let scratch = std::env::temp_dir().join(format!("sluice-run-bench-{}", std::process::id()));
    let outcome = bench_in(&scratch, query, events);
    let _ = fs::remove_dir_all(&scratch);
    outcome
}

fn bench_in(scratch: &PathBuf, query: &str, events: u64) -> Result<(), String> {
    fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    let input = scratch.join("bids.csv");
    let file = fs::File::create(&input).map_err(|e| e.to_string())?;
    let mut writer = WriterBuilder::new()
        .with_header(true)
        .with_timestamp_format("%Y-%m-%d %H:%M:%S%.3f".to_string())
        .build(std::io::BufWriter::new(file));
    let mut bids = BidGenerator::new(7, 100_000);
    let mut written = 0;
    while written < events {
        let rows = BATCH_ROWS.min((events - written) as usize);
        let batch = bids.batch(rows).map_err(|e| e.to_string())?;
        writer.write(&batch).map_err(|e| e.to_string())?;
        written += rows as u64;
    }
    drop(writer);
    let script = scratch.join("v.sql");
    fs::write(&script, format!("{BID_DDL};\n{query};\n")).map_err(|e| e.to_string())?;

    let args = RunArgs {
        script,
        inputs: vec![("bid".to_string(), input)],
        output: Some(scratch.join("out")),
        format: None,
        strict: false,
        checkpoint_dir: None,
        stop_after_rows: None,
    };
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let summary = run_script(&args, &mut std::io::stderr()).map_err(|e| e.to_string())?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    let rows: u64 = summary.written.iter().map(|(_, rows)| rows).sum();
    println!("events: {events}");
    println!("result rows: {rows}");
    println!("cpu seconds: {cpu:.2}");
    println!("wall seconds: {wall:.2}");
    println!(
        "events per cpu second: {:.0}",
        events as f64 / cpu.max(0.01)
    );
    println!(
        "peak RSS: {:.1} MiB",
        process_memory_kib("VmHWM:") as f64 / 1024.0
    );
    Ok(())
}
