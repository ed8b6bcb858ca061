//! The sluice runtime.
//!
//! This crate owns time and data movement: the catalog of streams, the [`Engine`] that keeps
//! each stream's history in memory (replayed to queries registered late), watermark
//! generation, the [`Operator`] interface with its operators, the query graph that pushes
//! Arrow batches and watermarks through them, input decoding (CSV, JSON lines, Debezium
//! change events) and result formatting. It knows nothing about SQL text: the `sluice-sql`
//! crate plans statements with DataFusion and builds [`QueryGraph`]s out of the operators
//! here. Nor does it keep anything on disk: the durable log of streams is the `sluice-log`
//! crate.

pub mod aggregate;
pub mod catalog;
pub mod changes;
pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod failure;
pub mod graph;
pub mod input;
pub mod limits;
pub mod operator;
pub mod operators;
pub mod output;
pub mod retract;
mod sessions;
pub mod snapshot;
pub mod state;
pub mod time;
pub mod types;
pub mod watermark;
pub mod window;

pub use aggregate::{AggregateCall, GroupedAggregates};
pub use catalog::{Catalog, ComputedColumn, EventTime, StreamDef};
pub use changes::{Changes, RowKind};
pub use engine::{Engine, QueryId};
pub use error::{EngineError, Result};
pub use failure::RowFailure;
pub use graph::{GraphBuilder, NodeId, QueryGraph};
pub use operator::{Operator, OperatorMetrics};
