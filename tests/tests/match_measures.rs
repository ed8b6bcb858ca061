//! `MATCH_RECOGNIZE` measures against a reference computed from the match by hand: nested
//! navigation (`PREV(LAST(B.v), 1)`, `NEXT(FINAL FIRST(C.v))`), the classifier of a union
//! variable (`CLASSIFIER(S)`), and `CLASSIFIER()` inside navigation and aggregates, over
//! random patterns and rows fed in random batches.
//!
//! The patterns are sequences of quantified variables (`A B*? C+`), whose preferred match
//! from a row a short backtracking search finds directly; each row is one letter, which
//! decides the one variable it may satisfy, and some runs' conditions also read the match so
//! far, written both in the form tested without DataFusion and in one that is not.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use sluice_engine::Changes;
use sluice_sql::{Script, parse_statements};

type Failure = Box<dyn std::error::Error>;

/// A deterministic generator (SplitMix64).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// One item of a pattern: a variable, its minimum and maximum count, and whether greedy.
#[derive(Debug, Clone, Copy)]
struct Item {
    variable: u8,
    min: usize,
    max: usize,
    greedy: bool,
}

/// A pattern naming each of `A`, `B` and `C` (the measures read them all), in random order,
/// with perhaps a fourth item.
fn random_pattern(random: &mut Random) -> Vec<Item> {
    let mut variables = b"ABC".to_vec();
    for i in (1..3).rev() {
        variables.swap(i, random.below(i as u64 + 1) as usize);
    }
    if random.below(2) == 0 {
        let at = random.below(4) as usize;
        variables.insert(at, b"ABC"[random.below(3) as usize]);
    }
    variables
        .into_iter()
        .enumerate()
        .map(|(index, variable)| {
            let (min, max) = match random.below(4) {
                0 => (1, 1),
                1 => (0, usize::MAX),
                2 => (1, usize::MAX),
                _ => (0, 1),
            };
            Item {
                variable,
                // The first item takes a row, so that no match is empty.
                min: if index == 0 { min.max(1) } else { min },
                max,
                greedy: random.below(3) != 0,
            }
        })
        .collect()
}

