//! `WindowJoin`: the rows of two window table functions joined window by window,
//! `L JOIN R ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.k = R.k`,
//! inner, left, right or full outer.
//!
//! - **State**: for every window not joined yet (by `window_end`), each side's rows in
//!   arrival order.
//! - **Emits**: when the watermark reaches a window's end, its joined rows as `+I`: each left
//!   row (in arrival order) with each right row of equal keys (in arrival order) for which
//!   the residual condition holds, or, for a left or full join, the left row padded with
//!   NULLs if there is none; then, for a right or full join, the right rows that matched
//!   nothing, padded. Windows are joined in end order. Rows with a NULL key match nothing.
//! - **Watermark**: joins the windows it reaches, then drops them.
//! - **Semi and anti** (`EXISTS`/`IN`, `NOT EXISTS`, `NOT IN` between the two windows' rows):
//!   when the window closes, its left rows (in arrival order) that have a match, that have
//!   none, or (`NOT IN`) whose operand is in none of the right rows of their correlation
//!   group with SQL's NULLs (see `SemiJoin`), as `+I` of the left columns.
//! - **Late rows**: a row whose window has already been joined (or that has no window) goes
//!   to the late output, padded with NULLs to the join's columns like an unmatched row (the
//!   late output names them by their side, e.g. `l.num`), with op `late`.
//! - **End of input**: the `+inf` watermark joins every window.
//! - **Checkpoint**: the watermark, and for every window not joined yet its end and each
//!   side's rows in arrival order, with their join keys.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, UInt8Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{OwnedRow, Row};
use datafusion::physical_expr::PhysicalExpr;

use super::join::{
    JoinCodec, JoinKind, JoinSide, i64_column, saved_i64s, saved_usizes, usize_column,
};
use super::semi_join::{Correlation, Existence, Group, kept};
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::millis;
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, EngineError, Result, RowKind};

/// A buffered row: its key (`None` if NULL) and the row.
type Keyed = (Option<Box<[u8]>>, OwnedRow);

pub struct WindowJoin {
    kind: JoinKind,
    codec: JoinCodec,
    /// Each side's `window_end` column.
    window_ends: [usize; 2],
    windows: BTreeMap<Millis, [Vec<Keyed>; 2]>,
    /// The join's columns with names that tell the sides apart.
    late_schema: SchemaRef,
    watermark: Millis,
    late: Vec<Changes>,
    /// For a semi or anti join: which left rows it keeps, and the `NOT IN` groups.
    existence: Option<(Existence, Option<Correlation>)>,
}

/// One output row's halves (`None` for NULL padding).
type Pair<'a> = (Option<Row<'a>>, Option<Row<'a>>);

impl WindowJoin {
    pub fn new(
        kind: JoinKind,
        left: JoinSide,
        right: JoinSide,
        window_ends: [usize; 2],
        residual: Option<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
        late_schema: SchemaRef,
    ) -> Result<Self> {
        Ok(WindowJoin {
            late_schema,
            kind,
            codec: JoinCodec::new(left, right, residual, schema)?,
            window_ends,
            windows: BTreeMap::new(),
            watermark: WATERMARK_MIN,
            late: Vec::new(),
            existence: None,
        })
    }

    /// Makes it a semi or anti join: its output is the left rows `existence` keeps.
    pub fn keeping(mut self, existence: Existence, correlation: Option<Correlation>) -> Self {
        self.existence = Some((existence, correlation));
        self
    }

