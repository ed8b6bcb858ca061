//! What the server's end-to-end tests share: the real `sluice serve` binary started on a
//! data directory, and a client speaking the line protocol over a socket.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub struct Server {
    child: Child,
    pub address: String,
    /// What the server wrote to stderr before it listened.
    pub said: String,
    /// What it wrote since.
    said_since: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sluice serve: {e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
        let mut stderr = BufReader::new(stderr);
        // Lines before the address say what the start left out.
        let mut said = String::new();
        let address = loop {
            let mut line = String::new();
            match stderr.read_line(&mut line) {
                Ok(read) if read > 0 => {}
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("sluice serve did not start: {said}");
                }
            }
            if let Some(address) = line.trim().strip_prefix("sluice: listening on ") {
                break address.to_string();
            }
            said.push_str(&line);
        };
        // Keep draining stderr so the server never blocks on it.
        let said_since = Arc::new(Mutex::new(String::new()));
        let kept = Arc::clone(&said_since);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Ok(mut kept) = kept.lock() {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
        });
        Server {
            address,
            child,
            said,
            said_since,
        }
    }

    /// What the server wrote to stderr since it listened.
    pub fn said_since_start(&self) -> String {
        self.said_since
            .lock()
            .map(|said| said.clone())
            .unwrap_or_default()
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.address)
    }

    /// Ends the server as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the server to stop (SIGTERM) and waits up to `patience` for it to exit; gives
    /// its exit code (`None` when it did not exit in time or was ended by a signal).
    pub fn terminate(mut self, patience: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "cannot send SIGTERM to {pid}"
        );
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    writer: TcpStream,
    pub reader: BufReader<TcpStream>,
    pub pushed: VecDeque<Value>,
    next_id: u64,
}

impl Client {
    pub fn connect(address: &str) -> Client {
        let stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("cannot connect: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap_or_else(|e| panic!("{e}"));
        let reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}")));
        Client {
            writer: stream,
            reader,
            pushed: VecDeque::new(),
            next_id: 1,
        }
    }

    pub fn send_line(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("cannot send: {e}"));
    }

    pub fn read_value(&mut self) -> Value {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the server closed the connection"),
            Ok(_) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")),
            Err(error) => panic!("no line from the server: {error}"),
        }
    }

    /// The reply to the next line that has no id.
    pub fn raw(&mut self, line: &str) -> Value {
        self.send_line(line);
        loop {
            let value = self.read_value();
            if value.get("subscription").is_some() && value.get("ok").is_none() {
                self.pushed.push_back(value);
            } else {
                return value;
            }
        }
    }

    /// Sends `request` with a fresh id and gives its reply (rows pushed meanwhile are kept).
    pub fn request(&mut self, mut request: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.send_line(&request.to_string());
        loop {
            let value = self.read_value();
            if value.get("id") == Some(&json!(id)) {
                return value;
            }
            assert!(
                value.get("ok").is_none(),
                "a reply to another request: {value}"
            );
            self.pushed.push_back(value);
        }
    }

    pub fn ok(&mut self, request: Value) -> Value {
        let reply = self.request(request.clone());
        assert_eq!(reply["ok"], json!(true), "{request} was answered {reply}");
        reply
    }

    /// The `row` of each of the next `count` pushed lines.
    pub fn pushed_rows(&mut self, count: usize) -> Vec<Value> {
        self.pushed(count)
            .into_iter()
            .map(|line| line["row"].clone())
            .collect()
    }

    /// The next `count` pushed rows.
    pub fn pushed(&mut self, count: usize) -> Vec<Value> {
        while self.pushed.len() < count {
            let value = self.read_value();
            self.pushed.push_back(value);
        }
        self.pushed.drain(..count).collect()
    }
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
}

/// A self-signed certificate for 127.0.0.1 and its private key, written as PEM files
/// `cert.pem` and `key.pem` in `dir`; their paths.
pub fn self_signed_certificate(dir: &Path) -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .unwrap_or_else(|e| panic!("cannot make a certificate: {e}"));
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap_or_else(|e| panic!("{e}"));
    (cert.display().to_string(), key.display().to_string())
}
