//! Runs a test file block by block against a script, checking each block's expectation. In
//! a completion run a block whose expectation differs from what it observed records a
//! correction instead of failing, and the file comes back with the corrections applied.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use datafusion::arrow::datatypes::SchemaRef;
use sluice_engine::input::{self, FileFormat};
use sluice_engine::output::{OutputFormat, ResultWriter};
use sluice_engine::time::Millis;
use sluice_sql::{Outcome, Script, parse_statements};

use crate::blocks::{Block, blocks};
use crate::rewrite::{self, Correction};

/// A failed expectation, with the file line of the block that failed.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

/// Runs the test file `text`; `Ok` with the number of checks that passed.
pub fn run_test_file(text: &str) -> Result<usize, Failure> {
    run(text, None, None).map(|runner| runner.checks)
}

/// Where a restart cuts a test file: in block `block`, before the first batch of its rows
/// that starts at or after row `row` (rows count only in `input` blocks, whose rows are
/// decoded in batches; any other block is cut before it runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub block: usize,
    pub row: usize,
}

impl Cut {
    /// A cut chosen by `seed` among the blocks and input rows of `text`.
    pub fn random(text: &str, seed: u64) -> Cut {
        let blocks = blocks(text);
        let mut random = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
        let mut next = |bound: usize| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            (random % bound.max(1) as u64) as usize
        };
        let block = next(blocks.len() + 1);
        let rows = blocks.get(block).map_or(0, |block| {
            let body = &block.lines[1..];
            body.iter().take_while(|line| *line != "----").count()
        });
        Cut {
            block,
            row: next(rows + 1),
        }
    }
}

/// Runs the test file `text` as [`run_test_file`] does, except that at `cut` the script is
/// checkpointed and replaced by a fresh one that ran the same statements and restored the
/// checkpoint: every expectation must hold across the restart.
pub fn run_test_file_with_restart(text: &str, cut: Cut) -> Result<usize, Failure> {
    run(text, None, Some(cut)).map(|runner| runner.checks)
}

/// Runs the test file `text` and answers it with every expected result that differs from the
/// observed one, or is left empty, replaced by the observed one. Everything else is kept byte
/// for byte, so a file whose expectations all hold comes back unchanged. Fails as
/// [`run_test_file`] does on anything a correction cannot settle: an unknown directive, a
/// `statement rows` statement that fails, rows no `output` block checked.
pub fn complete_test_file(text: &str) -> Result<String, Failure> {
    let runner = run(text, Some(Vec::new()), None)?;
    Ok(rewrite::apply(text, runner.corrections.unwrap_or_default()))
}

/// Runs every block of `text` whatever the blocks before it gave, then ends the input, as
/// the fuzz tests do with mutated files; gives how many blocks failed. Only a panic stops it.
pub fn run_leniently(text: &str) -> usize {
    let mut runner = Runner {
        script: Script::new(),
        emitted: BTreeMap::new(),
        finished: false,
        checks: 0,
        corrections: None,
        cut: None,
        statements: Vec::new(),
        bounded: false,
    };
    let mut failed = blocks(text)
        .iter()
        .filter(|block| runner.run_block(block).is_err())
        .count();
    if !runner.finished && runner.script.finish().is_err() {
        failed += 1;
    }
    if runner.collect().is_err() {
        failed += 1;
    }
    failed
}

fn run(
    text: &str,
    corrections: Option<Vec<Correction>>,
    cut: Option<Cut>,
) -> Result<Runner, Failure> {
    let mut runner = Runner {
        script: Script::new(),
        emitted: BTreeMap::new(),
        finished: false,
        checks: 0,
        corrections,
        cut: None,
        statements: Vec::new(),
        bounded: false,
    };
    let blocks = blocks(text);
    let end = text.lines().count();
    let fail = |message| Failure { line: end, message };
    for (index, block) in blocks.iter().enumerate() {
        let fail = |message| Failure {
            line: block.line,
            message,
        };
        match cut {
            Some(cut) if cut.block == index && block.lines[0].starts_with("input") => {
                runner.cut = Some(cut.row);
            }
            Some(cut) if cut.block == index => runner.restart().map_err(fail)?,
            _ => {}
        }
        runner.run_block(block).map_err(fail)?;
    }
    if cut.is_some_and(|cut| cut.block >= blocks.len()) {
        runner.restart().map_err(fail)?;
    }
    if !runner.finished {
        runner.script.finish().map_err(|e| fail(e.to_string()))?;
    }
    runner.collect().map_err(fail)?;
    for (name, text) in &runner.emitted {
        if !text.is_empty() {
            return Err(fail(format!(
                "'{name}' emitted rows no output block checked:\n{text}"
            )));
        }
    }
    Ok(runner)
}

