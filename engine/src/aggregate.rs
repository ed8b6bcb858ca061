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
    fn groups_accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
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
        let keys = match &mut self.keys {
            Some(values) => {
                let keys = values.emit(EmitTo::All)?;
                values.intern(&keys, &mut self.scratch)?;
                keys
            }
            None => Vec::new(),
        };
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
        let keys = match &mut self.keys {
            Some(values) => {
                let keys = values.emit(EmitTo::All)?;
                values.intern(&keys, &mut self.scratch)?;
                keys
            }
            None => Vec::new(),
        };
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
