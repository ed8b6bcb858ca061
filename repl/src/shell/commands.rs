//! The backslash commands.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Instant;

use serde_json::{Value, json};
use sluice_engine::time::format_millis;
use sluice_server::protocol::{Publish, Request, Start, Stats, Subscribe};

use super::{Shell, ShellError, display, statements};

const HELP: &str = "\
SQL statements end with ';' and may span lines. A SELECT runs as a standing query: its rows
appear above the prompt as they come, each marked with its op (+I, -U, +U, -D).
CREATE ALERT name ON stream WHERE condition [WITH ('suppress' = '10 minutes',
'suppress.key' = 'col')] shows the alert's firings the same way; DROP ALERT name removes it
and SHOW ALERTS lists them.

  \\help                 this text
  \\list                 queries: shown or muted, input and output rates (since the last
                        \\list), results, rows not yet shown, watermark, state
  \\cancel NAME          stop a query (Ctrl-C stops the one in the foreground)
  \\bg                   mute the foreground query; it keeps running
  \\fg NAME              show a query's rows again, in the foreground
  \\mute NAME            mute a query
  \\stats                streams, queries and groups as the server reports them
  \\load FILE.sql        run the statements in a file (alert statements in bulk)
  \\publish STREAM FILE  publish a .csv (with a header) or .jsonl file's rows
  \\tail STREAM          show a stream's rows as they are published
  \\explain QUERY        the plan of a query
  \\quit                 leave (so does Ctrl-D)";

/// Rows sent per publish by `\publish`.
const PUBLISH_ROWS: usize = 5_000;
/// The most alert statements `\load` sends in one request, in bytes (the server takes
/// lines of up to 1 MiB by default).
const ALERT_REQUEST_BYTES: usize = 512 * 1024;

impl Shell {
    /// Runs a backslash command; gives whether the shell goes on.
    pub(super) fn command(&mut self, line: &str) -> Result<bool, ShellError> {
        let mut words = line.splitn(2, char::is_whitespace);
        let command = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default().trim();
        let outcome = match command {
            "\\quit" | "\\q" => return Ok(false),
            "\\help" | "\\h" | "\\?" => {
                self.say(HELP.to_string());
                Ok(())
            }
            "\\list" => self.list(),
            "\\cancel" => match one_name(rest, "\\cancel NAME") {
                Ok(name) => self.cancel(&name),
                Err(error) => Err(error),
            },
            "\\bg" => {
                match self.foreground.clone() {
                    Some((name, _)) => {
                        self.mute_foreground();
                        self.say(format!(
                            "{name} runs in the background, muted (\\fg {name} shows it)"
                        ));
                    }
                    None => self.say("no query is in the foreground".into()),
                }
                Ok(())
            }
            "\\fg" => one_name(rest, "\\fg NAME").and_then(|name| self.show(&name, true)),
            "\\mute" => one_name(rest, "\\mute NAME").and_then(|name| self.show(&name, false)),
            "\\stats" => self
                .client
                .request_line(Request::Stats(Stats {}))
                .map(|reply| {
                    // The whole reply line, its fields in order of name.
                    let text = serde_json::to_value(&reply)
                        .and_then(|line| serde_json::to_string_pretty(&line))
                        .unwrap_or_default();
                    self.say(text);
                }),
            "\\load" => self.load(rest),
            "\\publish" => self.publish(rest),
            "\\tail" => one_name(rest, "\\tail STREAM").and_then(|stream| {
                let name = format!("tail:{stream}");
                let subscribe = Subscribe {
                    stream: Some(stream),
                    from: Some(Start::Latest),
                    ..Subscribe::default()
                };
                self.follow(subscribe, &name)?;
                self.say(format!(
                    "{name}: showing rows as they are published (Ctrl-C stops)"
                ));
                Ok(())
            }),
            "\\explain" => {
                if rest.is_empty() {
                    Err(ShellError::Usage("usage: \\explain QUERY".into()))
                } else {
                    self.statement(&format!("EXPLAIN {}", rest.trim_end_matches(';')))
                }
            }
            other => Err(ShellError::Usage(format!(
                "unknown command {other} (\\help lists them)"
            ))),
        };
        match outcome {
            Err(ShellError::Connection(error)) => Err(ShellError::Connection(error)),
            Err(error) => {
                self.say(format!("error: {error}"));
                Ok(true)
            }
            Ok(()) => Ok(true),
        }
    }

