//! Matching a batch against the index: per shape, the rows hash-partitioned, each
//! partition's posting list visited, and each alert listed tested on the partition's rows at
//! once, as a bitmap, its tests' bitmaps shared by the alerts that make them.

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::record_batch::RecordBatch;

use super::buffers::{Buffers, push_found};
use super::firings::{AlertId, Matches};
use super::posting_list::{GENERALS, PostingList, Visit};
use super::shape::Shape;
use super::{AlertIndex, Unindexed};
use crate::arranged::{Arranged, Part};
use crate::conjuncts::{narrow, narrow_generals};
use crate::predicate::{ColumnRef, Compiled, Cond, Views, evaluate};
use crate::{AlertError, Result};

/// Residual expression `index` of `compiled`, evaluated on `batch`.
fn evaluate_residual(
    compiled: &Compiled,
    index: usize,
    batch: &RecordBatch,
) -> Result<BooleanArray> {
    let expr = compiled
        .residuals
        .get(index)
        .ok_or_else(|| AlertError::Invalid(format!("no residual {index}")))?;
    let values = expr
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| AlertError::Invalid(e.to_string()))?;
    values
        .as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| AlertError::Invalid("a condition is not boolean".into()))
}

/// A partition being tested: the batch and its rows laid out for one shape, and the
/// partition.
#[derive(Clone, Copy)]
struct Place<'a> {
    arranged: &'a Arranged,
    part: Part,
    views: &'a Views,
    batch: &'a RecordBatch,
}

/// A partition of at most this many rows has its tests made for each alert, not shared.
const FEW_ROWS: usize = 4;

impl AlertIndex {
    pub(super) fn find(
        &mut self,
        batch: &RecordBatch,
        unindexed: Option<Unindexed>,
    ) -> Result<Matches> {
        if self.live == 0 || batch.num_rows() == 0 {
            return Ok(Matches::default());
        }
        let used: Vec<ColumnRef> = self.used.iter().copied().collect();
        let mut views = Views::new(batch, &used)?;
        let symbol_columns: Vec<usize> = self.symbol_columns.iter().copied().collect();
        self.symbols.look_up(&mut views, &symbol_columns);
        let rows = batch.num_rows();
        let mut buffers = std::mem::take(&mut self.buffers);
        buffers.clear(self.shapes.len().max(1), rows);
        let found = match unindexed {
            None => (0..self.shapes.len())
                .try_for_each(|at| self.fire_listed(at, &views, &used, batch, &mut buffers)),
            Some(how) => {
                let arranged = Arranged::whole(&views, rows, &used, how == Unindexed::RowByRow);
                arranged.parts.iter().try_for_each(|&part| {
                    let place = Place {
                        arranged: &arranged,
                        part,
                        views: &views,
                        batch,
                    };
                    buffers.start_partition(part.end - part.start);
                    self.spans
                        .iter()
                        .enumerate()
                        .try_for_each(|(id, &(start, end))| {
                            let numbers = self.numbers.get(start as usize..end as usize);
                            let numbers = numbers.unwrap_or_default();
                            let all = 0..part.end - part.start;
                            self.fire(id as AlertId, numbers, &place, all, &mut buffers)
                        })?;
                    let rows = arranged.rows.get(part.start..part.end);
                    buffers.finish_partition(0, rows.unwrap_or_default());
                    Ok(())
                })
            }
        };
        let fired = buffers.fired_by_row(rows);
        self.buffers = buffers;
        found.map(|()| fired)
    }

    /// Tests the alerts of shape `at` on the rows of their partitions. When a list's
    /// bounded column is the one the rows are ordered by, the rows within an alert's
    /// bounds are found by bisection (shared by the alerts bounded by one test), and the
    /// alert is passed over when there are none; else it is when its bounds miss the
    /// partition's least to greatest value. The tests the partition's string implies are
    /// not made.
    fn fire_listed(
        &self,
        at: usize,
        views: &Views,
        used: &[ColumnRef],
        batch: &RecordBatch,
        buffers: &mut Buffers,
    ) -> Result<()> {
        let (Some(&shape), Some(lists), Some(&order)) =
            (self.shapes.get(at), self.lists.get(at), self.orders.get(at))
        else {
            return Ok(());
        };
        let rows = batch.num_rows();
        let arranged = match shape {
            Shape::All => Arranged::whole(views, rows, used, false),
            shape => Arranged::by_hash(
                views,
                rows,
                used,
                |row| shape.row_hash(views, row),
                shape.symbol_column(),
                order,
            ),
        };
        for &part in &arranged.parts {
            let Some(listed) = lists.get(&part.hash) else {
                continue;
            };
            let place = Place {
                arranged: &arranged,
                part,
                views,
                batch,
            };
            let size = part.end - part.start;
            buffers.masks.start(size, self.tests.len());
            buffers.start_partition(size);
            match listed
                .bounded
                .and_then(|column| arranged.ordered(column, part))
            {
                Some(values) => {
                    let implied = listed.implied(part);
                    for Visit {
                        id,
                        numbers,
                        implied: skip,
                        low,
                        high,
                    } in listed.alerts()
                    {
                        let (positions, left) = match PostingList::bounding(numbers, low, high) {
                            Some((number, left)) => {
                                let bisect = || {
                                    let from = values.partition_point(|v| *v < low);
                                    from..values.partition_point(|v| *v <= high)
                                };
                                // Alerts bounded by one test share its bisection of a
                                // partition larger than a few rows.
                                let positions = match size <= FEW_ROWS {
                                    true => bisect(),
                                    false => buffers.masks.range(number, bisect),
                                };
                                (positions, left)
                            }
                            None => (0..size, numbers),
                        };
                        let left = match implied {
                            true => left.get(skip..).unwrap_or_default(),
                            false => left,
                        };
                        if !positions.is_empty() {
                            self.fire_shared(id, left, &place, positions, buffers)?;
                        }
                    }
                }
                None => {
                    let (least, greatest) = listed
                        .bounded
                        .and_then(|column| arranged.extent(column, part))
                        .unwrap_or((i64::MIN, i64::MAX));
                    for Visit {
                        id,
                        numbers,
                        low,
                        high,
                        ..
                    } in listed.alerts()
                    {
                        if low <= greatest && least <= high {
                            self.fire_shared(id, numbers, &place, 0..size, buffers)?;
                        }
                    }
                }
            }
            let rows = arranged.rows.get(part.start..part.end);
            buffers.finish_partition(at, rows.unwrap_or_default());
        }
        Ok(())
    }

