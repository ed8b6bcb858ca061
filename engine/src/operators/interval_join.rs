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

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt8Array, new_null_array,
};
use datafusion::arrow::compute::{cast, filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::time::{Millis, WATERMARK_MIN};
use crate::{Changes, EngineError, Result, RowKind};

/// Which side's rows survive without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinKind {
    fn keeps(self, side: usize) -> bool {
        match self {
            JoinKind::Inner => false,
            JoinKind::Left => side == 0,
            JoinKind::Right => side == 1,
            JoinKind::Full => true,
        }
    }
}

/// One side of the join: how to read its rows.
pub struct JoinSide {
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The column holding the side's event time.
    pub time_column: usize,
    pub schema: SchemaRef,
}

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

struct SideState {
    side: JoinSide,
    rows: RowConverter,
    /// Buffered rows by join key, in arrival order (so mostly in time order: rows expire
    /// from the front).
    buffered: HashMap<Box<[u8]>, VecDeque<Buffered>>,
    /// Every buffered row by the watermark it expires below (its deadline), then arrival.
    deadlines: BTreeMap<(Millis, u64), Box<[u8]>>,
}

pub struct IntervalJoin {
    kind: JoinKind,
    bound: TimeBound,
    sides: [SideState; 2],
    keys: RowConverter,
    /// Evaluated over joined rows; pairs for which it is not true do not match.
    residual: Option<Arc<dyn PhysicalExpr>>,
    /// Left columns, then right columns.
    schema: SchemaRef,
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
        let key_types = left
            .keys
            .iter()
            .map(|key| key.data_type(&left.schema))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = RowConverter::new(key_types.into_iter().map(SortField::new).collect())?;
        let state = |side: JoinSide| -> Result<SideState> {
            let fields = side
                .schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect();
            Ok(SideState {
                rows: RowConverter::new(fields)?,
                side,
                buffered: HashMap::new(),
                deadlines: BTreeMap::new(),
            })
        };
        Ok(IntervalJoin {
            kind,
            bound,
            sides: [state(left)?, state(right)?],
            keys,
            residual,
            schema,
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

    /// Joined rows for `(left, right)` pairs; `None` stands for a NULL-padded side.
    fn joined(&self, pairs: &[(Option<&OwnedRow>, Option<&OwnedRow>)]) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (side, state) in self.sides.iter().enumerate() {
            let present: Vec<_> = pairs
                .iter()
                .map(|pair| if side == 0 { pair.0 } else { pair.1 })
                .collect();
            if present.iter().all(Option::is_none) {
                for field in state.side.schema.fields() {
                    columns.push(new_null_array(field.data_type(), pairs.len()));
                }
                continue;
            }
            // Rows of this side; padded positions repeat a present row and are nulled below.
            let Some(any) = present.iter().flatten().next() else {
                continue;
            };
            let decoded = state
                .rows
                .convert_rows(present.iter().map(|row| row.unwrap_or(any).row()))?;
            let validity = BooleanArray::from_iter(present.iter().map(|row| Some(row.is_some())));
            for array in decoded {
                columns.push(null_where_absent(&array, &validity)?);
            }
        }
        batch_of(&self.schema, &columns, pairs.len())
    }

    fn residual_mask(&self, rows: &RecordBatch) -> Result<Option<BooleanArray>> {
        let Some(residual) = &self.residual else {
            return Ok(None);
        };
        let mask = residual.evaluate(rows)?.into_array(rows.num_rows())?;
        let Some(mask) = mask.as_boolean_opt() else {
            return Err(EngineError::Input(
                "the join condition is not a boolean".into(),
            ));
        };
        Ok(Some(if mask.null_count() > 0 {
            prep_null_mask_filter(mask)
        } else {
            mask.clone()
        }))
    }

    fn expired_rows(&self, side: usize, rows: Vec<OwnedRow>) -> Result<Changes> {
        let pairs: Vec<_> = rows
            .iter()
            .map(|row| {
                if side == 0 {
                    (Some(row), None)
                } else {
                    (None, Some(row))
                }
            })
            .collect();
        let rows = self.joined(&pairs)?;
        let kinds = UInt8Array::from(vec![RowKind::Expired as u8; rows.num_rows()]);
        Ok(Changes {
            rows,
            kinds: Some(kinds),
        })
    }
}

/// `array` with NULL wherever `validity` is false.
fn null_where_absent(array: &ArrayRef, validity: &BooleanArray) -> Result<ArrayRef> {
    if validity.true_count() == validity.len() {
        return Ok(array.clone());
    }
    let nulls = new_null_array(array.data_type(), array.len());
    Ok(datafusion::arrow::compute::kernels::zip::zip(
        validity, array, &nulls,
    )?)
}

impl Operator for IntervalJoin {
    fn name(&self) -> &str {
        "interval_join"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn watermark_delay(&self) -> Millis {
        self.bound.upper.max(0)
    }

    fn process(&mut self, input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let side = input.min(1);
        let other = 1 - side;
        let batch = &changes.rows;
        let count = batch.num_rows();
        let state = &self.sides[side];
        let mut keys = state
            .side
            .keys
            .iter()
            .map(|key| key.evaluate(batch)?.into_array(count))
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        // Both sides' keys are read with the left side's key types.
        for (key, left_key) in keys.iter_mut().zip(&self.sides[0].side.keys) {
            let wanted = left_key.data_type(&self.sides[0].side.schema)?;
            if key.data_type() != &wanted {
                *key = cast(key, &wanted)?;
            }
        }
        let key_rows = self.keys.convert_columns(&keys)?;
        let times = cast(
            batch.column(state.side.time_column),
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let rows = state.rows.convert_columns(batch.columns())?;

        // Candidate pairs: (row of this batch, key, position in the other side's buffer).
        let mut candidates: Vec<(usize, Box<[u8]>, usize)> = Vec::new();
        for row in 0..count {
            if times.is_null(row) || keys.iter().any(|key| key.is_null(row)) {
                continue;
            }
            let key: &[u8] = key_rows.row(row).data();
            if let Some(buffered) = self.sides[other].buffered.get(key) {
                for (position, partner) in buffered.iter().enumerate() {
                    if self.in_bound(side, times.value(row), partner.time) {
                        candidates.push((row, key.into(), position));
                    }
                }
            }
        }
        let owned: Vec<OwnedRow> = (0..count).map(|row| rows.row(row).owned()).collect();
        let mut matched = vec![false; count];
        if !candidates.is_empty() {
            let pairs: Vec<_> = candidates
                .iter()
                .map(|(row, key, position)| {
                    let mine = Some(&owned[*row]);
                    let theirs = self.sides[other]
                        .buffered
                        .get(key)
                        .and_then(|rows| rows.get(*position))
                        .map(|partner| &partner.row);
                    if side == 0 {
                        (mine, theirs)
                    } else {
                        (theirs, mine)
                    }
                })
                .collect();
            let joined = self.joined(&pairs)?;
            let mask = self.residual_mask(&joined)?;
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
        for (row, (row_matched, owned_row)) in matched.into_iter().zip(owned).enumerate() {
            let unmatchable = times.is_null(row) || keys.iter().any(|key| key.is_null(row));
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
            let key: Box<[u8]> = key_rows.row(row).data().into();
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
