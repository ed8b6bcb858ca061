//! Checkpoint size, pause and restore time for a query holding KEYS keys of open state.
//!
//! `cargo run --release -p sluice-benches --bin checkpoint_bench -- window|join|pattern [KEYS]`
//!
//! Feeds KEYS rows, one per key, all within one hour of event time, so that every key's state
//! stays open: (a) `window`: TUMBLE 1 h with COUNT/SUM/MAX per key; (b) `join`: an interval
//! join whose left rows wait up to an hour for a right row that never comes; (c) `pattern`:
//! `MATCH_RECOGNIZE` per key waiting for a second row. Then saves the engine's state (the
//! pause a server's ingest sees: the state is saved under its lock), frames it as a checkpoint
//! file (checksum included), and loads it into a fresh session. Prints one CSV line:
//! query, keys, state bytes in memory, checkpoint bytes, save ms, a second save's ms (as a
//! server's next checkpoint, in memory the first one freed), frame ms, load ms, peak RSS.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_benches::{count_argument, main_of, process_memory_kib};
use sluice_engine::checkpoint;
use sluice_engine::state::StateWriter;

const BATCH_ROWS: usize = 8192;
/// 2024-01-01 00:00:00 UTC.
const HOUR_START: i64 = 1_704_067_200_000;

const DDL: [&str; 2] = [
    "CREATE TABLE l (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)",
    "CREATE TABLE r (k BIGINT, v BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)",
];

const WINDOW: &str = "SELECT k, window_start, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top
FROM TABLE(TUMBLE(TABLE l, DESCRIPTOR(ts), INTERVAL '1' HOUR))
GROUP BY k, window_start, window_end";

const JOIN: &str = "SELECT l.k, l.v, r.v AS rv FROM l, r
WHERE l.k = r.k AND r.ts BETWEEN l.ts AND l.ts + INTERVAL '1' HOUR";

const PATTERN: &str = "SELECT * FROM l MATCH_RECOGNIZE (
  PARTITION BY k ORDER BY ts
  MEASURES A.v AS first_v, B.v AS second_v
  PATTERN (A B)
  DEFINE B AS B.v > A.v)";

fn main() -> ExitCode {
    main_of("checkpoint_bench", run)
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (name, query) = match args.next().as_deref() {
        Some("window") => ("window", WINDOW),
        Some("join") => ("join", JOIN),
        Some("pattern") => ("pattern", PATTERN),
        _ => return Err("usage: checkpoint_bench window|join|pattern [KEYS]".into()),
    };
    let keys = count_argument(args.next(), 1_000_000)?;
    let mut session = start(query)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let mut fed = 0u64;
    while fed < keys {
        let rows = (keys - fed).min(BATCH_ROWS as u64);
        let key: Vec<i64> = (fed..fed + rows).map(|k| k as i64).collect();
        // Spread over the first half hour, in time order: nothing closes.
        let time: Vec<i64> = (fed..fed + rows)
            .map(|k| HOUR_START + (k as i64 * 1_800_000) / keys as i64)
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(key.clone())),
                Arc::new(Int64Array::from(key)),
                Arc::new(TimestampMillisecondArray::from(time)),
            ],
        )
        .map_err(|e| e.to_string())?;
        session
            .engine_mut()
            .append("l", &batch)
            .map_err(|e| e.to_string())?;
        session.engine_mut().drain_results();
        fed += rows;
    }
    let state_bytes: usize = session
        .engine()
        .queries()
        .iter()
        .map(|q| q.state_bytes)
        .sum();

    let started = Instant::now();
    let mut state = StateWriter::new();
    session
        .engine_mut()
        .save_state(&mut state)
        .map_err(|e| e.to_string())?;
    let saved = started.elapsed();
    // A server checkpoints again and again: the second save finds memory the first freed.
    let started = Instant::now();
    let mut again = StateWriter::new();
    session
        .engine_mut()
        .save_state(&mut again)
        .map_err(|e| e.to_string())?;
    let saved_again = started.elapsed();
    drop(again);
    let started = Instant::now();
    let file = checkpoint::encode(&state.into_bytes());
    let framed = started.elapsed();

    let mut fresh = start(query)?;
    let started = Instant::now();
    let body = checkpoint::decode("checkpoint", &file).map_err(|e| e.to_string())?;
    let left_out = fresh
        .engine_mut()
        .load_state(&mut body.reader())
        .map_err(|e| e.to_string())?;
    let loaded = started.elapsed();
    if let Some((_, reason)) = left_out.first() {
        return Err(format!("the state did not load: {reason}"));
    }
    println!(
        "query,keys,state_mib,checkpoint_mib,save_ms,save_again_ms,frame_ms,load_ms,peak_rss_mib"
    );
    println!(
        "{name},{keys},{:.1},{:.1},{:.0},{:.0},{:.0},{:.0},{}",
        state_bytes as f64 / (1 << 20) as f64,
        file.len() as f64 / (1 << 20) as f64,
        saved.as_secs_f64() * 1000.0,
        saved_again.as_secs_f64() * 1000.0,
        framed.as_secs_f64() * 1000.0,
        loaded.as_secs_f64() * 1000.0,
        process_memory_kib("VmHWM:") / 1024
    );
    Ok(())
}

fn start(query: &str) -> Result<sluice_sql::Session, String> {
    let mut session = sluice_sql::Session::new();
    for ddl in DDL {
        session.execute_sql(ddl).map_err(|e| e.to_string())?;
    }
    match session.execute_sql(query).map_err(|e| e.to_string())?.pop() {
        Some(sluice_sql::Outcome::Started(_)) => {}
        _ => return Err("the query did not start".into()),
    }
    session.engine_mut().stop_retaining_history();
    Ok(session)
}
