//! The pattern operator drops partitions that keep nothing: at once when no later row could
//! tell, and after the state TTL otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use sluice_sql::{Outcome, Session};

type Failure = Box<dyn std::error::Error>;

const TABLE: &str = "CREATE TABLE p (k STRING, v BIGINT, ts TIMESTAMP(3), \
    WATERMARK FOR ts AS ts)";

fn rows(keys: &[&str], values: &[i64], times: &[i64]) -> Result<RecordBatch, Failure> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(keys.to_vec())),
            Arc::new(Int64Array::from(values.to_vec())),
            Arc::new(TimestampMillisecondArray::from(times.to_vec())),
        ],
    )?)
}

/// Starts `query` after `settings`, feeds `batches` in turn, and gives the pattern
/// operator's partition count after each.
fn partitions_after(
    settings: &[&str],
    query: &str,
    batches: &[RecordBatch],
) -> Result<Vec<usize>, Failure> {
    let mut session = Session::new();
    session.execute_sql(TABLE)?;
    for setting in settings {
        session.execute_sql(setting)?;
    }
    let Some(Outcome::Started(started)) = session.execute_sql(query)?.pop() else {
        return Err("the query did not start".into());
    };
    let mut counts = Vec::new();
    for batch in batches {
        session.engine_mut().append("p", batch)?;
        let metrics = session.engine().query_metrics(started.id);
        let operator = metrics
            .iter()
            .flatten()
            .find(|m| m.operator == "match_recognize")
            .ok_or("no match_recognize operator")?;
        counts.push(operator.operator_metrics.open_windows);
    }
    Ok(counts)
}

const RISE: &str = "SELECT * FROM p MATCH_RECOGNIZE (PARTITION BY k ORDER BY ts \
    MEASURES A.v AS low, B.v AS high PATTERN (A B) \
    DEFINE A AS A.v < 10, B AS B.v >= 10)";

fn three_keys() -> Result<Vec<RecordBatch>, Failure> {
    Ok(vec![
        rows(&["a", "b", "c"], &[1, 2, 50], &[1_000, 1_000, 1_000])?,
        rows(&["a"], &[3], &[2_000])?,
        rows(&["b", "a"], &[4, 99], &[3_000, 3_000])?,
        rows(&["a"], &[99], &[60_000])?,
    ])
}

#[test]
fn partitions_holding_no_rows_are_dropped_at_once() -> Result<(), Failure> {
    // The watermark is each batch's time, so each batch admits the rows before it. Once
    // the rows at 1 s are admitted, a and b hold a row that may start a match, and c's row
    // starts none; then a holds 3 instead of 1; then a's match (3, 99) takes its rows,
    // and b holds 4, which may still start one.
    assert_eq!(
        partitions_after(&[], RISE, &three_keys()?)?,
        vec![0, 2, 2, 1]
    );
    Ok(())
}

#[test]
fn partitions_whose_match_count_is_read_are_kept() -> Result<(), Failure> {
    let numbered = RISE.replace("B.v AS high", "B.v AS high, MATCH_NUMBER() AS n");
    assert_eq!(
        partitions_after(&[], &numbered, &three_keys()?)?,
        vec![0, 3, 3, 3]
    );
    Ok(())
}

#[test]
fn with_a_state_ttl_idle_partitions_are_dropped() -> Result<(), Failure> {
    let numbered = RISE.replace("B.v AS high", "B.v AS high, MATCH_NUMBER() AS n");
    let ttl = ["SET 'table.exec.state.ttl' = '10 s'"];
    // At 60 s, a, b and c have had no row for more than ten seconds; b's last row still
    // waits for its successor and stays.
    assert_eq!(
        partitions_after(&ttl, &numbered, &three_keys()?)?,
        vec![0, 3, 3, 1]
    );
    Ok(())
}
