//! Byte offsets in SQL text of `sqlparser` token locations (1-based line and column,
//! counted in characters).

use datafusion::sql::sqlparser::tokenizer::Location;

/// Byte offsets of locations in a text, found from where the previous one was, so a
/// script's statements are located in one pass over it rather than one each.
pub(crate) struct LineStarts<'a> {
    text: &'a str,
    /// The 1-based line and column of the last location, and the byte offsets its line
    /// and itself start at: locations come in order, so each is found from the last, and
    /// a request of thousands of statements on one line is read once, not once for each.
    line: u64,
    line_start: usize,
    column: u64,
    column_start: usize,
}

impl<'a> LineStarts<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        LineStarts {
            text,
            line: 1,
            line_start: 0,
            column: 1,
            column_start: 0,
        }
    }

    /// Byte offset of a 1-based line and column (counted in characters).
    pub(crate) fn offset_of(&mut self, location: Location) -> usize {
        if location.line == 0 {
            return self.text.len();
        }
        if location.line < self.line {
            *self = LineStarts::new(self.text);
        }
        while self.line < location.line {
            match self.text[self.line_start..].find('\n') {
                Some(at) => {
                    self.line_start += at + 1;
                    self.line += 1;
                    self.column = 1;
                    self.column_start = self.line_start;
                }
                None => return self.text.len(),
            }
        }
        let wanted = location.column.max(1);
        if wanted < self.column {
            self.column = 1;
            self.column_start = self.line_start;
        }
        let ahead = (wanted - self.column) as usize;
        match self.text[self.column_start..].char_indices().nth(ahead) {
            Some((offset, _)) => {
                self.column = wanted;
                self.column_start += offset;
                self.column_start
            }
            None => self.text.len(),
        }
    }
}

/// Byte offset in `sql` of a 1-based line and column (counted in characters).
pub(crate) fn offset_of(sql: &str, location: Location) -> usize {
    if location.line == 0 {
        return sql.len();
    }
    let mut line = 1;
    let mut line_start = 0;
    for (index, byte) in sql.bytes().enumerate() {
        if line == location.line {
            break;
        }
        if byte == b'\n' {
            line += 1;
            line_start = index + 1;
        }
    }
    sql[line_start..]
        .char_indices()
        .nth(location.column.saturating_sub(1) as usize)
        .map_or(sql.len(), |(offset, _)| line_start + offset)
}
