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
    run(text, None).map(|runner| runner.checks)
}

/// Runs the test file `text` and answers it with every expected result that differs from the
/// observed one, or is left empty, replaced by the observed one. Everything else is kept byte
/// for byte, so a file whose expectations all hold comes back unchanged. Fails as
/// [`run_test_file`] does on anything a correction cannot settle: an unknown directive, a
/// `statement rows` statement that fails, rows no `output` block checked.
pub fn complete_test_file(text: &str) -> Result<String, Failure> {
    let runner = run(text, Some(Vec::new()))?;
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

fn run(text: &str, corrections: Option<Vec<Correction>>) -> Result<Runner, Failure> {
    let mut runner = Runner {
        script: Script::new(),
        emitted: BTreeMap::new(),
        finished: false,
        checks: 0,
        corrections,
    };
    for block in blocks(text) {
        runner.run_block(&block).map_err(|message| Failure {
            line: block.line,
            message,
        })?;
    }
    let end = text.lines().count();
    let fail = |message| Failure { line: end, message };
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
        let statements =
            parse_statements(&body[..sql_end].join("\n")).map_err(|e| e.to_string())?;
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
        while let Some(decoded) = reader.next_batch().map_err(|e| e.to_string())? {
            rejected.extend(
                decoded
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.line, e.reason)),
            );
            self.script
                .feed(stream, &decoded.rows)
                .map_err(|e| e.to_string())?;
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
