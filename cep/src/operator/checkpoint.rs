//! Saving and loading a [`MatchRecognize`]'s state in a checkpoint (see the operator's
//! **Checkpoint** bullet).
//!
//! Values of one kind go in one array over all partitions: a row of per-partition numbers
//! per place in `partitions`, the live partitions' keys as columns, and their row
//! references, event times, classes and reported rows one after another.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, PrimitiveArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, Int64Type, TimestampMillisecondType, UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use sluice_engine::state::{StateReader, StateWriter};
use sluice_engine::{EngineError, Result};

use super::{MatchRecognize, Pending};
use crate::partition::Partition;
use crate::store::RowRef;

/// The columns of the per-partition numbers, in order.
const LIVE: usize = 0;
const BASE: usize = 1;
const NEXT_START: usize = 2;
const MATCHES: usize = 3;
const UNMATCHED_FROM: usize = 4;
const DEADLINE: usize = 5;
const LATEST: usize = 6;
const ROWS: usize = 7;
const CLASSES: usize = 8;
const REPORTED: usize = 9;

impl MatchRecognize {
    pub(super) fn save(&mut self, state: &mut StateWriter) -> Result<()> {
        state.label("pending");
        state.u64(self.arrivals);
        state.usize(self.pending.len());
        for pending in &self.pending {
            let mut columns = pending.rows.columns().to_vec();
            columns.push(Arc::new(pending.times.clone()));
            columns.push(Arc::new(UInt64Array::new(pending.arrivals.clone(), None)));
            state.arrays(&columns, pending.rows.num_rows())?;
        }
        state.label("progress");
        state.i64(self.watermark);
        state.bool(self.complete);
        state.i64(self.next_idle_sweep);
        state.label("store");
        self.store.save_state(state)?;
        state.label("partitions");
        let live: Vec<bool> = self
            .partitions
            .iter()
            .enumerate()
            .map(|(place, p)| self.by_key.get(&p.key) == Some(&place))
            .collect();
        let live_count = live.iter().filter(|l| **l).count();
        if live_count != self.by_key.len() {
            return Err(EngineError::Checkpoint(format!(
                "match_recognize: {} partition keys for {live_count} partitions",
                self.by_key.len()
            )));
        }
        let places = self.partitions.len();
        let number = |value: fn(&Partition) -> u64| -> ArrayRef {
            Arc::new(UInt64Array::from_iter_values(
                self.partitions.iter().map(value),
            ))
        };
        let numbers: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(live.clone())),
            number(|p| p.base as u64),
            number(|p| p.next_start as u64),
            number(|p| p.matches),
            number(|p| p.unmatched_from as u64),
            Arc::new(Int64Array::from_iter(
                self.partitions.iter().map(|p| p.deadline),
            )),
            Arc::new(Int64Array::from_iter_values(
                self.partitions.iter().map(|p| p.latest),
            )),
            number(|p| p.refs.len() as u64),
            number(|p| p.classes.len() as u64),
            number(|p| p.reported.len() as u64),
        ];
        state.arrays(&numbers, places)?;
        let free = UInt64Array::from_iter_values(self.free.iter().map(|f| *f as u64));
        state.arrays(&[Arc::new(free)], self.free.len())?;
        let kept: Vec<&Partition> = self
            .partitions
            .iter()
            .zip(&live)
            .filter(|(_, live)| **live)
            .map(|(p, _)| p)
            .collect();
        if !self.config.partition_by.is_empty() {
            let parser = self.keys.parser();
            let keys = self
                .keys
                .convert_rows(kept.iter().map(|p| parser.parse(&p.key)))?;
            state.arrays(&keys, kept.len())?;
        }
        let refs: Vec<(u32, u32)> = kept
            .iter()
            .flat_map(|p| p.refs.iter().map(|r| r.parts()))
            .collect();
        let rows: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(refs.iter().map(|r| r.0))),
            Arc::new(UInt32Array::from_iter_values(refs.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(
                kept.iter().flat_map(|p| p.times.iter().copied()),
            )),
        ];
        state.arrays(&rows, refs.len())?;
        let classes =
            UInt64Array::from_iter_values(kept.iter().flat_map(|p| p.classes.iter().copied()));
        let count = classes.len();
        state.arrays(&[Arc::new(classes)], count)?;
        let reported = UInt64Array::from_iter_values(
            kept.iter()
                .flat_map(|p| p.reported.iter().map(|r| *r as u64)),
        );
        let count = reported.len();
        state.arrays(&[Arc::new(reported)], count)?;
        Ok(())
    }

    pub(super) fn load(&mut self, state: &mut StateReader) -> Result<()> {
        state.label("pending")?;
        self.arrivals = state.u64()?;
        let pendings = state.usize()?;
        let fields = self.input_schema.fields().len();
        self.pending.clear();
        for _ in 0..pendings {
            let (mut columns, rows) = state.arrays()?;
            if columns.len() != fields + 2 {
                return Err(damaged("pending rows"));
            }
            let arrivals = primitive::<UInt64Type>(&columns, fields + 1, "arrival numbers")?
                .values()
                .to_vec();
            let times =
                primitive::<TimestampMillisecondType>(&columns, fields, "event times")?.clone();
            columns.truncate(fields);
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            let rows =
                RecordBatch::try_new_with_options(self.input_schema.clone(), columns, &options)?;
            self.pending.push(Pending::new(rows, times, arrivals)?);
        }
        state.label("progress")?;
        self.watermark = state.i64()?;
        self.complete = state.bool()?;
        self.next_idle_sweep = state.i64()?;
        state.label("store")?;
        self.store.load_state(state)?;
        state.label("partitions")?;
        let (numbers, places) = state.arrays()?;
        let live = numbers
            .get(LIVE)
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| damaged("which partitions are live"))?
            .clone();
        let base = primitive::<UInt64Type>(&numbers, BASE, "first rows")?;
        let next_start = primitive::<UInt64Type>(&numbers, NEXT_START, "search starts")?;
        let matches = primitive::<UInt64Type>(&numbers, MATCHES, "match counts")?;
        let unmatched_from = primitive::<UInt64Type>(&numbers, UNMATCHED_FROM, "unmatched rows")?;
        let deadline = primitive::<Int64Type>(&numbers, DEADLINE, "deadlines")?;
        let latest = primitive::<Int64Type>(&numbers, LATEST, "latest times")?;
        let row_counts = primitive::<UInt64Type>(&numbers, ROWS, "row counts")?;
        let class_counts = primitive::<UInt64Type>(&numbers, CLASSES, "class counts")?;
        let reported_counts = primitive::<UInt64Type>(&numbers, REPORTED, "reported counts")?;
        let (free, _) = state.arrays()?;
        let free: Vec<usize> = primitive::<UInt64Type>(&free, 0, "free places")?
            .values()
            .iter()
            .map(|f| *f as usize)
            .collect();
        let live_count = live.true_count();
        let keys = if self.config.partition_by.is_empty() {
            None
        } else {
            let (columns, rows) = state.arrays()?;
            if rows != live_count {
                return Err(damaged("partition keys"));
            }
            Some(self.keys.convert_columns(&columns)?)
        };
        let (refs, _) = state.arrays()?;
        let chunks = primitive::<UInt32Type>(&refs, 0, "row chunks")?;
        let chunk_rows = primitive::<UInt32Type>(&refs, 1, "rows in chunks")?;
        let times = primitive::<Int64Type>(&refs, 2, "event times")?;
        let (classes, _) = state.arrays()?;
        let classes = primitive::<UInt64Type>(&classes, 0, "classes")?;
        let (reported, _) = state.arrays()?;
        let reported = primitive::<UInt64Type>(&reported, 0, "reported rows")?;

        self.partitions.clear();
        self.by_key.clear();
        self.deadlines.clear();
        let (mut at_row, mut at_class, mut at_reported, mut at_key) = (0, 0, 0, 0);
        for place in 0..places {
            if !live.value(place) {
                self.partitions.push(Partition::new(Box::default()));
                continue;
            }
            let key: Box<[u8]> = match &keys {
                Some(keys) => keys.row(at_key).data().into(),
                None => Box::default(),
            };
            at_key += 1;
            let mut partition = Partition::new(key.clone());
            partition.base = base.value(place) as usize;
            partition.next_start = next_start.value(place) as usize;
            partition.matches = matches.value(place);
            partition.unmatched_from = unmatched_from.value(place) as usize;
            partition.deadline = deadline.is_valid(place).then(|| deadline.value(place));
            partition.latest = latest.value(place);
            let rows = row_counts.value(place) as usize;
            let classified = class_counts.value(place) as usize;
            let noted = reported_counts.value(place) as usize;
            if rows > times.len().saturating_sub(at_row)
                || classified > rows
                || classified > classes.len().saturating_sub(at_class)
                || noted > reported.len().saturating_sub(at_reported)
                || partition.next_start < partition.base
            {
                return Err(damaged("a partition's rows"));
            }
            let refs = (at_row..at_row + rows)
                .map(|row| {
                    self.store
                        .row_ref(chunks.value(row), chunk_rows.value(row))
                        .ok_or_else(|| damaged("a row reference"))
                })
                .collect::<Result<Vec<RowRef>>>()?;
            partition.push(&mut self.store, refs.into_iter());
            partition
                .times
                .extend_from_slice(&times.values()[at_row..at_row + rows]);
            partition
                .classes
                .extend_from_slice(&classes.values()[at_class..at_class + classified]);
            partition.reported = reported.values()[at_reported..at_reported + noted]
                .iter()
                .map(|r| *r as usize)
                .collect();
            at_row += rows;
            at_class += classified;
            at_reported += noted;
            if let Some(deadline) = partition.deadline {
                self.deadlines.insert((deadline, place));
            }
            if self.by_key.insert(key, place).is_some() {
                return Err(damaged("two partitions of one key"));
            }
            self.partitions.push(partition);
        }
        let distinct: HashSet<usize> = free.iter().copied().collect();
        if distinct.len() != free.len()
            || free.len() + live_count != places
            || free.iter().any(|f| *f >= places || live.value(*f))
            || at_row != times.len()
            || at_class != classes.len()
            || at_reported != reported.len()
        {
            return Err(damaged("the partitions' places"));
        }
        self.free = free;
        Ok(())
    }
}

