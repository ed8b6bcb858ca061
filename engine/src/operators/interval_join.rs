//! `IntervalJoin`: `a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts + lower AND a.ts + upper`,
//! inner, left, right or full outer.
//!
//! - **State**: per side, its rows by join key, each with its time and whether it has
//!   matched; a row stays only while a row of the other side may still match it.
//! - **Emits**: a joined row as soon as its second row arrives (pairs in arrival order of the
//!   arriving row, then of the buffered rows), if the residual condition holds. Rows with a
//!   NULL key (or time) match nothing: an outer side's comes out `expired` at once.
//! - **Watermark**: with watermark `W` (no more rows before `W` on either side), a left row
//!   expires once `ts + upper < W` and a right row once `ts - lower < W`; an expired row of
//!   an outer side that never matched is emitted padded with NULLs, with op `expired`, in
//!   time order (ties in arrival order). The forwarded watermark is held back by `upper`
//!   (when positive) so joined rows, which carry the left row's time, are never behind it.
//! - **Late rows**: nothing goes to the late side output. A row that arrives already expired
//!   still joins the rows buffered on the other side; an outer one without a match comes out
//!   `expired` at once.
//! - **End of input**: the `+inf` watermark expires every row.
//! - **Checkpoint**: the watermark, and per join key each side's rows in arrival order with
//!   their times, arrivals and whether they matched, and each side's rows by deadline (which
//!   decides when and in which order unmatched rows come out `expired`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, UInt8Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::OwnedRow;
use datafusion::common::HashMap;
use datafusion::physical_expr::PhysicalExpr;

use super::join::{
    JoinCodec, JoinKind, JoinSide, bool_column, i64_column, saved_bools, saved_i64s, saved_u64s,
    saved_usizes, u64_column, usize_column,
};
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, EngineError, Result, RowKind};

/// The time bound: `right.ts - left.ts` lies in `[lower, upper]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBound {
    pub lower: Millis,
    pub upper: Millis,
}

struct Buffered {
    time: Millis,
    sequence: u64,
    row: OwnedRow,
    matched: bool,
}

/// The rows of one join key: each side's, in arrival order (so mostly in time order: rows
/// expire from the front).
#[derive(Default)]
struct KeyRows {
    key: Box<[u8]>,
    sides: [VecDeque<Buffered>; 2],
}

/// Buffered rows by deadline (the watermark they expire below): for each deadline, each
/// row's arrival and key slot, in arrival order.
type Deadlines = BTreeMap<Millis, Vec<(u64, usize)>>;

pub struct IntervalJoin {
    kind: JoinKind,
    bound: TimeBound,
    codec: JoinCodec,
    /// Slots of `keys` by join key.
    slots: HashMap<Box<[u8]>, usize>,
    /// The buffered rows by key slot; a slot whose key has no rows is free for reuse.
    keys: Vec<KeyRows>,
    free: Vec<usize>,
    /// Per side, every buffered row by deadline.
    deadlines: [Deadlines; 2],
    watermark: Millis,
    sequence: u64,
    /// Bytes of the buffered rows, counted as they come and go.
    state_bytes: usize,
}

/// Bytes a buffered row takes beyond its encoding (its time, arrival, flag, and its entry
/// in the deadline index).
const ROW_OVERHEAD: usize = 48;

impl IntervalJoin {
    pub fn new(
        kind: JoinKind,
        bound: TimeBound,
        left: JoinSide,
        right: JoinSide,
        residual: Option<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        if left.time_column.is_none() || right.time_column.is_none() {
            return Err(EngineError::Input(
                "an interval join needs the event time of both sides".into(),
            ));
        }
        Ok(IntervalJoin {
            kind,
            bound,
            codec: JoinCodec::new(left, right, residual, schema)?,
            slots: HashMap::default(),
            keys: Vec::new(),
            free: Vec::new(),
            deadlines: [BTreeMap::new(), BTreeMap::new()],
            watermark: WATERMARK_MIN,
            sequence: 0,
            state_bytes: 0,
        })
    }

    /// The watermark below which a row of `side` at `time` can still match rows to come.
    fn deadline(&self, side: usize, time: Millis) -> Millis {
        match side {
            0 => time.saturating_add(self.bound.upper),
            _ => time.saturating_sub(self.bound.lower),
        }
    }

