//! The `sluice` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use std::time::Duration;

use sluice_engine::limits::with_planning_stack;
use sluice_log::LogConfig;
use sluice_repl::run::{Format, RunArgs, run};
use sluice_repl::shell::demo::DemoArgs;
use sluice_repl::shell::{self, Target, TlsTrust};
use sluice_server::{Durability, ServeConfig, serve};

/// mimalloc rather than the system's allocator: batches of megabytes are made and dropped
/// all the time, and the system's allocator gives them back and faults them in again (see
/// the alerts section of docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sluice", version, about = "Streaming SQL over event streams")]
struct Cli {
    /// What to do; with none, the interactive shell opens on the embedded engine.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Args)]
struct ReplArgs {
    /// Where the embedded engine keeps its data.
    #[arg(long, value_name = "DIR", default_value = "sluice-data")]
    data_dir: PathBuf,
    /// Keep the data in a throwaway directory instead.
    #[arg(long, conflicts_with = "data_dir")]
    memory: bool,
    /// Drive a running `sluice serve` at HOST:PORT instead of an embedded engine.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["memory"])]
    connect: Option<String>,
    /// The server's token (with --connect).
    #[arg(long, env = "SLUICE_TOKEN", requires = "connect")]
    token: Option<String>,
    /// Connect over TLS, trusting the system's certificate authorities (with --connect).
    #[arg(long, requires = "connect")]
    tls: bool,
    /// Connect over TLS, trusting the certificates in this PEM file (with --connect).
    #[arg(long, value_name = "FILE", requires = "connect")]
    tls_ca: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// The interactive shell: SQL at a prompt, standing queries' rows live above it.
    Repl(ReplArgs),
    /// Generated card transactions and listings through the queries of queries/demo/.
    Demo {
        /// Stop after this many seconds (by default, run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
        /// Transactions published per second.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Minutes of event time per second.
        #[arg(long, default_value_t = 1)]
        speed: u64,
        /// Write a sample of the events as CSV files in DIR instead.
        #[arg(long, value_name = "DIR")]
        sample: Option<PathBuf>,
    },
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
        /// Keep a checkpoint in DIR, and go on from the one there (needs --output).
        #[arg(long, value_name = "DIR")]
        checkpoint_dir: Option<PathBuf>,
        /// Stop, with a checkpoint, once N more input rows are fed (at the end of the batch the
        /// N-th row is in); needs --checkpoint-dir.
        #[arg(long, value_name = "N")]
        stop_after_rows: Option<u64>,
    },
    /// Serve the TCP line protocol (docs/protocol.md): publish, query, subscribe.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: std::net::SocketAddr,
        /// Where the logs and the catalog are kept.
        #[arg(long, value_name = "DIR", default_value = "sluice-data")]
        data_dir: PathBuf,
        /// A shared secret clients must send first ({"op":"auth","token":...}).
        #[arg(long, env = "SLUICE_TOKEN")]
        token: Option<String>,
        /// The longest request line accepted, in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        max_line_bytes: usize,
        /// The most clients connected at once.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// When publishes are made durable before they are acknowledged.
        #[arg(long, value_enum, default_value = "batch")]
        fsync: FsyncArg,
        /// With --fsync interval: the longest time between syncs.
        #[arg(long, default_value_t = 10)]
        fsync_interval_ms: u64,
        /// Delete a partition's oldest segments while it holds more than this many bytes.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Delete a partition's segments once their last append is this many seconds old.
        #[arg(long)]
        retention_seconds: Option<i64>,
        /// Start a new segment file once a partition's current one would pass this size.
        #[arg(long, default_value_t = 64 << 20)]
        segment_bytes: u64,
        /// Speak TLS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Checkpoint the queries' state this often, in seconds (also on a clean stop);
        /// 0 never does, and a restart then replays all retained input.
        #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
        checkpoint_interval: f64,
        /// Save a checkpoint's state in the server's process, pausing ingest for the whole
        /// save, rather than in a forked child that pauses it only for the fork (which can
        /// need up to twice the state's memory while ingest rewrites the state).
        #[arg(long)]
        checkpoint_in_process: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FsyncArg {
    /// Sync each group of waiting publishes before acknowledging them.
    Batch,
    /// Sync at most every --fsync-interval-ms; acknowledge after the sync.
    Interval,
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
    // Statements are planned on this thread: give it room for the deepest one accepted.
    match with_planning_stack(run_command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: no thread to run on: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_command() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Repl(ReplArgs {
        data_dir: PathBuf::from("sluice-data"),
        memory: false,
        connect: None,
        token: std::env::var("SLUICE_TOKEN").ok(),
        tls: false,
        tls_ca: None,
    }));
    match command {
        Command::Repl(args) => {
            let target = match args.connect {
                Some(address) => Target::Remote {
                    address,
                    token: args.token,
                    tls: match (args.tls_ca, args.tls) {
                        (Some(file), _) => Some(TlsTrust::File(file)),
                        (None, true) => Some(TlsTrust::System),
                        (None, false) => None,
                    },
                },
                None if args.memory => Target::Embedded(None),
                None => Target::Embedded(Some(args.data_dir)),
            };
            match shell::run(target) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("sluice: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            seconds,
            rate,
            speed,
            sample,
        } => {
            let args = DemoArgs {
                seconds,
                rate,
                speed,
                sample,
            };
            match shell::demo::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("sluice: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve {
            listen,
            data_dir,
            token,
            max_line_bytes,
            max_connections,
            fsync,
            fsync_interval_ms,
            retention_bytes,
            retention_seconds,
            segment_bytes,
            tls_cert,
            tls_key,
            checkpoint_interval,
            checkpoint_in_process,
        } => {
            let checkpoint_interval = match checkpoint_interval {
                0.0 => None,
                seconds => match Duration::try_from_secs_f64(seconds) {
                    Ok(interval) => Some(interval),
                    Err(_) => {
                        eprintln!(
                            "error: --checkpoint-interval {seconds}: not a number of seconds"
                        );
                        return ExitCode::FAILURE;
                    }
                },
            };
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => match sluice_server::tls::server_config(&cert, &key) {
                    Ok(tls) => Some(tls),
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::FAILURE;
                    }
                },
                _ => None,
            };
            let config = ServeConfig {
                listen,
                data_dir,
                token,
                max_line_bytes,
                max_connections,
                durability: match fsync {
                    FsyncArg::Batch => Durability::EveryBatch,
                    FsyncArg::Interval => {
                        Durability::Interval(Duration::from_millis(fsync_interval_ms))
                    }
                },
                log: LogConfig {
                    retention_bytes,
                    retention_age: retention_seconds.map(|s| s.saturating_mul(1000)),
                    segment_bytes,
                },
                tls,
                checkpoint_interval,
                checkpoint_in_child: !checkpoint_in_process,
                stop_on_signal: true,
            };
            let ready = |address| eprintln!("sluice: listening on {address}");
            match serve(config, ready) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            script,
            inputs,
            output,
            format,
            strict,
            checkpoint_dir,
            stop_after_rows,
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
                checkpoint_dir,
                stop_after_rows,
            };
            match run(&args, &mut std::io::stderr()) {
                Ok(summary) => {
                    for (name, rows) in &summary.written {
                        eprintln!("{name}: {rows} row(s)");
                    }
                    if let Some(rows) = summary.stopped_at {
                        eprintln!("stopped after {rows} input row(s), with a checkpoint");
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