    /// Adds `(id, position)` to the firings on the place's partition for each of
    /// `positions` where alert `id` (with tests `numbers`) is true, ANDing the
    /// results of its tests over the partition, made once for all its alerts.
    fn fire_shared(
        &self,
        id: AlertId,
        numbers: &[u32],
        place: &Place,
        positions: std::ops::Range<usize>,
        buffers: &mut Buffers,
    ) -> Result<()> {
        let Place {
            arranged,
            part,
            views,
            ..
        } = *place;
        let size = part.end - part.start;
        buffers.start_alert(size, positions);
        for &number in numbers {
            if number == GENERALS {
                return self.fire_general(id, place, buffers);
            }
            if size <= FEW_ROWS {
                // Made on the alert's rows left: few are shared on a partition this small.
                let test = self.tests.get(number);
                narrow(test, arranged, part, views, &mut buffers.words);
                if buffers.words.iter().all(|word| *word == 0) {
                    return Ok(());
                }
                continue;
            }
            let mask = buffers
                .masks
                .get(number, |mask| match self.tests.get(number) {
                    Some(test) => narrow([test], arranged, part, views, mask),
                    None => mask.fill(0),
                });
            let mut left = 0;
            for (word, mask) in buffers.words.iter_mut().zip(mask) {
                *word &= mask;
                left |= *word;
            }
            if left == 0 {
                return Ok(());
            }
        }
        push_found(buffers, id);
        Ok(())
    }

    /// Adds `(id, position)` to the firings on the place's partition for each of
    /// `positions` where alert `id` (with tests `numbers`) is true, testing it on its own.
    fn fire(
        &self,
        id: AlertId,
        numbers: &[u32],
        place: &Place,
        positions: std::ops::Range<usize>,
        buffers: &mut Buffers,
    ) -> Result<()> {
        let Place {
            arranged,
            part,
            views,
            ..
        } = *place;
        buffers.start_alert(part.end - part.start, positions);
        let tests = numbers.iter().filter_map(|&number| self.tests.get(number));
        narrow(tests, arranged, part, views, &mut buffers.words);
        match numbers.last() {
            Some(&GENERALS) => self.fire_general(id, place, buffers),
            _ => {
                push_found(buffers, id);
                Ok(())
            }
        }
    }

    /// Tests the general conjuncts of alert `id` on the rows of the place's partition
    /// left set in `buffers.words`, then adds the rows still set to the firings.
    fn fire_general(&self, id: AlertId, place: &Place, buffers: &mut Buffers) -> Result<()> {
        let Place {
            arranged,
            part,
            views,
            batch,
            ..
        } = *place;
        let Buffers {
            words, residuals, ..
        } = buffers;
        let generals = self.generals.get(id as usize).map_or(&[][..], |g| &g[..]);
        if words.iter().all(|word| *word == 0) {
            return Ok(());
        }
        // Residual expressions are evaluated on the whole batch, once, when needed.
        let mut general = |cond: &Cond, row: usize| -> Result<Option<bool>> {
            evaluate(cond, views, row, &mut |index| {
                let values = match residuals.entry((id, index)) {
                    std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        let Some(Some(alert)) = self.alerts.get(id as usize) else {
                            return Ok(None);
                        };
                        slot.insert(evaluate_residual(&alert.compiled, index, batch)?)
                    }
                };
                Ok(values.is_valid(row).then(|| values.value(row)))
            })
        };
        narrow_generals(generals, arranged, part, words, &mut general)?;
        push_found(buffers, id);
        Ok(())
    }
}