    /// Whether a row of `side` at `time` can no longer match a row still to come.
    fn expired(&self, side: usize, time: Millis, watermark: Millis) -> bool {
        self.deadline(side, time) < watermark
    }

    /// Whether a row of `side` at `time` and one of the other side at `other` are in bound.
    fn in_bound(&self, side: usize, time: Millis, other: Millis) -> bool {
        let (left, right) = if side == 0 {
            (time, other)
        } else {
            (other, time)
        };
        let distance = right.saturating_sub(left);
        self.bound.lower <= distance && distance <= self.bound.upper
    }

    /// The slot of `key`, taking a free one if it has none.
    fn slot_of(&mut self, key: &[u8]) -> usize {
        if let Some(slot) = self.slots.get(key) {
            return *slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.keys[slot].key = key.into();
                slot
            }
            None => {
                self.keys.push(KeyRows {
                    key: key.into(),
                    sides: Default::default(),
                });
                self.keys.len() - 1
            }
        };
        self.slots.insert(key.into(), slot);
        slot
    }

    /// Frees `slot` once its key has no rows on either side.
    fn release_if_empty(&mut self, slot: usize) {
        let rows = &mut self.keys[slot];
        if rows.sides.iter().all(VecDeque::is_empty) && !rows.key.is_empty() {
            let key = std::mem::take(&mut rows.key);
            self.slots.remove(&key);
            self.free.push(slot);
        }
    }

    fn expired_rows(&self, side: usize, rows: Vec<OwnedRow>) -> Result<Changes> {
        let pairs: Vec<_> = rows
            .iter()
            .map(|row| {
                if side == 0 {
                    (Some(row.row()), None)
                } else {
                    (None, Some(row.row()))
                }
            })
            .collect();
        let rows = self.codec.joined(&pairs)?;
        let kinds = UInt8Array::from(vec![RowKind::Expired as u8; rows.num_rows()]);
        Ok(Changes {
            rows,
            kinds: Some(kinds),
        })
    }
}

impl Operator for IntervalJoin {
    fn name(&self) -> &str {
        "interval_join"
    }

    fn schema(&self) -> SchemaRef {
        self.codec.schema().clone()
    }

    fn watermark_delay(&self) -> Millis {
        self.bound.upper.max(0)
    }

