//! `sluice run` over Kafka tables, against a real Kafka-protocol broker (see
//! `kafka_broker`): a bounded topic is read to the offsets current when the run starts, its
//! partitions merged by record time, bad records rejected with their partition and offset;
//! the startup modes; results written to topics by `INSERT INTO`; and the errors for an
//! unbounded table and an unreachable broker.

mod kafka_broker;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kafka_broker::Broker;
use sluice_kafka::options::KafkaOptions;
use sluice_kafka::source::{Record, TopicReader};
use sluice_kafka::writer::{OutRecord, TopicWriter, create_topic};

fn broker() -> Broker {
    match Broker::start() {
        Ok(broker) => broker,
        Err(why) => panic!("the Kafka tests cannot run here: {why}"),
    }
}

fn sluice(args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot start sluice: {error}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok<T, E: std::fmt::Display>(result: Result<T, E>, doing: &str) -> T {
    result.unwrap_or_else(|e| panic!("{doing}: {e}"))
}

/// Writes `(partition, timestamp, value)` records to `topic` and waits for them.
fn produce(servers: &str, topic: &str, records: &[(i32, i64, &str)]) {
    let writer = ok(TopicWriter::open(servers, &[]), "a producer");
    for (partition, timestamp, value) in records {
        let record = OutRecord {
            partition: Some(*partition),
            key: None,
            value: Some(value.as_bytes()),
            timestamp: Some(*timestamp),
            headers: &[],
        };
        ok(writer.send(topic, record), "sending a record");
    }
    ok(writer.flush(), "flushing records");
}

/// Runs `script` with `--output` and returns the files written.
fn run(script: &str) -> (Output, BTreeMap<String, String>) {
    let directory = ok(tempfile::tempdir(), "a temporary directory");
    let script_path = directory.path().join("script.sql");
    ok(fs::write(&script_path, script), "writing the script");
    let output_dir = directory.path().join("out");
    let output = sluice(&[
        "run",
        &script_path.display().to_string(),
        "--output",
        &output_dir.display().to_string(),
    ]);
    (output, files(&output_dir))
}

fn files(directory: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    if let Ok(entries) = fs::read_dir(directory) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(name, ok(fs::read_to_string(entry.path()), "reading output"));
        }
    }
    files
}

fn bids_table(servers: &str, topic: &str, modes: &str) -> String {
    format!(
        "CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'kafka', 'topic' = '{topic}',
           'properties.bootstrap.servers' = '{servers}', 'format' = 'json'{modes});\n"
    )
}

const T0: i64 = 1_700_000_000_000;

fn bid(auction: i64, price: i64, second: i64) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(T0 + second * 1000)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    format!("{{\"auction\": {auction}, \"price\": {price},\n \"ts\": \"{ts}\"}}")
}

