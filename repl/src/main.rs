//! The `sluice` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sluice_repl::run::{Format, RunArgs, run};

#[derive(Parser)]
#[command(name = "sluice", version, about = "Streaming SQL over event streams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a SQL script over input files and write each query's results.
    Run {
        /// The script: CREATE TABLE/STREAM, CREATE VIEW, SELECT, INSERT statements.
        script: PathBuf,
        /// Feed a file into a stream: NAME=PATH (.csv, .jsonl or .json). Repeatable.
        #[arg(long = "input", value_name = "NAME=PATH", value_parser = parse_input)]
        inputs: Vec<(String, PathBuf)>,
        /// Write each output to DIR/NAME.csv (or .jsonl) instead of stdout.
        #[arg(long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// Result format: csv or json for files; table (the default), csv or json for stdout.
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Stop at the first input row that does not fit its stream (exit code 1).
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Json,
    Table,
}

fn parse_input(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_ascii_lowercase(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got '{value}'")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            script,
            inputs,
            output,
            format,
            strict,
        } => {
            let args = RunArgs {
                script,
                inputs,
                output,
                format: format.map(|f| match f {
                    FormatArg::Csv => Format::Csv,
                    FormatArg::Json => Format::Json,
                    FormatArg::Table => Format::Table,
                }),
                strict,
            };
            match run(&args, &mut std::io::stderr()) {
                Ok(summary) => {
                    for (name, rows) in &summary.written {
                        eprintln!("{name}: {rows} row(s)");
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
