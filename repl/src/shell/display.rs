//! How results and errors look at the prompt: rows as aligned tables, errors as one line
//! with the offending text marked.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Rows as a table with `columns` as its header (the `op` column first when present).
pub fn table(columns: &[String], rows: &[&Value]) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(columns);
    for row in rows {
        table.add_row(columns.iter().map(|c| cell(&row[c.as_str()])));
    }
    table.to_string()
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The keys of the `row` object in a pushed line, in the order the server wrote them.
pub fn row_columns(line: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Pushed {
        row: Keys,
    }
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct KeysVisitor;
            impl<'de> Visitor<'de> for KeysVisitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(KeysVisitor)
        }
    }
    serde_json::from_str::<Pushed>(line)
        .map(|p| p.row.0)
        .unwrap_or_default()
}

/// An error about `statement` as one line, with the offending text marked under it: at the
/// position the error names (`Line: L, Column: C`), or else where the name it quotes
/// (`'name'`, `No field named name`) appears in the statement.
pub fn error(statement: &str, message: &str) -> String {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = format!("error: {message}");
    let (line, column, width) = match position(&message) {
        Some((line, column)) => (line, column, 1),
        None => match offending_name(&message).and_then(|name| find_word(statement, &name)) {
            Some(found) => found,
            None => return out,
        },
    };
    let Some(text) = statement.lines().nth(line.saturating_sub(1)) else {
        return out;
    };
    let pad: String = text
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    out.push_str(&format!("\n  {text}\n  {pad}{}", "^".repeat(width.max(1))));
    out
}

/// The name an error is about, when it quotes one.
fn offending_name(message: &str) -> Option<String> {
    if let Some(rest) = message.split("No field named ").nth(1) {
        let name = rest.split([' ', ',']).next()?.trim_end_matches('.');
        let name = name.rsplit('.').next()?.trim_matches('"');
        return Some(name.to_string());
    }
    let start = message.find('\'')? + 1;
    let end = start + message[start..].find('\'')?;
    Some(message[start..end].to_string()).filter(|name| !name.is_empty())
}

/// Where `word` first stands on its own in `text`: line and column (from 1), and its width.
fn find_word(text: &str, word: &str) -> Option<(usize, usize, usize)> {
    let lower = word.to_lowercase();
    for (index, line) in text.lines().enumerate() {
        let haystack = line.to_lowercase();
        let mut from = 0;
        while let Some(found) = haystack[from..].find(&lower) {
            let at = from + found;
            let end = at + lower.len();
            let before = haystack[..at].chars().next_back();
            let after = haystack[end..].chars().next();
            let part_of_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if !part_of_word(before) && !part_of_word(after) {
                let column = haystack[..at].chars().count() + 1;
                return Some((index + 1, column, word.chars().count()));
            }
            from = end;
        }
    }
    None
}

fn position(message: &str) -> Option<(usize, usize)> {
    let after = &message[message.find("Line: ")? + 6..];
    let line: usize = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let after = &after[after.find("Column: ")? + 8..];
    let column: usize = after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_position_an_error_names() {
        let shown = error(
            "SELECT a\nFROM t WHER a > 1",
            "sql parser error: Expected end of statement, found: a at Line: 2, Column: 13",
        );
        assert_eq!(
            shown,
            "error: sql parser error: Expected end of statement, found: a at Line: 2, \
             Column: 13\n  FROM t WHER a > 1\n              ^"
        );
    }

    #[test]
    fn marks_the_name_an_error_quotes() {
        assert_eq!(
            error(
                "SELECT a, nope\nFROM t",
                "No field named nope.\nValid fields are t.a."
            ),
            "error: No field named nope. Valid fields are t.a.\n  SELECT a, nope\n            ^^^^"
        );
        assert_eq!(
            error("SELECT a FROM nothere", "unknown stream or view 'nothere'"),
            "error: unknown stream or view 'nothere'\n  SELECT a FROM nothere\n                ^^^^^^^"
        );
        assert_eq!(
            error("SELECT 1", "something broke"),
            "error: something broke"
        );
    }

    #[test]
    fn keeps_the_order_of_row_columns() {
        let line =
            r#"{"subscription":1,"partition":0,"offset":0,"row":{"op":"+I","z":1,"a":null}}"#;
        assert_eq!(row_columns(line), vec!["op", "z", "a"]);
    }
}