#[test]
fn a_bounded_topic_is_read_to_its_end_in_record_time_order() {
    let broker = broker();
    let servers = broker.address();
    ok(create_topic(&servers, "bids", 3), "creating the topic");
    ok(
        create_topic(&servers, "bids-dead", 1),
        "creating the dead-letter topic",
    );
    // Partition 2 stays empty; 0 and 1 interleave in record time.
    let records: Vec<(i32, i64, String)> = vec![
        (0, T0, bid(1, 10, 0)),
        (1, T0 + 1_000, bid(2, 20, 1)),
        (0, T0 + 2_000, bid(1, 11, 2)),
        (
            1,
            T0 + 3_000,
            "{\"auction\": 2, \"price\": \"many\"}".to_string(),
        ),
        (1, T0 + 4_000, bid(2, 21, 4)),
        (0, T0 + 12_000, bid(1, 12, 12)),
    ];
    let borrowed: Vec<(i32, i64, &str)> = records
        .iter()
        .map(|(p, t, v)| (*p, *t, v.as_str()))
        .collect();
    produce(&servers, "bids", &borrowed);

    let script = bids_table(
        &servers,
        "bids",
        ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', \
         'errors.deadletter.topic' = 'bids-dead'",
    ) + "SELECT auction, price, ts FROM bids;
         SELECT auction, SUM(price) AS total, window_start
           FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
           GROUP BY auction, window_start, window_end;\n";
    let (output, files) = run(&script);
    assert!(
        output.status.success(),
        "sluice run failed: {}",
        text(&output.stderr)
    );
    assert_eq!(
        files.get("q1.csv").map(String::as_str),
        Some(
            "op,auction,price,ts\n\
             +I,1,10,2023-11-14 22:13:20\n\
             +I,2,20,2023-11-14 22:13:21\n\
             +I,1,11,2023-11-14 22:13:22\n\
             +I,2,21,2023-11-14 22:13:24\n\
             +I,1,12,2023-11-14 22:13:32\n"
        )
    );
    assert_eq!(
        files.get("q2.csv").map(String::as_str),
        Some(
            "op,auction,total,window_start\n\
             +I,1,21,2023-11-14 22:13:20\n\
             +I,2,41,2023-11-14 22:13:20\n\
             +I,1,12,2023-11-14 22:13:30\n"
        )
    );
    // The bad record: partition 1, offset 1 (its offset stands where a file's line would).
    assert_eq!(
        files.get("bids.rejected.csv").map(String::as_str),
        Some(
            "op,file,line,reason\n\
             +I,kafka topic 'bids',1,\"partition 1: whilst decoding field 'price': failed to \
             parse \"\"many\"\" as Int64\"\n"
        )
    );
    // ... and written to the dead-letter topic as it was, with where it came from and why.
    let dead = records_of(&servers, "bids-dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        text(dead[0].value.as_deref().unwrap_or_default()),
        records[3].2
    );
    let headers: Vec<(String, String)> = dead[0]
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    assert_eq!(
        headers,
        vec![
            ("sluice.error.topic".to_string(), "bids".to_string()),
            ("sluice.error.partition".to_string(), "1".to_string()),
            ("sluice.error.offset".to_string(), "1".to_string()),
            (
                "sluice.error.reason".to_string(),
                "whilst decoding field 'price': failed to parse \"many\" as Int64".to_string()
            ),
        ]
    );
    assert!(
        text(&output.stderr).contains("kafka topic 'bids':1: skipped: partition 1: "),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn startup_modes_choose_where_each_partition_starts() {
    let broker = broker();
    let servers = broker.address();
    ok(create_topic(&servers, "later", 2), "creating the topic");
    let first = bid(1, 10, 0);
    let second = bid(2, 20, 5);
    let third = bid(1, 30, 9);
    produce(
        &servers,
        "later",
        &[
            (0, T0, &first),
            (1, T0 + 5_000, &second),
            (0, T0 + 9_000, &third),
        ],
    );
    let query = "SELECT auction, price FROM bids;\n";
    let by_time = bids_table(
        &servers,
        "later",
        &format!(
            ", 'scan.startup.mode' = 'timestamp', 'scan.startup.timestamp-millis' = '{}', \
             'scan.bounded.mode' = 'latest-offset'",
            T0 + 5_000
        ),
    ) + query;
    let (output, files) = run(&by_time);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        files.get("q1.csv").map(String::as_str),
        Some("op,auction,price\n+I,2,20\n+I,1,30\n")
    );
    let specific = bids_table(
        &servers,
        "later",
        ", 'scan.startup.mode' = 'specific-offsets', \
         'scan.startup.specific-offsets' = 'partition:0,offset:1', \
         'scan.bounded.mode' = 'latest-offset'",
    ) + query;
    let (output, files) = run(&specific);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Partition 1 has no offset given: it starts at its earliest.
    assert_eq!(
        files.get("q1.csv").map(String::as_str),
        Some("op,auction,price\n+I,2,20\n+I,1,30\n")
    );
    let latest = bids_table(
        &servers,
        "later",
        ", 'scan.startup.mode' = 'latest-offset', 'scan.bounded.mode' = 'latest-offset'",
    ) + query;
    let (output, files) = run(&latest);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        files.get("q1.csv").map(String::as_str),
        Some("op,auction,price\n")
    );
}

