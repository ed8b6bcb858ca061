//! A query as a graph of operators, and the push-based loop that drives it.
//!
//! Nodes are operators; edges carry batches from a node's output to a numbered input of
//! another. Source nodes receive the rows of a stream; the output node's results are what the
//! query emits. Batches are pushed depth-first as they arrive, so a stateless query emits
//! results for a batch before the call that delivered it returns. Each node keeps the
//! watermark of every input and advances its own to their minimum.

use datafusion::arrow::datatypes::SchemaRef;

use crate::failure::{RowFailure, screen};
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::{Millis, WATERMARK_MAX, WATERMARK_MIN};
use crate::{Changes, EngineError, Result};

/// Index of a node in its graph.
pub type NodeId = usize;

struct Node {
    operator: Box<dyn Operator>,
    downstream: Vec<(NodeId, usize)>,
    input_watermarks: Vec<Millis>,
    inputs_ended: Vec<bool>,
    watermark: Millis,
    rows_in: u64,
    rows_out: u64,
    /// Whether its late rows go to the late side output (another node may report them).
    reports_late: bool,
    /// Input rows its screened inputs failed for, since the last run.
    failures: Vec<RowFailure>,
}

/// A source of the graph: rows of `stream` enter at `node`.
#[derive(Debug, Clone)]
pub struct SourceBinding {
    pub stream: String,
    pub node: NodeId,
}

/// Metrics of one node, for stats and `EXPLAIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMetrics {
    pub operator: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub watermark: Millis,
    pub operator_metrics: OperatorMetrics,
}

/// Assembles a [`QueryGraph`] node by node.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<Node>,
    sources: Vec<SourceBinding>,
    constants: Vec<(NodeId, Changes)>,
    late_schema: Option<SchemaRef>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `operator` as the entry point of `stream`'s rows.
    pub fn add_source(&mut self, stream: &str, operator: Box<dyn Operator>) -> NodeId {
        let node = self.push_node(operator, 1);
        self.sources.push(SourceBinding {
            stream: stream.to_string(),
            node,
        });
        node
    }

    /// Adds `operator` fed once with `rows` when the query starts (e.g. `VALUES`), after
    /// which that input ends.
    pub fn add_constant(&mut self, operator: Box<dyn Operator>, rows: Changes) -> NodeId {
        let node = self.push_node(operator, 1);
        self.constants.push((node, rows));
        node
    }

    /// Adds `operator` fed by `inputs`, in order: input `i` of the operator is `inputs[i]`.
    pub fn add(&mut self, operator: Box<dyn Operator>, inputs: &[NodeId]) -> NodeId {
        let node = self.push_node(operator, inputs.len());
        for (port, &input) in inputs.iter().enumerate() {
            self.nodes[input].downstream.push((node, port));
        }
        node
    }

    pub fn schema(&self, node: NodeId) -> SchemaRef {
        self.nodes[node].operator.schema()
    }

    /// Discards `node`'s late rows: another node sees the same rows and reports them.
    pub fn ignore_late(&mut self, node: NodeId) {
        self.nodes[node].reports_late = false;
    }

    /// Whether an operator of the query already has the late side output.
    pub fn has_late_schema(&self) -> bool {
        self.late_schema.is_some()
    }

    /// Declares the schema of the query's late side output (the rows a late-aware
    /// operator sets aside); a query has at most one.
    pub fn set_late_schema(&mut self, schema: SchemaRef) -> Result<()> {
        if self.late_schema.is_some() {
            return Err(EngineError::Input(
                "a query can have only one operator with a late side output".into(),
            ));
        }
        self.late_schema = Some(schema);
        Ok(())
    }

    /// Finishes the graph; `output`'s results are the query's results.
    pub fn build(self, output: NodeId) -> QueryGraph {
        QueryGraph {
            nodes: self.nodes,
            sources: self.sources,
            constants: self.constants,
            output,
            output_watermark: WATERMARK_MIN,
            late_schema: self.late_schema,
            late: Vec::new(),
            late_rows: 0,
            failures: Vec::new(),
            failed_rows: 0,
        }
    }

    fn push_node(&mut self, operator: Box<dyn Operator>, inputs: usize) -> NodeId {
        self.nodes.push(Node {
            operator,
            downstream: Vec::new(),
            reports_late: true,
            failures: Vec::new(),
            input_watermarks: vec![WATERMARK_MIN; inputs],
            inputs_ended: vec![false; inputs],
            watermark: WATERMARK_MIN,
            rows_in: 0,
            rows_out: 0,
        });
        self.nodes.len() - 1
    }
}

