//! Checkpoints of `sluice serve` end to end: state that retention deleted the input of
//! survives a crash, a query whose state cannot be restored is marked failed instead of
//! running on wrong state, and SIGTERM stops the server cleanly with a final checkpoint.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, temp_dir};

const READINGS: &str = "CREATE TABLE readings (sensor STRING, v BIGINT, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts)";

/// One hour's window per sensor: it stays open while all of the hour's readings arrive.
const HOURLY: &str = "SELECT sensor, window_start, COUNT(*) AS n, SUM(v) AS total \
    FROM TABLE(TUMBLE(TABLE readings, DESCRIPTOR(ts), INTERVAL '1' HOUR)) \
    GROUP BY sensor, window_start, window_end";

/// Small segments and a small retention limit, so publishes soon delete the oldest input.
const SMALL_LOG: [&str; 6] = [
    "--segment-bytes",
    "2048",
    "--retention-bytes",
    "4096",
    "--checkpoint-interval",
    "0.05",
];

fn reading(i: u64) -> Value {
    json!({"sensor": format!("s{}", i % 3), "v": i,
           "ts": format!("2024-01-01 10:{:02}:{:02}", (i / 60) % 60, i % 60)})
}

/// Publishes readings `0..count` one per publish, all within 10:00-11:00.
fn publish_hour(server: &Server, count: u64) {
    let mut client = server.connect();
    for i in 0..count {
        client.ok(json!({"op": "publish", "stream": "readings", "event": reading(i)}));
    }
}

/// The offset of the oldest row the stream keeps.
fn oldest_kept(server: &Server) -> u64 {
    let stats = server.connect().ok(json!({"op": "stats"}));
    stats["streams"][0]["partitions"][0]["start"]
        .as_u64()
        .unwrap_or(0)
}

/// What HOURLY emits for readings `0..count` once the hour closes, by sensor.
fn expected_hour(count: u64) -> Vec<(String, i64, i64)> {
    (0..3)
        .map(|sensor| {
            let values: Vec<u64> = (0..count).filter(|i| i % 3 == sensor).collect();
            (
                format!("s{sensor}"),
                values.len() as i64,
                values.iter().sum::<u64>() as i64,
            )
        })
        .collect()
}

