//! The interactive shell: SQL and backslash commands at a rustyline prompt, with standing
//! queries' results printed live above it.
//!
//! The shell is a client of the line protocol (`docs/protocol.md`): it drives a server
//! started in the same process on a loopback port (the embedded engine, data in
//! `./sluice-data`, `--data-dir`, or a throwaway directory with `--memory`), or a running
//! `sluice serve` (`--connect`). A `SELECT` typed at the prompt is registered as a standing
//! query (`q1`, `q2`, ...) and subscribed to; its rows are printed as they come, marked with
//! their op, while typing goes on. Ctrl-C cancels the foreground query, `\bg` mutes it,
//! `\fg NAME` shows a query's rows again; Ctrl-D leaves.

mod client;
mod commands;
mod complete;
pub mod demo;
mod display;
mod embedded;
mod error;
mod generator;
mod statements;
mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Editor, ExternalPrinter};
use serde_json::Value;
use sluice_server::protocol::{
    Cancel, List, ListReply, Pushed, Register, Sql, Start, Subscribe, Unsubscribe,
};

use self::client::{Client, PushedLine};
use self::complete::ShellHelper;
pub use self::error::ShellError;
pub use self::transport::TlsTrust;

/// Where the shell's engine is.
pub enum Target {
    /// An engine in this process, its data in the directory (a throwaway one when `None`).
    Embedded(Option<PathBuf>),
    /// A running `sluice serve`.
    Remote {
        address: String,
        token: Option<String>,
        /// Over TLS, trusting these certificates.
        tls: Option<TlsTrust>,
    },
}

/// A subscription whose rows the shell shows.
struct Shown {
    name: String,
    muted: bool,
    /// Rows before this offset are not shown (those that came while it was muted).
    show_from: u64,
}

/// What the reader thread needs to show pushed rows.
struct Screen {
    shown: BTreeMap<u64, Shown>,
    print: Box<dyn FnMut(String) + Send>,
}

impl Screen {
    fn show(&mut self, pushed: Vec<PushedLine>) {
        let mut runs: Vec<(u64, Vec<PushedLine>)> = Vec::new();
        for line in pushed {
            let id = line.pushed.subscription();
            match runs.last_mut() {
                Some((last, run)) if *last == id => run.push(line),
                _ => runs.push((id, vec![line])),
            }
        }
        for (id, run) in runs {
            let Some(shown) = self.shown.get(&id) else {
                continue;
            };
            if shown.muted {
                continue;
            }
            let name = shown.name.clone();
            let show_from = shown.show_from;
            let mut columns = None;
            let mut rows = Vec::new();
            for line in run {
                match line.pushed {
                    Pushed::Row { offset, row, .. } => {
                        if offset >= show_from {
                            columns.get_or_insert(line.columns);
                            rows.push(Value::Object(row));
                        }
                    }
                    Pushed::Warning { warning: text, .. } | Pushed::Error { error: text, .. } => {
                        (self.print)(format!("{name}: {text}"));
                    }
                }
            }
            if let Some(columns) = columns {
                let values: Vec<&Value> = rows.iter().collect();
                (self.print)(format!("{name}:\n{}", display::table(&columns, &values)));
            }
        }
    }
}

/// Connects to the server; pushed rows are shown on a screen that `print`s them.
fn connect(
    address: &str,
    token: Option<&str>,
    tls: Option<&TlsTrust>,
    print: Box<dyn FnMut(String) + Send>,
) -> Result<(Client, Arc<Mutex<Screen>>), ShellError> {
    let screen = Arc::new(Mutex::new(Screen {
        shown: BTreeMap::new(),
        print,
    }));
    // Rows are shown by a thread of their own, so the reader never waits for the screen.
    let (rows, to_show) = std::sync::mpsc::channel::<Vec<PushedLine>>();
    let shown_by = Arc::clone(&screen);
    std::thread::spawn(move || {
        while let Ok(pushed) = to_show.recv() {
            if let Ok(mut screen) = shown_by.lock() {
                screen.show(pushed);
            }
        }
    });
    let client = Client::connect(address, token, tls, move |pushed| {
        let _ = rows.send(pushed);
    })?;
    Ok((client, screen))
}

/// Subscribes with `request` and shows the rows under `name`; gives the subscription.
fn follow(
    client: &mut Client,
    screen: &Mutex<Screen>,
    request: Subscribe,
    name: &str,
) -> Result<u64, ShellError> {
    // The screen learns of the subscription before any of its rows is shown: its rows
    // follow the reply, and are shown once the screen is free.
    let mut screen = screen
        .lock()
        .map_err(|_| ShellError::Usage("the screen is unavailable".into()))?;
    let id = client.request(request)?.subscription;
    screen.shown.insert(
        id,
        Shown {
            name: name.to_string(),
            muted: false,
            show_from: 0,
        },
    );
    Ok(id)
}

