//! A `sluice serve` process for the benchmarks that measure the server from outside: started
//! on a data directory, spoken to over its line protocol, killed (SIGKILL) when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A data directory under the system's temporary directory, deleted when dropped (also
/// when a benchmark fails half way).
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// `NAME_PID` under the temporary directory, emptied first.
    pub fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `sluice serve`.
pub struct Server {
    child: Child,
    pub address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `target/release/sluice serve` (or `$SLUICE`) on `dir` with options `extra`;
    /// gives it and how long it took to listen.
    pub fn start(dir: &Path, extra: &[&str]) -> Result<(Server, Duration), String> {
        let binary = std::env::var("SLUICE").unwrap_or_else(|_| "target/release/sluice".into());
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
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

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one request on a connection of its own; gives the answer, which must be ok.
    pub fn request(&self, line: &str) -> Result<String, String> {
        let mut stream = TcpStream::connect(&self.address).map_err(|e| e.to_string())?;
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

    /// Runs SQL statements `sql`, then registers each `(name, query)` of `queries`.
    pub fn set_up(&self, sql: &str, queries: &[(&str, &str)]) -> Result<(), String> {
        self.request(&serde_json::json!({"op": "sql", "sql": sql}).to_string())?;
        for (name, query) in queries {
            let register = serde_json::json!({"op": "register", "name": name, "sql": query});
            self.request(&register.to_string())?;
        }
        Ok(())
    }

    /// Sends `count` requests made by `line` (given each one's number) on one pipelined
    /// connection, and waits until every one was answered ok.
    pub fn pipeline(&self, count: u64, line: impl Fn(u64) -> String) -> Result<(), String> {
        let stream = TcpStream::connect(&self.address).map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let counting = std::thread::spawn(move || {
            let mut answered = 0u64;
            for reply in reader.lines().map_while(Result::ok) {
                if !reply.contains(r#""ok":true"#) {
                    return Err(reply);
                }
                answered += 1;
                if answered == count {
                    break;
                }
            }
            Ok(answered)
        });
        let mut writer = std::io::BufWriter::new(stream);
        for n in 0..count {
            writer
                .write_all(line(n).as_bytes())
                .and_then(|()| writer.write_all(b"\n"))
                .map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| e.to_string())?;
        counting
            .join()
            .map_err(|_| "the reader failed".to_string())??;
        Ok(())
    }
}
