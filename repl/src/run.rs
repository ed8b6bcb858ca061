//! `sluice run SCRIPT.sql [--input NAME=PATH]... [--output DIR] [--format csv|json|table]`
//!
//! Runs the script's statements in order, feeds the inputs (see [`crate::feed`]), then ends
//! all input so every pending result is emitted. Each output of the script is written to
//! `DIR/NAME.csv` (or `.jsonl`; `NAME.late.csv` for late rows, `NAME.errors.csv` for rows
//! the query could not compute, the name encoded as a file name) as results arrive, or,
//! without `--output`, printed to stdout at the end, one block per output headed by its
//! name. With `--output`, the input rows a stream rejected go to `DIR/STREAM.rejected.csv`
//! (file, line, reason) as well as to stderr.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_engine::Changes;
use sluice_engine::input::RowError;
use sluice_engine::output::{OutputFormat, ResultWriter, format_table};
use sluice_log::file_name;
use sluice_sql::script::{OutputSource, ScriptOutput};
use sluice_sql::session::Outcome;
use sluice_sql::{Script, parse_statements};

use crate::CliError;
use crate::feed::{Event, Feed, InputFile};

/// Rejected rows reported one by one per input file; the rest are only counted.
const REPORTED_REJECTIONS: u64 = 20;

/// How results are presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    /// Aligned tables; stdout only.
    Table,
}

pub struct RunArgs {
    pub script: PathBuf,
    /// `(stream, path)` pairs, in command-line order.
    pub inputs: Vec<(String, PathBuf)>,
    pub output: Option<PathBuf>,
    /// Defaults to CSV for files and tables for stdout.
    pub format: Option<Format>,
    pub strict: bool,
}

/// Counts of what a run read and wrote.
#[derive(Debug, Default)]
pub struct Summary {
    /// Rejected rows per input path.
    pub rejected: BTreeMap<String, u64>,
    /// Rows written per output name, in output order.
    pub written: Vec<(String, u64)>,
}

enum Sink {
    File(ResultWriter<BufWriter<File>>),
    Stdout(Vec<Changes>),
}

pub fn run(args: &RunArgs, stderr: &mut impl Write) -> Result<Summary, CliError> {
    let script_path = args.script.display().to_string();
    let sql = fs::read_to_string(&args.script).map_err(|source| CliError::Io {
        path: script_path.clone(),
        source,
    })?;
    let mut script = Script::new();
    for statement in parse_statements(&sql).map_err(|source| CliError::Statement {
        location: script_path.clone(),
        source,
    })? {
        let outcome = script
            .execute(&statement)
            .map_err(|source| CliError::Statement {
                location: format!("{script_path}:{}", statement.line),
                source,
            })?;
        for warning in script.take_warnings() {
            let _ = writeln!(
                stderr,
                "warning: {script_path}:{}: {warning}",
                statement.line
            );
        }
        if let Outcome::Rows(rows) = outcome {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(&[rows])
                .map_err(sluice_engine::EngineError::from)?;
            println!("{table}");
        }
    }
    script.stop_retaining_history();

    let mut inputs = Vec::new();
    for (stream, path) in &args.inputs {
        inputs.push(InputFile {
            stream: script.stream(stream)?,
            path: path.clone(),
        });
    }

    let mut sinks = open_sinks(&script, args)?;
    let mut summary = Summary::default();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut feed = Feed::open(inputs)?;
    // Per stream, where its input's rejected rows are written (with --output).
    let mut rejected: BTreeMap<String, ResultWriter<BufWriter<File>>> = BTreeMap::new();
    while let Some(event) = feed.next_event()? {
        match event {
            Event::Rows(run) => {
                script.feed(&run.stream, &run.rows)?;
                deliver(&mut script, &mut sinks, &mut counts, args)?;
            }
            Event::Rejected {
                stream,
                path,
                error,
            } => {
                if args.strict {
                    return Err(CliError::BadRow {
                        path,
                        line: error.line,
                        reason: error.reason,
                    });
                }
                if let Some(directory) = &args.output {
                    let writer = match rejected.entry(stream) {
                        Entry::Occupied(entry) => entry.into_mut(),
                        Entry::Vacant(entry) => {
                            let stem = format!("{}.rejected", file_name(entry.key()));
                            let writer = open_file(directory, &stem, args, &rejected_schema())?;
                            entry.insert(writer)
                        }
                    };
                    writer.write(&rejected_row(&path, &error)?)?;
                }
                let seen = summary.rejected.entry(path.clone()).or_insert(0);
                *seen += 1;
                if *seen <= REPORTED_REJECTIONS {
                    let _ = writeln!(stderr, "{path}:{}: skipped: {}", error.line, error.reason);
                }
            }
        }
    }
    script.finish()?;
    deliver(&mut script, &mut sinks, &mut counts, args)?;

    for output in script.outputs() {
        let Some(sink) = sinks.remove(&output.name) else {
            continue;
        };
        match sink {
            Sink::File(mut writer) => writer.flush()?,
            Sink::Stdout(results) => print_block(&output.name, &output.schema, &results, args)?,
        }
        let rows = counts.get(&output.name).copied().unwrap_or(0);
        summary.written.push((output.name.clone(), rows));
    }
    for writer in rejected.values_mut() {
        writer.flush()?;
    }
    for (path, rejected) in &summary.rejected {
        let _ = writeln!(stderr, "{path}: skipped {rejected} bad row(s)");
    }
    for output in script.outputs() {
        let rows = counts.get(&output.name).copied().unwrap_or(0);
        match &output.source {
            OutputSource::Late { of } if rows > 0 => {
                let _ = writeln!(
                    stderr,
                    "{of}: {rows} late row(s), written to {}",
                    output.name
                );
            }
            OutputSource::Errors { of } => {
                let _ = writeln!(
                    stderr,
                    "{of}: {rows} row(s) could not be computed, written to {}",
                    output.name
                );
            }
            _ => {}
        }
    }
    Ok(summary)
}

