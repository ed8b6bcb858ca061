//! The encoding of operator state in a checkpoint.
//!
//! An operator writes its state with a [`StateWriter`] as a sequence of values (integers,
//! strings, scalars, Arrow arrays) and reads it back with a [`StateReader`] in the same order.
//! Every value starts with a tag naming its type, so a reader expecting something else stops
//! with an error saying what it expected and what it found, instead of misreading the bytes.
//! Arrays travel as Arrow IPC streams, the encoding the durable log uses, with their buffers
//! LZ4-compressed; many values of the same kind are best written as one array rather than one
//! by one.
//!
//! Integers are little-endian. Lengths are `u64`. The encoding carries no version of its own:
//! the checkpoint file around it does (see [`crate::checkpoint`]).

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt8Array};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::ScalarValue;

use crate::{Changes, EngineError, Result};

/// The checkpoint format whose state this encoding writes today: the checkpoint file around
/// the state carries it, and readers of older formats migrate what changed since.
pub const FORMAT: u32 = 2;

/// How arrays are encoded: Arrow IPC with LZ4-compressed buffers (readers take compressed
/// and uncompressed ones alike).
fn compressed() -> IpcWriteOptions {
    IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Tag {
    U64 = 1,
    I64 = 2,
    Bool = 3,
    Bytes = 4,
    Arrays = 5,
    Label = 6,
}

impl Tag {
    fn from_u8(value: u8) -> Option<Tag> {
        [
            Tag::U64,
            Tag::I64,
            Tag::Bool,
            Tag::Bytes,
            Tag::Arrays,
            Tag::Label,
        ]
        .into_iter()
        .find(|tag| *tag as u8 == value)
    }
}

/// Writes state values in order.
#[derive(Debug, Default)]
pub struct StateWriter {
    buffer: Vec<u8>,
}

impl StateWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buffer
    }

    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// A marker the reader checks with [`StateReader::label`]: it names the part of the state
    /// that follows, so a mismatch is reported where it starts.
    pub fn label(&mut self, name: &str) {
        self.buffer.push(Tag::Label as u8);
        self.raw_bytes(name.as_bytes());
    }

    pub fn u64(&mut self, value: u64) {
        self.buffer.push(Tag::U64 as u8);
        self.buffer.extend_from_slice(&value.to_le_bytes());
    }

    pub fn usize(&mut self, value: usize) {
        self.u64(value as u64);
    }

    pub fn i64(&mut self, value: i64) {
        self.buffer.push(Tag::I64 as u8);
        self.buffer.extend_from_slice(&value.to_le_bytes());
    }

    pub fn bool(&mut self, value: bool) {
        self.buffer.push(Tag::Bool as u8);
        self.buffer.push(u8::from(value));
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.buffer.push(Tag::Bytes as u8);
        self.raw_bytes(value);
    }

    pub fn string(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// Columns of equal length (`rows` of them, which may be none).
    pub fn arrays(&mut self, arrays: &[ArrayRef], rows: usize) -> Result<()> {
        self.buffer.push(Tag::Arrays as u8);
        self.buffer.extend_from_slice(&(rows as u64).to_le_bytes());
        self.buffer
            .extend_from_slice(&(arrays.len() as u64).to_le_bytes());
        if arrays.is_empty() {
            return Ok(());
        }
        let fields: Vec<Field> = arrays
            .iter()
            .enumerate()
            .map(|(index, array)| Field::new(format!("c{index}"), array.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays.to_vec())?;
        // Encoded in place after its length, which is filled in once known.
        let length_at = self.buffer.len();
        self.buffer.extend_from_slice(&0u64.to_le_bytes());
        let mut writer =
            StreamWriter::try_new_with_options(&mut self.buffer, &batch.schema(), compressed())?;
        writer.write(&batch)?;
        writer.finish()?;
        drop(writer);
        let length = (self.buffer.len() - length_at - 8) as u64;
        self.buffer[length_at..length_at + 8].copy_from_slice(&length.to_le_bytes());
        Ok(())
    }

    /// The columns of `batch` (its schema is the reader's to supply).
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<()> {
        self.arrays(batch.columns(), batch.num_rows())
    }

    /// Rows with their change kinds.
    pub fn changes(&mut self, changes: &Changes) -> Result<()> {
        self.batch(&changes.rows)?;
        match &changes.kinds {
            Some(kinds) => {
                self.bool(true);
                self.arrays(&[Arc::new(kinds.clone()) as ArrayRef], kinds.len())
            }
            None => {
                self.bool(false);
                Ok(())
            }
        }
    }

    /// Values of any types, one column of one row each.
    pub fn scalars(&mut self, values: &[ScalarValue]) -> Result<()> {
        let arrays = values
            .iter()
            .map(|value| value.to_array_of_size(1))
            .collect::<Result<Vec<_>, _>>()?;
        self.arrays(&arrays, 1)
    }

    fn raw_bytes(&mut self, value: &[u8]) {
        self.buffer
            .extend_from_slice(&(value.len() as u64).to_le_bytes());
        self.buffer.extend_from_slice(value);
    }
}

/// Reads state values in the order a [`StateWriter`] wrote them.
pub struct StateReader<'a> {
    bytes: &'a [u8],
    position: usize,
    /// The checkpoint format the bytes were written in.
    format: u32,
}

