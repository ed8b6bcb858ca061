//! The rows all partitions keep, stored once per operator.
//!
//! Each admitted batch is kept whole as a chunk, and a partition holds references to its
//! rows there, so admitting a batch copies no rows however many partitions it touches. A
//! chunk is released when no reference to it is left; when most stored rows are no longer
//! referenced, the live ones are copied together into one chunk, so the store holds at most
//! about twice the live rows. A store may keep only some columns: the others read back as
//! NULLs (and are written so in a checkpoint, which keeps every column).

use std::sync::Arc;

use datafusion::arrow::array::new_null_array;
use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use sluice_engine::Result;
use sluice_engine::state::{StateReader, StateWriter};

/// A row in the store: its chunk and its place there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowRef {
    chunk: u32,
    row: u32,
}

impl RowRef {
    /// The chunk and the row in it, as a checkpoint saves them.
    pub(crate) fn parts(self) -> (u32, u32) {
        (self.chunk, self.row)
    }
}

struct Chunk {
    batch: RecordBatch,
    /// How many references to its rows there are.
    live: usize,
}

pub(crate) struct RowStore {
    schema: SchemaRef,
    /// The columns kept, when not all are; chunks hold only these.
    kept: Option<Vec<usize>>,
    /// Per column of `schema`, its place among the kept ones.
    place: Vec<Option<usize>>,
    /// Released chunks are left empty, and their places reused.
    chunks: Vec<Chunk>,
    stored_rows: usize,
    live_rows: usize,
}

/// Below this many stored rows the store is not compacted.
const COMPACT_FLOOR: usize = 1 << 16;

impl RowStore {
    /// A store of rows of `schema` that keeps the columns `kept` (all when `None`).
    pub(crate) fn new(schema: SchemaRef, kept: Option<Vec<usize>>) -> Self {
        let place = (0..schema.fields().len())
            .map(|column| match &kept {
                Some(kept) => kept.iter().position(|k| *k == column),
                None => Some(column),
            })
            .collect();
        RowStore {
            schema,
            kept,
            place,
            chunks: Vec::new(),
            stored_rows: 0,
            live_rows: 0,
        }
    }

    /// Whether the store keeps column `column` (the others read back as NULLs).
    pub(crate) fn keeps(&self, column: usize) -> bool {
        self.place.get(column).is_some_and(Option::is_some)
    }

    /// `batch` (of the full schema) cut to the kept columns.
    fn narrow(&self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(match &self.kept {
            Some(kept) => batch.project(kept)?,
            None => batch,
        })
    }

    /// A batch of the kept columns with the others as NULLs.
    fn widen(&self, narrow: RecordBatch) -> Result<RecordBatch> {
        if self.kept.is_none() {
            return Ok(narrow);
        }
        let rows = narrow.num_rows();
        let columns = self
            .schema
            .fields()
            .iter()
            .zip(&self.place)
            .map(|(field, place)| match place {
                Some(place) => Arc::clone(narrow.column(*place)),
                None => new_null_array(field.data_type(), rows),
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Stores `batch`, and returns references to its rows, none of them retained yet.
    pub(crate) fn add(&mut self, batch: RecordBatch) -> Result<impl Fn(usize) -> RowRef + use<>> {
        let batch = self.narrow(batch)?;
        Ok(self.add_narrow(batch))
    }

    /// Stores `batch`, already cut to the kept columns.
    fn add_narrow(&mut self, batch: RecordBatch) -> impl Fn(usize) -> RowRef + use<> {
        self.stored_rows += batch.num_rows();
        let chunk = Chunk { batch, live: 0 };
        let place = match self.chunks.iter().position(|c| c.batch.num_rows() == 0) {
            Some(place) => {
                self.chunks[place] = chunk;
                place
            }
            None => {
                self.chunks.push(chunk);
                self.chunks.len() - 1
            }
        };
        move |row| RowRef {
            chunk: place as u32,
            row: row as u32,
        }
    }

    /// Counts a new reference to `row`.
    pub(crate) fn retain(&mut self, row: RowRef) {
        self.chunks[row.chunk as usize].live += 1;
        self.live_rows += 1;
    }

    /// Drops a reference to `row`, releasing its chunk when it was the last.
    pub(crate) fn release(&mut self, row: RowRef) {
        let chunk = &mut self.chunks[row.chunk as usize];
        chunk.live -= 1;
        self.live_rows -= 1;
        if chunk.live == 0 {
            self.stored_rows -= chunk.batch.num_rows();
            chunk.batch = RecordBatch::new_empty(chunk.batch.schema());
        }
    }

    /// The rows `rows` refers to, in order, as one batch.
    pub(crate) fn gather<'a>(&self, rows: impl Iterator<Item = &'a RowRef>) -> Result<RecordBatch> {
        match self.gather_narrow(rows)? {
            Some(narrow) => self.widen(narrow),
            None => Ok(RecordBatch::new_empty(self.schema.clone())),
        }
    }

    /// The rows `rows` refer to, of the kept columns (`None` for no rows).
    fn gather_narrow<'a>(
        &self,
        rows: impl Iterator<Item = &'a RowRef>,
    ) -> Result<Option<RecordBatch>> {
        let picks: Vec<(usize, usize)> = rows.map(|r| (r.chunk as usize, r.row as usize)).collect();
        if picks.is_empty() {
            return Ok(None);
        }
        let sources: Vec<&RecordBatch> = self.chunks.iter().map(|c| &c.batch).collect();
        Ok(Some(interleave_record_batch(&sources, &picks)?))
    }

    /// Column `column` of the chunk holding `row`, and the row's place in it.
    pub(crate) fn cell(
        &self,
        row: RowRef,
        column: usize,
    ) -> Option<(&datafusion::arrow::array::ArrayRef, usize)> {
        let chunk = self.chunks.get(row.chunk as usize)?;
        let place = (*self.place.get(column)?)?;
        Some((chunk.batch.columns().get(place)?, row.row as usize))
    }

    /// Whether most stored rows are no longer referenced.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.stored_rows > COMPACT_FLOOR && self.stored_rows > 2 * self.live_rows
    }

