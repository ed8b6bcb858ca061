//! Aggregation state shared by the aggregating operators.
//!
//! An [`AggregateCall`] is one aggregate function of a query with its `FILTER`; it makes
//! DataFusion accumulators, per group (row accumulators, retracting ones for updating input)
//! or for many groups at once.
//!
//! A [`GroupedAggregates`] numbers the distinct grouping keys with DataFusion's `GroupValues`
//! and feeds each aggregate call's arguments to a DataFusion `GroupsAccumulator` (a native
//! one where the function has it, otherwise DataFusion's adapter over the row accumulator),
//! so every DataFusion aggregate function works and the common ones run vectorised.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{filter, prep_null_mask_filter, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::GroupsAccumulatorAdapter;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::state::{StateReader, StateWriter};
use crate::{EngineError, Result};

/// One aggregate of a `SELECT`, with its `FILTER (WHERE ...)` if any.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    pub function: Arc<AggregateFunctionExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

impl AggregateCall {
    /// An accumulator of this call for many groups: DataFusion's own, or its adapter over
    /// one accumulator per group for functions that have none.
    pub fn groups_accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
        if self.function.groups_accumulator_supported() {
            return Ok(self.function.create_groups_accumulator()?);
        }
        let function = Arc::clone(&self.function);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            function.create_accumulator()
        })))
    }

    /// A row accumulator for one group; `retracting` asks for one that can also take rows
    /// back, which some functions cannot do.
    pub fn accumulator(&self, retracting: bool) -> Result<Box<dyn Accumulator>> {
        if !retracting {
            return Ok(self.function.create_accumulator()?);
        }
        crate::retract::changelog_accumulator(&self.function)
    }

    /// Writes the intermediate state of `accumulator`, one of this call's made with
    /// `retracting` as given, and leaves an equal accumulator in its place (DataFusion's
    /// `state` may consume what it hands over, so the state is merged into a fresh one).
    pub fn save_accumulator(
        &self,
        accumulator: &mut Box<dyn Accumulator>,
        retracting: bool,
        state: &mut StateWriter,
    ) -> Result<()> {
        let values = accumulator.state()?;
        state.scalars(&values)?;
        let arrays = values
            .iter()
            .map(|value| value.to_array_of_size(1))
            .collect::<Result<Vec<_>, _>>()?;
        let mut fresh = self.accumulator(retracting)?;
        fresh.merge_batch(&arrays)?;
        *accumulator = fresh;
        Ok(())
    }

    /// Reads what [`AggregateCall::save_accumulator`] wrote, as a new accumulator.
    pub fn load_accumulator(
        &self,
        retracting: bool,
        state: &mut StateReader,
    ) -> Result<Box<dyn Accumulator>> {
        let values = state.scalars()?;
        let arrays = values
            .iter()
            .map(|value| value.to_array_of_size(1))
            .collect::<Result<Vec<_>, _>>()?;
        let mut accumulator = self.accumulator(retracting)?;
        accumulator.merge_batch(&arrays)?;
        Ok(accumulator)
    }

    /// The expressions the call evaluates over its input: arguments, `ORDER BY`, filter.
    pub fn expressions(&self) -> impl Iterator<Item = Arc<dyn PhysicalExpr>> + '_ {
        let expressions = self.function.all_expressions();
        expressions
            .args
            .into_iter()
            .chain(expressions.order_by_exprs)
            .chain(self.filter.clone())
    }

    /// Evaluates the call's arguments and filter over `batch`.
    pub fn input(&self, batch: &RecordBatch) -> Result<CallInput> {
        let rows = batch.num_rows();
        // The arguments, then any `ORDER BY` / `WITHIN GROUP` expressions, which ordered
        // accumulators take as trailing columns.
        let expressions = self.function.all_expressions();
        let values = expressions
            .args
            .iter()
            .chain(&expressions.order_by_exprs)
            .map(|expression| expression.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = match &self.filter {
            Some(predicate) => {
                let mask = predicate.evaluate(batch)?.into_array(rows)?;
                let Some(mask) = mask.as_boolean_opt() else {
                    return Err(EngineError::Input(format!(
                        "the FILTER of {} is not a boolean",
                        self.function.name()
                    )));
                };
                Some(if mask.null_count() > 0 {
                    prep_null_mask_filter(mask)
                } else {
                    mask.clone()
                })
            }
            None => None,
        };
        Ok(CallInput { values, filter })
    }
}

