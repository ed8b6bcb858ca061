//! `VAR_SAMP`, `VAR_POP`, `STDDEV_SAMP` and `STDDEV_POP` (DataFusion's names `var` and
//! `stddev` for the sample ones, and their aliases) whose intermediate state restores exactly.
//!
//! The values are DataFusion's (but that a rounding error left by rows taken back never makes
//! a variance negative, nor that of one value other than 0), from the same formulas: Welford's update, its inverse for rows
//! taken back (from one value or none, the state empties), and Chan, Golub and LeVeque's merge
//! of two states. DataFusion's merge into an empty state computes the mean again as
//! `mean * count / count`, which can change its last bit, so an accumulator restored from a
//! checkpoint that way would go on with another mean than the one saved, and later results
//! would differ from a run that never stopped. Here merging into an empty state takes the
//! other as it is, and merging an empty one changes nothing. `DISTINCT` calls are DataFusion's
//! own: their state is the distinct values, which restores exactly.
//!
//! State per group: `count` (UInt64), `mean` and `m2` (Float64), the same columns as
//! DataFusion's, so plans and checkpoints read the same.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, UInt64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::{stddev, variance};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// The four functions, to register over DataFusion's.
pub fn functions() -> Vec<Arc<AggregateUDF>> {
    [
        Kind::VarSamp,
        Kind::VarPop,
        Kind::StddevSamp,
        Kind::StddevPop,
    ]
    .into_iter()
    .map(|kind| {
        let datafusion = kind.datafusion();
        Arc::new(AggregateUDF::new_from_impl(Spread {
            kind,
            aliases: datafusion.aliases().to_vec(),
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
            datafusion,
        }))
    })
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    VarSamp,
    VarPop,
    StddevSamp,
    StddevPop,
}

impl Kind {
    fn datafusion(self) -> Arc<AggregateUDF> {
        match self {
            Kind::VarSamp => variance::var_samp_udaf(),
            Kind::VarPop => variance::var_pop_udaf(),
            Kind::StddevSamp => stddev::stddev_udaf(),
            Kind::StddevPop => stddev::stddev_pop_udaf(),
        }
    }

    fn population(self) -> bool {
        matches!(self, Kind::VarPop | Kind::StddevPop)
    }

    /// The result for `moments`: NULL for no values, and for one value of a sample; 0 for
    /// one value of a population, and never below 0 (rows taken back can leave a rounding
    /// error of either sign in `m2`).
    fn value(self, moments: Moments) -> Option<f64> {
        let divisor = match (moments.count, self.population()) {
            (0, _) | (1, false) => return None,
            (1, true) => return Some(0.0),
            (count, true) => count,
            (count, false) => count - 1,
        };
        let variance = moments.m2 / divisor as f64;
        // Not `max`, which would turn NaN into 0.
        let variance = if variance < 0.0 { 0.0 } else { variance };
        Some(match self {
            Kind::StddevSamp | Kind::StddevPop => variance.sqrt(),
            Kind::VarSamp | Kind::VarPop => variance,
        })
    }
}

#[derive(Debug)]
struct Spread {
    kind: Kind,
    aliases: Vec<String>,
    signature: Signature,
    /// DataFusion's function of the same name, for `DISTINCT` calls.
    datafusion: Arc<AggregateUDF>,
}

impl PartialEq for Spread {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for Spread {}

impl std::hash::Hash for Spread {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

impl AggregateUDFImpl for Spread {
    fn name(&self) -> &str {
        self.datafusion.name()
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
        if args.is_distinct {
            return self.datafusion.state_fields(args);
        }
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "count"),
                DataType::UInt64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "mean"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "m2"),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct {
            return self.datafusion.accumulator(args);
        }
        Ok(Box::new(One {
            kind: self.kind,
            moments: Moments::default(),
        }))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups {
            kind: self.kind,
            moments: Vec::new(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.accumulator(args)
    }
}

/// Count, mean and sum of squared differences from the mean of some values.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    count: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, value: f64) {
        self.count += 1;
        let before = value - self.mean;
        self.mean += before / self.count as f64;
        self.m2 += before * (value - self.mean);
    }

    fn remove(&mut self, value: f64) {
        if self.count <= 1 {
            *self = Moments::default();
            return;
        }
        self.count -= 1;
        let before = self.mean - value;
        self.mean += before / self.count as f64;
        self.m2 -= before * (self.mean - value);
    }

    fn merge(&mut self, other: Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        let count = self.count + other.count;
        let mean = self.mean * self.count as f64 / count as f64
            + other.mean * other.count as f64 / count as f64;
        let delta = self.mean - other.mean;
        let m2 = self.m2
            + other.m2
            + delta * delta * self.count as f64 * other.count as f64 / count as f64;
        *self = Moments { count, mean, m2 };
    }
}

/// Calls `each` with every non-NULL value of `values` (DOUBLE) that `filter` lets through,
/// and its row.
fn for_each_value(
    values: &ArrayRef,
    filter: Option<&BooleanArray>,
    mut each: impl FnMut(usize, f64),
) {
    let values = values.as_primitive::<Float64Type>();
    for row in 0..values.len() {
        let passes = filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        if passes && values.is_valid(row) {
            each(row, values.value(row));
        }
    }
}

