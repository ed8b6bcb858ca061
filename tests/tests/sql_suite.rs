//! Runs every streaming SQL test file under `tests/sql/`, one test per file, and again as
//! `restart/FILE`: checkpointed and restored into a fresh script at random cuts (a block, or
//! a row of an input block), `SLUICE_RESTART_SEEDS` of them per file (default 8), each
//! expectation holding across the restart.
//!
//! With `--complete` (`cargo test -p sluice-tests --test sql_suite -- --complete [FILTER]`)
//! each selected file is instead run in completion mode: its expected results are replaced by
//! the observed ones and the file written back if that changed it (see `sluice_tests`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};
use sluice_tests::{Cut, complete_test_file, run_test_file, run_test_file_with_restart};

/// The flag that selects completion mode; taken out before libtest-mimic reads the arguments.
const COMPLETE_FLAG: &str = "--complete";

fn main() {
    let (complete, arguments): (Vec<OsString>, Vec<OsString>) =
        std::env::args_os().partition(|argument| argument == COMPLETE_FLAG);
    let arguments = Arguments::from_iter(arguments);
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut paths: Vec<_> = std::fs::read_dir(&directory)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "slt"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    if paths.is_empty() {
        let missing = format!("no .slt files in {}", directory.display());
        let trial = Trial::test("sql_suite_files_present", move || {
            Err(Failed::from(missing))
        });
        libtest_mimic::run(&arguments, vec![trial]).exit();
    }
    if complete.is_empty() {
        let seeds = std::env::var("SLUICE_RESTART_SEEDS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(8);
        let mut trials: Vec<Trial> = paths.iter().cloned().map(run_trial).collect();
        trials.extend(paths.into_iter().map(|path| restart_trial(path, seeds)));
        libtest_mimic::run(&arguments, trials).exit();
    }
    let rewritten = Arc::new(Mutex::new(Vec::new()));
    let trials = paths
        .into_iter()
        .map(|path| completion_trial(path, Arc::clone(&rewritten)))
        .collect();
    let conclusion = libtest_mimic::run(&arguments, trials);
    if let Ok(mut rewritten) = rewritten.lock() {
        rewritten.sort();
        for path in rewritten.iter() {
            println!("rewrote {}", path.display());
        }
    }
    conclusion.exit();
}

fn test_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs the file at `path`, failing on the first expectation that does not hold.
fn run_trial(path: PathBuf) -> Trial {
    Trial::test(test_name(&path), move || {
        let text = std::fs::read_to_string(&path).map_err(|e| Failed::from(e.to_string()))?;
        run_test_file(&text)
            .map(|_| ())
            .map_err(|failure| Failed::from(format!("{}:{failure}", path.display())))
    })
}

/// Runs the file at `path` once per seed, each time restarting from a checkpoint at a cut
/// the seed chooses.
fn restart_trial(path: PathBuf, seeds: u64) -> Trial {
    Trial::test(format!("restart/{}", test_name(&path)), move || {
        let text = std::fs::read_to_string(&path).map_err(|e| Failed::from(e.to_string()))?;
        let salt = test_name(&path).bytes().fold(0u64, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(byte.into())
        });
        for seed in 0..seeds {
            let cut = Cut::random(&text, salt.wrapping_add(seed));
            run_test_file_with_restart(&text, cut).map_err(|failure| {
                Failed::from(format!(
                    "{}:{failure}\n(restarted before row {} of block {})",
                    path.display(),
                    cut.row,
                    cut.block
                ))
            })?;
        }
        Ok(())
    })
}

/// Completes the file at `path`, writing it back (and noting it in `rewritten`) if that
/// changed it.
fn completion_trial(path: PathBuf, rewritten: Arc<Mutex<Vec<PathBuf>>>) -> Trial {
    Trial::test(test_name(&path), move || {
        let text = std::fs::read_to_string(&path).map_err(|e| Failed::from(e.to_string()))?;
        let completed = complete_test_file(&text)
            .map_err(|failure| Failed::from(format!("{}:{failure}", path.display())))?;
        if completed == text {
            return Ok(());
        }
        std::fs::write(&path, completed).map_err(|e| Failed::from(e.to_string()))?;
        if let Ok(mut rewritten) = rewritten.lock() {
            rewritten.push(path);
        }
        Ok(())
    })
}
