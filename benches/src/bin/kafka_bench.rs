//! `sluice run` from a Kafka topic to a Kafka topic: the bids of [`sluice_benches::bids`] as
//! JSON records, through a filter and projection or a tumbling-window count, written back as
//! JSON records.
//!
//! `cargo run --release -p sluice-benches --bin kafka_bench -- HOST:PORT filter|tumble [EVENTS]`
//!
//! Needs a Kafka-protocol broker at HOST:PORT (the Kafka tests install noida-db under
//! `target/kafka-broker`; see docs/benchmarks.md). The bids are written to a new topic of
//! four partitions first (not timed); then the run reads them to the end, computes and writes
//! its results, and waits for the broker's acknowledgements. Prints events per second of the
//! run's CPU time (user and system of this process, the Kafka client's threads included;
//! the broker is another process) and wall time.

use std::fs;
use std::time::Instant;

use sluice_benches::{
    FILTER_PROJECT, bids, count_argument, cpu_seconds, main_of, process_memory_kib,
};
use sluice_engine::time::format_millis;
use sluice_kafka::writer::{OutRecord, TopicWriter, create_topic};
use sluice_repl::run::{RunArgs, run as run_script};

const PARTITIONS: i32 = 4;

fn main() -> std::process::ExitCode {
    main_of("kafka_bench", bench)
}

fn bench() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let servers = args
        .next()
        .ok_or("usage: kafka_bench HOST:PORT filter|tumble [EVENTS]")?;
    let mode = args.next();
    let events = count_argument(args.next(), 1_000_000)?;
    let query = match mode.as_deref() {
        Some("filter") => format!("INSERT INTO out {FILTER_PROJECT}"),
        Some("tumble") => "INSERT INTO out SELECT item, COUNT(*) AS bids, window_start \
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(bidtime), INTERVAL '10' SECOND)) \
             GROUP BY item, window_start, window_end"
            .to_string(),
        _ => return Err("usage: kafka_bench HOST:PORT filter|tumble [EVENTS]".into()),
    };
    let out_columns = match mode.as_deref() {
        Some("filter") => "id BIGINT, item STRING, notional DOUBLE, bidtime TIMESTAMP(3)",
        _ => "item STRING, bids BIGINT, window_start TIMESTAMP(3)",
    };
    let tag = std::process::id();
    let (input, output) = (format!("bench-in-{tag}"), format!("bench-out-{tag}"));
    create_topic(&servers, &input, PARTITIONS).map_err(|e| e.to_string())?;
    create_topic(&servers, &output, PARTITIONS).map_err(|e| e.to_string())?;

    let writer = TopicWriter::open(&servers, &[]).map_err(|e| e.to_string())?;
    let chunk = 100_000;
    let mut written = 0u64;
    while written < events {
        let count = chunk.min(events - written) as usize;
        for (index, bid) in bids(count, 7 + written).into_iter().enumerate() {
            let value = format!(
                "{{\"id\":{},\"price\":{},\"qty\":{},\"item\":\"{}\",\"supplier\":\"{}\",\"bidtime\":\"{}\"}}",
                written as i64 + bid.id,
                bid.price,
                bid.qty,
                bid.item,
                bid.supplier,
                format_millis(bid.bidtime + written as i64)
            );
            let record = OutRecord {
                partition: Some(((written as usize + index) % PARTITIONS as usize) as i32),
                key: None,
                value: Some(value.as_bytes()),
                timestamp: Some(bid.bidtime + written as i64),
                headers: &[],
            };
            writer.send(&input, record).map_err(|e| e.to_string())?;
        }
        written += count as u64;
    }
    writer.flush().map_err(|e| e.to_string())?;
    drop(writer);

    let scratch = std::env::temp_dir().join(format!("sluice-kafka-bench-{tag}"));
    fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let script = scratch.join("bench.sql");
    let table = |name: &str, columns: &str, topic: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} ({columns}) WITH ('connector' = 'kafka', 'topic' = '{topic}', \
             'properties.bootstrap.servers' = '{servers}', 'format' = 'json'{extra});\n"
        )
    };
    let bid_columns = "id BIGINT, price DOUBLE, qty INT, item STRING, supplier STRING, \
         bidtime TIMESTAMP(3), WATERMARK FOR bidtime AS bidtime - INTERVAL '5' SECOND";
    let text = table(
        "bid",
        bid_columns,
        &input,
        ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'",
    ) + &table("out", out_columns, &output, "")
        + &query
        + ";\n";
    fs::write(&script, text).map_err(|e| e.to_string())?;
    let args = RunArgs {
        script,
        inputs: Vec::new(),
        output: Some(scratch.join("out")),
        format: None,
        strict: false,
        checkpoint_dir: None,
        stop_after_rows: None,
    };
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let outcome = run_script(&args, &mut std::io::stderr()).map_err(|e| e.to_string());
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    let _ = fs::remove_dir_all(&scratch);
    let summary = outcome?;
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
