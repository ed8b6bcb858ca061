//! `sluice serve` against hostile and careless requests: names that look like paths, SQL in
//! a query's name, definitions past the limits, deep statements, acks of offsets that do not
//! exist, and a catalog entry that no longer runs. The server answers each with a clear
//! error and stays up; nothing lands outside its data directory.

mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server, self_signed_certificate, temp_dir};

fn error_of(client: &mut Client, request: Value) -> String {
    let reply = client.request(request.clone());
    assert_eq!(reply["ok"], json!(false), "{request} was answered {reply}");
    reply["error"].as_str().unwrap_or_default().to_string()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn offsets(reply: &Value) -> Vec<u64> {
    reply["appended"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["offset"].as_u64()).collect())
        .unwrap_or_default()
}

#[test]
fn stream_names_never_reach_outside_the_data_directory_nor_share_a_log() {
    let root = temp_dir();
    let data = root.path().join("data");
    let server = Server::start(&data, &[]);
    let mut client = server.connect();
    for name in ["../../x", "/tmp/sluice-absolute", "v", "x/../v", ".."] {
        let sql = format!("CREATE TABLE \"{name}\" (a INT)");
        client.ok(json!({"op": "sql", "sql": sql}));
    }
    // Each name has a directory of its own under streams/, and nothing is beside data/.
    assert_eq!(
        entries(&data.join("streams")),
        vec![
            "%2E%2E",
            "%2E%2E%2F%2E%2E%2Fx",
            "%2Ftmp%2Fsluice-absolute",
            "v",
            "x%2F%2E%2E%2Fv"
        ]
    );
    assert_eq!(entries(root.path()), vec!["data"]);
    assert!(!Path::new("/tmp/sluice-absolute").exists());
    // Publishes to `v` and to `x/../v` each get their own offsets.
    let first = client.ok(json!({"op": "publish", "stream": "v", "event": {"a": 1}}));
    let second = client.ok(json!({"op": "publish", "stream": "x/../v", "event": {"a": 2}}));
    assert_eq!((offsets(&first), offsets(&second)), (vec![0], vec![0]));
    // And a restart finds every row where it was.
    server.kill();
    let server = Server::start(&data, &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "subscribe", "stream": "v", "from": "earliest"}));
    assert_eq!(client.pushed_rows(1), vec![json!({"op": "+I", "a": 1})]);
}

#[test]
fn a_registered_querys_name_is_data_not_sql() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": "CREATE TABLE victim (a INT)"}));
    let injected = "q AS SELECT 1; DROP TABLE victim; CREATE TABLE injected (a INT); \
                    CREATE VIEW z";
    let error = error_of(
        &mut client,
        json!({"op": "register", "name": injected, "sql": "SELECT a FROM victim"}),
    );
    assert!(
        error.contains("a query name is letters, digits and '_'"),
        "{error}"
    );
    let error = error_of(
        &mut client,
        json!({"op": "register", "name": "q", "sql": "SELECT a FROM victim; DROP TABLE victim"}),
    );
    assert_eq!(error, "register takes one SELECT; 2 statement(s) were sent");
    let error = error_of(
        &mut client,
        json!({"op": "register", "name": "q", "sql": "DROP TABLE victim"}),
    );
    assert_eq!(error, "register takes one SELECT; 1 statement(s) were sent");
    let listed = client.ok(json!({"op": "list"}));
    assert_eq!(listed["streams"], json!(["victim"]));
    assert_eq!(listed["queries"], json!([]));
    client.ok(json!({"op": "register", "name": "Big_1", "sql": "SELECT a FROM victim"}));
}

