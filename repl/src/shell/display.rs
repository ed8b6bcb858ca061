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

/// An error about `statement`, with the position it names (`Line: L, Column: C`) marked
/// under the offending line.
pub fn error(statement: &str, message: &str) -> String {
    let mut out = format!("error: {message}");
    let Some((line, column)) = position(message) else {
        return out;
    };
    let Some(text) = statement.lines().nth(line.saturating_sub(1)) else {
        return out;
    };
    let pad: String = text
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    out.push_str(&format!("\n  {text}\n  {pad}^"));
    out
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
    fn keeps_the_order_of_row_columns() {
        let line =
            r#"{"subscription":1,"partition":0,"offset":0,"row":{"op":"+I","z":1,"a":null}}"#;
        assert_eq!(row_columns(line), vec!["op", "z", "a"]);
    }
}
