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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::UInt8Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{OwnedRow, Row};
use datafusion::physical_expr::PhysicalExpr;

use super::join::{JoinCodec, JoinKind, JoinSide};
use crate::operator::{Operator, OperatorMetrics};
use crate::time::{Millis, WATERMARK_MAX, WATERMARK_MIN};
use crate::{Changes, Result, RowKind};

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
