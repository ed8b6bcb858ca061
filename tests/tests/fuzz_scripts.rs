//! A bounded mutation fuzzer over SQL scripts: every `.slt` file under `tests/sql/` is run
//! again and again with one of its statements mutated (tokens deleted, repeated, swapped or
//! replaced by hostile ones, numbers pushed to extremes, text cut short, expressions nested
//! deep), and the test fails if any run panics. What the mutated files expect no longer
//! holds, so their results are not checked: only that sluice answers every one of them
//! with a result or an error. Seeds are fixed, so a failure repeats; `SLUICE_FUZZ_CASES`
//! sets how many runs (2 000 by default, seconds in a debug build) and `SLUICE_FUZZ_SEED` the first seed (1), and
//! `fuzz/run.sh` runs it for as long as wanted.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sluice_engine::limits::with_planning_stack;
use sluice_tests::fuzz::{ScriptMutator, statement_spans};
use sluice_tests::run_leniently;

#[test]
fn mutated_scripts_never_crash() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&directory)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "slt"))
                .filter_map(|path| {
                    let text = std::fs::read_to_string(&path).ok()?;
                    Some((path.display().to_string(), text))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .slt files in {}",
        directory.display()
    );
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let cases = number("SLUICE_FUZZ_CASES", 2_000);
    let first_seed = number("SLUICE_FUZZ_SEED", 1);
    // Panics are expected to be caught here, one report each; keep the default hook quiet.
    let message = Arc::new(Mutex::new(String::new()));
    let seen = Arc::clone(&message);
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut message) = seen.lock() {
            *message = info.to_string();
        }
    }));
    let mut crashes = Vec::new();
    for case in 0..cases {
        let (name, text) = &files[(case % files.len() as u64) as usize];
        let spans = statement_spans(text);
        if spans.is_empty() {
            continue;
        }
        let mut mutator = ScriptMutator::new(first_seed + case);
        let mutated = mutator.mutate(text, &spans);
        let outcome = with_planning_stack(|| {
            catch_unwind(AssertUnwindSafe(|| {
                run_leniently(&mutated);
            }))
        });
        let failed = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => message.lock().map(|m| m.clone()).unwrap_or_default(),
            Err(error) => format!("no thread to run on: {error}"),
        };
        crashes.push(format!(
            "seed {} ({name}, {}): {failed}",
            first_seed + case,
            mutator.described()
        ));
    }
    let _ = std::panic::take_hook();
    assert!(
        crashes.is_empty(),
        "{} of {cases} mutated scripts crashed:\n{}",
        crashes.len(),
        crashes.join("\n")
    );
}