/// A compiled, running query.
pub struct QueryGraph {
    nodes: Vec<Node>,
    sources: Vec<SourceBinding>,
    constants: Vec<(NodeId, Changes)>,
    output: NodeId,
    output_watermark: Millis,
    late_schema: Option<SchemaRef>,
    late: Vec<Changes>,
    late_rows: u64,
    failures: Vec<RowFailure>,
    failed_rows: u64,
}

/// One unit of work travelling along an edge.
enum Signal {
    Rows(Changes),
    Watermark(Millis),
    End,
}

impl QueryGraph {
    pub fn sources(&self) -> &[SourceBinding] {
        &self.sources
    }

    pub fn schema(&self) -> SchemaRef {
        self.nodes[self.output].operator.schema()
    }

    /// The schema of the late side output, if the query has one.
    pub fn late_schema(&self) -> Option<SchemaRef> {
        self.late_schema.clone()
    }

    /// Late rows set aside since the last call.
    pub fn drain_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    /// Rows the query could not compute since the last call.
    pub fn drain_failures(&mut self) -> Vec<RowFailure> {
        std::mem::take(&mut self.failures)
    }

    /// Rows the query could not compute since it started.
    pub fn failed_rows(&self) -> u64 {
        self.failed_rows
    }

    /// Late rows set aside since the query started.
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    /// The watermark the query's results have reached.
    pub fn output_watermark(&self) -> Millis {
        self.output_watermark
    }

    /// Whether the query reads no stream, so [`QueryGraph::start`] computes all of it.
    pub fn is_bounded(&self) -> bool {
        self.sources.is_empty()
    }

    /// Emits the constant inputs (`VALUES`) and ends them; call once, before any other push.
    pub fn start(&mut self, results: &mut Vec<Changes>) -> Result<()> {
        for (node, rows) in std::mem::take(&mut self.constants) {
            self.run(node, 0, Signal::Rows(rows), results)?;
            self.run(node, 0, Signal::Watermark(WATERMARK_MAX), results)?;
            self.run(node, 0, Signal::End, results)?;
        }
        Ok(())
    }

    /// Pushes rows into source `source`; the query's results are appended to `results`.
    pub fn push_rows(
        &mut self,
        source: usize,
        changes: Changes,
        results: &mut Vec<Changes>,
    ) -> Result<()> {
        let node = self.sources[source].node;
        self.run(node, 0, Signal::Rows(changes), results)
    }

    /// Advances the watermark of source `source`.
    pub fn push_watermark(
        &mut self,
        source: usize,
        watermark: Millis,
        results: &mut Vec<Changes>,
    ) -> Result<()> {
        let node = self.sources[source].node;
        self.run(node, 0, Signal::Watermark(watermark), results)
    }

    /// Ends every source: the `+inf` watermark, then end of input.
    pub fn finish(&mut self, results: &mut Vec<Changes>) -> Result<()> {
        for source in 0..self.sources.len() {
            let node = self.sources[source].node;
            self.run(node, 0, Signal::Watermark(WATERMARK_MAX), results)?;
            self.run(node, 0, Signal::End, results)?;
        }
        Ok(())
    }

