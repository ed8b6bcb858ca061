//! The named alerts over one source, matched together through one [`AlertIndex`], with
//! each alert's optional suppression.
//!
//! A firing is a row of the source that made an alert's condition TRUE. Only rows that
//! hold from then on fire: inserts and the new versions of updated rows (`+I`, `+U`);
//! retractions and deletes never do. An alert with a suppression interval notifies at
//! most once per key per interval: a row of a key less than `interval` away (either side,
//! as rows may come out of order) from a notified firing of that key is passed over. The
//! state is the index, and per suppressed alert and key the event times of its notified
//! firings that can still pass a row over; the watermark drops a time once it reaches
//! the end of its interval, since no row that is on time can be passed over by it any
//! more. So a late row (behind the watermark) that no kept time passes over cannot be
//! decided: a dropped time might have. Its firing is not notified but goes to the late
//! side output (op `late`) and is counted there, as late rows are for windows.
//!
//! Firing rows refer to their events rather than copy them: each column is a dictionary
//! over the event batch's column (the alert's name over all the alerts' names), keyed by
//! the firing's row, one key buffer shared by all columns. Written output
//! (`sluice_engine::output`) turns them into plain values.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int32DictionaryArray, Int64Array,
    NullArray, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::{filter_record_batch, take};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use sluice_engine::state::{StateReader, StateWriter};
use sluice_engine::time::Millis;
use sluice_engine::{Changes, EngineError, RowKind};

use crate::{AlertError, Result};
use crate::{AlertId, AlertIndex, Compiled, Matches};

/// The column of a firing that names the alert; the event's columns follow it.
pub const ALERT_COLUMN: &str = "alert";

/// At most one firing per key per `interval` of event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub interval: Millis,
    /// The event's columns that make the key (none: one key for the whole alert).
    pub key: Vec<usize>,
    /// The event-time column (a timestamp).
    pub time: usize,
}

/// A registered alert's suppression, when it has one (its name is in [`Names`]; the index
/// counts the rows it matched).
struct Registered {
    suppression: Option<Box<Suppressed>>,
}

/// The alerts' names, by number, one after another, and as an array (made when firings
/// first need it after a change): a firing's name is its alert's number in that array.
#[derive(Default)]
struct Names {
    bytes: Vec<u8>,
    /// Where each alert's name ends in `bytes` (it starts where the one before ends).
    ends: Vec<usize>,
    array: Option<ArrayRef>,
}

impl Names {
    /// The names as an array, by alert number.
    fn array(&mut self) -> Result<ArrayRef> {
        if let Some(array) = &self.array {
            return Ok(array.clone());
        }
        let mut ends = Vec::with_capacity(self.ends.len() + 1);
        ends.push(0i32);
        for &end in &self.ends {
            ends.push(i32::try_from(end).map_err(|_| too_many_names())?);
        }
        let names = StringArray::try_new(
            OffsetBuffer::new(ends.into()),
            self.bytes.clone().into(),
            None,
        )
        .map_err(arrow_error)?;
        let array: ArrayRef = Arc::new(names);
        self.array = Some(array.clone());
        Ok(array)
    }

    /// Sets alert `id`'s name: alerts are numbered in order, so it is the next one or a
    /// number given before (whose name stays).
    fn set(&mut self, id: AlertId, name: &str) {
        self.array = None;
        while self.ends.len() <= id as usize {
            if self.ends.len() == id as usize {
                self.bytes.extend_from_slice(name.as_bytes());
            }
            self.ends.push(self.bytes.len());
        }
    }
}

/// A suppression; per key, the event times (in order) of the notified firings that can
/// still pass a row over; and how many matched rows were not notified: passed over, or
/// late.
struct Suppressed {
    rule: Suppression,
    notified: HashMap<Vec<ScalarValue>, Vec<Millis>>,
    not_notified: u64,
}

/// What becomes of a firing of a suppressed alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Notify,
    PassOver,
    /// Behind the watermark, and no kept time passes it over: a dropped one might have.
    Late,
}

