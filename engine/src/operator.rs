//! The operator interface every streaming operator implements.
//!
//! An operator receives [`Changes`] on one or more numbered inputs, and watermarks. The
//! [`QueryGraph`](crate::QueryGraph) combines the watermarks of an operator's inputs (the
//! minimum over them) and calls [`Operator::on_watermark`] only when that combined watermark
//! advances; after the call it forwards the watermark downstream (held back by the
//! operator's [`Operator::watermark_delay`] and [`Operator::earliest_pending`]), so any rows
//! an operator emits on a watermark precede the watermark itself. End of input arrives once, after the final watermark
//! (`+inf`), when every input has ended. After each call that hands the operator rows, a
//! watermark or end of input, the graph collects its late rows ([`Operator::take_late`]).
//!
//! An operator's state lives in memory while the query runs. A checkpoint saves it between
//! two calls ([`Operator::save_state`]) and a restarted query loads it back into a freshly
//! built operator of the same plan ([`Operator::load_state`]); a query registered later
//! builds its own from the streams' history that the [`Engine`](crate::Engine) replays to it.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use crate::state::{StateReader, StateWriter};
use crate::time::Millis;
use crate::{Changes, EngineError, Result};

/// Counters every operator can report; the graph adds row counts of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// Bytes of state the operator holds (buffered rows, accumulators, ...).
    pub state_bytes: usize,
    /// Windows, sessions or partial matches currently open.
    pub open_windows: usize,
}

/// A streaming operator: batches in, batches out, driven by watermarks.
pub trait Operator: Send {
    /// A short name for plans, metrics and errors, e.g. `filter`.
    fn name(&self) -> &str;

    /// The schema of every batch this operator emits.
    fn schema(&self) -> SchemaRef;

    /// Processes a batch that arrived on input `input`, pushing any results to `out`.
    fn process(&mut self, input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()>;

    /// The combined watermark of the inputs advanced to `watermark`: emit what it makes
    /// decidable and drop state it makes unreachable.
    fn on_watermark(&mut self, _watermark: Millis, _out: &mut Vec<Changes>) -> Result<()> {
        Ok(())
    }

    /// Input `input`'s own watermark advanced to `watermark` (before any change of the
    /// combined watermark is signalled). Most operators only need the combined one.
    fn on_input_watermark(&mut self, _input: usize, _watermark: Millis) {}

    /// How far behind its input watermark the watermark this operator forwards is: rows it
    /// emits may carry event times up to this much older than the input watermark. The
    /// `+inf` watermark is forwarded as it is.
    fn watermark_delay(&self) -> Millis {
        0
    }

    /// The earliest event time a row the operator may still emit, from input it has already
    /// taken, can carry (`None`: no such bound, or the operator's rows have no event time).
    /// The forwarded watermark never passes it, so those rows are not late downstream.
    fn earliest_pending(&self) -> Option<Millis> {
        None
    }

    /// Every input has ended (after the `+inf` watermark): emit whatever remains.
    fn on_end_of_input(&mut self, _out: &mut Vec<Changes>) -> Result<()> {
        Ok(())
    }

    /// Rows that arrived too late to count, since the last call: the late side output,
    /// each row of kind [`crate::RowKind::Late`]. The graph reports them as the query's late
    /// rows unless another node reports the same rows ([`crate::GraphBuilder::ignore_late`]).
    fn take_late(&mut self) -> Vec<Changes> {
        Vec::new()
    }

    /// The expressions the operator evaluates over each row of input `input` before it
    /// changes any state (grouping keys, aggregate arguments, join keys). The graph leaves
    /// out the rows one of them fails for and reports them (see [`crate::failure::screen`]).
    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        Vec::new()
    }

    /// Rows the operator could not compute since the last call (see [`crate::failure`]):
    /// left out of its output, reported on the query's error output.
    fn take_failures(&mut self) -> Vec<crate::RowFailure> {
        Vec::new()
    }

    /// Whether the operator keeps anything from one call to the next (rows, accumulators, a
    /// watermark): its state then depends on all the input it has seen, and a checkpoint
    /// saves it. One that keeps nothing says so here and need not save or load anything.
    fn keeps_state(&self) -> bool {
        true
    }

    /// Writes everything the operator would need to go on exactly as it would have, had it
    /// never stopped: what it buffers, accumulates and has emitted that it may take back.
    /// Called only for an operator that [keeps state](Operator::keeps_state), and between two calls
    /// that hand it rows or watermarks, after its late rows and failures were taken.
    fn save_state(&mut self, _state: &mut StateWriter) -> Result<()> {
        Err(not_checkpointable(self.name()))
    }

    /// Reads what [`Operator::save_state`] wrote, into an operator just built from the same
    /// plan that has seen nothing yet.
    fn load_state(&mut self, _state: &mut StateReader) -> Result<()> {
        Err(not_checkpointable(self.name()))
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }

    /// What `EXPLAIN` shows of the operator besides its name (e.g. a compiled pattern).
    fn explain(&self) -> String {
        String::new()
    }
}

/// The error of an operator that cannot save or load its state.
fn not_checkpointable(operator: &str) -> EngineError {
    EngineError::Checkpoint(format!(
        "operator '{operator}' cannot save its state in a checkpoint"
    ))
}
