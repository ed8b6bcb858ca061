//! `sluice serve` over loopback: publish throughput, and latency from publish to pushed
//! result.
//!
//! ```text
//! serve_bench ingest CONNECTIONS EVENTS BATCH batch|interval   # events/s and MB/s
//! serve_bench latency RATE SECONDS [ALERTS]                    # p50/p99 publish -> result
//! ```
//!
//! Starts `target/release/sluice serve` (or `$SLUICE`) on a fresh data directory. Ingest
//! pre-builds every request, then each connection pipelines its publishes while a reader
//! counts the replies; the time is from the first send to the last acknowledgement. Latency
//! publishes every millisecond RATE/1000 events carrying their send time, through a
//! registered filter query, and measures when each result row arrives on a subscription.
//! With ALERTS, another connection registers that many alerts on the stream after the
//! first second, in requests of 5 000, while the events go on: how long publishes wait
//! while alerts are registered.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sluice_benches::{count_argument, main_of};
use sluice_server::protocol::{
    Publish, Pushed, Register, ReplyLine, Request, RequestLine, Sql, Start, Subscribe,
};

const DDL: &str = "CREATE TABLE ticks (symbol STRING, price BIGINT, sent BIGINT, \
    ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
    WITH ('partitions' = '4', 'key' = 'symbol')";

struct Server {
    child: Child,
    address: String,
    _dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn start(fsync: &str) -> Result<Server, String> {
    let binary = std::env::var("SLUICE").unwrap_or_else(|_| "target/release/sluice".into());
    let dir = std::env::temp_dir().join(format!("serve_bench_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(&binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--fsync",
            fsync,
            "--data-dir",
        ])
        .arg(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut stderr = BufReader::new(stderr);
    let mut line = String::new();
    stderr.read_line(&mut line).map_err(|e| e.to_string())?;
    let address = line
        .trim()
        .strip_prefix("sluice: listening on ")
        .ok_or(format!("the server did not start: {line}"))?
        .to_string();
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            eprintln!("{l}");
        }
    });
    Ok(Server {
        child,
        address,
        _dir: dir,
    })
}

fn connect(address: &str) -> Result<(TcpStream, BufReader<TcpStream>), String> {
    let stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    Ok((stream, reader))
}

/// One request's line, newline included.
fn request_line(request: impl Into<Request>) -> Result<String, String> {
    let line = RequestLine {
        id: None,
        request: request.into(),
    };
    serde_json::to_string(&line)
        .map(|line| line + "\n")
        .map_err(|e| e.to_string())
}

/// Sends one request on a connection of its own and waits for its reply.
fn request(address: &str, request: impl Into<Request>) -> Result<ReplyLine, String> {
    let (mut writer, mut reader) = connect(address)?;
    let line = request_line(request)?;
    writer
        .write_all(line.as_bytes())
        .map_err(|e| e.to_string())?;
    answer(&mut reader).map_err(|error| format!("{} failed: {error}", line.trim_end()))
}

/// Reads the next reply, an error if it is not `ok`.
fn answer(reader: &mut BufReader<TcpStream>) -> Result<ReplyLine, String> {
    let mut reply = String::new();
    reader.read_line(&mut reply).map_err(|e| e.to_string())?;
    let reply: ReplyLine = serde_json::from_str(&reply).map_err(|e| e.to_string())?;
    match (&reply.error, reply.ok) {
        (None, true) => Ok(reply),
        (error, _) => Err(error.clone().unwrap_or_else(|| "not ok".into())),
    }
}

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn event(n: u64, sent: i64) -> Value {
    json!({"symbol": format!("S{}", n % 1000), "price": (n % 997) as i64 + 1, "sent": sent,
           "ts": format!("2024-01-01 10:{:02}:{:02}.{:03}", (n / 60_000) % 60,
                         (n / 1000) % 60, n % 1000)})
}

