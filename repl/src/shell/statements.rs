//! Splitting typed text into SQL statements at `;`, outside quotes and comments.

/// The complete statements in `text` (each without its `;`), and what follows the last `;`.
pub fn split(text: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    // A comment runs to the end of the line.
                    for c in chars.by_ref() {
                        if c == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    let statement = current.trim();
                    if !statement.is_empty() {
                        statements.push(statement.to_string());
                    }
                    current.clear();
                }
                _ => current.push(c),
            },
        }
    }
    (statements, current.trim_start().to_string())
}

/// Whether `statement` is a query (`SELECT`, `WITH`, `VALUES`), which runs as a standing
/// query.
pub fn is_query(statement: &str) -> bool {
    let first = statement
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(first.trim_start_matches('('), "SELECT" | "WITH" | "VALUES")
}

/// Whether `statement` is `CREATE ALERT` or `DROP ALERT`.
pub fn is_alert_statement(statement: &str) -> bool {
    let mut words = statement
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .flat_map(str::split_whitespace)
        .map(str::to_ascii_uppercase);
    matches!(
        (words.next().as_deref(), words.next().as_deref()),
        (Some("CREATE" | "DROP"), Some("ALERT"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_statements_are_told_apart() {
        assert!(is_alert_statement(
            "-- cheap\ncreate alert a ON s WHERE x > 1"
        ));
        assert!(is_alert_statement("DROP  ALERT a"));
        assert!(!is_alert_statement("CREATE VIEW alert AS SELECT 1"));
        assert!(!is_alert_statement("SELECT * FROM alert"));
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let (done, rest) =
            split("SELECT ';' FROM t; -- a; comment\nINSERT INTO t VALUES (1);\nSELECT");
        assert_eq!(
            done,
            vec![
                "SELECT ';' FROM t".to_string(),
                "INSERT INTO t VALUES (1)".to_string()
            ]
        );
        assert_eq!(rest, "SELECT");
        assert!(is_query("  select 1") && is_query("(SELECT 1)") && !is_query("CREATE TABLE t"));
    }
}
