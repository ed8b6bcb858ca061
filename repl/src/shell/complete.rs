//! Tab completion at the prompt: SQL keywords, the names of streams, views, queries and
//! their columns, and the backslash commands.

use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "ORDER",
    "LIMIT",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "ON",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "LIKE",
    "BETWEEN",
    "AS",
    "DISTINCT",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "CREATE",
    "TABLE",
    "VIEW",
    "MATERIALIZED",
    "INSERT",
    "INTO",
    "VALUES",
    "DROP",
    "SHOW",
    "TABLES",
    "VIEWS",
    "QUERIES",
    "ALERT",
    "ALERTS",
    "ON",
    "DESCRIBE",
    "EXPLAIN",
    "SET",
    "WITH",
    "WATERMARK",
    "FOR",
    "INTERVAL",
    "TIMESTAMP",
    "BIGINT",
    "INT",
    "DOUBLE",
    "STRING",
    "BOOLEAN",
    "DECIMAL",
    "PRIMARY",
    "KEY",
    "ENFORCED",
    "TUMBLE",
    "HOP",
    "CUMULATE",
    "SESSION",
    "DESCRIPTOR",
    "TABLE",
    "MATCH_RECOGNIZE",
    "PARTITION",
    "MEASURES",
    "PATTERN",
    "DEFINE",
    "WITHIN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "OVER",
    "ROWS",
    "RANGE",
    "PRECEDING",
    "CURRENT",
    "ROW",
];

pub const COMMANDS: &[&str] = &[
    "\\help",
    "\\list",
    "\\cancel",
    "\\stats",
    "\\load",
    "\\publish",
    "\\tail",
    "\\explain",
    "\\bg",
    "\\fg",
    "\\mute",
    "\\quit",
];

/// The completer; `names` is refreshed after each statement that may change them.
pub struct ShellHelper {
    pub names: Arc<Mutex<Vec<String>>>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\\'))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let upper = word.to_ascii_uppercase();
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let mut candidates: Vec<String> = if word.starts_with('\\') {
            COMMANDS
                .iter()
                .filter(|c| c.starts_with(word))
                .map(|c| c.to_string())
                .collect()
        } else {
            let keywords = KEYWORDS
                .iter()
                .filter(|k| k.starts_with(&upper))
                .map(|k| k.to_string());
            let names = names
                .into_iter()
                .filter(|n| n.to_ascii_uppercase().starts_with(&upper));
            names.chain(keywords).collect()
        };
        candidates.dedup();
        let pairs = candidates
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;
    use rustyline::history::DefaultHistory;

    #[test]
    fn completes_keywords_names_and_commands() -> rustyline::Result<()> {
        let helper = ShellHelper {
            names: Arc::new(Mutex::new(vec!["clicks".into(), "click_count".into()])),
        };
        let history = DefaultHistory::new();
        let context = Context::new(&history);
        let (start, found) = helper.complete("SELECT * FROM cli", 17, &context)?;
        let found: Vec<String> = found.into_iter().map(|p| p.replacement).collect();
        assert_eq!(
            (start, found),
            (14, vec!["clicks".to_string(), "click_count".to_string()])
        );
        let (_, found) = helper.complete("sel", 3, &context)?;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].replacement, "SELECT");
        let (_, found) = helper.complete("\\ca", 3, &context)?;
        assert_eq!(found[0].replacement, "\\cancel");
        Ok(())
    }
}