fn ingest() -> Result<(), String> {
    let mut args = std::env::args().skip(2);
    let connections = count_argument(args.next(), 1)? as usize;
    let events = count_argument(args.next(), 1_000_000)?;
    let batch = count_argument(args.next(), 1_000)?;
    let fsync = args.next().unwrap_or_else(|| "batch".into());
    let server = start(&fsync)?;
    request(&server.address, Sql { sql: DDL.into() })?;
    // Every request, built before the clock starts.
    let per_connection = events / connections as u64;
    let mut plans = Vec::new();
    let mut bytes = 0usize;
    for c in 0..connections as u64 {
        let mut lines = Vec::new();
        let mut n = c * per_connection;
        while n < (c + 1) * per_connection {
            let count = batch.min((c + 1) * per_connection - n);
            let events: Vec<Value> = (n..n + count).map(|i| event(i, 0)).collect();
            let line = request_line(Publish::events("ticks", events))?;
            bytes += line.len();
            lines.push(line);
            n += count;
        }
        plans.push(lines);
    }
    let started = Instant::now();
    let mut threads = Vec::new();
    for lines in plans {
        let (mut writer, mut reader) = connect(&server.address)?;
        let expected = lines.len();
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let sender = std::thread::spawn(move || {
                for line in lines {
                    if writer.write_all(line.as_bytes()).is_err() {
                        return;
                    }
                }
            });
            let mut reply = String::new();
            for _ in 0..expected {
                reply.clear();
                reader.read_line(&mut reply).map_err(|e| e.to_string())?;
                if !reply.contains(r#""ok":true"#) {
                    return Err(format!("a publish failed: {reply}"));
                }
            }
            sender.join().map_err(|_| "the sender failed".to_string())
        }));
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| "a connection failed".to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let sent = per_connection * connections as u64;
    println!("connections: {connections}, batch: {batch}, fsync: {fsync}");
    println!("events: {sent}, request bytes: {bytes}");
    println!("seconds: {seconds:.2}");
    println!("events/s: {:.0}", sent as f64 / seconds);
    println!("MB/s: {:.1}", bytes as f64 / seconds / 1e6);
    Ok(())
}

