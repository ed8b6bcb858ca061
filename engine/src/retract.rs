//! Accumulators for changelog input, where any earlier row can be taken back.
//!
//! DataFusion's retracting ("sliding") accumulators serve window frames, which take rows back
//! oldest first; MIN and MAX rely on that order. A changelog retracts rows in any order, so
//! MIN and MAX here keep a count of every value, and only functions whose result does not
//! depend on the order of retraction use DataFusion's own. `COUNT(DISTINCT)` keeps a count of
//! every value too: DataFusion's saves its distinct values without how often each came, so
//! one restored from a checkpoint would drop a value at its first retraction while copies
//! remain. Other `DISTINCT` calls are refused over changelogs for the same reason.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DataFusionResult;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use crate::{EngineError, Result};

/// Functions whose DataFusion retracting accumulator is right for any retraction order.
const ORDER_FREE: [&str; 13] = [
    "count",
    "sum",
    // sluice's SUM of integers, added in 128 bits (`sql/src/wide_sum.rs`).
    "checked_sum",
    "avg",
    "mean",
    "stddev",
    "stddev_pop",
    "var",
    "var_pop",
    "covar_samp",
    "covar_pop",
    "bool_and",
    "bool_or",
];

/// An accumulator for `function` that can take back any row it was given.
pub fn changelog_accumulator(function: &AggregateFunctionExpr) -> Result<Box<dyn Accumulator>> {
    let name = function.fun().name().to_ascii_lowercase();
    let refuse = || {
        EngineError::Input(format!(
            "{} cannot take back rows, so it cannot aggregate an updating input",
            function.name()
        ))
    };
    match name.as_str() {
        "min" | "max" if !function.is_distinct() => Ok(Box::new(Multiset {
            values: BTreeMap::new(),
            result: if name == "max" {
                Reduce::Max
            } else {
                Reduce::Min
            },
            data_type: function.field().data_type().clone(),
        })),
        "count" if function.is_distinct() => {
            // Its state is the list of its argument's values.
            let state = function.state_fields()?;
            let data_type = match state.first().map(|field| field.data_type()) {
                Some(DataType::List(values)) => values.data_type().clone(),
                _ => return Err(refuse()),
            };
            Ok(Box::new(Multiset {
                values: BTreeMap::new(),
                result: Reduce::DistinctCount,
                data_type,
            }))
        }
        _ if function.is_distinct() => Err(refuse()),
        _ if ORDER_FREE.contains(&name.as_str()) => {
            sliding_accumulator(function).map_err(|_| refuse())
        }
        _ => Err(refuse()),
    }
}

/// An accumulator for `function` that takes rows back oldest first (sliding window frames),
/// and whose state restores exactly: DataFusion's, but for `SUM` of DOUBLE, whose DataFusion
/// state is NULL once every row was taken back, losing what rounding left of the sum.
pub fn sliding_accumulator(
    function: &AggregateFunctionExpr,
) -> DataFusionResult<Box<dyn Accumulator>> {
    let name = function.fun().name().to_ascii_lowercase();
    if name == "sum"
        && !function.is_distinct()
        && function.field().data_type() == &DataType::Float64
    {
        return Ok(Box::<FloatSum>::default());
    }
    function.create_sliding_accumulator()
}

/// `SUM` of DOUBLE that takes rows back, added as DataFusion adds it (each batch's sum, then
/// the total), with a state that keeps the total even when no row is left.
#[derive(Debug, Default)]
struct FloatSum {
    sum: f64,
    count: u64,
}

impl Accumulator for FloatSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DataFusionResult<()> {
        let values = values[0].as_primitive::<Float64Type>();
        self.count += (values.len() - values.null_count()) as u64;
        if let Some(sum) = datafusion::arrow::compute::sum(values) {
            self.sum += sum;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DataFusionResult<()> {
        let values = values[0].as_primitive::<Float64Type>();
        self.count = self
            .count
            .saturating_sub((values.len() - values.null_count()) as u64);
        if let Some(sum) = datafusion::arrow::compute::sum(values) {
            self.sum -= sum;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DataFusionResult<ScalarValue> {
        Ok(ScalarValue::Float64((self.count > 0).then_some(self.sum)))
    }

    fn state(&mut self) -> DataFusionResult<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.sum)),
            ScalarValue::UInt64(Some(self.count)),
        ])
    }

    /// States saved before this one existed have a NULL sum when no row is left: none is
    /// added then.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DataFusionResult<()> {
        let [sums, counts] = states else {
            return datafusion::common::internal_err!("a sum's state has two columns");
        };
        if let Some(sum) = datafusion::arrow::compute::sum(sums.as_primitive::<Float64Type>()) {
            self.sum += sum;
        }
        if let Some(count) = datafusion::arrow::compute::sum(counts.as_primitive::<UInt64Type>()) {
            self.count += count;
        }
        Ok(())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// A value ordered as SQL orders it (values of one column are always comparable).
