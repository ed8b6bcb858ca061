//! The engine the shell starts in its own process: `sluice serve` on a loopback port only
//! this process knows the token for.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use sluice_log::LogConfig;

use super::error::ShellError;
use sluice_server::{Durability, ServeConfig, serve};

pub struct Embedded {
    pub address: String,
    pub token: String,
    /// A throwaway data directory, deleted when the shell ends.
    scratch: Option<PathBuf>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Deletes the throwaway directories of shells that ended without deleting theirs (killed,
/// or stopped by Ctrl-C in the demo).
fn forget_abandoned_scratch() {
    // Whether a process is alive is read from /proc.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("sluice-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts the engine with its data in `dir` (a fresh temporary directory when `None`).
pub fn start(dir: Option<PathBuf>) -> Result<Embedded, ShellError> {
    let secret = || RandomState::new().build_hasher().finish();
    let token = format!("{:016x}{:016x}", secret(), secret());
    let scratch = match dir {
        Some(_) => None,
        None => {
            forget_abandoned_scratch();
            let name = format!("sluice-{}-{:x}", std::process::id(), secret());
            Some(std::env::temp_dir().join(name))
        }
    };
    // Kept data is checkpointed, so that the next start need not replay all of it.
    let checkpoint_interval = dir.is_some().then(|| Duration::from_secs(10));
    let data_dir = dir.or_else(|| scratch.clone()).unwrap_or_default();
    let config = ServeConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir,
        token: Some(token.clone()),
        max_line_bytes: 64 << 20,
        max_connections: 64,
        durability: Durability::EveryBatch,
        log: LogConfig::default(),
        tls: None,
        checkpoint_interval,
        checkpoint_in_child: true,
        // Ctrl-C belongs to the shell.
        stop_on_signal: false,
    };
    let (ready, listening) = mpsc::channel();
    let failed = ready.clone();
    std::thread::spawn(move || {
        let told = ready.clone();
        if let Err(error) = serve(config, move |address| {
            let _ = told.send(Ok(address));
        }) {
            let _ = failed.send(Err(error.to_string()));
        }
    });
    match listening.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(address)) => Ok(Embedded {
            address: address.to_string(),
            token,
            scratch,
        }),
        Ok(Err(error)) => Err(ShellError::Usage(format!(
            "the engine did not start: {error}"
        ))),
        Err(_) => Err(ShellError::Usage("the engine did not start in time".into())),
    }
}
