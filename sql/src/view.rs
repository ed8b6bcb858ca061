//! A view as the session keeps it: its SQL, its logical plan (inlined wherever the view is
//! read), the streams and views it reads, and its query hints.

use std::collections::BTreeSet;

use datafusion::logical_expr::LogicalPlan;

use crate::hints::QueryHints;

/// A view: a named query, inlined wherever it is read.
#[derive(Debug, Clone)]
pub struct View {
    pub name: String,
    pub sql: String,
    pub plan: LogicalPlan,
    /// The streams and views its query reads.
    pub dependencies: BTreeSet<String>,
    /// Views inlined one in another to plan it, itself included: 1 when it reads streams
    /// only (at most [`sluice_engine::limits::MAX_VIEW_DEPTH`]).
    pub depth: usize,
    /// Options its query's hints set.
    pub hints: QueryHints,
}
