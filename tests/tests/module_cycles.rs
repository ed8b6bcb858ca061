//! No import cycles between the modules of a crate.
//!
//! Each crate's `src/` is read as a tree of modules (`a.rs` or `a/mod.rs` is `a`, `a/b.rs` is
//! `a::b`; `src/bin/` is left out). A module *uses* another when it names it, or an item of it,
//! through a `use` declaration or an inline `crate::`, `super::` or `self::` path, outside its
//! `#[cfg(test)]` tests. A `pub use` of a module's own descendants is a re-export, the facade a
//! parent shows, and does not count. A cycle — modules that use each other, directly or
//! through others, a parent and its child included — fails the test, naming the modules and
//! where each use is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates checked, by folder.
const CRATES: [&str; 9] = [
    "engine", "log", "sql", "cep", "alerts", "server", "repl", "tests", "benches",
];

/// A module's path from the crate root: `[]` is the root, `["lower", "join"]` is `lower::join`.
type ModulePath = Vec<String>;

/// Where one module uses another: the source file and line.
#[derive(Debug, Clone)]
struct UseSite {
    file: String,
    line: usize,
}

/// The modules of one crate and the uses between them.
#[derive(Debug, Default)]
struct ModuleGraph {
    modules: BTreeSet<ModulePath>,
    uses: BTreeMap<(ModulePath, ModulePath), UseSite>,
}

impl ModuleGraph {
    /// Builds the graph from `(module, file name, source text)` triples.
    fn build(sources: &[(ModulePath, String, String)]) -> ModuleGraph {
        let mut graph = ModuleGraph {
            modules: sources
                .iter()
                .map(|(module, _, _)| module.clone())
                .collect(),
            ..ModuleGraph::default()
        };
        for (module, file, text) in sources {
            for (path, line, re_export) in paths_named(text) {
                let Some(target) = graph.resolve(module, &path) else {
                    continue;
                };
                let descendant = target.len() > module.len() && target.starts_with(module);
                if target == *module || (re_export && descendant) {
                    continue;
                }
                graph
                    .uses
                    .entry((module.clone(), target))
                    .or_insert_with(|| UseSite {
                        file: file.clone(),
                        line,
                    });
            }
        }
        graph
    }

    /// The deepest module of this crate that `path`, named in `from`, reaches.
    fn resolve(&self, from: &ModulePath, path: &[String]) -> Option<ModulePath> {
        let mut at: ModulePath;
        let mut rest = path;
        match path.first().map(String::as_str) {
            Some("crate") => {
                at = Vec::new();
                rest = &path[1..];
            }
            Some("self") => {
                at = from.clone();
                rest = &path[1..];
            }
            Some("super") => {
                at = from.clone();
                while rest.first().map(String::as_str) == Some("super") {
                    at.pop()?;
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                // A path relative to the current module: only if it starts with a child.
                let mut child = from.clone();
                child.push(first.to_string());
                if !self.modules.contains(&child) {
                    return None;
                }
                at = from.clone();
            }
            None => return None,
        }
        for segment in rest {
            let mut next = at.clone();
            next.push(segment.clone());
            if !self.modules.contains(&next) {
                break;
            }
            at = next;
        }
        Some(at)
    }

    /// The strongly connected components of more than one module (Tarjan's algorithm).
    fn cycles(&self) -> Vec<Vec<ModulePath>> {
        let nodes: Vec<&ModulePath> = self.modules.iter().collect();
        let index_of: BTreeMap<&ModulePath, usize> =
            nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let mut edges = vec![Vec::new(); nodes.len()];
        for (from, to) in self.uses.keys() {
            if let (Some(&f), Some(&t)) = (index_of.get(from), index_of.get(to)) {
                edges[f].push(t);
            }
        }
        let mut tarjan = Tarjan {
            edges: &edges,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for node in 0..nodes.len() {
            if tarjan.index[node].is_none() {
                tarjan.visit(node);
            }
        }
        tarjan
            .components
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let mut modules: Vec<ModulePath> =
                    component.into_iter().map(|i| nodes[i].clone()).collect();
                modules.sort();
                modules
            })
            .collect()
    }

    /// The uses inside one cycle, for the failure message.
    fn describe(&self, cycle: &[ModulePath]) -> String {
        let members: BTreeSet<&ModulePath> = cycle.iter().collect();
        let mut lines = Vec::new();
        for ((from, to), site) in &self.uses {
            if members.contains(from) && members.contains(to) {
                lines.push(format!(
                    "    {} uses {} ({}:{})",
                    name(from),
                    name(to),
                    site.file,
                    site.line
                ));
            }
        }
        lines.join("\n")
    }
}

