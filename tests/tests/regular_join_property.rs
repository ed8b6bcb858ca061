//! A regular join's changelog, applied, equals DataFusion's batch join of the final inputs.
//!
//! For many random inputs (an append-only stream `a`, and a table `b` keyed by `id` that
//! receives inserts, updates and deletes), fed interleaved in random batches, the join's
//! changelog must be consistent (every retraction removes a row emitted before), and the rows
//! it leaves must equal, as a sorted list, DataFusion's join of `a` with the final contents
//! of `b`, for inner, left, right and full joins with a condition beyond the keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt8Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_engine::{Changes, RowKind};
use sluice_sql::Session;
use sluice_tests::support::{Random, batch_query, sorted_rows};

const DDL: [&str; 2] = [
    "CREATE TABLE a (k BIGINT, v BIGINT)",
    "CREATE TABLE b (id BIGINT NOT NULL, k BIGINT, w BIGINT, PRIMARY KEY (id) NOT ENFORCED)",
];

const JOINS: [&str; 4] = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"];

fn query(join: &str) -> String {
    format!("SELECT a.k, a.v, b.id, b.w FROM a {join} b ON a.k = b.k AND a.v < b.w + 60")
}

fn a_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn b_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int64, true),
        Field::new("w", DataType::Int64, true),
    ]))
}

fn key(random: &mut Random) -> Option<i64> {
    match random.below(6) {
        0 => None,
        key => Some(key as i64),
    }
}

/// Stream rows `(k, v)`.
fn stream_rows(random: &mut Random) -> Vec<(Option<i64>, i64)> {
    let count = 1 + random.below(60) as usize;
    (0..count)
        .map(|_| (key(random), random.below(100) as i64))
        .collect()
}

/// Table changes `(kind, id, k, w)`: upserts of ids 0..10 and deletes of present ones.
fn table_changes(random: &mut Random) -> Vec<(RowKind, i64, Option<i64>, i64)> {
    let count = 1 + random.below(60) as usize;
    let mut present: BTreeMap<i64, (Option<i64>, i64)> = BTreeMap::new();
    let mut changes = Vec::new();
    for _ in 0..count {
        let id = random.below(10) as i64;
        match present.get(&id).copied() {
            Some((k, w)) if random.below(4) == 0 => {
                present.remove(&id);
                changes.push((RowKind::Delete, id, k, w));
            }
            _ => {
                let (k, w) = (key(random), random.below(100) as i64);
                present.insert(id, (k, w));
                changes.push((RowKind::Insert, id, k, w));
            }
        }
    }
    changes
}

fn a_batch(rows: &[(Option<i64>, i64)]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
    ];
    RecordBatch::try_new(a_schema(), columns).unwrap_or_else(|e| panic!("a batch: {e}"))
}

fn b_changes(rows: &[(RowKind, i64, Option<i64>, i64)]) -> Changes {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
    ];
    let rows_batch =
        RecordBatch::try_new(b_schema(), columns).unwrap_or_else(|e| panic!("b batch: {e}"));
    Changes {
        rows: rows_batch,
        kinds: Some(UInt8Array::from_iter_values(rows.iter().map(|r| r.0 as u8))),
    }
}

/// The rows the join's changelog leaves, after checking every retraction finds its row.
fn streaming(
    sql: &str,
    a: &[(Option<i64>, i64)],
    b: &[(RowKind, i64, Option<i64>, i64)],
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
        let result = if take_a {
            let size = (1 + random.below(8) as usize).min(a.len() - fed_a);
            fed_a += size;
            session
                .engine_mut()
                .append("a", &a_batch(&a[fed_a - size..fed_a]))
        } else {
            let size = (1 + random.below(8) as usize).min(b.len() - fed_b);
            fed_b += size;
            session
                .engine_mut()
                .append_changes("b", &b_changes(&b[fed_b - size..fed_b]))
        };
        if let Err(error) = result {
            panic!("append: {error}");
        }
    }
    if let Err(error) = session.engine_mut().finish() {
        panic!("finish: {error}");
    }
    let mut present: BTreeMap<String, usize> = BTreeMap::new();
    for (_, changes) in session.engine_mut().drain_results() {
        for change in changes {
            let rows = sorted_rows_in_order(&change.rows);
            for (index, row) in rows.into_iter().enumerate() {
                match change.kind(index) {
                    RowKind::Insert | RowKind::UpdateAfter => *present.entry(row).or_default() += 1,
                    _ => match present.get_mut(&row) {
                        Some(count) if *count > 0 => *count -= 1,
                        _ => panic!("{sql}: retraction of a row not emitted: {row}"),
                    },
                }
            }
        }
    }
    let mut rows: Vec<String> = present
        .into_iter()
        .flat_map(|(row, count)| std::iter::repeat_n(row, count))
        .collect();
    rows.sort();
    rows
}

/// Each row of `batch` as text, in batch order.
fn sorted_rows_in_order(batch: &RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|row| sorted_rows(&[batch.slice(row, 1)]).concat())
        .collect()
}

fn batch_join(
    sql: &str,
    a: &[(Option<i64>, i64)],
    b: &[(RowKind, i64, Option<i64>, i64)],
) -> Vec<String> {
    let mut table: BTreeMap<i64, (RowKind, i64, Option<i64>, i64)> = BTreeMap::new();
    for change in b {
        match change.0 {
            RowKind::Delete => table.remove(&change.1),
            _ => table.insert(change.1, *change),
        };
    }
    let final_b: Vec<_> = table.into_values().collect();
    batch_query(
        sql,
        vec![("a", a_batch(a)), ("b", b_changes(&final_b).rows)],
    )
}

#[test]
fn regular_joins_end_where_batch_joins_are() {
    for join in JOINS {
        let sql = query(join);
        let mut compared = 0;
        for seed in 1..=40u64 {
            let mut random = Random(seed * 7_919);
            let a = stream_rows(&mut random);
            let b = table_changes(&mut random);
            let expected = batch_join(&sql, &a, &b);
            let actual = streaming(&sql, &a, &b, &mut random);
            assert_eq!(actual, expected, "{join}, seed {seed}");
            compared += expected.len();
        }
        assert!(compared > 100, "{join}: only {compared} rows compared");
    }
}
