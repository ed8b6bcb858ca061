//! `docs/architecture.md` says which crate uses which: its crates table must match the
//! `[dependencies]` of every crate's `Cargo.toml`, and name every crate of the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crates of the table: folder → the folders of the sluice crates it uses.
fn documented(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut crates = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `engine` (`sluice-engine`) | uses | what it is for |
        let [_, name, uses, _, ..] = cells.as_slice() else {
            continue;
        };
        let Some(folder) = name
            .strip_prefix('`')
            .and_then(|rest| rest.split('`').next())
            .filter(|_| name.contains("(`sluice-"))
        else {
            continue;
        };
        let uses = uses
            .split(',')
            .map(str::trim)
            .filter(|used| !used.is_empty())
            .map(str::to_string)
            .collect();
        crates.insert(folder.to_string(), uses);
    }
    crates
}

/// The sluice crates a manifest's `[dependencies]` name, by folder (`sluice-engine` → `engine`).
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut found = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some(name) = line.strip_prefix("sluice-") {
            let end = name
                .find(|c: char| !(c.is_alphanumeric() || c == '-'))
                .unwrap_or(name.len());
            found.insert(name[..end].to_string());
        }
    }
    found
}

/// The workspace's members, from its `Cargo.toml`.
fn members(manifest: &str) -> BTreeSet<String> {
    let Some(line) = manifest.lines().find(|line| line.starts_with("members")) else {
        return BTreeSet::new();
    };
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn the_crates_table_matches_the_manifests() {
    let workspace = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let table = documented(&read(&workspace.join("docs/architecture.md")));
    let members = members(&read(&workspace.join("Cargo.toml")));
    assert!(members.len() >= 9, "workspace members: {members:?}");
    assert_eq!(
        table.keys().cloned().collect::<BTreeSet<_>>(),
        members,
        "the crates in docs/architecture.md are not the workspace's members"
    );
    for member in &members {
        let uses = dependencies(&read(&workspace.join(member).join("Cargo.toml")));
        assert_eq!(
            table[member], uses,
            "docs/architecture.md says `{member}` uses {:?}; its Cargo.toml says {uses:?}",
            table[member]
        );
    }
}

#[test]
fn a_missing_dependency_is_noticed() {
    let doc = "| `sql` (`sluice-sql`) | engine, cep | statements |\n| `cep` (`sluice-cep`) | | patterns |";
    let manifest = "[dependencies]\nsluice-engine.workspace = true\nsluice-cep.workspace = true\nsluice-alerts = { path = \"../alerts\" }\n\n[dev-dependencies]\nsluice-log.workspace = true\n";
    let table = documented(doc);
    assert_eq!(table["cep"], BTreeSet::new());
    let uses = dependencies(manifest);
    assert_eq!(uses, ["alerts", "cep", "engine"].map(String::from).into());
    assert_ne!(table["sql"], uses);
}
