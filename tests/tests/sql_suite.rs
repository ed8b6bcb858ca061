//! Runs every streaming SQL test file under `tests/sql/`, one test per file.
//!
//! With `--complete` (`cargo test -p sluice-tests --test sql_suite -- --complete [FILTER]`)
//! each selected file is instead run in completion mode: its expected results are replaced by
//! the observed ones and the file written back if that changed it (see `sluice_tests`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, Trial};
use sluice_tests::{complete_test_file, run_test_file};

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
        let trials = paths.into_iter().map(run_trial).collect();
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
