//! `sluice run` end to end: the real binary, real files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(error) => panic!("cannot start sluice: {error}"),
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.display().to_string()
}

/// The example scripts in `queries/`, each run by a test here.
const EXAMPLES: &[&str] = &[
    "demo/demo.sql",
    "flights/delay_streaks.sql",
    "flights/delays.sql",
    "flights/hourly.sql",
    "flights/weather.sql",
];

/// Runs the example `queries/SCRIPT` over `inputs` (stream, file beside the script), checks
/// that each of `outputs` equals its file in `expected/` beside the script, and returns
/// what it wrote on stderr.
fn run_example(script: &str, inputs: &[(&str, &str)], outputs: &[&str]) -> String {
    assert!(
        EXAMPLES.contains(&script),
        "{script} is not listed in EXAMPLES"
    );
    let (folder, script) = script.split_once('/').unwrap_or(("", script));
    let examples = repository().join("queries").join(folder);
    let out = temp_dir();
    let mut args = vec![
        "run".to_string(),
        examples.join(script).display().to_string(),
    ];
    for (stream, file) in inputs {
        args.push("--input".into());
        args.push(format!("{stream}={}", examples.join(file).display()));
    }
    args.push("--output".into());
    args.push(out.path().display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = sluice(&args);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    for name in outputs {
        let expected = read(&examples.join(format!("expected/{name}.csv")));
        let actual = read(&out.path().join(format!("{name}.csv")));
        assert_eq!(actual, expected, "{name}.csv differs");
    }
    text(&output.stderr)
}

#[test]
fn the_flights_example_writes_its_expected_outputs() {
    let stderr = run_example(
        "flights/delays.sql",
        &[("flights", "flights-2013-01-01.csv")],
        &["long_delays", "jfk_long_delays", "q1"],
    );
    assert_eq!(
        stderr,
        "long_delays: 17 row(s)\njfk_long_delays: 6 row(s)\nq1: 4 row(s)\n"
    );
}

#[test]
fn the_hourly_flights_example_writes_windows_changelog_and_late_outputs() {
    let stderr = run_example(
        "flights/hourly.sql",
        &[("flights", "flights-2013-01-01.csv")],
        &[
            "hourly_departures",
            "hourly_departures.late",
            "carrier_totals",
        ],
    );
    assert_eq!(
        stderr,
        "hourly_departures: 1 late row(s), written to hourly_departures.late\n\
         hourly_departures: 908 row(s)\nhourly_departures.late: 1 row(s)\ncarrier_totals: 1184 row(s)\n"
    );
}

#[test]
fn the_weather_example_joins_each_flight_with_the_weather_then() {
    let stderr = run_example(
        "flights/weather.sql",
        &[
            ("flights", "flights-2013-01-01.csv"),
            ("weather", "weather-2013-01-01.csv"),
        ],
        &["departure_weather", "departure_weather.late"],
    );
    assert_eq!(
        stderr,
        "departure_weather: 1 late row(s), written to departure_weather.late\n\
         departure_weather: 841 row(s)\ndeparture_weather.late: 1 row(s)\n"
    );
}

#[test]
fn the_delay_streaks_example_finds_row_patterns() {
    let stderr = run_example(
        "flights/delay_streaks.sql",
        &[("flights", "flights-2013-01-01.csv")],
        &["delay_streaks", "delay_streaks.late"],
    );
    assert_eq!(
        stderr,
        "delay_streaks: 1 late row(s), written to delay_streaks.late\n\
         delay_streaks: 11 row(s)\ndelay_streaks.late: 1 row(s)\n"
    );
}

#[test]
fn the_demo_script_runs_over_its_sample_events() {
    let stderr = run_example(
        "demo/demo.sql",
        &[
            ("cardholders", "cardholders.csv"),
            ("transactions", "transactions.csv"),
            ("listings", "listings.csv"),
        ],
        &[
            "dashboard",
            "card_testing",
            "big_spenders",
            "listing_prices",
            "seoul_flat_under_600k",
            "lisbon_or_porto_large",
            "bargain",
        ],
    );
    assert_eq!(
        stderr,
        "dashboard: 27 row(s)\ndashboard.late: 0 row(s)\ncard_testing: 10 row(s)\n\
         card_testing.late: 0 row(s)\nbig_spenders: 172 row(s)\nlisting_prices: 24 row(s)\n\
         listing_prices.late: 0 row(s)\nseoul_flat_under_600k: 2 row(s)\n\
         lisbon_or_porto_large: 2 row(s)\nbargain: 11 row(s)\nbargain.late: 0 row(s)\n"
    );
}

#[test]
fn every_example_script_is_run_by_a_test() {
    let mut found = Vec::new();
    let queries = repository().join("queries");
    for folder in fs::read_dir(&queries)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        for file in fs::read_dir(folder.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
        {
            let name = file.file_name().to_string_lossy().to_string();
            if name.ends_with(".sql") {
                found.push(format!("{}/{name}", folder.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    assert_eq!(found, EXAMPLES);
}

#[test]
fn change_events_feed_tables_and_materialized_views() {
    let dir = temp_dir();
    let script = write(
        dir.path(),
        "stock.sql",
        "CREATE TABLE products (id INT NOT NULL, name STRING, PRIMARY KEY (id) NOT ENFORCED)
  WITH ('format' = 'debezium-json');
CREATE TABLE stock (id INT NOT NULL, warehouse STRING, units INT,
  PRIMARY KEY (id, warehouse) NOT ENFORCED);
CREATE MATERIALIZED VIEW units_per_product AS
SELECT p.name, SUM(s.units) AS units FROM products p JOIN stock s ON p.id = s.id GROUP BY p.name;
",
    );
    let products = write(
        dir.path(),
        "products.jsonl",
        r#"{"before": null, "after": {"id": 1, "name": "lamp"}, "op": "c"}
{"before": null, "after": {"id": 2, "name": "desk"}, "op": "c"}
{"before": {"id": 1, "name": "lamp"}, "after": {"id": 1, "name": "red lamp"}, "op": "u"}
{"before": {"id": 2, "name": "desk"}, "after": null, "op": "x"}
"#,
    );
    let stock = write(
        dir.path(),
        "stock.csv",
        "op,id,warehouse,units\n+I,1,north,5\n+I,2,north,3\n+U,1,north,7\n+I,1,south,1\n?,2,south,9\n",
    );
    let output = sluice(&[
        "run",
        &script,
        "--input",
        &format!("products={products}"),
        "--input",
        &format!("stock={stock}"),
        "--output",
        &dir.path().display().to_string(),
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    // Files of streams without event time are fed whole, in order: the products, then the
    // stock, whose update of (1, north) replaces its row before the aggregate sees it.
    assert_eq!(
        text(&output.stderr),
        format!(
            "warning: {script}:5: query units_per_product: the regular join keeps every row \
             of both inputs, so its state grows without bound: bound the join in event time \
             (an interval join), or set a state TTL (SET 'table.exec.state.ttl' = '1 h')\n\
             {products}:4: skipped: op 'x' is not one of c, r, u, d\n\
             {stock}:6: skipped: op '?' is not one of +I, -U, +U, -D\n\
             {products}: skipped 1 bad row(s)\n\
             {stock}: skipped 1 bad row(s)\n\
             units_per_product: 2 row(s)\n"
        )
    );
    assert_eq!(
        read(&dir.path().join("units_per_product.csv")),
        "op,name,units\n+I,red lamp,8\n+I,desk,3\n"
    );
}

#[test]
fn late_rows_are_written_to_the_late_file_and_counted() {
    let dir = temp_dir();
    let script = write(
        dir.path(),
        "late.sql",
        "CREATE TABLE clicks (ts TIMESTAMP(3), url STRING, WATERMARK FOR ts AS ts);
CREATE VIEW per_minute AS SELECT url, window_start, COUNT(*) AS clicks
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, url;
",
    );
    // The third row is behind the watermark the second one set (10:01:05).
    let clicks = write(
        dir.path(),
        "clicks.csv",
        "ts,url\n2024-03-01 10:00:10,/a\n2024-03-01 10:01:05,/b\n2024-03-01 10:00:30,/a\n",
    );
    let out = dir.path().join("out");
    let first = sluice(&[
        "run",
        &script,
        "--input",
        &format!("clicks={clicks}"),
        "--output",
        &out.display().to_string(),
    ]);
    assert!(first.status.success(), "stderr: {}", text(&first.stderr));
    assert_eq!(
        read(&out.join("per_minute.csv")),
        "op,url,window_start,clicks\n\
         +I,/a,2024-03-01 10:00:00,1\n\
         +I,/b,2024-03-01 10:01:00,1\n"
    );
    assert_eq!(
        read(&out.join("per_minute.late.csv")),
        "op,url,window_start,window_end\n\
         late,/a,2024-03-01 10:00:00,2024-03-01 10:01:00\n"
    );
    assert!(
        text(&first.stderr).contains("per_minute: 1 late row(s), written to per_minute.late"),
        "stderr: {}",
        text(&first.stderr)
    );
}

const TRADES: &str = "CREATE TABLE trades (symbol STRING, price DOUBLE, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND);
CREATE TABLE quotes (symbol STRING, bid DOUBLE, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts);
CREATE VIEW ticks AS
  SELECT 'trade' AS kind, symbol, price, ts FROM trades
  UNION ALL SELECT 'quote', symbol, bid, ts FROM quotes;
SELECT symbol FROM trades WHERE price > 1000;
";

#[test]
fn several_inputs_are_interleaved_by_event_time() {
    let dir = temp_dir();
    let script = write(dir.path(), "ticks.sql", TRADES);
    let trades = write(
        dir.path(),
        "trades.csv",
        "symbol,price,ts\nA,1.0,2024-01-01 10:00:01\nB,2.0,2024-01-01 10:00:03\nC,3.0,2024-01-01 10:00:04\n",
    );
    let quotes = write(
        dir.path(),
        "quotes.jsonl",
        "{\"symbol\":\"A\",\"bid\":0.5,\"ts\":\"2024-01-01 10:00:00\"}\n{\"symbol\":\"B\",\"bid\":1.5,\"ts\":\"2024-01-01 10:00:02\"}\n{\"symbol\":\"C\",\"bid\":2.5,\"ts\":\"2024-01-01 10:00:04\"}\n",
    );
    let out = dir.path().join("out");
    let output = sluice(&[
        "run",
        &script,
        "--input",
        &format!("trades={trades}"),
        "--input",
        &format!("quotes={quotes}"),
        "--output",
        &out.display().to_string(),
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    // Ties go to the earlier --input: the trade at 10:00:04 precedes the quote at 10:00:04.
    assert_eq!(
        read(&out.join("ticks.csv")),
        "op,kind,symbol,price,ts\n\
         +I,quote,A,0.5,2024-01-01 10:00:00\n\
         +I,trade,A,1.0,2024-01-01 10:00:01\n\
         +I,quote,B,1.5,2024-01-01 10:00:02\n\
         +I,trade,B,2.0,2024-01-01 10:00:03\n\
         +I,trade,C,3.0,2024-01-01 10:00:04\n\
         +I,quote,C,2.5,2024-01-01 10:00:04\n"
    );
    // A query without results still writes its header.
    assert_eq!(read(&out.join("q1.csv")), "op,symbol\n");
}

#[test]
fn json_output_and_stdout_blocks() {
    let dir = temp_dir();
    let script = write(dir.path(), "ticks.sql", TRADES);
    let trades = write(
        dir.path(),
        "t.csv",
        "symbol,price,ts\nX,1500.25,2024-01-01 10:00:01.500\n",
    );
    let out = dir.path().join("out");
    let output = sluice(&[
        "run",
        &script,
        "--input",
        &format!("trades={trades}"),
        "--output",
        &out.display().to_string(),
        "--format",
        "json",
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert_eq!(
        read(&out.join("q1.jsonl")),
        "{\"op\":\"+I\",\"symbol\":\"X\"}\n"
    );
    assert_eq!(
        read(&out.join("ticks.jsonl")),
        "{\"op\":\"+I\",\"kind\":\"trade\",\"symbol\":\"X\",\"price\":1500.25,\"ts\":\"2024-01-01 10:00:01.500\"}\n"
    );

    let output = sluice(&[
        "run",
        &script,
        "--input",
        &format!("trades={trades}"),
        "--format",
        "csv",
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "-- ticks\nop,kind,symbol,price,ts\n+I,trade,X,1500.25,2024-01-01 10:00:01.500\n-- q1\nop,symbol\n+I,X\n"
    );
}

#[test]
fn bad_rows_are_reported_and_skipped_or_fatal_under_strict() {
    let dir = temp_dir();
    let script = write(dir.path(), "ticks.sql", TRADES);
    let trades = write(
        dir.path(),
        "t.csv",
        "symbol,price,ts\nA,2000,2024-01-01 10:00:01\nB,lots,2024-01-01 10:00:02\nC,3000,2024-01-01 10:00:03\n",
    );
    let input = format!("trades={trades}");
    let output = sluice(&["run", &script, "--input", &input, "--format", "csv"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(text(&output.stdout).ends_with("-- q1\nop,symbol\n+I,A\n+I,C\n"));
    assert_eq!(
        text(&output.stderr),
        format!(
            "{trades}:3: skipped: column 'price': cannot read 'lots' as DOUBLE\n\
             {trades}: skipped 1 bad row(s)\nticks: 2 row(s)\nq1: 2 row(s)\n"
        )
    );

    let output = sluice(&["run", &script, "--input", &input, "--strict"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!("error: {trades}:3: column 'price': cannot read 'lots' as DOUBLE\n")
    );
}

#[test]
fn errors_name_the_problem_and_exit_non_zero() {
    let dir = temp_dir();
    let script = write(dir.path(), "ticks.sql", TRADES);
    let output = sluice(&["run", &script, "--input", "nope=x.csv"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: unknown stream 'nope' (streams: quotes, trades)\n"
    );

    let broken = write(
        dir.path(),
        "broken.sql",
        "CREATE STREAM s (a INT);\n\nSELECT b FROM s;\n",
    );
    let output = sluice(&["run", &broken]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("error: {broken}:3: No field named b.")),
        "stderr: {stderr}"
    );

    let output = sluice(&["run", &script, "--input", "trades=missing.csv"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .starts_with("error: missing.csv: cannot open missing.csv: No such file"),
        "stderr: {}",
        text(&output.stderr)
    );
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn output_names_become_file_names_inside_the_directory() {
    let dir = temp_dir();
    let out = dir.path().join("out");
    let script = write(
        dir.path(),
        "names.sql",
        "CREATE TABLE t (a INT);\n\
         CREATE VIEW \"../escaped\" AS SELECT a FROM t;\n\
         CREATE VIEW \"Top.v\" AS SELECT a FROM t;\n\
         CREATE VIEW q1 AS SELECT a FROM t;\n\
         SELECT a FROM t;\n",
    );
    let input = format!("t={}", write(dir.path(), "t.csv", "a\n1\n"));
    let out_arg = out.display().to_string();
    let output = sluice(&["run", &script, "--input", &input, "--output", &out_arg]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    // The plain SELECT skips `q1`, a view's name.
    assert_eq!(
        file_names(&out),
        vec!["%2E%2E%2Fescaped.csv", "%54op%2Ev.csv", "q1.csv", "q2.csv"]
    );
    assert_eq!(file_names(dir.path()), vec!["names.sql", "out", "t.csv"]);
    assert_eq!(read(&out.join("%54op%2Ev.csv")), "op,a\n+I,1\n");
}

#[test]
fn an_output_name_taken_by_another_kind_of_output_is_refused() {
    let dir = temp_dir();
    let cases = [
        (
            "CREATE TABLE t (a INT);\nSELECT a FROM t;\nCREATE VIEW q1 AS SELECT a FROM t;\n",
            "3: the output name 'q1' is taken by the results of the SELECT named 'q1'; \
             choose another name",
        ),
        (
            "CREATE TABLE t (a INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts);\n\
             CREATE VIEW v AS SELECT window_end, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE t, \
             DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end;\n\
             CREATE VIEW \"v.late\" AS SELECT a FROM t;\n",
            "3: the output name 'v.late' is taken by the late rows of 'v'; choose another name",
        ),
        (
            "CREATE TABLE t (a INT);\nSELECT a AS op FROM t;\n",
            "2: the query has a column named 'op', the name of every result's change kind \
             column: rename it with AS",
        ),
    ];
    for (sql, expected) in cases {
        let script = write(dir.path(), "taken.sql", sql);
        let output = sluice(&["run", &script]);
        assert_eq!(output.status.code(), Some(1), "{sql}");
        assert_eq!(
            text(&output.stderr),
            format!("error: {script}:{expected}\n"),
            "{sql}"
        );
    }
}

#[test]
fn a_statement_nested_too_deeply_is_an_error_not_a_crash() {
    let dir = temp_dir();
    let chain: Vec<String> = (0..4_000).map(|i| format!("a <> {i}")).collect();
    let sql = format!(
        "CREATE TABLE t (a INT);\nSELECT a FROM t WHERE {};\n",
        chain.join(" AND ")
    );
    let script = write(dir.path(), "deep.sql", &sql);
    let output = sluice(&["run", &script]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {script}: syntax error: the statement is nested too deeply"
        )),
        "stderr: {stderr}"
    );
}

#[test]
fn a_time_past_the_year_9999_is_a_bad_row_not_the_end_of_the_run() {
    let dir = temp_dir();
    let script = write(
        dir.path(),
        "t.sql",
        "CREATE TABLE t (a INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND);\n\
         SELECT a FROM t;\n",
    );
    let rows = write(
        dir.path(),
        "t.jsonl",
        "\u{feff}{\"a\": 1, \"ts\": \"2024-01-01 00:00:00\"}\n\
         {\"a\": 2, \"ts\": 9223372036854775807}\n\
         {\"a\": 3, \"ts\": \"2024-01-01 00:00:01\"}\n",
    );
    let input = format!("t={rows}");
    let output = sluice(&["run", &script, "--input", &input, "--format", "csv"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(
        text(&output.stdout).ends_with("-- q1\nop,a\n+I,1\n+I,3\n"),
        "{}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stderr).starts_with(&format!(
            "{rows}:2: skipped: column 'ts': the time is outside the years 1 to 9999\n"
        )),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn rows_a_query_cannot_compute_go_to_its_errors_file() {
    let dir = temp_dir();
    let out = dir.path().join("out");
    let script = write(
        dir.path(),
        "ratio.sql",
        "CREATE TABLE t (a BIGINT, b BIGINT);\nSELECT a, a / b AS ratio FROM t;\n\
         SELECT a * 2 AS twice FROM t;\n",
    );
    let rows = write(dir.path(), "t.csv", "a,b\n6,2\n7,0\n8,4\n");
    let input = format!("t={rows}");
    let out_arg = out.display().to_string();
    let output = sluice(&["run", &script, "--input", &input, "--output", &out_arg]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    // Only a query with failed rows has an errors file.
    assert_eq!(file_names(&out), vec!["q1.csv", "q1.errors.csv", "q2.csv"]);
    assert_eq!(read(&out.join("q1.csv")), "op,a,ratio\n+I,6,3\n+I,8,2\n");
    assert_eq!(
        read(&out.join("q1.errors.csv")),
        "op,error,row\n+I,Arrow error: Divide by zero error,\"{\"\"a\"\":7,\"\"b\"\":0}\"\n"
    );
    assert!(
        text(&output.stderr).contains("q1: 1 row(s) could not be computed, written to q1.errors\n"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn rejected_input_rows_are_written_per_stream() {
    let dir = temp_dir();
    let out = dir.path().join("out");
    let script = write(dir.path(), "ticks.sql", TRADES);
    let trades = write(
        dir.path(),
        "t.csv",
        "symbol,price,ts\nA,2000,2024-01-01 10:00:01\nB,lots,2024-01-01 10:00:02\n\
         C,3000,2024-01-01 10:00:03\nD,4000\n",
    );
    let input = format!("trades={trades}");
    let out_arg = out.display().to_string();
    let output = sluice(&["run", &script, "--input", &input, "--output", &out_arg]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert_eq!(
        read(&out.join("trades.rejected.csv")),
        format!(
            "op,file,line,reason\n\
             +I,{trades},3,column 'price': cannot read 'lots' as DOUBLE\n\
             +I,{trades},5,\"expected 3 fields, found 2\"\n"
        )
    );
    assert!(read(&out.join("q1.csv")).starts_with("op,symbol\n+I,A\n+I,C\n"));
}
