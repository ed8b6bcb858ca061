//! The named alerts over one source, matched together through one [`AlertIndex`], with
//! each alert's optional suppression.
//!
//! A firing is a row of the source that made an alert's condition TRUE. Only rows that
//! hold from then on fire: inserts and the new versions of updated rows (`+I`, `+U`);
//! retractions and deletes never do. An alert with a suppression interval fires at most
//! once per key per interval: after a firing at event time `t` for a key, rows of that key
//! less than `interval` away from `t` (either side, as rows may come out of order) are
//! passed over. The state is the index, and per suppressed alert the time of the last
//! firing of each key; a key's entry is dropped once the watermark reaches the end of its
//! interval, since no row that is on time can be suppressed by it any more (a late row
//! that comes after that fires again).
//!
//! Firing rows refer to their events rather than copy them: each column is a dictionary
//! over the event batch's column (the alert's name over all the alerts' names), keyed by
//! the firing's row, one key buffer shared by all columns. Written output
//! (`sluice_engine::output`) turns them into plain values.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int32Array, Int32DictionaryArray, NullArray, StringArray,
};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::{filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use sluice_engine::time::Millis;
use sluice_engine::{Changes, RowKind};

use super::{AlertId, AlertIndex, Compiled, Matches};
use crate::{CepError, Result};

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
    fn name(&self, id: AlertId) -> &[u8] {
        let id = id as usize;
        let start = match id.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(id).copied().unwrap_or(start);
        self.bytes.get(start..end).unwrap_or_default()
    }

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

/// A suppression, per key the event time of its last firing, and how many matched rows
/// it passed over.
struct Suppressed {
    rule: Suppression,
    last_fired: HashMap<Vec<ScalarValue>, Millis>,
    passed_over: u64,
}

impl Registered {
    fn suppressed_keys(&self) -> usize {
        self.suppression.as_ref().map_or(0, |s| s.last_fired.len())
    }

    fn passed_over(&self) -> u64 {
        self.suppression.as_ref().map_or(0, |s| s.passed_over)
    }
}

/// What [`AlertSet::describe`] tells of one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    pub name: String,
    pub fired: u64,
    /// Keys whose suppression interval is running.
    pub suppressed_keys: usize,
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
    by_name: HashMap<Arc<str>, AlertId>,
}

impl AlertSet {
    /// An empty set over events of schema `events`.
    pub fn new(events: SchemaRef) -> Result<AlertSet> {
        if events.field_with_name(ALERT_COLUMN).is_ok() {
            return Err(CepError::Alert(format!(
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
            by_name: HashMap::new(),
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

    /// Registers alert `name` (compiled against [`AlertSet::events`]).
    pub fn insert(
        &mut self,
        name: &str,
        compiled: Compiled,
        suppression: Option<Suppression>,
    ) -> Result<()> {
        if self.contains(name) {
            return Err(CepError::Alert(format!("alert '{name}' already exists")));
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
                    last_fired: HashMap::new(),
                    passed_over: 0,
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

    /// Every alert, by name.
    pub fn describe(&self) -> Vec<AlertState> {
        let mut states: Vec<AlertState> = self
            .alerts
            .iter()
            .enumerate()
            .filter_map(|(id, alert)| Some((id as AlertId, alert.as_ref()?)))
            .map(|(id, alert)| AlertState {
                name: String::from_utf8_lossy(self.names.name(id)).into_owned(),
                fired: self.index.fired(id).saturating_sub(alert.passed_over()),
                suppressed_keys: alert.suppressed_keys(),
            })
            .collect();
        states.sort_by(|a, b| a.name.cmp(&b.name));
        states
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
    pub fn fire(&mut self, changes: &Changes) -> Result<Option<RecordBatch>> {
        if self.live == 0 || changes.num_rows() == 0 {
            return Ok(None);
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
        let Matches { rows, alerts } = self.index.matches(&events)?;
        let (rows, alerts) = match self.suppressing.is_empty() {
            true => (rows, alerts),
            false => self.unsuppressed(&events, rows, alerts)?,
        };
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

    /// The firings (`rows`, `alerts`) that no suppression passes over.
    fn unsuppressed(
        &mut self,
        events: &RecordBatch,
        rows: Vec<u32>,
        alerts: Vec<AlertId>,
    ) -> Result<(Vec<u32>, Vec<AlertId>)> {
        let mut kept = (
            Vec::with_capacity(rows.len()),
            Vec::with_capacity(rows.len()),
        );
        for (row, id) in rows.into_iter().zip(alerts) {
            let at = id as usize;
            if self.suppresses.get(at).copied().unwrap_or(false)
                && let Some(Some(Registered {
                    suppression: Some(suppressed),
                })) = self.alerts.get_mut(at)
                && is_suppressed(
                    &suppressed.rule,
                    &mut suppressed.last_fired,
                    events,
                    row as usize,
                )?
            {
                suppressed.passed_over += 1;
                continue;
            }
            kept.0.push(row);
            kept.1.push(id);
        }
        Ok(kept)
    }

    /// Forgets suppression keys whose interval ended at or before `watermark`.
    pub fn expire(&mut self, watermark: Millis) {
        for &id in &self.suppressing {
            let Some(Some(Registered {
                suppression: Some(suppressed),
                ..
            })) = self.alerts.get_mut(id as usize)
            else {
                continue;
            };
            let interval = suppressed.rule.interval;
            suppressed
                .last_fired
                .retain(|_, at| at.saturating_add(interval) > watermark);
        }
    }
}

/// Whether the firing of `row` is suppressed; records it when it is not.
fn is_suppressed(
    suppression: &Suppression,
    last_fired: &mut HashMap<Vec<ScalarValue>, Millis>,
    events: &RecordBatch,
    row: usize,
) -> Result<bool> {
    let Some(time) = event_millis(events.column(suppression.time), row)? else {
        // No event time, nothing to measure the interval from: always notify.
        return Ok(false);
    };
    let key = suppression
        .key
        .iter()
        .map(|&column| ScalarValue::try_from_array(events.column(column), row))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CepError::Alert(e.to_string()))?;
    if let Some(&at) = last_fired.get(&key)
        && time.abs_diff(at) < suppression.interval.unsigned_abs()
    {
        return Ok(true);
    }
    let at = last_fired.entry(key).or_insert(time);
    *at = (*at).max(time);
    Ok(false)
}

/// The value at `row` of a timestamp column, in milliseconds.
fn event_millis(column: &ArrayRef, row: usize) -> Result<Option<Millis>> {
    if column.is_null(row) {
        return Ok(None);
    }
    let value =
        ScalarValue::try_from_array(column, row).map_err(|e| CepError::Alert(e.to_string()))?;
    let millis = match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.saturating_mul(1000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v,
        ScalarValue::TimestampMicrosecond(Some(v), _) => v / 1000,
        ScalarValue::TimestampNanosecond(Some(v), _) => v / 1_000_000,
        other => {
            return Err(CepError::Alert(format!(
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
        return Err(CepError::Alert(format!(
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

fn too_many_names() -> CepError {
    CepError::Alert("the alerts' names take over 2 GiB, or there are over 2^31 alerts".into())
}

fn too_many_rows() -> CepError {
    CepError::Alert("a batch of events has over 2^31 rows".into())
}

fn arrow_error(error: datafusion::arrow::error::ArrowError) -> CepError {
    CepError::Alert(error.to_string())
}