#[test]
fn an_unbounded_table_or_an_unreachable_broker_is_a_clear_error() {
    // Nothing listens on the discard port of 127.0.0.1.
    let unbounded = bids_table("127.0.0.1:9", "bids", "") + "SELECT * FROM bids;\n";
    let (output, _) = run(&unbounded);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("Kafka table 'bids' is unbounded"),
        "{}",
        text(&output.stderr)
    );

    let started = Instant::now();
    let unreachable = bids_table(
        "127.0.0.1:9",
        "bids",
        ", 'scan.bounded.mode' = 'latest-offset'",
    ) + "SELECT * FROM bids;\n";
    let (output, _) = run(&unreachable);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Kafka table 'bids': Kafka at 127.0.0.1:9 did not answer within 10 s"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let mistake = bids_table("127.0.0.1:9", "bids", ", 'scan.bounded.mode' = 'latest'")
        + "SELECT * FROM bids;\n";
    let (output, _) = run(&mistake);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("option 'scan.bounded.mode' = 'latest': the modes are"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn csv_values_are_read_by_position() {
    let broker = broker();
    let servers = broker.address();
    ok(create_topic(&servers, "prices", 1), "creating the topic");
    produce(
        &servers,
        "prices",
        &[
            (0, T0, "1,10,2023-11-14 22:13:20\n"),
            (0, T0 + 1_000, "2,x,2023-11-14 22:13:21"),
            (0, T0 + 2_000, "3,\"3\n0\",2023-11-14 22:13:22"),
            (0, T0 + 3_000, "4,40,2023-11-14 22:13:23"),
        ],
    );
    let script = format!(
        "CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3))
         WITH ('connector' = 'kafka', 'topic' = 'prices',
           'properties.bootstrap.servers' = '{servers}', 'format' = 'csv',
           'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset');
         SELECT auction, price FROM bids;\n"
    );
    let (output, files) = run(&script);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        files.get("q1.csv").map(String::as_str),
        Some("op,auction,price\n+I,1,10\n+I,4,40\n")
    );
    // A quoted line break stays in its record: the record after it keeps its own offset.
    let rejected = files.get("bids.rejected.csv").cloned().unwrap_or_default();
    let offsets: Vec<&str> = rejected
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(2))
        .collect();
    assert_eq!(offsets, vec!["1", "2"], "{rejected}");
}

/// Every record value of `topic`, in merge order.
fn consume(servers: &str, topic: &str) -> Vec<String> {
    records_of(servers, topic)
        .into_iter()
        .map(|r| text(&r.value.unwrap_or_default()))
        .collect()
}