    fn process(&mut self, input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let side = input.min(1);
        let other = 1 - side;
        let batch = &changes.rows;
        let count = batch.num_rows();
        let keys = self.codec.keys(side, batch)?;
        let Some(times) = self.codec.times(side, batch)? else {
            return Ok(());
        };
        let rows = self.codec.rows(side, batch)?;

        // Each row's key slot, if the key has rows buffered on either side.
        let slots: Vec<Option<usize>> = (0..count)
            .map(|row| {
                if times.is_null(row) || !keys.valid[row] {
                    return None;
                }
                self.slots.get(keys.rows.row(row).data()).copied()
            })
            .collect();
        // Candidate pairs: (row of this batch, key slot, position in the other side's rows).
        let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
        for (row, slot) in slots.iter().enumerate() {
            let Some(slot) = *slot else {
                continue;
            };
            let time = times.value(row);
            for (position, partner) in self.keys[slot].sides[other].iter().enumerate() {
                if self.in_bound(side, time, partner.time) {
                    candidates.push((row, slot, position));
                }
            }
        }
        let mut matched = vec![false; count];
        if !candidates.is_empty() {
            let pairs: Vec<_> = candidates
                .iter()
                .map(|&(row, slot, position)| {
                    let mine = Some(rows.row(row));
                    let theirs = Some(self.keys[slot].sides[other][position].row.row());
                    if side == 0 {
                        (mine, theirs)
                    } else {
                        (theirs, mine)
                    }
                })
                .collect();
            let joined = self.codec.joined(&pairs)?;
            let mask = self.codec.residual_mask(&joined)?;
            let passed = |index: usize| mask.as_ref().is_none_or(|m| m.value(index));
            for (index, &(row, slot, position)) in candidates.iter().enumerate() {
                if passed(index) {
                    matched[row] = true;
                    self.keys[slot].sides[other][position].matched = true;
                }
            }
            let joined = match &mask {
                Some(mask) => filter_record_batch(&joined, mask)?,
                None => joined,
            };
            if joined.num_rows() > 0 {
                out.push(Changes::inserts(joined));
            }
        }

        // Keep the rows that can still match; an outer side's unmatched rows that cannot,
        // or that never can (NULL key or time), come out expired at once.
        let mut expired_now = Vec::new();
        for (row, row_matched) in matched.into_iter().enumerate() {
            let unmatchable = times.is_null(row) || !keys.valid[row];
            if unmatchable || self.expired(side, times.value(row), self.watermark) {
                if self.kind.keeps(side) && !row_matched {
                    expired_now.push(rows.row(row).owned());
                }
                continue;
            }
            self.sequence += 1;
            let time = times.value(row);
            let slot = match slots[row] {
                Some(slot) => slot,
                None => self.slot_of(keys.rows.row(row).data()),
            };
            let owned = rows.row(row).owned();
            self.state_bytes += owned.as_ref().len() + ROW_OVERHEAD;
            self.keys[slot].sides[side].push_back(Buffered {
                time,
                sequence: self.sequence,
                row: owned,
                matched: row_matched,
            });
            let deadline = self.deadline(side, time);
            self.deadlines[side]
                .entry(deadline)
                .or_default()
                .push((self.sequence, slot));
        }
        if !expired_now.is_empty() {
            out.push(self.expired_rows(side, expired_now)?);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Changes>) -> Result<()> {
        self.watermark = watermark;
        for side in 0..2 {
            let keeps = self.kind.keeps(side);
            let mut expired = Vec::new();
            // Deadlines below the watermark: those rows can match nothing more.
            let pending = self.deadlines[side].split_off(&watermark);
            let due = std::mem::replace(&mut self.deadlines[side], pending);
            for (sequence, slot) in due.into_values().flatten() {
                let rows = &mut self.keys[slot].sides[side];
                let position = if rows.front().is_some_and(|r| r.sequence == sequence) {
                    Some(0)
                } else {
                    rows.iter().position(|row| row.sequence == sequence)
                };
                if let Some(row) = position.and_then(|position| rows.remove(position)) {
                    self.state_bytes -= row.row.as_ref().len() + ROW_OVERHEAD;
                    if keeps && !row.matched {
                        expired.push(row.row);
                    }
                }
                self.release_if_empty(slot);
            }
            if !expired.is_empty() {
                out.push(self.expired_rows(side, expired)?);
            }
        }
        Ok(())
    }

    fn take_failures(&mut self) -> Vec<crate::RowFailure> {
        self.codec.take_failures()
    }

    fn screened_inputs(&self, input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.codec.side(input.min(1)).keys.clone()
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.watermark);
        state.u64(self.sequence);
        // Key slots keep their numbers (the deadlines refer to them), free ones included.
        let in_use = |rows: &KeyRows| !rows.key.is_empty();
        state.arrays(
            &[
                bool_column(self.keys.iter().map(in_use)),
                usize_column(self.keys.iter().map(|rows| rows.sides[0].len())),
                usize_column(self.keys.iter().map(|rows| rows.sides[1].len())),
            ],
            self.keys.len(),
        )?;
        self.codec.save_keys(
            self.keys
                .iter()
                .filter(|rows| in_use(rows))
                .map(|rows| &*rows.key),
            state,
        )?;
        state.arrays(&[usize_column(self.free.iter().copied())], self.free.len())?;
        for side in 0..2 {
            let rows = || self.keys.iter().flat_map(|rows| &rows.sides[side]);
            state.arrays(
                &[
                    i64_column(rows().map(|row| row.time)),
                    u64_column(rows().map(|row| row.sequence)),
                    bool_column(rows().map(|row| row.matched)),
                ],
                rows().count(),
            )?;
            self.codec
                .save_rows(side, rows().map(|row| row.row.row()), state)?;
            let due = || {
                self.deadlines[side].iter().flat_map(|(deadline, rows)| {
                    rows.iter()
                        .map(move |(sequence, slot)| (*deadline, *sequence, *slot))
                })
            };
            state.arrays(
                &[
                    i64_column(due().map(|(deadline, _, _)| deadline)),
                    u64_column(due().map(|(_, sequence, _)| sequence)),
                    usize_column(due().map(|(_, _, slot)| slot)),
                ],
                due().count(),
            )?;
        }
        Ok(())
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let damaged = |what: &str| {
            EngineError::Checkpoint(format!("the saved {what} of an interval join do not fit"))
        };
        self.watermark = state.i64()?;
        self.sequence = state.u64()?;
        let (columns, slots) = state.arrays()?;
        let in_use = saved_bools(&columns, 0, slots)?;
        let counts = [
            saved_usizes(&columns, 1, slots)?,
            saved_usizes(&columns, 2, slots)?,
        ];
        let keys = self.codec.load_keys(state)?;
        if keys.len() != in_use.iter().filter(|used| **used).count() {
            return Err(damaged("keys"));
        }
        let mut keys = keys.into_iter();
        let mut key_rows: Vec<KeyRows> = Vec::with_capacity(slots);
        let mut by_key = HashMap::default();
        for (slot, used) in in_use.iter().enumerate() {
            let key = if *used {
                keys.next().ok_or_else(|| damaged("keys"))?
            } else {
                Box::default()
            };
            if *used && by_key.insert(key.clone(), slot).is_some() {
                return Err(damaged("keys"));
            }
            key_rows.push(KeyRows {
                key,
                sides: Default::default(),
            });
        }
        let (columns, free) = state.arrays()?;
        let free = saved_usizes(&columns, 0, free)?;
        if free.iter().any(|slot| in_use.get(*slot) != Some(&false)) {
            return Err(damaged("free slots"));
        }
        let mut deadlines: [Deadlines; 2] = [BTreeMap::new(), BTreeMap::new()];
        let mut state_bytes = 0;
        for side in 0..2 {
            let (columns, count) = state.arrays()?;
            let times = saved_i64s(&columns, 0, count)?;
            let sequences = saved_u64s(&columns, 1, count)?;
            let matched = saved_bools(&columns, 2, count)?;
            let rows = self.codec.load_rows(side, state)?;
            if rows.num_rows() != count || counts[side].iter().sum::<usize>() != count {
                return Err(damaged("rows"));
            }
            let mut buffered = times
                .into_iter()
                .zip(sequences)
                .zip(matched)
                .zip(rows.iter())
                .map(|(((time, sequence), matched), row)| Buffered {
                    time,
                    sequence,
                    row: row.owned(),
                    matched,
                });
            for (rows, count) in key_rows.iter_mut().zip(&counts[side]) {
                rows.sides[side].extend(buffered.by_ref().take(*count));
                state_bytes += rows.sides[side]
                    .iter()
                    .map(|row| row.row.as_ref().len() + ROW_OVERHEAD)
                    .sum::<usize>();
            }
            let (columns, count) = state.arrays()?;
            let due = saved_i64s(&columns, 0, count)?;
            let sequences = saved_u64s(&columns, 1, count)?;
            let due_slots = saved_usizes(&columns, 2, count)?;
            for ((deadline, sequence), slot) in due.into_iter().zip(sequences).zip(due_slots) {
                if slot >= slots {
                    return Err(damaged("deadlines"));
                }
                deadlines[side]
                    .entry(deadline)
                    .or_default()
                    .push((sequence, slot));
            }
        }
        if key_rows
            .iter()
            .zip(&in_use)
            .any(|(rows, used)| *used == rows.sides.iter().all(VecDeque::is_empty))
        {
            return Err(damaged("keys"));
        }
        self.slots = by_key;
        self.keys = key_rows;
        self.free = free;
        self.deadlines = deadlines;
        self.state_bytes = state_bytes;
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics {
            state_bytes: self.state_bytes,
            open_windows: self.slots.len(),
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
            let bound = TimeBound {
                lower: -(random.below(6) as Millis),
                upper: random.below(8) as Millis,
            };
            let dictionary = seed % 2 == 1;
            let condition = seed % 5 != 2;
            let build = || {
                let (left, right) = (side("l", dictionary), side("r", false));
                let schema = joined_schema(&left, &right);
                IntervalJoin::new(kind, bound, left, right, condition.then(residual), schema)
            };
            let script = Script {
                updating: [false; 2],
                align: 0,
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
