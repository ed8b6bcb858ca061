//! Window results equal a batch `GROUP BY` over the same events.
//!
//! For many random event sequences, with disorder inside the watermark bound and random batch
//! sizes, a standing window aggregation's results (sorted) must equal what DataFusion computes
//! over all the events at once, with each event assigned to its windows by plain arithmetic.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use sluice_engine::RowKind;
use sluice_sql::Session;
use sluice_tests::support::{Random, batch_query, sorted_rows};

const BOUND_MS: i64 = 5_000;
const START_MS: i64 = 1_700_000_000_000;

const DDL: &str = "CREATE TABLE ev (ts TIMESTAMP(3), k STRING, v BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)";

const AGGREGATES: &str = "COUNT(*), SUM(v), MIN(v), MAX(v), COUNT(DISTINCT v), COUNT(v)";

struct Event {
    ts: i64,
    k: Option<String>,
    v: Option<i64>,
}

/// Events whose time never falls behind the watermark: each is at most the bound before the
/// latest time so far.
fn events(random: &mut Random) -> Vec<Event> {
    let count = 1 + random.below(400) as usize;
    let mut base = START_MS + random.below(10_000) as i64;
    (0..count)
        .map(|_| {
            base += random.below(1_500) as i64;
            let ts = base - random.below(BOUND_MS as u64 + 1) as i64;
            let k = match random.below(6) {
                5 => None,
                key => Some(format!("k{key}")),
            };
            let v = match random.below(10) {
                0 => None,
                _ => Some(random.below(50) as i64 - 10),
            };
            Event { ts, k, v }
        })
        .collect()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn batch(events: &[Event]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            events.iter().map(|e| e.ts),
        )),
        Arc::new(StringArray::from_iter(
            events.iter().map(|e| e.k.as_deref()),
        )),
        Arc::new(Int64Array::from_iter(events.iter().map(|e| e.v))),
    ];
    RecordBatch::try_new(schema(), columns).unwrap_or_else(|e| panic!("test batch: {e}"))
}

/// The standing query's results after feeding `events` in random batches and ending input.
fn streaming(query: &str, events: &[Event], random: &mut Random) -> Vec<String> {
    let mut session = Session::new();
    for sql in [DDL, query] {
        if let Err(error) = session.execute_sql(sql) {
            panic!("{sql}: {error}");
        }
    }
    let mut fed = 0;
    while fed < events.len() {
        let size = (1 + random.below(64) as usize).min(events.len() - fed);
        let rows = batch(&events[fed..fed + size]);
        if let Err(error) = session.engine_mut().append("ev", &rows) {
            panic!("append: {error}");
        }
        fed += size;
    }
    if let Err(error) = session.engine_mut().finish() {
        panic!("finish: {error}");
    }
    let mut results = Vec::new();
    for (_, changes) in session.engine_mut().drain_results() {
        for change in changes {
            for row in 0..change.num_rows() {
                assert_eq!(
                    change.kind(row),
                    RowKind::Insert,
                    "window results are inserts"
                );
            }
            results.push(change.rows);
        }
    }
    sorted_rows(&results)
}

/// DataFusion's answer over `windowed`: each event once per window, with its bounds.
fn batch_group_by(windowed: Vec<(i64, i64, &Event)>) -> Vec<String> {
    let starts = TimestampMillisecondArray::from_iter_values(windowed.iter().map(|w| w.0));
    let ends = TimestampMillisecondArray::from_iter_values(windowed.iter().map(|w| w.1));
    let events: Vec<&Event> = windowed.iter().map(|w| w.2).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new(
            "window_end",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(starts),
        Arc::new(ends),
        Arc::new(StringArray::from_iter(
            events.iter().map(|e| e.k.as_deref()),
        )),
        Arc::new(Int64Array::from_iter(events.iter().map(|e| e.v))),
    ];
    let windowed = RecordBatch::try_new(schema.clone(), columns)
        .unwrap_or_else(|e| panic!("windowed rows: {e}"));
    let sql = format!(
        "SELECT window_start, window_end, k, {AGGREGATES} FROM w \
         GROUP BY window_start, window_end, k"
    );
    batch_query(&sql, vec![("w", windowed)])
}

fn align(time: i64, size: i64) -> i64 {
    time - time.rem_euclid(size)
}

fn check(name: &str, tvf: &str, windows: impl Fn(i64) -> Vec<(i64, i64)>) {
    let query = format!(
        "SELECT window_start, window_end, k, {AGGREGATES} FROM TABLE({tvf}) \
         GROUP BY window_start, window_end, k"
    );
    for seed in 1..=40u64 {
        let mut random = Random(seed * 7919);
        let events = events(&mut random);
        let expected = batch_group_by(
            events
                .iter()
                .flat_map(|e| windows(e.ts).into_iter().map(move |(s, w)| (s, w, e)))
                .collect(),
        );
        let actual = streaming(&query, &events, &mut random);
        assert_eq!(actual, expected, "{name}, seed {seed}");
    }
}

#[test]
fn tumble_equals_batch_group_by() {
    check(
        "tumble",
        "TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '10' SECOND)",
        |t| {
            let start = align(t, 10_000);
            vec![(start, start + 10_000)]
        },
    );
}

#[test]
fn hop_equals_batch_group_by() {
    check(
        "hop",
        "HOP(TABLE ev, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)",
        |t| {
            (0..5)
                .map(|back| align(t, 2_000) - back * 2_000)
                .map(|start| (start, start + 10_000))
                .collect()
        },
    );
}

#[test]
fn cumulate_equals_batch_group_by() {
    check(
        "cumulate",
        "CUMULATE(TABLE ev, DESCRIPTOR(ts), INTERVAL '3' SECOND, INTERVAL '12' SECOND)",
        |t| {
            let start = align(t, 12_000);
            (1..=4)
                .map(|step| (start, start + step * 3_000))
                .filter(|(_, end)| *end > t)
                .collect()
        },
    );
}