impl<'a> StateReader<'a> {
    /// A reader of state written in today's checkpoint format.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self::of_format(bytes, FORMAT)
    }

    /// A reader of state written in checkpoint format `format`, for readers that migrate.
    pub fn of_format(bytes: &'a [u8], format: u32) -> Self {
        StateReader {
            bytes,
            position: 0,
            format,
        }
    }

    /// The checkpoint format the state was written in.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Whether every value has been read.
    pub fn is_at_end(&self) -> bool {
        self.position == self.bytes.len()
    }

    /// Reads a marker written by [`StateWriter::label`] and checks that it is `name`.
    pub fn label(&mut self, name: &str) -> Result<()> {
        self.tag(Tag::Label)?;
        let found = self.raw_bytes()?;
        if found != name.as_bytes() {
            return Err(self.damaged(format!(
                "expected the state of '{name}', found '{}'",
                String::from_utf8_lossy(found)
            )));
        }
        Ok(())
    }

    pub fn u64(&mut self) -> Result<u64> {
        self.tag(Tag::U64)?;
        Ok(u64::from_le_bytes(self.fixed()?))
    }

    pub fn usize(&mut self) -> Result<usize> {
        let value = self.u64()?;
        usize::try_from(value).map_err(|_| self.damaged(format!("{value} is too large")))
    }

    pub fn i64(&mut self) -> Result<i64> {
        self.tag(Tag::I64)?;
        Ok(i64::from_le_bytes(self.fixed()?))
    }

    pub fn bool(&mut self) -> Result<bool> {
        self.tag(Tag::Bool)?;
        let [byte] = self.fixed()?;
        match byte {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.damaged(format!("{other} is not a boolean"))),
        }
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        self.tag(Tag::Bytes)?;
        self.raw_bytes()
    }

    pub fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.damaged("a string is not UTF-8".into()))
    }

    /// Columns written by [`StateWriter::arrays`], and their number of rows.
    pub fn arrays(&mut self) -> Result<(Vec<ArrayRef>, usize)> {
        self.tag(Tag::Arrays)?;
        let rows = u64::from_le_bytes(self.fixed()?);
        let rows = usize::try_from(rows).map_err(|_| self.damaged("too many rows".into()))?;
        let columns = u64::from_le_bytes(self.fixed()?);
        if columns == 0 {
            return Ok((Vec::new(), rows));
        }
        let encoded = self.raw_bytes()?;
        let mut reader = StreamReader::try_new(Cursor::new(encoded), None)?;
        let batch = match reader.next() {
            Some(batch) => batch?,
            None => return Err(self.damaged("columns without a batch".into())),
        };
        if batch.num_columns() as u64 != columns || batch.num_rows() != rows {
            return Err(self.damaged(format!(
                "expected {columns} columns of {rows} rows, found {} of {}",
                batch.num_columns(),
                batch.num_rows()
            )));
        }
        Ok((batch.columns().to_vec(), rows))
    }

    /// A batch of `schema` written by [`StateWriter::batch`].
    pub fn batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let (columns, rows) = self.arrays()?;
        if columns.len() != schema.fields().len() {
            return Err(self.damaged(format!(
                "expected {} columns, found {}",
                schema.fields().len(),
                columns.len()
            )));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Changes of `schema` written by [`StateWriter::changes`].
    pub fn changes(&mut self, schema: &SchemaRef) -> Result<Changes> {
        let rows = self.batch(schema)?;
        let kinds = if self.bool()? {
            let (columns, _) = self.arrays()?;
            let kinds = columns
                .first()
                .and_then(|column| column.as_any().downcast_ref::<UInt8Array>())
                .ok_or_else(|| self.damaged("change kinds are not bytes".into()))?;
            Some(kinds.clone())
        } else {
            None
        };
        Ok(Changes { rows, kinds })
    }

    /// Values written by [`StateWriter::scalars`].
    pub fn scalars(&mut self) -> Result<Vec<ScalarValue>> {
        let (columns, _) = self.arrays()?;
        columns
            .iter()
            .map(|column| Ok(ScalarValue::try_from_array(column, 0)?))
            .collect()
    }

    fn tag(&mut self, expected: Tag) -> Result<()> {
        let [byte] = self.fixed()?;
        match Tag::from_u8(byte) {
            Some(tag) if tag == expected => Ok(()),
            Some(tag) => {
                self.position -= 1;
                Err(self.damaged(format!("expected {expected:?}, found {tag:?}")))
            }
            None => {
                self.position -= 1;
                Err(self.damaged(format!("{byte} is not a value tag")))
            }
        }
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.position + N;
        let Some(slice) = self.bytes.get(self.position..end) else {
            return Err(self.damaged("the state ends early".into()));
        };
        self.position = end;
        let mut value = [0; N];
        value.copy_from_slice(slice);
        Ok(value)
    }

    fn raw_bytes(&mut self) -> Result<&'a [u8]> {
        let length = u64::from_le_bytes(self.fixed()?);
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| self.position.checked_add(length))
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.damaged(format!("a length of {length} runs past the end")));
        };
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn damaged(&self, reason: String) -> EngineError {
        EngineError::Corrupt {
            file: "checkpoint state".into(),
            position: self.position as u64,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn values_come_back_in_order() -> Result<()> {
        let mut writer = StateWriter::new();
        writer.label("window");
        writer.u64(7);
        writer.i64(-3);
        writer.bool(true);
        writer.string("abc");
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let texts: ArrayRef = Arc::new(StringArray::from(vec!["x", "y"]));
        writer.arrays(&[ints.clone(), texts.clone()], 2)?;
        writer.arrays(&[], 5)?;
        writer.scalars(&[ScalarValue::Int32(Some(4)), ScalarValue::Utf8(None)])?;
        let bytes = writer.into_bytes();

        let mut reader = StateReader::new(&bytes);
        reader.label("window")?;
        assert_eq!(reader.u64()?, 7);
        assert_eq!(reader.i64()?, -3);
        assert!(reader.bool()?);
        assert_eq!(reader.string()?, "abc");
        let (columns, rows) = reader.arrays()?;
        assert_eq!(rows, 2);
        assert_eq!(&columns[0], &ints);
        assert_eq!(&columns[1], &texts);
        assert_eq!(reader.arrays()?, (Vec::new(), 5));
        assert_eq!(
            reader.scalars()?,
            vec![ScalarValue::Int32(Some(4)), ScalarValue::Utf8(None)]
        );
        assert!(reader.is_at_end());
        Ok(())
    }

    #[test]
    fn a_value_of_another_type_is_an_error_not_a_misreading() {
        let mut writer = StateWriter::new();
        writer.i64(1);
        let bytes = writer.into_bytes();
        let error = StateReader::new(&bytes).u64().err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("checkpoint state is damaged at byte 0: expected U64, found I64")
        );
    }

    #[test]
    fn truncated_state_is_an_error() {
        let mut writer = StateWriter::new();
        writer.string("abcdef");
        let bytes = writer.into_bytes();
        let error = StateReader::new(&bytes[..bytes.len() - 2])
            .string()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("checkpoint state is damaged at byte 9: a length of 6 runs past the end")
        );
    }
}
