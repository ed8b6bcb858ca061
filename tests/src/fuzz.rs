//! Mutations of test scripts for the fuzz tests: one statement or input block of an `.slt`
//! file changed at a time, in ways a careless or hostile user might write it.

use std::ops::Range;

use crate::support::Random;

/// Words a mutation may put into a statement: punctuation out of place, extreme values,
/// clauses that need more around them, quotes and comments left open.
const HOSTILE: &[&str] = &[
    "(",
    ")",
    ",",
    ";",
    "*",
    "/",
    "%",
    "||",
    "NULL",
    "''",
    "'x'",
    "'",
    "\"",
    "--",
    "/*",
    "$1",
    "?",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "9223372036854775807",
    "-9223372036854775808",
    "0.000000000000000001",
    "CAST(",
    "AS",
    "INTERVAL '0' SECOND",
    "INTERVAL '-1' DAY",
    "INTERVAL '1000000' YEAR",
    "TIMESTAMP '9999-12-31 23:59:59.999'",
    "TABLE(",
    "DESCRIPTOR(",
    "OVER",
    "PARTITION BY",
    "ORDER BY",
    "MATCH_RECOGNIZE",
    "PATTERN",
    "DEFINE",
    "MEASURES",
    "WITHIN",
    "NOT",
    "BETWEEN",
    "IN (",
    "CASE WHEN",
    "END",
    "GROUP BY",
    "HAVING",
    "LIMIT",
    "UNION ALL",
    "JOIN",
    "ON",
    "FOR SYSTEM_TIME AS OF",
    "WATERMARK FOR",
    "PRIMARY KEY",
    "WITH ('partitions' = '0')",
    "é",
    "\u{0}",
];

/// Byte ranges of the parts of an `.slt` text a mutation may change: the SQL under each
/// `statement` line and the rows under each `input` line, up to a blank line or `----`.
pub fn statement_spans(text: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(start) = open {
            if trimmed.is_empty() || trimmed == "----" {
                spans.push(start..at);
                open = None;
            }
        } else if trimmed.starts_with("statement ") || trimmed.starts_with("input ") {
            open = Some(at + line.len());
        }
        at += line.len();
    }
    if let Some(start) = open
        && start < text.len()
    {
        spans.push(start..text.len());
    }
    spans.retain(|span| !span.is_empty());
    spans
}

/// Changes one part of a script at a time, from a seed.
pub struct ScriptMutator {
    random: Random,
    done: Vec<String>,
}

impl ScriptMutator {
    pub fn new(seed: u64) -> Self {
        ScriptMutator {
            random: Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            done: Vec::new(),
        }
    }

    /// What the last [`ScriptMutator::mutate`] did, to repeat a failure by hand.
    pub fn described(&self) -> String {
        self.done.join("; ")
    }

    /// `text` with one of `spans` changed by one to three mutations.
    pub fn mutate(&mut self, text: &str, spans: &[Range<usize>]) -> String {
        self.done.clear();
        let span = &spans[self.below(spans.len())];
        let mut part = text[span.clone()].to_string();
        for _ in 0..=self.below(3) {
            part = self.mutate_part(&part);
        }
        // A mutated part still ends where its block does.
        let part = part.replace("\n\n", "\n");
        let part = if part.ends_with('\n') || part.is_empty() {
            part
        } else {
            format!("{part}\n")
        };
        format!("{}{}{}", &text[..span.start], part, &text[span.end..])
    }

    fn below(&mut self, n: usize) -> usize {
        self.random.below(n.max(1) as u64) as usize
    }

    fn mutate_part(&mut self, part: &str) -> String {
        let mut words: Vec<String> = part.split_whitespace().map(str::to_string).collect();
        if words.is_empty() {
            words.push(String::new());
        }
        let at = self.below(words.len());
        let other = self.below(words.len());
        match self.below(9) {
            0 => {
                self.done.push(format!("deleted {:?}", words[at]));
                words.remove(at);
            }
            1 => {
                self.done.push(format!("repeated {:?}", words[at]));
                let word = words[at].clone();
                words.insert(at, word);
            }
            2 => {
                self.done
                    .push(format!("swapped {:?} and {:?}", words[at], words[other]));
                words.swap(at, other);
            }
            3 => {
                let word = HOSTILE[self.below(HOSTILE.len())];
                self.done
                    .push(format!("put {word:?} before {:?}", words[at]));
                words.insert(at, word.to_string());
            }
            4 => {
                let word = words[at].clone();
                let replaced = HOSTILE[self.below(HOSTILE.len())];
                self.done.push(format!("replaced {word:?} by {replaced:?}"));
                words[at] = replaced.to_string();
            }
            5 => {
                let (from, to) = (at.min(other), at.max(other) + 1);
                let depth = 1 + self.below(80);
                self.done
                    .push(format!("nested words {from}..{to} {depth} deep"));
                words.insert(to, ")".repeat(depth));
                words.insert(from, "(".repeat(depth));
            }
            6 => {
                let count = 1 + self.below(2_000);
                self.done
                    .push(format!("chained {count} ANDs after {:?}", words[at]));
                let chain = vec!["1 = 1"; count].join(" AND ");
                words.insert(at + 1, format!("AND {chain}"));
            }
            7 => {
                let cut = self.below(part.len());
                let cut = (0..=cut)
                    .rev()
                    .find(|c| part.is_char_boundary(*c))
                    .unwrap_or(0);
                self.done.push(format!("cut after byte {cut}"));
                return part[..cut].to_string();
            }
            _ => {
                let word = words[other].clone();
                self.done.push(format!("put {word:?} for {:?}", words[at]));
                words[at] = word;
            }
        }
        // Keep the part's lines: a row of input per line, a statement over several.
        words.join(if part.contains(",") && !part.contains(' ') {
            "\n"
        } else {
            " "
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_statements_and_input_rows_only() {
        let text = "statement ok\nCREATE TABLE t (a INT)\n\ninput t\na\n1\n\n\
                    output q1\nop,a\n+I,1\n\nstatement error nope\nSELECT x\n";
        let parts: Vec<&str> = statement_spans(text)
            .into_iter()
            .map(|span| &text[span])
            .collect();
        assert_eq!(
            parts,
            vec!["CREATE TABLE t (a INT)\n", "a\n1\n", "SELECT x\n"]
        );
    }

    #[test]
    fn the_same_seed_mutates_the_same_way() {
        let text = "statement ok\nSELECT a, b FROM t WHERE a > 1\n";
        let spans = statement_spans(text);
        let first = ScriptMutator::new(7).mutate(text, &spans);
        let again = ScriptMutator::new(7).mutate(text, &spans);
        assert_eq!(first, again);
        assert_ne!(first, text);
        assert!(first.starts_with("statement ok\n"));
    }
}