struct Runner {
    script: Script,
    /// CSV rows (no header) each output emitted and no block checked yet.
    emitted: BTreeMap<String, String>,
    finished: bool,
    checks: usize,
    /// In a completion run, the corrections recorded so far; `None` when every expectation
    /// must hold.
    corrections: Option<Vec<Correction>>,
    /// In a restart run, the row of the next `input` block before which to restart.
    cut: Option<usize>,
    /// The SQL of every statement block run so far, for the script that replaces this one.
    statements: Vec<String>,
    /// Whether the script's inputs end, as in `sluice run` (the `bounded` directive).
    bounded: bool,
}

impl Runner {
    fn run_block(&mut self, block: &Block) -> Result<(), String> {
        let head = block.lines[0].trim();
        let words: Vec<&str> = head.split_whitespace().collect();
        match words.as_slice() {
            ["statement", "ok"] => self.statement(block, None).map(|_| ()),
            ["statement", "warning", ..] => {
                let expected = head["statement warning".len()..].trim();
                if !self.statement(block, None)? {
                    return Ok(());
                }
                let warnings = self.script.take_warnings();
                let placeholder = expected.is_empty() && self.completing();
                if !placeholder && warnings.iter().any(|w| w.contains(expected)) {
                    return Ok(());
                }
                let line = match warnings.first() {
                    Some(warning) => directive("statement warning", warning),
                    None => "statement ok".to_string(),
                };
                self.differs(
                    Correction::Directive {
                        span: block.spans[0].clone(),
                        line,
                    },
                    format!("expected a warning containing '{expected}', got {warnings:?}"),
                )
            }
            ["statement", "rows"] => self.bounded(block),
            ["statement", "error", ..] => {
                let expected = head["statement error".len()..].trim();
                self.statement(block, Some(expected)).map(|_| ())
            }
            ["input", stream] => self.input(stream, "csv", block),
            ["input", stream, format] => self.input(stream, format, block),
            ["watermark", stream, time @ ..] => {
                let millis = parse_time(&time.join(" "))?;
                self.script
                    .advance_watermark(stream, millis)
                    .map_err(|e| e.to_string())
            }
            ["output", name] => self.output(name, block),
            ["bounded"] => {
                self.bounded = true;
                self.script.set_bounded_inputs();
                Ok(())
            }
            ["finish"] => {
                self.finished = true;
                self.script.finish().map_err(|e| e.to_string())
            }
            _ => Err(format!("unknown directive '{head}'")),
        }
    }

    /// Runs the statements of `block`; `Ok(true)` when they succeeded.
    fn statement(&mut self, block: &Block, expected_error: Option<&str>) -> Result<bool, String> {
        let sql = block.lines[1..].join("\n");
        self.statements.push(sql.clone());
        self.script.take_warnings();
        let result = parse_statements(&sql).and_then(|statements| {
            statements
                .iter()
                .try_for_each(|statement| self.script.execute(statement).map(|_| ()))
        });
        self.checks += 1;
        let placeholder = expected_error.is_some_and(str::is_empty) && self.completing();
        let (message, line) = match (&result, expected_error) {
            (Ok(()), None) => return Ok(true),
            (Err(error), None) => (
                format!("statement failed: {error}"),
                directive("statement error", &error.to_string()),
            ),
            (Ok(()), Some(expected)) => (
                format!("statement succeeded, expected an error containing '{expected}'"),
                "statement ok".to_string(),
            ),
            (Err(error), Some(expected))
                if error.to_string().contains(expected) && !placeholder =>
            {
                return Ok(false);
            }
            (Err(error), Some(expected)) => (
                format!("expected an error containing '{expected}', got '{error}'"),
                directive("statement error", &error.to_string()),
            ),
        };
        let span = block.spans[0].clone();
        self.differs(Correction::Directive { span, line }, message)?;
        Ok(result.is_ok())
    }

