//! Exactly-once results of `sluice serve` under kill -9, end to end over the socket.
//!
//! One producer publishes events to two streams while the server is killed with SIGKILL at
//! random moments (some of them while a checkpoint is being written, some while it starts),
//! round after round, with segments and retention so small that the input of open windows,
//! join buffers and half-matched patterns is deleted while they are open: only the
//! checkpoints hold it. After
//! the last round, each standing query's result log must hold exactly what `sluice run`
//! computes over the same events, in the same order: row for row, op for op.
//!
//! How the two runs see the same input in the same order:
//! - Event `n` (a global counter) goes to `orders` when `n` is even and to `prices` when it is
//!   odd, with event time `n` seconds after 2024-01-01 00:00:00: the publish order is the
//!   event-time order, and the two streams alternate.
//! - The server feeds each publish to the queries on its own, in publish order (and replays
//!   by publish stamp, in the same order). `sluice run` interleaves its input files by event
//!   time, feeding a run of rows of one file for as long as it stays earliest: as the streams
//!   alternate, every run is one row, so it too feeds one event at a time, in the same order,
//!   with each stream's watermark advanced after each. (Batches of several rows would change
//!   the order and the updates of some results, not their meaning.)
//! - The streams must keep alternating: a publish whose connection died before its answer
//!   may or may not be stored. After each restart, the streams' end offsets (`stats`) tell:
//!   if it was not stored, the same event is published again (a client's retry), so the
//!   streams always hold exactly events `0..N`, which the test checks against what the
//!   logs still keep at the end (retention deleted the rest).
//! - At the end one event far in the future goes to each stream, closing every window and
//!   expiring every join row, as the end of `sluice run`'s input does. `sluice run` then
//!   also flushes what those two events opened; those rows come last, only in the reference,
//!   and each carries a time of the far future.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use support::{Client, Server, temp_dir};

const ORDERS: &str = "CREATE TABLE orders (k STRING, u INT, v BIGINT, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts)";
const PRICES: &str = "CREATE TABLE prices (k STRING, u INT, v BIGINT, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts)";

/// The standing queries, each stateful in its own way.
const QUERIES: [(&str, &str); 4] = [
    // Ten-minute windows per region: 300 orders each, far more than retention keeps.
    (
        "order_totals",
        "SELECT k, window_start, window_end, COUNT(*) AS n, SUM(v) AS total, MIN(v) AS low, \
         MAX(v) AS high \
         FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' MINUTE)) \
         GROUP BY k, window_start, window_end",
    ),
    // Each order with the prices of its item in the five minutes after it; an order that
    // met none comes out `expired` once no price can come.
    (
        "priced_orders",
        "SELECT o.u, o.k, o.v AS amount, p.v AS price, o.ts AS ordered, p.ts AS priced \
         FROM orders o LEFT JOIN prices p ON o.u = p.u \
         AND p.ts BETWEEN o.ts AND o.ts + INTERVAL '5' MINUTE",
    ),
    // Dips per symbol: a fall of one or more prices, then a rise. Falls last up to 80 prices
    // of a symbol, so patterns stay open while retention deletes their first rows.
    (
        "price_dips",
        "SELECT * FROM prices MATCH_RECOGNIZE ( \
           PARTITION BY k ORDER BY ts \
           MEASURES FIRST(A.ts) AS start_t, LAST(D.ts) AS bottom_t, LAST(R.ts) AS end_t, \
             MATCH_NUMBER() AS nth, COUNT(D.*) AS falls, SUM(D.v) AS fallen, \
             FIRST(D.v) AS first_fall \
           ONE ROW PER MATCH \
           AFTER MATCH SKIP TO LAST R \
           PATTERN (A D+ R) \
           DEFINE D AS D.v < PREV(D.v), R AS R.v > PREV(R.v) \
         ) AS m",
    ),
    // An updating aggregate: every price retracts and replaces its symbol's row.
    (
        "price_stats",
        "SELECT k, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS high FROM prices GROUP BY k",
    ),
];

/// Small segments, retention that deletes all but the last few dozen events of a stream,
/// and a checkpoint every 50 ms.
const ARGS: [&str; 6] = [
    "--segment-bytes",
    "4096",
    "--retention-bytes",
    "16384",
    "--checkpoint-interval",
    "0.05",
];

/// Seconds added to the event time of the final events: 29 days.
const FAR: u64 = 29 * 86_400;