#[test]
fn definitions_past_the_limits_are_refused_and_the_server_stays_up() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    let error = error_of(
        &mut client,
        json!({"op": "sql", "sql": "CREATE TABLE many (a INT) WITH ('partitions' = '1000000000')"}),
    );
    assert_eq!(
        error,
        "option 'partitions' = '1000000000': a stream has from 1 to 256 partitions"
    );
    assert_eq!(entries(&dir.path().join("streams")), Vec::<String>::new());
    client.ok(
        json!({"op": "sql", "sql": "CREATE TABLE ticks (price INT, ts TIMESTAMP(3), \
        WATERMARK FOR ts AS ts) WITH ('partitions' = '256')"}),
    );
    let hop = "SELECT window_end, COUNT(*) FROM TABLE(HOP(TABLE ticks, DESCRIPTOR(ts), \
               INTERVAL '0.001' SECOND, INTERVAL '1' DAY)) GROUP BY window_start, window_end";
    let error = error_of(
        &mut client,
        json!({"op": "register", "name": "hop", "sql": hop}),
    );
    assert!(
        error.contains("puts each row in 86400000 windows (limit 500)"),
        "{error}"
    );
    // 1 000 ANDed comparisons: refused, not a crash; 900 plan.
    let conditions = |count: usize| {
        let chain: Vec<String> = (0..count).map(|i| format!("price <> {i}")).collect();
        format!("SELECT price FROM ticks WHERE {}", chain.join(" AND "))
    };
    for op in ["sql", "register"] {
        let request = json!({"op": op, "name": "deep", "sql": conditions(1_000)});
        let error = error_of(&mut client, request);
        assert!(error.contains("nested too deeply"), "{error}");
    }
    let alert = format!(
        "CREATE ALERT deep ON ticks WHERE {}",
        conditions(1_000)
            .split(" WHERE ")
            .nth(1)
            .unwrap_or_default()
    );
    let error = error_of(&mut client, json!({"op": "sql", "sql": alert}));
    assert!(error.contains("nested too deeply"), "{error}");
    client.ok(json!({"op": "register", "name": "wide", "sql": conditions(900)}));
    // A pattern nested 4 000 deep.
    let pattern = format!("{}A{}", "(".repeat(4_000), ")".repeat(4_000));
    let deep_pattern = format!(
        "SELECT * FROM ticks MATCH_RECOGNIZE (ORDER BY ts MEASURES A.price AS p \
         PATTERN ({pattern}) DEFINE A AS price > 0)"
    );
    let error = error_of(
        &mut client,
        json!({"op": "register", "name": "nested", "sql": deep_pattern}),
    );
    assert!(error.contains("nests groups more than 64 deep"), "{error}");
    // Views on views, 64 deep at most.
    client.ok(json!({"op": "sql", "sql": "CREATE VIEW v1 AS SELECT price FROM ticks"}));
    for level in 2..=64 {
        let sql = format!("CREATE VIEW v{level} AS SELECT price FROM v{}", level - 1);
        client.ok(json!({"op": "sql", "sql": sql}));
    }
    let error = error_of(
        &mut client,
        json!({"op": "sql", "sql": "CREATE VIEW v65 AS SELECT price FROM v64"}),
    );
    assert!(error.contains("planned on 64 views"), "{error}");
    client.ok(json!({"op": "register", "name": "deepest", "sql": "SELECT price FROM v63"}));
    client.ok(json!({"op": "sql", "sql": "EXPLAIN SELECT price FROM v64"}));
    client.ok(json!({"op": "publish", "stream": "ticks",
                     "event": {"price": 5, "ts": "2024-01-01 00:00:00"}}));
    assert_eq!(client.ok(json!({"op": "ping"}))["pong"], json!(true));
}

#[test]
fn acks_of_offsets_or_partitions_that_do_not_exist_are_refused() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": "CREATE TABLE t (a INT) WITH ('partitions' = '2')"}));
    client.ok(json!({"op": "publish", "stream": "t", "events": [{"a": 1}, {"a": 2}]}));
    let subscribed = client.ok(json!({"op": "subscribe", "stream": "t", "from": "earliest",
                                      "group": "g"}));
    let subscription = subscribed["subscription"].clone();
    client.pushed(2);
    let ack = |partition: u64, offset: u64| {
        json!({"op": "ack", "subscription": subscription, "partition": partition,
               "offset": offset})
    };
    assert_eq!(
        error_of(&mut client, ack(0, 1_000_000_000_000)),
        "offset 1000000000000 of partition 0 has not been written: its offsets end before 2"
    );
    assert_eq!(
        error_of(&mut client, ack(7, 0)),
        "there is no partition 7 to ack: the subscription reads partitions 0 to 1"
    );
    client.ok(ack(0, 1));
    // The group still gets new rows.
    client.ok(json!({"op": "publish", "stream": "t", "events": [{"a": 3}, {"a": 4}]}));
    let rows = client.pushed_rows(2);
    assert_eq!(
        rows,
        vec![json!({"op": "+I", "a": 3}), json!({"op": "+I", "a": 4})]
    );
}

