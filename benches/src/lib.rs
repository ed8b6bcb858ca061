//! Inputs for the benchmarks: batches of bids and the same bids as CSV and JSON lines.
//!
//! Values come from a fixed-seed generator, so every run measures the same data. The
//! [`nexmark`] module generates Nexmark-style bids for the window benchmarks.

pub mod nexmark;
pub mod served;
pub mod ticker;

/// The benchmarks allocate as the `sluice` binary does, through mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A xorshift generator: the same seed always gives the same numbers.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn draw(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// This process's CPU time so far, in seconds (user and system, all threads).
pub fn cpu_seconds() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the command name (which ends with the last ')'): utime is the 12th,
    // stime the 13th, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| -> Result<f64, String> {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| "unreadable /proc/self/stat".to_string())
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// A `/proc/self/status` figure in KiB, such as `VmRSS:` or `VmHWM:` (0 where there is no
/// such file).
pub fn process_memory_kib(field: &str) -> u64 {
    memory_kib_in("/proc/self/status", field)
}

/// The same figure of process `pid`.
pub fn process_memory_kib_of(pid: u32, field: &str) -> u64 {
    memory_kib_in(&format!("/proc/{pid}/status"), field)
}

fn memory_kib_in(status_file: &str, field: &str) -> u64 {
    std::fs::read_to_string(status_file)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs a benchmark binary's body; an error is printed as `NAME: error`, with a failing exit
/// code.
pub fn main_of(name: &str, run: fn() -> Result<(), String>) -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command-line argument `text` as a count, or `default` when there is none.
pub fn count_argument(text: Option<String>, default: u64) -> Result<u64, String> {
    match text {
        Some(text) => text.parse().map_err(|_| format!("'{text}' is not a count")),
        None => Ok(default),
    }
}

/// A session with the streams of `ddl` and the standing query `query`, which no longer keeps
/// stream history; and the query's id.
pub fn session_with(
    ddl: &[&str],
    query: &str,
) -> Result<(sluice_sql::Session, sluice_engine::QueryId), String> {
    let mut session = sluice_sql::Session::new();
    for sql in ddl {
        session.execute_sql(sql).map_err(|e| e.to_string())?;
    }
    let id = match session.execute_sql(query).map_err(|e| e.to_string())?.pop() {
        Some(sluice_sql::Outcome::Started(query)) => query.id,
        _ => return Err("the query did not start".into()),
    };
    session.engine_mut().stop_retaining_history();
    Ok((session, id))
}

/// Feeds `events` rows made by `next` (given a row count) into `stream` in batches of
/// `batch_rows`, then ends input, printing the resident set size at each tenth of the run;
/// then prints the events, result rows, engine seconds (generation excluded), events/s and
/// peak RSS.
pub fn feed_and_report(
    session: &mut sluice_sql::Session,
    stream: &str,
    events: u64,
    batch_rows: usize,
    mut next: impl FnMut(usize) -> Result<datafusion::arrow::record_batch::RecordBatch, String>,
) -> Result<(), String> {
    let mut engine_time = std::time::Duration::ZERO;
    let (mut fed, mut results) = (0u64, 0u64);
    let mut next_sample = events / 10;
    println!("events,rss_mib");
    while fed < events {
        let rows = batch_rows.min((events - fed) as usize);
        let batch = next(rows)?;
        let started = std::time::Instant::now();
        let engine = session.engine_mut();
        engine.append(stream, &batch).map_err(|e| e.to_string())?;
        let drained = engine.drain_results();
        engine_time += started.elapsed();
        results += result_rows(&drained);
        fed += rows as u64;
        if fed >= next_sample {
            println!("{fed},{:.1}", process_memory_kib("VmRSS:") as f64 / 1024.0);
            next_sample += events / 10;
        }
    }
    let started = std::time::Instant::now();
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

/// The number of rows in results drained from an engine.
pub fn result_rows(drained: &[(sluice_engine::QueryId, Vec<sluice_engine::Changes>)]) -> u64 {
    drained
        .iter()
        .flat_map(|(_, changes)| changes)
        .map(|c| c.num_rows() as u64)
        .sum()
}

use std::sync::Arc;

use datafusion::arrow::array::{
    Float64Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::time::format_millis;

/// The DDL of the benchmark stream: six columns.
pub const BID_DDL: &str = "CREATE TABLE bid (id BIGINT, price DOUBLE, qty INT, item STRING,
  supplier STRING, bidtime TIMESTAMP(3), WATERMARK FOR bidtime AS bidtime - INTERVAL '5' SECOND)";

/// The filter+project query measured.
pub const FILTER_PROJECT: &str =
    "SELECT id, item, price * qty AS notional, bidtime FROM bid WHERE price > 50 AND qty >= 2";

pub fn bid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("qty", DataType::Int32, true),
        Field::new("item", DataType::Utf8, true),
        Field::new("supplier", DataType::Utf8, true),
        Field::new(
            "bidtime",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]))
}

/// One bid, as plain values.
pub struct Bid {
    pub id: i64,
    pub price: f64,
    pub qty: i32,
    pub item: String,
    pub supplier: String,
    pub bidtime: i64,
}

/// `count` bids starting at 2024-01-01, about 1 ms apart with some disorder.
pub fn bids(count: usize, seed: u64) -> Vec<Bid> {
    let mut state = seed.max(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = 1_704_067_200_000_i64;
    (0..count)
        .map(|i| {
            let r = next();
            Bid {
                id: i as i64,
                price: (r % 10_000) as f64 / 100.0,
                qty: (r >> 16) as i32 % 10 + 1,
                item: format!("item-{}", (r >> 24) % 1000),
                supplier: format!("supplier-{}", (r >> 40) % 50),
                bidtime: start + i as i64 - ((r >> 48) % 200) as i64,
            }
        })
        .collect()
}

pub fn to_batch(bids: &[Bid]) -> RecordBatch {
    let columns: Vec<datafusion::arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(bids.iter().map(|b| b.id))),
        Arc::new(Float64Array::from_iter_values(bids.iter().map(|b| b.price))),
        Arc::new(Int32Array::from_iter_values(bids.iter().map(|b| b.qty))),
        Arc::new(StringArray::from_iter_values(
            bids.iter().map(|b| b.item.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            bids.iter().map(|b| b.supplier.as_str()),
        )),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            bids.iter().map(|b| b.bidtime),
        )),
    ];
    match RecordBatch::try_new(bid_schema(), columns) {
        Ok(batch) => batch,
        Err(error) => panic!("benchmark batch does not fit its schema: {error}"),
    }
}

pub fn to_csv(bids: &[Bid]) -> String {
    let mut text = String::from("id,price,qty,item,supplier,bidtime\n");
    for b in bids {
        text.push_str(&format!(
            "{},{},{},{},{},{}\n",
            b.id,
            b.price,
            b.qty,
            b.item,
            b.supplier,
            format_millis(b.bidtime)
        ));
    }
    text
}

pub fn to_json_lines(bids: &[Bid]) -> String {
    let mut text = String::new();
    for b in bids {
        text.push_str(&format!(
            "{{\"id\":{},\"price\":{},\"qty\":{},\"item\":\"{}\",\"supplier\":\"{}\",\"bidtime\":\"{}\"}}\n",
            b.id,
            b.price,
            b.qty,
            b.item,
            b.supplier,
            format_millis(b.bidtime)
        ));
    }
    text
}
