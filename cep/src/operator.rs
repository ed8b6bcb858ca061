//! `MatchRecognize`: the streaming operator of `MATCH_RECOGNIZE`, one row per match or all
//! rows per match.
//!
//! When the watermark passes rows, they join their partitions in order and each partition
//! searches for matches from its next start; where no match can start, the search moves one
//! row on. Rows are stored once for all partitions (`store.rs`).
//!
//! - **State**: rows not yet passed by the watermark (with one row per match, the columns
//!   nothing reads kept as NULLs); per partition, the rows passed by it in
//!   event-time order (ties in arrival order) from a few rows before the next search start
//!   (as far back as `PREV` reaches), which of them satisfy each variable's condition, and
//!   the number of matches so far. A partition is dropped as soon as it keeps no rows, unless
//!   the query reads what would go with it (`MATCH_NUMBER()`, or `^` which needs to know
//!   where the partition starts).
//! - **Emits**: a match as soon as no row still to come can change it (and, when a measure
//!   reads rows after the match with `NEXT`, once they have come), then the search resumes
//!   where `AFTER MATCH SKIP` says. One row per match is `+I` of the partition
//!   columns and the measures; all rows per match is `+I` of each row of the match not
//!   excluded (`{- -}`) with the measures, and of empty matches and unmatched rows as
//!   [`AllRows`] says. With `WITHIN`, rows more than the bound after a match's first row
//!   cannot join it, and with `EMIT TIMEOUTS` the preferred partial match the bound cut off
//!   is emitted with op `timeout` and the measures of its rows.
//! - **Watermark**: what lets rows into their partitions, and what proves that no row will
//!   come to extend a partial match beyond `WITHIN`. When the output has an event-time
//!   attribute, the watermark forwarded stays at or before the first row of every search
//!   still pending, so that the matches it finds are not late downstream. With a state TTL (`SET
//!   'table.exec.state.ttl'`), a partition is also dropped once no row has come to it for
//!   that long (in event time) and no search is pending, losing the match count and the rows
//!   `PREV` would read.
//! - **Late rows**: a row behind the watermark when it comes (or with a NULL time) goes to
//!   the late side output.
//! - **In arrival order** (`ORDER BY` a processing-time attribute): rows join their
//!   partitions as they come, in arrival order, and the latest processing time seen stands
//!   for the watermark (it decides `WITHIN`); nothing is late. A replay from the log sees the
//!   same processing times, so the same matches.
//! - **End of input**: every partition's rows are complete, so every search is decided;
//!   nothing stays.
//! - **Checkpoint**: the rows the watermark has not passed (with their event times and
//!   arrival numbers) and the arrival count; the watermark, whether input ended and when idle
//!   partitions are next swept; the row store's batches as they are (released places empty),
//!   and per place in the partition list whether a partition is there, its key (as columns),
//!   its rows as references into the store (chunk and row) with their event times and
//!   classes, its first row's number, next search start, match count, first row not yet
//!   taken by a match, `WITHIN` deadline, latest event time and the rows whose failures were
//!   reported; and the free places in their order. No search is in progress between calls
//!   (each call searches again from the next start; its memo lives only during one search),
//!   so there is none to save. Rebuilt on load: the deadline index from the partitions'
//!   deadlines, the store's reference counts from the references, the partitions' gathered
//!   rows when next read.

