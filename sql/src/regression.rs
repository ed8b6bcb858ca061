//! The `REGR_*` functions (`regr_slope`, `regr_intercept`, `regr_count`, `regr_r2`,
//! `regr_avgx`, `regr_avgy`, `regr_sxx`, `regr_syy`, `regr_sxy`, each of `(y, x)`) whose
//! intermediate state restores exactly.
//!
//! The values are DataFusion's, operation for operation (an online update of both means, both
//! sums of squares and the co-moment, its inverse for rows taken back, and the pairwise
//! merge); but, as for the variances (`crate::variance`), merging into an empty state takes
//! the other as it is instead of computing its means again, so an accumulator restored from a
//! checkpoint goes on bit for bit as the saved one. Pairs where either value is NULL are
//! skipped.
//!
//! State per group: `count` (UInt64), `mean_x`, `mean_y`, `m2_x`, `m2_y` and `algo_const`
//! (Float64), the same columns as DataFusion's.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::regr;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use crate::covariance::for_each_pair;

/// What a regression function gives of the moments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Slope,
    Intercept,
    Count,
    R2,
    AvgX,
    AvgY,
    Sxx,
    Syy,
    Sxy,
}

/// The nine functions, to register over DataFusion's.
pub fn functions() -> Vec<Arc<AggregateUDF>> {
    [
        (regr::regr_slope_udaf(), Kind::Slope),
        (regr::regr_intercept_udaf(), Kind::Intercept),
        (regr::regr_count_udaf(), Kind::Count),
        (regr::regr_r2_udaf(), Kind::R2),
        (regr::regr_avgx_udaf(), Kind::AvgX),
        (regr::regr_avgy_udaf(), Kind::AvgY),
        (regr::regr_sxx_udaf(), Kind::Sxx),
        (regr::regr_syy_udaf(), Kind::Syy),
        (regr::regr_sxy_udaf(), Kind::Sxy),
    ]
    .into_iter()
    .map(|(datafusion, kind)| {
        Arc::new(AggregateUDF::new_from_impl(Regression {
            name: datafusion.name().to_string(),
            kind,
            signature: Signature::exact(
                vec![DataType::Float64, DataType::Float64],
                Volatility::Immutable,
            ),
        }))
    })
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Regression {
    name: String,
    kind: Kind,
    signature: Signature,
}

impl AggregateUDFImpl for Regression {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Count => DataType::UInt64,
            _ => DataType::Float64,
        })
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(match self.kind {
            Kind::Count => ScalarValue::UInt64(Some(0)),
            _ => ScalarValue::Float64(None),
        })
    }

    fn is_nullable(&self) -> bool {
        self.kind != Kind::Count
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
            field("mean_x", DataType::Float64),
            field("mean_y", DataType::Float64),
            field("m2_x", DataType::Float64),
            field("m2_y", DataType::Float64),
            field("algo_const", DataType::Float64),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Moments {
            kind: self.kind,
            ..Moments::default()
        }))
    }
}

/// Count, means, sums of squared differences and co-moment of some (y, x) pairs.
#[derive(Debug, Clone, Copy)]
struct Moments {
    kind: Kind,
    count: u64,
    mean_x: f64,
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    comoment: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments {
            kind: Kind::Count,
            count: 0,
            mean_x: 0.0,
            mean_y: 0.0,
            m2_x: 0.0,
            m2_y: 0.0,
            comoment: 0.0,
        }
    }
}

