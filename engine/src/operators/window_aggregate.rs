//! `WindowAggregate`: `GROUP BY window_start, window_end [, keys]` over windowed rows.
//!
//! - **State**: for every open window (by `window_end`), its grouping keys and one DataFusion
//!   groups accumulator per aggregate call.
//! - **Emits**: when the watermark reaches a window's end, one `+I` row per group of that
//!   window, windows in end order and groups in the order they were first seen.
//! - **Watermark**: fires the windows it reaches; a window's state is dropped once the
//!   watermark passes `window_end + allowed lateness`.
//! - **Late rows**: with allowed lateness, a row for a fired window that is still kept
//!   updates it and the window re-emits each changed group as `-U` (the row emitted before)
//!   then `+U` (the corrected row), or `+I` for a group new to the window; a row whose window
//!   is gone (or that has no window) goes to the late side output with op `late`, as the
//!   operator received it (the columns the query reads, and the window's bounds).
//! - **End of input**: the `+inf` watermark before it has fired and dropped every window.
//! - **Checkpoint**: the watermark, and per kept window its bounds, its groups' keys and
//!   accumulator states, and the rows it emitted when it fired.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt8Array, UInt32Array};
use datafusion::arrow::compute::{interleave_record_batch, take};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use crate::aggregate::{AggregateCall, GroupedAggregates, inputs_of};
use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::millis;
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, Result, RowKind};

/// Where each grouping column of the output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupColumn {
    WindowStart,
    WindowEnd,
    Key(usize),
}

/// One window's state.
struct Window {
    start: ScalarValue,
    end: ScalarValue,
    groups: GroupedAggregates,
    /// The rows emitted when the window fired, while it is kept for allowed lateness.
    emitted: Option<RecordBatch>,
    /// Groups changed by late rows since the window fired.
    dirty: BTreeSet<usize>,
}

pub struct WindowAggregate {
    group_by: Vec<Arc<dyn PhysicalExpr>>,
    layout: Vec<GroupColumn>,
    window_start: usize,
    window_end: usize,
    key_schema: SchemaRef,
    calls: Vec<AggregateCall>,
    /// Group columns, then one column per aggregate call.
    schema: SchemaRef,
    allowed_lateness: Millis,
    windows: BTreeMap<Millis, Window>,
    watermark: Millis,
    late: Vec<Changes>,
}

impl WindowAggregate {
    /// `group_by` are the grouping expressions in output order; `window_start` and
    /// `window_end` say which of them are the window's bounds.
    pub fn new(
        group_by: Vec<Arc<dyn PhysicalExpr>>,
        window_start: usize,
        window_end: usize,
        calls: Vec<AggregateCall>,
        schema: SchemaRef,
        allowed_lateness: Millis,
    ) -> Result<Self> {
        let mut key_fields: Vec<FieldRef> = Vec::new();
        let layout = (0..group_by.len())
            .map(|column| {
                if column == window_start {
                    GroupColumn::WindowStart
                } else if column == window_end {
                    GroupColumn::WindowEnd
                } else {
                    key_fields.push(schema.fields()[column].clone());
                    GroupColumn::Key(key_fields.len() - 1)
                }
            })
            .collect();
        Ok(WindowAggregate {
            group_by,
            layout,
            window_start,
            window_end,
            key_schema: Arc::new(Schema::new(key_fields)),
            calls,
            schema,
            allowed_lateness: allowed_lateness.max(0),
            windows: BTreeMap::new(),
            watermark: WATERMARK_MIN,
            late: Vec::new(),
        })
    }

    /// The current result of every group of `window`.
    fn results(&self, window: &mut Window) -> Result<RecordBatch> {
        let fresh = GroupedAggregates::new(&self.key_schema, &self.calls)?;
        let rows = window.groups.len();
        let (keys, values) = if self.allowed_lateness > 0 {
            window.groups.evaluate_keeping_state()?
        } else {
            std::mem::replace(&mut window.groups, fresh).finish()?
        };
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for column in &self.layout {
            columns.push(match column {
                GroupColumn::WindowStart => window.start.to_array_of_size(rows)?,
                GroupColumn::WindowEnd => window.end.to_array_of_size(rows)?,
                GroupColumn::Key(key) => keys[*key].clone(),
            });
        }
        columns.extend(values);
        batch_of(&self.schema, &columns, rows)
    }

    /// Emits a fired window's first result.
    fn fire(&self, window: &mut Window, out: &mut Vec<Changes>) -> Result<()> {
        let rows = self.results(window)?;
        if rows.num_rows() > 0 {
            out.push(Changes::inserts(rows.clone()));
        }
        window.emitted = Some(rows);
        window.dirty.clear();
        Ok(())
    }

    /// Re-emits the groups of a fired window that late rows changed.
    fn refire(&self, window: &mut Window, out: &mut Vec<Changes>) -> Result<()> {
        // A window that fired empty gets its first rows late.
        let before = window
            .emitted
            .take()
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        let after = self.results(window)?;
        let mut picks = Vec::new();
        let mut kinds = Vec::new();
        for &group in &window.dirty {
            if group < before.num_rows() {
                picks.push((0, group));
                kinds.push(RowKind::UpdateBefore as u8);
                picks.push((1, group));
                kinds.push(RowKind::UpdateAfter as u8);
            } else {
                picks.push((1, group));
                kinds.push(RowKind::Insert as u8);
            }
        }
        if !picks.is_empty() {
            let rows = interleave_record_batch(&[&before, &after], &picks)?;
            out.push(Changes {
                rows,
                kinds: Some(UInt8Array::from(kinds)),
            });
        }
        window.emitted = Some(after);
        window.dirty.clear();
        Ok(())
    }
}