mod checkpoint;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, TimestampMillisecondArray, UInt32Array, UInt64Array,
    new_null_array,
};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::compute::{
    SortColumn, concat, concat_batches, lexsort_to_indices, take, take_record_batch,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::HashMap;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use sluice_engine::changes::batch_of;
use sluice_engine::failure::evaluate_each;
use sluice_engine::limits::MAX_SEARCH_STEPS;
use sluice_engine::operator::{Operator, OperatorMetrics};
use sluice_engine::state::{StateReader, StateWriter};
use sluice_engine::time::{Millis, WATERMARK_MIN, millis};
use sluice_engine::{Changes, EngineError, Result, RowFailure, RowKind};

use crate::condition::{Condition, Derived, shifted};
use crate::config::{AllRows, MatchRecognizeConfig, Skip};
use crate::navigation::{Navigate, Navigation, navigation_value};
use crate::partition::Partition;
use crate::partition_rows::PartitionRows;
use crate::scalar_condition::ScalarCondition;
use crate::store::{RowRef, RowStore};
use crate::{Binding, Found};

/// Rows that came before the watermark passed them, with their event times and arrival
/// numbers, in time order.
struct Pending {
    rows: RecordBatch,
    times: TimestampMillisecondArray,
    arrivals: ScalarBuffer<u64>,
    /// The earliest and latest of `times` (the watermark passes none, some or all of them).
    earliest: Millis,
    latest: Millis,
}

impl Pending {
    /// `rows` with their times and arrival numbers, put in time order (ties in arrival
    /// order), so that the watermark passes a prefix of them.
    fn new(
        rows: RecordBatch,
        times: TimestampMillisecondArray,
        arrivals: Vec<u64>,
    ) -> Result<Self> {
        let sorted =
            times.null_count() == 0 && times.values().windows(2).all(|pair| pair[0] <= pair[1]);
        if sorted {
            return Ok(Pending::in_order(rows, times, arrivals.into()));
        }
        let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
        // Stable: ties keep their arrival order. NULL times (none are kept) go first.
        order.sort_by_key(|&row| {
            times
                .is_valid(row as usize)
                .then(|| times.value(row as usize))
        });
        let indices = UInt32Array::from(order);
        let arrivals: Vec<u64> = indices
            .values()
            .iter()
            .map(|&row| arrivals[row as usize])
            .collect();
        let times = take(&times, &indices, None)?
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        Ok(Pending::in_order(
            take_record_batch(&rows, &indices)?,
            times,
            arrivals.into(),
        ))
    }

    /// Rows already in time order.
    fn in_order(
        rows: RecordBatch,
        times: TimestampMillisecondArray,
        arrivals: ScalarBuffer<u64>,
    ) -> Self {
        let earliest = times.iter().flatten().next().unwrap_or(Millis::MAX);
        let latest = times.iter().flatten().next_back().unwrap_or(Millis::MIN);
        Pending {
            rows,
            times,
            arrivals,
            earliest,
            latest,
        }
    }

    /// The first `count` rows, and the rest (slices: nothing is copied).
    fn split(self, count: usize) -> (Pending, Pending) {
        let length = self.rows.num_rows();
        let part = |offset: usize, length: usize| {
            Pending::in_order(
                self.rows.slice(offset, length),
                self.times.slice(offset, length),
                self.arrivals.slice(offset, length),
            )
        };
        (part(0, count), part(count, length - count))
    }
}

/// The order rows are admitted in without tie breakers: by partition, then event time (when
/// `by_time`), then arrival. Arrival numbers are unique, so the order is total.
fn admission_order(
    partitions: &[u64],
    times: &ArrayRef,
    arrivals: &[u64],
    by_time: bool,
) -> UInt32Array {
    let times = times.as_primitive::<TimestampMillisecondType>();
    let mut keys: Vec<(u64, i64, u64, u32)> = (0..partitions.len())
        .map(|row| {
            let time = if by_time && times.is_valid(row) {
                times.value(row)
            } else {
                i64::MIN
            };
            (partitions[row], time, arrivals[row], row as u32)
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|(.., row)| row).collect()
}

/// A match or timeout to emit.
struct Emitted {
    partition: usize,
    kind: RowKind,
    /// The match's rows (empty for an empty match or an unmatched row).
    path: Vec<Binding>,
    number: u64,
    /// With all rows per match: the input row this output row is.
    row: Option<usize>,
    /// How many rows of the path `RUNNING` measures see.
    upto: usize,
}

pub struct MatchRecognize {
    config: MatchRecognizeConfig,
    input_schema: SchemaRef,
    keys: RowConverter,
    partitions: Vec<Partition>,
    by_key: HashMap<Box<[u8]>, usize>,
    /// Places in `partitions` of dropped partitions, for new ones.
    free: Vec<usize>,
    /// Whether a partition that keeps no rows can be dropped at once: nothing it would
    /// keep (the match count, where the partition starts) is read.
    drop_when_empty: bool,
    /// When the watermark next passes this, partitions idle for longer than the state TTL
    /// are dropped.
    next_idle_sweep: Millis,
    /// The partitions' rows.
    store: RowStore,
    /// Rows the watermark has not passed yet, as they came.
    pending: Vec<Pending>,
    arrivals: u64,
    watermark: Millis,
    complete: bool,
    /// How many rows before a search start a condition or measure may read.
    lookback: usize,
    /// How many rows after a row its conditions read.
    lookahead: usize,
    /// How many rows after a match's last row its measures may read (`NEXT`): a match is
    /// emitted once they are there (or the input has ended).
    measure_ahead: usize,
    /// Whether a condition reads the match so far (the search then reads the rows).
    reads_match: bool,
    /// Per variable, its condition compiled to be tested without DataFusion, if it reads
    /// the match and can be.
    scalar: Vec<Option<ScalarCondition>>,
    /// Whether every condition that reads the match is compiled so: the search then reads
    /// the stored rows and needs no gathered batch.
    all_scalar: bool,
    /// The variables a match can begin with, when all of them are classified as rows are
    /// admitted: a row satisfying none of them starts no match, without a search.
    first_variables: Option<u64>,
    /// With `WITHIN`: partitions waiting on a search, by the time after which the watermark
    /// decides it (the search start's time plus the bound).
    deadlines: BTreeSet<(Millis, usize)>,
    late: Vec<Changes>,
    /// Rows whose conditions, measures or search failed, for the query's error output.
    failures: Vec<RowFailure>,
    /// NULL columns for the input columns nothing reads (see `unread_as_nulls`).
    nulls: Vec<ArrayRef>,
}

impl MatchRecognize {
    pub fn new(config: MatchRecognizeConfig, input_schema: SchemaRef) -> Result<Self> {
        if config.program.variables().len() > 64 {
            return Err(EngineError::Input(
                "a pattern may name at most 64 variables".into(),
            ));
        }
        let key_types = config
            .partition_by
            .iter()
            .map(|e| e.data_type(&input_schema).map(SortField::new))
            .collect::<Result<Vec<_>, _>>()?;
        let offsets: Vec<i64> = config
            .conditions
            .iter()
            .flatten()
            .flat_map(|c| c.shifts().map(|(_, offset)| offset))
            .collect();
        let lookahead = offsets
            .iter()
            .map(|o| (*o).max(0) as usize)
            .max()
            .unwrap_or(0);
        let condition_back = offsets
            .iter()
            .map(|o| (-*o).max(0) as usize)
            .max()
            .unwrap_or(0);
        let context = config
            .conditions
            .iter()
            .flatten()
            .flat_map(|c| &c.derived)
            .filter_map(|d| match d {
                Derived::Context(navigation) => Some(navigation),
                Derived::Shift(..) => None,
            });
        let measure_back = config
            .navigations
            .iter()
            .chain(context)
            .filter(|n| matches!(n.navigate, Navigate::Prev))
            .map(|n| n.offset)
            .max()
            .unwrap_or(0);
        let measure_ahead = config
            .navigations
            .iter()
            .map(|n| {
                let next = match n.navigate {
                    Navigate::Next => n.offset as i64,
                    _ => 0,
                };
                next.saturating_add(n.shift).max(0) as usize
            })
            .max()
            .unwrap_or(0);
        let scalar: Vec<Option<ScalarCondition>> = config
            .conditions
            .iter()
            .map(|c| {
                c.as_ref()
                    .filter(|c| c.reads_match())
                    .and_then(|c| ScalarCondition::compile(c, &input_schema))
            })
            .collect();
        let all_scalar = config
            .conditions
            .iter()
            .zip(&scalar)
            .all(|(c, s)| c.as_ref().is_none_or(|c| !c.reads_match()) || s.is_some());
        // Columns nothing reads are not stored (those that cannot be NULL are kept whole).
        let stored_columns = config.read_columns.as_ref().map(|read| {
            (0..input_schema.fields().len())
                .filter(|c| read.contains(c) || !input_schema.field(*c).is_nullable())
                .collect()
        });
        let store = RowStore::new(input_schema.clone(), stored_columns);
        Ok(MatchRecognize {
            scalar,
            all_scalar,
            measure_ahead,
            keys: RowConverter::new(key_types)?,
            lookback: condition_back.max(measure_back),
            lookahead,
            free: Vec::new(),
            drop_when_empty: !config.program.anchored_at_start()
                && !config
                    .navigations
                    .iter()
                    .any(|n| matches!(n.navigate, Navigate::MatchNumber)),
            next_idle_sweep: WATERMARK_MIN,
            first_variables: config.program.first_variables().filter(|first| {
                config
                    .conditions
                    .iter()
                    .enumerate()
                    .all(|(variable, condition)| {
                        first & (1 << variable) == 0
                            || condition.as_ref().is_none_or(|c| !c.reads_match())
                    })
            }),
            reads_match: config
                .conditions
                .iter()
                .flatten()
                .any(Condition::reads_match),
            deadlines: BTreeSet::new(),
            config,
            partitions: Vec::new(),
            by_key: HashMap::default(),
            store,
            pending: Vec::new(),
            arrivals: 0,
            watermark: WATERMARK_MIN,
            complete: false,
            late: Vec::new(),
            failures: Vec::new(),
            nulls: Vec::new(),
            input_schema,
        })
    }

    /// `rows` with the columns the store does not keep as NULLs, so that sorting and
    /// admitting them copies only what is kept (see `read_columns` in the config).
    fn unread_as_nulls(&mut self, rows: RecordBatch) -> Result<RecordBatch> {
        if self.config.read_columns.is_none() {
            return Ok(rows);
        }
        let count = rows.num_rows();
        let schema = rows.schema();
        // NULL columns as long as the longest batch so far, sliced for each.
        if self.nulls.first().is_none_or(|n| n.len() < count) {
            self.nulls = schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), count))
                .collect();
        }
        let columns: Vec<ArrayRef> = rows
            .columns()
            .iter()
            .zip(&self.nulls)
            .enumerate()
            .map(|(index, (column, nulls))| match self.store.keeps(index) {
                true => Arc::clone(column),
                false => nulls.slice(0, count),
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?)
    }

    /// The event times of `batch`, in milliseconds.
    fn times(&self, batch: &RecordBatch) -> Result<TimestampMillisecondArray> {
        millis(batch.column(self.config.time_column))
    }

    /// Moves the pending rows before the watermark (all at the end) into their partitions,
    /// in order.
    fn admit(&mut self) -> Result<Vec<usize>> {
        let mut ready_rows = Vec::new();
        let mut ready_times: Vec<ArrayRef> = Vec::new();
        let mut arrival_column: Vec<u64> = Vec::new();
        let mut kept = Vec::new();
        for pending in std::mem::take(&mut self.pending) {
            // The rows are in time order: the watermark has passed a prefix of them.
            let all = self.complete || self.config.arrival_order || pending.latest < self.watermark;
            let ready = if all {
                pending.rows.num_rows()
            } else if pending.earliest >= self.watermark {
                0
            } else {
                pending
                    .times
                    .values()
                    .partition_point(|t| *t < self.watermark)
            };
            let (ready, waiting) = match ready {
                0 => {
                    kept.push(pending);
                    continue;
                }
                ready if ready == pending.rows.num_rows() => (pending, None),
                ready => {
                    let (ready, waiting) = pending.split(ready);
                    (ready, Some(waiting))
                }
            };
            ready_rows.push(ready.rows);
            ready_times.push(Arc::new(ready.times) as ArrayRef);
            arrival_column.extend_from_slice(&ready.arrivals);
            kept.extend(waiting);
        }
        self.pending = kept;
        if ready_rows.is_empty() {
            return Ok(Vec::new());
        }
        let batch = concat_batches(&self.input_schema, &ready_rows)?;
        let time_refs: Vec<&dyn Array> = ready_times.iter().map(|a| a.as_ref()).collect();
        let batch_times = concat(&time_refs)?;
        let rows = batch.num_rows();
        let key_columns = self
            .config
            .partition_by
            .iter()
            .map(|e| e.evaluate(&batch)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        // Without PARTITION BY, every row is in the one partition (of the empty key).
        let keys = (!key_columns.is_empty())
            .then(|| self.keys.convert_columns(&key_columns))
            .transpose()?;
        // Order: partition, time, tie breakers, arrival.
        let partition_ids: Vec<u64> = (0..rows)
            .map(|row| {
                let key = keys.as_ref().map_or(&[][..], |keys| keys.row(row).data());
                self.partition_of(key) as u64
            })
            .collect();
        let order = if self.config.tie_breakers.is_empty() {
            admission_order(
                &partition_ids,
                &batch_times,
                &arrival_column,
                !self.config.arrival_order,
            )
        } else {
            let mut sort = vec![SortColumn {
                values: Arc::new(UInt64Array::from(partition_ids.clone())),
                options: None,
            }];
            if !self.config.arrival_order {
                sort.push(SortColumn {
                    values: batch_times.clone(),
                    options: None,
                });
            }
            for (expression, descending) in &self.config.tie_breakers {
                sort.push(SortColumn {
                    values: expression.evaluate(&batch)?.into_array(rows)?,
                    options: Some(datafusion::arrow::compute::SortOptions {
                        descending: *descending,
                        nulls_first: !*descending,
                    }),
                });
            }
            sort.push(SortColumn {
                values: Arc::new(UInt64Array::from(arrival_column)),
                options: None,
            });
            lexsort_to_indices(&sort, None)?
        };
        let sorted = take_record_batch(&batch, &order)?;
        let sorted_partitions: Vec<u64> = order
            .values()
            .iter()
            .map(|i| partition_ids[*i as usize])
            .collect();
        let sorted_times = take(&batch_times, &order, None)?;
        let sorted_times = sorted_times.as_primitive::<TimestampMillisecondType>();
        // Each partition's run of the sorted rows: (partition, start, end).
        let mut runs = Vec::new();
        let mut start = 0;
        while start < rows {
            let partition = sorted_partitions[start] as usize;
            let end = (start..rows)
                .find(|r| sorted_partitions[*r] as usize != partition)
                .unwrap_or(rows);
            runs.push((partition, start, end));
            start = end;
        }
        if self.lookahead == 0 && !self.complete {
            self.classify_admitted(&sorted, &runs)?;
        }
        let at = self.store.add(sorted)?;
        let mut touched = Vec::new();
        for (partition, start, end) in runs {
            let state = &mut self.partitions[partition];
            state.push(&mut self.store, (start..end).map(&at));
            state
                .times
                .extend_from_slice(&sorted_times.values()[start..end]);
            state.latest = state.latest.max(sorted_times.value(end - 1));
            touched.push(partition);
        }
        Ok(touched)
    }

    /// Classifies the rows being admitted, all partitions at once (before they join their
    /// partitions): `runs` gives each partition's rows of `sorted`. Conditions that read the
    /// match are left to the search; with `NEXT`, classification waits for later rows and is
    /// done per partition instead, so offsets here only reach back.
    fn classify_admitted(
        &mut self,
        sorted: &RecordBatch,
        runs: &[(usize, usize, usize)],
    ) -> Result<()> {
        let rows = sorted.num_rows();
        // The rows before each run that `PREV` may read: each run's tail of `tail`, which
        // follows `sorted` in the positions `reads` gives.
        let mut tail = Vec::new();
        let mut tails: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
        for &(partition, _, _) in runs {
            let refs = &self.partitions[partition].refs;
            let begins = tail.len();
            tail.extend(refs.range(refs.len() - self.lookback.min(refs.len())..));
            tails.push((begins, tail.len()));
        }
        let reads = |offset: i64| -> UInt32Array {
            let mut indices = Vec::with_capacity(rows);
            for (&(_, start, end), &(tail_begins, tail_ends)) in runs.iter().zip(&tails) {
                for row in start..end {
                    let read = row as i64 + offset;
                    let back = start as i64 - read;
                    indices.push(if read >= start as i64 {
                        Some(read as u32)
                    } else if back <= (tail_ends - tail_begins) as i64 {
                        Some((rows + tail_ends - back as usize) as u32)
                    } else {
                        None
                    });
                }
            }
            UInt32Array::from(indices)
        };
        let tail = if self.lookback > 0 {
            Some(self.store.gather(tail.iter())?)
        } else {
            None
        };
        let mut classes = vec![0u64; rows];
        // Rows of `sorted` a condition could not be computed for: they do not satisfy its
        // variable, and are reported once each.
        let mut failed: Vec<(usize, usize, String)> = Vec::new();
        for (variable, condition) in self.config.conditions.iter().enumerate() {
            let Some(condition) = condition else {
                classes.iter_mut().for_each(|c| *c |= 1 << variable);
                continue;
            };
            if condition.reads_match() {
                continue;
            }
            let mut columns = sorted.columns().to_vec();
            for (expression, offset) in condition.shifts() {
                let Some(tail) = &tail else {
                    continue;
                };
                let (values, errors) = evaluate_each(expression, sorted)?;
                failed.extend(
                    errors
                        .into_iter()
                        .map(|(row, error)| (row, variable, error)),
                );
                let (before, _) = evaluate_each(expression, tail)?;
                let values = concat(&[values.as_ref(), before.as_ref()])?;
                columns.push(take(values.as_ref(), &reads(offset), None)?);
            }
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            let extended =
                RecordBatch::try_new_with_options(condition.schema.clone(), columns, &options)?;
            let (holds, errors) = evaluate_each(&condition.predicate, &extended)?;
            failed.extend(
                errors
                    .into_iter()
                    .map(|(row, error)| (row, variable, error)),
            );
            let Some(holds) = holds.as_boolean_opt() else {
                return Err(EngineError::Input(
                    "a DEFINE condition is not a boolean".into(),
                ));
            };
            for (row, class) in classes.iter_mut().enumerate() {
                if holds.is_valid(row) && holds.value(row) {
                    *class |= 1 << variable;
                }
            }
        }
        let mut reported = BTreeSet::new();
        for (row, variable, error) in failed {
            if reported.insert(row) {
                let error = self.config.condition_failed(variable, error);
                self.failures.push(RowFailure::of(sorted, row, error));
            }
        }
        for &(partition, start, end) in runs {
            self.partitions[partition]
                .classes
                .extend_from_slice(&classes[start..end]);
        }
        Ok(())
    }

    fn partition_of(&mut self, key: &[u8]) -> usize {
        if let Some(index) = self.by_key.get(key) {
            return *index;
        }
        let index = match self.free.pop() {
            Some(index) => {
                self.partitions[index] = Partition::new(key.into());
                index
            }
            None => {
                self.partitions.push(Partition::new(key.into()));
                self.partitions.len() - 1
            }
        };
        self.by_key.insert(key.into(), index);
        index
    }

    /// Drops a partition's state (a row of its key that comes later starts it anew).
    fn drop_partition(&mut self, partition: usize) {
        let state = &mut self.partitions[partition];
        if self.by_key.get(&state.key) != Some(&partition) {
            return;
        }
        self.by_key.remove(&state.key);
        state.drop_front(&mut self.store, state.refs.len());
        if let Some(deadline) = state.deadline {
            self.deadlines.remove(&(deadline, partition));
        }
        *state = Partition::new(Box::default());
        self.free.push(partition);
    }

    /// With a state TTL, drops the partitions no row has come to for longer, that wait on
    /// no search.
    fn drop_idle(&mut self) {
        let Some(ttl) = self.config.idle_ttl else {
            return;
        };
        if self.watermark < self.next_idle_sweep || self.complete {
            return;
        }
        self.next_idle_sweep = self.watermark.saturating_add(ttl / 2);
        let idle: Vec<usize> = (0..self.partitions.len())
            .filter(|p| {
                let state = &self.partitions[*p];
                state.next_start >= state.available()
                    && state.latest.saturating_add(ttl) < self.watermark
            })
            .collect();
        for partition in idle {
            self.drop_partition(partition);
        }
    }

    /// Evaluates the conditions for the partition's rows that can be classified now.
    fn classify(&mut self, partition: usize) -> Result<()> {
        let complete = self.complete;
        let state = &mut self.partitions[partition];
        let len = state.refs.len();
        let done = state.classes.len();
        let limit = if complete {
            len
        } else {
            len.saturating_sub(self.lookahead)
        };
        if limit <= done {
            return Ok(());
        }
        state.gather(&self.store)?;
        let all = state.rows()?;
        let mut classes = vec![0u64; limit - done];
        // Rows a condition could not be computed for (they do not satisfy its variable),
        // numbered from `done`, with the first error.
        let mut failed: BTreeMap<usize, String> = BTreeMap::new();
        for (variable, condition) in self.config.conditions.iter().enumerate() {
            let Some(condition) = condition else {
                classes.iter_mut().for_each(|c| *c |= 1 << variable);
                continue;
            };
            if condition.reads_match() {
                continue;
            }
            let rows = all.slice(done, limit - done);
            let mut columns = rows.columns().to_vec();
            for (expression, offset) in condition.shifts() {
                let (values, errors) = evaluate_each(expression, all)?;
                for (row, error) in errors {
                    if (done..limit).contains(&row) {
                        failed
                            .entry(row - done)
                            .or_insert_with(|| self.config.condition_failed(variable, error));
                    }
                }
                columns.push(shifted(&values, done, limit, offset)?);
            }
            let options = RecordBatchOptions::new().with_row_count(Some(limit - done));
            let extended =
                RecordBatch::try_new_with_options(condition.schema.clone(), columns, &options)?;
            let (holds, errors) = evaluate_each(&condition.predicate, &extended)?;
            for (row, error) in errors {
                failed
                    .entry(row)
                    .or_insert_with(|| self.config.condition_failed(variable, error));
            }
            let Some(holds) = holds.as_boolean_opt() else {
                return Err(EngineError::Input(
                    "a DEFINE condition is not a boolean".into(),
                ));
            };
            for (row, class) in classes.iter_mut().enumerate() {
                if holds.is_valid(row) && holds.value(row) {
                    *class |= 1 << variable;
                }
            }
        }
        for (row, error) in failed {
            self.failures
                .push(RowFailure::of(&all.slice(done, limit - done), row, error));
        }
        state.classes.extend(classes);
        Ok(())
    }

    /// Searches the partition from its next start until a search needs more rows.
    fn search(&mut self, partition: usize, emitted: &mut Vec<Emitted>) -> Result<()> {
        let program = &self.config.program;
        let state = &mut self.partitions[partition];
        if self.reads_match && !self.all_scalar {
            state.gather(&self.store)?;
        }
        loop {
            if state.next_start >= state.available() {
                return Ok(());
            }
            let mut view = PartitionRows {
                partition: state,
                config: &self.config,
                complete: self.complete,
                future: self.watermark,
                failed: BTreeMap::new(),
                store: &self.store,
                scalar: &self.scalar,
                gathered: std::cell::OnceCell::new(),
            };
            let cannot_start = match (self.first_variables, view.class(state.next_start)) {
                (Some(first), Some(class)) => class & first == 0,
                _ => false,
            };
            let found = if cannot_start {
                Found::NoMatch { timed_out: None }
            } else {
                program.find(&mut view, state.next_start, self.config.within)
            };
            let failed = std::mem::take(&mut view.failed);
            if !failed.is_empty() {
                state.gather(&self.store)?;
                for (row, error) in failed {
                    if state.reported.insert(row) {
                        self.failures
                            .push(RowFailure::of(state.rows()?, row - state.base, error));
                    }
                }
            }
            let found = match found {
                Found::Abandoned => {
                    state.gather(&self.store)?;
                    self.failures.push(RowFailure::of(
                        state.rows()?,
                        state.next_start - state.base,
                        format!(
                            "the pattern search from this row took more than {MAX_SEARCH_STEPS} \
                             steps (the limit): no match starts at it"
                        ),
                    ));
                    Found::NoMatch { timed_out: None }
                }
                found => found,
            };
            match found {
                // `NEXT` in a measure reads rows after the match that have not come yet:
                // the match waits for them (the search finds it again then).
                Found::Match(path)
                    if self.measure_ahead > 0
                        && !self.complete
                        && path.last().map_or(state.next_start, |b| b.row) + self.measure_ahead
                            >= state.available() =>
                {
                    return Ok(());
                }
                Found::Match(path) => {
                    state.matches += 1;
                    let start = state.next_start;
                    let last = path.last().map(|b| b.row);
                    state.next_start = match (self.config.skip, last) {
                        (_, None) => start + 1,
                        (Skip::PastLastRow, Some(last)) => last + 1,
                        (Skip::ToNextRow, _) => start + 1,
                        (Skip::ToFirst(v), _) => path
                            .iter()
                            .find(|b| b.variable == v)
                            .map_or(start + 1, |b| b.row)
                            .max(start + 1),
                        (Skip::ToLast(v), _) => path
                            .iter()
                            .rev()
                            .find(|b| b.variable == v)
                            .map_or(start + 1, |b| b.row)
                            .max(start + 1),
                    };
                    let number = state.matches;
                    match self.config.all_rows {
                        None => emitted.push(Emitted {
                            partition,
                            kind: RowKind::Insert,
                            upto: path.len(),
                            path,
                            number,
                            row: None,
                        }),
                        Some(mode) if path.is_empty() => {
                            if mode != AllRows::OmitEmpty {
                                emitted.push(Emitted {
                                    partition,
                                    kind: RowKind::Insert,
                                    path,
                                    number,
                                    row: Some(start),
                                    upto: 0,
                                });
                            }
                            state.unmatched_from = state.unmatched_from.max(start + 1);
                        }
                        Some(_) => {
                            for (index, binding) in path.iter().enumerate() {
                                if !binding.excluded {
                                    emitted.push(Emitted {
                                        partition,
                                        kind: RowKind::Insert,
                                        path: path.clone(),
                                        number,
                                        row: Some(binding.row),
                                        upto: index + 1,
                                    });
                                }
                            }
                            if let Some(last) = last {
                                state.unmatched_from = state.unmatched_from.max(last + 1);
                            }
                        }
                    }
                }
                Found::NoMatch { timed_out } => {
                    let start = state.next_start;
                    if let (true, Some(path)) = (self.config.emit_timeouts, timed_out) {
                        let rows: Vec<Option<usize>> = match self.config.all_rows {
                            None => vec![None],
                            Some(_) => path.iter().map(|b| Some(b.row)).collect(),
                        };
                        for (index, row) in rows.into_iter().enumerate() {
                            emitted.push(Emitted {
                                partition,
                                kind: RowKind::Timeout,
                                path: path.clone(),
                                number: 0,
                                row,
                                upto: if row.is_some() { index + 1 } else { path.len() },
                            });
                        }
                    }
                    if self.config.all_rows == Some(AllRows::WithUnmatched)
                        && start >= state.unmatched_from
                    {
                        emitted.push(Emitted {
                            partition,
                            kind: RowKind::Insert,
                            path: Vec::new(),
                            number: 0,
                            row: Some(start),
                            upto: 0,
                        });
                        state.unmatched_from = start + 1;
                    }
                    state.next_start += 1;
                }
                Found::NeedMore => return Ok(()),
                Found::Abandoned => state.next_start += 1,
            }
        }
    }

    /// Drops the partition's rows that no search or measure can read any more.
    fn trim(&mut self, partition: usize) {
        let state = &mut self.partitions[partition];
        let keep_from = state
            .next_start
            .saturating_sub(self.lookback)
            .max(state.base);
        let drop = (keep_from - state.base).min(state.classes.len());
        state.drop_front(&mut self.store, drop);
    }

    /// The output rows of `emitted`, without the matches a measure could not be computed
    /// for, which are reported.
    fn output(&self, emitted: &[Emitted]) -> Result<(Changes, Vec<RowFailure>)> {
        let mut navigation_columns = Vec::with_capacity(self.config.navigations.len());
        let mut failing = BTreeMap::new();
        for (index, navigation) in self.config.navigations.iter().enumerate() {
            let data_type = self.config.navigation_schema.field(index).data_type();
            navigation_columns.push(self.navigate(navigation, emitted, data_type, &mut failing)?);
        }
        let count = emitted.len();
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        let navigations = RecordBatch::try_new_with_options(
            self.config.navigation_schema.clone(),
            navigation_columns,
            &options,
        )?;
        let mut columns: Vec<ArrayRef> = Vec::new();
        if self.config.all_rows.is_some() {
            // The input row each output row is.
            let rows: Vec<RecordBatch> = emitted
                .iter()
                .map(|e| {
                    let state = &self.partitions[e.partition];
                    let row = e.row.unwrap_or(state.base);
                    Ok(state.rows()?.slice(row - state.base, 1))
                })
                .collect::<Result<_>>()?;
            columns.extend(
                concat_batches(&self.input_schema, &rows)?
                    .columns()
                    .to_vec(),
            );
        } else {
            if !self.config.partition_by.is_empty() {
                let parser = self.keys.parser();
                let keys = emitted
                    .iter()
                    .map(|e| parser.parse(&self.partitions[e.partition].key));
                columns.extend(self.keys.convert_rows(keys)?);
            }
        }
        // Matches over a row whose navigation argument failed are left out, and that row
        // reported; so are matches whose measures fail, with the values they read.
        let mut left_out = BTreeSet::new();
        let mut failures = Vec::new();
        for (index, e) in emitted.iter().enumerate() {
            let read = e.path.iter().find_map(|b| {
                failing
                    .get(&(e.partition, b.row))
                    .map(|error| (b.row, error))
            });
            if let Some((row, error)) = read {
                left_out.insert(index);
                let state = &self.partitions[e.partition];
                failures.push(RowFailure::of(
                    state.rows()?,
                    row - state.base,
                    error.clone(),
                ));
            }
        }
        let mut failed: BTreeMap<usize, String> = BTreeMap::new();
        for measure in &self.config.measures {
            let (values, errors) = evaluate_each(measure, &navigations)?;
            for (row, error) in errors {
                failed
                    .entry(row)
                    .or_insert_with(|| format!("MEASURES: {error}"));
            }
            columns.push(values);
        }
        let rows = batch_of(&self.config.schema, &columns, count)?;
        let kinds = emitted.iter().map(|e| e.kind as u8);
        let kinds = datafusion::arrow::array::UInt8Array::from_iter_values(kinds);
        let changes = if emitted.iter().all(|e| e.kind == RowKind::Insert) {
            Changes::inserts(rows)
        } else {
            Changes {
                rows,
                kinds: Some(kinds),
            }
        };
        for (row, error) in failed {
            if left_out.insert(row) {
                failures.push(RowFailure::of(&navigations, row, error));
            }
        }
        if left_out.is_empty() {
            return Ok((changes, failures));
        }
        let keep: BooleanArray = (0..count)
            .map(|row| Some(!left_out.contains(&row)))
            .collect();
        Ok((changes.filter(&keep)?, failures))
    }

    /// One navigation's value for every emitted match.
    /// Rows whose navigation argument could not be computed go to `failing`, by partition
    /// and row number (their values are NULL).
    fn navigate(
        &self,
        navigation: &Navigation,
        emitted: &[Emitted],
        data_type: &DataType,
        failing: &mut BTreeMap<(usize, usize), String>,
    ) -> Result<ArrayRef> {
        if emitted.is_empty() {
            return Ok(new_null_array(data_type, 0));
        }
        // The argument over each partition's rows, evaluated once.
        let mut arguments: HashMap<usize, ArrayRef> = HashMap::default();
        let mut values = Vec::with_capacity(emitted.len());
        for e in emitted {
            let state = &self.partitions[e.partition];
            if e.number == 0 && e.path.is_empty() {
                // An unmatched row: every measure is NULL.
                values.push(ScalarValue::try_from(data_type)?);
                continue;
            }
            let path = if navigation.is_final {
                &e.path[..]
            } else {
                &e.path[..e.upto]
            };
            let argument = match (&navigation.argument, &navigation.navigate) {
                (
                    Some(argument),
                    Navigate::First | Navigate::Last | Navigate::Prev | Navigate::Next,
                ) => {
                    if !arguments.contains_key(&e.partition) {
                        let rows = state.rows()?;
                        let (array, errors) = evaluate_each(argument, rows)?;
                        for (row, error) in errors {
                            failing
                                .entry((e.partition, state.base + row))
                                .or_insert_with(|| format!("MEASURES: {error}"));
                        }
                        arguments.insert(e.partition, array);
                    }
                    arguments.get(&e.partition)
                }
                _ => None,
            };
            values.push(navigation_value(
                navigation,
                self.config.program.variables(),
                state,
                path,
                e.number,
                data_type,
                argument,
            )?);
        }
        Ok(ScalarValue::iter_to_array(values)?)
    }

    fn run(&mut self, out: &mut Vec<Changes>) -> Result<()> {
        let mut partitions = self.admit()?;
        if self.complete {
            partitions = (0..self.partitions.len()).collect();
        }
        // Partitions whose pending search the watermark may now decide (its `WITHIN` bound
        // has passed).
        while let Some(&(deadline, partition)) = self.deadlines.first() {
            if deadline >= self.watermark && !self.complete {
                break;
            }
            self.deadlines.pop_first();
            self.partitions[partition].deadline = None;
            partitions.push(partition);
        }
        partitions.sort_unstable();
        partitions.dedup();
        let mut emitted = Vec::new();
        for &partition in &partitions {
            self.classify(partition)?;
            self.search(partition, &mut emitted)?;
        }
        if !emitted.is_empty() {
            for e in &emitted {
                self.partitions[e.partition].gather(&self.store)?;
            }
            let (rows, failures) = self.output(&emitted)?;
            self.failures.extend(failures);
            out.push(rows);
        }
        for partition in partitions {
            self.trim(partition);
            let state = &mut self.partitions[partition];
            let deadline = self
                .config
                .within
                .filter(|_| state.next_start < state.available())
                .map(|within| state.times[state.next_start - state.base].saturating_add(within));
            if deadline != state.deadline {
                if let Some(old) = state.deadline {
                    self.deadlines.remove(&(old, partition));
                }
                if let Some(new) = deadline {
                    self.deadlines.insert((new, partition));
                }
                state.deadline = deadline;
            }
            if self.drop_when_empty && state.refs.is_empty() {
                self.drop_partition(partition);
            }
        }
        self.drop_idle();
        if self.store.wants_compaction() {
            let mut holders: Vec<&mut [RowRef]> = self
                .partitions
                .iter_mut()
                .map(|p| p.refs.make_contiguous())
                .collect();
            self.store.compact(&mut holders)?;
        }
        Ok(())
    }
}

impl MatchRecognize {
    /// In arrival order: `batch` joins its partitions at once, after the rows before it, and
    /// the processing clock moves to its latest time.
    fn arrive(
        &mut self,
        batch: RecordBatch,
        times: TimestampMillisecondArray,
        out: &mut Vec<Changes>,
    ) -> Result<()> {
        let count = batch.num_rows() as u64;
        if count == 0 {
            return Ok(());
        }
        if let Some(latest) = times.iter().flatten().max() {
            self.watermark = self.watermark.max(latest);
        }
        let rows = self.unread_as_nulls(batch)?;
        self.pending.push(Pending::new(
            rows,
            times,
            (self.arrivals..self.arrivals + count).collect(),
        )?);
        self.arrivals += count;
        self.run(out)
    }
}

impl Operator for MatchRecognize {
    fn name(&self) -> &str {
        "match_recognize"
    }

    fn schema(&self) -> SchemaRef {
        self.config.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let batch = changes.rows;
        let times = self.times(&batch)?;
        if self.config.arrival_order {
            return self.arrive(batch, times, out);
        }
        let count = batch.num_rows() as u64;
        // Usually no row is late: the batch waits whole.
        let no_late =
            times.null_count() == 0 && times.values().iter().all(|t| *t >= self.watermark);
        if no_late {
            let pending = Pending::new(
                self.unread_as_nulls(batch)?,
                times,
                (self.arrivals..self.arrivals + count).collect(),
            )?;
            self.arrivals += count;
            if count > 0 {
                self.pending.push(pending);
            }
            return Ok(());
        }
        let late: Vec<bool> = times
            .iter()
            .map(|t| t.is_none_or(|t| t < self.watermark))
            .collect();
        let on_time: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|r| !late[*r as usize])
            .collect();
        self.late
            .extend(Changes::inserts(batch.clone()).late_rows(&late)?);
        if !on_time.is_empty() {
            let indices = UInt32Array::from(on_time);
            let rows = self.unread_as_nulls(take_record_batch(&batch, &indices)?)?;
            let count = rows.num_rows() as u64;
            self.pending.push(Pending::new(
                rows,
                take(&times, &indices, None)?
                    .as_primitive::<TimestampMillisecondType>()
                    .clone(),
                (self.arrivals..self.arrivals + count).collect(),
            )?);
            self.arrivals += count;
        }
        Ok(())
    }

    /// The partition and ordering keys; `DEFINE` conditions and `MEASURES` read several
    /// rows at once, so a failure there still fails the publish.
    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.config
            .partition_by
            .iter()
            .cloned()
            .chain(
                self.config
                    .tie_breakers
                    .iter()
                    .map(|(key, _)| Arc::clone(key)),
            )
            .collect()
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        if self.config.arrival_order {
            return Ok(());
        }
        self.watermark = watermark;
        self.run(out)
    }

    /// A match still to come starts at a partition's next search start (or, with unmatched
    /// rows, at its first row no match took), so it carries no event time before that row's.
    fn earliest_pending(&self) -> Option<Millis> {
        if !self.config.output_event_time {
            return None;
        }
        let unmatched = self.config.all_rows == Some(AllRows::WithUnmatched);
        self.partitions
            .iter()
            .filter_map(|state| {
                let from = match unmatched {
                    true => state.next_start.min(state.unmatched_from),
                    false => state.next_start,
                };
                state.times.get(from.max(state.base) - state.base).copied()
            })
            .min()
    }

    fn on_end_of_input(&mut self, out: &mut Vec<Changes>) -> Result<()> {
        self.complete = true;
        self.run(out)
    }

    fn take_failures(&mut self) -> Vec<RowFailure> {
        std::mem::take(&mut self.failures)
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        self.save(state)
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.load(state)
    }

    fn explain(&self) -> String {
        self.config.program.to_string()
    }

    fn metrics(&self) -> OperatorMetrics {
        let buffered = self.store.memory()
            + self
                .pending
                .iter()
                .map(|p| p.rows.get_array_memory_size())
                .sum::<usize>();
        OperatorMetrics {
            state_bytes: buffered,
            open_windows: self.by_key.len(),
        }
    }
}
