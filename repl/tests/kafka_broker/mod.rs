//! A Kafka-protocol broker for tests: noida-db 0.2.3 from PyPI (pinned by hash), installed
//! under `target/kafka-broker` on first use, started on a free port of 127.0.0.1 in its own
//! data directory, and stopped by its process id when dropped.
//!
//! noida-db honours transactions for `read_committed` readers and fences zombie producers;
//! its cooperative rebalancing never completes and it does not abort transactions on
//! `transaction.timeout.ms` (tests that need either say so). Apache Kafka itself cannot be
//! installed from the registries this project builds from.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PACKAGE: &str = "noida-db==0.2.3";
const PACKAGE_HASH: &str =
    "sha256:40a2fb15567e3d344e7483df62bb439e7d64ac6fb232f4f223554aed58204f82";

pub struct Broker {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Broker {
    /// Installs (once) and starts a broker; the error says why one cannot run here.
    pub fn start() -> Result<Broker, String> {
        let binary = install()?;
        let data = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let port = free_port()?;
        let child = Command::new(&binary)
            .args([
                "start",
                "--only",
                "kafka",
                "--host",
                "127.0.0.1",
                "--kafka-port",
            ])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let broker = Broker {
            child,
            port,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the broker did not listen on port {port} within 10 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // By its own process id: SIGKILL, then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker's binary, installed with pip into `target/kafka-broker` if not there yet.
fn install() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kafka-broker");
    let binary = root.join("noida_db/noida-db");
    if binary.is_file() {
        return Ok(binary);
    }
    let requirements = root.with_extension("requirements.txt");
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    std::fs::write(&requirements, format!("{PACKAGE} --hash={PACKAGE_HASH}\n"))
        .map_err(|e| format!("cannot write {}: {e}", requirements.display()))?;
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--require-hashes",
        ])
        .arg("--target")
        .arg(&root)
        .arg("-r")
        .arg(&requirements)
        .output()
        .map_err(|e| format!("cannot run python3 -m pip to install {PACKAGE}: {e}"))?;
    if !output.status.success() || !binary.is_file() {
        return Err(format!(
            "installing {PACKAGE} with pip failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(binary)
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free local port: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("no free local port: {e}"))
}