fn pattern_text(items: &[Item]) -> String {
    items
        .iter()
        .map(|item| {
            let quantifier = match (item.min, item.max) {
                (1, 1) => "",
                (0, usize::MAX) => "*",
                (1, usize::MAX) => "+",
                _ => "?",
            };
            let reluctant = if item.greedy || quantifier.is_empty() {
                ""
            } else {
                "?"
            };
            format!("{}{quantifier}{reluctant}", item.variable as char)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the `DEFINE` conditions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conditions {
    /// The row's letter only.
    Letters,
    /// Also the match so far: a `B` is at least the `B` before it, a `C` above the first
    /// `A`. `compiled`: written so that they are tested without DataFusion, or not.
    ReadMatch { compiled: bool },
}

impl Conditions {
    fn define(self) -> &'static str {
        match self {
            Conditions::Letters => "A AS c = 'A', B AS c = 'B', C AS c = 'C'",
            Conditions::ReadMatch { compiled: true } => {
                "A AS c = 'A', B AS c = 'B' AND (LAST(B.v, 1) IS NULL OR B.v >= LAST(B.v, 1)), \
                 C AS c = 'C' AND C.v > FIRST(A.v)"
            }
            Conditions::ReadMatch { compiled: false } => {
                "A AS c = 'A', B AS c = 'B' AND (LAST(B.v, 1) IS NULL OR B.v + 0 >= LAST(B.v, 1)), \
                 C AS c = 'C' AND C.v * 1 > FIRST(A.v)"
            }
        }
    }

    /// Whether partition row `row`, bound to `variable` after `path` (the rows from `start`),
    /// satisfies its condition.
    fn hold(
        self,
        partition: &Partition,
        variable: u8,
        row: usize,
        start: usize,
        path: &[u8],
    ) -> bool {
        if partition.letters[row] != variable {
            return false;
        }
        if self == Conditions::Letters {
            return true;
        }
        let rows = start..start + path.len();
        let last_of = |of: u8| {
            rows.clone()
                .zip(path)
                .rev()
                .find(|(_, v)| **v == of)
                .map(|(r, _)| r)
        };
        let first_of = |of: u8| {
            rows.clone()
                .zip(path)
                .find(|(_, v)| **v == of)
                .map(|(r, _)| r)
        };
        match variable {
            b'B' => {
                last_of(b'B').is_none_or(|before| partition.values[row] >= partition.values[before])
            }
            b'C' => first_of(b'A').is_some_and(|a| partition.values[row] > partition.values[a]),
            _ => true,
        }
    }
}

/// The preferred match of `items` from `at` over the partition's rows: each row's variable.
fn reference_match(
    items: &[Item],
    partition: &Partition,
    conditions: Conditions,
    at: usize,
) -> Option<Vec<u8>> {
    fn search(
        items: &[Item],
        partition: &Partition,
        conditions: Conditions,
        start: usize,
        at: usize,
        path: &mut Vec<u8>,
    ) -> bool {
        let Some((item, rest)) = items.split_first() else {
            return true;
        };
        let mut run = 0;
        while run < item.max && at + run < partition.letters.len() {
            path.extend(std::iter::repeat_n(item.variable, run));
            let holds = conditions.hold(partition, item.variable, at + run, start, path);
            path.truncate(path.len() - run);
            if !holds {
                break;
            }
            run += 1;
        }
        if run < item.min {
            return false;
        }
        let counts: Vec<usize> = if item.greedy {
            (item.min..=run).rev().collect()
        } else {
            (item.min..=run).collect()
        };
        for count in counts {
            path.extend(std::iter::repeat_n(item.variable, count));
            if search(rest, partition, conditions, start, at + count, path) {
                return true;
            }
            path.truncate(path.len() - count);
        }
        false
    }
    let mut path = Vec::new();
    search(items, partition, conditions, at, at, &mut path).then_some(path)
}

/// A partition's rows: letters and values.
struct Partition {
    key: i64,
    letters: Vec<u8>,
    values: Vec<i64>,
    /// Each row's time.
    times: Vec<i64>,
}

/// The measures of every output row of `partition`, as text in output column order after
/// `k, c, v, ts`: `cls_s, prev_last_b, next_first_c, first_cls, prev_cls, all_cls, n`.
fn reference_rows(
    items: &[Item],
    partition: &Partition,
    conditions: Conditions,
) -> Vec<Vec<String>> {
    let letters = &partition.letters;
    let value = |row: Option<usize>| -> String {
        row.and_then(|r| partition.values.get(r))
            .map_or(String::new(), |v| v.to_string())
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut number = 0;
    while start < letters.len() {
        let Some(path) = reference_match(items, partition, conditions, start) else {
            start += 1;
            continue;
        };
        number += 1;
        let rows: Vec<usize> = (start..start + path.len()).collect();
        let first_c = rows.iter().zip(&path).find(|(_, v)| **v == b'C');
        for upto in 0..rows.len() {
            let so_far = &path[..=upto];
            let last_in = |set: &[u8]| {
                (0..=upto)
                    .rev()
                    .find(|i| set.contains(&so_far[*i]))
                    .map(|i| rows[i])
            };
            let cls_s = last_in(b"BC").map_or(String::new(), |r| (letters[r] as char).to_string());
            let prev_last_b = value(last_in(b"B").and_then(|r| r.checked_sub(1)));
            let next_first_c = value(first_c.map(|(r, _)| r + 1));
            let prev_cls = match upto {
                0 => String::new(),
                _ => (path[upto - 1] as char).to_string(),
            };
            let row = rows[upto];
            out.push(vec![
                partition.key.to_string(),
                (letters[row] as char).to_string(),
                partition.values[row].to_string(),
                partition.times[row].to_string(),
                cls_s,
                prev_last_b,
                next_first_c,
                (path[0] as char).to_string(),
                prev_cls,
                String::from_utf8_lossy(so_far).into_owned(),
                number.to_string(),
            ]);
        }
        start += path.len();
    }
    out
}

fn query(items: &[Item], conditions: Conditions) -> String {
    format!(
        "SELECT k, c, v, CAST(CAST(ts AS BIGINT) AS STRING) AS ts, cls_s, prev_last_b, \
         next_first_c, first_cls, prev_cls, all_cls, n FROM ev MATCH_RECOGNIZE ( \
         PARTITION BY k ORDER BY ts \
         MEASURES CLASSIFIER(S) AS cls_s, PREV(LAST(B.v), 1) AS prev_last_b, \
           NEXT(FINAL FIRST(C.v)) AS next_first_c, FIRST(CLASSIFIER()) AS first_cls, \
           PREV(CLASSIFIER()) AS prev_cls, string_agg(CLASSIFIER(), '') AS all_cls, \
           MATCH_NUMBER() AS n \
         ALL ROWS PER MATCH AFTER MATCH SKIP PAST LAST ROW \
         PATTERN ({}) SUBSET S = (B, C) \
         DEFINE {})",
        pattern_text(items),
        conditions.define()
    )
}

fn batch(rows: &[(i64, u8, i64, i64)]) -> Result<Changes, Failure> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("c", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let letters: Vec<String> = rows.iter().map(|r| (r.1 as char).to_string()).collect();
    Ok(Changes::inserts(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from(letters)),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.3),
            )),
        ],
    )?))
}