/// The evaluated arguments of one aggregate call over a batch; the filter has no NULLs.
#[derive(Debug, Clone)]
pub struct CallInput {
    values: Vec<ArrayRef>,
    filter: Option<BooleanArray>,
}

impl CallInput {
    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &UInt32Array) -> Result<CallInput> {
        let values = self
            .values
            .iter()
            .map(|array| take(array.as_ref(), indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = match &self.filter {
            Some(mask) => Some(take(mask, indices, None)?.as_boolean().clone()),
            None => None,
        };
        Ok(CallInput { values, filter })
    }

    /// The argument values of the rows at `indices` that pass the filter.
    pub fn filtered(&self, indices: &UInt32Array) -> Result<Vec<ArrayRef>> {
        let taken = self.take(indices)?;
        match &taken.filter {
            Some(mask) => Ok(taken
                .values
                .iter()
                .map(|array| filter(array.as_ref(), mask))
                .collect::<Result<Vec<_>, _>>()?),
            None => Ok(taken.values),
        }
    }
}

/// Groups taken out of a [`GroupedAggregates`]: their keys, and one intermediate state per
/// aggregate call (DataFusion's `state` arrays), one row per group.
pub struct FrozenGroups {
    keys: Vec<ArrayRef>,
    states: Vec<Vec<ArrayRef>>,
    groups: usize,
}

impl FrozenGroups {
    /// Bytes held by the keys and states.
    pub fn size(&self) -> usize {
        self.keys
            .iter()
            .chain(self.states.iter().flatten())
            .map(|array| array.get_array_memory_size())
            .sum()
    }
}

/// Accumulators for every group of one aggregation scope (a window, a session, ...).
pub struct GroupedAggregates {
    /// `None` when there are no grouping keys: every row belongs to group 0.
    keys: Option<Box<dyn GroupValues>>,
    key_schema: SchemaRef,
    calls: Vec<AggregateCall>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: usize,
    scratch: Vec<usize>,
}

impl GroupedAggregates {
    /// Empty state for keys of `key_schema` (which may have no fields) and `calls`.
    pub fn new(key_schema: &SchemaRef, calls: &[AggregateCall]) -> Result<Self> {
        let keys = if key_schema.fields().is_empty() {
            None
        } else {
            Some(new_group_values(key_schema.clone(), &GroupOrdering::None)?)
        };
        let accumulators = calls
            .iter()
            .map(AggregateCall::groups_accumulator)
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupedAggregates {
            keys,
            key_schema: key_schema.clone(),
            calls: calls.to_vec(),
            accumulators,
            groups: 0,
            scratch: Vec::new(),
        })
    }

    /// Adds rows: `keys` are their grouping key columns, `inputs` one per call. Returns the
    /// group of each row.
    pub fn update(
        &mut self,
        keys: &[ArrayRef],
        inputs: &[CallInput],
        rows: usize,
    ) -> Result<&[usize]> {
        self.scratch.clear();
        match &mut self.keys {
            Some(values) => {
                values.intern(keys, &mut self.scratch)?;
                self.groups = values.len();
            }
            None => {
                self.scratch.resize(rows, 0);
                self.groups = 1;
            }
        }
        for (accumulator, input) in self.accumulators.iter_mut().zip(inputs) {
            accumulator.update_batch(
                &input.values,
                &self.scratch,
                input.filter.as_ref(),
                self.groups,
            )?;
        }
        Ok(&self.scratch)
    }

    /// The key of every group, in group order, keeping the groups: DataFusion's group values
    /// hand their keys over only by emptying themselves, so fresh ones take the keys back.
    fn keys_keeping_them(&mut self) -> Result<Vec<ArrayRef>> {
        let Some(values) = &mut self.keys else {
            return Ok(Vec::new());
        };
        let keys = values.emit(EmitTo::All)?;
        let mut fresh = new_group_values(self.key_schema.clone(), &GroupOrdering::None)?;
        fresh.intern(&keys, &mut self.scratch)?;
        *values = fresh;
        Ok(keys)
    }

    /// Number of groups seen.
    pub fn len(&self) -> usize {
        self.groups
    }

    pub fn is_empty(&self) -> bool {
        self.groups == 0
    }

    /// Bytes held by keys and accumulators.
    pub fn size(&self) -> usize {
        self.keys.as_ref().map_or(0, |keys| keys.size())
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// The current result of every group, as [`GroupedAggregates::finish`] gives it, keeping
    /// the state so that more rows can follow: each accumulator hands over its state, which
    /// is merged into two fresh accumulators, one to evaluate and one to keep.
    pub fn evaluate_keeping_state(&mut self) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let keys = self.keys_keeping_them()?;
        let groups: Vec<usize> = (0..self.groups).collect();
        let mut values = Vec::with_capacity(self.calls.len());
        for (accumulator, call) in self.accumulators.iter_mut().zip(&self.calls) {
            let state = accumulator.state(EmitTo::All)?;
            let mut kept = call.groups_accumulator()?;
            kept.merge_batch(&state, &groups, self.groups)?;
            let mut result = call.groups_accumulator()?;
            result.merge_batch(&state, &groups, self.groups)?;
            values.push(result.evaluate(EmitTo::All)?);
            *accumulator = kept;
        }
        Ok((keys, values))
    }

    /// Writes every group's key and intermediate accumulator states, keeping the state (it is
    /// handed over and merged back, as in [`GroupedAggregates::evaluate_keeping_state`]).
    /// Groups keep their numbers: loading gives them the same ones.
    pub fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        let keys = self.keys_keeping_them()?;
        state.usize(self.groups);
        state.arrays(&keys, self.groups)?;
        let groups: Vec<usize> = (0..self.groups).collect();
        for (accumulator, call) in self.accumulators.iter_mut().zip(&self.calls) {
            let saved = accumulator.state(EmitTo::All)?;
            state.arrays(&saved, self.groups)?;
            let mut kept = call.groups_accumulator()?;
            kept.merge_batch(&saved, &groups, self.groups)?;
            *accumulator = kept;
        }
        Ok(())
    }

    /// Reads what [`GroupedAggregates::save_state`] wrote into empty aggregates of the same
    /// keys and calls.
    pub fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let groups = state.usize()?;
        let (keys, _) = state.arrays()?;
        self.scratch.clear();
        match &mut self.keys {
            Some(values) => {
                values.intern(&keys, &mut self.scratch)?;
                self.groups = values.len();
            }
            None => {
                self.scratch.resize(groups, 0);
                self.groups = groups.min(1);
            }
        }
        if self.groups != groups {
            return Err(EngineError::Checkpoint(format!(
                "{groups} saved groups became {}",
                self.groups
            )));
        }
        for accumulator in &mut self.accumulators {
            let (saved, _) = state.arrays()?;
            accumulator.merge_batch(&saved, &self.scratch, self.groups)?;
        }
        Ok(())
    }

    /// The keys and intermediate accumulator states of every group, to merge elsewhere.
    pub fn freeze(mut self) -> Result<FrozenGroups> {
        let keys = match &mut self.keys {
            Some(values) => values.emit(EmitTo::All)?,
            None => Vec::new(),
        };
        let states = self
            .accumulators
            .iter_mut()
            .map(|accumulator| accumulator.state(EmitTo::All))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FrozenGroups {
            keys,
            states,
            groups: self.groups,
        })
    }

    /// Merges frozen groups into these: equal keys combine their states.
    pub fn merge(&mut self, frozen: &FrozenGroups) -> Result<()> {
        if frozen.groups == 0 {
            return Ok(());
        }
        self.scratch.clear();
        match &mut self.keys {
            Some(values) => {
                values.intern(&frozen.keys, &mut self.scratch)?;
                self.groups = values.len();
            }
            None => {
                self.scratch.resize(frozen.groups, 0);
                self.groups = 1;
            }
        }
        for (accumulator, state) in self.accumulators.iter_mut().zip(&frozen.states) {
            accumulator.merge_batch(state, &self.scratch, self.groups)?;
        }
        Ok(())
    }

    /// The final result of every group, in the order the groups were first seen: the key
    /// columns, then one column per call.
    pub fn finish(mut self) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let keys = match &mut self.keys {
            Some(values) => values.emit(EmitTo::All)?,
            None => Vec::new(),
        };
        let values = self
            .accumulators
            .iter_mut()
            .map(|accumulator| accumulator.evaluate(EmitTo::All))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((keys, values))
    }
}

