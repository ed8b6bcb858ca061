//! How long `sluice serve` takes to start again over retained input, with and without a
//! checkpoint.
//!
//! `cargo run --release -p sluice-benches --bin restart_bench -- [MIB]`
//!
//! Starts `target/release/sluice serve` (or `$SLUICE`) on a fresh data directory with a
//! checkpoint every second and no retention, registers an hourly TUMBLE count per symbol
//! (its window stays open all along), and publishes MIB mebibytes of CSV (default 1 024),
//! one pipelined connection, then waits for a checkpoint after the last publish and kills
//! the server (SIGKILL). It then starts it again twice: with the checkpoints (only what came
//! after the last one is replayed), and with the checkpoints moved away (all retained input
//! is replayed). Prints one CSV line: the MiB published, the stream's bytes on disk, the
//! seconds to publish, and each start's seconds until it listens.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_benches::served::{ScratchDir, Server};
use sluice_benches::{count_argument, main_of};

/// A checkpoint every second.
const OPTIONS: [&str; 2] = ["--checkpoint-interval", "1"];

const DDL: &str = "CREATE TABLE ticks (symbol STRING, price BIGINT, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts)";
const QUERY: &str = "SELECT symbol, window_start, COUNT(*) AS n, SUM(price) AS total \
    FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
    GROUP BY symbol, window_start, window_end";
/// Rows per publish.
const ROWS: u64 = 10_000;

fn main() -> std::process::ExitCode {
    main_of("restart_bench", run)
}

/// One publish of ROWS rows from row `first` on, spread over 10:00 to 11:00 for `total`
/// rows in all.
fn publish_line(first: u64, total: u64) -> String {
    let mut csv = String::from("symbol,price,ts\\n");
    for n in first..first + ROWS {
        let millis = n * 3_599_000 / total.max(1);
        csv.push_str(&format!(
            "S{},{},2024-01-01 10:{:02}:{:02}.{:03}\\n",
            n % 1000,
            n % 997 + 1,
            millis / 60_000,
            (millis / 1000) % 60,
            millis % 1000
        ));
    }
    format!(r#"{{"op":"publish","stream":"ticks","csv":"{csv}"}}"#)
}

fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|entry| match entry.metadata() {
                Ok(meta) if meta.is_dir() => directory_bytes(&entry.path()),
                Ok(meta) => meta.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

fn run() -> Result<(), String> {
    let mib = count_argument(std::env::args().nth(1), 1024)?;
    let scratch = ScratchDir::new("restart_bench");
    let dir = scratch.0.clone();
    let (server, _) = Server::start(&dir, &OPTIONS)?;
    server.set_up(DDL, &[("hourly", QUERY)])?;
    let sample = publish_line(0, 1);
    let publishes = (mib << 20) / sample.len() as u64 + 1;
    let total = publishes * ROWS;
    let started = Instant::now();
    server.pipeline(publishes, |publish| publish_line(publish * ROWS, total))?;
    let published = started.elapsed();
    // The next checkpoint covers every publish.
    std::thread::sleep(Duration::from_secs(3));
    drop(server);
    let stream_bytes = directory_bytes(&dir.join("streams"));

    let (server, with_checkpoint) = Server::start(&dir, &OPTIONS)?;
    drop(server);
    let moved: PathBuf = dir.join("checkpoints.away");
    std::fs::rename(dir.join("checkpoints"), &moved).map_err(|e| e.to_string())?;
    let (server, without_checkpoint) = Server::start(&dir, &OPTIONS)?;
    drop(server);
    println!("published_mib,stream_mib,publish_s,restart_with_checkpoint_s,restart_without_s");
    println!(
        "{mib},{:.0},{:.1},{:.2},{:.2}",
        stream_bytes as f64 / (1 << 20) as f64,
        published.as_secs_f64(),
        with_checkpoint.as_secs_f64(),
        without_checkpoint.as_secs_f64()
    );
    Ok(())
}