fn latency() -> Result<(), String> {
    let mut args = std::env::args().skip(2);
    let rate = count_argument(args.next(), 10_000)?;
    let seconds = count_argument(args.next(), 10)?;
    let server = start("batch")?;
    request(&server.address, Sql { sql: DDL.into() })?;
    request(
        &server.address,
        Register {
            name: "priced".into(),
            sql: "SELECT symbol, price, sent FROM ticks WHERE price > 0".into(),
        },
    )?;
    let (mut subscriber, mut pushed) = connect(&server.address)?;
    let subscribe = Subscribe {
        query: Some("priced".into()),
        from: Some(Start::Latest),
        ..Subscribe::default()
    };
    subscriber
        .write_all(request_line(subscribe)?.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    pushed.read_line(&mut line).map_err(|e| e.to_string())?;
    let expected = rate * seconds;
    let receiver = std::thread::spawn(move || -> Result<Vec<i64>, String> {
        let mut latencies = Vec::with_capacity(expected as usize);
        let mut line = String::new();
        while (latencies.len() as u64) < expected {
            line.clear();
            if pushed.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the subscription ended".into());
            }
            let pushed: Pushed = serde_json::from_str(&line).map_err(|e| e.to_string())?;
            if let Pushed::Row { row, .. } = pushed
                && let Some(sent) = row.get("sent").and_then(Value::as_i64)
            {
                latencies.push(micros_now() - sent);
            }
        }
        Ok(latencies)
    });
    let (mut producer, mut acks) = connect(&server.address)?;
    // Publishes are answered in order: the n-th acknowledgement is the n-th publish's.
    let (send_times, sent_at) = std::sync::mpsc::channel::<i64>();
    let acknowledged = std::thread::spawn(move || {
        let mut waits = Vec::new();
        let mut line = String::new();
        while acks.read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
            match sent_at.recv() {
                Ok(sent) => waits.push((sent, micros_now() - sent)),
                Err(_) => break,
            }
        }
        waits
    });
    let alerts = count_argument(args.next(), 0)?;
    let registering = (alerts > 0).then(|| {
        let address = server.address.clone();
        std::thread::spawn(move || register_alerts(&address, alerts))
    });
    let per_tick = (rate / 1000).max(1);
    let started = Instant::now();
    let mut n = 0u64;
    for tick in 0..seconds * 1000 {
        let due = started + Duration::from_millis(tick);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = micros_now();
        let events: Vec<Value> = (n..n + per_tick).map(|i| event(i, now)).collect();
        n += per_tick;
        let line = request_line(Publish::events("ticks", events))?;
        producer
            .write_all(line.as_bytes())
            .map_err(|e| e.to_string())?;
        let _ = send_times.send(now);
    }
    drop(send_times);
    let mut while_registering = None;
    if let Some(registering) = registering {
        let (from, to) = registering
            .join()
            .map_err(|_| "the registering client failed".to_string())??;
        let took = (to - from) as f64 / 1e6;
        println!("registered {alerts} alerts meanwhile, in {took:.2} s");
        while_registering = Some(from..=to);
    }
    let mut latencies = receiver
        .join()
        .map_err(|_| "the receiver failed".to_string())??;
    // The first second warms up.
    let warm = (rate as usize).min(latencies.len() / 2);
    let mut measured = latencies.split_off(warm);
    if measured.is_empty() {
        return Err("no result rows were measured".into());
    }
    println!(
        "rate: {rate} events/s for {seconds} s, {} rows measured",
        measured.len()
    );
    println!("publish to result pushed: {}", percentiles(&mut measured));
    let _ = producer.shutdown(std::net::Shutdown::Write);
    let mut waits = acknowledged
        .join()
        .map_err(|_| "the acknowledgement reader failed".to_string())?;
    let warm = waits.len().min(1000);
    let waits = waits.split_off(warm);
    let mut all: Vec<i64> = waits.iter().map(|&(_, wait)| wait).collect();
    if !all.is_empty() {
        println!("publish to acknowledgement: {}", percentiles(&mut all));
    }
    if let Some(window) = while_registering {
        let mut during: Vec<i64> = waits
            .iter()
            .filter(|(sent, _)| window.contains(sent))
            .map(|&(_, wait)| wait)
            .collect();
        if !during.is_empty() {
            println!(
                "  of it, publishes sent while registering: {}",
                percentiles(&mut during)
            );
        }
    }
    Ok(())
}

/// Alerts per registration request.
const ALERTS_PER_REQUEST: u64 = 5_000;

/// Registers `alerts` alerts on `ticks` at `address`, a second from now, in requests of
/// [`ALERTS_PER_REQUEST`]; gives when it started and ended (µs since the epoch).
fn register_alerts(address: &str, alerts: u64) -> Result<(i64, i64), String> {
    std::thread::sleep(Duration::from_secs(1));
    let (mut writer, mut reader) = connect(address)?;
    let started = micros_now();
    for first in (0..alerts).step_by(ALERTS_PER_REQUEST as usize) {
        let sql: String = (first..alerts.min(first + ALERTS_PER_REQUEST))
            .map(|n| {
                let low = n * 7 % 900;
                format!(
                    "CREATE ALERT a{n} ON ticks WHERE symbol = 'S{}' AND price BETWEEN {low} AND {};",
                    n % 1000,
                    low + 50
                )
            })
            .collect();
        writer
            .write_all(request_line(Sql { sql })?.as_bytes())
            .map_err(|e| e.to_string())?;
        answer(&mut reader).map_err(|error| format!("registering alerts failed: {error}"))?;
    }
    Ok((started, micros_now()))
}

/// p50, p99 and the maximum of `micros`, in milliseconds.
fn percentiles(micros: &mut [i64]) -> String {
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50: {:.2} ms, p99: {:.2} ms, max: {:.2} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn main() -> std::process::ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("latency") => main_of("serve_bench", latency),
        _ => main_of("serve_bench", ingest),
    }
}
