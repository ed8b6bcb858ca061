//! `sluice demo`: an embedded engine, the queries of `queries/demo/demo.sql`, and a
//! generator publishing card transactions and property listings into it, with every
//! query's rows shown as they come.
//!
//! Event time runs faster than the clock (`--speed` event minutes per second), so the
//! per-minute and ten-minute windows close while one watches. With `--seconds` the demo
//! stops by itself; with `--sample DIR` it writes a short sample of the events as CSV files
//! instead, the ones shipped beside the script.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_server::protocol::{Ping, Publish, Register, Sql, Start, Subscribe};

use super::client::Client;
use super::generator::Generator;
use super::{ShellError, connect, embedded, follow, statements};

const DEMO_SQL: &str = include_str!("../../../queries/demo/demo.sql");
/// 2026-01-05 09:00:00 UTC.
const START: i64 = 1_767_603_600_000;
const SEED: u64 = 20_260_105;

pub struct DemoArgs {
    /// Stop after this long; run until Ctrl-C when `None`.
    pub seconds: Option<u64>,
    /// Transactions published per second.
    pub rate: u64,
    /// Event minutes per second of the clock.
    pub speed: u64,
    /// Write a sample of the events here instead of running.
    pub sample: Option<PathBuf>,
}

const INTRO: &str = "\
sluice demo: card transactions (2 000 cardholders, merchants in eight cities, card testers
mixed in) and property listings are generated and published into an embedded engine, and
the standing queries of queries/demo/demo.sql show their rows below as they come:

  dashboard       each minute: transactions, volume, p99 amount, distinct cards (HyperLogLog)
  card_testing    a tiny charge then a large one on a card within 10 minutes
                  (MATCH_RECOGNIZE; 'timeout' rows are tiny charges nothing followed)
  big_spenders    transactions over 1 000 joined with their cardholder (a table)
  listing_prices  every 10 minutes per city: new listings and their median price
  alerts          listings matching standing conditions (CREATE ALERT), e.g. a flat in
                  Seoul under 600 000, or a bargain (at most once per city in 10 minutes)

Each row is marked with its op (+I insert, timeout). Ctrl-C stops the demo.
";

pub fn run(args: DemoArgs) -> Result<(), ShellError> {
    let step = (args.speed.max(1) * 60_000 / args.rate.max(1)) as i64;
    let mut generator = Generator::new(SEED, START, step, 2_000);
    if let Some(dir) = &args.sample {
        return write_sample(dir);
    }
    let engine = embedded::start(None)?;
    let print = Box::new(|text| println!("{text}"));
    let (mut client, screen) = connect(&engine.address, Some(&engine.token), None, print)?;
    let script = run_script(&mut client)?;
    for (view, query) in script.views {
        client.request(Register {
            name: view.clone(),
            sql: query,
        })?;
        let subscribe = Subscribe {
            query: Some(view.clone()),
            from: Some(Start::Earliest),
            ..Subscribe::default()
        };
        follow(&mut client, &screen, subscribe, &view)?;
    }
    for source in script.alerted {
        let subscribe = Subscribe {
            alerts: Some(source.clone()),
            from: Some(Start::Earliest),
            ..Subscribe::default()
        };
        follow(
            &mut client,
            &screen,
            subscribe,
            &format!("alerts on {source}"),
        )?;
    }
    println!("{INTRO}");
    client.request(Publish::events("cardholders", generator.cardholders()))?;
    let started = Instant::now();
    let tick = Duration::from_millis(100);
    let per_tick = (args.rate / 10).max(1) as usize;
    let mut ticks = 0u32;
    while args
        .seconds
        .is_none_or(|s| started.elapsed() < Duration::from_secs(s))
    {
        let (transactions, listings) = generator.batch(per_tick);
        client.request(Publish::events("transactions", transactions))?;
        if !listings.is_empty() {
            client.request(Publish::events("listings", listings))?;
        }
        ticks += 1;
        if let Some(wait) = (started + tick * ticks).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    // Let the last rows arrive.
    client.request(Ping {})?;
    std::thread::sleep(Duration::from_millis(500));
    drop(engine);
    Ok(())
}

/// What the demo script set up.
struct Script {
    /// Its views (name, query), to register as standing queries.
    views: Vec<(String, String)>,
    /// The streams it put alerts on.
    alerted: Vec<String>,
}

/// Runs the script's statements other than its views.
fn run_script(client: &mut Client) -> Result<Script, ShellError> {
    let (statements, _) = statements::split(DEMO_SQL);
    let mut views = Vec::new();
    let mut alerted = Vec::new();
    for statement in statements {
        let mut words = statement.split_whitespace();
        let head: Vec<String> = words
            .by_ref()
            .take(2)
            .map(str::to_ascii_uppercase)
            .collect();
        if head == ["CREATE", "VIEW"] {
            let name = words.next().unwrap_or_default().to_string();
            let rest = statement
                .split_once(" AS\n")
                .or_else(|| statement.split_once(" AS "))
                .map(|(_, query)| query.to_string())
                .ok_or_else(|| ShellError::Usage(format!("view {name} has no AS")))?;
            views.push((name, rest));
        } else {
            client.request(Sql {
                sql: statement.clone(),
            })?;
            if head == ["CREATE", "ALERT"]
                && let Some(source) = words.nth(2).map(str::to_ascii_lowercase)
                && !alerted.contains(&source)
            {
                alerted.push(source);
            }
        }
    }
    Ok(Script { views, alerted })
}

/// Writes a sample of the demo's events (every cardholder, 3 000 transactions at one every
/// half second of event time, and the listings among them) as CSV files in `dir`.
fn write_sample(dir: &Path) -> Result<(), ShellError> {
    std::fs::create_dir_all(dir)?;
    let mut generator = Generator::new(SEED, START, 500, 2_000);
    let cardholders = generator.cardholders();
    let (transactions, listings) = generator.batch(3_000);
    write_csv(
        &dir.join("cardholders.csv"),
        &["card_id", "name", "home_city", "tier"],
        &cardholders,
    )?;
    write_csv(
        &dir.join("transactions.csv"),
        &[
            "tx_id", "card_id", "merchant", "category", "city", "amount", "ts",
        ],
        &transactions,
    )?;
    write_csv(
        &dir.join("listings.csv"),
        &[
            "listing_id",
            "city",
            "district",
            "kind",
            "rooms",
            "area_m2",
            "price",
            "ts",
        ],
        &listings,
    )?;
    Ok(())
}

fn write_csv(path: &Path, columns: &[&str], rows: &[Value]) -> Result<(), ShellError> {
    let mut text = columns.join(",");
    text.push('\n');
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match &row[*c] {
                Value::String(s) if s.contains([',', '"']) => {
                    format!("\"{}\"", s.replace('"', "\"\""))
                }
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    std::fs::write(path, text)?;
    Ok(())
}