    /// Whether an operator of the query keeps state between calls (see
    /// [`Operator::keeps_state`]).
    pub fn keeps_state(&self) -> bool {
        self.nodes.iter().any(|node| node.operator.keeps_state())
    }

    /// The plan, one line per node: its operator, the nodes feeding it, its output columns
    /// and what the operator says of itself. A checkpoint records it to recognise the query
    /// its state belongs to.
    pub fn plan_description(&self) -> String {
        let mut text = String::new();
        for (index, (name, inputs, details)) in self.explain().into_iter().enumerate() {
            let schema = self.nodes[index].operator.schema();
            let columns: Vec<String> = schema
                .fields()
                .iter()
                .map(|field| format!("{} {}", field.name(), field.data_type()))
                .collect();
            text.push_str(&format!(
                "{index}: {name} <- {inputs:?} ({}) {details}\n",
                columns.join(", ")
            ));
        }
        text
    }

    /// Writes the state of every node: watermarks, counters and operator state. Late rows and
    /// failures must have been drained.
    pub fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        if !self.late.is_empty() || !self.failures.is_empty() {
            return Err(EngineError::Checkpoint(
                "late rows or failures were not drained before the checkpoint".into(),
            ));
        }
        state.label("graph");
        state.usize(self.nodes.len());
        for node in &mut self.nodes {
            state.label(node.operator.name());
            state.i64(node.watermark);
            for watermark in &node.input_watermarks {
                state.i64(*watermark);
            }
            for ended in &node.inputs_ended {
                state.bool(*ended);
            }
            state.u64(node.rows_in);
            state.u64(node.rows_out);
            // An operator that keeps nothing between calls has nothing to save.
            if node.operator.keeps_state() {
                node.operator.save_state(state)?;
            }
        }
        state.i64(self.output_watermark);
        state.u64(self.late_rows);
        state.u64(self.failed_rows);
        Ok(())
    }

    /// Reads what [`QueryGraph::save_state`] wrote into a graph of the same plan that has
    /// seen no input.
    pub fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        state.label("graph")?;
        let nodes = state.usize()?;
        if nodes != self.nodes.len() {
            return Err(EngineError::Checkpoint(format!(
                "the checkpoint has {nodes} operators, the query {}",
                self.nodes.len()
            )));
        }
        for node in &mut self.nodes {
            state.label(node.operator.name())?;
            node.watermark = state.i64()?;
            for watermark in &mut node.input_watermarks {
                *watermark = state.i64()?;
            }
            for ended in &mut node.inputs_ended {
                *ended = state.bool()?;
            }
            node.rows_in = state.u64()?;
            node.rows_out = state.u64()?;
            if node.operator.keeps_state() {
                node.operator.load_state(state)?;
            }
        }
        self.output_watermark = state.i64()?;
        self.late_rows = state.u64()?;
        self.failed_rows = state.u64()?;
        Ok(())
    }

    /// Per-node metrics, in node order (sources first).
    /// Each node, in order: its operator's name, the nodes feeding it, and what the operator
    /// says of itself.
    pub fn explain(&self) -> Vec<(String, Vec<NodeId>, String)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let inputs = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, other)| other.downstream.iter().any(|(to, _)| *to == index))
                    .map(|(from, _)| from)
                    .collect();
                (
                    node.operator.name().to_string(),
                    inputs,
                    node.operator.explain(),
                )
            })
            .collect()
    }

    pub fn metrics(&self) -> Vec<NodeMetrics> {
        self.nodes
            .iter()
            .map(|node| NodeMetrics {
                operator: node.operator.name().to_string(),
                rows_in: node.rows_in,
                rows_out: node.rows_out,
                watermark: node.watermark,
                operator_metrics: node.operator.metrics(),
            })
            .collect()
    }

    fn run(
        &mut self,
        node: NodeId,
        port: usize,
        signal: Signal,
        results: &mut Vec<Changes>,
    ) -> Result<()> {
        let mut pending = vec![(node, port, signal)];
        let mut emitted = Vec::new();
        while let Some((id, port, signal)) = pending.pop() {
            let forward = self.deliver(id, port, signal, &mut emitted)?;
            let node = &mut self.nodes[id];
            for late in node.operator.take_late() {
                if node.reports_late {
                    self.late_rows += late.num_rows() as u64;
                    self.late.push(late);
                }
            }
            let mut failures = std::mem::take(&mut node.failures);
            failures.extend(node.operator.take_failures());
            self.failed_rows += failures.len() as u64;
            self.failures.extend(failures);
            node.rows_out += emitted.iter().map(|c| c.num_rows() as u64).sum::<u64>();
            // Later signals are pushed first so that the stack pops them in emission order.
            let mut outgoing: Vec<Signal> = emitted.drain(..).map(Signal::Rows).collect();
            outgoing.extend(forward);
            if id == self.output {
                for signal in outgoing {
                    match signal {
                        Signal::Rows(changes) => results.push(changes),
                        Signal::Watermark(watermark) => self.output_watermark = watermark,
                        Signal::End => {}
                    }
                }
                continue;
            }
            let downstream = node.downstream.clone();
            for signal in outgoing.into_iter().rev() {
                for &(next, next_port) in downstream.iter().rev() {
                    pending.push((next, next_port, signal.clone_for_fanout()));
                }
            }
        }
        Ok(())
    }

    /// Hands `signal` to a node; returns the watermark or end signal to forward, if any.
    /// DataFusion errors raised inside the operator are tagged with the operator's name.
    fn deliver(
        &mut self,
        id: NodeId,
        port: usize,
        signal: Signal,
        emitted: &mut Vec<Changes>,
    ) -> Result<Option<Signal>> {
        let node = &mut self.nodes[id];
        node.receive(port, signal, emitted)
            .map_err(|error| match error {
                EngineError::DataFusion(source) => EngineError::Operator {
                    operator: node.operator.name().to_string(),
                    source,
                },
                other => other,
            })
    }
}

