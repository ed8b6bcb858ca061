//! Saving and loading the engine's state: what a checkpoint holds of the streams and of
//! every running query.
//!
//! The engine saves, for each stream, its watermark, whether it ended, its producers'
//! watermarks, a materialized view's current contents and the history kept for queries
//! registered later; for each query, its plan (to recognise it), its sources' watermarks and
//! its graph's state. Loading goes into an engine where the same statements created the same
//! streams and registered the same queries, before any input: the state replaces what they
//! hold. A query whose plan differs from the one saved is refused, naming the first
//! difference.

use crate::state::{StateReader, StateWriter};
use crate::{EngineError, Result};

use super::{Engine, HistoryEntry, QueryId};

impl Engine {
    /// Writes the state of every stream and query; gives the bytes of each query's part.
    /// Every query's results, late rows and failures must have been drained.
    pub fn save_state(&mut self, state: &mut StateWriter) -> Result<Vec<(QueryId, usize)>> {
        let mut sizes = Vec::new();
        state.label("engine");
        state.u64(self.next_sequence);
        state.u64(self.next_query);
        state.usize(self.streams.len());
        for (name, stream) in &self.streams {
            state.string(name);
            state.i64(stream.marked);
            state.bool(stream.ended);
            state.usize(stream.producers.len());
            for (query, watermark) in &stream.producers {
                state.u64(*query);
                state.i64(*watermark);
            }
            match &stream.snapshot {
                Some(snapshot) => {
                    state.bool(true);
                    state.batch(&snapshot.rows()?)?;
                }
                None => state.bool(false),
            }
            state.usize(stream.history.len());
            for (sequence, entry) in &stream.history {
                state.u64(*sequence);
                match entry {
                    HistoryEntry::Rows(changes) => {
                        state.bool(true);
                        state.changes(changes)?;
                    }
                    HistoryEntry::Watermark(watermark) => {
                        state.bool(false);
                        state.i64(*watermark);
                    }
                }
            }
        }
        state.usize(self.queries.len());
        for (id, query) in &mut self.queries {
            if !query.results.is_empty() || !query.late.is_empty() || !query.failures.is_empty() {
                return Err(EngineError::Checkpoint(format!(
                    "query '{}' has output that was not drained before the checkpoint",
                    query.name
                )));
            }
            state.u64(*id);
            state.string(&query.name);
            state.string(&query.graph.plan_description());
            let mut part = StateWriter::new();
            part.bool(query.ended);
            for generator in &query.watermarks {
                part.i64(generator.current());
            }
            query.graph.save_state(&mut part)?;
            sizes.push((*id, part.len()));
            state.bytes(&part.into_bytes());
        }
        Ok(sizes)
    }

    /// Reads what [`Engine::save_state`] wrote into an engine that has the same streams and
    /// queries and has seen no input. Results the queries emitted when they were registered
    /// (constant inputs) are dropped: the saved state already accounts for them. Gives the
    /// running queries whose state was left out, each with why: the checkpoint has none, its
    /// plan changed, or its state did not load (such a query may be partly loaded: stop it).
    /// Queries of the checkpoint that are not running are passed over.
    pub fn load_state(&mut self, state: &mut StateReader) -> Result<Vec<(QueryId, String)>> {
        state.label("engine")?;
        self.next_sequence = state.u64()?;
        let next_query = state.u64()?;
        if next_query != self.next_query {
            return Err(EngineError::Checkpoint(format!(
                "the checkpoint was taken after {} queries were registered, not {}",
                next_query - 1,
                self.next_query - 1
            )));
        }
        let streams = state.usize()?;
        if streams != self.streams.len() {
            return Err(EngineError::Checkpoint(format!(
                "the checkpoint has {streams} streams, the catalog {}",
                self.streams.len()
            )));
        }
        for _ in 0..streams {
            let name = state.string()?;
            let stream = self.streams.get_mut(&name).ok_or_else(|| {
                EngineError::Checkpoint(format!("stream '{name}' of the checkpoint is unknown"))
            })?;
            stream.marked = state.i64()?;
            stream.ended = state.bool()?;
            let producers = state.usize()?;
            for _ in 0..producers {
                let query = state.u64()?;
                let watermark = state.i64()?;
                stream.producers.insert(query, watermark);
            }
            if state.bool()? {
                let rows = state.batch(&stream.def.schema)?;
                let mut snapshot = crate::snapshot::Snapshot::new(stream.def.schema.clone())?;
                snapshot.apply(&crate::Changes::inserts(rows))?;
                stream.snapshot = Some(snapshot);
            }
            let entries = state.usize()?;
            stream.history.clear();
            for _ in 0..entries {
                let sequence = state.u64()?;
                let entry = if state.bool()? {
                    HistoryEntry::Rows(state.changes(&stream.def.schema)?)
                } else {
                    HistoryEntry::Watermark(state.i64()?)
                };
                stream.history.push((sequence, entry));
            }
        }
        let queries = state.usize()?;
        let mut left_out = Vec::new();
        let mut loaded = std::collections::BTreeSet::new();
        for _ in 0..queries {
            let id: QueryId = state.u64()?;
            let name = state.string()?;
            let plan = state.string()?;
            let part = state.bytes()?;
            // A query the checkpoint has and that is not running (any more) is passed over.
            let Some(query) = self.queries.get_mut(&id) else {
                continue;
            };
            if query.name != name {
                return Err(EngineError::Checkpoint(format!(
                    "the checkpoint's query {id} is '{name}', the running one '{}'",
                    query.name
                )));
            }
            loaded.insert(id);
            query.results.clear();
            query.late.clear();
            query.failures.clear();
            let saved = crate::checkpoint::migrate_plan(&plan, state.format());
            let outcome = check_plan(&name, &saved, &query.graph.plan_description())
                .and_then(|()| load_query(query, part));
            if let Err(error) = outcome {
                left_out.push((id, error.to_string()));
            }
        }
        for (id, query) in &self.queries {
            if !loaded.contains(id) {
                left_out.push((
                    *id,
                    format!("the checkpoint has no state of query '{}'", query.name),
                ));
            }
        }
        Ok(left_out)
    }
}

