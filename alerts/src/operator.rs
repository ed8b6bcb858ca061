//! The operator that matches every row of its input against a shared [`AlertSet`].
//!
//! The set is shared with whoever registers and drops alerts, so alerts come and go
//! between batches without the query being restarted; an alert sees only rows that arrive
//! after it was registered.
//!
//! - **State**: the shared set (see [`AlertSet`]): its alert index and, per suppressed
//!   alert and key, the event times of notified firings that can still pass a row over;
//!   here, only the late firings not yet taken.
//! - **Emits**: for each batch, the firings the batch causes (all `+I`), at once: nothing
//!   waits for the watermark. Only inserts and the new versions of updated rows fire.
//! - **Watermark**: only drops suppression state (the times whose interval has ended) and
//!   makes rows behind it late; it emits nothing.
//! - **Late rows**: matched as any other. A firing of a suppressed alert on a late row that
//!   no kept time passes over cannot be decided (a dropped time might have): it is not
//!   notified but goes to the late side output (op `late`); one that a kept time passes over is
//!   passed over. Firings of alerts without suppression are emitted as on time.
//! - **End of input**: emits nothing more.
//! - **Checkpoint**: the set's runtime state: its watermark and, per alert by name, how many
//!   rows it has fired on and, with a suppression, how many firings it did not notify and
//!   per key (keys as columns, in the keys' order) the notified times still kept. The alerts
//!   themselves (conditions, suppressions, the index, the names) come from the statements
//!   that registered them, which run again before the state is loaded; an alert of the
//!   checkpoint not registered then, one registered that it does not have, or one whose
//!   suppression is there on one side only, is an error. The late firings were taken.

use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::datatypes::SchemaRef;
use sluice_engine::operator::{Operator, OperatorMetrics};
use sluice_engine::state::{StateReader, StateWriter};
use sluice_engine::time::Millis;
use sluice_engine::{Changes, EngineError, Result};

use crate::AlertSet;

/// An [`AlertSet`] that an operator reads while others change it.
pub type SharedAlerts = Arc<Mutex<AlertSet>>;

/// Bytes an alert takes in the index, roughly, for the state metric.
const BYTES_PER_ALERT: usize = 1200;

pub struct AlertOperator {
    alerts: SharedAlerts,
    schema: SchemaRef,
    late: Vec<Changes>,
}

impl AlertOperator {
    pub fn new(alerts: SharedAlerts) -> Result<AlertOperator> {
        let schema = lock(&alerts)?.firings().clone();
        Ok(AlertOperator {
            alerts,
            schema,
            late: Vec::new(),
        })
    }
}

/// The set, locked; a set left poisoned by a panic elsewhere is still consistent between
/// batches, but is reported rather than trusted.
pub fn lock(alerts: &SharedAlerts) -> Result<MutexGuard<'_, AlertSet>> {
    alerts.lock().map_err(|_| {
        EngineError::Input("the alert set was left unusable by an earlier failure".into())
    })
}

impl Operator for AlertOperator {
    fn name(&self) -> &str {
        "alerts"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, _input: usize, changes: Changes, out: &mut Vec<Changes>) -> Result<()> {
        let fired = lock(&self.alerts)?
            .fire(&changes)
            .map_err(|e| EngineError::Input(e.to_string()))?;
        out.extend(fired.notified.map(Changes::inserts));
        self.late.extend(fired.late.map(Changes::late));
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, _out: &mut Vec<Changes>) -> Result<()> {
        lock(&self.alerts)?.expire(watermark);
        Ok(())
    }

    fn take_late(&mut self) -> Vec<Changes> {
        std::mem::take(&mut self.late)
    }

    fn save_state(&mut self, state: &mut StateWriter) -> Result<()> {
        lock(&self.alerts)?.save_state(state)
    }

    fn load_state(&mut self, state: &mut StateReader) -> Result<()> {
        lock(&self.alerts)?.load_state(state)
    }

