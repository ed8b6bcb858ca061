//! `COVAR_SAMP` (alias `covar`) and `COVAR_POP` whose intermediate state restores exactly.
//!
//! The values are DataFusion's, from the same formulas (an online update of both means and
//! the co-moment, its inverse for rows taken back, and the pairwise merge); but, as for the
//! variances (`crate::variance`), merging into an empty state takes the other as it is
//! instead of computing its means again, so an accumulator restored from a checkpoint goes
//! on bit for bit as the saved one. Rows where either argument is NULL are skipped.
//!
//! State per group: `count` (UInt64), `mean1`, `mean2` and `algo_const` (the co-moment,
//! Float64), the same columns as DataFusion's.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::covariance;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// The two functions, to register over DataFusion's.
pub fn functions() -> Vec<Arc<AggregateUDF>> {
    [
        (covariance::covar_samp_udaf(), false),
        (covariance::covar_pop_udaf(), true),
    ]
    .into_iter()
    .map(|(datafusion, population)| {
        Arc::new(AggregateUDF::new_from_impl(Covariance {
            name: datafusion.name().to_string(),
            aliases: datafusion.aliases().to_vec(),
            population,
            signature: Signature::exact(
                vec![DataType::Float64, DataType::Float64],
                Volatility::Immutable,
            ),
        }))
    })
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Covariance {
    name: String,
    aliases: Vec<String>,
    population: bool,
    signature: Signature,
}

impl AggregateUDFImpl for Covariance {
    fn name(&self) -> &str {
        &self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field = |name: &str, data_type: DataType| {
            Arc::new(Field::new(
                format_state_name(args.name, name),
                data_type,
                true,
            ))
        };
        Ok(vec![
            field("count", DataType::UInt64),
            field("mean1", DataType::Float64),
            field("mean2", DataType::Float64),
            field("algo_const", DataType::Float64),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CoMoments {
            population: self.population,
            ..CoMoments::default()
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.accumulator(args)
    }
}

/// Count, both means and the co-moment (sum of products of differences from the means).
#[derive(Debug, Default)]
struct CoMoments {
    population: bool,
    count: u64,
    mean1: f64,
    mean2: f64,
    comoment: f64,
}

/// Calls `each` with every pair of `values` (two DOUBLE columns) where neither is NULL; the
/// regressions read their `(y, x)` pairs so too.
pub(crate) fn for_each_pair(values: &[ArrayRef], mut each: impl FnMut(f64, f64)) -> Result<()> {
    let [first, second] = values else {
        return datafusion::common::internal_err!("expected two arguments");
    };
    let first = first.as_primitive::<Float64Type>();
    let second = second.as_primitive::<Float64Type>();
    for row in 0..first.len() {
        if first.is_valid(row) && second.is_valid(row) {
            each(first.value(row), second.value(row));
        }
    }
    Ok(())
}

impl Accumulator for CoMoments {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_pair(values, |x, y| {
            self.count += 1;
            let dx = x - self.mean1;
            self.mean1 += dx / self.count as f64;
            self.mean2 += (y - self.mean2) / self.count as f64;
            self.comoment += dx * (y - self.mean2);
        })
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_pair(values, |x, y| {
            if self.count <= 1 {
                *self = CoMoments {
                    population: self.population,
                    ..CoMoments::default()
                };
                return;
            }
            self.count -= 1;
            let dx = self.mean1 - x;
            self.mean1 += dx / self.count as f64;
            self.mean2 += (self.mean2 - y) / self.count as f64;
            self.comoment -= dx * (self.mean2 - y);
        })
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [counts, means1, means2, comoments] = states else {
            return datafusion::common::internal_err!("a covariance state has four columns");
        };
        let counts = counts.as_primitive::<UInt64Type>();
        let means1 = means1.as_primitive::<Float64Type>();
        let means2 = means2.as_primitive::<Float64Type>();
        let comoments = comoments.as_primitive::<Float64Type>();
        for row in 0..counts.len() {
            let (count, mean1, mean2) = (counts.value(row), means1.value(row), means2.value(row));
            if count == 0 {
                continue;
            }
            if self.count == 0 {
                (self.count, self.mean1, self.mean2) = (count, mean1, mean2);
                self.comoment = comoments.value(row);
                continue;
            }
            // DataFusion's arithmetic, operation for operation.
            let total = self.count + count;
            let delta1 = self.mean1 - mean1;
            let delta2 = self.mean2 - mean2;
            self.comoment = self.comoment
                + comoments.value(row)
                + delta1 * delta2 * self.count as f64 * count as f64 / total as f64;
            self.mean1 =
                self.mean1 * self.count as f64 / total as f64 + mean1 * count as f64 / total as f64;
            self.mean2 =
                self.mean2 * self.count as f64 / total as f64 + mean2 * count as f64 / total as f64;
            self.count = total;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::from(self.count),
            ScalarValue::from(self.mean1),
            ScalarValue::from(self.mean2),
            ScalarValue::from(self.comoment),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let divisor = match (self.count, self.population) {
            (0, _) | (1, false) => return Ok(ScalarValue::Float64(None)),
            (count, true) => count,
            (count, false) => count - 1,
        };
        Ok(ScalarValue::Float64(Some(self.comoment / divisor as f64)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::two_column_tests::{accumulator, pairs, same_as_datafusion, states};

    /// Updates, takes back, and merges of non-empty states give DataFusion's bits.
    #[test]
    fn values_are_datafusions() -> Result<()> {
        let theirs = [covariance::covar_samp_udaf(), covariance::covar_pop_udaf()];
        for (ours, theirs) in functions().iter().zip(theirs) {
            same_as_datafusion(ours, &theirs)?;
        }
        Ok(())
    }

    #[test]
    fn a_state_merged_into_an_empty_one_goes_on_bit_for_bit() -> Result<()> {
        for function in functions() {
            for seed in 1..100 {
                let mut never = accumulator(&function)?;
                never.update_batch(&pairs(seed, 30))?;
                let mut restored = accumulator(&function)?;
                restored.merge_batch(&states(&mut never)?)?;
                for accumulator in [&mut never, &mut restored] {
                    accumulator.update_batch(&pairs(seed * 7, 30))?;
                }
                assert_eq!(states(&mut never)?, states(&mut restored)?, "seed {seed}");
            }
        }
        Ok(())
    }
}
