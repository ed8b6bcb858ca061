//! Events per second through a filter+project query and through input decoding.
//!
//! `cargo bench -p sluice-benches`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_benches::{BID_DDL, FILTER_PROJECT, bid_schema, bids, to_batch, to_csv, to_json_lines};
use sluice_engine::input::{CsvRows, JsonLinesRows, RowReader, TextOptions};
use sluice_sql::Session;

const BATCH_ROWS: usize = 8192;
const DECODE_ROWS: usize = 100_000;

fn filter_project(c: &mut Criterion) {
    let mut session = Session::new();
    if let Err(error) = session
        .execute_sql(BID_DDL)
        .and_then(|_| session.execute_sql(FILTER_PROJECT))
    {
        panic!("benchmark setup failed: {error}");
    }
    session.engine_mut().stop_retaining_history();
    let batches: Vec<_> = (0..16)
        .map(|i| to_batch(&bids(BATCH_ROWS, 7 + i)))
        .collect();
    let mut group = c.benchmark_group("filter_project");
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));
    let mut next = 0;
    group.bench_function("8192_rows_6_columns", |b| {
        b.iter(|| {
            let batch = &batches[next % batches.len()];
            next += 1;
            if let Err(error) = session.engine_mut().append("bid", batch) {
                panic!("append failed: {error}");
            }
            session.engine_mut().drain_results()
        })
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let data = bids(DECODE_ROWS, 11);
    let csv = to_csv(&data);
    let json = to_json_lines(&data);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(DECODE_ROWS as u64));
    group.bench_function("csv_100k_rows", |b| {
        b.iter(|| {
            let mut rows = match CsvRows::new(csv.as_bytes(), bid_schema(), TextOptions::default())
            {
                Ok(rows) => rows,
                Err(error) => panic!("{error}"),
            };
            count_rows(&mut rows)
        })
    });
    group.bench_function("json_lines_100k_rows", |b| {
        b.iter(|| {
            count_rows(&mut JsonLinesRows::new(
                json.as_bytes(),
                bid_schema(),
                TextOptions::default(),
            ))
        })
    });
    group.finish();
}

fn count_rows(reader: &mut dyn RowReader) -> usize {
    let mut total = 0;
    loop {
        match reader.next_batch() {
            Ok(Some(decoded)) => {
                assert!(
                    decoded.errors.is_empty(),
                    "rejected rows: {:?}",
                    decoded.errors
                );
                total += decoded.rows.num_rows();
            }
            Ok(None) => return total,
            Err(error) => panic!("decoding failed: {error}"),
        }
    }
}

criterion_group!(benches, filter_project, decode);
criterion_main!(benches);