impl Registered {
    fn suppressed_keys(&self) -> usize {
        self.suppression.as_ref().map_or(0, |s| s.notified.len())
    }

    fn not_notified(&self) -> u64 {
        self.suppression.as_ref().map_or(0, |s| s.not_notified)
    }
}

/// What a batch of events fired: the firings to notify, and those of suppressed alerts
/// on late rows that cannot be decided (see the module's description).
#[derive(Debug, Default)]
pub struct Fired {
    pub notified: Option<RecordBatch>,
    pub late: Option<RecordBatch>,
}

pub struct AlertSet {
    events: SchemaRef,
    firings: SchemaRef,
    index: AlertIndex,
    /// By alert number (numbers are not reused).
    alerts: Vec<Option<Registered>>,
    /// By alert number: whether it has a suppression (apart from `alerts`, so that the loop
    /// over a batch's firings reads a dense array).
    suppresses: Vec<bool>,
    names: Names,
    live: usize,
    /// The alerts with a suppression, which the watermark expires keys of.
    suppressing: Vec<AlertId>,
    /// Ordered rather than hashed: a hash table of a million names takes a quarter of a
    /// second to grow, which would hold up the stream while alerts are registered.
    by_name: BTreeMap<Arc<str>, AlertId>,
    /// The latest watermark given to [`AlertSet::expire`].
    watermark: Millis,
}

impl AlertSet {
    /// An empty set over events of schema `events`.
    pub fn new(events: SchemaRef) -> Result<AlertSet> {
        if events.field_with_name(ALERT_COLUMN).is_ok() {
            return Err(AlertError::Invalid(format!(
                "the events already have a column '{ALERT_COLUMN}', which firings use for the \
                 alert's name: rename it in a view and put the alerts on the view"
            )));
        }
        let mut fields = vec![Arc::new(Field::new(
            ALERT_COLUMN,
            referring(&DataType::Utf8),
            false,
        ))];
        fields.extend(events.fields().iter().map(|field| {
            Arc::new(
                field
                    .as_ref()
                    .clone()
                    .with_data_type(referring(field.data_type())),
            )
        }));
        Ok(AlertSet {
            firings: Arc::new(Schema::new(fields)),
            events,
            index: AlertIndex::new(),
            alerts: Vec::new(),
            suppresses: Vec::new(),
            names: Names::default(),
            live: 0,
            suppressing: Vec::new(),
            by_name: BTreeMap::new(),
            watermark: Millis::MIN,
        })
    }

    /// The schema of the events the alerts are on.
    pub fn events(&self) -> &SchemaRef {
        &self.events
    }

    /// The schema of firings: the alert's name, then the event's columns (each a
    /// dictionary over the values it refers to).
    pub fn firings(&self) -> &SchemaRef {
        &self.firings
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Whether alert `name` is registered with a suppression.
    pub fn suppresses(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&id| self.suppresses.get(id as usize).copied().unwrap_or(false))
    }

    /// Registers alert `name` (compiled against [`AlertSet::events`]).
    pub fn insert(
        &mut self,
        name: &str,
        compiled: Compiled,
        suppression: Option<Suppression>,
    ) -> Result<()> {
        if self.contains(name) {
            return Err(AlertError::Invalid(format!(
                "alert '{name}' already exists"
            )));
        }
        let id = self.index.insert(compiled);
        self.names.set(id, name);
        self.by_name.insert(name.into(), id);
        let slot = id as usize;
        if self.alerts.len() <= slot {
            self.alerts.resize_with(slot + 1, || None);
            self.suppresses.resize(slot + 1, false);
        }
        self.suppresses[slot] = suppression.is_some();
        if suppression.is_some() {
            self.suppressing.push(id);
        }
        self.alerts[slot] = Some(Registered {
            suppression: suppression.map(|rule| {
                Box::new(Suppressed {
                    rule,
                    notified: HashMap::new(),
                    not_notified: 0,
                })
            }),
        });
        self.live += 1;
        Ok(())
    }

