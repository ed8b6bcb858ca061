//! `RegularJoin`: a join without a time bound, of append-only or updating inputs (streams,
//! upsert tables, changelogs), inner, left, right or full outer. Its output is a changelog.
//!
//! - **State**: per side, the rows present by join key, each with how many times it is
//!   present and how many rows of the other side it joins, and per key when it was last
//!   written.
//! - **Emits**: at once, for each input row in order. An added row (`+I`, `+U`, or an
//!   upstream join's `expired` or a pattern's `timeout` row) emits `+I` of itself joined with
//!   each present row of the other side with its key (in their arrival order) for which the
//!   residual condition holds; a removed row (`-U`, `-D`) emits `-D` of the same pairs. Outer
//!   sides keep a row without a match as `+I` of it padded with NULLs: when its first match
//!   arrives that row is retracted (`-D`) before the joined row, and when its last match goes
//!   it comes back (`+I`). A removal of a row that is not present is ignored. Rows with a
//!   NULL key match nothing.
//! - **Watermark**: passed through; it does not shrink the state, which without a TTL grows
//!   with the inputs' distinct rows. With a state TTL, a key's rows on a side are dropped,
//!   without emitting anything, once the join's stream time (the latest event time or input
//!   watermark it has seen; the end of input does not count) is more than the TTL past the
//!   stream time of the key's last write on that side.
//! - **Late rows**: joined like any other row.
//! - **End of input**: nothing more.
//! - **Checkpoint**: the stream time, and per side and join key its present rows in arrival
//!   order with how many times each is present and how many rows it joins, and when the key
//!   was last written; with a TTL, the pending expiries in order and the keys written before
//!   the stream time was known.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::UInt8Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, Row};
use datafusion::physical_expr::PhysicalExpr;

use super::join::{
    JoinCodec, JoinKind, JoinSide, i64_column, saved_i64s, saved_u64s, saved_usizes, u64_column,
    usize_column,
};
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::time::{Millis, WATERMARK_MAX, WATERMARK_MIN};
use crate::{Changes, EngineError, Result, RowKind};

struct Present {
    row: OwnedRow,
    /// How many times the row is present.
    count: usize,
    /// How many present rows of the other side it joins (counted with their multiplicity).
    matches: usize,
}

#[derive(Default)]
struct KeyRows {
    rows: Vec<Present>,
    /// Stream time of the last write.
    written: Millis,
}

pub struct RegularJoin {
    kind: JoinKind,
    codec: JoinCodec,
    sides: [HashMap<Box<[u8]>, KeyRows>; 2],
    ttl: Option<Millis>,
    /// The latest event time or watermark seen.
    stream_time: Millis,
    /// With a TTL: each write's expiry time, with its side and key (stale entries are
    /// skipped when the key was written again).
    expiries: BTreeMap<(Millis, u64), SideKey>,
    /// With a TTL: keys written before the stream time was known.
    unstamped: Vec<SideKey>,
    sequence: u64,
}

/// A join key on one side (0 left, 1 right).
type SideKey = (usize, Box<[u8]>);

/// One output row: its kind and its sides (`None` for NULL padding).
type Emitted = (RowKind, Option<OwnedRow>, Option<OwnedRow>);

impl RegularJoin {
    pub fn new(
        kind: JoinKind,
        left: JoinSide,
        right: JoinSide,
        residual: Option<Arc<dyn PhysicalExpr>>,
        ttl: Option<Millis>,
        schema: SchemaRef,
    ) -> Result<Self> {
        Ok(RegularJoin {
            kind,
            codec: JoinCodec::new(left, right, residual, schema)?,
            sides: [HashMap::new(), HashMap::new()],
            ttl,
            stream_time: WATERMARK_MIN,
            expiries: BTreeMap::new(),
            unstamped: Vec::new(),
            sequence: 0,
        })
    }

    /// `row` of `side` as a half of an output row, the other half absent.
    fn padded(side: usize, kind: RowKind, row: &OwnedRow) -> Emitted {
        if side == 0 {
            (kind, Some(row.clone()), None)
        } else {
            (kind, None, Some(row.clone()))
        }
    }

    fn paired(side: usize, kind: RowKind, mine: &OwnedRow, theirs: &OwnedRow) -> Emitted {
        if side == 0 {
            (kind, Some(mine.clone()), Some(theirs.clone()))
        } else {
            (kind, Some(theirs.clone()), Some(mine.clone()))
        }
    }

