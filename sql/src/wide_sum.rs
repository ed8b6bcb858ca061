//! `checked_sum`: the sum of BIGINT or BIGINT UNSIGNED values as a 128-bit integer, typed
//! `DECIMAL(38, 0)`, for [`crate::checked_sum`] to narrow back (with `checked_bigint`, or a
//! cast for BIGINT UNSIGNED) and so fail a sum that does not fit. Exact for 2^64 rows of the largest values, it never overflows, however rows are taken
//! back. Each value is added as it is read, without first casting the column to decimal.
//!
//! State per group: the 128-bit total and how many values it holds (none: the sum is NULL,
//! as SQL's `SUM` of no values is). Row accumulators take rows back (`retract_batch`) for
//! changelogs and sliding frames; the groups accumulator serves window aggregates and their
//! slices, merged through the same two state columns.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array,
};
use datafusion::arrow::compute::try_unary;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Int64Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    ReversedUDAF, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The type of the sum.
pub const WIDE: DataType = DataType::Decimal128(38, 0);

/// The `checked_sum` function, for plans (it is not registered under a name users call).
pub fn checked_sum() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(WideSum {
        signature: Signature::uniform(
            1,
            vec![DataType::Int64, DataType::UInt64],
            Volatility::Immutable,
        ),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WideSum {
    signature: Signature,
}

impl AggregateUDFImpl for WideSum {
    fn name(&self) -> &str {
        "checked_sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(WIDE)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<Total>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format_state_name(args.name, "sum"), WIDE, true)),
            Arc::new(Field::new(
                format_state_name(args.name, "count"),
                DataType::Int64,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::<Totals>::default())
    }

    fn create_sliding_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<Total>::default())
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// Calls `add` with each non-NULL value of `values` (BIGINT or BIGINT UNSIGNED) and its row.
fn for_each_value(values: &ArrayRef, mut add: impl FnMut(usize, i128)) -> Result<()> {
    macro_rules! each {
        ($array:expr) => {{
            let array = $array;
            match array.nulls() {
                None => {
                    for (row, value) in array.values().iter().enumerate() {
                        add(row, i128::from(*value));
                    }
                }
                Some(nulls) => {
                    for row in nulls.valid_indices() {
                        add(row, i128::from(array.value(row)));
                    }
                }
            }
        }};
    }
    match values.data_type() {
        DataType::Int64 => each!(values.as_primitive::<Int64Type>()),
        DataType::UInt64 => each!(values.as_primitive::<UInt64Type>()),
        other => return internal_err!("checked_sum of {other}"),
    }
    Ok(())
}

/// One group's total, for row accumulators.
#[derive(Debug, Default)]
struct Total {
    sum: i128,
    count: i64,
}

impl Accumulator for Total {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_value(&values[0], |_, value| {
            self.sum += value;
            self.count += 1;
        })
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_value(&values[0], |_, value| {
            self.sum -= value;
            self.count -= 1;
        })
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (sums, counts) = state_columns(states)?;
        for row in 0..sums.len() {
            self.sum += sums.value(row);
            self.count += counts.value(row);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Decimal128(Some(self.sum), 38, 0),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Decimal128(
            (self.count > 0).then_some(self.sum),
            38,
            0,
        ))
    }

    fn size(&self) -> usize {
        size_of::<Self>()
    }
}

/// Every group's total, for window aggregates.
#[derive(Debug, Default)]
struct Totals {
    sums: Vec<i128>,
    counts: Vec<i64>,
}

impl Totals {
    fn grow(&mut self, groups: usize) {
        if self.sums.len() < groups {
            self.sums.resize(groups, 0);
            self.counts.resize(groups, 0);
        }
    }
}

impl GroupsAccumulator for Totals {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        for_each_value(&values[0], |row, value| {
            if opt_filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row)) {
                sums[group_indices[row]] += value;
                counts[group_indices[row]] += 1;
            }
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let (sums, counts) = state_columns(values)?;
        for (row, &group) in group_indices.iter().enumerate() {
            self.sums[group] += sums.value(row);
            self.counts[group] += counts.value(row);
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values[0].len();
        let mut sums = vec![0; rows];
        let mut counts = vec![0; rows];
        for_each_value(&values[0], |row, value| {
            if opt_filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row)) {
                sums[row] = value;
                counts[row] = 1;
            }
        })?;
        Ok(vec![
            Arc::new(Decimal128Array::from(sums).with_precision_and_scale(38, 0)?),
            Arc::new(Int64Array::from(counts)),
        ])
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let values = sums
            .into_iter()
            .zip(counts)
            .map(|(sum, count)| (count > 0).then_some(sum));
        Ok(Arc::new(
            Decimal128Array::from_iter(values).with_precision_and_scale(38, 0)?,
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        Ok(vec![
            Arc::new(Decimal128Array::from(sums).with_precision_and_scale(38, 0)?),
            Arc::new(Int64Array::from(counts)),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<i128>() + self.counts.capacity() * size_of::<i64>()
    }
}

/// The sum and count columns of states.
fn state_columns(states: &[ArrayRef]) -> Result<(&Decimal128Array, &Int64Array)> {
    match states {
        [sums, counts] => match (sums.as_primitive_opt(), counts.as_primitive_opt()) {
            (Some(sums), Some(counts)) => Ok((sums, counts)),
            _ => internal_err!("checked_sum states of other types"),
        },
        _ => internal_err!("checked_sum states of {} columns", states.len()),
    }
}

/// `checked_bigint`: a sum of [`checked_sum`] as BIGINT, or an error naming it when it does not
/// fit — for a row at a time, as the projection above the sum evaluates it (see
/// `sluice_engine::failure`).
pub fn checked_bigint() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(CheckedBigint {
        signature: Signature::exact(vec![WIDE], Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedBigint {
    signature: Signature,
}

fn narrowed(sum: i128) -> std::result::Result<i64, ArrowError> {
    i64::try_from(sum)
        .map_err(|_| ArrowError::ComputeError(format!("the sum {sum} does not fit BIGINT")))
}

impl ScalarUDFImpl for CheckedBigint {
    fn name(&self) -> &str {
        "checked_bigint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.as_slice() {
            [ColumnarValue::Array(sums)] => {
                let Some(sums) = sums.as_primitive_opt::<Decimal128Type>() else {
                    return internal_err!("checked_bigint of {}", sums.data_type());
                };
                let narrowed: Int64Array = try_unary(sums, narrowed)?;
                Ok(ColumnarValue::Array(Arc::new(narrowed)))
            }
            [ColumnarValue::Scalar(ScalarValue::Decimal128(sum, _, _))] => Ok(
                ColumnarValue::Scalar(ScalarValue::Int64(sum.map(narrowed).transpose()?)),
            ),
            _ => internal_err!("checked_bigint takes one DECIMAL(38, 0)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::UInt64Array;

    use super::*;

    fn bigints(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    #[test]
    fn a_total_passes_the_bigint_limit_and_comes_back_exactly() -> Result<()> {
        let mut total = Total::default();
        total.update_batch(&[bigints(&[Some(i64::MAX), Some(i64::MAX), None])])?;
        assert_eq!(
            total.evaluate()?,
            ScalarValue::Decimal128(Some(2 * i128::from(i64::MAX)), 38, 0)
        );
        total.retract_batch(&[bigints(&[Some(i64::MAX)])])?;
        assert_eq!(
            total.evaluate()?,
            ScalarValue::Decimal128(Some(i128::from(i64::MAX)), 38, 0)
        );
        total.retract_batch(&[bigints(&[Some(i64::MAX)])])?;
        // No values left: NULL, as the SUM of no rows.
        assert_eq!(total.evaluate()?, ScalarValue::Decimal128(None, 38, 0));
        Ok(())
    }

    #[test]
    fn unsigned_values_add_past_their_limit_too() -> Result<()> {
        let mut total = Total::default();
        let values: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 1]));
        total.update_batch(&[values])?;
        assert_eq!(
            total.evaluate()?,
            ScalarValue::Decimal128(Some(i128::from(u64::MAX) + 1), 38, 0)
        );
        Ok(())
    }

    #[test]
    fn groups_merge_their_states_and_skip_filtered_rows() -> Result<()> {
        let mut first = Totals::default();
        let filter = BooleanArray::from(vec![true, false, true, true]);
        first.update_batch(
            &[bigints(&[Some(1), Some(100), Some(2), None])],
            &[0, 0, 1, 2],
            Some(&filter),
            3,
        )?;
        let state = first.state(EmitTo::All)?;
        let mut merged = Totals::default();
        merged.update_batch(&[bigints(&[Some(10)])], &[1], None, 2)?;
        merged.merge_batch(&state, &[0, 1, 2], 3)?;
        let sums = merged.evaluate(EmitTo::All)?;
        let expected: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1), Some(12), None]).with_precision_and_scale(38, 0)?,
        );
        assert_eq!(&sums, &expected);
        Ok(())
    }

    #[test]
    fn rows_convert_to_states_that_merge_like_the_rows() -> Result<()> {
        let totals = Totals::default();
        let states = totals.convert_to_state(&[bigints(&[Some(5), None, Some(7)])], None)?;
        let mut merged = Totals::default();
        merged.merge_batch(&states, &[0, 0, 1], 2)?;
        let expected: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(5), Some(7)]).with_precision_and_scale(38, 0)?,
        );
        assert_eq!(&merged.evaluate(EmitTo::First(2))?, &expected);
        Ok(())
    }
}
