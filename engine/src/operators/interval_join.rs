//! `IntervalJoin`: `a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts + lower AND a.ts + upper`,
//! inner, left, right or full outer.
//!
//! State: per side, its rows by join key, each with its time and whether it has matched;
//! a row stays only while a row of the other side may still match it. Emits: a joined row
//! as soon as its second row arrives (pairs in arrival order of the arriving row, then of the
//! buffered rows), if the residual condition holds. Watermark: with watermark `W` (no more
//! rows before `W` on either side), a left row expires once `ts + upper < W` and a right row
//! once `ts - lower < W`; an expired row of an outer side that never matched is emitted
//! padded with NULLs, with op `expired`, in time order (ties in arrival order). The forwarded
//! watermark is held back by `upper` (when positive) so joined rows, which carry the left
//! row's time, are never behind it. A row that arrives already expired still joins the rows
//! buffered on the other side; an outer one without a match comes out `expired` at once.
//! Rows with a NULL key match nothing. End of input: the `+inf` watermark expires every row.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, UInt8Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::OwnedRow;
use datafusion::physical_expr::PhysicalExpr;

use super::join::{JoinCodec, JoinKind, JoinSide};
use crate::operator::{Operator, OperatorMetrics};
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

#[derive(Default)]
struct SideState {
    /// Buffered rows by join key, in arrival order (so mostly in time order: rows expire
    /// from the front).
    buffered: HashMap<Box<[u8]>, VecDeque<Buffered>>,
    /// Every buffered row by the watermark it expires below (its deadline), then arrival.
    deadlines: BTreeMap<(Millis, u64), Box<[u8]>>,
}

pub struct IntervalJoin {
    kind: JoinKind,
    bound: TimeBound,
    codec: JoinCodec,
    sides: [SideState; 2],
    watermark: Millis,
    sequence: u64,
}

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
            sides: [SideState::default(), SideState::default()],
            watermark: WATERMARK_MIN,
            sequence: 0,
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

        // Candidate pairs: (row of this batch, key, position in the other side's buffer).
        let mut candidates: Vec<(usize, Box<[u8]>, usize)> = Vec::new();
        for row in 0..count {
            if times.is_null(row) || !keys.valid[row] {
                continue;
            }
            let key: &[u8] = keys.rows.row(row).data();
            if let Some(buffered) = self.sides[other].buffered.get(key) {
                for (position, partner) in buffered.iter().enumerate() {
                    if self.in_bound(side, times.value(row), partner.time) {
                        candidates.push((row, key.into(), position));
                    }
                }
            }
        }
        let mut matched = vec![false; count];
        if !candidates.is_empty() {
            let pairs: Vec<_> = candidates
                .iter()
                .map(|(row, key, position)| {
                    let mine = Some(rows.row(*row));
                    let theirs = self.sides[other]
                        .buffered
                        .get(key)
                        .and_then(|rows| rows.get(*position))
                        .map(|partner| partner.row.row());
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
            for (index, (row, key, position)) in candidates.iter().enumerate() {
                if passed(index) {
                    matched[*row] = true;
                    if let Some(partner) = self.sides[other]
                        .buffered
                        .get_mut(key)
                        .and_then(|rows| rows.get_mut(*position))
                    {
                        partner.matched = true;
                    }
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
            let owned_row = rows.row(row).owned();
            let unmatchable = times.is_null(row) || !keys.valid[row];
            if unmatchable || self.expired(side, times.value(row), self.watermark) {
                if self.kind.keeps(side) && !row_matched {
                    expired_now.push(owned_row);
                }
                continue;
            }
            self.sequence += 1;
            let time = times.value(row);
            let buffered = Buffered {
                time,
                sequence: self.sequence,
                row: owned_row,
                matched: row_matched,
            };
            let key: Box<[u8]> = keys.rows.row(row).data().into();
            let deadline = self.deadline(side, time);
            let state = &mut self.sides[side];
            state
                .deadlines
                .insert((deadline, self.sequence), key.clone());
            state.buffered.entry(key).or_default().push_back(buffered);
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
            let state = &mut self.sides[side];
            let mut expired = Vec::new();
            // Deadlines below the watermark: those rows can match nothing more.
            while let Some(entry) = state.deadlines.first_entry() {
                if entry.key().0 >= watermark {
                    break;
                }
                let ((_, sequence), key) = entry.remove_entry();
                let Some(rows) = state.buffered.get_mut(&key) else {
                    continue;
                };
                if let Some(row) = rows
                    .iter()
                    .position(|row| row.sequence == sequence)
                    .and_then(|position| rows.remove(position))
                    && keeps
                    && !row.matched
                {
                    expired.push(row.row);
                }
                if rows.is_empty() {
                    state.buffered.remove(&key);
                }
            }
            if !expired.is_empty() {
                out.push(self.expired_rows(side, expired)?);
            }
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let rows = self
            .sides
            .iter()
            .flat_map(|state| state.buffered.values())
            .flatten();
        OperatorMetrics {
            state_bytes: rows.map(|row| row.row.as_ref().len() + 24).sum(),
            open_windows: self.sides.iter().map(|s| s.buffered.len()).sum(),
        }
    }
}
