//! The rows all partitions keep, stored once per operator.
//!
//! Each admitted batch is kept whole as a chunk, and a partition holds references to its
//! rows there, so admitting a batch copies no rows however many partitions it touches. A
//! chunk is released when no reference to it is left; when most stored rows are no longer
//! referenced, the live ones are copied together into one chunk, so the store holds at most
//! about twice the live rows.

use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
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
    /// Released chunks are left empty, and their places reused.
    chunks: Vec<Chunk>,
    stored_rows: usize,
    live_rows: usize,
}

/// Below this many stored rows the store is not compacted.
const COMPACT_FLOOR: usize = 1 << 16;

impl RowStore {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        RowStore {
            schema,
            chunks: Vec::new(),
            stored_rows: 0,
            live_rows: 0,
        }
    }

    /// Stores `batch`, and returns references to its rows, none of them retained yet.
    pub(crate) fn add(&mut self, batch: RecordBatch) -> impl Fn(usize) -> RowRef + use<> {
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
            chunk.batch = RecordBatch::new_empty(self.schema.clone());
        }
    }

    /// The rows `rows` refers to, in order, as one batch.
    pub(crate) fn gather<'a>(&self, rows: impl Iterator<Item = &'a RowRef>) -> Result<RecordBatch> {
        let picks: Vec<(usize, usize)> = rows.map(|r| (r.chunk as usize, r.row as usize)).collect();
        if picks.is_empty() {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let sources: Vec<&RecordBatch> = self.chunks.iter().map(|c| &c.batch).collect();
        Ok(interleave_record_batch(&sources, &picks)?)
    }

    /// Column `column` of the chunk holding `row`, and the row's place in it.
    pub(crate) fn cell(
        &self,
        row: RowRef,
        column: usize,
    ) -> Option<(&datafusion::arrow::array::ArrayRef, usize)> {
        let chunk = self.chunks.get(row.chunk as usize)?;
        Some((chunk.batch.columns().get(column)?, row.row as usize))
    }

    /// Whether most stored rows are no longer referenced.
    pub(crate) fn wants_compaction(&self) -> bool {
        self.stored_rows > COMPACT_FLOOR && self.stored_rows > 2 * self.live_rows
    }

    /// Copies the rows `holders` refer to into one chunk, releasing every other, and points
    /// the references there.
    pub(crate) fn compact(&mut self, holders: &mut [&mut [RowRef]]) -> Result<()> {
        let live = self.gather(holders.iter().flat_map(|h| h.iter()))?;
        let count = live.num_rows();
        self.chunks.clear();
        self.stored_rows = 0;
        let at = self.add(live);
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
            state.batch(&chunk.batch)?;
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
            let batch = state.batch(&self.schema)?;
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
        let mut store = RowStore::new(batch(&[])?.schema());
        let first = store.add(batch(&[1, 2, 3])?);
        let second = store.add(batch(&[4, 5])?);
        let held = [second(1), first(0), first(2)];
        held.iter().for_each(|r| store.retain(*r));
        assert_eq!(values(&store.gather(held.iter())?), vec![5, 1, 3]);
        store.release(second(1));
        assert_eq!(store.stored_rows, 3);
        assert_eq!(values(&store.gather(held[1..].iter())?), vec![1, 3]);
        // The released place is reused.
        let third = store.add(batch(&[6])?);
        assert_eq!(third(0), second(0));
        Ok(())
    }

    #[test]
    fn compaction_keeps_what_is_referenced_in_order() -> Result<()> {
        let mut store = RowStore::new(batch(&[])?.schema());
        let first = store.add(batch(&[1, 2, 3])?);
        let second = store.add(batch(&[4, 5])?);
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