    fn metrics(&self) -> OperatorMetrics {
        match self.alerts.lock() {
            Ok(set) => OperatorMetrics {
                state_bytes: set.len() * BYTES_PER_ALERT + set.suppressed_keys() * 64,
                open_windows: set.suppressed_keys(),
            },
            Err(_) => OperatorMetrics::default(),
        }
    }

    fn explain(&self) -> String {
        match self.alerts.lock() {
            Ok(set) => format!("{} alert(s)", set.len()),
            Err(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use datafusion::arrow::array::{
        ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt8Array,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use datafusion::prelude::{Expr, col, lit};
    use sluice_engine::operator::Operator;
    use sluice_engine::state::{StateReader, StateWriter};
    use sluice_engine::time::Millis;
    use sluice_engine::{Changes, EngineError, Result};

    use super::{AlertOperator, SharedAlerts, lock};
    use crate::{AlertSet, Suppression, compile};

    /// A deterministic xorshift generator.
    struct Random(u64);

    impl Random {
        fn new(seed: u64) -> Self {
            Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    fn event_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]))
    }

    /// The same alerts, registered the same way each time: with and without suppression,
    /// by one key column, two or none, and one registered and dropped again.
    fn alerts() -> Result<SharedAlerts> {
        let schema = event_schema();
        let invalid = |e: crate::AlertError| EngineError::Input(e.to_string());
        let mut set = AlertSet::new(schema.clone()).map_err(invalid)?;
        let suppression = |interval: Millis, key: Vec<usize>| {
            Some(Suppression {
                interval,
                key,
                time: 2,
            })
        };
        let alerts: [(&str, Expr, Option<Suppression>); 5] = [
            ("gone", col("v").gt(lit(0i64)), None),
            ("high", col("v").gt(lit(3i64)), suppression(1_000, vec![0])),
            (
                "low",
                col("v").lt(lit(2i64)),
                suppression(2_500, Vec::new()),
            ),
            ("three", col("v").eq(lit(3i64)), None),
            (
                "pair",
                col("k").eq(lit("a")).and(col("v").gt_eq(lit(2i64))),
                suppression(700, vec![0, 1]),
            ),
        ];
        for (name, condition, suppression) in alerts {
            let compiled = compile(&condition, &schema).map_err(invalid)?;
            set.insert(name, compiled, suppression).map_err(invalid)?;
        }
        set.remove("gone");
        Ok(Arc::new(Mutex::new(set)))
    }

    enum Event {
        Rows(Changes),
        Watermark(Millis),
    }

    /// Random rows of three keys, some updates and deletes, some late or without a time,
    /// with watermarks between them.
    fn input(random: &mut Random) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut clock = 0i64;
        let mut watermark = i64::MIN;
        for _ in 0..20 + random.below(20) {
            let count = 1 + random.below(6) as usize;
            let mut keys = Vec::new();
            let mut values = Vec::new();
            let mut times = Vec::new();
            let mut kinds = Vec::new();
            for _ in 0..count {
                clock += random.below(300) as i64;
                keys.push(["a", "b", "c"][random.below(3) as usize]);
                values.push(random.below(6) as i64);
                times.push(match random.below(20) {
                    0 => None,
                    1 => Some(clock - 2_000),
                    _ => Some(clock - random.below(500) as i64),
                });
                kinds.push(match random.below(8) {
                    0 => 1,
                    1 => 2,
                    2 => 3,
                    _ => 0,
                });
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(values)),
                Arc::new(TimestampMillisecondArray::from(times)),
            ];
            let rows = RecordBatch::try_new(event_schema(), columns)?;
            let kinds = (random.below(2) == 0).then(|| UInt8Array::from(kinds));
            events.push(Event::Rows(Changes { rows, kinds }));
            let next = clock - random.below(800) as i64;
            if random.below(2) == 0 && next > watermark {
                watermark = next;
                events.push(Event::Watermark(watermark));
            }
        }
        Ok(events)
    }