/// A xorshift generator: the same seed always gives the same numbers.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// A fixed scramble of `n` (splitmix64's finaliser), for event fields that look random.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `second` seconds after 2024-01-01 00:00:00, as sluice writes timestamps (within January).
fn time(second: u64) -> String {
    let day = 1 + second / 86_400;
    assert!(day <= 31, "event time past January: {second}");
    let rest = second % 86_400;
    format!(
        "2024-01-{day:02} {:02}:{:02}:{:02}",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The stream event `n` goes to.
fn stream_of(n: u64) -> &'static str {
    if n.is_multiple_of(2) {
        "orders"
    } else {
        "prices"
    }
}

/// Event `n`; a final one (`far`) is 29 days later.
fn event(n: u64, far: bool) -> Value {
    let ts = time(n + if far { FAR } else { 0 });
    let half = n / 2;
    let u = mix(n) % 40;
    if n.is_multiple_of(2) {
        json!({"k": format!("r{}", half % 3), "u": u, "v": mix(n ^ 0x5555) % 1_000, "ts": ts})
    } else {
        // Per symbol a price falls by 3 each time, for 80 prices, then jumps back up; one in
        // eleven blips up by 12 on the way, ending a short dip.
        let blip = if mix(n ^ 0xaaaa).is_multiple_of(11) {
            12
        } else {
            0
        };
        json!({"k": format!("s{}", half % 3), "u": u, "v": 1_000 - half % 240 + blip, "ts": ts})
    }
}

/// What a producer got done before the server died.
struct Produced {
    /// Events `first..acknowledged` were acknowledged.
    acknowledged: u64,
    /// Event `acknowledged` was (at least partly) sent without an answer.
    unanswered: bool,
    /// A publish answered with an error.
    error: Option<String>,
}

/// Publishes events from `first` on, one publish at a time, each after the answer to the
/// one before, until the connection dies.
fn produce(address: &str, first: u64) -> Produced {
    let mut produced = Produced {
        acknowledged: first,
        unanswered: false,
        error: None,
    };
    let Ok(stream) = TcpStream::connect(address) else {
        return produced;
    };
    let Ok(read) = stream.try_clone() else {
        return produced;
    };
    let mut writer = stream;
    let mut reader = BufReader::new(read);
    for n in first.. {
        let line = json!({"op": "publish", "stream": stream_of(n), "event": event(n, false)});
        produced.unanswered = true;
        if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
            break;
        }
        let mut reply = String::new();
        match reader.read_line(&mut reply) {
            Ok(read) if read > 0 => {}
            _ => break,
        }
        let answer: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
        if answer["ok"] != json!(true) {
            produced.error = Some(format!("event {n} was answered {reply}"));
            break;
        }
        produced.unanswered = false;
        produced.acknowledged = n + 1;
    }
    produced
}

/// Starts `sluice serve` on `data` and kills it after `delay`, while it restores the newest
/// checkpoint and replays the input after it, or before it has begun.
fn kill_while_starting(data: &Path, delay: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(ARGS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sluice serve: {e}"));
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

/// The checkpoint files being written (`N.tmp`), each with its length and time of change.
fn checkpoints_in_writing(dir: &Path) -> BTreeMap<String, (u64, Option<SystemTime>)> {
    let Ok(entries) = std::fs::read_dir(dir.join("checkpoints")) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().to_str()?.to_string();
            if !name.ends_with(".tmp") {
                return None;
            }
            let meta = entry.metadata().ok()?;
            Some((name, (meta.len(), meta.modified().ok())))
        })
        .collect()
}

/// Whether a checkpoint file was being written since `before` was seen.
fn writing_since(dir: &Path, before: &BTreeMap<String, (u64, Option<SystemTime>)>) -> bool {
    checkpoints_in_writing(dir)
        .iter()
        .any(|(name, meta)| before.get(name) != Some(meta))
}

/// The oldest kept offset of a stream's (only) partition, and its end offset.
fn stream_offsets(stats: &Value, stream: &str) -> (u64, u64) {
    let streams = stats["streams"].as_array().cloned().unwrap_or_default();
    let Some(found) = streams.iter().find(|s| s["name"] == json!(stream)) else {
        panic!("no stream {stream} in {stats}");
    };
    let partition = &found["partitions"][0];
    (
        partition["start"].as_u64().unwrap_or(0),
        partition["end"].as_u64().unwrap_or(0),
    )
}

