//! `SemiJoin`: `WHERE EXISTS`/`IN` (semi), `NOT EXISTS` (anti) and `NOT IN` over streams and
//! changelogs without a time bound. Its output is the left side's rows, as a changelog.
//!
//! A left row is in the result while: (semi) at least one present right row has its key
//! and satisfies the residual condition; (anti) none does; (`NOT IN`, SQL's three-valued
//! answer) the subquery's rows for the row's correlation values (the keys after the first,
//! the `IN` operand) are none at all, or the row's operand is not NULL, equals none of them
//! and none of them is NULL.
//!
//! - **State**: the left rows present, by join key (NULL keys apart), each with how many
//!   times it is present and how many present right rows match it; the right rows present
//!   by join key with their counts; for `NOT IN`, per correlation group the number of right
//!   rows and of those with a NULL operand.
//! - **Emits**: at once, per input row in order: `+I` of a left row when it enters the
//!   result (it comes, or its last match goes, ...), `-D` when it leaves; once per copy.
//!   A change that affects many left rows emits them in key order, then arrival order.
//! - **Watermark**: ignored; with no time bound the state grows with the inputs.
//! - **Late rows**: joined like any other row.
//! - **End of input**: nothing more.
//! - **Checkpoint**: every present row of both sides with its counts (keys are computed again
//!   on load), and the `NOT IN` groups with their counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{OwnedRow, Row, RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::join::{JoinCodec, JoinSide, saved_usizes, usize_column};
use crate::changes::batch_of;
use crate::operator::{Operator, OperatorMetrics};
use crate::state::{StateReader, StateWriter};
use crate::{Changes, EngineError, Result, RowKind};

/// Which left rows a semi join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    /// `EXISTS`, `IN`: those with a match.
    Semi,
    /// `NOT EXISTS`: those without one.
    Anti,
    /// `NOT IN`: those whose operand is in no row of their group, with SQL's NULLs.
    NotIn,
}

/// A row's join key, `None` with a NULL in it.
type JoinKey = Option<Box<[u8]>>;

/// A left row present.
struct Left {
    row: OwnedRow,
    count: usize,
    matches: usize,
    /// Its correlation group (`NOT IN`; `None` with a NULL in it).
    group: Option<Box<[u8]>>,
}

/// A right row present.
struct Right {
    row: OwnedRow,
    count: usize,
}

/// Per `NOT IN` correlation group: its right rows, and those with a NULL operand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Group {
    pub(super) rows: usize,
    pub(super) nulls: usize,
}

/// How `NOT IN` finds a row's group: the correlation keys of each side (the join keys after
/// the first, which is the `IN` operand).
pub struct Correlation {
    keys: [Vec<Arc<dyn PhysicalExpr>>; 2],
    types: Vec<DataType>,
    converter: RowConverter,
}

impl Correlation {
    /// `keys` per side; `left` is the left side's schema, whose key types both sides use.
    pub fn new(keys: [Vec<Arc<dyn PhysicalExpr>>; 2], left: &SchemaRef) -> Result<Self> {
        let types = keys[0]
            .iter()
            .map(|key| key.data_type(left))
            .collect::<Result<Vec<_>, _>>()?;
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        Ok(Correlation {
            keys,
            types,
            converter,
        })
    }