/// Writes the intermediate states of many row accumulators made by `fresh` (those of one
/// aggregate call in many groups or sessions) as one set of columns, a row per accumulator,
/// and leaves an equal accumulator in the place of each (DataFusion's `state` may consume
/// what it hands over, so each state is merged into a fresh one).
pub fn save_accumulators<'a>(
    accumulators: impl IntoIterator<Item = &'a mut Box<dyn Accumulator>>,
    fresh: impl Fn() -> Result<Box<dyn Accumulator>>,
    state: &mut StateWriter,
) -> Result<()> {
    let mut states: Vec<Vec<ScalarValue>> = Vec::new();
    for accumulator in accumulators {
        let values = accumulator.state()?;
        let arrays = values
            .iter()
            .map(|value| value.to_array_of_size(1))
            .collect::<Result<Vec<_>, _>>()?;
        let mut kept = fresh()?;
        kept.merge_batch(&arrays)?;
        *accumulator = kept;
        states.push(values);
    }
    let fields = states.first().map_or(0, Vec::len);
    if states.iter().any(|values| values.len() != fields) {
        return Err(EngineError::Checkpoint(
            "accumulators of one call have states of different shapes".into(),
        ));
    }
    let columns = (0..fields)
        .map(|field| ScalarValue::iter_to_array(states.iter().map(|values| values[field].clone())))
        .collect::<Result<Vec<_>, _>>()?;
    state.arrays(&columns, states.len())
}

