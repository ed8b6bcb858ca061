//! The embedded engine: the streams with their in-memory history, running queries, and the
//! routing between them.
//!
//! Every stream keeps a history in memory: its rows and watermark marks in arrival order.
//! A query registered after rows have arrived replays the history of each stream it reads
//! from the beginning, interleaved in arrival order, so it sees exactly what a query
//! registered earlier saw ([`Engine::stop_retaining_history`] ends this once no more queries
//! will come). A query that inserts into a stream appends its results to that stream and,
//! through it, feeds the queries reading it; the stream's watermark is then also raised to
//! the minimum of its feeding queries' output watermarks. Everything runs on the caller's
//! thread: a call to [`Engine::append`] returns once every query has processed the rows.
//!
//! The history lives with the engine (a checkpoint saves it with the queries' state, see
//! `checkpoint`). It is not the durable log: keeping streams
//! on disk across restarts is the `sluice-log` crate's job, which the engine does not use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use crate::catalog::{Catalog, StreamDef};
use crate::graph::{NodeMetrics, QueryGraph};
use crate::snapshot::Snapshot;
use crate::time::{Millis, WATERMARK_MAX, WATERMARK_MIN, parse_duration};
use crate::watermark::WatermarkGenerator;
use crate::{Changes, EngineError, Result, RowFailure};

mod checkpoint;

/// Identifies a running query; ids grow in registration order.
pub type QueryId = u64;

#[derive(Debug, Clone)]
enum HistoryEntry {
    /// Complete rows (computed columns included).
    Rows(Changes),
    Watermark(Millis),
}

struct StreamState {
    def: Arc<StreamDef>,
    /// `(arrival sequence number, entry)`, kept while the engine retains history.
    history: Vec<(u64, HistoryEntry)>,
    /// Output watermark of each query inserting into this stream.
    producers: BTreeMap<QueryId, Millis>,
    /// Highest watermark mark appended to the stream.
    marked: Millis,
    ended: bool,
    /// The stream's current contents, for a materialized view.
    snapshot: Option<Snapshot>,
}

struct RunningQuery {
    name: String,
    graph: QueryGraph,
    /// One generator per graph source, in the graph's source order.
    watermarks: Vec<WatermarkGenerator>,
    /// Per graph source, its stream's `'idle-timeout'`.
    idle_timeouts: Vec<Option<Millis>>,
    target: Option<String>,
    results: Vec<Changes>,
    late: Vec<Changes>,
    failures: Vec<RowFailure>,
    ended: bool,
}

/// A query's name, where its results go, and what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryInfo {
    pub id: QueryId,
    pub name: String,
    pub target: Option<String>,
    pub sources: Vec<String>,
    /// The watermark its results have reached.
    pub watermark: Millis,
    /// Windows, sessions and partitions its operators hold open.
    pub open_windows: usize,
    /// Bytes of state its operators hold.
    pub state_bytes: usize,
    /// Rows sent to its late side output so far.
    pub late_rows: u64,
    /// Rows it could not compute so far (see [`crate::failure`]).
    pub failed_rows: u64,
}

