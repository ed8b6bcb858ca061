//! `sluice serve` end to end: the real binary over real sockets.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Client, Server, temp_dir};

const CLICKS: &str = "CREATE TABLE clicks (user_id STRING, url STRING, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('partitions' = '4', 'key' = 'user_id')";

fn click(user: usize, url: &str, second: usize) -> Value {
    json!({"user_id": format!("u{user}"), "url": url,
           "ts": format!("2024-01-01 10:{:02}:{:02}", second / 60, second % 60)})
}

/// A xorshift generator: the same seed always gives the same numbers.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// (user, url) of pushed stream rows.
fn clicks_of(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["row"]["user_id"].as_str().unwrap_or_default().to_string(),
                r["row"]["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn publish_subscribe_ack_and_resume_in_a_group() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": CLICKS}));
    let events: Vec<Value> = (0..8).map(|i| click(i, &format!("/{i}"), i)).collect();
    let reply = client.ok(json!({"op": "publish", "stream": "clicks", "events": events}));
    let counted: u64 = reply["appended"]
        .as_array()
        .map(|a| a.iter().map(|p| p["count"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(counted, 8);

    let mut reader = server.connect();
    let subscribed = reader.ok(json!({"op": "subscribe", "stream": "clicks",
                                      "from": "earliest", "group": "billing"}));
    assert_eq!(subscribed["partitions"], json!([0, 1, 2, 3]));
    let subscription = subscribed["subscription"].clone();
    let first = reader.pushed(8);
    let mut seen: Vec<(String, String)> = clicks_of(&first);
    seen.sort();
    let mut expected: Vec<(String, String)> =
        (0..8).map(|i| (format!("u{i}"), format!("/{i}"))).collect();
    expected.sort();
    assert_eq!(seen, expected);
    // Acknowledge all but the last row of each partition.
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for row in &first {
        let (partition, offset) = (row["partition"].as_u64(), row["offset"].as_u64());
        if let (Some(p), Some(o)) = (partition, offset) {
            let entry = last.entry(p).or_insert(o);
            *entry = (*entry).max(o);
        }
    }
    for row in &first {
        let (p, o) = (
            row["partition"].as_u64().unwrap_or(0),
            row["offset"].as_u64().unwrap_or(0),
        );
        if last.get(&p) != Some(&o) {
            reader.ok(json!({"op": "ack", "subscription": subscription,
                             "partition": p, "offset": o}));
        }
    }
    reader.ok(json!({"op": "quit"}));
    // The group resumes after what it acknowledged: the unacknowledged rows come again,
    // then new ones.
    client.ok(json!({"op": "publish", "stream": "clicks", "event": click(1, "/new", 30)}));
    let mut again = server.connect();
    // Partitions the group committed nothing on start from the earliest row.
    again.ok(
        json!({"op": "subscribe", "stream": "clicks", "group": "billing",
                    "from": "earliest"}),
    );
    let resumed = clicks_of(&again.pushed(last.len() + 1));
    let unacked: BTreeSet<(String, String)> = first
        .iter()
        .filter(|r| {
            last.get(&r["partition"].as_u64().unwrap_or(0)) == r["offset"].as_u64().as_ref()
        })
        .map(|r| clicks_of(std::slice::from_ref(r)).remove(0))
        .collect();
    let mut want: BTreeSet<(String, String)> = unacked;
    want.insert(("u1".into(), "/new".into()));
    assert_eq!(resumed.into_iter().collect::<BTreeSet<_>>(), want);
    // Lag shows in stats.
    let stats = client.ok(json!({"op": "stats"}));
    assert_eq!(stats["streams"][0]["name"], json!("clicks"));
}

#[test]
fn a_group_splits_the_partitions_and_every_group_sees_everything() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut producer = server.connect();
    producer.ok(json!({"op": "sql", "sql": CLICKS}));
    let mut members = [server.connect(), server.connect()];
    for member in &mut members {
        member.ok(
            json!({"op": "subscribe", "stream": "clicks", "from": "earliest",
                         "group": "split"}),
        );
    }
    let events: Vec<Value> = (0..40).map(|i| click(i, "/x", i)).collect();
    producer.ok(json!({"op": "publish", "stream": "clicks", "events": events}));
    let stats = producer.ok(json!({"op": "stats"}));
    let sizes: Vec<u64> = (0..4)
        .map(|p| {
            stats["streams"][0]["partitions"][p]["end"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), 40);
    // With both in the group, the first reads partitions 0 and 2, the second 1 and 3.
    let mut users = BTreeSet::new();
    for (member, share) in members.iter_mut().zip([[0usize, 2], [1, 3]]) {
        let count = share.iter().map(|p| sizes[*p]).sum::<u64>() as usize;
        for row in member.pushed(count) {
            let partition = row["partition"].as_u64().unwrap_or(9) as usize;
            assert!(
                share.contains(&partition),
                "partition {partition} outside {share:?}"
            );
            users.insert(
                row["row"]["user_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert_eq!(users.len(), 40);
    // Three other groups each get all 40 rows.
    for group in ["a", "b", "c"] {
        let mut reader = server.connect();
        reader.ok(
            json!({"op": "subscribe", "stream": "clicks", "from": "earliest",
                         "group": group}),
        );
        let rows = reader.pushed(40);
        let distinct: BTreeSet<String> = rows
            .iter()
            .map(|r| r["row"]["user_id"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(distinct.len(), 40, "group {group}");
    }
}

#[test]
fn a_restart_loses_nothing_acknowledged_and_repeats_no_result() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": CLICKS}));
    client.ok(json!({"op": "register", "name": "per_minute", "sql":
        "SELECT window_start, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), \
         INTERVAL '1' MINUTE)) GROUP BY window_start, window_end"}));
    for second in [0, 20, 70, 130] {
        client
            .ok(json!({"op": "publish", "stream": "clicks", "event": click(second, "/a", second)}));
    }
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "publish", "stream": "clicks", "event": click(9, "/b", 200)}));
    client.ok(json!({"op": "subscribe", "query": "per_minute", "from": "earliest"}));
    let results: Vec<(String, i64)> = client
        .pushed(3)
        .iter()
        .map(|r| {
            (
                r["row"]["window_start"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["row"]["n"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            ("2024-01-01 10:00:00".to_string(), 2),
            ("2024-01-01 10:01:00".to_string(), 1),
            ("2024-01-01 10:02:00".to_string(), 1),
        ]
    );
    client.ok(json!({"op": "subscribe", "stream": "clicks", "from": "earliest"}));
    assert_eq!(client.pushed(5).len(), 5);
    // Nothing more comes: a ping's reply is the next line.
    assert_eq!(client.raw(r#"{"op":"ping"}"#)["pong"], json!(true));
    assert!(client.pushed.is_empty(), "more rows: {:?}", client.pushed);
}

#[test]
fn bad_lines_get_errors_and_the_server_stays_up() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--max-line-bytes", "4096"]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": CLICKS}));
    let cases: [(&str, &str); 10] = [
        ("not json", "the line is not JSON"),
        ("[1, 2]", "a request is a JSON object"),
        (r#"{"op": "fly"}"#, "unknown op 'fly'"),
        (r#"{"id": 5}"#, "a request needs an \"op\""),
        (r#"{"op": "sql", "sql": "SELEC 1"}"#, "SELEC"),
        (
            r#"{"op": "publish", "stream": "nope", "event": {}}"#,
            "unknown stream 'nope'",
        ),
        (
            r#"{"op": "publish", "stream": "clicks", "event": {"ts": "soon"}}"#,
            "event 1 does not fit stream 'clicks'",
        ),
        (r#"{"op": "publish", "stream": "clicks"}"#, "publish needs"),
        (
            r#"{"op": "subscribe", "query": "nothing"}"#,
            "no query named 'nothing'",
        ),
        (
            r#"{"op": "ack", "subscription": 99, "partition": 0, "offset": 0}"#,
            "no subscription 99",
        ),
    ];
    for (line, expected) in cases {
        let reply = client.raw(line);
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{line} gave {reply}");
    }
    let long = format!(r#"{{"op": "ping", "pad": "{}"}}"#, "x".repeat(10_000));
    let reply = client.raw(&long);
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("over the limit of 4096")
    );
    // Thousands of fuzzed lines: mutations of valid requests and random bytes.
    let valid = [
        r#"{"op":"publish","stream":"clicks","event":{"user_id":"u","url":"/","ts":"2024-01-01 10:00:00"}}"#,
        r#"{"op":"subscribe","stream":"clicks","from":3}"#,
        r#"{"op":"sql","sql":"SHOW TABLES"}"#,
    ];
    let mut random = xorshift(0x2545_f491_4f6c_dd1du64);
    let mut stream = server.connect();
    for i in 0..3_000 {
        let mut bytes = valid[i % valid.len()].as_bytes().to_vec();
        for _ in 0..(1 + random() % 4) {
            let at = (random() as usize) % bytes.len();
            bytes[at] = match random() % 3 {
                0 => b' ' + (random() % 95) as u8,
                1 => (random() % 256) as u8,
                _ => b'"',
            };
        }
        bytes.retain(|b| *b != b'\n');
        stream.send_line(&String::from_utf8_lossy(&bytes));
    }
    // Every line was answered (pushed rows aside) and the server still answers.
    let mut replies = 0;
    while replies < 3_000 {
        let value = stream.read_value();
        if value.get("ok").is_some() {
            replies += 1;
        }
    }
    assert_eq!(client.ok(json!({"op": "ping"}))["pong"], json!(true));
}

#[test]
fn a_token_is_asked_for_and_connections_are_limited() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--token", "s3cret", "--max-connections", "2"]);
    let mut client = server.connect();
    let refused = client.request(json!({"op": "ping"}));
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("authenticate first")
    );
    let wrong = client.request(json!({"op": "auth", "token": "guess"}));
    assert_eq!(wrong["error"], json!("the token is wrong"));
    client.ok(json!({"op": "auth", "token": "s3cret"}));
    client.ok(json!({"op": "ping"}));
    let _second = server.connect();
    let mut third = server.connect();
    let line = third.read_value();
    assert!(
        line["error"]
            .as_str()
            .unwrap_or_default()
            .contains("too many connections")
    );
}

#[test]
fn wrong_tokens_are_answered_ever_later_and_end_the_connection() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--token", "s3cret"]);
    let mut client = server.connect();
    let started = Instant::now();
    let errors: Vec<Value> = (0..5)
        .map(|guess| {
            client.request(json!({"op": "auth", "token": format!("guess{guess}")}))["error"].clone()
        })
        .collect();
    let elapsed = started.elapsed();
    let mut expected = vec![json!("the token is wrong"); 4];
    expected.push(json!(
        "the token is wrong; after 5 wrong tokens the connection closes"
    ));
    assert_eq!(errors, expected);
    // Answered after 100, 200, 400, 800 and 1 600 ms.
    assert!(elapsed >= Duration::from_millis(3_100), "{elapsed:?}");
    let mut rest = String::new();
    assert_eq!(client.reader.read_line(&mut rest).ok(), Some(0), "{rest}");
    // The address's next failure waits longer still; the right token is taken at once and
    // forgets the failures.
    let mut next = server.connect();
    let started = Instant::now();
    next.request(json!({"op": "auth", "token": "guess"}));
    assert!(started.elapsed() >= Duration::from_millis(3_200));
    next.ok(json!({"op": "auth", "token": "s3cret"}));
    let started = Instant::now();
    next.request(json!({"op": "auth", "token": "guess"}));
    let first_again = started.elapsed();
    assert!(
        (Duration::from_millis(100)..Duration::from_millis(3_200)).contains(&first_again),
        "{first_again:?}"
    );
}

#[test]
fn a_slow_subscriber_does_not_grow_the_servers_memory() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut producer = server.connect();
    producer.ok(json!({"op": "sql", "sql": CLICKS}));
    let mut idle = server.connect();
    idle.ok(json!({"op": "subscribe", "stream": "clicks", "from": "earliest"}));
    let url = "/".repeat(200);
    let publish = |producer: &mut Client, round: usize| {
        let events: Vec<Value> = (0..1_000).map(|i| click(i, &url, round % 3_600)).collect();
        producer.ok(json!({"op": "publish", "stream": "clicks", "events": events}));
    };
    for round in 0..20 {
        publish(&mut producer, round);
    }
    let before = server.rss_kib();
    // 200 000 more rows, about 60 MB as JSON, that the subscriber does not read.
    for round in 20..220 {
        publish(&mut producer, round);
    }
    let after = server.rss_kib();
    assert!(before > 0, "no RSS reading");
    assert!(
        after < before + 48 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(idle.pushed(1).len(), 1);
}

#[test]
fn the_python_client_in_docs_talks_to_the_server() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let (host, port) = server.address.rsplit_once(':').unwrap_or_default();
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/client.py");
    let mut child = Command::new("python3")
        .arg(client)
        .args([host, port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    let requests = format!(
        "{}\n{}\n{}\n",
        json!({"id": 1, "op": "sql", "sql": CLICKS}),
        json!({"id": 2, "op": "publish", "stream": "clicks", "event": click(1, "/p", 0)}),
        json!({"id": 3, "op": "ping"}),
    );
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(requests.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        vec![
            r#"{"id":1,"ok":true,"results":[{"created":"stream","name":"clicks"}]}"#,
            r#"{"appended":[{"count":1,"offset":0,"partition":2}],"id":2,"ok":true}"#,
            r#"{"id":3,"ok":true,"pong":true}"#,
        ]
    );
}

/// Kills the server at random moments while two producers publish, twenty times (or
/// `SLUICE_CRASH_ROUNDS`: `repl/tests/crash_soak.sh` runs many more); after the last restart
/// every acknowledged event is there exactly once and each partition's offsets are
/// contiguous.
#[test]
fn crashes_while_publishing_lose_no_acknowledged_event() {
    let rounds: u64 = std::env::var("SLUICE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = temp_dir();
    let mut acknowledged: BTreeSet<u64> = BTreeSet::new();
    let mut next_event = 0u64;
    let mut random = xorshift(0x9e37_79b9_7f4a_7c15u64);
    for round in 0..rounds {
        let server = Server::start(dir.path(), &[]);
        if round == 0 {
            server.connect().ok(json!({"op": "sql", "sql":
                "CREATE TABLE events (n BIGINT, producer INT) WITH ('partitions' = '3', 'key' = 'n')"}));
        }
        let mut producers = Vec::new();
        for producer in 0..2 {
            let address = server.address.clone();
            let first = next_event + producer * 1_000_000;
            producers.push(std::thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(stream) = TcpStream::connect(&address) else {
                    return acked;
                };
                let Ok(read) = stream.try_clone() else {
                    return acked;
                };
                let mut writer = stream;
                let mut reader = BufReader::new(read);
                for n in first.. {
                    let events: Vec<Value> = (0..3)
                        .map(|k| json!({"n": n * 3 + k, "producer": producer}))
                        .collect();
                    let line = json!({"op": "publish", "stream": "events", "events": events});
                    if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
                        break;
                    }
                    let mut reply = String::new();
                    match reader.read_line(&mut reply) {
                        Ok(n) if n > 0 && reply.contains(r#""ok":true"#) => {}
                        _ => break,
                    }
                    acked.extend((0..3).map(|k| n * 3 + k));
                }
                acked
            }));
        }
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(50 + random() % 250));
        server.kill();
        for producer in producers {
            acknowledged.extend(producer.join().unwrap_or_default());
        }
        assert!(started.elapsed() < Duration::from_secs(30));
        next_event += 10_000_000;
    }
    assert!(
        acknowledged.len() > 100,
        "only {} events acknowledged",
        acknowledged.len()
    );
    let server = Server::start(dir.path(), &[]);
    let mut reader = server.connect();
    let stats = reader.ok(json!({"op": "stats"}));
    let total: u64 = (0..3)
        .map(|p| {
            stats["streams"][0]["partitions"][p]["end"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    reader.ok(json!({"op": "subscribe", "stream": "events", "from": "earliest"}));
    let rows = reader.pushed(total as usize);
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut offsets: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for row in &rows {
        *seen
            .entry(row["row"]["n"].as_u64().unwrap_or(u64::MAX))
            .or_default() += 1;
        offsets
            .entry(row["partition"].as_u64().unwrap_or(9))
            .or_default()
            .push(row["offset"].as_u64().unwrap_or(0));
    }
    for (partition, offsets) in &offsets {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, &expected, "partition {partition}'s offsets");
    }
    let missing: Vec<&u64> = acknowledged
        .iter()
        .filter(|n| !seen.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost",
        missing.len()
    );
    let repeated: Vec<(&u64, &usize)> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(repeated.is_empty(), "events stored twice: {repeated:?}");
    // A publish is all or nothing: its three events (3n, 3n + 1, 3n + 2) are all kept or none.
    let mut per_publish: BTreeMap<u64, usize> = BTreeMap::new();
    for n in seen.keys() {
        *per_publish.entry(n / 3).or_default() += 1;
    }
    let torn: Vec<(&u64, &usize)> = per_publish.iter().filter(|(_, c)| **c != 3).collect();
    assert!(torn.is_empty(), "publishes kept in part: {torn:?}");
}

#[test]
fn pipelined_publishes_are_answered_in_order() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": CLICKS}));
    for i in 0..200 {
        let request =
            json!({"id": i, "op": "publish", "stream": "clicks", "event": click(i, "/p", i)});
        client.send_line(&request.to_string());
    }
    let mut next_offsets = BTreeMap::new();
    for i in 0..200 {
        let reply = client.read_value();
        assert_eq!(reply["id"], json!(i), "{reply}");
        let appended = reply["appended"].as_array().cloned().unwrap_or_default();
        assert_eq!(appended.len(), 1, "{reply}");
        let partition = appended[0]["partition"].as_u64().unwrap_or(99);
        let next = next_offsets.entry(partition).or_insert(0);
        assert_eq!(appended[0]["offset"], json!(*next), "{reply}");
        *next += 1;
    }
    assert_eq!(next_offsets.values().sum::<u64>(), 200);
}

#[test]
fn a_query_sees_what_comes_after_it_and_a_restart_keeps_it_so() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": CLICKS}));
    let before: Vec<Value> = (0..3).map(|i| click(i, "/before", i)).collect();
    client.ok(json!({"op": "publish", "stream": "clicks", "events": before}));
    client.ok(json!({"op": "register", "name": "urls", "sql": "SELECT user_id, url FROM clicks"}));
    client.ok(json!({"op": "publish", "stream": "clicks", "event": click(3, "/after", 3)}));
    client.ok(json!({"op": "sql", "sql":
        "INSERT INTO clicks VALUES ('u4', '/inserted', TIMESTAMP '2024-01-01 10:00:04')"}));
    let expected = vec![
        ("u3".to_string(), "/after".to_string()),
        ("u4".to_string(), "/inserted".to_string()),
    ];
    client.ok(json!({"op": "subscribe", "query": "urls", "from": "earliest"}));
    assert_eq!(clicks_of(&client.pushed(2)), expected);
    server.kill();

    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "subscribe", "query": "urls", "from": "earliest"}));
    assert_eq!(clicks_of(&client.pushed(2)), expected);
    client.ok(json!({"op": "publish", "stream": "clicks", "event": click(5, "/later", 5)}));
    assert_eq!(
        clicks_of(&client.pushed(1)),
        vec![("u5".to_string(), "/later".to_string())]
    );
    // The inserted row is in the stream's log too.
    client.ok(json!({"op": "subscribe", "stream": "clicks", "from": "earliest"}));
    let urls: BTreeSet<String> = clicks_of(&client.pushed(6))
        .into_iter()
        .map(|(_, url)| url)
        .collect();
    assert!(urls.contains("/inserted"), "{urls:?}");

    // A query registered again under the same name starts afresh.
    client.ok(json!({"op": "cancel", "name": "urls"}));
    let mut client = server.connect();
    client.ok(json!({"op": "register", "name": "urls", "sql": "SELECT user_id, url FROM clicks"}));
    client.ok(json!({"op": "subscribe", "query": "urls", "from": "earliest"}));
    client.ok(json!({"op": "publish", "stream": "clicks", "event": click(6, "/again", 6)}));
    assert_eq!(
        clicks_of(&client.pushed(1)),
        vec![("u6".to_string(), "/again".to_string())]
    );
    assert_eq!(client.raw(r#"{"op":"ping"}"#)["pong"], json!(true));
    assert!(client.pushed.is_empty(), "more rows: {:?}", client.pushed);
}

#[test]
fn a_group_is_warned_as_retention_nears_and_passes_its_offset() {
    let dir = temp_dir();
    let limits = ["--segment-bytes", "4000", "--retention-bytes", "12000"];
    let server = Server::start(dir.path(), &limits);
    let mut consumer = server.connect();
    let mut producer = server.connect();
    producer.ok(json!({"op": "sql", "sql": "CREATE TABLE pings (n BIGINT)"}));
    producer.ok(json!({"op": "publish", "stream": "pings", "event": {"n": 0}}));
    let subscribed = consumer.ok(json!({"op": "subscribe", "stream": "pings",
                                        "group": "slow", "from": "earliest"}));
    let subscription = subscribed["subscription"].clone();
    assert_eq!(consumer.pushed(1)[0]["row"]["n"], json!(0));
    consumer.ok(json!({"op": "ack", "subscription": subscription, "partition": 0, "offset": 0}));
    let mut warnings = Vec::new();
    for n in 1..60 {
        producer.ok(json!({"op": "publish", "stream": "pings", "event": {"n": n}}));
        let line = consumer.pushed(1).remove(0);
        if let Some(warning) = line["warning"].as_str() {
            warnings.push(warning.to_string());
            consumer.pushed(1);
        }
    }
    assert!(
        warnings.len() == 2
            && warnings[0].starts_with(
                "group 'slow' is near the retention edge of partition 0: committed offset 1"
            )
            && warnings[1].starts_with(
                "group 'slow' has fallen behind the retention edge of partition 0: \
                 committed offset 1"
            ),
        "{warnings:?}"
    );
    let stats = producer.ok(json!({"op": "stats"}));
    assert_eq!(
        stats["groups"][0]["retention_edge"],
        json!("behind"),
        "{stats}"
    );
    assert_eq!(stats["groups"][0]["committed"], json!(1), "{stats}");
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = temp_dir();
    let _first = Server::start(dir.path(), &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run sluice serve: {e}"));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("is in use by another sluice process"),
        "{stderr}"
    );
}

const LISTINGS: &str = "CREATE STREAM listings (id BIGINT, city STRING, rooms INT, \
    price BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)";

fn listing(id: u64, city: &str, rooms: u64, price: u64) -> Value {
    json!({"id": id, "city": city, "rooms": rooms, "price": price,
           "ts": format!("2024-01-01 10:{:02}:{:02}", id / 60 % 60, id % 60)})
}

/// (alert, listing id) of pushed firings.
fn firings_of(rows: &[Value]) -> Vec<(String, u64)> {
    rows.iter()
        .map(|r| {
            (
                r["row"]["alert"].as_str().unwrap_or_default().to_string(),
                r["row"]["id"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

#[test]
fn alerts_notify_through_the_socket_and_a_restart_keeps_them() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": LISTINGS}));
    let created = client.ok(json!({"op": "sql", "sql":
        "CREATE ALERT seoul_cheap ON listings WHERE city = 'Seoul' AND price < 500000 \
           AND rooms >= 2; \
         CREATE ALERT big_in_city ON listings WHERE rooms >= 4 \
           WITH ('suppress' = '1 minute', 'suppress.key' = 'city')"}));
    assert_eq!(
        created["results"],
        json!([{"created": "alert", "name": "seoul_cheap"},
               {"created": "alert", "name": "big_in_city"}])
    );
    // A bad condition anywhere in a group registers nothing of it.
    let refused = client.request(json!({"op": "sql", "sql":
        "CREATE ALERT fine ON listings WHERE price > 1; \
         CREATE ALERT broken ON listings WHERE floor_area > 50"}));
    assert_eq!(refused["ok"], json!(false), "{refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("alert 'broken'") && error.contains("floor_area"),
        "{error}"
    );
    let shown = client.ok(json!({"op": "sql", "sql": "SHOW ALERTS"}));
    let names: Vec<&str> = shown["results"][0]["rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["big_in_city", "seoul_cheap"]);

    client.ok(
        json!({"op": "subscribe", "alert": "seoul_cheap", "group": "phone",
                     "from": "earliest"}),
    );
    client.ok(json!({"op": "publish", "stream": "listings", "events": [
        listing(1, "Seoul", 2, 450_000),  // seoul_cheap
        listing(2, "Seoul", 1, 300_000),  // too few rooms
        listing(3, "Busan", 4, 200_000),  // big_in_city (Busan)
        listing(4, "Busan", 5, 900_000),  // suppressed: Busan fired 1 s ago
        listing(5, "Seoul", 4, 480_000),  // both (big_in_city for Seoul)
    ]}));
    let first = client.pushed(2);
    assert_eq!(
        firings_of(&first),
        [
            ("seoul_cheap".to_string(), 1),
            ("seoul_cheap".to_string(), 5)
        ]
    );
    // The phone saw both but acknowledged only the first.
    let subscription = first[0]["subscription"].clone();
    client.ok(json!({"op": "ack", "subscription": subscription,
                     "partition": first[0]["partition"], "offset": first[0]["offset"]}));
    let mut all = server.connect();
    all.ok(json!({"op": "subscribe", "alerts": "listings", "from": "earliest"}));
    assert_eq!(
        firings_of(&all.pushed(4)),
        [
            ("seoul_cheap".to_string(), 1),
            ("big_in_city".to_string(), 3),
            ("seoul_cheap".to_string(), 5),
            ("big_in_city".to_string(), 5),
        ]
    );
    server.kill();

    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "subscribe", "alert": "seoul_cheap", "group": "phone"}));
    client.ok(json!({"op": "publish", "stream": "listings", "events": [
        listing(70, "Busan", 4, 100_000),  // big_in_city: a minute after the last Busan one
        listing(71, "Seoul", 3, 499_999),  // seoul_cheap
    ]}));
    // The unacknowledged firing comes again, then the new one; no firing repeats.
    assert_eq!(
        firings_of(&client.pushed(2)),
        [
            ("seoul_cheap".to_string(), 5),
            ("seoul_cheap".to_string(), 71)
        ]
    );
    let mut all = server.connect();
    all.ok(json!({"op": "subscribe", "alerts": "listings", "from": "earliest"}));
    assert_eq!(
        firings_of(&all.pushed(6)),
        [
            ("seoul_cheap".to_string(), 1),
            ("big_in_city".to_string(), 3),
            ("seoul_cheap".to_string(), 5),
            ("big_in_city".to_string(), 5),
            ("big_in_city".to_string(), 70),
            ("seoul_cheap".to_string(), 71),
        ]
    );
    // Dropping the last alert stops the alerts' query; its subscribers are told nothing
    // more, and new alerts start afresh.
    client.ok(json!({"op": "sql", "sql": "DROP ALERT seoul_cheap; DROP ALERT big_in_city"}));
    let ended = client.pushed(1);
    assert_eq!(
        ended[0]["error"],
        json!("alert 'seoul_cheap' was dropped"),
        "{ended:?}"
    );
    let refused = client.request(json!({"op": "subscribe", "alert": "seoul_cheap"}));
    assert_eq!(refused["error"], json!("no alert named 'seoul_cheap'"));
    client
        .ok(json!({"op": "sql", "sql": "CREATE ALERT any_seoul ON listings WHERE city = 'Seoul'"}));
    client.ok(json!({"op": "subscribe", "alerts": "listings", "from": "earliest"}));
    client.ok(json!({"op": "publish", "stream": "listings", "event": listing(80, "Seoul", 1, 1)}));
    assert_eq!(
        firings_of(&client.pushed(1)),
        [("any_seoul".to_string(), 80)]
    );
    assert_eq!(client.raw(r#"{"op":"ping"}"#)["pong"], json!(true));
    assert!(client.pushed.is_empty(), "more rows: {:?}", client.pushed);
}

#[test]
fn thousands_of_alerts_are_registered_and_dropped_in_bulk() {
    const CITIES: [&str; 5] = ["Seoul", "Busan", "Lisbon", "Porto", "Austin"];
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": LISTINGS}));
    // Alert n: a city and a price ceiling.
    let alert = |n: u64| (CITIES[(n % 5) as usize], 10_000 * (n % 97 + 1));
    let create: Vec<String> = (0..5_000)
        .map(|n| {
            let (city, ceiling) = alert(n);
            format!("CREATE ALERT a{n} ON listings WHERE city = '{city}' AND price < {ceiling}")
        })
        .collect();
    let reply = client.ok(json!({"op": "sql", "sql": create.join(";\n")}));
    assert_eq!(reply["results"].as_array().map(Vec::len), Some(5_000));
    client.ok(json!({"op": "subscribe", "alerts": "listings", "from": "earliest"}));

    let mut random = xorshift(7);
    let mut listings = Vec::new();
    for id in 0..40 {
        let city = CITIES[(random() % 5) as usize];
        listings.push((id, city, 5_000 * (random() % 200)));
    }
    let expected = |alive: &dyn Fn(u64) -> bool| -> Vec<(String, u64)> {
        let mut fired = Vec::new();
        for (id, city, price) in &listings {
            for n in (0..5_000).filter(|n| alive(*n)) {
                let (at, ceiling) = alert(n);
                if at == *city && *price < ceiling {
                    fired.push((format!("a{n}"), *id));
                }
            }
        }
        fired
    };
    let events: Vec<Value> = listings
        .iter()
        .map(|(id, city, price)| listing(*id, city, 1, *price))
        .collect();
    client.ok(json!({"op": "publish", "stream": "listings", "events": events.clone()}));
    let want = expected(&|_| true);
    assert!(
        want.len() > 1_000,
        "too few firings to test: {}",
        want.len()
    );
    assert_eq!(firings_of(&client.pushed(want.len())), want);

    // Drop four in five, in one request.
    let drop: Vec<String> = (0..5_000)
        .filter(|n| n % 5 != 0)
        .map(|n| format!("DROP ALERT a{n}"))
        .collect();
    client.ok(json!({"op": "sql", "sql": drop.join(";")}));
    client.ok(json!({"op": "publish", "stream": "listings", "events": events}));
    let want = expected(&|n| n % 5 == 0);
    assert_eq!(firings_of(&client.pushed(want.len())), want);
    assert_eq!(client.raw(r#"{"op":"ping"}"#)["pong"], json!(true));
    assert!(
        client.pushed.is_empty(),
        "more rows: {:?}",
        client.pushed.len()
    );
}