#[test]
fn a_catalog_entry_that_no_longer_runs_is_left_out_and_shown() {
    let dir = temp_dir();
    let journal = [
        json!({"kind": "statement", "sql": "CREATE TABLE kept (a INT)", "at": 0}),
        json!({"kind": "statement",
               "sql": "CREATE TABLE huge (a INT) WITH ('partitions' = '100000')", "at": 0}),
        json!({"kind": "register", "name": "bad; DROP TABLE kept", "sql": "SELECT a FROM kept",
               "at": 0}),
        json!({"kind": "register", "name": "fine", "sql": "SELECT a FROM kept", "at": 0}),
    ];
    let text: String = journal.iter().map(|e| format!("{e}\n")).collect();
    fs::write(dir.path().join("catalog.jsonl"), text).unwrap_or_else(|e| panic!("{e}"));
    let server = Server::start(dir.path(), &[]);
    assert!(
        server.said.starts_with(
            "catalog: failed on start, left out: CREATE TABLE huge (a INT) WITH \
             ('partitions' = '100000'): option 'partitions' = '100000': a stream has from 1 \
             to 256 partitions\n"
        ),
        "{}",
        server.said
    );
    let mut client = server.connect();
    let listed = client.ok(json!({"op": "list"}));
    assert_eq!(listed["streams"], json!(["kept"]));
    assert_eq!(listed["queries"], json!(["fine"]));
    let failed: Vec<&str> = listed["failed"]
        .as_array()
        .map(|f| f.iter().filter_map(|e| e["entry"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        failed,
        vec![
            "CREATE TABLE huge (a INT) WITH ('partitions' = '100000')",
            "register bad; DROP TABLE kept: SELECT a FROM kept"
        ]
    );
    assert_eq!(
        listed["failed"][0]["error"],
        json!("option 'partitions' = '100000': a stream has from 1 to 256 partitions")
    );
    let stats = client.ok(json!({"op": "stats"}));
    assert_eq!(stats["failed"], listed["failed"]);
}

#[test]
fn a_row_a_query_cannot_compute_goes_to_its_error_output_and_the_rest_is_published() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": "CREATE TABLE t (a BIGINT, b BIGINT)"}));
    client.ok(json!({"op": "register", "name": "ratio", "sql": "SELECT a / b AS r FROM t"}));
    client.ok(json!({"op": "publish", "stream": "t",
                     "events": [{"a": 6, "b": 2}, {"a": 7, "b": 0}, {"a": 8, "b": 4}]}));
    client.ok(json!({"op": "subscribe", "query": "ratio", "from": "earliest"}));
    let rows = client.pushed_rows(2);
    assert_eq!(
        rows,
        vec![json!({"op": "+I", "r": 3}), json!({"op": "+I", "r": 2})]
    );
    let stats = client.ok(json!({"op": "stats"}));
    assert_eq!(stats["queries"][0]["name"], json!("ratio"));
    assert_eq!(stats["queries"][0]["failed_rows"], json!(1));
    let divide_by_zero = |a: i64| json!({"error": "Arrow error: Divide by zero error", "row": format!("{{\"a\":{a},\"b\":0}}")});
    client.ok(json!({"op": "subscribe", "query": "ratio.errors", "from": "earliest"}));
    assert_eq!(client.pushed_rows(1), vec![divide_by_zero(7)]);

    // A restart makes the error output again from the stream's log, without repeating it.
    drop(client);
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "publish", "stream": "t", "events": [{"a": 9, "b": 0}]}));
    client.ok(json!({"op": "subscribe", "query": "ratio.errors", "from": "earliest"}));
    let pushed = client.pushed(2);
    let offsets: Vec<&Value> = pushed.iter().map(|line| &line["offset"]).collect();
    assert_eq!(offsets, vec![&json!(0), &json!(1)]);
    let rows: Vec<Value> = pushed.into_iter().map(|line| line["row"].clone()).collect();
    assert_eq!(rows, vec![divide_by_zero(7), divide_by_zero(9)]);
    let reply = client.request(json!({"op": "subscribe", "query": "ratio.oops"}));
    assert_eq!(reply["error"], json!("no query named 'ratio.oops'"));
}

#[test]
fn a_querys_late_rows_are_an_output_of_their_own() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(
        json!({"op": "sql", "sql": "CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), \
        WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)"}),
    );
    client.ok(json!({"op": "register", "name": "per_minute", "sql":
        "SELECT page, window_end, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE clicks, \
         DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY page, window_start, window_end"}));
    for (page, ts) in [
        ("a", "2026-01-01 10:00:10"),
        ("a", "2026-01-01 10:01:30"),
        ("b", "2026-01-01 10:00:20"),
    ] {
        client
            .ok(json!({"op": "publish", "stream": "clicks", "events": [{"page": page, "ts": ts}]}));
    }
    client.ok(json!({"op": "subscribe", "query": "per_minute.late", "from": "earliest"}));
    assert_eq!(
        client.pushed_rows(1),
        vec![json!({"op": "late", "page": "b",
                    "window_start": "2026-01-01 10:00:00", "window_end": "2026-01-01 10:01:00"})]
    );
    let stats = client.ok(json!({"op": "stats"}));
    assert_eq!(stats["queries"][0]["late_rows"], json!(1));
}