impl Accumulator for Moments {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_pair(values, |y, x| {
            self.count += 1;
            let delta_x = x - self.mean_x;
            let delta_y = y - self.mean_y;
            self.mean_x += delta_x / self.count as f64;
            self.mean_y += delta_y / self.count as f64;
            self.m2_x += delta_x * (x - self.mean_x);
            self.m2_y += delta_y * (y - self.mean_y);
            self.comoment += delta_x * (y - self.mean_y);
        })
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_pair(values, |y, x| {
            if self.count <= 1 {
                *self = Moments {
                    kind: self.kind,
                    ..Moments::default()
                };
                return;
            }
            self.count -= 1;
            let delta_x = x - self.mean_x;
            let delta_y = y - self.mean_y;
            self.mean_x -= delta_x / self.count as f64;
            self.mean_y -= delta_y / self.count as f64;
            self.m2_x -= delta_x * (x - self.mean_x);
            self.m2_y -= delta_y * (y - self.mean_y);
            self.comoment -= delta_x * (y - self.mean_y);
        })
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [counts, means_x, means_y, m2s_x, m2s_y, comoments] = states else {
            return datafusion::common::internal_err!("a regression state has six columns");
        };
        let counts = counts.as_primitive::<UInt64Type>();
        let floats = |array: &ArrayRef| array.as_primitive::<Float64Type>().clone();
        let (means_x, means_y) = (floats(means_x), floats(means_y));
        let (m2s_x, m2s_y, comoments) = (floats(m2s_x), floats(m2s_y), floats(comoments));
        for row in 0..counts.len() {
            let other = Moments {
                kind: self.kind,
                count: counts.value(row),
                mean_x: means_x.value(row),
                mean_y: means_y.value(row),
                m2_x: m2s_x.value(row),
                m2_y: m2s_y.value(row),
                comoment: comoments.value(row),
            };
            if other.count == 0 {
                continue;
            }
            if self.count == 0 {
                *self = other;
                continue;
            }
            // DataFusion's arithmetic, operation for operation.
            let total = self.count + other.count;
            let (count_a, count_b) = (self.count as f64, other.count as f64);
            let d_x = other.mean_x - self.mean_x;
            let d_y = other.mean_y - self.mean_y;
            self.mean_x += d_x * count_b / total as f64;
            self.mean_y += d_y * count_b / total as f64;
            self.m2_x = self.m2_x + other.m2_x + d_x * d_x * count_a * count_b / total as f64;
            self.m2_y = self.m2_y + other.m2_y + d_y * d_y * count_a * count_b / total as f64;
            self.comoment =
                self.comoment + other.comoment + d_x * d_y * count_a * count_b / total as f64;
            self.count = total;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::from(self.count),
            ScalarValue::from(self.mean_x),
            ScalarValue::from(self.mean_y),
            ScalarValue::from(self.m2_x),
            ScalarValue::from(self.m2_y),
            ScalarValue::from(self.comoment),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let count = self.count as f64;
        let covariance = self.comoment / count;
        let variance_x = self.m2_x / count;
        let variance_y = self.m2_y / count;
        let few = self.count <= 1 || variance_x == 0.0;
        let value = |null: bool, value: f64| ScalarValue::Float64((!null).then_some(value));
        Ok(match self.kind {
            Kind::Count => ScalarValue::UInt64(Some(self.count)),
            Kind::Slope => value(few, covariance / variance_x),
            Kind::Intercept => value(few, self.mean_y - covariance / variance_x * self.mean_x),
            Kind::R2 => value(
                few || variance_y == 0.0,
                (covariance * covariance) / (variance_x * variance_y),
            ),
            Kind::AvgX => value(self.count < 1, self.mean_x),
            Kind::AvgY => value(self.count < 1, self.mean_y),
            Kind::Sxx => value(self.count < 1, self.m2_x),
            Kind::Syy => value(self.count < 1, self.m2_y),
            Kind::Sxy => value(self.count < 1, self.comoment),
        })
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::two_column_tests::same_as_datafusion;

    /// Updates, takes back, and merges of non-empty states give DataFusion's bits, for each
    /// of the nine functions.
    #[test]
    fn values_are_datafusions() -> Result<()> {
        let theirs = [
            regr::regr_slope_udaf(),
            regr::regr_intercept_udaf(),
            regr::regr_count_udaf(),
            regr::regr_r2_udaf(),
            regr::regr_avgx_udaf(),
            regr::regr_avgy_udaf(),
            regr::regr_sxx_udaf(),
            regr::regr_syy_udaf(),
            regr::regr_sxy_udaf(),
        ];
        for (ours, theirs) in functions().iter().zip(theirs) {
            assert_eq!(ours.name(), theirs.name());
            same_as_datafusion(ours, &theirs)?;
        }
        Ok(())
    }
}