    /// Each row's group (`None` with a NULL in it).
    pub fn groups(&self, side: usize, batch: &RecordBatch) -> Result<Vec<Option<Box<[u8]>>>> {
        let count = batch.num_rows();
        if self.types.is_empty() {
            // An uncorrelated subquery: one group.
            return Ok(vec![Some(Box::default()); count]);
        }
        let columns = self.keys[side]
            .iter()
            .zip(&self.types)
            .map(|(key, wanted)| {
                let array = key.evaluate(batch)?.into_array(count)?;
                Ok(cast(&array, wanted)?)
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let rows = self.converter.convert_columns(&columns)?;
        Ok((0..count)
            .map(|row| {
                columns
                    .iter()
                    .all(|c| c.is_valid(row))
                    .then(|| rows.row(row).data().into())
            })
            .collect())
    }

    fn save(&self, groups: &[&[u8]], state: &mut StateWriter) -> Result<()> {
        if self.types.is_empty() {
            return state.arrays(&[], groups.len());
        }
        let parser = self.converter.parser();
        let columns = self
            .converter
            .convert_rows(groups.iter().map(|g| parser.parse(g)))?;
        state.arrays(&columns, groups.len())
    }

    fn load(&self, state: &mut StateReader) -> Result<Vec<Box<[u8]>>> {
        let (columns, count) = state.arrays()?;
        if self.types.is_empty() {
            return Ok(vec![Box::default(); count]);
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        let columns = columns
            .iter()
            .zip(&self.types)
            .map(|(c, wanted)| Ok(cast(c, wanted)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let rows = self.converter.convert_columns(&columns)?;
        Ok(rows.iter().map(|row| row.data().into()).collect())
    }
}

/// Whether a left row is kept: `matches` present right rows match it, its key is valid or
/// not, and its group has `group`'s counts.
pub(super) fn kept(existence: Existence, matches: usize, key_valid: bool, group: Group) -> bool {
    match existence {
        Existence::Semi => matches > 0,
        Existence::Anti => matches == 0,
        Existence::NotIn => group.rows == 0 || (key_valid && matches == 0 && group.nulls == 0),
    }
}

pub struct SemiJoin {
    existence: Existence,
    codec: JoinCodec,
    correlation: Option<Correlation>,
    /// The left side's columns.
    schema: SchemaRef,
    left: BTreeMap<Option<Box<[u8]>>, Vec<Left>>,
    right: HashMap<Box<[u8]>, Vec<Right>>,
    groups: HashMap<Box<[u8]>, Group>,
    /// `NOT IN`: the join keys of the left rows of each group.
    left_by_group: HashMap<Box<[u8]>, BTreeSet<JoinKey>>,
}

impl SemiJoin {
    /// `schema` is the left side's; the residual condition reads the joined columns
    /// (`joined_schema`). `NOT IN` needs the correlation keys.
    pub fn new(
        existence: Existence,
        left: JoinSide,
        right: JoinSide,
        residual: Option<Arc<dyn PhysicalExpr>>,
        correlation: Option<Correlation>,
        joined_schema: SchemaRef,
    ) -> Result<Self> {
        if existence == Existence::NotIn && residual.is_some() {
            return Err(EngineError::Input(
                "NOT IN with conditions other than equalities".into(),
            ));
        }
        let schema = left.schema.clone();
        Ok(SemiJoin {
            existence,
            codec: JoinCodec::new(left, right, residual, joined_schema)?,
            correlation,
            schema,
            left: BTreeMap::new(),
            right: HashMap::new(),
            groups: HashMap::new(),
            left_by_group: HashMap::new(),
        })
    }

    /// Each row's correlation group (`None` with a NULL in it, or without `NOT IN`).
    fn groups_of(&self, side: usize, batch: &RecordBatch) -> Result<Vec<Option<Box<[u8]>>>> {
        match &self.correlation {
            Some(correlation) => correlation.groups(side, batch),
            None => Ok(vec![None; batch.num_rows()]),
        }
    }

    fn keeps(&self, matches: usize, key_valid: bool, group: Group) -> bool {
        kept(self.existence, matches, key_valid, group)
    }

    fn group(&self, group: &Option<Box<[u8]>>) -> Group {
        group
            .as_ref()
            .and_then(|g| self.groups.get(g))
            .copied()
            .unwrap_or_default()
    }

    /// Whether the residual condition holds for each `(left, right)` pair.
    fn matching(&self, pairs: &[(Row<'_>, Row<'_>)]) -> Result<Vec<bool>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<(Option<Row<'_>>, Option<Row<'_>>)> =
            pairs.iter().map(|(l, r)| (Some(*l), Some(*r))).collect();
        Ok(self.codec.matching(&pairs)?.1)
    }

    /// A left row changed: `adds` one copy, or takes one back.
    fn left_change(
        &mut self,
        key: Option<Box<[u8]>>,
        row: Row<'_>,
        group: Option<Box<[u8]>>,
        adds: bool,
        emitted: &mut Vec<(RowKind, OwnedRow)>,
    ) -> Result<()> {
        let position = self
            .left
            .get(&key)
            .and_then(|rows| rows.iter().position(|l| l.row.row() == row));
        let key_valid = key.is_some();
        let group_counts = self.group(&group);
        match (adds, position) {
            (true, Some(position)) => {
                let Some(present) = self.left.get_mut(&key).and_then(|r| r.get_mut(position))
                else {
                    return Ok(());
                };
                present.count += 1;
                let matches = present.matches;
                if self.keeps(matches, key_valid, group_counts) {
                    emitted.push((RowKind::Insert, row.owned()));
                }
            }
            (true, None) => {
                let partners: Vec<(Row<'_>, usize)> = key
                    .as_ref()
                    .and_then(|k| self.right.get(k))
                    .map(|rows| rows.iter().map(|r| (r.row.row(), r.count)).collect())
                    .unwrap_or_default();
                let pairs: Vec<(Row<'_>, Row<'_>)> =
                    partners.iter().map(|(r, _)| (row, *r)).collect();
                let passed = self.matching(&pairs)?;
                let matches = partners
                    .iter()
                    .zip(&passed)
                    .filter(|(_, passed)| **passed)
                    .map(|((_, count), _)| *count)
                    .sum();
                if self.keeps(matches, key_valid, group_counts) {
                    emitted.push((RowKind::Insert, row.owned()));
                }
                if let Some(group) = &group {
                    self.left_by_group
                        .entry(group.clone())
                        .or_default()
                        .insert(key.clone());
                }
                self.left.entry(key).or_default().push(Left {
                    row: row.owned(),
                    count: 1,
                    matches,
                    group,
                });
            }
            (false, Some(position)) => {
                let Some(rows) = self.left.get_mut(&key) else {
                    return Ok(());
                };
                let present = &mut rows[position];
                let matches = present.matches;
                present.count -= 1;
                if present.count == 0 {
                    rows.remove(position);
                }
                // The group no longer lists the key once no row of the group has it.
                let group_left = rows.iter().any(|l| l.group == group);
                if rows.is_empty() {
                    self.left.remove(&key);
                }
                if let Some(group) = group.as_ref().filter(|_| !group_left)
                    && let Some(keys) = self.left_by_group.get_mut(group)
                {
                    keys.remove(&key);
                    if keys.is_empty() {
                        self.left_by_group.remove(group);
                    }
                }
                if self.keeps(matches, key_valid, group_counts) {
                    emitted.push((RowKind::Delete, row.owned()));
                }
            }
            (false, None) => {}
        }
        Ok(())
    }

    /// A right row changed: `adds` one copy, or takes one back.
    fn right_change(
        &mut self,
        key: Option<Box<[u8]>>,
        row: Row<'_>,
        group: Option<Box<[u8]>>,
        adds: bool,
        emitted: &mut Vec<(RowKind, OwnedRow)>,
    ) -> Result<()> {
        if !adds {
            let present = key
                .as_ref()
                .and_then(|k| self.right.get(k))
                .is_some_and(|rows| rows.iter().any(|r| r.row.row() == row));
            // A NULL-keyed right row counts only in its group (NOT IN); it is not kept, so
            // a retraction of one is taken on trust, as long as the group has it.
            let counted = key.is_none()
                && group
                    .as_ref()
                    .is_some_and(|g| self.groups.get(g).is_some_and(|c| c.nulls > 0));
            if !present && !counted {
                return Ok(());
            }
        }
        let delta: isize = if adds { 1 } else { -1 };
        // Left rows whose match count changes, with their counts before.
        let mut changed: Vec<(JoinKey, usize, usize)> = Vec::new();
        if let Some(key) = &key {
            let lefts: Vec<(usize, Row<'_>)> = self
                .left
                .get(&Some(key.clone()))
                .map(|rows| {
                    rows.iter()
                        .enumerate()
                        .map(|(i, l)| (i, l.row.row()))
                        .collect()
                })
                .unwrap_or_default();
            let pairs: Vec<(Row<'_>, Row<'_>)> = lefts.iter().map(|(_, l)| (*l, row)).collect();
            let passed = self.matching(&pairs)?;
            let positions: Vec<usize> = lefts
                .iter()
                .zip(&passed)
                .filter(|(_, passed)| **passed)
                .map(|((i, _), _)| *i)
                .collect();
            if let Some(rows) = self.left.get_mut(&Some(key.clone())) {
                for position in positions {
                    let left = &mut rows[position];
                    changed.push((Some(key.clone()), position, left.matches));
                    left.matches = left.matches.saturating_add_signed(delta);
                }
            }
            let rows = self.right.entry(key.clone()).or_default();
            match rows.iter().position(|r| r.row.row() == row) {
                Some(position) if adds => rows[position].count += 1,
                Some(position) => {
                    rows[position].count -= 1;
                    if rows[position].count == 0 {
                        rows.remove(position);
                    }
                }
                None if adds => rows.push(Right {
                    row: row.owned(),
                    count: 1,
                }),
                None => {}
            }
            if rows.is_empty() {
                self.right.remove(key);
            }
        }
        // NOT IN: the group's counts; when one of them reaches or leaves 0, every left row
        // of the group may enter or leave the result.
        let mut group_before = None;
        if let Some(group) = &group {
            let counts = self.groups.entry(group.clone()).or_default();
            let before = *counts;
            counts.rows = counts.rows.saturating_add_signed(delta);
            if key.is_none() {
                counts.nulls = counts.nulls.saturating_add_signed(delta);
            }
            let after = *counts;
            if after == Group::default() {
                self.groups.remove(group);
            }
            if (before.rows == 0) != (after.rows == 0) || (before.nulls == 0) != (after.nulls == 0)
            {
                group_before = Some(before);
            }
        }
        let matches_before = |key: &Option<Box<[u8]>>, position: usize, now: usize| -> usize {
            changed
                .iter()
                .find(|(k, p, _)| k == key && *p == position)
                .map_or(now, |(_, _, before)| *before)
        };
        let mut affected: Vec<(Option<Box<[u8]>>, usize)> =
            changed.iter().map(|(k, p, _)| (k.clone(), *p)).collect();
        if let (Some(group), Some(_)) = (&group, group_before) {
            let keys: Vec<Option<Box<[u8]>>> = self
                .left_by_group
                .get(group)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default();
            for key in keys {
                let count = self.left.get(&key).map_or(0, Vec::len);
                for position in 0..count {
                    if self.left[&key][position].group.as_ref() == Some(group) {
                        affected.push((key.clone(), position));
                    }
                }
            }
        }
        affected.sort();
        affected.dedup();
        for (key, position) in affected {
            let Some(left) = self.left.get(&key).and_then(|rows| rows.get(position)) else {
                continue;
            };
            let before_group = match (&left.group, group_before) {
                (Some(g), Some(before)) if Some(g) == group.as_ref() => before,
                _ => self.group(&left.group),
            };
            let now_group = self.group(&left.group);
            let before = self.keeps(
                matches_before(&key, position, left.matches),
                key.is_some(),
                before_group,
            );
            let after = self.keeps(left.matches, key.is_some(), now_group);
            if before != after {
                let kind = if after {
                    RowKind::Insert
                } else {
                    RowKind::Delete
                };
                emitted.extend((0..left.count).map(|_| (kind, left.row.clone())));
            }
        }
        Ok(())
    }
}

impl Operator for SemiJoin {
    fn name(&self) -> &str {
        "semi_join"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let side = input.min(1);
        let batch = &changes.rows;
        let keys = self.codec.keys(side, batch)?;
        let rows = self.codec.rows(side, batch)?;
        let groups = self.groups_of(side, batch)?;
        let mut emitted = Vec::new();
        for (index, group) in groups.into_iter().enumerate() {
            let key = keys.valid[index].then(|| Box::from(keys.rows.row(index).data()));
            let adds = !matches!(changes.kind(index), RowKind::UpdateBefore | RowKind::Delete);
            let row = rows.row(index);
            if side == 0 {
                self.left_change(key, row, group, adds, &mut emitted)?;
            } else {
                self.right_change(key, row, group, adds, &mut emitted)?;
            }
        }
        if emitted.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(Option<Row<'_>>, Option<Row<'_>>)> = emitted
            .iter()
            .map(|(_, row)| (Some(row.row()), None))
            .collect();
        let joined = self.codec.joined(&pairs)?;
        let left_columns = self.schema.fields().len();
        let rows = batch_of(
            &self.schema,
            &joined.columns()[..left_columns],
            emitted.len(),
        )?;
        let kinds = datafusion::arrow::array::UInt8Array::from_iter_values(
            emitted.iter().map(|(kind, _)| *kind as u8),
        );
        out.push(Changes {
            rows,
            kinds: Some(kinds),
        });
        Ok(())
    }

    fn take_failures(&mut self) -> Vec<crate::RowFailure> {
        self.codec.take_failures()
    }

    fn screened_inputs(&self, input: usize) -> Vec<Arc<dyn PhysicalExpr>> {
        self.codec.side(input.min(1)).keys.clone()
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        let lefts: Vec<&Left> = self.left.values().flatten().collect();
        self.codec
            .save_rows(0, lefts.iter().map(|l| l.row.row()), state)?;
        state.arrays(
            &[
                usize_column(lefts.iter().map(|l| l.count)),
                usize_column(lefts.iter().map(|l| l.matches)),
            ],
            lefts.len(),
        )?;
        let mut keys: Vec<&Box<[u8]>> = self.right.keys().collect();
        keys.sort();
        let rights: Vec<&Right> = keys.iter().flat_map(|k| &self.right[*k]).collect();
        self.codec
            .save_rows(1, rights.iter().map(|r| r.row.row()), state)?;
        state.arrays(
            &[usize_column(rights.iter().map(|r| r.count))],
            rights.len(),
        )?;
        // NOT IN groups count right rows with a NULL operand, which are not kept.
        let mut groups: Vec<(&Box<[u8]>, &Group)> = self.groups.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        let names: Vec<&[u8]> = groups.iter().map(|(g, _)| g.as_ref()).collect();
        match &self.correlation {
            Some(correlation) => correlation.save(&names, state)?,
            None => state.arrays(&[], 0)?,
        }
        state.arrays(
            &[
                usize_column(groups.iter().map(|(_, c)| c.rows)),
                usize_column(groups.iter().map(|(_, c)| c.nulls)),
            ],
            groups.len(),
        )
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        let rows = self.codec.load_rows(0, state)?;
        let (columns, count) = state.arrays()?;
        let counts = saved_usizes(&columns, 0, count)?;
        let matches = saved_usizes(&columns, 1, count)?;
        let batch = self.codec.side_batch(0, rows.iter())?;
        let keys = self.codec.keys(0, &batch)?;
        let groups = self.groups_of(0, &batch)?;
        for (index, group) in groups.into_iter().enumerate().take(count) {
            let key = keys.valid[index].then(|| Box::from(keys.rows.row(index).data()));
            if let Some(group) = &group {
                self.left_by_group
                    .entry(group.clone())
                    .or_default()
                    .insert(key.clone());
            }
            self.left.entry(key).or_default().push(Left {
                row: rows.row(index).owned(),
                count: counts[index],
                matches: matches[index],
                group,
            });
        }
        let rows = self.codec.load_rows(1, state)?;
        let (columns, count) = state.arrays()?;
        let counts = saved_usizes(&columns, 0, count)?;
        let batch = self.codec.side_batch(1, rows.iter())?;
        let keys = self.codec.keys(1, &batch)?;
        for (index, count) in counts.into_iter().enumerate() {
            if !keys.valid[index] {
                continue;
            }
            self.right
                .entry(keys.rows.row(index).data().into())
                .or_default()
                .push(Right {
                    row: rows.row(index).owned(),
                    count,
                });
        }
        let names = match &self.correlation {
            Some(correlation) => correlation.load(state)?,
            None => {
                state.arrays()?;
                Vec::new()
            }
        };
        let (columns, count) = state.arrays()?;
        let totals = saved_usizes(&columns, 0, count)?;
        let nulls = saved_usizes(&columns, 1, count)?;
        if names.len() != count {
            return Err(EngineError::Checkpoint(
                "NOT IN groups do not fit their counts".into(),
            ));
        }
        for (index, name) in names.into_iter().enumerate() {
            self.groups.insert(
                name,
                Group {
                    rows: totals[index],
                    nulls: nulls[index],
                },
            );
        }
        Ok(())
    }

    fn metrics(&self) -> OperatorMetrics {
        let left: usize = self
            .left
            .values()
            .flatten()
            .map(|l| l.row.as_ref().len())
            .sum();
        let right: usize = self
            .right
            .values()
            .flatten()
            .map(|r| r.row.as_ref().len())
            .sum();
        OperatorMetrics {
            state_bytes: left + right,
            open_windows: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::util::display::array_value_to_string;

    use super::super::join::checkpoint_tests::{
        Random, Script, Step, joined_schema, residual, restores_alike, side,
    };
    use super::*;

    /// Each row of `changes` as text, with whether it adds.
    fn texts(changes: &Changes) -> Result<Vec<(bool, Vec<String>)>> {
        let rows = &changes.rows;
        (0..rows.num_rows())
            .map(|row| {
                let cells = rows
                    .columns()
                    .iter()
                    .map(|column| array_value_to_string(column, row))
                    .collect::<Result<Vec<_>, _>>()?;
                let adds = !matches!(changes.kind(row), RowKind::UpdateBefore | RowKind::Delete);
                Ok((adds, cells))
            })
            .collect()
    }

    /// Folds changes into a multiset; a removal of an absent row is ignored, as the join
    /// ignores it, unless `strict`, when it is an error (the join's output must not do it).
    fn fold(set: &mut BTreeMap<Vec<String>, usize>, changes: &Changes, strict: bool) -> Result<()> {
        for (adds, cells) in texts(changes)? {
            if adds {
                *set.entry(cells).or_default() += 1;
                continue;
            }
            match set.get_mut(&cells) {
                Some(count) => {
                    *count -= 1;
                    if *count == 0 {
                        set.remove(&cells);
                    }
                }
                None if strict => {
                    return Err(EngineError::Input(format!("took back absent {cells:?}")));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// What the join should hold at the end, from both sides' rows: the left rows
    /// `existence` keeps, the key being column 0 and the residual `lv <> rv`.
    fn expected(
        existence: Existence,
        condition: bool,
        sides: &[BTreeMap<Vec<String>, usize>; 2],
    ) -> BTreeMap<Vec<String>, usize> {
        let null = |cell: &String| cell.is_empty();
        let right_rows: usize = sides[1].values().sum();
        let right_nulls = sides[1]
            .iter()
            .filter(|(cells, _)| null(&cells[0]))
            .map(|(_, count)| count)
            .sum::<usize>();
        let mut kept = BTreeMap::new();
        for (left, count) in &sides[0] {
            let matches = sides[1]
                .iter()
                .filter(|(right, _)| {
                    !null(&left[0]) && left[0] == right[0] && (!condition || (left[2] != right[2]))
                })
                .count();
            let keep = match existence {
                Existence::Semi => matches > 0,
                Existence::Anti => matches == 0,
                Existence::NotIn => {
                    right_rows == 0 || (!null(&left[0]) && matches == 0 && right_nulls == 0)
                }
            };
            if keep {
                kept.insert(left.clone(), *count);
            }
        }
        kept
    }

    #[test]
    fn the_result_is_what_the_rows_present_say_whatever_the_order() -> Result<()> {
        let existences = [Existence::Semi, Existence::Anti, Existence::NotIn];
        for seed in 0..90u64 {
            let mut random = Random::new(seed);
            let existence = existences[seed as usize % 3];
            let condition = existence != Existence::NotIn && seed % 2 == 0;
            let (left, right) = (side("l", false), side("r", false));
            let schemas = [left.schema.clone(), right.schema.clone()];
            let joined = joined_schema(&left, &right);
            let correlation = (existence == Existence::NotIn)
                .then(|| Correlation::new([Vec::new(), Vec::new()], &schemas[0]))
                .transpose()?;
            let mut join = SemiJoin::new(
                existence,
                left,
                right,
                condition.then(residual),
                correlation,
                joined,
            )?;
            let script = Script {
                updating: [seed % 5 != 0, seed % 3 != 0],
                align: 0,
                steps: 40,
            };
            let mut sides = [BTreeMap::new(), BTreeMap::new()];
            let mut result = BTreeMap::new();
            for step in script.steps(&mut random, [&schemas[0], &schemas[1]])? {
                let Step::Rows(input, changes) = step else {
                    continue;
                };
                fold(&mut sides[input], &changes, false)?;
                let mut out = Vec::new();
                join.process(input, changes, &mut out)?;
                for changes in &out {
                    fold(&mut result, changes, true)
                        .map_err(|e| EngineError::Input(format!("seed {seed}: {e}")))?;
                }
                assert_eq!(
                    result,
                    expected(existence, condition, &sides),
                    "seed {seed} ({existence:?})"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn a_restored_join_goes_on_as_the_original() -> Result<()> {
        let existences = [Existence::Semi, Existence::Anti, Existence::NotIn];
        for seed in 0..30u64 {
            let mut random = Random::new(seed);
            let existence = existences[seed as usize % 3];
            let build = || {
                let (left, right) = (side("l", false), side("r", false));
                let schema = joined_schema(&left, &right);
                let correlation = (existence == Existence::NotIn)
                    .then(|| Correlation::new([Vec::new(), Vec::new()], &left.schema))
                    .transpose()?;
                SemiJoin::new(existence, left, right, None, correlation, schema)
            };
            let script = Script {
                updating: [true, true],
                align: 0,
                steps: 30,
            };
            restores_alike(seed, &mut random, build, &script, false)?;
        }
        Ok(())
    }
}