#[derive(Debug, Clone, PartialEq)]
struct Ordered(ScalarValue);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// What a [`Multiset`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reduce {
    Min,
    Max,
    DistinctCount,
}

/// MIN, MAX or COUNT(DISTINCT) over a multiset of values.
#[derive(Debug)]
struct Multiset {
    /// Each value present, with how many times.
    values: BTreeMap<Ordered, usize>,
    result: Reduce,
    /// The values' type.
    data_type: DataType,
}

impl Multiset {
    fn each_value(values: &[ArrayRef], mut f: impl FnMut(ScalarValue)) -> DataFusionResult<()> {
        let Some(column) = values.first() else {
            return Ok(());
        };
        for row in 0..column.len() {
            if column.is_valid(row) {
                f(ScalarValue::try_from_array(column, row)?);
            }
        }
        Ok(())
    }
}

impl Accumulator for Multiset {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DataFusionResult<()> {
        Self::each_value(values, |value| {
            *self.values.entry(Ordered(value)).or_default() += 1
        })
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DataFusionResult<()> {
        Self::each_value(values, |value| {
            let key = Ordered(value);
            if let Some(count) = self.values.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.values.remove(&key);
                }
            }
        })
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DataFusionResult<ScalarValue> {
        let extreme = match self.result {
            Reduce::Max => self.values.keys().next_back(),
            Reduce::Min => self.values.keys().next(),
            Reduce::DistinctCount => {
                return Ok(ScalarValue::Int64(Some(self.values.len() as i64)));
            }
        };
        match extreme {
            Some(value) => Ok(value.0.clone()),
            None => ScalarValue::try_from(&self.data_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .values
                .keys()
                .map(|value| value.0.size())
                .sum::<usize>()
    }

    /// Every value, as often as it is present, in one list: merging it back gives an
    /// accumulator that can take back any of them (a checkpoint saves it so).
    fn state(&mut self) -> DataFusionResult<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .values
            .iter()
            .flat_map(|(value, count)| std::iter::repeat_n(value.0.clone(), *count))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &self.data_type,
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DataFusionResult<()> {
        let Some(lists) = states.first() else {
            return Ok(());
        };
        for row in 0..lists.len() {
            if let ScalarValue::List(list) = ScalarValue::try_from_array(lists, row)? {
                self.update_batch(&[list.values().clone()])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;

    use super::*;

    fn values(values: &[i64]) -> Vec<ArrayRef> {
        vec![Arc::new(Int64Array::from(values.to_vec()))]
    }

    #[test]
    fn max_takes_back_any_value() -> DataFusionResult<()> {
        let mut max = Multiset {
            values: BTreeMap::new(),
            result: Reduce::Max,
            data_type: DataType::Int64,
        };
        max.update_batch(&values(&[5, 3, 5]))?;
        max.retract_batch(&values(&[5]))?;
        assert_eq!(max.evaluate()?, ScalarValue::Int64(Some(5)));
        max.retract_batch(&values(&[5]))?;
        assert_eq!(max.evaluate()?, ScalarValue::Int64(Some(3)));
        max.retract_batch(&values(&[3]))?;
        assert_eq!(max.evaluate()?, ScalarValue::Int64(None));
        Ok(())
    }

    #[test]
    fn its_state_keeps_every_value_to_take_back() -> DataFusionResult<()> {
        for (result, expected) in [(Reduce::Min, 4), (Reduce::DistinctCount, 2)] {
            let new = || Multiset {
                values: BTreeMap::new(),
                result,
                data_type: DataType::Int64,
            };
            let mut saved = new();
            saved.update_batch(&values(&[4, 2, 2, 9]))?;
            let state = saved
                .state()?
                .iter()
                .map(|value| value.to_array_of_size(1))
                .collect::<DataFusionResult<Vec<_>>>()?;
            let mut restored = new();
            restored.merge_batch(&state)?;
            restored.retract_batch(&values(&[2, 2]))?;
            assert_eq!(restored.evaluate()?, ScalarValue::Int64(Some(expected)));
        }
        Ok(())
    }
}
