//! `sluice run --checkpoint-dir DIR --stop-after-rows N`: a run stopped every N input rows and
//! started again until its input is done writes exactly the files an uninterrupted run
//! writes, byte for byte, also when a stopped run left output behind its checkpoint.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sluice(args: &[String]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot start sluice: {error}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
}

fn queries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries")
}

/// `sluice run` arguments for `script` over `inputs` (paths under `queries/`).
fn run_args(script: &str, inputs: &[(&str, &str)], output: &Path) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        queries().join(script).display().to_string(),
    ];
    for (stream, file) in inputs {
        args.push("--input".into());
        args.push(format!("{stream}={}", queries().join(file).display()));
    }
    args.push("--output".into());
    args.push(output.display().to_string());
    args
}

/// Every file of `directory` and its contents.
fn files(directory: &Path) -> BTreeMap<String, String> {
    let entries = fs::read_dir(directory)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", directory.display()));
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let contents = fs::read_to_string(entry.path()).unwrap_or_default();
            (name, contents)
        })
        .collect()
}

/// Runs `script` uninterrupted, then in steps of `step` input rows with a checkpoint between
/// them (`damage` runs after each stop, on the output directory); the two outputs must be
/// equal. Returns how many runs the stepped version took.
fn stepped_equals_uninterrupted(
    script: &str,
    inputs: &[(&str, &str)],
    step: u64,
    damage: impl Fn(&Path),
) -> usize {
    let whole = temp_dir();
    let output = sluice(&run_args(script, inputs, whole.path()));
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));

    let stepped = temp_dir();
    let checkpoint = temp_dir();
    let mut args = run_args(script, inputs, stepped.path());
    args.extend([
        "--checkpoint-dir".to_string(),
        checkpoint.path().display().to_string(),
        "--stop-after-rows".to_string(),
        step.to_string(),
    ]);
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 10_000, "the stepped run does not end");
        let output = sluice(&args);
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "run {runs}: {stderr}");
        if !stderr.contains("stopped after") {
            break;
        }
        damage(stepped.path());
    }
    let expected = files(whole.path());
    let actual = files(stepped.path());
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (name, contents) in &expected {
        assert_eq!(&actual[name], contents, "{name} differs after {runs} runs");
    }
    runs
}

const DEMO: &[(&str, &str)] = &[
    ("cardholders", "demo/cardholders.csv"),
    ("transactions", "demo/transactions.csv"),
    ("listings", "demo/listings.csv"),
];

const FLIGHTS: &[(&str, &str)] = &[("flights", "flights/flights-2013-01-01.csv")];

#[test]
fn the_demo_stopped_every_700_rows_writes_what_one_run_writes() {
    let runs = stepped_equals_uninterrupted("demo/demo.sql", DEMO, 700, |_| {});
    // 5 179 input rows, each run stopping at the end of the batch its 700th row is in (the
    // 2 000 cardholders come first, in one batch): 6 runs, the last one ending the input.
    assert_eq!(runs, 6);
}

#[test]
fn flights_examples_stopped_at_odd_steps_write_what_one_run_writes() {
    for (script, step) in [
        ("flights/hourly.sql", 97),
        ("flights/delay_streaks.sql", 131),
        ("flights/delays.sql", 250),
    ] {
        stepped_equals_uninterrupted(script, FLIGHTS, step, |_| {});
    }
    let weather = [
        ("flights", "flights/flights-2013-01-01.csv"),
        ("weather", "flights/weather-2013-01-01.csv"),
    ];
    stepped_equals_uninterrupted("flights/weather.sql", &weather, 113, |_| {});
}

#[test]
fn output_written_after_the_checkpoint_is_not_written_twice() {
    // A run killed after writing results but before its next checkpoint leaves rows the
    // checkpoint does not cover; the run that goes on cuts them off.
    stepped_equals_uninterrupted("demo/demo.sql", DEMO, 1_500, |directory| {
        for (name, _) in files(directory) {
            let path = directory.join(&name);
            let mut contents = fs::read(&path).unwrap_or_default();
            contents.extend_from_slice(b"+I,a row written after the checkpoint\n");
            fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    });
}

#[test]
fn a_checkpoint_of_another_run_or_without_output_is_refused() {
    let checkpoint = temp_dir();
    let out = temp_dir();
    let mut args = run_args("flights/delays.sql", FLIGHTS, out.path());
    args.extend([
        "--checkpoint-dir".to_string(),
        checkpoint.path().display().to_string(),
        "--stop-after-rows".to_string(),
        "10".to_string(),
    ]);
    let output = sluice(&args);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));

    let mut other = run_args("flights/hourly.sql", FLIGHTS, out.path());
    other.extend([
        "--checkpoint-dir".to_string(),
        checkpoint.path().display().to_string(),
    ]);
    let output = sluice(&other);
    assert!(!output.status.success());
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: {}/checkpoint is the checkpoint of another run (its inputs were flights={}); use another --checkpoint-dir or remove it\n",
            checkpoint.path().display(),
            queries().join("flights/flights-2013-01-01.csv").display()
        )
    );

    let no_output = vec![
        "run".to_string(),
        queries().join("flights/delays.sql").display().to_string(),
        "--checkpoint-dir".to_string(),
        checkpoint.path().display().to_string(),
    ];
    let output = sluice(&no_output);
    assert!(!output.status.success());
    assert_eq!(
        text(&output.stderr),
        "error: --checkpoint-dir needs --output: results written before a stop are kept there\n"
    );
}