/// Reads what [`save_accumulators`] wrote: `count` accumulators made by `fresh`, each merged
/// with its saved state.
pub fn load_accumulators(
    count: usize,
    fresh: impl Fn() -> Result<Box<dyn Accumulator>>,
    state: &mut StateReader,
) -> Result<Vec<Box<dyn Accumulator>>> {
    let (columns, rows) = state.arrays()?;
    if rows != count {
        return Err(EngineError::Checkpoint(format!(
            "expected the states of {count} accumulators, found {rows}"
        )));
    }
    (0..rows)
        .map(|row| {
            let mut accumulator = fresh()?;
            if !columns.is_empty() {
                let values: Vec<ArrayRef> =
                    columns.iter().map(|column| column.slice(row, 1)).collect();
                accumulator.merge_batch(&values)?;
            }
            Ok(accumulator)
        })
        .collect()
}

impl FrozenGroups {
    /// Writes the keys and states (see [`GroupedAggregates::freeze`]).
    pub fn save_state(&self, state: &mut StateWriter) -> Result<()> {
        state.usize(self.groups);
        state.arrays(&self.keys, self.groups)?;
        state.usize(self.states.len());
        for saved in &self.states {
            state.arrays(saved, self.groups)?;
        }
        Ok(())
    }

    /// Reads what [`FrozenGroups::save_state`] wrote, for `calls` aggregate calls.
    pub fn load_state(state: &mut StateReader, calls: usize) -> Result<FrozenGroups> {
        let groups = state.usize()?;
        let (keys, _) = state.arrays()?;
        let saved = state.usize()?;
        if saved != calls {
            return Err(EngineError::Checkpoint(format!(
                "frozen groups of {saved} aggregate calls, expected {calls}"
            )));
        }
        let states = (0..saved)
            .map(|_| Ok(state.arrays()?.0))
            .collect::<Result<Vec<_>>>()?;
        Ok(FrozenGroups {
            keys,
            states,
            groups,
        })
    }
}

/// Every expression an aggregating operator evaluates over its input: the grouping keys, then
/// each call's (see [`crate::failure::screen`]).
pub fn inputs_of(
    group_by: &[Arc<dyn PhysicalExpr>],
    calls: &[AggregateCall],
) -> Vec<Arc<dyn PhysicalExpr>> {
    group_by
        .iter()
        .cloned()
        .chain(calls.iter().flat_map(AggregateCall::expressions))
        .collect()
}

