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

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_benches::{count_argument, main_of};

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

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server on `dir`; gives it and how long it took to listen.
fn start(dir: &Path) -> Result<(Server, Duration), String> {
    let binary = std::env::var("SLUICE").unwrap_or_else(|_| "target/release/sluice".into());
    let started = Instant::now();
    let mut child = Command::new(&binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--checkpoint-interval",
            "1",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut stderr = BufReader::new(stderr);
    let address = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the server did not start".into());
        }
        if let Some(address) = line.trim().strip_prefix("sluice: listening on ") {
            break address.to_string();
        }
        eprint!("{line}");
    };
    let took = started.elapsed();
    std::thread::spawn(move || for _ in stderr.lines() {});
    Ok((Server { child, address }, took))
}

fn request(address: &str, line: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| e.to_string())?;
    if !reply.contains(r#""ok":true"#) {
        return Err(format!("{line} failed: {reply}"));
    }
    Ok(reply)
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
    let dir = std::env::temp_dir().join(format!("restart_bench_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (server, _) = start(&dir)?;
    request(&server.address, &format!(r#"{{"op":"sql","sql":"{DDL}"}}"#))?;
    request(
        &server.address,
        &format!(r#"{{"op":"register","name":"hourly","sql":"{QUERY}"}}"#),
    )?;
    let sample = publish_line(0, 1);
    let publishes = (mib << 20) / sample.len() as u64 + 1;
    let total = publishes * ROWS;
    let started = Instant::now();
    let stream = TcpStream::connect(&server.address).map_err(|e| e.to_string())?;
    let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let counting = std::thread::spawn(move || {
        let mut acknowledged = 0u64;
        for line in reader.lines().map_while(Result::ok) {
            if !line.contains(r#""ok":true"#) {
                return Err(line);
            }
            acknowledged += 1;
            if acknowledged == publishes {
                break;
            }
        }
        Ok(acknowledged)
    });
    let mut writer = std::io::BufWriter::new(stream);
    for publish in 0..publishes {
        writer
            .write_all(publish_line(publish * ROWS, total).as_bytes())
            .and_then(|()| writer.write_all(b"\n"))
            .map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())?;
    counting
        .join()
        .map_err(|_| "the reader failed".to_string())??;
    let published = started.elapsed();
    // The next checkpoint covers every publish.
    std::thread::sleep(Duration::from_secs(3));
    drop(server);
    let stream_bytes = directory_bytes(&dir.join("streams"));

    let (server, with_checkpoint) = start(&dir)?;
    drop(server);
    let moved: PathBuf = dir.join("checkpoints.away");
    std::fs::rename(dir.join("checkpoints"), &moved).map_err(|e| e.to_string())?;
    let (server, without_checkpoint) = start(&dir)?;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
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