    fn bounded(&mut self, block: &Block) -> Result<(), String> {
        let body = &block.lines[1..];
        let split = body.iter().position(|line| line == "----");
        let sql_end = match split {
            Some(split) => split,
            None if self.completing() => body.len(),
            None => return Err("'statement rows' needs '----' before the expected rows".into()),
        };
        let sql = body[..sql_end].join("\n");
        self.statements.push(sql.clone());
        let statements = parse_statements(&sql).map_err(|e| e.to_string())?;
        let [statement] = statements.as_slice() else {
            return Err("'statement rows' takes one statement".into());
        };
        let outcome = self.script.execute(statement).map_err(|e| e.to_string())?;
        let Outcome::Rows(rows) = outcome else {
            return Err(format!("expected rows, the statement answered '{outcome}'"));
        };
        let mut buffer = Vec::new();
        datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buffer)
            .write(&rows)
            .map_err(|e| e.to_string())?;
        let actual = String::from_utf8(buffer).map_err(|e| e.to_string())?;
        let mut expected = body[(sql_end + 1).min(body.len())..].join("\n");
        expected.push('\n');
        self.checks += 1;
        if split.is_some() && actual == expected {
            return Ok(());
        }
        let correction = match split {
            Some(split) => Correction::Expected {
                span: block.span_after(split + 1),
                lines: actual.lines().map(String::from).collect(),
            },
            None => Correction::Expected {
                span: block.span_after(body.len()),
                lines: std::iter::once("----")
                    .chain(actual.lines())
                    .map(String::from)
                    .collect(),
            },
        };
        self.differs(
            correction,
            format!("answer differs\nexpected:\n{expected}actual:\n{actual}"),
        )
    }

    fn input(&mut self, stream: &str, format: &str, block: &Block) -> Result<(), String> {
        let body = &block.lines[1..];
        let split = body.iter().position(|line| line == "----");
        let (data, expected_rejections) = match split {
            Some(index) => (&body[..index], &body[index + 1..]),
            None => (body, &body[body.len()..]),
        };
        let def = self.script.stream(stream).map_err(|e| e.to_string())?;
        let mut text = data.join("\n");
        text.push('\n');
        let format = match format {
            "csv" => FileFormat::Csv,
            "jsonl" => FileFormat::JsonLines,
            other => return Err(format!("unknown input format '{other}'")),
        };
        let mut reader = input::reader(text.as_bytes(), format, &def).map_err(|e| e.to_string())?;
        let mut rejected = Vec::new();
        let mut fed = 0;
        while let Some(decoded) = reader.next_batch().map_err(|e| e.to_string())? {
            rejected.extend(
                decoded
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.line, e.reason)),
            );
            // A restart falls between batches, never inside one: an updating aggregate emits
            // one change per group and batch, so splitting a batch would change its output.
            if self.cut.is_some_and(|cut| cut <= fed) {
                self.restart()?;
            }
            self.script
                .feed(stream, &decoded.rows)
                .map_err(|e| e.to_string())?;
            fed += decoded.rows.num_rows();
        }
        if self.cut.is_some() {
            self.restart()?;
        }
        if rejected != expected_rejections {
            let message = format!(
                "rejected rows differ\nexpected:\n{}\nactual:\n{}",
                expected_rejections.join("\n"),
                rejected.join("\n")
            );
            let mut lines = Vec::new();
            if !rejected.is_empty() {
                lines.push("----".to_string());
                lines.append(&mut rejected);
            }
            let last_data_line = split.unwrap_or(body.len());
            let span = block.span_after(last_data_line);
            self.differs(Correction::Expected { span, lines }, message)?;
        }
        if !expected_rejections.is_empty() {
            self.checks += 1;
        }
        Ok(())
    }

    /// Checkpoints the script and goes on with a fresh one that ran the same statements and
    /// restored the checkpoint.
    fn restart(&mut self) -> Result<(), String> {
        self.cut = None;
        self.collect()?;
        let checkpoint = self.script.checkpoint().map_err(|e| e.to_string())?;
        let mut fresh = Script::new();
        if self.bounded {
            fresh.set_bounded_inputs();
        }
        for sql in &self.statements {
            // Statements that failed the first time fail again, as expected.
            let _ = parse_statements(sql).and_then(|statements| {
                statements
                    .iter()
                    .try_for_each(|statement| fresh.execute(statement).map(|_| ()))
            });
        }
        fresh.take_warnings();
        fresh.drain().map_err(|e| e.to_string())?;
        fresh
            .restore(&checkpoint)
            .map_err(|e| format!("restore: {e}"))?;
        self.script = fresh;
        Ok(())
    }

    fn output(&mut self, name: &str, block: &Block) -> Result<(), String> {
        let body = &block.lines[1..];
        self.collect()?;
        let schema = self.schema_of(name)?;
        let header = csv_text(&schema, &[])?;
        let actual = format!("{header}{}", self.emitted.remove(name).unwrap_or_default());
        let mut expected = body.join("\n");
        expected.push('\n');
        self.checks += 1;
        if actual == expected {
            return Ok(());
        }
        let lines = actual.lines().map(String::from).collect();
        self.differs(
            Correction::Expected {
                span: block.span_after(0),
                lines,
            },
            format!("output '{name}' differs\nexpected:\n{expected}actual:\n{actual}"),
        )
    }

    fn completing(&self) -> bool {
        self.corrections.is_some()
    }

    /// Settles a block whose expectation differs from what it observed: a completion run
    /// records `correction`, any other run fails with `message`.
    fn differs(&mut self, correction: Correction, message: String) -> Result<(), String> {
        let Some(corrections) = &mut self.corrections else {
            return Err(message);
        };
        if let Correction::Expected { lines, .. } = &correction
            && let Some(reason) = rewrite::unwritable(lines)
        {
            return Err(format!("{message}\n{reason}"));
        }
        corrections.push(correction);
        Ok(())
    }

    /// Moves newly emitted results into `emitted`, as CSV lines.
    fn collect(&mut self) -> Result<(), String> {
        for (name, changes) in self.script.drain().map_err(|e| e.to_string())? {
            let schema = changes.rows.schema();
            let text = csv_text(&schema, std::slice::from_ref(&changes))?;
            let rows = text.split_once('\n').map_or("", |(_, rows)| rows);
            self.emitted.entry(name).or_default().push_str(rows);
        }
        Ok(())
    }

    fn schema_of(&self, name: &str) -> Result<SchemaRef, String> {
        let outputs = self.script.outputs();
        outputs
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.schema.clone())
            .ok_or_else(|| {
                let mut known = String::new();
                for output in outputs {
                    let _ = write!(known, " {}", output.name);
                }
                format!("no output named '{name}' (outputs:{known})")
            })
    }
}

/// Results as `sluice run` writes them to a CSV file: header, then rows.
fn csv_text(schema: &SchemaRef, changes: &[sluice_engine::Changes]) -> Result<String, String> {
    let mut buffer = Vec::new();
    let mut writer =
        ResultWriter::new(&mut buffer, OutputFormat::Csv, schema).map_err(|e| e.to_string())?;
    for batch in changes {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    String::from_utf8(buffer).map_err(|e| e.to_string())
}

/// `<kind> <text>`: a directive line expecting the first non-blank line of `message`.
fn directive(kind: &str, message: &str) -> String {
    match message.lines().map(str::trim).find(|line| !line.is_empty()) {
        Some(line) => format!("{kind} {line}"),
        None => kind.to_string(),
    }
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` as milliseconds since the epoch.
fn parse_time(text: &str) -> Result<Millis, String> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|time| time.and_utc().timestamp_millis())
        .map_err(|e| format!("bad time '{text}': {e}"))
}

#[cfg(test)]
mod tests;