/// Query `name`'s entry in `stats`.
fn query_stats<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["queries"]
        .as_array()
        .and_then(|queries| queries.iter().find(|q| q["name"] == json!(name)))
        .unwrap_or_else(|| panic!("no query {name} in {stats}"))
}

/// Panics unless every query runs (none failed, on start or since).
fn assert_none_failed(stats: &Value, when: &str) {
    for (name, _) in QUERIES {
        let query = query_stats(stats, name);
        assert_eq!(
            query["failed"],
            Value::Null,
            "{when}: query {name} failed: {stats}"
        );
    }
    assert_eq!(
        stats["failed"],
        json!([]),
        "{when}: catalog entries failed: {stats}"
    );
}

/// After a restart: how many events the streams hold, which is `stored`, or `stored + 1`
/// when event `stored` was sent without an answer and was kept after all; counts such
/// publishes in `unanswered_kept`: (kept, not kept).
fn events_stored(
    stats: &Value,
    stored: u64,
    unanswered: bool,
    unanswered_kept: &mut (u64, u64),
    when: &str,
) -> u64 {
    let (_, orders) = stream_offsets(stats, "orders");
    let (_, prices) = stream_offsets(stats, "prices");
    let total = orders + prices;
    assert!(
        total == stored || (unanswered && total == stored + 1),
        "{when}: the streams hold {total} events ({orders} orders, {prices} prices), but \
         {stored} were acknowledged{}",
        if unanswered { " and one more sent" } else { "" }
    );
    // Events alternate between the streams: orders get the even ones.
    assert_eq!(
        (orders, prices),
        (total.div_ceil(2), total / 2),
        "{when}: the streams do not hold events 0..{total}"
    );
    if unanswered {
        if total > stored {
            unanswered_kept.0 += 1;
        } else {
            unanswered_kept.1 += 1;
        }
    }
    total
}

/// Every row pushed by a new subscription to `target` from the earliest, `count` of them,
/// after which nothing more comes.
fn subscribe_all(server: &Server, target: (&str, &str), count: u64) -> Vec<Value> {
    let mut client = server.connect();
    let (kind, name) = target;
    let mut request = json!({"op": "subscribe", "from": "earliest"});
    request[kind] = json!(name);
    client.ok(request);
    let rows = client.pushed_rows(usize::try_from(count).unwrap_or(usize::MAX));
    assert_eq!(client.raw(r#"{"op":"ping"}"#)["pong"], json!(true));
    assert!(
        client.pushed.is_empty(),
        "{kind} {name}: more than {count} rows: {:?}",
        client.pushed.front()
    );
    rows
}

/// A row as compared: its columns (with `op`) in name order, each as JSON text. The server
/// writes rows to subscribers and `sluice run --format json` writes them to files with the
/// same code, and for these column types (STRING, INT, BIGINT, TIMESTAMP(3)) they come out
/// alike; still, the two paths are not bound to agree on how a value is spelt, so numbers are
/// compared as numbers (`5` = `5.0`) and timestamps as instants (`2024-01-01 10:00:00` =
/// `2024-01-01T10:00:00.000`); NULL is JSON's `null` in both.
fn normalise(row: &Value) -> String {
    let Some(columns) = row.as_object() else {
        panic!("a row that is not an object: {row}");
    };
    let mut sorted: BTreeMap<&str, Value> = BTreeMap::new();
    for (name, value) in columns {
        let value = match value {
            Value::Number(number) => match (number.as_i64(), number.as_f64()) {
                (Some(integer), _) => json!(integer),
                (None, Some(float)) if float.fract() == 0.0 && float.abs() < 1e15 => {
                    json!(float as i64)
                }
                _ => value.clone(),
            },
            Value::String(text) => json!(normalise_time(text)),
            other => other.clone(),
        };
        sorted.insert(name, value);
    }
    serde_json::to_string(&sorted).unwrap_or_else(|e| panic!("{e}"))
}

/// `YYYY-MM-DD HH:MM:SS[.fff]` (or with `T`, or a `Z`) as `YYYY-MM-DD HH:MM:SS.fff`; any
/// other text as it is.
fn normalise_time(text: &str) -> String {
    let bytes = text.as_bytes();
    let looks_like_time = bytes.len() >= 19
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && (bytes[10] == b' ' || bytes[10] == b'T')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !looks_like_time {
        return text.to_string();
    }
    let trimmed = text.trim_end_matches('Z');
    let (whole, fraction) = trimmed.split_at(19);
    let digits = fraction.trim_start_matches('.');
    format!(
        "{} {}.{:0<3}",
        &whole[..10],
        &whole[11..],
        digits.trim_end_matches('0')
    )
}

/// Whether a row carries a time of the final events (their windows start on or after it).
fn of_final_events(row: &Value) -> bool {
    let threshold = time(FAR);
    row.as_object().is_some_and(|columns| {
        columns
            .values()
            .any(|v| v.as_str().is_some_and(|text| text >= threshold.as_str()))
    })
}

fn write_file(path: &Path, contents: &str) {
    std::fs::write(path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The JSON lines of `path` (none when there is no such file).
fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()))
        })
        .collect()
}