/// Column `index` of `columns`, of type `T`.
fn primitive<'a, T: ArrowPrimitiveType>(
    columns: &'a [ArrayRef],
    index: usize,
    what: &str,
) -> Result<&'a PrimitiveArray<T>> {
    columns
        .get(index)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or_else(|| damaged(what))
}

fn damaged(what: &str) -> EngineError {
    EngineError::Checkpoint(format!("the match_recognize state is inconsistent: {what}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator as BinaryOperator;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
    use sluice_engine::operator::Operator;
    use sluice_engine::state::{StateReader, StateWriter};
    use sluice_engine::time::{Millis, WATERMARK_MAX};
    use sluice_engine::{Changes, EngineError, Result};

    use crate::{
        AllRows, Condition, Derived, MatchRecognize, MatchRecognizeConfig, Navigate, Navigation,
        Program, Skip, parse_pattern,
    };

    /// A deterministic xorshift generator.
    struct Random(u64);

    impl Random {
        fn new(seed: u64) -> Self {
            Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    fn input_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    fn column(name: &str, index: usize) -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(name, index))
    }

    fn int(value: i64) -> Arc<dyn PhysicalExpr> {
        Arc::new(Literal::new(ScalarValue::Int64(Some(value))))
    }

    fn compare(
        left: Arc<dyn PhysicalExpr>,
        op: BinaryOperator,
        right: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(left, op, right))
    }

    /// A condition on `v` alone.
    fn on_v(op: BinaryOperator, value: i64) -> Option<Condition> {
        Some(Condition {
            predicate: compare(column("v", 1), op, int(value)),
            derived: Vec::new(),
            schema: input_schema(),
        })
    }

    /// `v op d` where `d` is `derived` (an `Int64`).
    fn against(op: BinaryOperator, derived: Derived) -> Condition {
        let mut fields: Vec<Field> = input_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("d", DataType::Int64, true));
        Condition {
            predicate: compare(column("v", 1), op, column("d", 3)),
            derived: vec![derived],
            schema: Arc::new(Schema::new(fields)),
        }
    }

    fn navigation(navigate: Navigate, variables: Option<Vec<usize>>, v: bool) -> Navigation {
        Navigation {
            is_final: true,
            navigate,
            variables,
            argument: v.then(|| column("v", 1)),
            offset: 0,
            label: None,
            shift: 0,
        }
    }

    /// The configuration of variant `variant`: together they cover partitions dropped when
    /// empty or kept, `PREV`, `NEXT` (classified later), conditions that read the match,
    /// all rows per match, `WITHIN` with timeouts, tie breakers and a state TTL.
    fn config(variant: u64) -> Result<MatchRecognizeConfig> {
        let pattern = |text: &str| -> Result<Program> {
            parse_pattern(text)
                .and_then(|p| Program::compile(&p))
                .map_err(|e| EngineError::Input(e.to_string()))
        };
        let prev = |offset| Derived::Shift(column("v", 1), offset);
        let input = input_schema();
        let key_field = Field::new("k", DataType::Utf8, true);
        let int_field = |name: &str| Field::new(name, DataType::Int64, true);
        let number_field = |name: &str| Field::new(name, DataType::UInt64, true);
        let text_field = |name: &str| Field::new(name, DataType::Utf8, true);
        let base = |program, conditions, navigations: Vec<Navigation>, fields: Vec<Field>| {
            let navigation_schema = Arc::new(Schema::new(fields.clone()));
            MatchRecognizeConfig {
                program,
                all_rows: None,
                partition_by: vec![column("k", 0)],
                time_column: 2,
                arrival_order: false,
                tie_breakers: Vec::new(),
                conditions,
                measures: (0..navigations.len())
                    .map(|i| column(&format!("n{i}"), i))
                    .collect(),
                navigations,
                navigation_schema,
                skip: Skip::PastLastRow,
                within: None,
                emit_timeouts: false,
                output_event_time: false,
                read_columns: None,
                idle_ttl: None,
                schema: Arc::new(Schema::new(
                    std::iter::once(key_field.clone())
                        .chain(fields)
                        .collect::<Vec<_>>(),
                )),
            }
        };
        let all_rows_schema = |fields: Vec<Field>| -> SchemaRef {
            Arc::new(Schema::new(
                input
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .chain(fields)
                    .collect::<Vec<_>>(),
            ))
        };
        Ok(match variant % 4 {
            0 => {
                // Rises and falls, counted; idle partitions expire.
                let mut config = base(
                    pattern("A B+ C")?,
                    vec![
                        on_v(BinaryOperator::Lt, 3),
                        Some(against(BinaryOperator::Gt, prev(-1))),
                        Some(against(BinaryOperator::Lt, prev(-1))),
                    ],
                    vec![
                        navigation(Navigate::First, Some(vec![0]), true),
                        navigation(Navigate::Last, Some(vec![1]), true),
                        navigation(Navigate::MatchNumber, None, false),
                    ],
                    vec![int_field("n0"), int_field("n1"), number_field("n2")],
                );
                config.idle_ttl = Some(1_500);
                config
            }
            1 => {
                // All rows with unmatched ones, a condition reading the next row, `WITHIN`
                // without timeouts; partitions dropped as soon as they keep no rows.
                let fields = vec![text_field("n0"), int_field("n1"), int_field("n2")];
                let mut config = base(
                    pattern("A B*? C")?,
                    vec![
                        Some(against(BinaryOperator::Lt, prev(1))),
                        None,
                        on_v(BinaryOperator::Gt, 3),
                    ],
                    vec![
                        navigation(Navigate::Classifier, None, false),
                        navigation(Navigate::First, None, true),
                        Navigation {
                            is_final: false,
                            ..navigation(Navigate::Last, None, true)
                        },
                    ],
                    fields.clone(),
                );
                config.all_rows = Some(AllRows::WithUnmatched);
                config.skip = Skip::ToNextRow;
                config.within = Some(2_000);
                config.schema = all_rows_schema(fields);
                config
            }
            2 => {
                // One partition, `WITHIN` with timeouts, ties broken by `v` descending.
                let fields = vec![int_field("n0"), int_field("n1")];
                let mut config = base(
                    pattern("A B+ C")?,
                    vec![
                        on_v(BinaryOperator::Lt, 2),
                        on_v(BinaryOperator::GtEq, 2),
                        on_v(BinaryOperator::Eq, 5),
                    ],
                    vec![
                        navigation(Navigate::First, Some(vec![0]), true),
                        navigation(Navigate::Last, Some(vec![1]), true),
                    ],
                    fields.clone(),
                );
                config.partition_by = Vec::new();
                config.tie_breakers = vec![(column("v", 1), true)];
                config.within = Some(3_000);
                config.emit_timeouts = true;
                config.schema = Arc::new(Schema::new(fields));
                config
            }
            _ => {
                // A condition that reads the match so far and fails on some rows (tested
                // again while the search waits for more), empty matches shown.
                let fields = vec![number_field("n0"), text_field("n1")];
                let mut config = base(
                    pattern("A* B")?,
                    vec![
                        on_v(BinaryOperator::LtEq, 4),
                        // `v / (v - 4) > LAST(A.v)`: fails (and is reported) where v = 4.
                        Some(Condition {
                            predicate: compare(
                                compare(
                                    column("v", 1),
                                    BinaryOperator::Divide,
                                    compare(column("v", 1), BinaryOperator::Minus, int(4)),
                                ),
                                BinaryOperator::Gt,
                                column("d", 3),
                            ),
                            ..against(
                                BinaryOperator::Gt,
                                Derived::Context(Navigation {
                                    is_final: false,
                                    ..navigation(Navigate::Last, Some(vec![0]), true)
                                }),
                            )
                        }),
                    ],
                    vec![
                        navigation(Navigate::MatchNumber, None, false),
                        navigation(Navigate::Classifier, None, false),
                    ],
                    fields.clone(),
                );
                config.all_rows = Some(AllRows::ShowEmpty);
                config.skip = Skip::ToLast(0);
                config.within = Some(5_000);
                config.schema = all_rows_schema(fields);
                config
            }
        })
    }

    enum Event {
        Rows(RecordBatch),
        Watermark(Millis),
        End,
    }

    /// Random rows of three keys in batches, some out of order or late, with watermarks
    /// between them, then the end of input.
    fn events(random: &mut Random) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut clock = 0i64;
        let mut watermark = i64::MIN;
        for _ in 0..30 + random.below(20) {
            let count = 1 + random.below(4) as usize;
            let mut keys = Vec::new();
            let mut values = Vec::new();
            let mut times = Vec::new();
            for _ in 0..count {
                clock += random.below(700) as i64;
                keys.push(["a", "b", "c"][random.below(3) as usize]);
                values.push(random.below(7) as i64);
                times.push(match random.below(30) {
                    0 => None,
                    1 => Some(clock - 3_000),
                    // Coarse times, so that rows tie and their arrival order counts.
                    _ => Some((clock - random.below(400) as i64) / 300 * 300),
                });
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(values)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ];
            events.push(Event::Rows(RecordBatch::try_new(input_schema(), columns)?));
            let next = clock - random.below(1_500) as i64;
            if random.below(2) == 0 && next > watermark {
                watermark = next;
                events.push(Event::Watermark(watermark));
            }
        }
        events.push(Event::Watermark(WATERMARK_MAX));
        events.push(Event::End);
        Ok(events)
    }

    /// What one call gave: the output's rows with their kinds, the late rows and the failures.
    type Step = (
        Vec<(Vec<u8>, RecordBatch)>,
        Vec<RecordBatch>,
        Vec<(String, String)>,
    );

    fn feed(operator: &mut MatchRecognize, events: &[Event]) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        for event in events {
            let mut out = Vec::new();
            match event {
                Event::Rows(rows) => {
                    operator.process(0, Changes::inserts(rows.clone()), &mut out)?
                }
                Event::Watermark(watermark) => operator.on_watermark(*watermark, &mut out)?,
                Event::End => operator.on_end_of_input(&mut out)?,
            }
            let rows = out
                .iter()
                .map(|c| {
                    let kinds = (0..c.num_rows()).map(|r| c.kind(r) as u8).collect();
                    (kinds, c.rows.clone())
                })
                .collect();
            let late = operator.take_late().into_iter().map(|c| c.rows).collect();
            let failures = operator
                .take_failures()
                .into_iter()
                .map(|f| (f.error, f.row))
                .collect();
            steps.push((rows, late, failures));
        }
        Ok(steps)
    }

    #[test]
    fn a_loaded_operator_goes_on_as_the_saved_one() -> Result<()> {
        let mut rows_after = 0;
        let mut saved_partitions = 0;
        for seed in 0..400u64 {
            let mut random = Random::new(seed);
            let events = events(&mut random)?;
            let split = random.below(events.len() as u64 + 1) as usize;
            let mut original = MatchRecognize::new(config(seed)?, input_schema())?;
            feed(&mut original, &events[..split])?;
            let mut writer = StateWriter::new();
            original.save_state(&mut writer)?;
            let bytes = writer.into_bytes();
            saved_partitions += original.by_key.len();

            let mut loaded = MatchRecognize::new(config(seed)?, input_schema())?;
            let mut reader = StateReader::new(&bytes);
            loaded.load_state(&mut reader)?;
            assert!(reader.is_at_end(), "seed {seed}: state left unread");
            // The loaded state saves to the same bytes.
            let mut again = StateWriter::new();
            loaded.save_state(&mut again)?;
            assert!(
                again.into_bytes() == bytes,
                "seed {seed}: state saved differently"
            );

            let expected = feed(&mut original, &events[split..])?;
            let found = feed(&mut loaded, &events[split..])?;
            rows_after += expected
                .iter()
                .flat_map(|(rows, _, _)| rows)
                .map(|(kinds, _)| kinds.len())
                .sum::<usize>();
            assert!(
                expected == found,
                "seed {seed}, split at {split}: the loaded operator's output differs"
            );
        }
        // The comparisons were of something: matches after the split, from state saved.
        assert!(
            rows_after > 2_000,
            "only {rows_after} rows after the splits"
        );
        assert!(
            saved_partitions > 200,
            "only {saved_partitions} partitions saved"
        );
        Ok(())
    }
}