struct Tarjan<'a> {
    edges: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, node: usize) {
        self.index[node] = Some(self.next);
        self.low[node] = self.next;
        self.next += 1;
        self.stack.push(node);
        self.on_stack[node] = true;
        for &next in &self.edges[node] {
            match self.index[next] {
                None => {
                    self.visit(next);
                    self.low[node] = self.low[node].min(self.low[next]);
                }
                Some(index) if self.on_stack[next] => {
                    self.low[node] = self.low[node].min(index);
                }
                Some(_) => {}
            }
        }
        if Some(self.low[node]) == self.index[node] {
            let mut component = Vec::new();
            while let Some(member) = self.stack.pop() {
                self.on_stack[member] = false;
                component.push(member);
                if member == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

fn name(module: &ModulePath) -> String {
    if module.is_empty() {
        "the crate root".to_string()
    } else {
        module.join("::")
    }
}

/// The source a module's uses are read from: comments and the insides of string literals
/// blanked out (keeping line numbers), and nothing from the first `#[cfg(test)]` on.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(tests) => &text[..tests],
        None => text,
    };
    let mut code = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        code.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        code.push('\n');
                    }
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
            }
            '"' => {
                code.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        code.push('\n');
                    }
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                code.push('"');
            }
            '\'' => {
                // A character literal ('"', '\'', 'x') is skipped; a lifetime is kept.
                let mut ahead = chars.clone();
                let literal = match ahead.next() {
                    Some('\\') => ahead.nth(1) == Some('\''),
                    Some(_) => ahead.next() == Some('\''),
                    None => false,
                };
                if literal {
                    while let Some(c) = chars.next() {
                        if c == '\\' {
                            chars.next();
                        } else if c == '\'' {
                            break;
                        }
                    }
                    code.push_str("' '");
                } else {
                    code.push(c);
                }
            }
            c => code.push(c),
        }
    }
    code
}