#[test]
fn with_a_certificate_the_server_speaks_tls_and_only_tls() {
    let dir = temp_dir();
    let (cert, key) = self_signed_certificate(dir.path());
    let server = Server::start(
        &dir.path().join("data"),
        &["--token", "s3cret", "--tls-cert", &cert, "--tls-key", &key],
    );
    let (host, port) = server.address.rsplit_once(':').unwrap_or_default();
    // A client speaking plain text is answered with a TLS alert record (content type 21)
    // and disconnected; the server stays up.
    let mut plain = server.connect();
    plain.send_line(r#"{"op":"auth","token":"s3cret"}"#);
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain.reader, &mut answer);
    assert_eq!(
        answer.first(),
        Some(&21),
        "a plain-text client was answered: {answer:?}"
    );
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/client.py");
    let python = |ca: &str| {
        let mut child = std::process::Command::new("python3")
            .arg(&client)
            .args([host, port, ca])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let requests =
                "{\"id\":1,\"op\":\"auth\",\"token\":\"s3cret\"}\n{\"id\":2,\"op\":\"ping\"}\n";
            std::io::Write::write_all(&mut stdin, requests.as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
    };
    let output = python(&cert);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"authenticated\":true,\"id\":1,\"ok\":true}\n{\"id\":2,\"ok\":true,\"pong\":true}\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A client that does not trust the certificate refuses the server.
    let untrusting = python("-");
    assert!(!untrusting.status.success());
    assert!(
        String::from_utf8_lossy(&untrusting.stderr).contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        String::from_utf8_lossy(&untrusting.stderr)
    );
}

#[test]
fn a_certificate_that_cannot_be_read_stops_the_server_with_its_name() {
    let dir = temp_dir();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap_or_else(|e| panic!("{e}"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-key"])
        .arg(&cert)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run sluice: {e}"));
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "error: TLS: {}: no certificate in the file\n",
            cert.display()
        )
    );
}

/// A query whose pattern search takes seconds over one publish (every path of `(A|B)+` dies
/// at a row with v = -1, and a condition that counts the match so far keeps the search from
/// sharing states, up to its step budget from each row) does not hold up a publish to
/// another stream: that one is acknowledged while the first is still being fed.
#[test]
fn a_slow_query_does_not_hold_up_publishes_to_other_streams() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(
        json!({"op": "sql", "sql": "CREATE TABLE slow (ts TIMESTAMP(3), v BIGINT, \
        WATERMARK FOR ts AS ts); CREATE TABLE quick (n BIGINT)"}),
    );
    client.ok(json!({"op": "register", "name": "search", "sql":
        "SELECT * FROM slow MATCH_RECOGNIZE (ORDER BY ts MEASURES COUNT(A.*) AS n \
         ONE ROW PER MATCH PATTERN ((A | B)+ C) \
         DEFINE A AS A.v >= 0 AND COUNT(A.*) > 0, B AS B.v >= 0, C AS C.v = 999)"}));
    client.ok(json!({"op": "register", "name": "echo", "sql": "SELECT n FROM quick"}));
    // Every 40th row stops every way through; the search from most rows is abandoned at
    // its step budget.
    let events: Vec<Value> = (0..800)
        .map(|second| {
            let ts = format!(
                "2026-01-01 {:02}:{:02}:{:02}",
                second / 3600,
                second / 60 % 60,
                second % 60
            );
            json!({"ts": ts, "v": if second % 40 == 39 { -1 } else { 1 }})
        })
        .collect();
    client.ok(json!({"op": "publish", "stream": "slow", "events": events}));
    let started = Instant::now();
    client.ok(json!({"op": "publish", "stream": "quick", "events": [{"n": 1}]}));
    let acknowledged = started.elapsed();
    // `stats` waits until the queries have seen every acknowledged publish.
    client.ok(json!({"op": "stats"}));
    let fed = started.elapsed();
    println!("quick publish acknowledged after {acknowledged:?}; both fed after {fed:?}");
    assert!(
        fed > Duration::from_millis(500),
        "the search took only {fed:?}: the test shows nothing"
    );
    assert!(
        acknowledged < Duration::from_millis(100),
        "the publish to another stream waited {acknowledged:?}"
    );
    client.ok(json!({"op": "subscribe", "query": "echo", "from": "earliest"}));
    assert_eq!(client.pushed_rows(1), vec![json!({"op": "+I", "n": 1})]);
}