/// The shell's state between lines.
pub struct Shell {
    client: Client,
    screen: Arc<Mutex<Screen>>,
    names: Arc<Mutex<Vec<String>>>,
    /// The query whose rows show and which Ctrl-C cancels: name and subscription.
    foreground: Option<(String, u64)>,
    /// Queries started at the prompt so far.
    started: usize,
    /// Results counted at the last `\list`, per query, and when.
    last_list: (std::time::Instant, BTreeMap<String, u64>),
}

/// Runs the shell until Ctrl-D or `\quit`.
pub fn run(target: Target) -> Result<(), ShellError> {
    let (address, token, tls, _embedded) = match target {
        Target::Remote {
            address,
            token,
            tls,
        } => (address, token, tls, None),
        Target::Embedded(dir) => {
            let engine = embedded::start(dir)?;
            (
                engine.address.clone(),
                Some(engine.token.clone()),
                None,
                Some(engine),
            )
        }
    };
    let mut editor: Editor<ShellHelper, DefaultHistory> = Editor::new()?;
    let names = Arc::new(Mutex::new(Vec::new()));
    editor.set_helper(Some(ShellHelper {
        names: Arc::clone(&names),
    }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let print: Box<dyn FnMut(String) + Send> = match editor.create_external_printer() {
        Ok(mut printer) => Box::new(move |text| {
            let _ = printer.print(format!("{text}\n"));
        }),
        Err(_) => Box::new(|text| println!("{text}")),
    };
    let (client, screen) = connect(&address, token.as_deref(), tls.as_ref(), print)?;
    let mut shell = Shell {
        client,
        screen,
        names,
        foreground: None,
        started: 0,
        last_list: (std::time::Instant::now(), BTreeMap::new()),
    };
    shell.refresh_names();
    println!(
        "sluice {} — SQL ending in ';', \\help for commands, Ctrl-D to leave",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "sluice> "
        } else {
            "     -> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if buffer.is_empty() && line.trim_start().starts_with('\\') {
                    let _ = editor.add_history_entry(line.trim());
                    if !shell.command(line.trim())? {
                        break;
                    }
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                let (done, rest) = statements::split(&buffer);
                if !done.is_empty() {
                    let _ = editor.add_history_entry(buffer.trim());
                }
                buffer = rest;
                for statement in done {
                    shell.statement(&statement)?;
                }
            }
            Err(ReadlineError::Interrupted) => {
                if !buffer.is_empty() {
                    buffer.clear();
                } else if let Some((name, _)) = shell.foreground.clone() {
                    shell.cancel(&name)?;
                } else {
                    shell.say("(Ctrl-D or \\quit leaves)".into());
                }
            }
            Err(ReadlineError::Eof) => break,
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".sluice_history"))
}

impl Shell {
    /// Tells the user something (live rows go through the screen instead).
    fn say(&mut self, text: String) {
        println!("{text}");
    }

