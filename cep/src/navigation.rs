//! What measures (and conditions that read the match) read from a match: rows by position
//! among a variable's rows, rows some way off, aggregates, the classifier and the match number.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;
use sluice_engine::Result;
use sluice_engine::aggregate::AggregateCall;

use crate::Binding;
use crate::partition::Partition;

/// What a measure reads from a match.
pub enum Navigate {
    /// The `offset`-th row bound to the variable, from the first.
    First,
    /// The `offset`-th row bound to the variable, from the last (`A.x` is `LAST(A.x)`).
    Last,
    /// `offset` rows before the last row bound to the variable.
    Prev,
    /// `offset` rows after the last row bound to the variable (NULL past the rows there are).
    Next,
    /// An aggregate over the rows bound to the variable.
    Aggregate(AggregateCall),
    /// `CLASSIFIER()`: the variable of the match's last row; `CLASSIFIER(S)`: that of its
    /// last row bound to one of `variables`.
    Classifier,
    /// `MATCH_NUMBER()`: 1 for the partition's first match, and so on.
    MatchNumber,
}

/// What of the row navigated to is read instead of an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLabel {
    /// `FIRST(CLASSIFIER())`, `PREV(CLASSIFIER())`, ...: the variable the row is bound to.
    Classifier,
    /// `FIRST(MATCH_NUMBER())`, ...: the match's number.
    MatchNumber,
}

/// One value a measure reads: `navigate` over the rows bound to `variables` (every row of
/// the match when `None`; several for a `SUBSET`), reading `argument`.
pub struct Navigation {
    /// `FINAL`: over the whole match; `RUNNING`: over its rows up to the output row.
    pub is_final: bool,
    pub navigate: Navigate,
    pub variables: Option<Vec<usize>>,
    pub argument: Option<Arc<dyn PhysicalExpr>>,
    pub offset: usize,
    /// For `FIRST`, `LAST`, `PREV` and `NEXT`: read this of the row navigated to, which is
    /// NULL for a row outside the match (so far), instead of `argument`.
    pub label: Option<RowLabel>,
    /// For `FIRST` and `LAST`: rows to move from the row found before reading it (`PREV(LAST(
    /// A.x), 2)` is -2), within the partition's rows.
    pub shift: i64,
}

/// `rows`, those of `bound`, with their `CLASSIFIER()` and `MATCH_NUMBER()` as two more
/// columns, for an aggregate that reads them.
fn with_labels(
    rows: RecordBatch,
    bound: &[&Binding],
    variables: &[String],
    number: u64,
) -> Result<RecordBatch> {
    let labels: StringArray = bound
        .iter()
        .map(|b| Some(variables[b.variable].as_str()))
        .collect();
    let numbers = UInt64Array::from(vec![number; labels.len()]);
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("__classifier", DataType::Utf8, true));
    fields.push(Field::new("__match_number", DataType::UInt64, true));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(labels));
    columns.push(Arc::new(numbers));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// `CLASSIFIER()` over `path` (the match's rows up to the output row): the variable of its
/// last row, or with `of` (a variable or a SUBSET's members), of its last row bound to one
/// of them.
fn classifier(of: Option<&[usize]>, path: &[Binding]) -> Option<usize> {
    path.iter()
        .rev()
        .find(|b| of.is_none_or(|set| set.contains(&b.variable)))
        .map(|b| b.variable)
}

/// The value of `navigation` for a match (or partial match) of `state` with rows `path`.
pub(crate) fn navigation_value(
    navigation: &Navigation,
    variables: &[String],
    state: &Partition,
    path: &[Binding],
    number: u64,
    data_type: &DataType,
    argument_values: Option<&ArrayRef>,
) -> Result<ScalarValue> {
    let bindings: Vec<&Binding> = path
        .iter()
        .filter(|b| {
            navigation
                .variables
                .as_ref()
                .is_none_or(|set| set.contains(&b.variable))
        })
        .collect();
    let bound: Vec<usize> = bindings.iter().map(|b| b.row).collect();
    let value = match &navigation.navigate {
        Navigate::MatchNumber => ScalarValue::UInt64(Some(number)),
        Navigate::Classifier => ScalarValue::Utf8(
            classifier(navigation.variables.as_deref(), path).map(|v| variables[v].clone()),
        ),
        Navigate::Aggregate(call) => {
            let indices =
                UInt32Array::from_iter_values(bound.iter().map(|r| (r - state.base) as u32));
            let mut rows = take_record_batch(state.rows()?, &indices)?;
            if navigation.label.is_some() {
                rows = with_labels(rows, &bindings, variables, number)?;
            }
            let all = UInt32Array::from_iter_values(0..rows.num_rows() as u32);
            let mut accumulator = call.accumulator(false)?;
            accumulator.update_batch(&call.input(&rows)?.filtered(&all)?)?;
            accumulator.evaluate()?
        }
        Navigate::First | Navigate::Last | Navigate::Prev | Navigate::Next => {
            let row = match navigation.navigate {
                Navigate::First => bound.get(navigation.offset).copied(),
                Navigate::Last => bound
                    .len()
                    .checked_sub(navigation.offset + 1)
                    .map(|i| bound[i]),
                Navigate::Prev => bound.last().and_then(|r| r.checked_sub(navigation.offset)),
                _ => bound.last().map(|r| r + navigation.offset),
            };
            let row = match navigation.shift {
                0 => row,
                shift => row.and_then(|r| r.checked_add_signed(shift as isize)),
            };
            let row = row.filter(|r| *r >= state.base && *r < state.available());
            if let Some(label) = navigation.label {
                let bound = row.and_then(|row| path.iter().find(|b| b.row == row));
                let value = match (label, bound) {
                    (RowLabel::Classifier, Some(b)) => {
                        ScalarValue::Utf8(Some(variables[b.variable].clone()))
                    }
                    (RowLabel::MatchNumber, Some(_)) => ScalarValue::UInt64(Some(number)),
                    (_, None) => ScalarValue::try_from(data_type)?,
                };
                return Ok(value.cast_to(data_type)?);
            }
            match (row, &navigation.argument, argument_values) {
                (Some(row), _, Some(values)) => {
                    ScalarValue::try_from_array(values, row - state.base)?
                }
                (Some(row), Some(argument), None) => {
                    let one = state.rows()?.slice(row - state.base, 1);
                    let value = argument.evaluate(&one)?.into_array(1)?;
                    ScalarValue::try_from_array(&value, 0)?
                }
                _ => ScalarValue::try_from(data_type)?,
            }
        }
    };
    Ok(value.cast_to(data_type)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition, over random paths and sets: the last row up to each row whose
    /// variable is in the set.
    #[test]
    fn classifier_of_a_set_is_the_variable_of_its_last_row_so_far() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below) as usize
        };
        let mut found = 0;
        for _ in 0..2_000 {
            let path: Vec<Binding> = (0..next(8))
                .map(|row| Binding {
                    row,
                    variable: next(4),
                    excluded: false,
                })
                .collect();
            let set: Vec<usize> = (0..4).filter(|_| next(2) == 0).collect();
            for up_to in 0..=path.len() {
                let so_far = &path[..up_to];
                let mut expected = None;
                for binding in so_far {
                    if set.contains(&binding.variable) {
                        expected = Some(binding.variable);
                    }
                }
                assert_eq!(
                    classifier(Some(&set), so_far),
                    expected,
                    "{so_far:?} {set:?}"
                );
                assert_eq!(classifier(None, so_far), so_far.last().map(|b| b.variable));
                found += usize::from(expected.is_some());
            }
        }
        assert!(found > 1_000, "only {found} rows had a classifier");
    }
}
