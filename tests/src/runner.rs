//! Runs a test file block by block against a script, checking each block's expectation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use datafusion::arrow::datatypes::SchemaRef;
use sluice_engine::input::{self, FileFormat};
use sluice_engine::output::{OutputFormat, ResultWriter};
use sluice_engine::time::Millis;
use sluice_sql::{Outcome, Script, parse_statements};

use crate::blocks::{Block, blocks};

/// A failed expectation, with the file line of the block that failed.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Failure {
    pub line: usize,
    pub message: String,
}

/// Runs the test file `text`; `Ok` with the number of checks that passed.
pub fn run_test_file(text: &str) -> Result<usize, Failure> {
    let mut runner = Runner {
        script: Script::new(),
        emitted: BTreeMap::new(),
        finished: false,
        checks: 0,
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
    Ok(runner.checks)
}

struct Runner {
    script: Script,
    /// CSV rows (no header) each output emitted and no block checked yet.
    emitted: BTreeMap<String, String>,
    finished: bool,
    checks: usize,
}

impl Runner {
    fn run_block(&mut self, block: &Block) -> Result<(), String> {
        let head = block.lines[0].trim();
        let body = &block.lines[1..];
        let words: Vec<&str> = head.split_whitespace().collect();
        match words.as_slice() {
            ["statement", "ok"] => self.statement(body, None),
            ["statement", "warning", ..] => {
                let expected = head["statement warning".len()..].trim();
                self.statement(body, None)?;
                let warnings = self.script.take_warnings();
                if warnings.iter().any(|w| w.contains(expected)) {
                    return Ok(());
                }
                Err(format!(
                    "expected a warning containing '{expected}', got {warnings:?}"
                ))
            }
            ["statement", "rows"] => self.bounded(body),
            ["statement", "error", ..] => {
                let expected = head["statement error".len()..].trim();
                self.statement(body, Some(expected))
            }
            ["input", stream] => self.input(stream, "csv", body),
            ["input", stream, format] => self.input(stream, format, body),
            ["watermark", stream, time @ ..] => {
                let millis = parse_time(&time.join(" "))?;
                self.script
                    .advance_watermark(stream, millis)
                    .map_err(|e| e.to_string())
            }
            ["output", name] => self.output(name, body),
            ["finish"] => {
                self.finished = true;
                self.script.finish().map_err(|e| e.to_string())
            }
            _ => Err(format!("unknown directive '{head}'")),
        }
    }

    fn statement(&mut self, body: &[String], expected_error: Option<&str>) -> Result<(), String> {
        let sql = body.join("\n");
        self.script.take_warnings();
        let result = parse_statements(&sql).and_then(|statements| {
            statements
                .iter()
                .try_for_each(|statement| self.script.execute(statement).map(|_| ()))
        });
        self.checks += 1;
        match (result, expected_error) {
            (Ok(()), None) => Ok(()),
            (Err(error), None) => Err(format!("statement failed: {error}")),
            (Ok(()), Some(expected)) => Err(format!(
                "statement succeeded, expected an error containing '{expected}'"
            )),
            (Err(error), Some(expected)) if error.to_string().contains(expected) => Ok(()),
            (Err(error), Some(expected)) => Err(format!(
                "expected an error containing '{expected}', got '{error}'"
            )),
        }
    }

    fn bounded(&mut self, body: &[String]) -> Result<(), String> {
        let split = body
            .iter()
            .position(|line| line == "----")
            .ok_or("'statement rows' needs '----' before the expected rows")?;
        let statements = parse_statements(&body[..split].join("\n")).map_err(|e| e.to_string())?;
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
        let mut expected = body[split + 1..].join("\n");
        expected.push('\n');
        self.checks += 1;
        if actual == expected {
            return Ok(());
        }
        Err(format!(
            "answer differs\nexpected:\n{expected}actual:\n{actual}"
        ))
    }

    fn input(&mut self, stream: &str, format: &str, body: &[String]) -> Result<(), String> {
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
            return Err(format!(
                "rejected rows differ\nexpected:\n{}\nactual:\n{}",
                expected_rejections.join("\n"),
                rejected.join("\n")
            ));
        }
        if !expected_rejections.is_empty() {
            self.checks += 1;
        }
        Ok(())
    }

    fn output(&mut self, name: &str, body: &[String]) -> Result<(), String> {
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
        Err(format!(
            "output '{name}' differs\nexpected:\n{expected}actual:\n{actual}"
        ))
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

/// `YYYY-MM-DD HH:MM:SS[.fff]` as milliseconds since the epoch.
fn parse_time(text: &str) -> Result<Millis, String> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|time| time.and_utc().timestamp_millis())
        .map_err(|e| format!("bad time '{text}': {e}"))
}
