//! `sluice run SCRIPT.sql [--input NAME=PATH]... [--output DIR] [--format csv|json|table]`
//!
//! Runs the script's statements in order, feeds the inputs (see [`crate::feed`]), then ends
//! all input so every pending result is emitted. Each output of the script is written to
//! `DIR/NAME.csv` (or `.jsonl`; `NAME.late.csv` for late rows, `NAME.errors.csv` for rows
//! the query could not compute, the name encoded as a file name) as results arrive, or,
//! without `--output`, printed to stdout at the end, one block per output headed by its
//! name. With `--output`, the input rows a stream rejected go to `DIR/STREAM.rejected.csv`
//! (file, line, reason) as well as to stderr.
//!
//! With `--checkpoint-dir CP` (and `--output`) the run keeps a checkpoint in `CP` (see
//! [`checkpoint`]) and, started again with the same script, inputs and directory, goes on
//! from it: the rows fed before are not fed again, the output files grow from where the
//! checkpoint left them. `--stop-after-rows N` stops once it has fed N more input rows (at
//! the end of the batch the N-th row is in, as a batch is fed whole), with a checkpoint;
//! without it the run feeds everything, ends the input and checkpoints at the end.

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
use sluice_kafka::options::KafkaOptions;
use sluice_kafka::rows::KafkaRows;
use sluice_kafka::sink::KafkaSink;
use sluice_log::file_name;
use sluice_sql::script::{OutputSource, ScriptOutput};
use sluice_sql::session::Outcome;
use sluice_sql::{Script, parse_statements};

use crate::CliError;
use crate::feed::{Event, Feed, InputFile, InputSource, Run};

pub mod checkpoint;

use checkpoint::{Position, RunIdentity};

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
    /// Where the run keeps its checkpoint and finds it when started again.
    pub checkpoint_dir: Option<PathBuf>,
    /// Stop (with a checkpoint) after feeding this many more input rows.
    pub stop_after_rows: Option<u64>,
}

/// Counts of what a run read and wrote.
#[derive(Debug, Default)]
pub struct Summary {
    /// Rejected rows per input path.
    pub rejected: BTreeMap<String, u64>,
    /// Rows written per output name, in output order.
    pub written: Vec<(String, u64)>,
    /// The input rows fed in all, when the run stopped before the end of its input.
    pub stopped_at: Option<u64>,
}

enum Sink {
    File(OutputFile),
    Stdout(Vec<Changes>),
    /// The rows inserted into a Kafka table, written to its topic.
    Kafka(Box<KafkaSink>),
}

/// A file of the output directory being written.
struct OutputFile {
    /// Its name in the output directory.
    name: String,
    writer: ResultWriter<BufWriter<File>>,
}

impl OutputFile {
    /// Flushes and syncs the file; gives its length.
    fn sync(&mut self) -> Result<u64, CliError> {
        self.writer.flush()?;
        let file = self.writer.get_ref().get_ref();
        let error = |source| CliError::Io {
            path: self.name.clone(),
            source,
        };
        file.sync_data().map_err(error)?;
        Ok(file.metadata().map_err(error)?.len())
    }
}