/// What `sluice run` computes over events `0..count` and the two final events: per query,
/// its rows and its late rows.
fn reference(dir: &Path, count: u64) -> BTreeMap<&'static str, (Vec<Value>, Vec<Value>)> {
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    for n in 0..count + 2 {
        let line = event(n, n >= count).to_string();
        let file = files.entry(stream_of(n)).or_default();
        file.push_str(&line);
        file.push('\n');
    }
    let mut script = format!("{ORDERS};\n{PRICES};\n");
    for (name, sql) in QUERIES {
        script.push_str(&format!("CREATE VIEW {name} AS {sql};\n"));
    }
    let script_path = dir.join("queries.sql");
    write_file(&script_path, &script);
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.arg("run").arg(&script_path);
    for (stream, contents) in &files {
        let path = dir.join(format!("{stream}.jsonl"));
        write_file(&path, contents);
        command
            .arg("--input")
            .arg(format!("{stream}={}", path.display()));
    }
    let out: PathBuf = dir.join("out");
    command.arg("--output").arg(&out).args(["--format", "json"]);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run sluice run: {e}"));
    assert!(
        output.status.success(),
        "sluice run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    QUERIES
        .iter()
        .map(|(name, _)| {
            (
                *name,
                (
                    read_jsonl(&out.join(format!("{name}.jsonl"))),
                    read_jsonl(&out.join(format!("{name}.late.jsonl"))),
                ),
            )
        })
        .collect()
}

/// The round whose server wrote result `offset` (or whose publishes it is of, when the
/// replay after the round's kill wrote it), from each round's result count at its start.
fn round_of(offset: usize, counts_at_start: &[u64]) -> String {
    match counts_at_start.iter().rposition(|c| *c as usize <= offset) {
        Some(round) if round + 1 < counts_at_start.len() => {
            format!("round {round} or the replay after its kill")
        }
        Some(_) => "the final restart".to_string(),
        None => "before round 0".to_string(),
    }
}

/// Compares query `name`'s results on the server with the reference's: the same rows in the
/// same order, then only rows of the final events in the reference (what the end of its input
/// flushes); panics with the first difference.
fn compare(name: &str, served: &[Value], expected: &[Value], counts_at_start: &[u64], seed: u64) {
    let served_rows: Vec<String> = served.iter().map(normalise).collect();
    let expected_rows: Vec<String> = expected.iter().map(normalise).collect();
    // Rows the server has more often than the reference: written twice, or wrong.
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for row in &served_rows {
        counts.entry(row).or_default().0 += 1;
    }
    for row in &expected_rows {
        counts.entry(row).or_default().1 += 1;
    }
    let extra: Vec<String> = counts
        .iter()
        .filter(|(_, (s, e))| s > e)
        .take(5)
        .map(|(row, (s, e))| format!("{row} (server {s}, reference {e})"))
        .collect();
    let first_extra = counts
        .iter()
        .find(|(_, (s, e))| s > e)
        .and_then(|(row, (_, e))| {
            served_rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.as_str() == *row)
                .nth(*e)
                .map(|(at, _)| at)
        });
    assert!(
        extra.is_empty(),
        "seed {seed:#x}: query {name}: rows the server has more often than `sluice run`:\n  \
         {}\nthe first surplus one is result {first_extra:?}, written in {}",
        extra.join("\n  "),
        first_extra.map_or("?".to_string(), |at| round_of(at, counts_at_start))
    );
    if let Some(at) = (0..served_rows.len().min(expected_rows.len()))
        .find(|i| served_rows[*i] != expected_rows[*i])
    {
        let around =
            |rows: &[String]| rows[at.saturating_sub(3)..(at + 3).min(rows.len())].join("\n  ");
        panic!(
            "seed {seed:#x}: query {name}: result {at} (written in {}) differs from \
             `sluice run`'s (server {} results, reference {}); results {} on:\nserver:\n  {}\n\
             reference:\n  {}",
            round_of(at, counts_at_start),
            served_rows.len(),
            expected_rows.len(),
            at.saturating_sub(3),
            around(&served_rows),
            around(&expected_rows),
        );
    }
    assert!(
        served_rows.len() <= expected_rows.len(),
        "seed {seed:#x}: query {name}: the server has {} results, `sluice run` {}: the extra \
         ones from result {} (written in {}):\n  {}",
        served_rows.len(),
        expected_rows.len(),
        expected_rows.len(),
        round_of(expected_rows.len(), counts_at_start),
        served_rows[expected_rows.len()..(expected_rows.len() + 3).min(served_rows.len())]
            .join("\n  ")
    );
    let missing: Vec<&Value> = expected[served.len()..]
        .iter()
        .filter(|row| !of_final_events(row))
        .take(3)
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed:#x}: query {name}: the server has {} results; `sluice run` has {} more, \
         not only of the final events: {missing:?}",
        served.len(),
        expected.len() - served.len()
    );
}

