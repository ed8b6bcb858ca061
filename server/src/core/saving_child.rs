//! Saving a checkpoint's state in a child process, so that a checkpoint holds the core only
//! as long as `fork` takes rather than as long as saving gigabytes of state does.
//!
//! `fork` gives the child the parent's memory as it is at that instant, shared page by page
//! until either side writes to a page (copy on write): the child sees the queries' state as it
//! was between two publishes, frozen, while the parent feeds the next ones. The child runs
//! the save (which writes and syncs the checkpoint's temporary file), sends back through a
//! pipe each query's bytes or the error, and leaves with `_exit`, running no destructors and
//! flushing nothing of the parent's. The parent waits for it without the core's lock.
//!
//! What the child may touch: only what the forking thread held at the fork. The other
//! threads do not exist in the child, and a lock one of them held stays held there for ever,
//! so the save must take no lock but the ones the core's lock already guards (the queries'
//! state and alert sets), and must not touch the streams, the network or the async runtime.
//! Memory is allocated from the forking thread's own mimalloc heap; mimalloc's few global
//! locks (abandoned segments, its message buffer) are only tried, or taken by threads that
//! are exiting, but should the child nonetheless wait on one, the parent kills it past
//! [`DEADLINE`] and the checkpoint fails like one whose disk write failed (the next interval
//! tries again). The child asks to be killed when the thread that forked it ends, so a
//! server killed mid-checkpoint leaves no child holding its listening sockets or its data
//! directory's files.
//!
//! When there can be no child (`fork` fails for want of memory or processes), the core saves
//! the checkpoint in its own process, as `--checkpoint-in-process` does, and says so.
//!
//! Memory: pages the parent writes while the child runs are copied, so a checkpoint taken
//! while ingest rewrites every page of the state can need up to twice the state's memory.

use std::io::{PipeReader, Read, Write};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use sluice_engine::state::{StateReader, StateWriter};

use crate::ServeError;

/// How long a child may take to save a checkpoint before it is killed.
pub const DEADLINE: Duration = Duration::from_secs(600);

/// What a child saving a checkpoint gives back: each query's bytes of state.
pub type QueryBytes = Vec<(u64, usize)>;

/// A child process saving a checkpoint.
pub struct SavingChild {
    pid: Pid,
    report: PipeReader,
}

/// Runs `save` in a forked child and gives the child, to be waited for with
/// [`SavingChild::wait`]. In this process `save` is dropped without running.
pub fn fork_saving(
    save: impl FnOnce() -> Result<QueryBytes, ServeError>,
) -> Result<SavingChild, ServeError> {
    let (report, writer) = std::io::pipe()?;
    let parent = getpid();
    // SAFETY: the child runs only `save`, whose contract (module doc) is to take no lock
    // another thread may hold, and then `_exit`s without returning into the parent's code.
    match unsafe { fork() }.map_err(|e| child_error(format!("cannot fork: {e}")))? {
        ForkResult::Parent { child } => {
            drop(writer);
            Ok(SavingChild { pid: child, report })
        }
        ForkResult::Child => {
            drop(report);
            let code = run_child(parent, save, writer);
            // SAFETY: `_exit` ends the process at once; nothing of the parent's runs in it.
            unsafe { nix::libc::_exit(code) }
        }
    }
}

/// The child's work: the save, and its outcome written to `writer`; gives the exit code.
fn run_child(
    parent: Pid,
    save: impl FnOnce() -> Result<QueryBytes, ServeError>,
    mut writer: std::io::PipeWriter,
) -> i32 {
    // Killed with the thread that forked it; and if that thread already ended, stop here.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || getppid() != parent {
        return 3;
    }
    let mut report = StateWriter::new();
    match std::panic::catch_unwind(AssertUnwindSafe(save)) {
        Ok(Ok(sizes)) => {
            report.bool(true);
            report.usize(sizes.len());
            for (query, bytes) in sizes {
                report.u64(query);
                report.usize(bytes);
            }
        }
        Ok(Err(error)) => {
            report.bool(false);
            report.string(&error.to_string());
        }
        Err(_) => {
            report.bool(false);
            report.string("saving the state panicked");
        }
    }
    match writer.write_all(&report.into_bytes()) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}

impl SavingChild {
    /// Waits for the child (killing it past `deadline`) and gives what it saved.
    pub fn wait(self, deadline: Duration) -> Result<QueryBytes, ServeError> {
        let Self { pid, mut report } = self;
        let (sender, receiver) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let read = report.read_to_end(&mut bytes).map(|_| bytes);
            let _ = sender.send(read);
        });
        let read = match receiver.recv_timeout(deadline) {
            Ok(read) => Some(read),
            Err(_) => {
                // Its end of the pipe closes with it, which ends the read.
                let _ = kill(pid, Signal::SIGKILL);
                None
            }
        };
        let _ = reader.join();
        let status = waitpid(pid, None)
            .map_err(|e| child_error(format!("cannot wait for the saving process: {e}")))?;
        let Some(read) = read else {
            return Err(child_error(format!(
                "saving the state took longer than {deadline:?} and was stopped"
            )));
        };
        let bytes = read?;
        match status {
            WaitStatus::Exited(_, 0) => decode_report(&bytes),
            status => Err(child_error(format!(
                "the process saving the state ended abnormally: {status:?}"
            ))),
        }
    }
}

fn decode_report(bytes: &[u8]) -> Result<QueryBytes, ServeError> {
    let mut report = StateReader::new(bytes);
    if !report.bool()? {
        return Err(child_error(report.string()?));
    }
    let mut sizes = Vec::new();
    for _ in 0..report.usize()? {
        sizes.push((report.u64()?, report.usize()?));
    }
    Ok(sizes)
}

fn child_error(message: String) -> ServeError {
    ServeError::Checkpoint(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_reports_what_it_saved_and_writes_its_file() -> Result<(), ServeError> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("saved");
        let mut state = vec![1u64, 2, 3];
        let child = fork_saving(|| {
            state.push(4);
            std::fs::write(&file, format!("{state:?}"))?;
            Ok(vec![(7, state.len()), (9, 0)])
        })?;
        // The parent's copy is untouched by the child's save.
        state.push(5);
        assert_eq!(child.wait(DEADLINE)?, vec![(7, 4), (9, 0)]);
        assert_eq!(std::fs::read_to_string(&file)?, "[1, 2, 3, 4]");
        assert_eq!(state, vec![1, 2, 3, 5]);
        Ok(())
    }

    #[test]
    fn a_failed_save_gives_its_error() -> Result<(), ServeError> {
        let child = fork_saving(|| Err(ServeError::Request("no room".into())))?;
        let waited = child.wait(DEADLINE);
        assert!(
            matches!(&waited, Err(ServeError::Checkpoint(m)) if m == "no room"),
            "{waited:?}"
        );
        Ok(())
    }

    #[test]
    fn a_child_past_its_deadline_is_stopped() -> Result<(), ServeError> {
        let child = fork_saving(|| {
            std::thread::sleep(Duration::from_secs(30));
            Ok(Vec::new())
        })?;
        let started = std::time::Instant::now();
        let waited = child.wait(Duration::from_millis(200));
        let expected = "saving the state took longer than 200ms and was stopped";
        assert!(
            matches!(&waited, Err(ServeError::Checkpoint(m)) if m == expected),
            "{waited:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        Ok(())
    }
}