/// Loads one query's part of the state.
fn load_query(query: &mut super::RunningQuery, part: &[u8]) -> Result<()> {
    let mut state = StateReader::new(part);
    query.ended = state.bool()?;
    for generator in &mut query.watermarks {
        generator.advance(state.i64()?);
    }
    query.graph.load_state(&mut state)?;
    if !state.is_at_end() {
        return Err(EngineError::Checkpoint(format!(
            "query '{}' has more state than its operators read",
            query.name
        )));
    }
    Ok(())
}

/// Refuses state saved for another plan of query `name`, saying where the plans part.
fn check_plan(name: &str, saved: &str, current: &str) -> Result<()> {
    if saved == current {
        return Ok(());
    }
    let mut saved_lines = saved.lines();
    let mut current_lines = current.lines();
    loop {
        match (saved_lines.next(), current_lines.next()) {
            (Some(before), Some(now)) if before == now => continue,
            (before, now) => {
                return Err(EngineError::Checkpoint(format!(
                    "the plan of query '{name}' changed since the checkpoint: it was\n  {}\nand is now\n  {}",
                    before.unwrap_or("(no more operators)"),
                    now.unwrap_or("(no more operators)")
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::catalog::{ColumnSource, StreamDef};
    use crate::graph::{GraphBuilder, QueryGraph};
    use crate::operators::{Scan, Union};

    fn stream(name: &str) -> StreamDef {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        StreamDef {
            name: name.to_string(),
            schema: schema.clone(),
            physical_schema: schema,
            layout: vec![ColumnSource::Physical(0)],
            event_time: None,
            primary_key: Vec::new(),
            options: Vec::new(),
            changelog: false,
        }
    }

    fn scan(def: &StreamDef) -> Result<QueryGraph> {
        let mut builder = GraphBuilder::new();
        let node = builder.add_source(&def.name, Box::new(Scan::new(def.schema.clone(), None)?));
        Ok(builder.build(node))
    }

    fn scan_twice(def: &StreamDef) -> Result<QueryGraph> {
        let mut builder = GraphBuilder::new();
        let left = builder.add_source(&def.name, Box::new(Scan::new(def.schema.clone(), None)?));
        let right = builder.add_source(&def.name, Box::new(Scan::new(def.schema.clone(), None)?));
        let union = builder.add(Box::new(Union::new(def.schema.clone())), &[left, right]);
        Ok(builder.build(union))
    }

    #[test]
    fn a_query_whose_plan_changed_is_left_out_naming_the_change() -> Result<()> {
        let mut engine = Engine::new();
        let def = engine.create_stream(stream("s"))?;
        engine.register_query("kept", scan(&def)?, None)?;
        engine.register_query("changed", scan(&def)?, None)?;
        let mut state = StateWriter::new();
        engine.save_state(&mut state)?;
        let bytes = state.into_bytes();

        let mut later = Engine::new();
        let def = later.create_stream(stream("s"))?;
        later.register_query("kept", scan(&def)?, None)?;
        let changed = later.register_query("changed", scan_twice(&def)?, None)?;
        let left_out = later.load_state(&mut StateReader::new(&bytes))?;
        assert_eq!(
            left_out,
            vec![(
                changed,
                "checkpoint: the plan of query 'changed' changed since the checkpoint: it was\n  \
                 (no more operators)\nand is now\n  1: scan <- [] (id Int64) "
                    .to_string()
            )]
        );
        Ok(())
    }
}