/// Kills the server at random moments (some while a checkpoint is being written, by a child
/// or by the server itself, some while it starts) while one producer publishes, 50 times (or `SLUICE_CRASH_ROUNDS`;
/// `SLUICE_CRASH_SEED`, a decimal number, picks other moments); then every query's result log equals what `sluice run` computes over the
/// events the streams hold, and no query failed, although retention deleted most input.
#[test]
fn results_after_kill_9_at_any_moment_are_what_an_uninterrupted_run_computes() {
    let rounds: u64 = std::env::var("SLUICE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x2545_f491_4f6c_dd1d);
    let started = Instant::now();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut random = xorshift(seed);
    // Events `0..stored` are in the streams; event `stored` may be too, when `unanswered`.
    let mut stored = 0u64;
    let mut unanswered = false;
    // Per query, how many results its log held at the start of each round.
    let mut counts_at_start: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut mid_checkpoint_kills = 0;
    // Publishes left unanswered by a kill: (kept after all, not kept and sent again).
    let mut unanswered_kept = (0, 0);
    let mut start_time = Duration::from_millis(50);
    let mut starts_killed = 0;
    for round in 0..rounds {
        let when = format!("seed {seed:#x}, round {round}");
        // One round in six, a start is killed first, while it restores and replays.
        if round > 0 && random().is_multiple_of(6) {
            kill_while_starting(&data, start_time.mul_f64((random() % 100) as f64 / 100.0));
            starts_killed += 1;
        }
        let starting = Instant::now();
        // One round in three saves checkpoints in the server's process, the others in a child.
        let in_process = round % 3 == 2;
        let server = if in_process {
            Server::start(&data, &[&ARGS[..], &["--checkpoint-in-process"]].concat())
        } else {
            Server::start(&data, &ARGS)
        };
        start_time = starting.elapsed();
        let mut client = server.connect();
        if round == 0 {
            client.ok(json!({"op": "sql", "sql": format!("{ORDERS}; {PRICES}")}));
            for (name, sql) in QUERIES {
                client.ok(json!({"op": "register", "name": name, "sql": sql}));
            }
        }
        let stats = client.ok(json!({"op": "stats"}));
        assert_none_failed(&stats, &when);
        stored = events_stored(&stats, stored, unanswered, &mut unanswered_kept, &when);
        for (name, _) in QUERIES {
            let results = query_stats(&stats, name)["results"].as_u64().unwrap_or(0);
            counts_at_start.entry(name).or_default().push(results);
        }
        drop(client);

        let before = checkpoints_in_writing(&data);
        let address = server.address.clone();
        let first = stored;
        let producer = std::thread::spawn(move || produce(&address, first));
        let round_started = Instant::now();
        match random() % 4 {
            // Soon after the start: the first publishes, the first checkpoint.
            0 => std::thread::sleep(Duration::from_millis(random() % 40)),
            // Once a checkpoint file is being written.
            1 => {
                std::thread::sleep(Duration::from_millis(20 + random() % 150));
                let seen = checkpoints_in_writing(&data);
                while !writing_since(&data, &seen)
                    && round_started.elapsed() < Duration::from_secs(3)
                {
                    std::thread::yield_now();
                }
            }
            _ => std::thread::sleep(Duration::from_millis(40 + random() % 300)),
        }
        server.kill();
        if writing_since(&data, &before) {
            mid_checkpoint_kills += 1;
        }
        let produced = producer
            .join()
            .unwrap_or_else(|_| panic!("{when}: the producer panicked"));
        assert_eq!(produced.error, None, "{when}");
        assert!(
            round_started.elapsed() < Duration::from_secs(30),
            "{when}: the round took {:?}",
            round_started.elapsed()
        );
        stored = produced.acknowledged;
        unanswered = produced.unanswered;
    }

    let when = format!("seed {seed:#x}, after the last round");
    let server = Server::start(&data, &ARGS);
    let mut client: Client = server.connect();
    let stats = client.ok(json!({"op": "stats"}));
    assert_none_failed(&stats, &when);
    stored = events_stored(&stats, stored, unanswered, &mut unanswered_kept, &when);
    for (name, _) in QUERIES {
        let results = query_stats(&stats, name)["results"].as_u64().unwrap_or(0);
        counts_at_start.entry(name).or_default().push(results);
    }
    assert!(
        stored > 200,
        "only {stored} events were stored in {rounds} rounds: too few to test (10 rounds or \
         more are)"
    );
    for n in [stored, stored + 1] {
        client.ok(json!({"op": "publish", "stream": stream_of(n), "event": event(n, true)}));
    }
    let stats = client.ok(json!({"op": "stats"}));
    assert_none_failed(&stats, &when);

    // The streams hold events 0..stored and the final two; retention deleted the oldest.
    let mut deleted = Vec::new();
    for (stream, parity) in [("orders", 0), ("prices", 1)] {
        let (start, end) = stream_offsets(&stats, stream);
        deleted.push(start);
        let kept = subscribe_all(&server, ("stream", stream), end - start);
        let expected: Vec<String> = (start..end)
            .map(|offset| {
                let n = offset * 2 + parity;
                normalise(&event(n, n >= stored))
            })
            .collect();
        let kept: Vec<String> = kept
            .iter()
            .map(|row| {
                let mut row = row.clone();
                if let Some(columns) = row.as_object_mut() {
                    columns.remove("op");
                }
                normalise(&row)
            })
            .collect();
        assert_eq!(kept, expected, "{when}: stream {stream} holds other events");
    }
    assert!(
        deleted.iter().all(|start| *start > 0),
        "retention deleted no input (oldest kept offsets {deleted:?}): the test proves nothing"
    );

    let expected = reference(dir.path(), stored);
    let mut summary = Vec::new();
    for (name, _) in QUERIES {
        let query = query_stats(&stats, name);
        let results = query["results"].as_u64().unwrap_or(0);
        let served = subscribe_all(&server, ("query", name), results);
        let (rows, late) = &expected[name];
        assert!(
            served.len() > 3,
            "query {name} has only {} results",
            served.len()
        );
        compare(name, &served, rows, &counts_at_start[name], seed);
        assert_eq!(query["late_rows"], json!(late.len()), "{when}: {name}");
        assert_eq!(query["failed_rows"], json!(0), "{when}: {name}");
        summary.push(format!("{name}: {} rows", served.len()));
    }
    eprintln!(
        "{rounds} rounds (seed {seed:#x}), {stored} events, {mid_checkpoint_kills} kills while \
         a checkpoint was being written, {starts_killed} while starting, unanswered publishes kept / not kept (sent again) \
         {unanswered_kept:?}, oldest kept offsets {deleted:?}, {}; {:?}",
        summary.join(", "),
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "the test took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_two_streams_alternate_in_event_time() {
    let mut seen = BTreeSet::new();
    let mut last = String::new();
    for n in 0..1_000 {
        let event = event(n, false);
        let ts = event["ts"].as_str().unwrap_or_default().to_string();
        assert!(ts > last, "{ts} after {last}");
        last = ts;
        seen.insert(stream_of(n));
    }
    assert_eq!(seen.len(), 2);
    assert!(event(0, true)["ts"].as_str().unwrap_or_default() >= time(FAR).as_str());
    assert_eq!(
        normalise_time("2024-01-01T10:00:00.500Z"),
        normalise_time("2024-01-01 10:00:00.5")
    );
}