pub fn run(args: &RunArgs, stderr: &mut impl Write) -> Result<Summary, CliError> {
    let script_path = args.script.display().to_string();
    let sql = fs::read_to_string(&args.script).map_err(|source| CliError::Io {
        path: script_path.clone(),
        source,
    })?;
    let mut script = Script::new();
    script.set_bounded_inputs();
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

    let identity = RunIdentity {
        script: sql.clone(),
        inputs: args
            .inputs
            .iter()
            .map(|(stream, path)| format!("{stream}={}", path.display()))
            .collect(),
    };
    let mut position = Position::default();
    if let Some(directory) = &args.checkpoint_dir {
        if args.output.is_none() {
            return Err(CliError::Usage(
                "--checkpoint-dir needs --output: results written before a stop are kept there"
                    .into(),
            ));
        }
        if let Some(loaded) = checkpoint::load(directory, &identity, &mut script)? {
            position = loaded;
        }
        if position.finished {
            let _ = writeln!(
                stderr,
                "{}: the run is complete ({} input rows); nothing to do",
                directory.display(),
                position.rows_fed
            );
            return Ok(Summary::default());
        }
    } else if args.stop_after_rows.is_some() {
        return Err(CliError::Usage(
            "--stop-after-rows needs --checkpoint-dir, to go on from there later".into(),
        ));
    }
    let resumed: BTreeMap<String, u64> = position.files.iter().cloned().collect();

    let mut inputs = Vec::new();
    for (stream, path) in &args.inputs {
        inputs.push(InputFile {
            stream: script.stream(stream)?,
            source: InputSource::File(path.clone()),
        });
    }
    inputs.extend(kafka_inputs(&script, args)?);

    let mut sinks = open_sinks(&script, args, &resumed)?;
    let mut summary = Summary::default();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut feed = Feed::open(inputs)?;
    // Per stream, where its input's rejected rows are written (with --output).
    let mut rejected: BTreeMap<String, OutputFile> = BTreeMap::new();
    let mut to_skip = position.rows_fed;
    let mut left = args.stop_after_rows;
    while let Some(event) = feed.next_event()? {
        match event {
            Event::Rows(run) => {
                let Some(run) = skip(run, &mut to_skip) else {
                    continue;
                };
                // A run is fed whole: an updating aggregate emits one change per group and
                // batch, so stopping inside one would change what it writes.
                let rows = run.rows.num_rows() as u64;
                script.feed(&run.stream, &run.rows)?;
                deliver(&mut script, &mut sinks, &mut counts, args, &resumed)?;
                position.rows_fed += rows;
                if let Some(left) = &mut left {
                    *left = left.saturating_sub(rows);
                    if *left == 0 {
                        summary.stopped_at = Some(position.rows_fed);
                        break;
                    }
                }
            }
            Event::Rejected { .. } if to_skip > 0 => {}
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
                    let file = match rejected.entry(stream) {
                        Entry::Occupied(entry) => entry.into_mut(),
                        Entry::Vacant(entry) => {
                            let stem = format!("{}.rejected", file_name(entry.key()));
                            let file =
                                open_file(directory, &stem, args, &rejected_schema(), &resumed)?;
                            entry.insert(file)
                        }
                    };
                    file.writer.write(&rejected_row(&path, &error)?)?;
                }
                let seen = summary.rejected.entry(path.clone()).or_insert(0);
                *seen += 1;
                if *seen <= REPORTED_REJECTIONS {
                    let _ = writeln!(stderr, "{path}:{}: skipped: {}", error.line, error.reason);
                }
            }
        }
    }
    if summary.stopped_at.is_none() {
        script.finish()?;
        deliver(&mut script, &mut sinks, &mut counts, args, &resumed)?;
        position.finished = true;
    }

    position.files.clear();
    for output in script.outputs() {
        let Some(sink) = sinks.remove(&output.name) else {
            continue;
        };
        match sink {
            Sink::File(mut file) => {
                let length = file.sync()?;
                position.files.push((file.name, length));
            }
            Sink::Stdout(results) => print_block(&output.name, &output.schema, &results, args)?,
            Sink::Kafka(sink) => sink.flush().map_err(|source| CliError::Kafka {
                table: output.name.clone(),
                source,
            })?,
        }
        let rows = counts.get(&output.name).copied().unwrap_or(0);
        summary.written.push((output.name.clone(), rows));
    }
    for file in rejected.values_mut() {
        let length = file.sync()?;
        position.files.push((file.name.clone(), length));
    }
    // Files of streams whose rejections were all written by earlier runs keep their length.
    for (name, length) in &resumed {
        if !position.files.iter().any(|(written, _)| written == name) {
            position.files.push((name.clone(), *length));
        }
    }
    if let Some(directory) = &args.checkpoint_dir {
        checkpoint::save(directory, &identity, &position, &mut script)?;
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

/// What is left of `run` once `to_skip` rows (fed by an earlier run) are taken off.
fn skip(run: Run, to_skip: &mut u64) -> Option<Run> {
    let rows = run.rows.num_rows() as u64;
    if *to_skip >= rows {
        *to_skip -= rows;
        return None;
    }
    let skipped = std::mem::take(to_skip) as usize;
    Some(Run {
        stream: run.stream,
        rows: run.rows.slice(skipped, rows as usize - skipped),
    })
}

/// The Kafka tables of the script no `--input` names, each read to the end its
/// `'scan.bounded.mode'` fixes (an unbounded one would never let the run end).
fn kafka_inputs(script: &Script, args: &RunArgs) -> Result<Vec<InputFile>, CliError> {
    let mut inputs = Vec::new();
    for stream in script.session().engine().catalog().streams() {
        // A table given a file, or one the script inserts into (its topic is the run's
        // output), is not read from Kafka.
        let written = script
            .outputs()
            .iter()
            .any(|o| o.source == OutputSource::Sink && o.name == stream.name);
        if written
            || args
                .inputs
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(&stream.name))
        {
            continue;
        }
        let kafka = |source: sluice_kafka::KafkaError| CliError::Kafka {
            table: stream.name.clone(),
            source,
        };
        let Some(options) = KafkaOptions::parse(&stream.options).map_err(kafka)? else {
            continue;
        };
        if args.checkpoint_dir.is_some() {
            return Err(CliError::Usage(format!(
                "Kafka table '{}': --checkpoint-dir does not yet keep Kafka offsets, so a \
                 resumed run could read other records; run without it",
                stream.name
            )));
        }
        if options.bounded.is_none() {
            return Err(CliError::Usage(format!(
                "Kafka table '{}' is unbounded: `sluice run` reads its inputs to their end, \
                 so give it 'scan.bounded.mode' (e.g. 'latest-offset', the end when the run \
                 starts), or a file with --input",
                stream.name
            )));
        }
        let reader = KafkaRows::open(Arc::clone(stream), &options).map_err(kafka)?;
        inputs.push(InputFile {
            stream: Arc::clone(stream),
            source: InputSource::Reader {
                name: format!("kafka topic '{}'", options.topic),
                reader: Box::new(reader),
            },
        });
    }
    Ok(inputs)
}

