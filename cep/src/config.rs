//! What a `MATCH_RECOGNIZE` operator is built from: the compiled pattern, the `DEFINE`
//! conditions, the measures, and the options (`AFTER MATCH SKIP`, `ALL ROWS PER MATCH`,
//! `WITHIN`, the state TTL).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;
use sluice_engine::time::Millis;

use crate::Program;
use crate::condition::Condition;
use crate::navigation::Navigation;

/// Where the search resumes after a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    PastLastRow,
    ToNextRow,
    /// To the first row bound to the variable (the next row if there is none).
    ToFirst(usize),
    /// To the last row bound to the variable (the next row if there is none).
    ToLast(usize),
}

/// What `ALL ROWS PER MATCH` emits besides the rows of non-empty matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllRows {
    /// A row for each empty match (its measures from no rows).
    ShowEmpty,
    OmitEmpty,
    /// Empty matches, and each row no match took, with NULL measures.
    WithUnmatched,
}

pub struct MatchRecognizeConfig {
    pub program: Program,
    /// `None`: one row per match.
    pub all_rows: Option<AllRows>,
    pub partition_by: Vec<Arc<dyn PhysicalExpr>>,
    /// The input's event-time column (the first `ORDER BY` key), or with `arrival_order` its
    /// processing-time attribute.
    pub time_column: usize,
    /// `ORDER BY` a processing-time attribute: rows are matched in arrival order as they
    /// come, and the latest processing time seen stands for the watermark.
    pub arrival_order: bool,
    /// Further `ORDER BY` keys, breaking ties of time: expression and whether descending.
    pub tie_breakers: Vec<(Arc<dyn PhysicalExpr>, bool)>,
    /// Per program variable, its condition (`None`: any row).
    pub conditions: Vec<Option<Condition>>,
    pub navigations: Vec<Navigation>,
    /// The schema of the navigation values, one column per navigation.
    pub navigation_schema: SchemaRef,
    /// Over the navigation values: one per measure.
    pub measures: Vec<Arc<dyn PhysicalExpr>>,
    pub skip: Skip,
    pub within: Option<Millis>,
    pub emit_timeouts: bool,
    /// The state TTL: a partition no row has come to for this long, with no search
    /// pending, is dropped (its match count and the rows `PREV` would read go with it).
    pub idle_ttl: Option<Millis>,
    /// Whether the output has an event-time attribute (`MATCH_ROWTIME()`, or the rows of all
    /// rows per match): the watermark forwarded then waits for the matches still undecided.
    pub output_event_time: bool,
    /// The input columns the conditions and measures read, when the output has no other
    /// (one row per match): the others are kept as NULLs, to store and sort less.
    pub read_columns: Option<Vec<usize>>,
    /// The partition columns (with all rows per match, the input's columns), then the measures.
    pub schema: SchemaRef,
}

impl MatchRecognizeConfig {
    /// How a row whose condition for `variable` could not be computed is reported.
    pub fn condition_failed(&self, variable: usize, error: impl std::fmt::Display) -> String {
        let name = self
            .program
            .variables()
            .get(variable)
            .map_or("?", String::as_str);
        format!("DEFINE {name}: {error}")
    }
}
