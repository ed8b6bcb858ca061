//! A test file split into blocks: runs of non-blank lines separated by blank lines, with `#`
//! comment lines left out.

pub(crate) struct Block {
    /// 1-based line of the block's first line.
    pub line: usize,
    pub lines: Vec<String>,
}

pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            blocks.extend(current.take());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        current
            .get_or_insert_with(|| Block {
                line: index + 1,
                lines: Vec::new(),
            })
            .lines
            .push(line.to_string());
    }
    blocks.extend(current);
    blocks
}