/// Every path the source names that may lead into the crate: the paths of its `use`
/// declarations (braces expanded), whether each is a `pub use`, and its inline `crate::`,
/// `super::` and `self::` paths, each with its line.
fn paths_named(text: &str) -> Vec<(Vec<String>, usize, bool)> {
    let code = code_of(text);
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut position = 0;
    while position < code.len() {
        let rest = &code[position..];
        let at_word_start = position == 0 || !is_ident(bytes[position - 1]);
        if at_word_start && rest.starts_with("use ") {
            let end = rest.find(';').map_or(code.len(), |end| position + end);
            let line = code[..position].matches('\n').count() + 1;
            let before = code[..position].trim_end();
            let re_export = before.ends_with("pub") || before.ends_with(')');
            for path in expand_use(&code[position + 4..end]) {
                found.push((path, line, re_export));
            }
            position = end + 1;
            continue;
        }
        if at_word_start {
            for root in ["crate::", "super::", "self::"] {
                if rest.starts_with(root) {
                    let length = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .unwrap_or(rest.len());
                    let path: Vec<String> = rest[..length]
                        .split("::")
                        .filter(|segment| !segment.is_empty())
                        .map(str::to_string)
                        .collect();
                    let line = code[..position].matches('\n').count() + 1;
                    found.push((path, line, false));
                    position += length;
                    break;
                }
            }
        }
        position += rest.chars().next().map_or(1, char::len_utf8);
    }
    found
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The paths of a use tree: `crate::{a::X, b::{Y, Z}}` gives `crate::a::X`, `crate::b::Y`,
/// `crate::b::Z`.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    let mut tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    // `X as Y` names X.
    while let Some(rename) = tree.find(" as ") {
        let name = rename + 4;
        let end = tree[name..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(tree.len(), |end| name + end);
        tree.replace_range(rename..end, "");
    }
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let mut paths = Vec::new();
    expand_into(&tree, &[], &mut paths);
    paths
}

fn expand_into(tree: &str, prefix: &[String], paths: &mut Vec<Vec<String>>) {
    for item in split_top_level(tree) {
        let (head, group) = match item.find('{') {
            Some(open) => (
                &item[..open],
                Some(&item[open + 1..item.len().saturating_sub(1)]),
            ),
            None => (item, None),
        };
        let mut path = prefix.to_vec();
        path.extend(
            head.split("::")
                .filter(|segment| !segment.is_empty() && *segment != "*")
                .map(str::to_string),
        );
        match group {
            Some(group) => expand_into(group, &path, paths),
            None => paths.push(path),
        }
    }
}

/// Splits `a,b::{c,d},e` at the commas outside braces.
fn split_top_level(tree: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    items.into_iter().filter(|item| !item.is_empty()).collect()
}

/// A crate's modules: `(module, file name, text)` for every `.rs` file under `src/` but
/// `src/bin/`.
fn crate_sources(root: &Path) -> Vec<(ModulePath, String, String)> {
    let mut files = Vec::new();
    collect_files(&root.join("src"), &mut files);
    let mut sources = Vec::new();
    for file in files {
        let relative = match file.strip_prefix(root.join("src")) {
            Ok(relative) => relative.to_path_buf(),
            Err(_) => continue,
        };
        if relative.starts_with("bin") {
            continue;
        }
        let mut module: ModulePath = relative
            .with_extension("")
            .iter()
            .map(|part| part.to_string_lossy().into_owned())
            .collect();
        if matches!(
            module.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            module.pop();
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let shown = file
            .strip_prefix(root.parent().unwrap_or(root))
            .unwrap_or(&file)
            .display()
            .to_string();
        sources.push((module, shown, text));
    }
    sources
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_crate_has_an_import_cycle() {
    let workspace = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut failures = Vec::new();
    let mut modules = 0;
    for krate in CRATES {
        let sources = crate_sources(&workspace.join(krate));
        assert!(
            !sources.is_empty(),
            "no sources found for the crate in {krate}/"
        );
        let graph = ModuleGraph::build(&sources);
        modules += graph.modules.len();
        for cycle in graph.cycles() {
            let names: Vec<String> = cycle.iter().map(name).collect();
            failures.push(format!(
                "{krate}: {} use each other:\n{}",
                names.join(", "),
                graph.describe(&cycle)
            ));
        }
    }
    assert!(modules > 100, "only {modules} modules were read");
    assert!(
        failures.is_empty(),
        "import cycles between modules:\n{}",
        failures.join("\n")
    );
}

fn module(path: &str) -> ModulePath {
    path.split("::")
        .filter(|part| !part.is_empty())
        .map(str::to_string)
        .collect()
}

fn graph_of(sources: &[(&str, &str)]) -> ModuleGraph {
    let sources: Vec<(ModulePath, String, String)> = sources
        .iter()
        .map(|(path, text)| (module(path), format!("{path}.rs"), text.to_string()))
        .collect();
    ModuleGraph::build(&sources)
}

#[test]
fn a_cycle_through_a_third_module_is_found() {
    let graph = graph_of(&[
        ("", "mod a; mod b; mod c;\npub use a::A;"),
        ("a", "use crate::b::B;\npub struct A;"),
        ("b", "use crate::{c::{C, D as E}};\npub struct B;"),
        ("c", "pub struct C;\nfn f() { super::a::A; }"),
    ]);
    assert_eq!(
        graph.cycles(),
        vec![vec![module("a"), module("b"), module("c")]]
    );
    let described = graph.describe(&graph.cycles()[0]);
    assert!(described.contains("c uses a (c.rs:2)"), "{described}");
}

#[test]
fn a_parent_and_a_child_using_each_other_is_a_cycle() {
    let graph = graph_of(&[
        ("", "mod session;"),
        (
            "session",
            "mod alerts;\nuse alerts::compile;\npub struct Session;",
        ),
        (
            "session::alerts",
            "use super::Session;\npub fn compile() {}",
        ),
    ]);
    assert_eq!(
        graph.cycles(),
        vec![vec![module("session"), module("session::alerts")]]
    );
}

#[test]
fn re_exports_comments_and_tests_are_not_uses() {
    let graph = graph_of(&[
        (
            "",
            "mod a;\npub use a::A;\npub(crate) use a::helper;\nuse std::fmt;",
        ),
        (
            "a",
            "//! See [`Root`](crate::Root).\nuse crate::Root;\nconst S: &str = \"in use by self::b\";\nconst Q: char = '\"';\nfn x() -> &'static str { \"crate::a\" }\npub struct A;\n#[cfg(test)]\nmod tests { use crate::*; }",
        ),
    ]);
    assert!(graph.cycles().is_empty(), "{:?}", graph.uses.keys());
    assert_eq!(graph.uses.len(), 1);
}
