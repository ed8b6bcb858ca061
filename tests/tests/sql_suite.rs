//! Runs every streaming SQL test file under `tests/sql/`, one test per file.

use std::path::Path;

use libtest_mimic::{Arguments, Failed, Trial};
use sluice_tests::run_test_file;

fn main() {
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
        libtest_mimic::run(&Arguments::from_args(), vec![trial]).exit();
    }
    let trials = paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Trial::test(name, move || {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| Failed::from(e.to_string()))?;
                run_test_file(&text)
                    .map(|_| ())
                    .map_err(|failure| Failed::from(format!("{}:{failure}", path.display())))
            })
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