fn hourly_rows(rows: &[Value]) -> Vec<(String, i64, i64)> {
    let mut rows: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["row"]["sensor"].as_str().unwrap_or_default().to_string(),
                r["row"]["n"].as_i64().unwrap_or(-1),
                r["row"]["total"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Starts a server, creates the readings and the hourly query, publishes `count` readings
/// and waits until retention has deleted some of them.
fn hour_with_deleted_input(dir: &std::path::Path, count: u64) -> Server {
    let server = Server::start(dir, &SMALL_LOG);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": READINGS}));
    client.ok(json!({"op": "register", "name": "hourly", "sql": HOURLY}));
    publish_hour(&server, count);
    // A checkpoint after the last publish lets retention go on.
    std::thread::sleep(Duration::from_millis(300));
    publish_hour_tail(&server);
    assert!(
        oldest_kept(&server) > 0,
        "retention deleted nothing: the test would prove nothing"
    );
    server
}

/// One more reading within the hour, so that retention runs after the latest checkpoint.
fn publish_hour_tail(server: &Server) {
    server
        .connect()
        .ok(json!({"op": "publish", "stream": "readings", "event":
            {"sensor": "s0", "v": 0, "ts": "2024-01-01 10:59:59"}}));
}

/// Closes the hour (a reading at 11:00:01) and checks that HOURLY emitted what readings
/// `0..count` and the tail reading (s0, value 0) give, whatever retention deleted.
fn closed_hour_is_whole(server: &Server, count: u64) -> support::Client {
    let mut client = server.connect();
    client.ok(json!({"op": "publish", "stream": "readings", "event":
        {"sensor": "s0", "v": 1, "ts": "2024-01-01 11:00:01"}}));
    client.ok(json!({"op": "subscribe", "query": "hourly", "from": "earliest"}));
    let mut expected = expected_hour(count);
    expected[0].1 += 1;
    assert_eq!(hourly_rows(&client.pushed(3)), expected);
    client
}

#[test]
fn an_open_window_whose_input_retention_deleted_survives_a_crash() {
    let dir = temp_dir();
    let server = hour_with_deleted_input(dir.path(), 300);
    server.kill();

    let server = Server::start(dir.path(), &SMALL_LOG);
    let mut client = closed_hour_is_whole(&server, 300);
    let stats = client.ok(json!({"op": "stats"}));
    assert_eq!(stats["queries"][0]["failed"], Value::Null, "{stats}");
}

#[test]
fn without_a_checkpoint_a_query_whose_input_was_deleted_starts_failed() {
    let dir = temp_dir();
    let server = hour_with_deleted_input(dir.path(), 300);
    server.kill();
    std::fs::remove_dir_all(dir.path().join("checkpoints"))
        .unwrap_or_else(|e| panic!("cannot remove the checkpoints: {e}"));

    let server = Server::start(dir.path(), &SMALL_LOG);
    assert!(
        server.said.contains("query 'hourly' failed on start"),
        "{}",
        server.said
    );
    let stats = server.connect().ok(json!({"op": "stats"}));
    let failed = stats["queries"][0]["failed"].as_str().unwrap_or_default();
    assert!(
        failed.starts_with("stream 'readings' partition 0: retention deleted offsets before"),
        "{stats}"
    );
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_one_before() {
    let dir = temp_dir();
    let server = hour_with_deleted_input(dir.path(), 300);
    server.kill();
    let checkpoints = dir.path().join("checkpoints");
    let mut ids: Vec<u64> = std::fs::read_dir(&checkpoints)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    // Two are kept; a third is seen when the kill came between writing a checkpoint and
    // deleting the oldest.
    assert!(ids.len() >= 2, "two checkpoints are kept: {ids:?}");
    let newest_id = ids[ids.len() - 1];
    let newest = checkpoints.join(newest_id.to_string());
    let bytes = std::fs::read(&newest).unwrap_or_default();
    std::fs::write(&newest, &bytes[..bytes.len() / 2])
        .unwrap_or_else(|e| panic!("cannot cut the checkpoint: {e}"));

    let server = Server::start(dir.path(), &SMALL_LOG);
    let damaged = format!(
        "{}/checkpoints/{} is damaged",
        dir.path().display(),
        newest_id
    );
    assert!(
        server
            .said
            .contains(&format!("checkpoints/{}: not used: {damaged}", newest_id)),
        "{}",
        server.said
    );
    let stats = server.connect().ok(json!({"op": "stats"}));
    let problems = &stats["checkpoint_problems"];
    assert!(
        problems[0]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("checkpoint {}: {damaged}", newest_id))),
        "{stats}"
    );
    assert_eq!(problems.as_array().map(Vec::len), Some(1), "{stats}");
    closed_hour_is_whole(&server, 300);
}

/// How checkpoints can be saved: by a child (the default) or in the server's process.
const SAVERS: [&[&str]; 2] = [&[], &["--checkpoint-in-process"]];

/// A server on `dir` with a small log, saving checkpoints with `saver`, running HOURLY.
fn hourly_server(dir: &std::path::Path, saver: &[&str]) -> (Server, support::Client) {
    let server = Server::start(dir, &[&SMALL_LOG[..], saver].concat());
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": READINGS}));
    client.ok(json!({"op": "register", "name": "hourly", "sql": HOURLY}));
    (server, client)
}

#[test]
fn stats_show_the_last_checkpoint_and_each_querys_part_of_it() {
    for saver in SAVERS {
        let dir = temp_dir();
        let (server, mut client) = hourly_server(dir.path(), saver);
        publish_hour(&server, 30);
        std::thread::sleep(Duration::from_millis(300));
        let stats = client.ok(json!({"op": "stats"}));
        let last = &stats["checkpoints"]["last"];
        let total = last["bytes"].as_u64().unwrap_or(0);
        let part = stats["queries"][0]["checkpoint"]["bytes"]
            .as_u64()
            .unwrap_or(0);
        assert!(last["id"].as_u64() >= Some(1), "{saver:?}: {stats}");
        assert!(0 < part && part < total, "{saver:?}: {stats}");
        let pause = last["pause_ms"].as_f64().unwrap_or(-1.0);
        let took = last["took_ms"].as_f64().unwrap_or(-1.0);
        assert!(0.0 <= pause && pause <= took, "{saver:?}: {stats}");
        assert_eq!(
            stats["checkpoints"]["error"],
            Value::Null,
            "{saver:?}: {stats}"
        );
        // What retention held back at its last run, which may have come before the
        // checkpoints it waited for.
        assert!(
            stats["checkpoints"]["retention_held_back_bytes"].is_u64(),
            "{saver:?}: {stats}"
        );
    }
}

#[test]
fn failing_checkpoints_are_reported_with_what_retention_holds_back_for_them() {
    for saver in SAVERS {
        let dir = temp_dir();
        let (server, mut client) = hourly_server(dir.path(), saver);
        std::thread::sleep(Duration::from_millis(300));
        // Checkpoints cannot be written once their directory is a file.
        let checkpoints = dir.path().join("checkpoints");
        std::fs::rename(&checkpoints, dir.path().join("checkpoints.away"))
            .and_then(|()| std::fs::write(&checkpoints, b"not a directory"))
            .unwrap_or_else(|e| panic!("cannot replace the checkpoints: {e}"));
        publish_hour(&server, 300);
        std::thread::sleep(Duration::from_millis(300));
        let stats = client.ok(json!({"op": "stats"}));
        let error = stats["checkpoints"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("File exists"), "{saver:?}: {stats}");
        let held = stats["checkpoints"]["retention_held_back_bytes"]
            .as_u64()
            .unwrap_or(0);
        assert!(held > 4096, "{saver:?}: {stats}");
        let said = server.said_since_start();
        assert!(said.contains("checkpoint: "), "{saver:?}: {said}");
        assert!(
            said.contains("bytes kept past the retention limits: the oldest kept checkpoint"),
            "{saver:?}: {said}"
        );
    }
}

#[test]
fn sigterm_takes_a_final_checkpoint_and_exits_cleanly() {
    let dir = temp_dir();
    // No checkpoint on a timer: the one SIGTERM takes is the only one.
    let args = ["--checkpoint-interval", "3600"];
    let server = Server::start(dir.path(), &args);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql": READINGS}));
    client.ok(json!({"op": "register", "name": "hourly", "sql": HOURLY}));
    publish_hour(&server, 30);
    assert_eq!(server.terminate(Duration::from_secs(20)), Some(0));
    let kept: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(kept, vec!["1".to_string()]);

    let server = Server::start(dir.path(), &args);
    let mut client = server.connect();
    client.ok(json!({"op": "publish", "stream": "readings", "event":
        {"sensor": "s0", "v": 1, "ts": "2024-01-01 11:00:01"}}));
    client.ok(json!({"op": "subscribe", "query": "hourly", "from": "earliest"}));
    assert_eq!(hourly_rows(&client.pushed(3)), expected_hour(30));
}

#[test]
fn proctime_is_the_publish_time_and_replays_the_same() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "sql", "sql":
        "CREATE TABLE taps (n BIGINT, arrived AS PROCTIME())"}));
    client.ok(json!({"op": "register", "name": "seen", "sql": "SELECT n, arrived FROM taps"}));
    for n in 0..3 {
        client.ok(json!({"op": "publish", "stream": "taps", "event": {"n": n}}));
        std::thread::sleep(Duration::from_millis(20));
    }
    client.ok(json!({"op": "subscribe", "query": "seen", "from": "earliest"}));
    let live: Vec<Value> = client.pushed(3).iter().map(|r| r["row"].clone()).collect();
    let times: Vec<&str> = live
        .iter()
        .map(|row| row["arrived"].as_str().unwrap_or_default())
        .collect();
    assert!(
        times[0] < times[1] && times[1] < times[2],
        "each publish has its own time: {times:?}"
    );
    server.kill();
    // Without results or checkpoints, a restart computes the results again from the stream.
    for made in ["results", "checkpoints"] {
        let _ = std::fs::remove_dir_all(dir.path().join(made));
    }
    let server = Server::start(dir.path(), &[]);
    let mut client = server.connect();
    client.ok(json!({"op": "subscribe", "query": "seen", "from": "earliest"}));
    let replayed: Vec<Value> = client.pushed(3).iter().map(|r| r["row"].clone()).collect();
    assert_eq!(replayed, live);
}
