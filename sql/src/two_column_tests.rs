//! What the tests of sluice's own two-argument statistics (covariances, regressions) share:
//! awkward pairs of DOUBLE values, and the check that an accumulator computes what
//! DataFusion's of the same function computes, bit for bit.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::Result;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{Accumulator, AggregateUDF};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

/// `count` pairs from `seed`: thirds and tenths, large and small; the first value of some
/// pairs is NULL.
pub fn pairs(seed: u64, count: usize) -> Vec<ArrayRef> {
    let mut state = seed;
    let (mut firsts, mut seconds) = (Vec::new(), Vec::new());
    for _ in 0..count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let x = (state % 1000) as f64 / 3.0 - 1e3 * (state % 3) as f64;
        firsts.push((!state.is_multiple_of(9)).then_some(x));
        seconds.push(Some(x * 0.7 + (state % 13) as f64 / 10.0));
    }
    vec![
        Arc::new(Float64Array::from(firsts)),
        Arc::new(Float64Array::from(seconds)),
    ]
}

/// `accumulator`'s intermediate state, as arrays of one row.
pub fn states(accumulator: &mut Box<dyn Accumulator>) -> Result<Vec<ArrayRef>> {
    accumulator
        .state()?
        .iter()
        .map(|value| value.to_array_of_size(1))
        .collect()
}

/// An accumulator of `function` over two DOUBLE columns.
pub fn accumulator(function: &AggregateUDF) -> Result<Box<dyn Accumulator>> {
    let schema = Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Float64, true),
    ]);
    let exprs: Vec<Arc<dyn PhysicalExpr>> =
        vec![Arc::new(Column::new("a", 0)), Arc::new(Column::new("b", 1))];
    let fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let return_type = function.return_type(&[DataType::Float64, DataType::Float64])?;
    function.accumulator(AccumulatorArgs {
        return_field: Arc::new(Field::new("r", return_type, true)),
        schema: &schema,
        ignore_nulls: false,
        order_bys: &[],
        is_reversed: false,
        name: "r",
        is_distinct: false,
        exprs: &exprs,
        expr_fields: &fields,
    })
}

/// `ours` and DataFusion's `theirs`, given the same rows, the same rows taken back and the
/// same state merged, end with the same result and state, for 40 seeds.
pub fn same_as_datafusion(ours: &AggregateUDF, theirs: &AggregateUDF) -> Result<()> {
    for seed in 1..40 {
        let mut results = Vec::new();
        for mut tested in [accumulator(ours)?, accumulator(theirs)?] {
            let mut other = accumulator(ours)?;
            other.update_batch(&pairs(seed * 13, 20))?;
            tested.update_batch(&pairs(seed, 40))?;
            let taken_back: Vec<ArrayRef> =
                pairs(seed, 40).iter().map(|c| c.slice(0, 15)).collect();
            tested.retract_batch(&taken_back)?;
            tested.merge_batch(&states(&mut other)?)?;
            results.push((tested.evaluate()?, states(&mut tested)?));
        }
        assert_eq!(results[0], results[1], "{} seed {seed}", ours.name());
    }
    Ok(())
}