    /// Per call, the firings and the late firings.
    type Step = (Vec<RecordBatch>, Vec<RecordBatch>);

    fn feed(operator: &mut AlertOperator, events: &[Event]) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        for event in events {
            let mut out = Vec::new();
            match event {
                Event::Rows(changes) => operator.process(0, changes.clone(), &mut out)?,
                Event::Watermark(watermark) => operator.on_watermark(*watermark, &mut out)?,
            }
            let fired = out
                .into_iter()
                .map(|c| match c.kinds {
                    None => Ok(c.rows),
                    Some(_) => Err(EngineError::Input("a firing that is not an insert".into())),
                })
                .collect::<Result<_>>()?;
            let late = operator.take_late().into_iter().map(|c| c.rows).collect();
            steps.push((fired, late));
        }
        Ok(steps)
    }

    fn fired_by_name(alerts: &SharedAlerts) -> Result<Vec<(String, u64)>> {
        Ok(lock(alerts)?
            .fired_by_name()
            .map(|(name, fired)| (name.to_string(), fired))
            .collect())
    }

    #[test]
    fn a_loaded_operator_goes_on_as_the_saved_one() -> Result<()> {
        let (mut firings_after, mut late_after, mut keys_saved) = (0, 0, 0);
        for seed in 0..100u64 {
            let mut random = Random::new(seed);
            let events = input(&mut random)?;
            let split = random.below(events.len() as u64 + 1) as usize;
            let shared = alerts()?;
            let mut original = AlertOperator::new(shared.clone())?;
            feed(&mut original, &events[..split])?;
            let mut writer = StateWriter::new();
            original.save_state(&mut writer)?;
            let bytes = writer.into_bytes();
            keys_saved += lock(&shared)?.suppressed_keys();

            let loaded_shared = alerts()?;
            let mut loaded = AlertOperator::new(loaded_shared.clone())?;
            let mut reader = StateReader::new(&bytes);
            loaded.load_state(&mut reader)?;
            assert!(reader.is_at_end(), "seed {seed}: state left unread");
            let mut again = StateWriter::new();
            loaded.save_state(&mut again)?;
            assert!(
                again.into_bytes() == bytes,
                "seed {seed}: state saved differently"
            );

            let expected = feed(&mut original, &events[split..])?;
            let found = feed(&mut loaded, &events[split..])?;
            firings_after += expected
                .iter()
                .flat_map(|(fired, _)| fired)
                .map(RecordBatch::num_rows)
                .sum::<usize>();
            late_after += expected
                .iter()
                .flat_map(|(_, late)| late)
                .map(RecordBatch::num_rows)
                .sum::<usize>();
            assert!(
                expected == found,
                "seed {seed}, split at {split}: the loaded operator's firings differ"
            );
            assert_eq!(
                fired_by_name(&shared)?,
                fired_by_name(&loaded_shared)?,
                "seed {seed}: counts differ"
            );
        }
        // The comparisons were of something.
        assert!(firings_after > 1_000, "only {firings_after} firings");
        assert!(late_after > 20, "only {late_after} late firings");
        assert!(keys_saved > 100, "only {keys_saved} suppressed keys saved");
        Ok(())
    }

    #[test]
    fn an_alert_not_registered_again_is_refused() -> Result<()> {
        let mut original = AlertOperator::new(alerts()?)?;
        let mut writer = StateWriter::new();
        original.save_state(&mut writer)?;
        let bytes = writer.into_bytes();
        let fewer = alerts()?;
        lock(&fewer)?.remove("pair");
        let error = AlertOperator::new(fewer)?
            .load_state(&mut StateReader::new(&bytes))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("checkpoint: alerts: the checkpoint has 4 alerts, the set 3")
        );
        Ok(())
    }
}