#[test]
fn a_stream_that_tolerates_errors_keeps_the_events_that_do_not_fit_apart() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(
        json!({"op": "sql", "sql": "CREATE TABLE readings (sensor STRING, celsius DOUBLE) \
        WITH ('errors.tolerance' = 'all'); CREATE TABLE strict (sensor STRING, celsius DOUBLE)"}),
    );
    let events = json!([{"sensor": "a", "celsius": 20.5}, {"sensor": "b", "celsius": "warm"},
                        {"sensor": "c", "celsius": 19.0}]);
    let reply = client.ok(json!({"op": "publish", "stream": "readings", "events": events}));
    assert_eq!(
        reply["appended"],
        json!([{"partition": 0, "offset": 0, "count": 2}])
    );
    let rejected = &reply["rejected"];
    assert_eq!(rejected[0]["event"], json!(2), "{reply}");
    // Without the option, the same publish fails whole.
    let refused = client.request(json!({"op": "publish", "stream": "strict", "events": events}));
    assert_eq!(refused["ok"], json!(false));
    client.ok(json!({"op": "subscribe", "stream": "readings.rejected", "from": "earliest"}));
    let row = client.pushed_rows(1).remove(0);
    assert_eq!(row["event"], json!(2));
    assert_eq!(row["text"], json!(r#"{"celsius":"warm","sensor":"b"}"#));
    assert_eq!(row["reason"], rejected[0]["reason"]);
    // Kept across a restart, and a bad option is refused.
    drop(client);
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "subscribe", "stream": "readings.rejected", "from": "earliest"}));
    assert_eq!(client.pushed_rows(1), vec![row]);
    let bad = client.request(json!({"op": "sql", "sql":
        "CREATE TABLE t (x INT) WITH ('errors.tolerance' = 'some')"}));
    assert_eq!(
        bad["error"],
        json!(
            "option 'errors.tolerance' = 'some': 'none' (a publish with an event that does not \
               fit fails whole) or 'all' (such events are skipped and kept apart)"
        )
    );
}

/// The example requests of `docs/protocol.md`, each line mutated byte by byte or field by
/// field, sent by the thousand: every line is answered and the server stays up.
#[test]
fn mutated_request_lines_are_answered_and_the_server_stays_up() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md"))
        .unwrap_or_else(|e| panic!("cannot read docs/protocol.md: {e}"));
    let examples: Vec<&str> = doc
        .lines()
        .filter(|line| line.starts_with("{\"op\":") && !line.contains("\"quit\""))
        .collect();
    assert!(examples.len() >= 10, "{examples:?}");
    let hostile = [
        "null",
        "-1",
        "1e400",
        "18446744073709551616",
        "\"\"",
        "[]",
        "{}",
        "\"\\u0000\"",
        "\"../../x\"",
        "true",
        "\"earliest\"",
        "{\"time\": -9223372036854775808}",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..2_000 {
        let example = examples[next(examples.len())];
        let line = match next(3) {
            // A byte replaced.
            0 => {
                let mut bytes = example.as_bytes().to_vec();
                let at = next(bytes.len());
                let replacements = b"{}[]\":,0a\\ ";
                bytes[at] = replacements[next(replacements.len())];
                String::from_utf8_lossy(&bytes).into_owned()
            }
            // A field's value replaced.
            1 => match serde_json::from_str::<Value>(example) {
                Ok(Value::Object(mut fields)) => {
                    let keys: Vec<String> = fields.keys().cloned().collect();
                    let key = &keys[next(keys.len())];
                    let value = hostile[next(hostile.len())];
                    fields.insert(
                        key.clone(),
                        serde_json::from_str(value).unwrap_or(Value::Null),
                    );
                    Value::Object(fields).to_string()
                }
                _ => example.to_string(),
            },
            // Cut short.
            _ => example[..next(example.len())].to_string(),
        };
        if line.trim().is_empty() {
            // Blank lines are skipped without a reply.
            continue;
        }
        client.send_line(&line);
        let reply = client.read_value();
        if reply.get("subscription").is_some() && reply.get("ok").is_none() {
            continue;
        }
        assert!(reply.get("ok").is_some(), "{line} was answered {reply}");
    }
    let mut fresh = server.connect();
    assert_eq!(fresh.ok(json!({"op": "ping"}))["pong"], json!(true));
}
