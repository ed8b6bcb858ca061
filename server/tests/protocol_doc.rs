//! `docs/protocol.md` and `sluice_server::protocol` agree: every op in the doc's table of
//! requests is a variant of `Request`, every variant is in the table, and the doc's example
//! of each op reads as that op.

use std::collections::BTreeSet;

use sluice_server::protocol::{Request, RequestLine};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => panic!("cannot read {path}: {error}"),
    }
}

/// The section of the doc under `## Requests`, up to the next heading of its level.
fn requests_section(doc: &str) -> &str {
    let Some(start) = doc.find("\n## Requests\n") else {
        panic!("docs/protocol.md has no \"## Requests\" section");
    };
    let section = &doc[start + 1..];
    let end = section[3..]
        .find("\n## ")
        .map_or(section.len(), |at| at + 3);
    &section[..end]
}

/// The ops named in the first column of the section's table.
fn table_ops(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(op, _)| op.to_string())
        .collect()
}

/// The lines of the section's `json` code block: one example request per op.
fn example_lines(section: &str) -> Vec<&str> {
    let Some((_, block)) = section.split_once("```json\n") else {
        panic!("the Requests section has no ```json block of example requests");
    };
    let Some((block, _)) = block.split_once("```") else {
        panic!("the Requests section's ```json block is not closed");
    };
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect()
}

#[test]
fn every_op_in_the_doc_is_a_request_and_every_request_is_in_the_doc() {
    let doc = doc();
    let section = requests_section(&doc);
    let documented = table_ops(section);
    let known: Vec<String> = Request::OPS.iter().map(|op| op.to_string()).collect();
    let documented_set: BTreeSet<&String> = documented.iter().collect();
    let known_set: BTreeSet<&String> = known.iter().collect();
    assert_eq!(
        documented.len(),
        documented_set.len(),
        "an op is in the table twice"
    );
    assert_eq!(
        known.len(),
        known_set.len(),
        "an op is in Request::OPS twice"
    );
    let undocumented: Vec<_> = known_set.difference(&documented_set).collect();
    assert!(
        undocumented.is_empty(),
        "ops of Request missing from the table in docs/protocol.md: {undocumented:?}"
    );
    let unknown: Vec<_> = documented_set.difference(&known_set).collect();
    assert!(
        unknown.is_empty(),
        "ops in docs/protocol.md that Request does not have: {unknown:?}"
    );
}

#[test]
fn the_docs_example_of_each_op_reads_as_that_op() {
    let doc = doc();
    let section = requests_section(&doc);
    let mut exemplified = BTreeSet::new();
    for line in example_lines(section) {
        // As the server reads it, and as serde reads it: the same request.
        let parsed = match RequestLine::parse(line) {
            Ok(parsed) => parsed,
            Err(bad) => panic!("{line}: {}", bad.error),
        };
        let derived: RequestLine = match serde_json::from_str(line) {
            Ok(derived) => derived,
            Err(error) => panic!("{line}: {error}"),
        };
        assert_eq!(parsed, derived, "{line}");
        // Written again, it reads back the same.
        let written = match serde_json::to_string(&parsed) {
            Ok(written) => written,
            Err(error) => panic!("{line}: {error}"),
        };
        assert_eq!(
            RequestLine::parse(&written),
            Ok(parsed.clone()),
            "{written}"
        );
        let op = parsed.request.op_name();
        assert!(
            line.contains(&format!("\"op\":\"{op}\"")),
            "{line} read as {op}"
        );
        assert!(exemplified.insert(op), "two examples of {op}");
    }
    let missing: Vec<_> = Request::OPS
        .iter()
        .filter(|op| !exemplified.contains(*op))
        .collect();
    assert!(
        missing.is_empty(),
        "ops with no example request in docs/protocol.md: {missing:?}"
    );
}