impl Operator for WindowAggregate {
    fn name(&self) -> &str {
        "window_aggregate"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let batch = &changes.rows;
        let rows = batch.num_rows();
        let columns = self
            .group_by
            .iter()
            .map(|expression| expression.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let ends = millis(&columns[self.window_end])?;
        let retained_after = self.watermark.saturating_sub(self.allowed_lateness);

        // Rows by window, and the rows no kept window can take.
        let mut by_window: BTreeMap<Millis, Vec<u32>> = BTreeMap::new();
        let mut late = vec![false; rows];
        let mut any_late = false;
        for (row, is_late) in late.iter_mut().enumerate() {
            let end = ends.value(row);
            if ends.is_null(row) || end <= retained_after {
                *is_late = true;
                any_late = true;
            } else {
                by_window.entry(end).or_default().push(row as u32);
            }
        }
        self.late.extend(changes.late_rows(&late)?);
        if by_window.is_empty() {
            return Ok(());
        }

        let inputs = self
            .calls
            .iter()
            .map(|call| call.input(batch))
            .collect::<Result<Vec<_>>>()?;
        let keys: Vec<ArrayRef> = self
            .layout
            .iter()
            .zip(&columns)
            .filter(|(column, _)| matches!(column, GroupColumn::Key(_)))
            .map(|(_, array)| array.clone())
            .collect();
        let whole_batch = by_window.len() == 1 && !any_late;
        for (end, indices) in by_window {
            let first = indices[0] as usize;
            if !self.windows.contains_key(&end) {
                let window = Window {
                    start: ScalarValue::try_from_array(&columns[self.window_start], first)?,
                    end: ScalarValue::try_from_array(&columns[self.window_end], first)?,
                    groups: GroupedAggregates::new(&self.key_schema, &self.calls)?,
                    emitted: None,
                    dirty: BTreeSet::new(),
                };
                self.windows.insert(end, window);
            }
            let (window_keys, window_inputs, count) = if whole_batch {
                (keys.clone(), inputs.clone(), rows)
            } else {
                let indices = UInt32Array::from(indices);
                let window_keys = keys
                    .iter()
                    .map(|array| take(array.as_ref(), &indices, None))
                    .collect::<Result<Vec<_>, _>>()?;
                let window_inputs = inputs
                    .iter()
                    .map(|input| input.take(&indices))
                    .collect::<Result<Vec<_>>>()?;
                (window_keys, window_inputs, indices.len())
            };
            let fired = end <= self.watermark;
            let mut window = self.windows.remove(&end);
            if let Some(window) = window.as_mut() {
                let touched = window.groups.update(&window_keys, &window_inputs, count)?;
                if fired {
                    window.dirty.extend(touched.iter().copied());
                    self.refire(window, out)?;
                }
            }
            if let Some(window) = window {
                self.windows.insert(end, window);
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        let previous = self.watermark;
        self.watermark = watermark;
        let firing: Vec<Millis> = self
            .windows
            .range(previous.saturating_add(1)..=watermark)
            .map(|(end, _)| *end)
            .collect();
        for end in firing {
            if let Some(mut window) = self.windows.remove(&end) {
                self.fire(&mut window, out)?;
                self.windows.insert(end, window);
            }
        }
        let kept = self.windows.split_off(
            &watermark
                .saturating_sub(self.allowed_lateness)
                .saturating_add(1),
        );
        self.windows = kept;
        Ok(())
    }

    fn screened_inputs(&self, _input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        inputs_of(&self.group_by, &self.calls)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        state.usize(self.windows.len());
        for (end, window) in &mut self.windows {
            state.i64(*end);
            state.scalars(&[window.start.clone(), window.end.clone()])?;
            window.groups.save_state(state)?;
            match &window.emitted {
                Some(rows) => {
                    state.bool(true);
                    state.batch(rows)?;
                }
                None => state.bool(false),
            }
            state.usize(window.dirty.len());
            for group in &window.dirty {
                state.usize(*group);
            }
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        self.watermark = state.i64()?;
        let windows = state.usize()?;
        for _ in 0..windows {
            let end = state.i64()?;
            let [start, end_value] = <[ScalarValue; 2]>::try_from(state.scalars()?)
                .map_err(|_| crate::EngineError::Checkpoint("a window needs two bounds".into()))?;
            let mut groups = GroupedAggregates::new(&self.key_schema, &self.calls)?;
            groups.load_state(state)?;
            let emitted = if state.bool()? {
                Some(state.batch(&self.schema)?)
            } else {
                None
            };
            let dirty = (0..state.usize()?)
                .map(|_| state.usize())
                .collect::<Result<BTreeSet<_>>>()?;
            let window = Window {
                start,
                end: end_value,
                groups,
                emitted,
                dirty,
            };
            self.windows.insert(end, window);
        }
        Ok(())
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self
                .windows
                .values()
                .map(|window| {
                    window.groups.size()
                        + window
                            .emitted
                            .as_ref()
                            .map_or(0, RecordBatch::get_array_memory_size)
                })
                .sum(),
            open_windows: self.windows.len(),
        }
    }
}