pub struct Engine {
    catalog: Catalog,
    streams: BTreeMap<String, StreamState>,
    queries: BTreeMap<QueryId, RunningQuery>,
    next_query: QueryId,
    next_sequence: u64,
    retain_history: bool,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Self {
        Engine {
            catalog: Catalog::default(),
            streams: BTreeMap::new(),
            queries: BTreeMap::new(),
            next_query: 1,
            next_sequence: 0,
            retain_history: true,
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Stops keeping stream history for queries registered later, and frees what is kept.
    /// `sluice run` calls this once the script has registered all its queries.
    pub fn stop_retaining_history(&mut self) {
        self.retain_history = false;
        for stream in self.streams.values_mut() {
            stream.history = Vec::new();
        }
    }

    pub fn create_stream(&mut self, def: StreamDef) -> Result<Arc<StreamDef>> {
        let def = self.catalog.insert(def)?;
        self.streams.insert(
            def.name.clone(),
            StreamState {
                def: def.clone(),
                history: Vec::new(),
                producers: BTreeMap::new(),
                marked: WATERMARK_MIN,
                ended: false,
                snapshot: None,
            },
        );
        Ok(def)
    }

    /// Keeps the current contents of `stream` from now on (a materialized view's).
    pub fn keep_snapshot(&mut self, stream: &str) -> Result<()> {
        let state = self.stream_mut(stream)?;
        if state.snapshot.is_none() {
            state.snapshot = Some(Snapshot::new(state.def.schema.clone())?);
        }
        Ok(())
    }

    /// The current contents of `stream`, if it keeps them.
    pub fn snapshot(&self, stream: &str) -> Result<Option<RecordBatch>> {
        self.stream(stream)?
            .snapshot
            .as_ref()
            .map(Snapshot::rows)
            .transpose()
    }

    /// Drops a stream that no running query reads or writes.
    pub fn drop_stream(&mut self, name: &str) -> Result<()> {
        if !self.streams.contains_key(name) {
            return Err(EngineError::UnknownStream(name.to_string()));
        }
        if let Some(query) = self.queries.values().find(|query| {
            query.target.as_deref() == Some(name)
                || query.graph.sources().iter().any(|s| s.stream == name)
        }) {
            return Err(EngineError::InUse {
                name: name.to_string(),
                user: format!("query '{}'", query.name),
            });
        }
        self.streams.remove(name);
        self.catalog.remove(name);
        Ok(())
    }

    /// Starts `graph` as query `name`; its results also go into `target` when given.
    pub fn register_query(
        &mut self,
        name: &str,
        mut graph: QueryGraph,
        target: Option<&str>,
    ) -> Result<QueryId> {
        let mut watermarks = Vec::new();
        let mut idle_timeouts = Vec::new();
        for source in graph.sources() {
            let stream = self.stream(&source.stream)?;
            let event_time = stream
                .def
                .event_time
                .as_ref()
                .map(|e| (e.column, e.watermark.clone()));
            watermarks.push(WatermarkGenerator::new(event_time));
            let idle_timeout = match stream.def.option("idle-timeout") {
                Some(text) => Some(parse_duration(text).map_err(|e| {
                    EngineError::Input(format!("{}: option 'idle-timeout': {e}", source.stream))
                })?),
                None => None,
            };
            idle_timeouts.push(idle_timeout);
        }
        if let Some(target) = target {
            self.stream(target)?;
            let read: Vec<&str> = graph.sources().iter().map(|s| s.stream.as_str()).collect();
            if self.upstream_of(&read).contains(target) {
                return Err(EngineError::Cycle(target.to_string()));
            }
        }
        let id = self.next_query;
        self.next_query += 1;
        if let Some(target) = target
            && let Some(stream) = self.streams.get_mut(target)
        {
            stream.producers.insert(id, WATERMARK_MIN);
        }
        let replay = self.history_of(&graph);
        let mut results = Vec::new();
        graph.start(&mut results)?;
        self.queries.insert(
            id,
            RunningQuery {
                name: name.to_string(),
                graph,
                watermarks,
                idle_timeouts,
                target: target.map(str::to_string),
                results: Vec::new(),
                late: Vec::new(),
                failures: Vec::new(),
                ended: false,
            },
        );
        self.route(id, results)?;
        for (stream, entry) in replay {
            self.deliver(id, &stream, &entry)?;
        }
        Ok(id)
    }

    /// Stops a query and forgets its state; results not yet drained are dropped.
    pub fn cancel(&mut self, id: QueryId) -> Result<()> {
        let Some(query) = self.queries.remove(&id) else {
            return Ok(());
        };
        if let Some(target) = query.target {
            self.stream_mut(&target)?.producers.remove(&id);
            self.raise_to_producer_watermark(&target)?;
        }
        Ok(())
    }

    pub fn queries(&self) -> Vec<QueryInfo> {
        self.queries
            .iter()
            .map(|(id, query)| {
                let metrics = query.graph.metrics();
                QueryInfo {
                    id: *id,
                    name: query.name.clone(),
                    target: query.target.clone(),
                    sources: query
                        .graph
                        .sources()
                        .iter()
                        .map(|s| s.stream.clone())
                        .collect(),
                    watermark: query.graph.output_watermark(),
                    open_windows: metrics
                        .iter()
                        .map(|m| m.operator_metrics.open_windows)
                        .sum(),
                    state_bytes: metrics.iter().map(|m| m.operator_metrics.state_bytes).sum(),
                    late_rows: query.graph.late_rows(),
                    failed_rows: query.graph.failed_rows(),
                }
            })
            .collect()
    }

    /// Whether query `id` keeps state from one input to the next (see
    /// [`QueryGraph::keeps_state`]).
    pub fn query_keeps_state(&self, id: QueryId) -> bool {
        self.queries
            .get(&id)
            .is_some_and(|query| query.graph.keeps_state())
    }

    pub fn query_metrics(&self, id: QueryId) -> Option<Vec<NodeMetrics>> {
        self.queries.get(&id).map(|query| query.graph.metrics())
    }

    /// Appends physical rows (the stream's non-computed columns) to `stream`.
    pub fn append(&mut self, stream: &str, rows: &RecordBatch) -> Result<()> {
        self.append_changes(stream, &Changes::inserts(rows.clone()))
    }

    /// Appends changes of physical rows to `stream`; only a stream that reads changes (a
    /// table or changelog stream) takes other kinds than inserts.
    pub fn append_changes(&mut self, stream: &str, changes: &Changes) -> Result<()> {
        let state = self.stream(stream)?;
        if state.ended {
            return Err(EngineError::Input(format!("stream '{stream}' has ended")));
        }
        if changes.kinds.is_some() && !state.def.reads_changes() {
            return Err(EngineError::Input(format!(
                "stream '{stream}' is append-only (it has no PRIMARY KEY): it takes only inserts"
            )));
        }
        let complete = state.def.complete(&changes.rows)?;
        self.append_entry(stream, HistoryEntry::Rows(changes.with_rows(complete)))
    }

    /// Raises `stream`'s watermark to at least `watermark`.
    pub fn advance_watermark(&mut self, stream: &str, watermark: Millis) -> Result<()> {
        let state = self.stream_mut(stream)?;
        if watermark <= state.marked {
            return Ok(());
        }
        state.marked = watermark;
        self.append_entry(stream, HistoryEntry::Watermark(watermark))
    }

    /// Ends all input: every stream's watermark goes to `+inf`, then every query sees end of
    /// input, upstream queries before the queries reading what they produce.
    pub fn finish(&mut self) -> Result<()> {
        loop {
            let mut progressed = false;
            let ready_streams: Vec<String> = self
                .streams
                .iter()
                .filter(|(_, s)| !s.ended && s.producers.keys().all(|q| self.query_ended(*q)))
                .map(|(name, _)| name.clone())
                .collect();
            for name in ready_streams {
                self.advance_watermark(&name, WATERMARK_MAX)?;
                self.stream_mut(&name)?.ended = true;
                progressed = true;
            }
            let ready_queries: Vec<QueryId> = self
                .queries
                .iter()
                .filter(|(_, q)| {
                    !q.ended
                        && q.graph
                            .sources()
                            .iter()
                            .all(|s| self.streams.get(&s.stream).is_none_or(|st| st.ended))
                })
                .map(|(id, _)| *id)
                .collect();
            for id in ready_queries {
                self.finish_query(id)?;
                progressed = true;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Takes the results each query emitted since the last call, by query id.
    pub fn drain_results(&mut self) -> Vec<(QueryId, Vec<Changes>)> {
        self.drain(|query| &mut query.results)
    }

    /// Takes the late rows each query set aside since the last call, by query id.
    pub fn drain_late_results(&mut self) -> Vec<(QueryId, Vec<Changes>)> {
        self.drain(|query| &mut query.late)
    }

    /// Takes the rows each query could not compute since the last call, by query id.
    pub fn drain_failures(&mut self) -> Vec<(QueryId, Vec<RowFailure>)> {
        self.drain(|query| &mut query.failures)
    }

    /// Takes what `output` points to of each query that has some, by query id.
    fn drain<T>(
        &mut self,
        output: impl Fn(&mut RunningQuery) -> &mut Vec<T>,
    ) -> Vec<(QueryId, Vec<T>)> {
        self.queries
            .iter_mut()
            .filter_map(|(id, query)| {
                let taken = std::mem::take(output(query));
                (!taken.is_empty()).then_some((*id, taken))
            })
            .collect()
    }

    fn query_ended(&self, id: QueryId) -> bool {
        self.queries.get(&id).is_none_or(|query| query.ended)
    }

    fn finish_query(&mut self, id: QueryId) -> Result<()> {
        let Some(query) = self.queries.get_mut(&id) else {
            return Ok(());
        };
        let mut results = Vec::new();
        query.graph.finish(&mut results)?;
        query.ended = true;
        self.route(id, results)
    }

    fn append_entry(&mut self, stream: &str, entry: HistoryEntry) -> Result<()> {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let retain = self.retain_history;
        let state = self.stream_mut(stream)?;
        if let (Some(snapshot), HistoryEntry::Rows(changes)) = (&mut state.snapshot, &entry) {
            snapshot.apply(changes)?;
        }
        if retain {
            state.history.push((sequence, entry.clone()));
        }
        let readers: Vec<QueryId> = self
            .queries
            .iter()
            .filter(|(_, q)| q.graph.sources().iter().any(|s| s.stream == stream))
            .map(|(id, _)| *id)
            .collect();
        for id in readers {
            self.deliver(id, stream, &entry)?;
        }
        Ok(())
    }

    /// Feeds one entry of `stream` to every source of query `id` bound to it.
    fn deliver(&mut self, id: QueryId, stream: &str, entry: &HistoryEntry) -> Result<()> {
        let Some(query) = self.queries.get_mut(&id) else {
            return Ok(());
        };
        let mut results = Vec::new();
        for source in 0..query.graph.sources().len() {
            if query.graph.sources()[source].stream != stream {
                continue;
            }
            match entry {
                HistoryEntry::Rows(changes) => {
                    let segments = query.watermarks[source].segments(&changes.rows)?;
                    let whole = segments.len() == 1;
                    for segment in segments {
                        let rows = if whole {
                            changes.clone()
                        } else {
                            changes.slice(segment.offset, segment.length)
                        };
                        query.graph.push_rows(source, rows, &mut results)?;
                        if let Some(watermark) = segment.watermark {
                            query
                                .graph
                                .push_watermark(source, watermark, &mut results)?;
                            pull_idle_sources(query, &mut results)?;
                        }
                    }
                }
                HistoryEntry::Watermark(mark) => {
                    if let Some(watermark) = query.watermarks[source].advance(*mark) {
                        query
                            .graph
                            .push_watermark(source, watermark, &mut results)?;
                        pull_idle_sources(query, &mut results)?;
                    }
                }
            }
        }
        self.route(id, results)
    }

    /// Keeps a query's new results and passes them, and its watermark, to its target.
    fn route(&mut self, id: QueryId, results: Vec<Changes>) -> Result<()> {
        let Some(query) = self.queries.get_mut(&id) else {
            return Ok(());
        };
        let late = query.graph.drain_late();
        query.late.extend(late);
        let failures = query.graph.drain_failures();
        query.failures.extend(failures);
        let watermark = query.graph.output_watermark();
        let Some(target) = query.target.clone() else {
            query.results.extend(results);
            return Ok(());
        };
        query.results.extend(results.iter().cloned());
        let def = self.stream(&target)?.def.clone();
        for changes in results {
            let physical = def.physical_part(&changes.rows)?;
            let complete = def.complete(&physical)?;
            self.append_entry(&target, HistoryEntry::Rows(changes.with_rows(complete)))?;
        }
        let stream = self.stream_mut(&target)?;
        if let Some(slot) = stream.producers.get_mut(&id) {
            *slot = watermark;
        }
        self.raise_to_producer_watermark(&target)
    }

    fn raise_to_producer_watermark(&mut self, stream: &str) -> Result<()> {
        let state = self.stream(stream)?;
        match state.producers.values().copied().min() {
            Some(watermark) if watermark > state.marked => {
                self.advance_watermark(stream, watermark)
            }
            _ => Ok(()),
        }
    }

    /// The history entries a newly registered graph has to catch up on, in arrival order.
    fn history_of(&self, graph: &QueryGraph) -> Vec<(String, HistoryEntry)> {
        let streams: BTreeSet<&str> = graph.sources().iter().map(|s| s.stream.as_str()).collect();
        let mut entries: Vec<(u64, &str, &HistoryEntry)> = streams
            .iter()
            .filter_map(|name| self.streams.get(*name).map(|state| (*name, state)))
            .flat_map(|(name, state)| state.history.iter().map(move |(seq, e)| (*seq, name, e)))
            .collect();
        entries.sort_by_key(|(sequence, _, _)| *sequence);
        entries
            .into_iter()
            .map(|(_, name, entry)| (name.to_string(), entry.clone()))
            .collect()
    }

    /// Every stream whose rows can reach `streams` through inserting queries, and `streams`.
    fn upstream_of(&self, streams: &[&str]) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = streams.iter().map(|s| s.to_string()).collect();
        loop {
            let before = seen.len();
            for query in self.queries.values() {
                if query.target.as_ref().is_some_and(|t| seen.contains(t)) {
                    seen.extend(query.graph.sources().iter().map(|s| s.stream.clone()));
                }
            }
            if seen.len() == before {
                return seen;
            }
        }
    }

    fn stream(&self, name: &str) -> Result<&StreamState> {
        self.streams
            .get(name)
            .ok_or_else(|| EngineError::UnknownStream(name.to_string()))
    }

    fn stream_mut(&mut self, name: &str) -> Result<&mut StreamState> {
        self.streams
            .get_mut(name)
            .ok_or_else(|| EngineError::UnknownStream(name.to_string()))
    }
}

/// Raises the watermark of every source of `query` with an idle timeout to within that
/// timeout of the query's most advanced source, so that a source without rows does not hold
/// the query's watermark back for longer: its rows behind that watermark count as late.
fn pull_idle_sources(query: &mut RunningQuery, results: &mut Vec<Changes>) -> Result<()> {
    // At the end of input every source reaches +inf in turn; nothing is idle then.
    let Some(leading) = query
        .watermarks
        .iter()
        .map(WatermarkGenerator::current)
        .filter(|w| *w < WATERMARK_MAX)
        .max()
    else {
        return Ok(());
    };
    for source in 0..query.idle_timeouts.len() {
        let Some(timeout) = query.idle_timeouts[source] else {
            continue;
        };
        if let Some(watermark) = query.watermarks[source].advance(leading.saturating_sub(timeout)) {
            query.graph.push_watermark(source, watermark, results)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::physical_expr::expressions::Column;

    use super::*;
    use crate::catalog::{ColumnSource, EventTime};
    use crate::graph::GraphBuilder;
    use crate::operators::{Scan, Union};

    /// A stream `(id BIGINT, ts TIMESTAMP(3))` with `WATERMARK FOR ts AS ts`.
    fn stream(name: &str) -> StreamDef {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        StreamDef {
            name: name.to_string(),
            schema: schema.clone(),
            physical_schema: schema,
            layout: vec![ColumnSource::Physical(0), ColumnSource::Physical(1)],
            event_time: Some(EventTime {
                column: 1,
                watermark: Arc::new(Column::new("ts", 1)),
                watermark_sql: "ts".into(),
            }),
            primary_key: Vec::new(),
            options: Vec::new(),
            changelog: false,
        }
    }

    fn rows(def: &StreamDef, data: &[(i64, i64)]) -> RecordBatch {
        let ids = Int64Array::from_iter_values(data.iter().map(|(id, _)| *id));
        let times = TimestampMillisecondArray::from_iter_values(data.iter().map(|(_, t)| *t));
        match RecordBatch::try_new(def.schema.clone(), vec![Arc::new(ids), Arc::new(times)]) {
            Ok(batch) => batch,
            Err(error) => panic!("test rows: {error}"),
        }
    }

    fn scan_all(def: &StreamDef) -> QueryGraph {
        let mut builder = GraphBuilder::new();
        let scan = Scan::new(def.schema.clone(), None).map(Box::new);
        let Ok(scan) = scan else {
            panic!("scan");
        };
        let node = builder.add_source(&def.name, scan);
        builder.build(node)
    }

    fn ids(results: &[Changes]) -> Vec<i64> {
        results
            .iter()
            .flat_map(|c| {
                let column = c.rows.column(0).as_any().downcast_ref::<Int64Array>();
                column.map(|a| a.values().to_vec()).unwrap_or_default()
            })
            .collect()
    }

    fn output_watermark(engine: &Engine, id: QueryId) -> Millis {
        let metrics = engine.query_metrics(id).unwrap_or_default();
        metrics.last().map_or(WATERMARK_MIN, |node| node.watermark)
    }

    #[test]
    fn a_late_query_replays_the_history_and_the_watermark_is_the_running_max() -> Result<()> {
        let mut engine = Engine::new();
        let def = engine.create_stream(stream("s"))?;
        engine.append("s", &rows(&def, &[(1, 100), (2, 50)]))?;
        let id = engine.register_query("q", scan_all(&def), None)?;
        engine.append("s", &rows(&def, &[(3, 80)]))?;
        let drained = engine.drain_results();
        assert_eq!(drained.len(), 1);
        assert_eq!(ids(&drained[0].1), vec![1, 2, 3]);
        assert_eq!(output_watermark(&engine, id), 100);
        engine.advance_watermark("s", 120)?;
        assert_eq!(output_watermark(&engine, id), 120);
        Ok(())
    }

    #[test]
    fn a_union_holds_back_to_its_slowest_input() -> Result<()> {
        let mut engine = Engine::new();
        let a = engine.create_stream(stream("a"))?;
        let b = engine.create_stream(stream("b"))?;
        let mut builder = GraphBuilder::new();
        let left = builder.add_source("a", Box::new(Scan::new(a.schema.clone(), None)?));
        let right = builder.add_source("b", Box::new(Scan::new(b.schema.clone(), None)?));
        let union = builder.add(Box::new(Union::new(a.schema.clone())), &[left, right]);
        let id = engine.register_query("q", builder.build(union), None)?;
        engine.append("a", &rows(&a, &[(1, 500)]))?;
        assert_eq!(output_watermark(&engine, id), WATERMARK_MIN);
        engine.append("b", &rows(&b, &[(2, 300)]))?;
        assert_eq!(output_watermark(&engine, id), 300);
        engine.finish()?;
        assert_eq!(output_watermark(&engine, id), WATERMARK_MAX);
        Ok(())
    }

    #[test]
    fn inserts_feed_readers_and_end_upstream_first() -> Result<()> {
        let mut engine = Engine::new();
        let source = engine.create_stream(stream("source"))?;
        let mut derived = stream("derived");
        derived.event_time = None;
        let derived = engine.create_stream(derived)?;
        engine.register_query("copy", scan_all(&source), Some("derived"))?;
        let reader = engine.register_query("read", scan_all(&derived), None)?;
        engine.append("source", &rows(&source, &[(7, 1_000)]))?;
        // The derived stream declares no watermark: it inherits the copying query's.
        assert_eq!(output_watermark(&engine, reader), 1_000);
        let drained = engine.drain_results();
        let read: Vec<i64> = drained
            .iter()
            .filter(|(id, _)| *id == reader)
            .flat_map(|(_, results)| ids(results))
            .collect();
        assert_eq!(read, vec![7]);
        engine.finish()?;
        assert_eq!(output_watermark(&engine, reader), WATERMARK_MAX);
        assert!(matches!(
            engine.register_query("loop", scan_all(&derived), Some("source")),
            Err(EngineError::Cycle(name)) if name == "source"
        ));
        assert!(matches!(
            engine.drop_stream("derived"),
            Err(EngineError::InUse { user, .. }) if user == "query 'copy'"
        ));
        Ok(())
    }
}
