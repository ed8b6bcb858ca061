//! An interval join's complete output equals DataFusion's batch join.
//!
//! For many random pairs of streams, with disorder inside the watermark bound, random batch
//! sizes and the two streams interleaved at random, every row a standing full outer interval
//! join emits (matches and expired rows, after the end of input) must equal, as a sorted
//! list, the rows of the same query run by DataFusion over all the rows at once.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sluice_sql::Session;
use sluice_tests::support::{Random, batch_query, sorted_rows};

const BOUND_MS: u64 = 5_000;
const START_MS: i64 = 1_700_000_000_000;

const DDL: [&str; 2] = [
    "CREATE TABLE a (ts TIMESTAMP(3), k BIGINT, v BIGINT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)",
    "CREATE TABLE b (ts TIMESTAMP(3), k BIGINT, w BIGINT, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)",
];

const JOINS: [&str; 4] = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"];

fn schema(value: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("k", DataType::Int64, true),
        Field::new(value, DataType::Int64, true),
    ]))
}

/// Rows `(ts, k, value)`, never behind their stream's watermark.
fn rows(random: &mut Random) -> Vec<(i64, Option<i64>, i64)> {
    let count = 1 + random.below(150) as usize;
    let mut base = START_MS;
    (0..count)
        .map(|n| {
            base += random.below(800) as i64;
            let ts = base - random.below(BOUND_MS + 1) as i64;
            let k = match random.below(8) {
                0 => None,
                key => Some(key as i64),
            };
            (ts, k, n as i64)
        })
        .collect()
}

fn batch(schema: &SchemaRef, rows: &[(i64, Option<i64>, i64)]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.0),
        )),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
    ];
    RecordBatch::try_new(schema.clone(), columns).unwrap_or_else(|e| panic!("test batch: {e}"))
}

fn query(join: &str) -> String {
    format!(
        "SELECT a.k, a.v, b.w, a.ts, b.ts FROM a {join} b ON a.k = b.k \
         AND b.ts BETWEEN a.ts - INTERVAL '2' SECOND AND a.ts + INTERVAL '3' SECOND"
    )
}

fn streaming(
    sql: &str,
    a: &[(i64, Option<i64>, i64)],
    b: &[(i64, Option<i64>, i64)],
    random: &mut Random,
) -> Vec<String> {
    let mut session = Session::new();
    for statement in DDL.iter().copied().chain([sql]) {
        if let Err(error) = session.execute_sql(statement) {
            panic!("{statement}: {error}");
        }
    }
    let (mut fed_a, mut fed_b) = (0, 0);
    while fed_a < a.len() || fed_b < b.len() {
        let take_a = fed_b == b.len() || (fed_a < a.len() && random.below(2) == 0);
        let (name, rows, fed, value) = if take_a {
            ("a", a, &mut fed_a, "v")
        } else {
            ("b", b, &mut fed_b, "w")
        };
        let size = (1 + random.below(20) as usize).min(rows.len() - *fed);
        let input = batch(&schema(value), &rows[*fed..*fed + size]);
        if let Err(error) = session.engine_mut().append(name, &input) {
            panic!("append: {error}");
        }
        *fed += size;
    }
    if let Err(error) = session.engine_mut().finish() {
        panic!("finish: {error}");
    }
    let results: Vec<RecordBatch> = session
        .engine_mut()
        .drain_results()
        .into_iter()
        .flat_map(|(_, changes)| changes)
        .map(|change| change.rows)
        .collect();
    sorted_rows(&results)
}

fn batch_join(
    sql: &str,
    a: &[(i64, Option<i64>, i64)],
    b: &[(i64, Option<i64>, i64)],
) -> Vec<String> {
    batch_query(
        sql,
        vec![("a", batch(&schema("v"), a)), ("b", batch(&schema("w"), b))],
    )
}

#[test]
fn interval_joins_equal_batch_joins() {
    for join in JOINS {
        let sql = query(join);
        let mut compared = 0;
        for seed in 1..=30u64 {
            let mut random = Random(seed * 104_729);
            let a = rows(&mut random);
            let b = rows(&mut random);
            let expected = batch_join(&sql, &a, &b);
            let actual = streaming(&sql, &a, &b, &mut random);
            assert_eq!(actual, expected, "{join}, seed {seed}");
            compared += expected.len();
        }
        // The inputs are dense enough that every join type has rows to compare.
        assert!(compared > 100, "{join}: only {compared} rows compared");
    }
}