    /// Records a write of `key` on `side` at the current stream time (or, before there is
    /// one, at the first).
    fn written(&mut self, side: usize, key: &[u8]) {
        let Some(rows) = self.sides[side].get_mut(key) else {
            return;
        };
        rows.written = self.stream_time;
        if self.ttl.is_none() {
            return;
        }
        if self.stream_time == WATERMARK_MIN {
            self.unstamped.push((side, key.into()));
            return;
        }
        self.schedule_expiry(side, key.into());
    }

    fn schedule_expiry(&mut self, side: usize, key: Box<[u8]>) {
        if let Some(ttl) = self.ttl {
            self.sequence += 1;
            let expiry = self.stream_time.saturating_add(ttl);
            self.expiries.insert((expiry, self.sequence), (side, key));
        }
    }

    /// Moves the stream time forward to `time`; keys written before the first stream time
    /// count as written at it.
    fn advance_stream_time(&mut self, time: Millis) {
        if time <= self.stream_time {
            return;
        }
        self.stream_time = time;
        for (side, key) in std::mem::take(&mut self.unstamped) {
            if let Some(rows) = self.sides[side].get_mut(&key) {
                rows.written = time;
                self.schedule_expiry(side, key);
            }
        }
    }

    /// Drops the keys whose last write is more than the TTL behind the stream time.
    fn expire(&mut self) {
        let Some(ttl) = self.ttl else {
            return;
        };
        while let Some(entry) = self.expiries.first_entry() {
            if entry.key().0 >= self.stream_time {
                return;
            }
            let (_, (side, key)) = entry.remove_entry();
            let idle = self.sides[side]
                .get(&key)
                .is_some_and(|rows| rows.written.saturating_add(ttl) < self.stream_time);
            if idle {
                self.sides[side].remove(&key);
            }
        }
    }
}

impl Operator for RegularJoin {
    fn name(&self) -> &str {
        "regular_join"
    }

    fn schema(&self) -> SchemaRef {
        self.codec.schema().clone()
    }