/// Every record of `topic`, in merge order.
fn records_of(servers: &str, topic: &str) -> Vec<Record> {
    let options = [
        ("connector", "kafka"),
        ("topic", topic),
        ("properties.bootstrap.servers", servers),
        ("format", "json"),
        ("scan.startup.mode", "earliest-offset"),
        ("scan.bounded.mode", "latest-offset"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let options = ok(KafkaOptions::parse(&options), "the options").unwrap_or_else(|| {
        panic!("a Kafka table's options");
    });
    let mut reader = ok(TopicReader::open(&options), "a reader");
    let mut values = Vec::new();
    loop {
        let records = ok(reader.next_records(1000), "reading records");
        if records.is_empty() {
            return values;
        }
        values.extend(records);
    }
}

#[test]
fn insert_into_a_kafka_table_writes_its_topic() {
    let broker = broker();
    let servers = broker.address();
    for topic in ["input", "big", "totals", "updated"] {
        ok(create_topic(&servers, topic, 1), "creating a topic");
    }
    let records = [bid(1, 10, 0), bid(2, 20, 1), bid(1, 15, 2)];
    produce(
        &servers,
        "input",
        &[
            (0, T0, &records[0]),
            (0, T0 + 1_000, &records[1]),
            (0, T0 + 2_000, &records[2]),
        ],
    );
    let sink = |name: &str, topic: &str, format: &str| {
        format!(
            "CREATE TABLE {name} (auction BIGINT, price BIGINT, ts TIMESTAMP(3))
             WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{servers}', 'format' = '{format}');\n"
        )
    };
    let script = bids_table(
        &servers,
        "input",
        ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'",
    ) + &sink("big", "big", "json")
        + &format!(
            "CREATE TABLE totals (auction BIGINT, total BIGINT)
             WITH ('connector' = 'kafka', 'topic' = 'totals',
               'properties.bootstrap.servers' = '{servers}', 'format' = 'debezium-json');\n"
        )
        + "INSERT INTO big SELECT auction, price, ts FROM bids WHERE price > 10;
           INSERT INTO totals SELECT auction, SUM(price) FROM bids GROUP BY auction;\n";
    let (output, files) = run(&script);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!files.contains_key("big.csv"), "{files:?}");
    assert_eq!(
        consume(&servers, "big"),
        vec![
            r#"{"auction":2,"price":20,"ts":"2023-11-14 22:13:21"}"#,
            r#"{"auction":1,"price":15,"ts":"2023-11-14 22:13:22"}"#,
        ]
    );
    assert_eq!(
        consume(&servers, "totals"),
        // The three bids come in one batch: one change per group.
        vec![
            r#"{"before":null,"after":{"auction":1,"total":25},"op":"c"}"#,
            r#"{"before":null,"after":{"auction":2,"total":20},"op":"c"}"#,
        ]
    );

    // An updating result cannot go to a plain JSON topic.
    let updating = bids_table(
        &servers,
        "input",
        ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'",
    ) + &format!(
        "CREATE TABLE updated (auction BIGINT, total BIGINT)
         WITH ('connector' = 'kafka', 'topic' = 'updated',
           'properties.bootstrap.servers' = '{servers}', 'format' = 'json');
         INSERT INTO updated SELECT auction, SUM(price) FROM bids GROUP BY auction;\n"
    );
    let (output, _) = run(&updating);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(
            "Kafka table 'updated': table 'updated': the query's results are updated, and a \
             'json' topic cannot say so; write them as 'debezium-json'"
        ),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn raw_values_are_one_column_in_and_out() {
    let broker = broker();
    let servers = broker.address();
    for topic in ["lines", "shouts"] {
        ok(create_topic(&servers, topic, 1), "creating a topic");
    }
    let writer = ok(TopicWriter::open(&servers, &[]), "a producer");
    let values: [Option<&[u8]>; 4] = [Some(b"hello"), Some(b"\xff\xfe"), None, Some(b"world")];
    for (index, value) in values.into_iter().enumerate() {
        let record = OutRecord {
            partition: Some(0),
            key: None,
            value,
            timestamp: Some(T0 + index as i64),
            headers: &[],
        };
        ok(writer.send("lines", record), "sending a record");
    }
    ok(writer.flush(), "flushing records");
    let table = |name: &str, topic: &str, bounded: &str| {
        format!(
            "CREATE TABLE {name} (line STRING) WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{servers}', 'format' = 'raw'{bounded});\n"
        )
    };
    let script = table(
        "lines",
        "lines",
        ", 'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'",
    ) + &table("shouts", "shouts", "")
        + "INSERT INTO shouts SELECT UPPER(line) FROM lines;\n";
    let (output, files) = run(&script);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The tombstone is a NULL line, written back as a tombstone (read here as empty).
    assert_eq!(consume(&servers, "shouts"), vec!["HELLO", "", "WORLD"]);
    assert_eq!(
        files.get("lines.rejected.csv").map(String::as_str),
        Some(
            "op,file,line,reason\n+I,kafka topic 'lines',1,partition 0: the value is not UTF-8 text\n"
        )
    );

    let two_columns = format!(
        "CREATE TABLE pairs (a STRING, b STRING) WITH ('connector' = 'kafka', 'topic' = 'lines',
           'properties.bootstrap.servers' = '{servers}', 'format' = 'raw',
           'scan.bounded.mode' = 'latest-offset');
         SELECT * FROM pairs;\n"
    );
    let (output, _) = run(&two_columns);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(
            "table 'pairs': the 'raw' format reads each record's value into the table's one \
             column, of type STRING or BYTES"
        ),
        "{}",
        text(&output.stderr)
    );
}