/// The saved states in `states`: counts, means and m2s.
fn each_state(states: &[ArrayRef], mut each: impl FnMut(usize, Moments)) -> Result<()> {
    let [counts, means, m2s] = states else {
        return datafusion::common::internal_err!("a variance state has three columns");
    };
    let counts = counts.as_primitive::<UInt64Type>();
    let means = means.as_primitive::<Float64Type>();
    let m2s = m2s.as_primitive::<Float64Type>();
    for row in 0..counts.len() {
        each(
            row,
            Moments {
                count: counts.value(row),
                mean: means.value(row),
                m2: m2s.value(row),
            },
        );
    }
    Ok(())
}

fn state_arrays(moments: &[Moments]) -> Vec<ArrayRef> {
    vec![
        Arc::new(UInt64Array::from_iter_values(
            moments.iter().map(|m| m.count),
        )),
        Arc::new(Float64Array::from_iter_values(
            moments.iter().map(|m| m.mean),
        )),
        Arc::new(Float64Array::from_iter_values(moments.iter().map(|m| m.m2))),
    ]
}

/// One group's accumulator: rows, changelogs and sliding frames.
#[derive(Debug)]
struct One {
    kind: Kind,
    moments: Moments,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_value(&values[0], None, |_, value| self.moments.add(value));
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_value(&values[0], None, |_, value| self.moments.remove(value));
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        each_state(states, |_, other| self.moments.merge(other))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::from(self.moments.count),
            ScalarValue::from(self.moments.mean),
            ScalarValue::from(self.moments.m2),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.kind.value(self.moments)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// Every group's moments, for window aggregates and their slices.
#[derive(Debug)]
struct Groups {
    kind: Kind,
    moments: Vec<Moments>,
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.moments.resize(total_num_groups, Moments::default());
        for_each_value(&values[0], opt_filter, |row, value| {
            self.moments[group_indices[row]].add(value);
        });
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.moments.resize(total_num_groups, Moments::default());
        each_state(values, |row, other| {
            self.moments[group_indices[row]].merge(other);
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let moments = emit_to.take_needed(&mut self.moments);
        let values: Vec<Option<f64>> = moments.iter().map(|m| self.kind.value(*m)).collect();
        let nulls = NullBuffer::from_iter(values.iter().map(Option::is_some));
        let values: Vec<f64> = values.into_iter().map(|v| v.unwrap_or(0.0)).collect();
        Ok(Arc::new(Float64Array::new(values.into(), Some(nulls))))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(state_arrays(&emit_to.take_needed(&mut self.moments)))
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut moments = vec![Moments::default(); values[0].len()];
        for_each_value(&values[0], opt_filter, |row, value| moments[row].add(value));
        Ok(state_arrays(&moments))
    }

    fn size(&self) -> usize {
        self.moments.capacity() * size_of::<Moments>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Awkward values: thirds and tenths, large and small.
    fn values(seed: u64, count: usize) -> Vec<f64> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 1000) as f64 / 3.0 + (state % 7) as f64 * 0.1 - 1e3 * (state % 3) as f64
            })
            .collect()
    }

    #[test]
    fn a_state_merged_into_an_empty_one_goes_on_bit_for_bit() {
        for seed in 1..200 {
            let mut never = Moments::default();
            values(seed, 50).into_iter().for_each(|v| never.add(v));
            let mut restored = Moments::default();
            restored.merge(never);
            for value in values(seed * 31, 50) {
                never.add(value);
                restored.add(value);
            }
            values(seed, 20).into_iter().for_each(|v| {
                never.remove(v);
                restored.remove(v);
            });
            assert_eq!(
                (never.count, never.mean.to_bits(), never.m2.to_bits()),
                (
                    restored.count,
                    restored.mean.to_bits(),
                    restored.m2.to_bits()
                ),
                "seed {seed}"
            );
        }
    }

    /// The same values as DataFusion's accumulators, row by row and grouped.
    #[test]
    fn values_are_datafusions() -> Result<()> {
        let kinds = [
            Kind::VarSamp,
            Kind::VarPop,
            Kind::StddevSamp,
            Kind::StddevPop,
        ];
        for kind in kinds {
            for count in [0, 1, 2, 3, 17, 100] {
                let column: ArrayRef =
                    Arc::new(Float64Array::from(values(count as u64 + 5, count)));
                let mut ours = One {
                    kind,
                    moments: Moments::default(),
                };
                ours.update_batch(&[Arc::clone(&column)])?;
                let schema = datafusion::arrow::datatypes::Schema::new(vec![Field::new(
                    "x",
                    DataType::Float64,
                    true,
                )]);
                let expression: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
                    Arc::new(datafusion::physical_expr::expressions::Column::new("x", 0));
                let field = Arc::new(Field::new("v", DataType::Float64, true));
                let args = AccumulatorArgs {
                    return_field: field,
                    schema: &schema,
                    ignore_nulls: false,
                    order_bys: &[],
                    is_reversed: false,
                    name: "v",
                    is_distinct: false,
                    exprs: &[expression],
                    expr_fields: &[Arc::new(Field::new("x", DataType::Float64, true))],
                };
                let mut theirs = kind.datafusion().accumulator(args)?;
                theirs.update_batch(&[column])?;
                assert_eq!(ours.evaluate()?, theirs.evaluate()?, "{kind:?} of {count}");
            }
        }
        Ok(())
    }
}