    fn process(&mut self, input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let side = input.min(1);
        let other = 1 - side;
        let batch = &changes.rows;
        let keys = self.codec.keys(side, batch)?;
        let rows = self.codec.rows(side, batch)?;
        if let Some(times) = self.codec.times(side, batch)?
            && let Some(latest) = times.iter().flatten().max()
        {
            self.advance_stream_time(latest);
        }
        self.expire();

        // Candidate pairs: (row of this batch, position among the other side's rows).
        let mut candidates: Vec<(usize, usize)> = Vec::new();
        for row in 0..batch.num_rows() {
            if !keys.valid[row] {
                continue;
            }
            if let Some(theirs) = self.sides[other].get(keys.rows.row(row).data()) {
                candidates.extend((0..theirs.rows.len()).map(|position| (row, position)));
            }
        }
        let passed = if candidates.is_empty() {
            Vec::new()
        } else {
            let pairs: Vec<(Option<Row<'_>>, Option<Row<'_>>)> = candidates
                .iter()
                .map(|&(row, position)| {
                    let mine = Some(rows.row(row));
                    let theirs = self.sides[other]
                        .get(keys.rows.row(row).data())
                        .map(|key_rows| key_rows.rows[position].row.row());
                    if side == 0 {
                        (mine, theirs)
                    } else {
                        (theirs, mine)
                    }
                })
                .collect();
            self.codec.matching(&pairs)?.1
        };

        let mut emitted: Vec<Emitted> = Vec::new();
        let mut next = 0;
        for row in 0..batch.num_rows() {
            let adds = !matches!(changes.kind(row), RowKind::UpdateBefore | RowKind::Delete);
            let owned = rows.row(row).owned();
            let key: Box<[u8]> = keys.rows.row(row).data().into();
            // The matching rows of the other side, by position.
            let mut partners = Vec::new();
            while next < candidates.len() && candidates[next].0 == row {
                if passed[next] {
                    partners.push(candidates[next].1);
                }
                next += 1;
            }
            let mine_present = self.sides[side]
                .get(&key)
                .and_then(|key_rows| key_rows.rows.iter().position(|p| p.row == owned));
            if !adds && mine_present.is_none() {
                continue;
            }
            let mut matches = 0;
            if let Some(theirs) = self.sides[other].get_mut(&key) {
                for &position in &partners {
                    let partner = &mut theirs.rows[position];
                    matches += partner.count;
                    let copies = partner.count;
                    let padding_changes = self.kind.keeps(other);
                    if adds {
                        if padding_changes && partner.matches == 0 {
                            emitted.extend(
                                (0..copies)
                                    .map(|_| Self::padded(other, RowKind::Delete, &partner.row)),
                            );
                        }
                        partner.matches += 1;
                        emitted
                            .extend((0..copies).map(|_| {
                                Self::paired(side, RowKind::Insert, &owned, &partner.row)
                            }));
                    } else {
                        partner.matches = partner.matches.saturating_sub(1);
                        emitted
                            .extend((0..copies).map(|_| {
                                Self::paired(side, RowKind::Delete, &owned, &partner.row)
                            }));
                        if padding_changes && partner.matches == 0 {
                            emitted.extend(
                                (0..copies)
                                    .map(|_| Self::padded(other, RowKind::Insert, &partner.row)),
                            );
                        }
                    }
                }
            }
            if matches == 0 && self.kind.keeps(side) {
                let kind = if adds {
                    RowKind::Insert
                } else {
                    RowKind::Delete
                };
                emitted.push(Self::padded(side, kind, &owned));
            }
            let mine = self.sides[side].entry(key.clone()).or_default();
            match (adds, mine_present) {
                (true, Some(position)) => mine.rows[position].count += 1,
                (true, None) => mine.rows.push(Present {
                    row: owned,
                    count: 1,
                    matches,
                }),
                (false, Some(position)) => {
                    mine.rows[position].count -= 1;
                    if mine.rows[position].count == 0 {
                        mine.rows.remove(position);
                    }
                }
                (false, None) => {}
            }
            if mine.rows.is_empty() {
                self.sides[side].remove(&key);
            } else {
                self.written(side, &key);
            }
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(Option<Row<'_>>, Option<Row<'_>>)> = emitted
            .iter()
            .map(|(_, left, right)| {
                (
                    left.as_ref().map(OwnedRow::row),
                    right.as_ref().map(OwnedRow::row),
                )
            })
            .collect();
        let joined = self.codec.joined(&pairs)?;
        let kinds = UInt8Array::from_iter_values(emitted.iter().map(|(kind, _, _)| *kind as u8));
        out.push(Changes {
            rows: joined,
            kinds: Some(kinds),
        });
        Ok(())
    }

    fn on_input_watermark(&mut self, _input: usize, watermark: Millis) {
        if watermark < WATERMARK_MAX {
            self.advance_stream_time(watermark);
            self.expire();
        }
    }

    fn take_failures(&mut self) -> Vec<crate::RowFailure> {
        self.codec.take_failures()
    }

    fn screened_inputs(&self, input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.codec.side(input.min(1)).keys.clone()
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        state.i64(self.stream_time);
        state.u64(self.sequence);
        for (side, keys) in self.sides.iter().enumerate() {
            // By key, so that the same state always gives the same bytes.
            let mut keys: Vec<(&Box<[u8]>, &KeyRows)> = keys.iter().collect();
            keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
            state.arrays(
                &[
                    i64_column(keys.iter().map(|(_, rows)| rows.written)),
                    usize_column(keys.iter().map(|(_, rows)| rows.rows.len())),
                ],
                keys.len(),
            )?;
            self.codec
                .save_keys(keys.iter().map(|(key, _)| &***key), state)?;
            let present = || keys.iter().flat_map(|(_, rows)| &rows.rows);
            state.arrays(
                &[
                    usize_column(present().map(|present| present.count)),
                    usize_column(present().map(|present| present.matches)),
                ],
                present().count(),
            )?;
            self.codec
                .save_rows(side, present().map(|present| present.row.row()), state)?;
        }
        state.arrays(
            &[
                i64_column(self.expiries.keys().map(|(expiry, _)| *expiry)),
                u64_column(self.expiries.keys().map(|(_, sequence)| *sequence)),
                usize_column(self.expiries.values().map(|(side, _)| *side)),
            ],
            self.expiries.len(),
        )?;
        self.codec
            .save_keys(self.expiries.values().map(|(_, key)| &**key), state)?;
        state.arrays(
            &[usize_column(self.unstamped.iter().map(|(side, _)| *side))],
            self.unstamped.len(),
        )?;
        self.codec
            .save_keys(self.unstamped.iter().map(|(_, key)| &**key), state)
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let damaged = |what: &str| {
            EngineError::Checkpoint(format!("the saved {what} of a regular join do not fit"))
        };
        self.stream_time = state.i64()?;
        self.sequence = state.u64()?;
        let mut sides: [HashMap<Box<[u8]>, KeyRows>; 2] = [HashMap::new(), HashMap::new()];
        for (side, loaded) in sides.iter_mut().enumerate() {
            let (columns, count) = state.arrays()?;
            let written = saved_i64s(&columns, 0, count)?;
            let lengths = saved_usizes(&columns, 1, count)?;
            let keys = self.codec.load_keys(state)?;
            let (columns, rows) = state.arrays()?;
            let counts = saved_usizes(&columns, 0, rows)?;
            let matches = saved_usizes(&columns, 1, rows)?;
            let encoded = self.codec.load_rows(side, state)?;
            if keys.len() != count
                || encoded.num_rows() != rows
                || lengths.iter().sum::<usize>() != rows
            {
                return Err(damaged("rows"));
            }
            let mut present =
                encoded
                    .iter()
                    .zip(counts)
                    .zip(matches)
                    .map(|((row, count), matches)| Present {
                        row: row.owned(),
                        count,
                        matches,
                    });
            for ((key, written), length) in keys.into_iter().zip(written).zip(lengths) {
                let rows = KeyRows {
                    rows: present.by_ref().take(length).collect(),
                    written,
                };
                if loaded.insert(key, rows).is_some() {
                    return Err(damaged("keys"));
                }
            }
        }
        let (columns, count) = state.arrays()?;
        let expiry = saved_i64s(&columns, 0, count)?;
        let sequences = saved_u64s(&columns, 1, count)?;
        let expiry_sides = saved_usizes(&columns, 2, count)?;
        let keys = self.codec.load_keys(state)?;
        if keys.len() != count || expiry_sides.iter().any(|side| *side > 1) {
            return Err(damaged("expiries"));
        }
        let expiries: BTreeMap<(Millis, u64), SideKey> = expiry
            .into_iter()
            .zip(sequences)
            .zip(expiry_sides.into_iter().zip(keys))
            .collect();
        if expiries.len() != count {
            return Err(damaged("expiries"));
        }
        let (columns, count) = state.arrays()?;
        let unstamped_sides = saved_usizes(&columns, 0, count)?;
        let keys = self.codec.load_keys(state)?;
        if keys.len() != count || unstamped_sides.iter().any(|side| *side > 1) {
            return Err(damaged("keys without a stream time"));
        }
        self.sides = sides;
        self.expiries = expiries;
        self.unstamped = unstamped_sides.into_iter().zip(keys).collect();
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let rows = self.sides.iter().flat_map(HashMap::values);
        OperatorMetrics {
            state_bytes: rows
                .flat_map(|key_rows| &key_rows.rows)
                .map(|present| present.row.as_ref().len() + 32)
                .sum(),
            open_windows: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::join::checkpoint_tests::{
        Random, Script, Step, inserts, joined_schema, residual, restore, restores_alike, same, side,
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
            let ttl = (seed % 3 == 0).then(|| 1 + random.below(8) as Millis);
            let dictionary = seed % 2 == 1;
            let condition = seed % 5 != 2;
            let build = || {
                let (left, right) = (side("l", dictionary), side("r", false));
                let schema = joined_schema(&left, &right);
                RegularJoin::new(kind, left, right, condition.then(residual), ttl, schema)
            };
            let script = Script {
                updating: [true, seed % 5 != 0],
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

    #[test]
    fn keys_written_before_the_stream_time_expire_as_they_would_have() -> Result<()> {
        let build = || {
            let (left, right) = (side("l", false), side("r", false));
            let schema = joined_schema(&left, &right);
            RegularJoin::new(JoinKind::Inner, left, right, None, Some(5), schema)
        };
        let (left, right) = (side("l", false).schema, side("r", false).schema);
        let steps = [
            // No time yet: `a` counts as written at the first stream time, 100.
            Step::Rows(0, inserts(&left, &[(Some("a"), None, 1)])?),
            Step::Rows(1, inserts(&right, &[(Some("b"), Some(100), 0)])?),
            Step::Rows(1, inserts(&right, &[(Some("a"), Some(103), 0)])?),
            // Past 105: the left `a` is gone.
            Step::Rows(1, inserts(&right, &[(Some("b"), Some(200), 0)])?),
            Step::Rows(1, inserts(&right, &[(Some("a"), Some(201), 0)])?),
        ];
        let outcome = restore(build, &steps, 1)?;
        assert!(same(&outcome.expected, &outcome.restored));
        let rows: usize = outcome.expected.iter().map(Changes::num_rows).sum();
        assert_eq!(rows, 1);
        Ok(())
    }
}
