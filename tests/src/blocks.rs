//! A test file split into blocks: runs of non-blank lines separated by blank lines, with `#`
//! comment lines left out. Each line keeps its byte span in the file, so a completion run can
//! replace exactly the expected lines and nothing else.

use std::ops::Range;

pub(crate) struct Block {
    /// 1-based line of the block's first line.
    pub line: usize,
    /// The block's lines, without line endings.
    pub lines: Vec<String>,
    /// Where each of `lines` is in the file, its line ending left out.
    pub spans: Vec<Range<usize>>,
}

impl Block {
    /// The bytes from the end of line `after` to the end of the block's last line: the
    /// expected lines that follow line `after`, each with the line ending before it.
    pub fn span_after(&self, after: usize) -> Range<usize> {
        let start = self.spans[after].end;
        let end = self.spans.last().map_or(start, |span| span.end);
        start..end
    }
}

/// The blocks of `text`, with lines split as [`str::lines`] splits them.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    let mut start = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw
            .strip_suffix('\n')
            .map_or(raw, |line| line.strip_suffix('\r').unwrap_or(line));
        let span = start..start + line.len();
        start += raw.len();
        if line.trim().is_empty() {
            blocks.extend(current.take());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let block = current.get_or_insert_with(|| Block {
            line: index + 1,
            lines: Vec::new(),
            spans: Vec::new(),
        });
        block.lines.push(line.to_string());
        block.spans.push(span);
    }
    blocks.extend(current);
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_spans_across_comments_and_line_endings() {
        let text = "# note\nstatement ok\r\nSELECT 1\n\n\noutput q1\n# inside\nop,x";
        let found = blocks(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].line, 2);
        assert_eq!(found[0].lines, ["statement ok", "SELECT 1"]);
        assert_eq!(found[1].line, 6);
        assert_eq!(found[1].lines, ["output q1", "op,x"]);
        for block in &found {
            for (line, span) in block.lines.iter().zip(&block.spans) {
                assert_eq!(&text[span.clone()], line);
            }
        }
        assert_eq!(&text[found[0].span_after(0)], "\r\nSELECT 1");
        assert_eq!(&text[found[1].span_after(0)], "\n# inside\nop,x");
    }
}
