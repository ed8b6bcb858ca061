//! Accumulators for changelog input, where any earlier row can be taken back.
//!
//! DataFusion's retracting ("sliding") accumulators serve window frames, which take rows back
//! oldest first; MIN and MAX rely on that order. A changelog retracts rows in any order, so
//! MIN and MAX here keep a count of every value, and only functions whose result does not
//! depend on the order of retraction use DataFusion's own.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DataFusionResult;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;

use crate::{EngineError, Result};

/// Functions whose DataFusion retracting accumulator is right for any retraction order.
const ORDER_FREE: [&str; 11] = [
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
        "min" | "max" if !function.is_distinct() => {
            let data_type = function.field().data_type().clone();
            Ok(Box::new(MinMax {
                values: BTreeMap::new(),
                max: name == "max",
                data_type,
            }))
        }
        _ if ORDER_FREE.contains(&name.as_str()) => {
            function.create_sliding_accumulator().map_err(|_| refuse())
        }
        _ => Err(refuse()),
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

/// MIN or MAX over a multiset of values.
#[derive(Debug)]
struct MinMax {
    values: BTreeMap<Ordered, usize>,
    max: bool,
    data_type: DataType,
}

impl MinMax {
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

impl Accumulator for MinMax {
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
        let extreme = if self.max {
            self.values.keys().next_back()
        } else {
            self.values.keys().next()
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
        let mut max = MinMax {
            values: BTreeMap::new(),
            max: true,
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
        let new = || MinMax {
            values: BTreeMap::new(),
            max: false,
            data_type: DataType::Int64,
        };
        let mut min = new();
        min.update_batch(&values(&[4, 2, 2, 9]))?;
        let state = min
            .state()?
            .iter()
            .map(|value| value.to_array_of_size(1))
            .collect::<DataFusionResult<Vec<_>>>()?;
        let mut restored = new();
        restored.merge_batch(&state)?;
        restored.retract_batch(&values(&[2, 2]))?;
        assert_eq!(restored.evaluate()?, ScalarValue::Int64(Some(4)));
        Ok(())
    }
}