    /// The rows a semi or anti join keeps of one window: left rows by whether they matched.
    fn kept_rows(
        &self,
        existence: Existence,
        correlation: Option<&Correlation>,
        rows: &[Vec<Keyed>; 2],
        matched: &[bool],
    ) -> Result<RecordBatch> {
        let [left, right] = rows;
        let groups = |side: usize, rows: &[Keyed]| -> Result<Vec<Option<Box<[u8]>>>> {
            let Some(correlation) = correlation else {
                return Ok(vec![None; rows.len()]);
            };
            let batch = self
                .codec
                .side_batch(side, rows.iter().map(|(_, row)| row.row()))?;
            correlation.groups(side, &batch)
        };
        let mut counts: HashMap<Box<[u8]>, Group> = HashMap::new();
        for ((key, _), group) in right.iter().zip(groups(1, right)?) {
            if let Some(group) = group {
                let counts = counts.entry(group).or_default();
                counts.rows += 1;
                counts.nulls += usize::from(key.is_none());
            }
        }
        let kept_rows: Vec<Row<'_>> = left
            .iter()
            .zip(groups(0, left)?)
            .zip(matched)
            .filter(|(((key, _), group), matched)| {
                let group = group
                    .as_ref()
                    .and_then(|g| counts.get(g))
                    .copied()
                    .unwrap_or_default();
                kept(existence, usize::from(**matched), key.is_some(), group)
            })
            .map(|(((_, row), _), _)| row.row())
            .collect();
        self.codec.side_batch(0, kept_rows)
    }

    /// Joins one window's rows.
    fn join(&self, rows: &[Vec<Keyed>; 2], out: &mut Vec<Changes>) -> Result<()> {
        let [left, right] = rows;
        let mut by_key: HashMap<&[u8], Vec<usize>> = HashMap::new();
        for (index, (key, _)) in right.iter().enumerate() {
            if let Some(key) = key {
                by_key.entry(key).or_default().push(index);
            }
        }
        let mut candidates: Vec<(usize, usize)> = Vec::new();
        for (index, (key, _)) in left.iter().enumerate() {
            if let Some(partners) = key.as_deref().and_then(|key| by_key.get(key)) {
                candidates.extend(partners.iter().map(|partner| (index, *partner)));
            }
        }
        let pairs: Vec<Pair<'_>> = candidates
            .iter()
            .map(|&(l, r)| (Some(left[l].1.row()), Some(right[r].1.row())))
            .collect();
        let (_, passed) = self.codec.matching(&pairs)?;
        let mut output: Vec<Pair<'_>> = Vec::new();
        let mut right_matched = vec![false; right.len()];
        let mut left_matched = vec![false; left.len()];
        let mut next = 0;
        for (index, (_, row)) in left.iter().enumerate() {
            let mut matched = false;
            while next < candidates.len() && candidates[next].0 == index {
                if passed[next] {
                    matched = true;
                    right_matched[candidates[next].1] = true;
                    output.push(pairs[next]);
                }
                next += 1;
            }
            left_matched[index] = matched;
            if !matched && self.kind.keeps(0) {
                output.push((Some(row.row()), None));
            }
        }
        if let Some((existence, correlation)) = &self.existence {
            let kept = self.kept_rows(*existence, correlation.as_ref(), rows, &left_matched)?;
            if kept.num_rows() > 0 {
                out.push(Changes::inserts(kept));
            }
            return Ok(());
        }
        if self.kind.keeps(1) {
            output.extend(
                right
                    .iter()
                    .zip(&right_matched)
                    .filter(|(_, matched)| !**matched)
                    .map(|((_, row), _)| (None, Some(row.row()))),
            );
        }
        if !output.is_empty() {
            out.push(Changes::inserts(self.codec.joined(&output)?));
        }
        Ok(())
    }
}

impl Operator for WindowJoin {
    fn name(&self) -> &str {
        "window_join"
    }

    fn schema(&self) -> SchemaRef {
        match &self.existence {
            Some(_) => self.codec.side(0).schema.clone(),
            None => self.codec.schema().clone(),
        }
    }