/// The Kafka options of the table `output` inserts into, if it is one.
fn kafka_target(script: &Script, output: &ScriptOutput) -> Result<Option<KafkaOptions>, CliError> {
    if output.source != OutputSource::Sink {
        return Ok(None);
    }
    let Some(stream) = script.session().engine().catalog().get(&output.name) else {
        return Ok(None);
    };
    KafkaOptions::parse(&stream.options).map_err(|source| CliError::Kafka {
        table: output.name.clone(),
        source,
    })
}

fn open_sinks(
    script: &Script,
    args: &RunArgs,
    resumed: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, Sink>, CliError> {
    let mut sinks = BTreeMap::new();
    if let Some(directory) = &args.output {
        fs::create_dir_all(directory).map_err(|source| CliError::Io {
            path: directory.display().to_string(),
            source,
        })?;
    }
    for output in script.outputs() {
        sinks.insert(
            output.name.clone(),
            open_sink(script, output, args, resumed)?,
        );
    }
    Ok(sinks)
}

/// Where `output`'s rows go: a file in the output directory, or stdout at the end.
fn open_sink(
    script: &Script,
    output: &ScriptOutput,
    args: &RunArgs,
    resumed: &BTreeMap<String, u64>,
) -> Result<Sink, CliError> {
    if let Some(options) = kafka_target(script, output)? {
        if args.checkpoint_dir.is_some() {
            return Err(CliError::Usage(format!(
                "Kafka table '{}': --checkpoint-dir cannot yet take back records written to \
                 Kafka after a checkpoint; run without it",
                output.name
            )));
        }
        let sink = KafkaSink::open(&output.name, &options, output.updating).map_err(|source| {
            CliError::Kafka {
                table: output.name.clone(),
                source,
            }
        })?;
        return Ok(Sink::Kafka(Box::new(sink)));
    }
    let Some(directory) = &args.output else {
        return Ok(Sink::Stdout(Vec::new()));
    };
    let file = open_file(directory, &file_stem(output), args, &output.schema, resumed)?;
    Ok(Sink::File(file))
}

/// `DIR/STEM.csv` (or `.jsonl`), written in the format `--format` asks for; a file an
/// earlier run of the same checkpoint wrote goes on from the length `resumed` gives it.
fn open_file(
    directory: &std::path::Path,
    stem: &str,
    args: &RunArgs,
    schema: &SchemaRef,
    resumed: &BTreeMap<String, u64>,
) -> Result<OutputFile, CliError> {
    let format = match args.format {
        None | Some(Format::Csv) => OutputFormat::Csv,
        Some(Format::Json) => OutputFormat::JsonLines,
        Some(Format::Table) => {
            return Err(CliError::Usage(
                "--format table prints to stdout; use csv or json with --output".into(),
            ));
        }
    };
    let name = format!("{stem}.{}", format.extension());
    let path = directory.join(&name);
    if let Some(file) = checkpoint::reopen(&path, resumed.get(&name).copied())? {
        let writer = ResultWriter::appending(BufWriter::new(file), format);
        return Ok(OutputFile { name, writer });
    }
    let file = File::create(&path).map_err(|source| CliError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let writer = ResultWriter::new(BufWriter::new(file), format, schema)?;
    Ok(OutputFile { name, writer })
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
    resumed: &BTreeMap<String, u64>,
) -> Result<(), CliError> {
    for (name, changes) in script.drain()? {
        *counts.entry(name.clone()).or_insert(0) += changes.num_rows() as u64;
        if !sinks.contains_key(&name)
            && let Some(output) = script.outputs().iter().find(|o| o.name == name)
        {
            // An output that came after the start: an error output.
            sinks.insert(name.clone(), open_sink(script, output, args, resumed)?);
        }
        match sinks.get_mut(&name) {
            Some(Sink::File(file)) => file.writer.write(&changes)?,
            Some(Sink::Stdout(results)) => results.push(changes),
            Some(Sink::Kafka(sink)) => sink.write(&changes).map_err(|source| CliError::Kafka {
                table: name.clone(),
                source,
            })?,
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