    /// Removes alert `name`; gives whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(id) = self.by_name.remove(name) else {
            return false;
        };
        if let Some(slot) = self.alerts.get_mut(id as usize)
            && slot.take().is_some()
        {
            self.live -= 1;
        }
        if let Some(suppresses) = self.suppresses.get_mut(id as usize) {
            *suppresses = false;
        }
        self.suppressing.retain(|s| *s != id);
        self.index.remove(id)
    }

    /// Every alert's name and how many rows it has notified of so far, in order of name.
    pub fn fired_by_name(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.by_name.iter().map(|(name, &id)| {
            let alert = self.alerts.get(id as usize).and_then(Option::as_ref);
            let not_notified = alert.map_or(0, Registered::not_notified);
            (
                name.as_ref(),
                self.index.fired(id).saturating_sub(not_notified),
            )
        })
    }

    /// Keys under suppression, over all alerts.
    pub fn suppressed_keys(&self) -> usize {
        self.alerts
            .iter()
            .flatten()
            .map(Registered::suppressed_keys)
            .sum()
    }

    /// The firings `changes` cause, in row order and, within a row, in registration order.
    pub fn fire(&mut self, changes: &Changes) -> Result<Fired> {
        if self.live == 0 || changes.num_rows() == 0 {
            return Ok(Fired::default());
        }
        let events = match &changes.kinds {
            None => changes.rows.clone(),
            Some(_) => {
                let holds: Vec<bool> = (0..changes.num_rows())
                    .map(|row| matches!(changes.kind(row), RowKind::Insert | RowKind::UpdateAfter))
                    .collect();
                filter_record_batch(&changes.rows, &holds.into()).map_err(arrow_error)?
            }
        };
        if events.num_rows() > i32::MAX as usize {
            return Err(too_many_rows());
        }
        let matches = self.index.matches(&events)?;
        let (notified, late) = match self.suppressing.is_empty() {
            true => (matches, Matches::default()),
            false => self.decide(&events, matches)?,
        };
        Ok(Fired {
            notified: self.firing_rows(&events, notified)?,
            late: self.firing_rows(&events, late)?,
        })
    }

    /// `matches` of `events` as firing rows; none when there are none.
    fn firing_rows(
        &mut self,
        events: &RecordBatch,
        Matches { rows, alerts }: Matches,
    ) -> Result<Option<RecordBatch>> {
        if rows.is_empty() {
            return Ok(None);
        }
        // The rows, checked once to be rows of the batch, then put over each column.
        let rows =
            Int32DictionaryArray::try_new(keys(rows), Arc::new(NullArray::new(events.num_rows())))
                .map_err(arrow_error)?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.firings.fields().len());
        let names = Int32DictionaryArray::try_new(keys(alerts), self.names.array()?)
            .map_err(arrow_error)?;
        columns.push(Arc::new(names));
        for column in events.columns() {
            columns.push(refer(column, &rows)?);
        }
        RecordBatch::try_new(self.firings.clone(), columns)
            .map(Some)
            .map_err(arrow_error)
    }

    /// `matches` split into the firings to notify and the late ones; the firings their
    /// suppression passes over are in neither.
    fn decide(&mut self, events: &RecordBatch, matches: Matches) -> Result<(Matches, Matches)> {
        let mut notified = Matches {
            rows: Vec::with_capacity(matches.len()),
            alerts: Vec::with_capacity(matches.len()),
        };
        let mut late = Matches::default();
        for (row, id) in matches.rows.into_iter().zip(matches.alerts) {
            let at = id as usize;
            let suppressed = match self.suppresses.get(at).copied().unwrap_or(false) {
                true => self.alerts.get_mut(at),
                false => None,
            };
            let decision = match suppressed {
                Some(Some(Registered {
                    suppression: Some(suppressed),
                })) => {
                    let decision = suppressed.decide(events, row as usize, self.watermark)?;
                    if decision != Decision::Notify {
                        suppressed.not_notified += 1;
                    }
                    decision
                }
                _ => Decision::Notify,
            };
            let into = match decision {
                Decision::Notify => &mut notified,
                Decision::Late => &mut late,
                Decision::PassOver => continue,
            };
            into.rows.push(row);
            into.alerts.push(id);
        }
        Ok((notified, late))
    }

    /// Drops the notified times whose interval ended at or before `watermark`; rows behind
    /// it are late from now on.
    pub fn expire(&mut self, watermark: Millis) {
        self.watermark = self.watermark.max(watermark);
        for &id in &self.suppressing {
            let Some(Some(Registered {
                suppression: Some(suppressed),
                ..
            })) = self.alerts.get_mut(id as usize)
            else {
                continue;
            };
            let interval = suppressed.rule.interval;
            suppressed.notified.retain(|_, times| {
                let ended = times.partition_point(|at| at.saturating_add(interval) <= watermark);
                times.drain(..ended);
                !times.is_empty()
            });
        }
    }
}