    /// Runs one SQL statement; errors are shown, not returned, unless the connection is
    /// gone.
    fn statement(&mut self, statement: &str) -> Result<(), ShellError> {
        let outcome = if statements::is_query(statement) {
            self.start_query(statement)
        } else {
            self.sql(statement)
        };
        match outcome {
            Err(ShellError::Connection(error)) => Err(ShellError::Connection(error)),
            Err(error) => {
                self.say(display::error(statement, &error.to_string()));
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn sql(&mut self, statement: &str) -> Result<(), ShellError> {
        let results = self
            .client
            .request(Sql {
                sql: statement.to_string(),
            })?
            .results;
        if results.len() > SUMMARIZED_RESULTS {
            self.say(summary(&results));
        } else {
            self.show_results(&results);
        }
        if let [result] = results.as_slice()
            && result["created"] == "alert"
            && let Some(alert) = result["name"].as_str()
        {
            let label = format!("alert:{alert}");
            let subscribe = Subscribe {
                alert: Some(alert.to_string()),
                ..Subscribe::default()
            };
            self.follow(subscribe, &label)?;
            self.say(format!(
                "{label}: its firings appear above the prompt (Ctrl-C stops showing them; \
                 DROP ALERT {alert} removes it)"
            ));
        }
        if results
            .iter()
            .any(|r| r.get("created").is_some() || r.get("dropped").is_some())
        {
            self.refresh_names();
        }
        Ok(())
    }

    fn show_results(&mut self, results: &[Value]) {
        for result in results {
            let text = if let Some(rows) = result["rows"].as_array() {
                let columns: Vec<String> = result["columns"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let rows: Vec<&Value> = rows.iter().collect();
                if rows.is_empty() {
                    "(no rows)".to_string()
                } else {
                    display::table(&columns, &rows)
                }
            } else if let Some(noun) = result["created"].as_str() {
                format!(
                    "created {noun} {}",
                    result["name"].as_str().unwrap_or_default()
                )
            } else if let Some(noun) = result["dropped"].as_str() {
                format!(
                    "dropped {noun} {}",
                    result["name"].as_str().unwrap_or_default()
                )
            } else if let Some(rows) = result["inserted"].as_u64() {
                format!(
                    "inserted {rows} row(s) into {}",
                    result["stream"].as_str().unwrap_or_default()
                )
            } else if let Some(key) = result["set"].as_str() {
                format!(
                    "set {key} = {}",
                    result["value"].as_str().unwrap_or_default()
                )
            } else if let Some(text) = result["unchanged"].as_str() {
                text.to_string()
            } else {
                result.to_string()
            };
            self.say(text);
        }
    }

    /// Registers `query` under the next free `qN` and shows its rows from the start.
    fn start_query(&mut self, query: &str) -> Result<(), ShellError> {
        let taken = self.query_names()?;
        let name = loop {
            self.started += 1;
            let name = format!("q{}", self.started);
            if !taken.contains(&name) {
                break name;
            }
        };
        self.client.request(Register {
            name: name.clone(),
            sql: query.to_string(),
        })?;
        let subscribe = Subscribe {
            query: Some(name.clone()),
            from: Some(Start::Earliest),
            ..Subscribe::default()
        };
        self.follow(subscribe, &name)?;
        self.say(format!(
            "{name}: running; its rows appear above the prompt (Ctrl-C cancels it, \\bg mutes it)"
        ));
        self.refresh_names();
        Ok(())
    }

    /// Subscribes with `request` and shows the rows under `name` in the foreground (the
    /// query there before is muted).
    fn follow(&mut self, request: Subscribe, name: &str) -> Result<(), ShellError> {
        let id = follow(&mut self.client, &self.screen, request, name)?;
        self.mute_foreground();
        self.foreground = Some((name.to_string(), id));
        Ok(())
    }

    fn mute_foreground(&mut self) {
        if let Some((_, id)) = self.foreground.take()
            && let Ok(mut screen) = self.screen.lock()
            && let Some(shown) = screen.shown.get_mut(&id)
        {
            shown.muted = true;
        }
    }

    fn cancel(&mut self, name: &str) -> Result<(), ShellError> {
        let subscribed = name
            .strip_prefix("tail:")
            .or_else(|| name.strip_prefix("alert:"));
        let outcome = if subscribed.is_some() {
            let id = self.subscription_of(name);
            match id {
                Some(id) => self
                    .client
                    .request(Unsubscribe { subscription: id })
                    .map(|_| ()),
                None => Err(ShellError::Usage(format!("{name} is not shown"))),
            }
        } else {
            self.client
                .request(Cancel {
                    name: name.to_string(),
                })
                .map(|_| ())
        };
        match outcome {
            Ok(()) => {
                if let Ok(mut screen) = self.screen.lock() {
                    screen.shown.retain(|_, s| s.name != name);
                }
                if self.foreground.as_ref().is_some_and(|(n, _)| n == name) {
                    self.foreground = None;
                }
                if subscribed.is_some() {
                    self.say(format!("stopped showing {name}"));
                } else {
                    self.say(format!("cancelled {name}"));
                }
                self.refresh_names();
                Ok(())
            }
            Err(ShellError::Connection(error)) => Err(ShellError::Connection(error)),
            Err(error) => {
                self.say(format!("error: {error}"));
                Ok(())
            }
        }
    }

    fn subscription_of(&self, name: &str) -> Option<u64> {
        let screen = self.screen.lock().ok()?;
        screen
            .shown
            .iter()
            .find(|(_, s)| s.name == name)
            .map(|(id, _)| *id)
    }

    fn query_names(&mut self) -> Result<Vec<String>, ShellError> {
        Ok(self.client.request(List {})?.queries)
    }

    /// Reloads the names tab completion offers: streams, views, queries and columns.
    fn refresh_names(&mut self) {
        let mut names = Vec::new();
        if let Ok(ListReply {
            streams, queries, ..
        }) = self.client.request(List {})
        {
            names.extend(streams);
            names.extend(queries);
        }
        let streams = names.clone();
        for stream in streams {
            let described = self.client.request(Sql {
                sql: format!("DESCRIBE {stream}"),
            });
            if let Ok(described) = described {
                let rows = described.results.first().and_then(|r| r["rows"].as_array());
                for row in rows.cloned().unwrap_or_default() {
                    if let Some(column) = row
                        .as_object()
                        .and_then(|o| o.values().next())
                        .and_then(Value::as_str)
                    {
                        names.push(column.to_string());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        if let Ok(mut shared) = self.names.lock() {
            *shared = names;
        }
    }
}

/// Replies to more statements than this are summed up rather than shown one by one.
const SUMMARIZED_RESULTS: usize = 8;

/// What many statements did, counted: e.g. `created 5000 alert(s)`.
fn summary(results: &[Value]) -> String {
    // (verb, noun) in order of first appearance, with how many.
    let mut counts: Vec<((&str, &str), usize)> = Vec::new();
    for result in results {
        let what = ["created", "dropped"]
            .into_iter()
            .find_map(|verb| result[verb].as_str().map(|noun| (verb, noun)))
            .unwrap_or(("ran", "other statement"));
        match counts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, count)) => *count += 1,
            None => counts.push((what, 1)),
        }
    }
    counts
        .iter()
        .map(|((verb, noun), count)| format!("{verb} {count} {noun}(s)"))
        .collect::<Vec<_>>()
        .join(", ")
}
