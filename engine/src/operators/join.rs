//! What the join operators share: the join kind, the description of a side, encoding a
//! side's keys and rows, and assembling joined rows (NULL-padded where a side is absent).

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMillisecondArray, new_null_array,
};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{cast, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{Row, RowConverter, Rows, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::changes::batch_of;
use crate::failure::{RowFailure, checked_arithmetic, evaluate_each};
use crate::time::millis;
use crate::{EngineError, Result};

/// Which side's rows survive without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinKind {
    /// Whether rows of `side` (0 left, 1 right) without a match are emitted, NULL-padded.
    pub fn keeps(self, side: usize) -> bool {
        match self {
            JoinKind::Inner => false,
            JoinKind::Left => side == 0,
            JoinKind::Right => side == 1,
            JoinKind::Full => true,
        }
    }
}

/// One side of a join: how to read its rows.
pub struct JoinSide {
    /// The side's halves of the equality conditions, in the same order on both sides.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The column holding the side's event time, if it has one.
    pub time_column: Option<usize>,
    pub schema: SchemaRef,
}

/// A batch's join keys, encoded, and which rows have a key at all (no NULL in it).
pub struct Keys {
    pub rows: Rows,
    pub valid: Vec<bool>,
}

/// Encodes both sides' keys and rows, and assembles joined rows.
pub struct JoinCodec {
    sides: [JoinSide; 2],
    rows: [RowConverter; 2],
    /// Keys are encoded with the left side's key types on both sides.
    keys: RowConverter,
    key_types: Vec<DataType>,
    /// Evaluated over joined rows; pairs for which it is not true do not match.
    residual: Option<Arc<dyn PhysicalExpr>>,
    /// Joined rows the residual condition could not be computed for (they do not match),
    /// until the operator takes them for the error output.
    failures: Mutex<Vec<RowFailure>>,
    /// Left columns, then right columns.
    schema: SchemaRef,
}

impl JoinCodec {
    pub fn new(
        left: JoinSide,
        right: JoinSide,
        residual: Option<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let key_types = left
            .keys
            .iter()
            .map(|key| key.data_type(&left.schema))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = RowConverter::new(key_types.iter().cloned().map(SortField::new).collect())?;
        let converter = |side: &JoinSide| {
            RowConverter::new(
                side.schema
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )
        };
        Ok(JoinCodec {
            rows: [converter(&left)?, converter(&right)?],
            sides: [left, right],
            keys,
            key_types,
            residual: residual.map(checked_arithmetic),
            failures: Mutex::new(Vec::new()),
            schema,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn side(&self, side: usize) -> &JoinSide {
        &self.sides[side]
    }

    /// The join keys of `batch`, a batch of `side`.
    pub fn keys(&self, side: usize, batch: &RecordBatch) -> Result<Keys> {
        let count = batch.num_rows();
        let columns = self.sides[side]
            .keys
            .iter()
            .zip(&self.key_types)
            .map(|(key, wanted)| {
                let array = key.evaluate(batch)?.into_array(count)?;
                Ok(if array.data_type() == wanted {
                    array
                } else {
                    cast(&array, wanted)?
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let valid = (0..count)
            .map(|row| columns.iter().all(|column| column.is_valid(row)))
            .collect();
        Ok(Keys {
            rows: self.keys.convert_columns(&columns)?,
            valid,
        })
    }

    /// The rows of `batch`, a batch of `side`, encoded.
    pub fn rows(&self, side: usize, batch: &RecordBatch) -> Result<Rows> {
        Ok(self.rows[side].convert_columns(batch.columns())?)
    }

    /// The event times of `batch`, a batch of `side`, in milliseconds (if the side has them).
    pub fn times(
        &self,
        side: usize,
        batch: &RecordBatch,
    ) -> Result<Option<TimestampMillisecondArray>> {
        let Some(column) = self.sides[side].time_column else {
            return Ok(None);
        };
        Ok(Some(millis(batch.column(column))?))
    }

    /// Joined rows for `(left, right)` pairs; `None` stands for a NULL-padded side.
    pub fn joined(&self, pairs: &[(Option<Row<'_>>, Option<Row<'_>>)]) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (side, converter) in self.rows.iter().enumerate() {
            let present: Vec<Option<Row<'_>>> = pairs
                .iter()
                .map(|pair| if side == 0 { pair.0 } else { pair.1 })
                .collect();
            // Padded positions repeat a present row and are nulled below.
            let Some(any) = present.iter().flatten().next().copied() else {
                for field in self.sides[side].schema.fields() {
                    columns.push(new_null_array(field.data_type(), pairs.len()));
                }
                continue;
            };
            let decoded = converter.convert_rows(present.iter().map(|row| row.unwrap_or(any)))?;
            let validity = BooleanArray::from_iter(present.iter().map(|row| Some(row.is_some())));
            for array in decoded {
                columns.push(null_where_absent(&array, &validity)?);
            }
        }
        batch_of(&self.schema, &columns, pairs.len())
    }

    /// Which joined rows satisfy the residual condition (`None`: all of them).
    pub fn residual_mask(&self, rows: &RecordBatch) -> Result<Option<BooleanArray>> {
        let Some(residual) = &self.residual else {
            return Ok(None);
        };
        let (mask, failed) = evaluate_each(residual, rows)?;
        if !failed.is_empty()
            && let Ok(mut failures) = self.failures.lock()
        {
            failures.extend(
                failed
                    .into_iter()
                    .map(|(row, error)| RowFailure::of(rows, row, error)),
            );
        }
        let Some(mask) = mask.as_boolean_opt() else {
            return Err(EngineError::Input(
                "the join condition is not a boolean".into(),
            ));
        };
        Ok(Some(if mask.null_count() > 0 {
            prep_null_mask_filter(mask)
        } else {
            mask.clone()
        }))
    }

    /// Joined rows the residual condition failed for since the last call.
    pub fn take_failures(&self) -> Vec<RowFailure> {
        self.failures
            .lock()
            .map(|mut failures| std::mem::take(&mut *failures))
            .unwrap_or_default()
    }

    /// The pairs' joined rows, and for each pair whether it satisfies the residual condition.
    pub fn matching(
        &self,
        pairs: &[(Option<Row<'_>>, Option<Row<'_>>)],
    ) -> Result<(RecordBatch, Vec<bool>)> {
        let joined = self.joined(pairs)?;
        let passed = match self.residual_mask(&joined)? {
            Some(mask) => mask.iter().map(|m| m == Some(true)).collect(),
            None => vec![true; pairs.len()],
        };
        Ok((joined, passed))
    }
}

/// `array` with NULL wherever `validity` is false.
fn null_where_absent(array: &ArrayRef, validity: &BooleanArray) -> Result<ArrayRef> {
    if validity.true_count() == validity.len() {
        return Ok(array.clone());
    }
    let nulls = new_null_array(array.data_type(), array.len());
    Ok(zip(validity, array, &nulls)?)
}