/// The saved state's columns per alert, in order.
const NAME: usize = 0;
const FIRED: usize = 1;
const SUPPRESSED: usize = 2;
const NOT_NOTIFIED: usize = 3;
const KEYS: usize = 4;

impl AlertSet {
    /// Writes what the alerts have done so far (see [`crate::AlertOperator`]'s
    /// **Checkpoint**): the watermark and, per alert by name, the rows it fired on and its
    /// suppression's state. The alerts themselves are registered again by their statements.
    pub fn save_state(&self, state: &mut StateWriter) -> sluice_engine::Result<()> {
        state.label("alert set");
        state.i64(self.watermark);
        let alerts: Vec<(&str, AlertId, Option<&Suppressed>)> = self
            .by_name
            .iter()
            .map(|(name, &id)| {
                let suppressed = self
                    .alerts
                    .get(id as usize)
                    .and_then(Option::as_ref)
                    .and_then(|alert| alert.suppression.as_deref());
                (name.as_ref(), id, suppressed)
            })
            .collect();
        let count = alerts.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                alerts.iter().map(|(name, _, _)| *name),
            )),
            Arc::new(UInt64Array::from_iter_values(
                alerts.iter().map(|(_, id, _)| self.index.fired(*id)),
            )),
            Arc::new(BooleanArray::from_iter(
                alerts.iter().map(|(_, _, s)| Some(s.is_some())),
            )),
            Arc::new(UInt64Array::from_iter_values(
                alerts
                    .iter()
                    .map(|(_, _, s)| s.map_or(0, |s| s.not_notified)),
            )),
            Arc::new(UInt64Array::from_iter_values(
                alerts
                    .iter()
                    .map(|(_, _, s)| s.map_or(0, |s| s.notified.len() as u64)),
            )),
        ];
        state.arrays(&columns, count)?;
        for suppressed in alerts.iter().filter_map(|(_, _, s)| *s) {
            suppressed.save_state(state)?;
        }
        Ok(())
    }

    /// Reads what [`AlertSet::save_state`] wrote into a set where the same alerts have been
    /// registered (under any numbers) and no row has been matched.
    pub fn load_state(&mut self, state: &mut StateReader) -> sluice_engine::Result<()> {
        state.label("alert set")?;
        self.watermark = state.i64()?;
        let (columns, count) = state.arrays()?;
        let names = columns
            .get(NAME)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| checkpoint_error("the alerts' names are not strings"))?;
        let number = |index: usize| {
            columns
                .get(index)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or_else(|| checkpoint_error("the alerts' counts are not numbers"))
        };
        let (fired, not_notified, keys) = (number(FIRED)?, number(NOT_NOTIFIED)?, number(KEYS)?);
        let suppressed = columns
            .get(SUPPRESSED)
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| checkpoint_error("the alerts' suppressions are not booleans"))?;
        if count != self.by_name.len() {
            return Err(checkpoint_error(&format!(
                "the checkpoint has {count} alerts, the set {}",
                self.by_name.len()
            )));
        }
        for row in 0..count {
            let name = names.value(row);
            let id = *self.by_name.get(name).ok_or_else(|| {
                checkpoint_error(&format!(
                    "alert '{name}' of the checkpoint is not registered"
                ))
            })?;
            self.index.set_fired(id, fired.value(row));
            let registered = self
                .alerts
                .get_mut(id as usize)
                .and_then(Option::as_mut)
                .and_then(|alert| alert.suppression.as_deref_mut());
            match (registered, suppressed.value(row)) {
                (None, false) => {}
                (Some(registered), true) => {
                    registered.not_notified = not_notified.value(row);
                    registered.load_state(state, keys.value(row) as usize)?;
                }
                (registered, _) => {
                    let (now, then) = match registered {
                        Some(_) => ("with", "none"),
                        None => ("without", "one"),
                    };
                    return Err(checkpoint_error(&format!(
                        "alert '{name}' is registered {now} a suppression, and had {then} when \
                         the checkpoint was taken"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Suppressed {
    /// Writes the notified times, by key in the keys' order: the key columns with each key's
    /// number of times, then the times one after another. Nothing when no key is kept.
    fn save_state(&self, state: &mut StateWriter) -> sluice_engine::Result<()> {
        if self.notified.is_empty() {
            return Ok(());
        }
        let entries: Vec<(&Vec<ScalarValue>, &Vec<Millis>)> = self.notified.iter().collect();
        let mut columns = (0..self.rule.key.len())
            .map(|column| {
                ScalarValue::iter_to_array(
                    entries
                        .iter()
                        .map(|(key, _)| key.get(column).cloned().unwrap_or(ScalarValue::Null)),
                )
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        columns.push(Arc::new(UInt64Array::from_iter_values(
            entries.iter().map(|(_, times)| times.len() as u64),
        )));
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        if !self.rule.key.is_empty() {
            let keys = &columns[..self.rule.key.len()];
            let converter = RowConverter::new(
                keys.iter()
                    .map(|c| SortField::new(c.data_type().clone()))
                    .collect(),
            )?;
            let rows = converter.convert_columns(keys)?;
            order.sort_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
        }
        let order = UInt32Array::from(order);
        let columns = columns
            .iter()
            .map(|column| take(column, &order, None))
            .collect::<Result<Vec<_>, _>>()?;
        state.arrays(&columns, entries.len())?;
        let times = Int64Array::from_iter_values(
            order
                .values()
                .iter()
                .flat_map(|at| entries[*at as usize].1.iter().copied()),
        );
        let count = times.len();
        state.arrays(&[Arc::new(times)], count)
    }

    /// Reads what [`Suppressed::save_state`] wrote for `keys` keys.
    fn load_state(&mut self, state: &mut StateReader, keys: usize) -> sluice_engine::Result<()> {
        self.notified.clear();
        if keys == 0 {
            return Ok(());
        }
        let (columns, rows) = state.arrays()?;
        let width = self.rule.key.len();
        let counts = columns
            .get(width)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .filter(|_| columns.len() == width + 1 && rows == keys)
            .ok_or_else(|| checkpoint_error("a suppression's keys are not as saved"))?;
        let (times, _) = state.arrays()?;
        let times = times
            .first()
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| checkpoint_error("a suppression's times are not numbers"))?;
        let mut at = 0;
        for row in 0..rows {
            let key = columns[..width]
                .iter()
                .map(|column| ScalarValue::try_from_array(column, row))
                .collect::<Result<Vec<_>, _>>()?;
            let count = counts.value(row) as usize;
            let Some(kept) = times.values().get(at..at + count) else {
                return Err(checkpoint_error(
                    "a suppression's times are fewer than saved",
                ));
            };
            at += count;
            self.notified.insert(key, kept.to_vec());
        }
        if at != times.len() {
            return Err(checkpoint_error(
                "a suppression's times are more than saved",
            ));
        }
        Ok(())
    }
}

fn checkpoint_error(reason: &str) -> EngineError {
    EngineError::Checkpoint(format!("alerts: {reason}"))
}

impl Suppressed {
    /// What becomes of the firing of `row`, when the watermark is `watermark`; a firing to
    /// notify is recorded.
    fn decide(&mut self, events: &RecordBatch, row: usize, watermark: Millis) -> Result<Decision> {
        let Some(time) = event_millis(events.column(self.rule.time), row)? else {
            // No event time, nothing to measure the interval from: always notify.
            return Ok(Decision::Notify);
        };
        let key = self
            .rule
            .key
            .iter()
            .map(|&column| ScalarValue::try_from_array(events.column(column), row))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AlertError::Invalid(e.to_string()))?;
        let interval = self.rule.interval.unsigned_abs();
        if let Some(times) = self.notified.get(&key) {
            // The nearest notified times, before and after.
            let after = times.partition_point(|&at| at < time);
            let before = after.checked_sub(1).and_then(|at| times.get(at));
            if before
                .into_iter()
                .chain(times.get(after))
                .any(|&at| at.abs_diff(time) < interval)
            {
                return Ok(Decision::PassOver);
            }
        }
        if time < watermark {
            return Ok(Decision::Late);
        }
        let times = self.notified.entry(key).or_default();
        let after = times.partition_point(|&at| at < time);
        times.insert(after, time);
        Ok(Decision::Notify)
    }
}

/// The value at `row` of a timestamp column, in milliseconds.
fn event_millis(column: &ArrayRef, row: usize) -> Result<Option<Millis>> {
    if column.is_null(row) {
        return Ok(None);
    }
    let value =
        ScalarValue::try_from_array(column, row).map_err(|e| AlertError::Invalid(e.to_string()))?;
    let millis = match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.saturating_mul(1000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v,
        ScalarValue::TimestampMicrosecond(Some(v), _) => v / 1000,
        ScalarValue::TimestampNanosecond(Some(v), _) => v / 1_000_000,
        other => {
            return Err(AlertError::Invalid(format!(
                "the suppression's time column is {}, not a timestamp",
                other.data_type()
            )));
        }
    };
    Ok(Some(millis))
}

/// Whether `data_type` can be a suppression's time column.
pub fn is_time_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(
            TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond,
            _
        )
    )
}

/// The type of a firing's column that refers to values of type `data_type`.
fn referring(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Dictionary(..) => data_type.clone(),
        values => DataType::Dictionary(Box::new(DataType::Int32), Box::new(values.clone())),
    }
}

/// The values of `column` at `rows` (keys over the batch's rows), as a column of type
/// [`referring`] its type: a dictionary over it keyed by the rows (the rows' keys, when it
/// is a dictionary already).
fn refer(column: &ArrayRef, rows: &Int32DictionaryArray) -> Result<ArrayRef> {
    if matches!(column.data_type(), DataType::Dictionary(..)) {
        return take(column, rows.keys(), None).map_err(arrow_error);
    }
    if column.len() < rows.values().len() {
        return Err(AlertError::Invalid(format!(
            "a column of {} rows in a batch of {}",
            column.len(),
            rows.values().len()
        )));
    }
    Ok(Arc::new(rows.with_values(column.clone())))
}

/// `values` (each below 2^31) as dictionary keys, without copying them.
fn keys(values: Vec<u32>) -> Int32Array {
    let length = values.len();
    Int32Array::new(ScalarBuffer::new(Buffer::from_vec(values), 0, length), None)
}

fn too_many_names() -> AlertError {
    AlertError::Invalid("the alerts' names take over 2 GiB, or there are over 2^31 alerts".into())
}

fn too_many_rows() -> AlertError {
    AlertError::Invalid("a batch of events has over 2^31 rows".into())
}

fn arrow_error(error: datafusion::arrow::error::ArrowError) -> AlertError {
    AlertError::Invalid(error.to_string())
}