    fn list(&mut self) -> Result<(), ShellError> {
        let stats = self.client.request(Stats {})?;
        let (then, before) =
            std::mem::replace(&mut self.last_list, (Instant::now(), BTreeMap::new()));
        let seconds = then.elapsed().as_secs_f64().max(1e-3);
        let shown: BTreeMap<String, (u64, bool)> = self
            .screen
            .lock()
            .map(|s| {
                s.shown
                    .iter()
                    .map(|(id, v)| (v.name.clone(), (*id, v.muted)))
                    .collect()
            })
            .unwrap_or_default();
        // Rows each stream holds, to tell how fast the queries' inputs grow.
        let mut stream_rows = BTreeMap::new();
        for stream in stats.streams.as_array().cloned().unwrap_or_default() {
            let rows: u64 = stream["partitions"]
                .as_array()
                .map(|parts| parts.iter().filter_map(|p| p["end"].as_u64()).sum())
                .unwrap_or_default();
            let name = stream["name"].as_str().unwrap_or_default().to_string();
            stream_rows.insert(name, rows);
        }
        let lags: BTreeMap<u64, u64> = stats
            .subscriptions
            .as_array()
            .map(|subs| {
                subs.iter()
                    .filter_map(|s| Some((s["subscription"].as_u64()?, s["lag"].as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = Vec::new();
        for query in stats.queries.as_array().cloned().unwrap_or_default() {
            let name = query["name"].as_str().unwrap_or_default().to_string();
            let results = query["results"].as_u64().unwrap_or_default();
            let inputs: u64 = query["inputs"]
                .as_array()
                .map(|inputs| {
                    let names = inputs.iter().filter_map(Value::as_str);
                    names.filter_map(|i| stream_rows.get(i)).sum()
                })
                .unwrap_or_default();
            let rate = |now: u64, key: &str| {
                before.get(key).map_or("-".to_string(), |b| {
                    format!("{:.1}/s", now.saturating_sub(*b) as f64 / seconds)
                })
            };
            let input_key = format!("{name} input");
            let output_rate = rate(results, &name);
            let input_rate = rate(inputs, &input_key);
            self.last_list.1.insert(name.clone(), results);
            self.last_list.1.insert(input_key, inputs);
            let foreground = self.foreground.as_ref().is_some_and(|(f, _)| *f == name);
            let state = match shown.get(&name) {
                _ if foreground => "foreground",
                Some((_, false)) => "shown",
                Some((_, true)) => "muted",
                None => "running",
            };
            let lag = shown
                .get(&name)
                .and_then(|(id, _)| lags.get(id))
                .map_or(json!(null), |lag| json!(lag));
            let watermark = match query["watermark"].as_i64() {
                Some(at) if at > i64::MIN => json!(format_millis(at)),
                _ => json!("-"),
            };
            rows.push(json!({
                "query": name,
                "state": state,
                "input_rate": input_rate,
                "results": results,
                "output_rate": output_rate,
                "lag": lag,
                "watermark": watermark,
                "state_bytes": query["state_bytes"],
                "late_rows": query["late_rows"],
            }));
        }
        if rows.is_empty() {
            self.say("no queries".into());
            return Ok(());
        }
        let columns: Vec<String> = [
            "query",
            "state",
            "input_rate",
            "results",
            "output_rate",
            "lag",
            "watermark",
            "state_bytes",
            "late_rows",
        ]
        .map(String::from)
        .to_vec();
        let rows: Vec<&Value> = rows.iter().collect();
        let text = display::table(&columns, &rows);
        self.say(text);
        Ok(())
    }

    /// Shows (`show`) or mutes a query's rows; shown, it becomes the foreground query.
    fn show(&mut self, name: &str, show: bool) -> Result<(), ShellError> {
        let Some(id) = self.subscription_of(name) else {
            return Err(ShellError::Usage(format!(
                "no query named '{name}' started here"
            )));
        };
        // Shown again, a query's rows follow on from its results so far: the ones that
        // came while it was muted are skipped.
        let mut results = 0;
        if show {
            self.mute_foreground();
            self.foreground = Some((name.to_string(), id));
            let stats = self.client.request(Stats {})?;
            results = stats
                .queries
                .as_array()
                .and_then(|queries| queries.iter().find(|q| q["name"] == json!(name)))
                .and_then(|q| q["results"].as_u64())
                .unwrap_or_default();
        } else if self.foreground.as_ref().is_some_and(|(f, _)| f == name) {
            self.foreground = None;
        }
        if let Ok(mut screen) = self.screen.lock()
            && let Some(shown) = screen.shown.get_mut(&id)
        {
            shown.muted = !show;
            shown.show_from = shown.show_from.max(results);
        }
        self.say(format!("{name} {}", if show { "shown" } else { "muted" }));
        Ok(())
    }

    fn load(&mut self, path: &str) -> Result<(), ShellError> {
        if path.is_empty() {
            return Err(ShellError::Usage("usage: \\load FILE.sql".into()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ShellError::Usage(format!("cannot read {path}: {e}")))?;
        let (mut done, rest) = statements::split(&text);
        if !rest.trim().is_empty() {
            done.push(rest.trim().to_string());
        }
        // Runs of alert statements go in requests of up to `ALERT_REQUEST_BYTES`, each
        // all or nothing.
        let mut alerts = String::new();
        for statement in done {
            if statements::is_alert_statement(&statement) {
                if !alerts.is_empty() && alerts.len() + statement.len() > ALERT_REQUEST_BYTES {
                    self.statement(&std::mem::take(&mut alerts))?;
                }
                alerts.push_str(&statement);
                alerts.push_str(";\n");
                continue;
            }
            if !alerts.is_empty() {
                self.statement(&std::mem::take(&mut alerts))?;
            }
            self.statement(&statement)?;
        }
        if !alerts.is_empty() {
            self.statement(&alerts)?;
        }
        Ok(())
    }

    fn publish(&mut self, args: &str) -> Result<(), ShellError> {
        let mut words = args.split_whitespace();
        let (Some(stream), Some(path), None) = (words.next(), words.next(), words.next()) else {
            return Err(ShellError::Usage(
                "usage: \\publish STREAM FILE (.csv or .jsonl)".into(),
            ));
        };
        let file = std::fs::File::open(path)
            .map_err(|e| ShellError::Usage(format!("cannot read {path}: {e}")))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0).max(1);
        let csv = path.to_ascii_lowercase().ends_with(".csv");
        let mut lines = BufReader::new(file).lines();
        let header = if csv {
            match lines.next() {
                Some(line) => Some(line?),
                None => return Err(ShellError::Usage(format!("{path} is empty"))),
            }
        } else {
            None
        };
        let mut read = header.as_ref().map_or(0, |h| h.len() as u64 + 1);
        let mut published = 0usize;
        let mut chunk: Vec<String> = Vec::new();
        let mut last_shown = Instant::now();
        loop {
            let line = lines.next().transpose()?;
            if let Some(line) = &line {
                read += line.len() as u64 + 1;
                if !line.trim().is_empty() {
                    chunk.push(line.clone());
                }
            }
            if chunk.len() >= PUBLISH_ROWS || (line.is_none() && !chunk.is_empty()) {
                let request = match &header {
                    Some(header) => {
                        Publish::csv(stream, format!("{header}\n{}\n", chunk.join("\n")))
                    }
                    None => {
                        let mut events = Vec::with_capacity(chunk.len());
                        for (i, line) in chunk.iter().enumerate() {
                            events.push(serde_json::from_str::<Value>(line).map_err(|e| {
                                ShellError::Usage(format!(
                                    "{path}: line {} is not JSON: {e} ({published} rows were published)",
                                    published + i + 1
                                ))
                            })?);
                        }
                        Publish::events(stream, events)
                    }
                };
                self.client.request(request).map_err(|e| match e {
                    ShellError::Server(error) => ShellError::Server(format!(
                        "{error} (in the rows after the first {published}; those were published)"
                    )),
                    other => other,
                })?;
                published += chunk.len();
                chunk.clear();
                if last_shown.elapsed().as_millis() > 200 {
                    last_shown = Instant::now();
                    eprint!("\r{}", progress(read, total, published));
                }
            }
            if line.is_none() {
                break;
            }
        }
        eprintln!("\r{}", progress(total, total, published));
        Ok(())
    }
}

/// A progress bar: `[#####.....] 50% 1000 rows`.
fn progress(done: u64, total: u64, rows: usize) -> String {
    let share = (done.min(total) as f64 / total as f64).clamp(0.0, 1.0);
    let filled = (share * 30.0) as usize;
    format!(
        "[{}{}] {:3.0}% {rows} rows",
        "#".repeat(filled),
        ".".repeat(30 - filled),
        share * 100.0
    )
}

fn one_name(rest: &str, usage: &str) -> Result<String, ShellError> {
    let mut words = rest.split_whitespace();
    match (words.next(), words.next()) {
        (Some(name), None) => Ok(name.trim_end_matches(';').to_string()),
        _ => Err(ShellError::Usage(format!("usage: {usage}"))),
    }
}
