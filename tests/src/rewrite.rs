//! Corrections a completion run makes to a test file, each putting what a block observed in
//! place of what it expected, and their application to the file's text: every byte outside a
//! correction's span stays as it was.

use std::ops::Range;

pub(crate) enum Correction {
    /// A block's directive line (`statement ok`, `statement error <text>`), replaced whole.
    Directive { span: Range<usize>, line: String },
    /// Expected lines: `span` runs from the end of the line they follow to the end of the
    /// block (see `Block::span_after`), and `lines` take their place.
    Expected {
        span: Range<usize>,
        lines: Vec<String>,
    },
}

impl Correction {
    fn span(&self) -> &Range<usize> {
        match self {
            Correction::Directive { span, .. } | Correction::Expected { span, .. } => span,
        }
    }
}

/// Why `lines` cannot be a block's expected lines, if they cannot: a blank line would end the
/// block and a line starting with `#` would read as a comment.
pub(crate) fn unwritable(lines: &[String]) -> Option<String> {
    let line = lines
        .iter()
        .find(|line| line.trim().is_empty() || line.starts_with('#'))?;
    Some(format!(
        "cannot write the observed line '{line}' into an expected block: \
         blank lines end a block and '#' starts a comment"
    ))
}

/// `text` with `corrections` (not overlapping) applied. Comment lines inside replaced expected
/// lines are kept, ahead of the new lines; new lines end as the line before them does.
pub(crate) fn apply(text: &str, mut corrections: Vec<Correction>) -> String {
    corrections.sort_by_key(|correction| correction.span().start);
    let mut rewritten = String::with_capacity(text.len());
    let mut copied = 0;
    for correction in &corrections {
        let span = correction.span();
        rewritten.push_str(&text[copied..span.start]);
        match correction {
            Correction::Directive { line, .. } => rewritten.push_str(line),
            Correction::Expected { lines, .. } => {
                let newline = if text[span.start..].starts_with("\r\n") {
                    "\r\n"
                } else {
                    "\n"
                };
                let comments = text[span.clone()]
                    .lines()
                    .filter(|line| line.starts_with('#'));
                for line in comments.chain(lines.iter().map(String::as_str)) {
                    rewritten.push_str(newline);
                    rewritten.push_str(line);
                }
            }
        }
        copied = span.end;
    }
    rewritten.push_str(&text[copied..]);
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|line| line.to_string()).collect()
    }

    #[test]
    fn no_corrections_keep_the_text() {
        let text = "# a\r\nstatement ok\nSELECT 1\n\n\n  \noutput q1\nop,x";
        assert_eq!(apply(text, Vec::new()), text);
    }

    #[test]
    fn expected_lines_are_replaced_filled_in_and_emptied() {
        let text = "output q1\nop,x\n+I,1\n\noutput q2\n\ninput s\nx\n----\n2: bad\n";
        let corrections = vec![
            Correction::Expected {
                span: 46..53,
                lines: Vec::new(),
            },
            Correction::Expected {
                span: 9..19,
                lines: owned(&["op,x", "+I,2", "+I,3"]),
            },
            Correction::Expected {
                span: 30..30,
                lines: owned(&["op,y"]),
            },
        ];
        assert_eq!(&text[46..53], "\n2: bad");
        assert_eq!(&text[9..19], "\nop,x\n+I,1");
        assert_eq!(&text[21..30], "output q2");
        assert_eq!(
            apply(text, corrections),
            "output q1\nop,x\n+I,2\n+I,3\n\noutput q2\nop,y\n\ninput s\nx\n----\n"
        );
    }

    #[test]
    fn comments_inside_replaced_lines_stay_and_line_endings_follow_the_file() {
        let text = "output q1\r\nop,x\r\n# first\r\n+I,1\r\n\r\nstatement ok\r\nSELECT 1\r\n";
        let corrections = vec![
            Correction::Expected {
                span: 9..30,
                lines: owned(&["op,x", "+I,2"]),
            },
            Correction::Directive {
                span: 34..46,
                line: "statement error boom".into(),
            },
        ];
        assert_eq!(&text[9..30], "\r\nop,x\r\n# first\r\n+I,1");
        assert_eq!(&text[34..46], "statement ok");
        assert_eq!(
            apply(text, corrections),
            "output q1\r\n# first\r\nop,x\r\n+I,2\r\n\r\nstatement error boom\r\nSELECT 1\r\n"
        );
    }

    #[test]
    fn blank_and_comment_lines_cannot_be_expected() {
        assert!(unwritable(&owned(&["op,x", "+I,1"])).is_none());
        assert!(unwritable(&owned(&["op,x", ""])).is_some());
        assert!(unwritable(&owned(&["op,x", "#1"])).is_some());
    }
}