    fn process(&mut self, input: usize, changes: Changes, _out: &mut Vec<Changes>) -> Result<()> {
        let side = input.min(1);
        let batch = &changes.rows;
        let keys = self.codec.keys(side, batch)?;
        let rows = self.codec.rows(side, batch)?;
        let ends = millis(batch.column(self.window_ends[side]))?;
        let mut late = Vec::new();
        for row in 0..batch.num_rows() {
            if ends.is_null(row) || ends.value(row) <= self.watermark {
                late.push(rows.row(row));
                continue;
            }
            let key = keys.valid[row].then(|| Box::from(keys.rows.row(row).data()));
            self.windows.entry(ends.value(row)).or_default()[side]
                .push((key, rows.row(row).owned()));
        }
        if !late.is_empty() {
            let pairs: Vec<Pair<'_>> = late
                .into_iter()
                .map(|row| {
                    if side == 0 {
                        (Some(row), None)
                    } else {
                        (None, Some(row))
                    }
                })
                .collect();
            let joined = self.codec.joined(&pairs)?;
            let options = RecordBatchOptions::new().with_row_count(Some(joined.num_rows()));
            let rows = RecordBatch::try_new_with_options(
                self.late_schema.clone(),
                joined.columns().to_vec(),
                &options,
            )?;
            let kinds = UInt8Array::from(vec![RowKind::Late as u8; rows.num_rows()]);
            self.late.push(Changes {
                rows,
                kinds: Some(kinds),
            });
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        let open = self.windows.split_off(&watermark.saturating_add(1));
        let closed = std::mem::replace(&mut self.windows, open);
        for rows in closed.values() {
            self.join(rows, out)?;
        }
        Ok(())
    }

    fn take_failures(&mut self) -> Vec<crate::RowFailure> {
        self.codec.take_failures()
    }

    fn screened_inputs(&self, input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.codec.side(input.min(1)).keys.clone()
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        let windows = self.windows.len();
        state.arrays(
            &[
                i64_column(self.windows.keys().copied()),
                usize_column(self.windows.values().map(|rows| rows[0].len())),
                usize_column(self.windows.values().map(|rows| rows[1].len())),
            ],
            windows,
        )?;
        for side in 0..2 {
            let rows = || self.windows.values().flat_map(|rows| &rows[side]);
            self.codec
                .save_optional_keys(rows().map(|(key, _)| key.as_deref()), state)?;
            self.codec
                .save_rows(side, rows().map(|(_, row)| row.row()), state)?;
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        let (columns, windows) = state.arrays()?;
        let ends = saved_i64s(&columns, 0, windows)?;
        let counts = [
            saved_usizes(&columns, 1, windows)?,
            saved_usizes(&columns, 2, windows)?,
        ];
        let mut loaded: BTreeMap<Millis, [Vec<Keyed>; 2]> = BTreeMap::new();
        for (side, counts) in counts.iter().enumerate() {
            let keys = self.codec.load_optional_keys(state)?;
            let rows = self.codec.load_rows(side, state)?;
            if keys.len() != rows.num_rows() || counts.iter().sum::<usize>() != rows.num_rows() {
                return Err(EngineError::Checkpoint(
                    "the saved rows of a window join do not fit its windows".into(),
                ));
            }
            let mut buffered = keys.into_iter().zip(rows.iter().map(|row| row.owned()));
            for (end, count) in ends.iter().zip(counts) {
                loaded.entry(*end).or_default()[side].extend(buffered.by_ref().take(*count));
            }
        }
        if loaded.len() != windows {
            return Err(EngineError::Checkpoint(
                "a window join saved a window twice".into(),
            ));
        }
        self.windows = loaded;
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let rows = self.windows.values().flatten().flatten();
        OperatorMetrics {
            state_bytes: rows.map(|(_, row)| row.as_ref().len() + 24).sum(),
            open_windows: self.windows.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::join::checkpoint_tests::{
        Random, Script, joined_schema, residual, restores_alike, side,
    };
    use super::*;

    #[test]
    fn a_restored_join_goes_on_as_the_original() -> Result<()> {
        let kinds = [
            JoinKind::Inner,
            JoinKind::Left,
            JoinKind::Right,
            JoinKind::Full,
        ];
        let mut mattered = 0;
        for seed in 0..50u64 {
            let mut random = Random::new(seed);
            let kind = kinds[seed as usize % 4];
            let dictionary = seed % 2 == 1;
            let condition = seed % 5 != 2;
            let build = || {
                let (left, right) = (side("l", dictionary), side("r", false));
                let schema = joined_schema(&left, &right);
                WindowJoin::new(
                    kind,
                    left,
                    right,
                    [1, 1],
                    condition.then(residual),
                    schema.clone(),
                    schema,
                )
            };
            let script = Script {
                updating: [false; 2],
                align: 10,
                steps: 40,
            };
            if restores_alike(seed, &mut random, build, &script, dictionary)? {
                mattered += 1;
            }
        }
        assert!(mattered >= 30, "the state mattered in {mattered} runs only");
        Ok(())
    }
}
