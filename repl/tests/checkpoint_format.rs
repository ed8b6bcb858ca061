//! A checkpoint written in each earlier format (`tests/fixtures/checkpoint-format-N`,
//! committed) is restored by this sluice, and the run it stopped goes on to write exactly
//! what an uninterrupted run writes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `sluice run` on the script of `fixture` from the repository's root, as the fixture
/// was written.
fn run(fixture: &str, extra: &[&str]) -> Output {
    let script = format!("{fixture}/script.sql");
    let mut args = vec![
        "run",
        &script,
        "--input",
        "cardholders=queries/demo/cardholders.csv",
        "--input",
        "transactions=queries/demo/transactions.csv",
        "--input",
        "listings=queries/demo/listings.csv",
    ];
    args.extend(extra);
    match Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(repository())
        .args(&args)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot start sluice: {error}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    let entries =
        fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()));
    for entry in entries.filter_map(Result::ok) {
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target)
            .unwrap_or_else(|e| panic!("cannot copy to {}: {e}", target.display()));
    }
}

fn contents(directory: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, fs::read_to_string(e.path()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn a_format_1_checkpoint_restores_and_the_run_goes_on_exactly() {
    restores_and_goes_on_exactly("repl/tests/fixtures/checkpoint-format-1");
}

#[test]
fn a_format_2_checkpoint_restores_and_the_run_goes_on_exactly() {
    restores_and_goes_on_exactly("repl/tests/fixtures/checkpoint-format-2");
}

fn restores_and_goes_on_exactly(fixture_path: &str) {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let fixture = repository().join(fixture_path);
    let output = work.path().join("out");
    let checkpoint = work.path().join("cp");
    copy_dir(&fixture.join("out"), &output);
    copy_dir(&fixture.join("cp"), &checkpoint);
    let (output_arg, checkpoint_arg) = (
        output.display().to_string(),
        checkpoint.display().to_string(),
    );
    let resumed = run(
        fixture_path,
        &["--output", &output_arg, "--checkpoint-dir", &checkpoint_arg],
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(!stderr.contains("stopped after"), "{stderr}");

    let whole = work.path().join("whole");
    let whole_arg = whole.display().to_string();
    let uninterrupted = run(fixture_path, &["--output", &whole_arg]);
    assert!(
        uninterrupted.status.success(),
        "{}",
        String::from_utf8_lossy(&uninterrupted.stderr)
    );
    assert_eq!(contents(&output), contents(&whole));
}