/// What the checkpoint tests of the aggregating and buffering operators share: feeding
/// input through the [`crate::Operator`] interface as the graph does, and checking that an
/// operator loaded from another's state goes on exactly as that one does.
#[cfg(test)]
pub(crate) mod checkpoint_tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::max_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
    use datafusion::physical_expr::expressions::Column;

    use super::AggregateCall;

    use crate::operator::Operator;
    use crate::state::{StateReader, StateWriter};
    use crate::time::{Millis, WATERMARK_MAX};
    use crate::{Changes, EngineError, Result, RowKind};

    /// `function(column argument)` over rows of `input`.
    pub fn function(
        function: Arc<AggregateUDF>,
        argument: usize,
        input: &SchemaRef,
        distinct: bool,
    ) -> Result<Arc<AggregateFunctionExpr>> {
        let name = input.field(argument).name();
        let alias = format!(
            "{}_{name}{}",
            function.name(),
            if distinct { "_d" } else { "" }
        );
        let expression =
            AggregateExprBuilder::new(function, vec![Arc::new(Column::new(name, argument))])
                .schema(input.clone())
                .alias(alias)
                .with_distinct(distinct)
                .build()?;
        Ok(Arc::new(expression))
    }

    /// A nullable `TIMESTAMP(3)` column.
    pub fn timestamp(name: &str) -> Field {
        Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), true)
    }

    /// Rows of `(key BIGINT, value DOUBLE, window_start, window_end)`, as a window
    /// assignment gives them.
    pub fn windowed_input() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, true),
            Field::new("value", DataType::Float64, true),
            timestamp("window_start"),
            timestamp("window_end"),
        ]))
    }

    /// Grouping expressions, aggregate calls and the output schema of an aggregation.
    pub type Aggregation = (Vec<Arc<dyn PhysicalExpr>>, Vec<AggregateCall>, SchemaRef);

    /// `SELECT window_start, window_end, key, SUM(value), COUNT(value), MAX(value),
    /// AVG(value), COUNT(DISTINCT value) ... GROUP BY window_start, window_end[, key]` over
    /// [`windowed_input`].
    pub fn windowed_aggregation(keyed: bool) -> Result<Aggregation> {
        let input = windowed_input();
        let mut calls = Vec::new();
        for (udaf, distinct) in [
            (sum_udaf(), false),
            (count_udaf(), false),
            (max_udaf(), false),
            (avg_udaf(), false),
            (count_udaf(), true),
        ] {
            calls.push(AggregateCall {
                function: function(udaf, 1, &input, distinct)?,
                filter: None,
            });
        }
        let mut group_by: Vec<Arc<dyn PhysicalExpr>> = vec![
            Arc::new(Column::new("window_start", 2)),
            Arc::new(Column::new("window_end", 3)),
        ];
        let mut fields = vec![timestamp("window_start"), timestamp("window_end")];
        if keyed {
            group_by.push(Arc::new(Column::new("key", 0)));
            fields.push(input.field(0).clone());
        }
        fields.extend(
            calls
                .iter()
                .map(|call| call.function.field().as_ref().clone()),
        );
        Ok((group_by, calls, Arc::new(Schema::new(fields))))
    }

    /// One call into an operator.
    #[derive(Debug, Clone)]
    pub enum Step {
        Rows(Changes),
        /// A watermark (they must rise); `+inf` is followed by end of input.
        Watermark(Millis),
    }

    /// A xorshift generator, seeded by a test's loop index.
    pub struct Random(u64);

    impl Random {
        pub fn new(seed: u64) -> Self {
            Random(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A number in `0..bound`.
        pub fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound.max(1)
        }

        /// One of `values`, `None` when there are none.
        pub fn pick<T: Copy>(&mut self, values: &[T]) -> Option<T> {
            values
                .get(self.below(values.len() as u64) as usize)
                .copied()
        }
    }

    /// Feeds `steps`, collecting the output and the late rows, taken after each call.
    pub fn feed(operator: &mut dyn Operator, steps: &[Step]) -> Result<Vec<Changes>> {
        let mut out = Vec::new();
        for step in steps {
            match step {
                Step::Rows(changes) => operator.process(0, changes.clone(), &mut out)?,
                Step::Watermark(watermark) => {
                    operator.on_watermark(*watermark, &mut out)?;
                    if *watermark == WATERMARK_MAX {
                        operator.on_end_of_input(&mut out)?;
                    }
                }
            }
            out.extend(operator.take_late());
        }
        Ok(out)
    }

    /// Whether two outputs have the same batches, rows and kinds.
    pub fn same(left: &[Changes], right: &[Changes]) -> bool {
        let kinds = |changes: &Changes| -> Vec<RowKind> {
            (0..changes.num_rows())
                .map(|row| changes.kind(row))
                .collect()
        };
        left.len() == right.len()
            && left
                .iter()
                .zip(right)
                .all(|(l, r)| l.rows == r.rows && kinds(l) == kinds(r))
    }

    /// The outputs after the checkpoint.
    pub struct Restored {
        /// Of the operator that saved its state.
        pub expected: Vec<Changes>,
        /// Of a fresh one that loaded it.
        pub restored: Vec<Changes>,
        /// Of one fed the same input that never saved its state.
        pub uninterrupted: Vec<Changes>,
        /// Of a fresh one that loaded nothing, when asked for (an input that takes back rows
        /// given before the checkpoint may be more than such an operator can take).
        pub blank: Option<Vec<Changes>>,
    }

    impl Restored {
        pub fn rows(&self) -> usize {
            self.expected.iter().map(Changes::num_rows).sum()
        }

        /// Whether the operator that loaded the state gave the output of both the one that
        /// saved it and the one that never stopped.
        pub fn restored_as_expected(&self) -> bool {
            same(&self.expected, &self.restored) && same(&self.uninterrupted, &self.restored)
        }

        /// Whether the operator that loaded nothing gave other output: the state mattered.
        pub fn state_mattered(&self) -> bool {
            self.blank
                .as_ref()
                .is_some_and(|blank| !same(&self.expected, blank))
        }
    }

    /// What a test's seeds restored: rows after their checkpoints, and how many times the
    /// state changed the output.
    #[derive(Debug, Default)]
    pub struct Tally {
        rows: usize,
        mattered: usize,
    }

    impl Tally {
        /// Asserts that seed `seed` restored as expected, and counts it.
        pub fn add(&mut self, seed: u64, outcome: &Restored) {
            assert!(
                outcome.restored_as_expected(),
                "seed {seed}: {:?} and {:?} != {:?}",
                outcome.expected,
                outcome.uninterrupted,
                outcome.restored
            );
            self.rows += outcome.rows();
            self.mattered += usize::from(outcome.state_mattered());
        }

        /// Asserts that the seeds tested something: output came after their checkpoints, and
        /// in some the state changed it.
        pub fn check(&self) {
            assert!(self.rows > 0, "no output after the checkpoints");
            assert!(
                self.mattered > 0,
                "no checkpoint had state that changed the output"
            );
        }
    }

    /// Feeds `steps[..split]` to an operator from `build`, saves its state and loads it into
    /// another from `build`, then feeds the rest to both; also to one fed `steps[..split]`
    /// that never saved (and, with `blank`, to one that loaded nothing).
    pub fn restore<O: Operator>(
        build: impl Fn() -> Result<O>,
        steps: &[Step],
        split: usize,
        blank: bool,
    ) -> Result<Restored> {
        let (before, after) = steps.split_at(split.min(steps.len()));
        let mut original = build()?;
        feed(&mut original, before)?;
        let mut uninterrupted = build()?;
        feed(&mut uninterrupted, before)?;
        let mut writer = StateWriter::new();
        original.save_state(&mut writer)?;
        let bytes = writer.into_bytes();
        let mut restored = build()?;
        let mut reader = StateReader::new(&bytes);
        restored.load_state(&mut reader)?;
        if !reader.is_at_end() {
            return Err(EngineError::Checkpoint(
                "the state was not read to its end".into(),
            ));
        }
        Ok(Restored {
            expected: feed(&mut original, after)?,
            restored: feed(&mut restored, after)?,
            uninterrupted: feed(&mut uninterrupted, after)?,
            blank: match blank {
                true => Some(feed(&mut build()?, after)?),
                false => None,
            },
        })
    }
}
