//! How long a checkpoint of `sluice serve` pauses ingest, with its state saved by a forked
//! child (the default) or in the server's process (`--checkpoint-in-process`).
//!
//! `cargo run --release -p sluice-benches --bin checkpoint_pause_bench -- child|process|none [KEYS]`
//!
//! Starts `target/release/sluice serve` (or `$SLUICE`) with a checkpoint every 2 s, registers
//! an hourly TUMBLE with COUNT/SUM/MAX per key, and publishes KEYS rows (default 10 000 000),
//! one per key, all within the hour, so every key's window stays open. Then reads three
//! checkpoints from `stats`: the pause is how long beginning each held the core (the feeder
//! waits for it, and so does every request that reads the queries), the total how long saving
//! and writing it took. Prints one CSV line: saver, keys, the query's state in memory (MiB,
//! as `stats` estimates it), the checkpoint file (MiB), the three pauses (ms), the three totals
//! (ms), the seconds it then takes to publish and feed every key once more while checkpoints
//! go on (`none`: with no checkpoints, for comparison), and the server's peak RSS (MiB).

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_benches::served::{ScratchDir, Server};
use sluice_benches::{count_argument, main_of, process_memory_kib_of};

const DDL: &str = "CREATE TABLE l (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)";
const QUERY: &str = "SELECT k, window_start, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top \
    FROM TABLE(TUMBLE(TABLE l, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
    GROUP BY k, window_start, window_end";
/// Rows per publish.
const ROWS: u64 = 10_000;
/// Checkpoints read after the input.
const CHECKPOINTS: usize = 3;

fn main() -> std::process::ExitCode {
    main_of("checkpoint_pause_bench", run)
}

/// The publish of rows `first..first + ROWS`, spread over 10:00 to 11:00 for `total` rows.
fn publish_line(first: u64, total: u64) -> String {
    let mut csv = String::from("k,v,ts\\n");
    for n in first..(first + ROWS).min(total) {
        let millis = n * 3_599_000 / total.max(1);
        csv.push_str(&format!(
            "{n},{},2024-01-01 10:{:02}:{:02}.{:03}\\n",
            n % 997 + 1,
            millis / 60_000,
            (millis / 1000) % 60,
            millis % 1000
        ));
    }
    format!(r#"{{"op":"publish","stream":"l","csv":"{csv}"}}"#)
}

fn stats(server: &Server) -> Result<Value, String> {
    serde_json::from_str(&server.request(r#"{"op":"stats"}"#)?).map_err(|e| e.to_string())
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let saver = args.next().unwrap_or_default();
    let mut options = vec!["--checkpoint-interval", "2"];
    match saver.as_str() {
        "child" => {}
        "process" => options.push("--checkpoint-in-process"),
        "none" => options[1] = "0",
        _ => return Err("usage: checkpoint_pause_bench child|process|none [KEYS]".into()),
    }
    let keys = count_argument(args.next(), 10_000_000)?;
    let scratch = ScratchDir::new("checkpoint_pause_bench");
    let dir = scratch.0.clone();
    let (server, _) = Server::start(&dir, &options)?;
    server.set_up(DDL, &[("hourly", QUERY)])?;
    server.pipeline(keys.div_ceil(ROWS), |publish| {
        publish_line(publish * ROWS, keys)
    })?;
    // `stats` waits until every publish was fed: checkpoints begun after it hold all keys.
    let loaded = stats(&server)?;
    let state_bytes = loaded["queries"][0]["state_bytes"].as_u64().unwrap_or(0);
    let mut seen = loaded["checkpoints"]["last"]["id"].as_u64().unwrap_or(0) + 1;
    let mut checkpoints = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while saver != "none" && checkpoints.len() < CHECKPOINTS {
        if Instant::now() > deadline {
            return Err("no checkpoint within 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(200));
        let now = stats(&server)?;
        if let Some(error) = now["checkpoints"]["error"].as_str() {
            return Err(format!("checkpoint failed: {error}"));
        }
        let last = &now["checkpoints"]["last"];
        if last["id"].as_u64().is_some_and(|id| id > seen) {
            seen = last["id"].as_u64().unwrap_or(seen);
            checkpoints.push(last.clone());
        }
    }
    // Every key once more, while checkpoints go on: how long ingest takes with them.
    let updating = Instant::now();
    server.pipeline(keys.div_ceil(ROWS), |publish| {
        publish_line(publish * ROWS, keys)
    })?;
    stats(&server)?;
    let update_s = updating.elapsed().as_secs_f64();
    let peak_mib = process_memory_kib_of(server.pid(), "VmHWM:") / 1024;
    drop(server);
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let column = |field: &str| {
        checkpoints
            .iter()
            .map(|c| format!("{:.1}", c[field].as_f64().unwrap_or(f64::NAN)))
            .chain(std::iter::repeat_n(
                String::new(),
                CHECKPOINTS - checkpoints.len(),
            ))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "saver,keys,state_mib,checkpoint_mib,pause_ms_1,pause_ms_2,pause_ms_3,\
         took_ms_1,took_ms_2,took_ms_3,update_s,peak_rss_mib"
    );
    println!(
        "{saver},{keys},{:.0},{:.0},{},{},{update_s:.1},{peak_mib}",
        mib(state_bytes),
        mib(checkpoints
            .first()
            .map_or(0, |c| c["bytes"].as_u64().unwrap_or(0))),
        column("pause_ms"),
        column("took_ms"),
    );
    Ok(())
}