fn open_sinks(script: &Script, args: &RunArgs) -> Result<BTreeMap<String, Sink>, CliError> {
    let mut sinks = BTreeMap::new();
    if let Some(directory) = &args.output {
        fs::create_dir_all(directory).map_err(|source| CliError::Io {
            path: directory.display().to_string(),
            source,
        })?;
    }
    for output in script.outputs() {
        sinks.insert(output.name.clone(), open_sink(output, args)?);
    }
    Ok(sinks)
}

/// Where `output`'s rows go: a file in the output directory, or stdout at the end.
fn open_sink(output: &ScriptOutput, args: &RunArgs) -> Result<Sink, CliError> {
    let Some(directory) = &args.output else {
        return Ok(Sink::Stdout(Vec::new()));
    };
    let writer = open_file(directory, &file_stem(output), args, &output.schema)?;
    Ok(Sink::File(writer))
}

/// `DIR/STEM.csv` (or `.jsonl`), written in the format `--format` asks for.
fn open_file(
    directory: &std::path::Path,
    stem: &str,
    args: &RunArgs,
    schema: &SchemaRef,
) -> Result<ResultWriter<BufWriter<File>>, CliError> {
    let format = match args.format {
        None | Some(Format::Csv) => OutputFormat::Csv,
        Some(Format::Json) => OutputFormat::JsonLines,
        Some(Format::Table) => {
            return Err(CliError::Usage(
                "--format table prints to stdout; use csv or json with --output".into(),
            ));
        }
    };
    let path = directory.join(format!("{stem}.{}", format.extension()));
    let file = File::create(&path).map_err(|source| CliError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(ResultWriter::new(BufWriter::new(file), format, schema)?)
}

/// The columns of `DIR/STREAM.rejected.csv`: each rejected input row's file, line and reason.
fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// A rejected input row as a row of [`rejected_schema`].
fn rejected_row(path: &str, error: &RowError) -> Result<Changes, CliError> {
    let rows = RecordBatch::try_new(
        rejected_schema(),
        vec![
            Arc::new(StringArray::from(vec![path])),
            Arc::new(UInt64Array::from(vec![error.line])),
            Arc::new(StringArray::from(vec![error.reason.as_str()])),
        ],
    )
    .map_err(sluice_engine::EngineError::from)?;
    Ok(Changes::inserts(rows))
}

/// An output's file name without its extension: the name as a file name
/// ([`sluice_log::file_name`]), and `.late` after the name of the output whose late rows it
/// holds. The encoding leaves no `.` in a name, so no two outputs share a file.
fn file_stem(output: &ScriptOutput) -> String {
    match &output.source {
        OutputSource::Late { of } => format!("{}.late", file_name(of)),
        OutputSource::Errors { of } => format!("{}.errors", file_name(of)),
        _ => file_name(&output.name),
    }
}

fn deliver(
    script: &mut Script,
    sinks: &mut BTreeMap<String, Sink>,
    counts: &mut BTreeMap<String, u64>,
    args: &RunArgs,
) -> Result<(), CliError> {
    for (name, changes) in script.drain()? {
        *counts.entry(name.clone()).or_insert(0) += changes.num_rows() as u64;
        if !sinks.contains_key(&name)
            && let Some(output) = script.outputs().iter().find(|o| o.name == name)
        {
            // An output that came after the start: an error output.
            sinks.insert(name.clone(), open_sink(output, args)?);
        }
        match sinks.get_mut(&name) {
            Some(Sink::File(writer)) => writer.write(&changes)?,
            Some(Sink::Stdout(results)) => results.push(changes),
            None => {}
        }
    }
    Ok(())
}

fn print_block(
    name: &str,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    results: &[Changes],
    args: &RunArgs,
) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io_error = |source| CliError::Io {
        path: "stdout".into(),
        source,
    };
    writeln!(out, "-- {name}").map_err(io_error)?;
    match args.format.unwrap_or(Format::Table) {
        Format::Table => {
            writeln!(out, "{}", format_table(schema, results)?).map_err(io_error)?;
        }
        format => {
            let format = if format == Format::Json {
                OutputFormat::JsonLines
            } else {
                OutputFormat::Csv
            };
            let mut writer = ResultWriter::new(&mut out, format, schema)?;
            for changes in results {
                writer.write(changes)?;
            }
            writer.flush()?;
        }
    }
    Ok(())
}
