//! Batches of changes: Arrow rows, each with the kind of change it is.

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, UInt8Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::{cast, filter};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::Result;

/// What a result row means to the reader of a changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert = 0,
    /// `-U`: the previous version of an updated row (a retraction).
    UpdateBefore = 1,
    /// `+U`: the new version of an updated row.
    UpdateAfter = 2,
    /// `-D`: a deleted row.
    Delete = 3,
    /// `late`: a row that arrived after the watermark closed everything it belonged to
    /// (the late side output).
    Late = 4,
    /// `expired`: a row of an outer join's side that found no match before it expired,
    /// padded with NULLs for the other side.
    Expired = 5,
    /// `timeout`: a partial pattern match that its `WITHIN` bound cut off, with the
    /// measures computable from the rows it had matched.
    Timeout = 6,
}

impl RowKind {
    /// The short code written in the `op` column.
    pub fn code(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
            RowKind::Late => "late",
            RowKind::Expired => "expired",
            RowKind::Timeout => "timeout",
        }
    }

    /// The kind stored as `value`, if it is one.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(RowKind::Insert),
            1 => Some(RowKind::UpdateBefore),
            2 => Some(RowKind::UpdateAfter),
            3 => Some(RowKind::Delete),
            4 => Some(RowKind::Late),
            5 => Some(RowKind::Expired),
            6 => Some(RowKind::Timeout),
            _ => None,
        }
    }

    /// The kind written as `code` (`+I`, `-U`, `+U`, `-D`).
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::Insert,
            Self::UpdateBefore,
            Self::UpdateAfter,
            Self::Delete,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }
}

/// A batch of rows flowing between operators, with the kind of each row.
///
/// `kinds` is `None` when every row is an insert, which is what append-only streams carry;
/// updating operators attach a `UInt8Array` of [`RowKind`] values, one per row.
#[derive(Debug, Clone)]
pub struct Changes {
    pub rows: RecordBatch,
    pub kinds: Option<UInt8Array>,
}

impl Changes {
    /// Rows that are all inserts.
    pub fn inserts(rows: RecordBatch) -> Self {
        Changes { rows, kinds: None }
    }

    /// `rows`, each of kind [`RowKind::Late`].
    pub fn late(rows: RecordBatch) -> Self {
        let kinds = UInt8Array::from(vec![RowKind::Late as u8; rows.num_rows()]);
        Changes {
            rows,
            kinds: Some(kinds),
        }
    }

    pub fn num_rows(&self) -> usize {
        self.rows.num_rows()
    }

    /// The kind of row `index`.
    pub fn kind(&self, index: usize) -> RowKind {
        self.kinds
            .as_ref()
            .and_then(|kinds| RowKind::from_u8(kinds.value(index)))
            .unwrap_or(RowKind::Insert)
    }

    /// Keeps the rows where `mask` is true, with their kinds.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Self> {
        let rows = filter_record_batch(&self.rows, mask)?;
        let kinds = match &self.kinds {
            Some(kinds) => {
                let kept = filter(kinds, mask)?;
                kept.as_any().downcast_ref::<UInt8Array>().cloned()
            }
            None => None,
        };
        Ok(Changes { rows, kinds })
    }

    /// The rows where `late` is true, each of kind [`RowKind::Late`]; `None` if there are none.
    pub fn late_rows(&self, late: &[bool]) -> Result<Option<Self>> {
        if !late.iter().any(|l| *l) {
            return Ok(None);
        }
        let rows = self.filter(&BooleanArray::from(late.to_vec()))?.rows;
        Ok(Some(Changes::late(rows)))
    }

    /// The same kinds attached to other rows of equal length (e.g. after a projection).
    pub fn with_rows(&self, rows: RecordBatch) -> Self {
        Changes {
            rows,
            kinds: self.kinds.clone(),
        }
    }

    /// `parts` (of one schema, at least one) as one batch, in order.
    pub fn concat(parts: &[Changes]) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(crate::EngineError::Input("nothing to concatenate".into()));
        };
        if parts.len() == 1 {
            return Ok(first.clone());
        }
        let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.rows).collect();
        let rows = datafusion::arrow::compute::concat_batches(&first.rows.schema(), batches)?;
        let kinds = if parts.iter().all(|p| p.kinds.is_none()) {
            None
        } else {
            let mut kinds = Vec::with_capacity(rows.num_rows());
            for part in parts {
                kinds.extend((0..part.num_rows()).map(|i| part.kind(i) as u8));
            }
            Some(UInt8Array::from(kinds))
        };
        Ok(Changes { rows, kinds })
    }

    /// Rows `offset..offset + length`.
    pub fn slice(&self, offset: usize, length: usize) -> Self {
        Changes {
            rows: self.rows.slice(offset, length),
            kinds: self.kinds.as_ref().map(|kinds| kinds.slice(offset, length)),
        }
    }
}

/// A batch of `schema` from `columns` of `rows` rows, each cast to its field's type
/// (aggregate and padded columns come in the types that produced them).
pub fn batch_of(schema: &SchemaRef, columns: &[ArrayRef], rows: usize) -> Result<RecordBatch> {
    let columns = columns
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| cast(array, field.data_type()))
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}
