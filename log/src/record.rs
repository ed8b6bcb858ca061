//! One record of a partition's log: a batch of rows, framed so damage is detected.
//!
//! On disk a record is its payload's length (`u32`), the payload's CRC-32 (`u32`), then the
//! payload: the first row's offset (`u64`), the row count (`u32`), the time it was appended
//! (milliseconds since the epoch, `i64`), then the rows as an Arrow IPC stream. All
//! integers are little-endian. A record that is one part of a publish spread over several
//! partitions says how many parts the publish has in its schema's metadata
//! ([`PARTS_KEY`]), so that a publish cut short by a crash can be found and cut off whole
//! (see `StreamLog::open`); the rows read back without it.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::{LogError, Result};

/// The bytes before the payload: its length and CRC.
pub const FRAME_BYTES: usize = 8;
/// The payload's fixed fields before the rows.
const HEADER_BYTES: usize = 20;
/// The schema metadata key under which a record of a publish over several partitions
/// holds the publish's part count.
pub const PARTS_KEY: &str = "sluice.publish.parts";
/// The largest payload a record may have.
pub const MAX_PAYLOAD_BYTES: usize = 256 << 20;

/// A record's fixed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub offset: u64,
    pub count: u32,
    pub append_time: i64,
}

/// The framed bytes of a record holding `rows`, one of the `parts` records of a publish.
pub fn encode(rows: &RecordBatch, offset: u64, append_time: i64, parts: usize) -> Result<Vec<u8>> {
    let count = u32::try_from(rows.num_rows())
        .map_err(|_| LogError::Invalid("a batch may hold at most 2^32 rows".into()))?;
    let mut bytes = vec![0u8; FRAME_BYTES];
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend_from_slice(&append_time.to_le_bytes());
    let mut schema = rows.schema().as_ref().clone();
    if parts > 1 {
        schema.metadata.insert(PARTS_KEY.into(), parts.to_string());
    }
    let mut writer = StreamWriter::try_new(&mut bytes, &schema)?;
    writer.write(rows)?;
    writer.finish()?;
    drop(writer);
    let payload = bytes.len() - FRAME_BYTES;
    if payload > MAX_PAYLOAD_BYTES {
        return Err(LogError::Invalid(format!(
            "a batch of {payload} bytes is over the log's limit of {MAX_PAYLOAD_BYTES}"
        )));
    }
    let crc = crc32fast::hash(&bytes[FRAME_BYTES..]);
    bytes[0..4].copy_from_slice(&(payload as u32).to_le_bytes());
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// The payload length and CRC of a frame.
pub fn frame(bytes: &[u8; FRAME_BYTES]) -> (usize, u32) {
    let [a, b, c, d, e, f, g, h] = *bytes;
    (
        u32::from_le_bytes([a, b, c, d]) as usize,
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// Whether `payload` is what the frame's CRC says.
pub fn intact(payload: &[u8], crc: u32) -> bool {
    payload.len() >= HEADER_BYTES && crc32fast::hash(payload) == crc
}

/// The fixed fields of an intact payload.
pub fn header(payload: &[u8]) -> RecordHeader {
    let field = |at: usize, len: usize| -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..len].copy_from_slice(&payload[at..at + len]);
        out
    };
    RecordHeader {
        offset: u64::from_le_bytes(field(0, 8)),
        count: u64::from_le_bytes(field(8, 4)) as u32,
        append_time: i64::from_le_bytes(field(12, 8)),
    }
}

/// The rows of an intact payload.
pub fn rows(payload: &[u8]) -> Result<RecordBatch> {
    let reader = StreamReader::try_new(Cursor::new(&payload[HEADER_BYTES..]), None)?;
    let mut batches = reader.collect::<Result<Vec<_>, _>>()?;
    let rows = match (batches.pop(), batches.is_empty()) {
        (Some(rows), true) => rows,
        _ => {
            return Err(LogError::Invalid(
                "a log record does not hold exactly one batch".into(),
            ));
        }
    };
    if !rows.schema().metadata().contains_key(PARTS_KEY) {
        return Ok(rows);
    }
    let mut metadata: HashMap<String, String> = rows.schema().metadata().clone();
    metadata.remove(PARTS_KEY);
    let schema = Arc::new(Schema::new_with_metadata(
        rows.schema().fields().clone(),
        metadata,
    ));
    let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema,
        rows.columns().to_vec(),
        &options,
    )?)
}

/// How many parts the publish of an intact payload's record has (1 for a publish to one
/// partition).
pub fn parts(payload: &[u8]) -> Result<usize> {
    let reader = StreamReader::try_new(Cursor::new(&payload[HEADER_BYTES..]), None)?;
    Ok(reader
        .schema()
        .metadata()
        .get(PARTS_KEY)
        .and_then(|parts| parts.parse().ok())
        .unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_record_reads_back_and_any_flipped_bit_is_detected() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )?;
        let bytes = encode(&rows, 42, 1_700_000_000_000, 3)?;
        let mut framing = [0u8; FRAME_BYTES];
        framing.copy_from_slice(&bytes[..FRAME_BYTES]);
        let (len, crc) = frame(&framing);
        let payload = &bytes[FRAME_BYTES..];
        assert_eq!(len, payload.len());
        assert!(intact(payload, crc));
        assert_eq!(
            header(payload),
            RecordHeader {
                offset: 42,
                count: 2,
                append_time: 1_700_000_000_000
            }
        );
        assert_eq!(super::rows(payload)?, rows);
        assert_eq!(parts(payload)?, 3);
        for at in [0, 13, payload.len() / 2, payload.len() - 1] {
            let mut damaged = payload.to_vec();
            damaged[at] ^= 0x10;
            assert!(!intact(&damaged, crc), "a flipped bit at {at} went unseen");
        }
        Ok(())
    }
}
