//! Rows a standing query could not compute: a division by zero, an integer overflow, a cast
//! that fails, in one row. Such a row is left out of the results and reported, with the
//! error, on the query's error output (in `sluice run`, `NAME.errors.csv`); the query goes
//! on with the other rows. An expression is evaluated over the whole batch as usual, and only
//! when that fails row by row, to find the rows that fail.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

use crate::output::unpacked;
use crate::{Changes, Result};

/// A row a query could not compute, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    /// The error, as DataFusion or Arrow gave it.
    pub error: String,
    /// The row the operator received, as a JSON object.
    pub row: String,
}

impl RowFailure {
    /// Row `row` of `rows` failing with `error`.
    pub fn of(rows: &RecordBatch, row: usize, error: String) -> RowFailure {
        RowFailure {
            error,
            row: row_as_json(rows, row),
        }
    }
}

/// The schema of an error output: the error, then the row as a JSON object.
pub fn failure_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("error", DataType::Utf8, false),
        Field::new("row", DataType::Utf8, false),
    ]))
}

/// `failures` as rows of [`failure_schema`].
pub fn failure_rows(failures: &[RowFailure]) -> Result<RecordBatch> {
    let errors = StringArray::from_iter_values(failures.iter().map(|f| f.error.as_str()));
    let rows = StringArray::from_iter_values(failures.iter().map(|f| f.row.as_str()));
    Ok(RecordBatch::try_new(
        failure_schema(),
        vec![Arc::new(errors), Arc::new(rows)],
    )?)
}

/// `expression` over `rows`: its values, with NULL for each row where it fails, and those
/// rows with their errors.
pub fn evaluate_each(
    expression: &Arc<dyn PhysicalExpr>,
    rows: &RecordBatch,
) -> Result<(ArrayRef, Vec<(usize, String)>)> {
    let count = rows.num_rows();
    let whole = expression
        .evaluate(rows)
        .and_then(|value| value.into_array(count));
    let error = match whole {
        Ok(values) => return Ok((values, Vec::new())),
        Err(error) => error,
    };
    let data_type = match expression.data_type(&rows.schema()) {
        Ok(data_type) => data_type,
        // Not a row's failure: the expression cannot run at all.
        Err(_) => return Err(error.into()),
    };
    let mut parts: Vec<ArrayRef> = Vec::with_capacity(count);
    let mut failed = Vec::new();
    for row in 0..count {
        let one = rows.slice(row, 1);
        match expression
            .evaluate(&one)
            .and_then(|value| value.into_array(1))
        {
            Ok(value) => parts.push(value),
            Err(error) => {
                failed.push((row, error.strip_backtrace()));
                parts.push(new_null_array(&data_type, 1));
            }
        }
    }
    if failed.is_empty() {
        // The batch failed but no row alone does: not a row's failure.
        return Err(error.into());
    }
    let parts: Vec<&dyn datafusion::arrow::array::Array> =
        parts.iter().map(|part| part.as_ref()).collect();
    Ok((concat(&parts)?, failed))
}

/// The rows of `changes` that every one of `expressions` can be computed for, and the
/// failures of the others; for the inputs of a stateful operator, screened before it changes
/// any state. Columns and literals cannot fail and are not evaluated, so plain inputs cost
/// nothing; `changes` comes back whole when nothing fails.
pub fn screen(
    expressions: &[Arc<dyn PhysicalExpr>],
    changes: Changes,
) -> Result<(Changes, Vec<RowFailure>)> {
    let mut failed: BTreeMap<usize, String> = BTreeMap::new();
    for expression in expressions.iter().filter(|e| may_fail(e)) {
        let (_, failures) = evaluate_each(expression, &changes.rows)?;
        for (row, error) in failures {
            failed.entry(row).or_insert(error);
        }
    }
    if failed.is_empty() {
        return Ok((changes, Vec::new()));
    }
    let keep: BooleanArray = (0..changes.num_rows())
        .map(|row| Some(!failed.contains_key(&row)))
        .collect();
    let failures = failed
        .into_iter()
        .map(|(row, error)| RowFailure::of(&changes.rows, row, error))
        .collect();
    Ok((changes.filter(&keep)?, failures))
}

/// Whether evaluating `expression` can fail for a row: anything but a column or a literal.
fn may_fail(expression: &Arc<dyn PhysicalExpr>) -> bool {
    expression.downcast_ref::<Column>().is_none() && expression.downcast_ref::<Literal>().is_none()
}

/// `expression` with integer `+`, `-` and `*` checked: an overflow fails the row (see
/// above) rather than wrapping around, as the SQL standard has it.
pub fn checked_arithmetic(expression: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    let unchanged = Arc::clone(&expression);
    let checked = expression.transform_up(|node| {
        let Some(binary) = node.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(node));
        };
        let checked = BinaryExpr::new(
            Arc::clone(binary.left()),
            *binary.op(),
            Arc::clone(binary.right()),
        )
        .with_fail_on_overflow(true);
        Ok(Transformed::yes(Arc::new(checked) as Arc<dyn PhysicalExpr>))
    });
    checked.map_or(unchanged, |transformed| transformed.data)
}

/// Row `row` of `rows` as a JSON object (NULL columns left out).
fn row_as_json(rows: &RecordBatch, row: usize) -> String {
    let one = match unpacked(&rows.slice(row, 1)) {
        Ok(one) => one,
        Err(_) => rows.slice(row, 1),
    };
    let mut writer = LineDelimitedWriter::new(Vec::new());
    let written = writer.write(&one).and_then(|()| writer.finish());
    match written {
        Ok(()) => String::from_utf8_lossy(&writer.into_inner())
            .trim_end()
            .to_string(),
        Err(error) => format!("(the row cannot be shown: {error})"),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{col, lit};

    use super::*;

    #[test]
    fn only_the_rows_that_fail_are_set_aside() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![6, 7, 8])),
                Arc::new(Int64Array::from(vec![2, 0, 4])),
            ],
        )?;
        let divide: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            col("a", &schema)?,
            Operator::Divide,
            col("b", &schema)?,
        ));
        let (values, failed) = evaluate_each(&divide, &rows)?;
        let values = values.as_primitive::<Int64Type>();
        assert_eq!(
            values.iter().collect::<Vec<_>>(),
            vec![Some(3), None, Some(2)]
        );
        assert_eq!(
            failed,
            vec![(1, "Arrow error: Divide by zero error".to_string())]
        );
        assert_eq!(
            RowFailure::of(&rows, 1, String::new()).row,
            r#"{"a":7,"b":0}"#
        );
        let plus: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            col("a", &schema)?,
            Operator::Plus,
            lit(1i64),
        ));
        assert!(evaluate_each(&plus, &rows)?.1.is_empty());
        Ok(())
    }

    #[test]
    fn integer_overflow_fails_the_row_once_checked() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let rows = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, i64::MAX]))],
        )?;
        let plus: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            col("a", &schema)?,
            Operator::Plus,
            lit(1i64),
        ));
        let (wrapped, failed) = evaluate_each(&plus, &rows)?;
        assert!(failed.is_empty());
        assert_eq!(wrapped.as_primitive::<Int64Type>().value(1), i64::MIN);
        let (values, failed) = evaluate_each(&checked_arithmetic(plus), &rows)?;
        assert_eq!(values.as_primitive::<Int64Type>().value(0), 2);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, 1);
        assert!(failed[0].1.contains("Overflow"), "{}", failed[0].1);
        Ok(())
    }
}