/// Runs `sql` over `rows` fed in random batches; gives the output rows as text, sorted.
fn run(
    sql: &str,
    rows: &[(i64, u8, i64, i64)],
    random: &mut Random,
) -> Result<Vec<Vec<String>>, Failure> {
    let mut script = Script::new();
    let setup = "CREATE TABLE ev (k BIGINT, c STRING, v BIGINT, ts TIMESTAMP(3), \
        WATERMARK FOR ts AS ts);";
    for statement in parse_statements(&format!("{setup}\n{sql};"))? {
        script.execute(&statement)?;
    }
    let mut output = Vec::new();
    let mut at = 0;
    while at < rows.len() {
        let size = 1 + random.below(7) as usize;
        let end = (at + size).min(rows.len());
        script.feed("ev", &batch(&rows[at..end])?)?;
        at = end;
        output.extend(script.drain()?);
    }
    script.finish()?;
    output.extend(script.drain()?);
    let mut texts = Vec::new();
    for (name, changes) in output {
        if name != "q1" {
            return Err(format!("unexpected output {name}").into());
        }
        let batch = &changes.rows;
        for row in 0..batch.num_rows() {
            texts.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| array_value_to_string(column, row))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
    }
    texts.sort_by_key(|row| (row[0].parse::<i64>().ok(), row[3].parse::<i64>().ok()));
    Ok(texts)
}

#[test]
fn measures_over_the_match_are_what_the_match_says() -> Result<(), Failure> {
    let mut compared = 0;
    for seed in 1..=400u64 {
        let mut random = Random(seed);
        let items = random_pattern(&mut random);
        let conditions = match seed % 3 {
            0 => Conditions::Letters,
            1 => Conditions::ReadMatch { compiled: true },
            _ => Conditions::ReadMatch { compiled: false },
        };
        let partitions: Vec<Partition> = (0..2)
            .map(|key| {
                let length = 5 + random.below(20) as usize;
                Partition {
                    key,
                    letters: (0..length)
                        .map(|_| b"ABC"[random.below(3) as usize])
                        .collect(),
                    values: (0..length).map(|_| random.below(100) as i64).collect(),
                    times: Vec::new(),
                }
            })
            .collect();
        // The partitions' rows interleaved in time order, one millisecond apart.
        let mut rows = Vec::new();
        let mut positions = [0usize; 2];
        let mut partitions = partitions;
        let mut time = 1_000;
        while positions
            .iter()
            .zip(&partitions)
            .any(|(p, part)| *p < part.letters.len())
        {
            let key = random.below(2) as usize;
            let partition = &mut partitions[key];
            if positions[key] == partition.letters.len() {
                continue;
            }
            let at = positions[key];
            partition.times.push(time);
            rows.push((
                key as i64,
                partition.letters[at],
                partition.values[at],
                time,
            ));
            positions[key] += 1;
            time += 1;
        }
        let mut expected: Vec<Vec<String>> = partitions
            .iter()
            .flat_map(|partition| reference_rows(&items, partition, conditions))
            .collect();
        expected.sort_by_key(|row| (row[0].parse::<i64>().ok(), row[3].parse::<i64>().ok()));
        let actual = run(&query(&items, conditions), &rows, &mut random)?;
        assert_eq!(
            actual,
            expected,
            "seed {seed}, pattern {}, {conditions:?}",
            pattern_text(&items)
        );
        compared += expected.len();
    }
    assert!(compared > 1_000, "only {compared} rows compared");
    Ok(())
}