impl Node {
    fn receive(
        &mut self,
        port: usize,
        signal: Signal,
        emitted: &mut Vec<Changes>,
    ) -> Result<Option<Signal>> {
        match signal {
            Signal::Rows(changes) => {
                self.rows_in += changes.num_rows() as u64;
                let screened = self.operator.screened_inputs(port);
                let (changes, failed) = screen(&screened, changes)?;
                self.failures.extend(failed);
                self.operator.process(port, changes, emitted)?;
                Ok(None)
            }
            Signal::Watermark(watermark) => {
                let slot = &mut self.input_watermarks[port];
                *slot = (*slot).max(watermark);
                self.operator.on_input_watermark(port, *slot);
                let combined = self
                    .input_watermarks
                    .iter()
                    .copied()
                    .min()
                    .unwrap_or(watermark);
                if combined <= self.watermark {
                    return Ok(None);
                }
                self.watermark = combined;
                self.operator.on_watermark(combined, emitted)?;
                let forwarded = if combined == WATERMARK_MAX {
                    combined
                } else {
                    let delayed = combined.saturating_sub(self.operator.watermark_delay());
                    self.operator
                        .earliest_pending()
                        .map_or(delayed, |pending| delayed.min(pending))
                };
                Ok(Some(Signal::Watermark(forwarded)))
            }
            Signal::End => {
                self.inputs_ended[port] = true;
                if !self.inputs_ended.iter().all(|ended| *ended) {
                    return Ok(None);
                }
                self.operator.on_end_of_input(emitted)?;
                Ok(Some(Signal::End))
            }
        }
    }
}

impl Signal {
    /// Copies a signal for one more downstream edge (batches share their buffers).
    fn clone_for_fanout(&self) -> Signal {
        match self {
            Signal::Rows(changes) => Signal::Rows(changes.clone()),
            Signal::Watermark(watermark) => Signal::Watermark(*watermark),
            Signal::End => Signal::End,
        }
    }
}