    /// Copies the rows `holders` refer to into one chunk, releasing every other, and points
    /// the references there.
    pub(crate) fn compact(&mut self, holders: &mut [&mut [RowRef]]) -> Result<()> {
        let Some(live) = self.gather_narrow(holders.iter().flat_map(|h| h.iter()))? else {
            self.chunks.clear();
            self.stored_rows = 0;
            self.live_rows = 0;
            return Ok(());
        };
        let count = live.num_rows();
        self.chunks.clear();
        self.stored_rows = 0;
        let at = self.add_narrow(live);
        for (next, row) in holders.iter_mut().flat_map(|h| h.iter_mut()).enumerate() {
            *row = at(next);
        }
        if let Some(chunk) = self.chunks.first_mut() {
            chunk.live = count;
        }
        self.live_rows = count;
        Ok(())
    }

    /// The row `row` of chunk `chunk`, if the store has it (a reference read from a
    /// checkpoint).
    pub(crate) fn row_ref(&self, chunk: u32, row: u32) -> Option<RowRef> {
        let stored = self.chunks.get(chunk as usize)?;
        ((row as usize) < stored.batch.num_rows()).then_some(RowRef { chunk, row })
    }

    /// Writes the chunks as they are (released ones empty), in place order: references
    /// stay valid. The counts of references are not written; [`RowStore::load_state`]
    /// leaves them at zero for the references to be retained again.
    pub(crate) fn save_state(&self, state: &mut StateWriter) -> Result<()> {
        state.usize(self.chunks.len());
        for chunk in &self.chunks {
            state.batch(&self.widen(chunk.batch.clone())?)?;
        }
        Ok(())
    }

    /// Reads what [`RowStore::save_state`] wrote into an empty store.
    pub(crate) fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let chunks = state.usize()?;
        self.chunks.clear();
        self.stored_rows = 0;
        self.live_rows = 0;
        for _ in 0..chunks {
            let batch = self.narrow(state.batch(&self.schema)?)?;
            self.stored_rows += batch.num_rows();
            self.chunks.push(Chunk { batch, live: 0 });
        }
        Ok(())
    }

    /// The bytes the stored batches take.
    pub(crate) fn memory(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.batch.get_array_memory_size())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn batch(values: &[i64]) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        Ok(RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(values.to_vec()))],
        )?)
    }

    fn values(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn gathers_rows_across_chunks_and_releases_unreferenced_ones() -> Result<()> {
        let mut store = RowStore::new(batch(&[])?.schema(), None);
        let first = store.add(batch(&[1, 2, 3])?)?;
        let second = store.add(batch(&[4, 5])?)?;
        let held = [second(1), first(0), first(2)];
        held.iter().for_each(|r| store.retain(*r));
        assert_eq!(values(&store.gather(held.iter())?), vec![5, 1, 3]);
        store.release(second(1));
        assert_eq!(store.stored_rows, 3);
        assert_eq!(values(&store.gather(held[1..].iter())?), vec![1, 3]);
        // The released place is reused.
        let third = store.add(batch(&[6])?)?;
        assert_eq!(third(0), second(0));
        Ok(())
    }

    #[test]
    fn compaction_keeps_what_is_referenced_in_order() -> Result<()> {
        let mut store = RowStore::new(batch(&[])?.schema(), None);
        let first = store.add(batch(&[1, 2, 3])?)?;
        let second = store.add(batch(&[4, 5])?)?;
        let mut a = [first(2), second(0)];
        let mut b = vec![first(0)];
        a.iter().chain(&b).for_each(|r| store.retain(*r));
        store.compact(&mut [&mut a[..], &mut b[..]])?;
        assert_eq!(values(&store.gather(a.iter())?), vec![3, 4]);
        assert_eq!(values(&store.gather(b.iter())?), vec![1]);
        assert_eq!((store.stored_rows, store.live_rows), (3, 3));
        store.release(a[0]);
        assert_eq!(store.live_rows, 2);
        Ok(())
    }
}
