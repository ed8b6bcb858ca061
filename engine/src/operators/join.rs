//! What the join operators share: the join kind, the description of a side, encoding a
//! side's keys and rows, assembling joined rows (NULL-padded where a side is absent), and
//! saving encoded keys and rows in a checkpoint as the columns they encode.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray,
    UInt64Array, new_null_array,
};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{cast, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, UInt64Type};
use datafusion::arrow::row::{Row, RowConverter, Rows, SortField};
use datafusion::physical_expr::PhysicalExpr;

use crate::changes::batch_of;
use crate::failure::{RowFailure, checked_arithmetic, evaluate_each};
use crate::state::{StateReader, StateWriter};
use crate::time::millis;
use crate::{EngineError, Result};

/// Which side's rows survive without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinKind {
    /// Whether rows of `side` (0 left, 1 right) without a match are emitted, NULL-padded.
    pub fn keeps(self, side: usize) -> bool {
        match self {
            JoinKind::Inner => false,
            JoinKind::Left => side == 0,
            JoinKind::Right => side == 1,
            JoinKind::Full => true,
        }
    }
}

/// One side of a join: how to read its rows.
pub struct JoinSide {
    /// The side's halves of the equality conditions, in the same order on both sides.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The column holding the side's event time, if it has one.
    pub time_column: Option<usize>,
    pub schema: SchemaRef,
}

/// A batch's join keys, encoded, and which rows have a key at all (no NULL in it).
pub struct Keys {
    pub rows: Rows,
    pub valid: Vec<bool>,
}

/// Encodes both sides' keys and rows, and assembles joined rows.
pub struct JoinCodec {
    sides: [JoinSide; 2],
    rows: [RowConverter; 2],
    /// Keys are encoded with the left side's key types on both sides.
    keys: RowConverter,
    key_types: Vec<DataType>,
    /// Evaluated over joined rows; pairs for which it is not true do not match.
    residual: Option<Arc<dyn PhysicalExpr>>,
    /// Joined rows the residual condition could not be computed for (they do not match),
    /// until the operator takes them for the error output.
    failures: Mutex<Vec<RowFailure>>,
    /// Left columns, then right columns.
    schema: SchemaRef,
}

impl JoinCodec {
    pub fn new(
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
        let keys = RowConverter::new(key_types.iter().cloned().map(SortField::new).collect())?;
        let converter = |side: &JoinSide| {
            RowConverter::new(
                side.schema
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )
        };
        Ok(JoinCodec {
            rows: [converter(&left)?, converter(&right)?],
            sides: [left, right],
            keys,
            key_types,
            residual: residual.map(checked_arithmetic),
            failures: Mutex::new(Vec::new()),
            schema,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn side(&self, side: usize) -> &JoinSide {
        &self.sides[side]
    }

    /// The join keys of `batch`, a batch of `side`.
    pub fn keys(&self, side: usize, batch: &RecordBatch) -> Result<Keys> {
        let count = batch.num_rows();
        let columns = self.sides[side]
            .keys
            .iter()
            .zip(&self.key_types)
            .map(|(key, wanted)| {
                let array = key.evaluate(batch)?.into_array(count)?;
                Ok(if array.data_type() == wanted {
                    array
                } else {
                    cast(&array, wanted)?
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let valid = (0..count)
            .map(|row| columns.iter().all(|column| column.is_valid(row)))
            .collect();
        Ok(Keys {
            rows: self.keys.convert_columns(&columns)?,
            valid,
        })
    }

    /// Encoded rows of `side` as a batch of the side's columns.
    pub fn side_batch<'a>(
        &self,
        side: usize,
        rows: impl IntoIterator<Item = Row<'a>>,
    ) -> Result<RecordBatch> {
        let rows: Vec<Row<'a>> = rows.into_iter().collect();
        let columns = self.rows[side].convert_rows(rows.iter().copied())?;
        batch_of(&self.sides[side].schema, &columns, rows.len())
    }

    /// The rows of `batch`, a batch of `side`, encoded.
    pub fn rows(&self, side: usize, batch: &RecordBatch) -> Result<Rows> {
        Ok(self.rows[side].convert_columns(batch.columns())?)
    }

    /// The event times of `batch`, a batch of `side`, in milliseconds (if the side has them).
    pub fn times(
        &self,
        side: usize,
        batch: &RecordBatch,
    ) -> Result<Option<TimestampMillisecondArray>> {
        let Some(column) = self.sides[side].time_column else {
            return Ok(None);
        };
        Ok(Some(millis(batch.column(column))?))
    }

    /// Joined rows for `(left, right)` pairs; `None` stands for a NULL-padded side.
    pub fn joined(&self, pairs: &[(Option<Row<'_>>, Option<Row<'_>>)]) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (side, converter) in self.rows.iter().enumerate() {
            let present: Vec<Option<Row<'_>>> = pairs
                .iter()
                .map(|pair| if side == 0 { pair.0 } else { pair.1 })
                .collect();
            // Padded positions repeat a present row and are nulled below.
            let Some(any) = present.iter().flatten().next().copied() else {
                for field in self.sides[side].schema.fields() {
                    columns.push(new_null_array(field.data_type(), pairs.len()));
                }
                continue;
            };
            let decoded = converter.convert_rows(present.iter().map(|row| row.unwrap_or(any)))?;
            let validity = BooleanArray::from_iter(present.iter().map(|row| Some(row.is_some())));
            for array in decoded {
                columns.push(null_where_absent(&array, &validity)?);
            }
        }
        batch_of(&self.schema, &columns, pairs.len())
    }

    /// Which joined rows satisfy the residual condition (`None`: all of them).
    pub fn residual_mask(&self, rows: &RecordBatch) -> Result<Option<BooleanArray>> {
        let Some(residual) = &self.residual else {
            return Ok(None);
        };
        let (mask, failed) = evaluate_each(residual, rows)?;
        if !failed.is_empty()
            && let Ok(mut failures) = self.failures.lock()
        {
            failures.extend(
                failed
                    .into_iter()
                    .map(|(row, error)| RowFailure::of(rows, row, error)),
            );
        }
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

    /// Joined rows the residual condition failed for since the last call.
    pub fn take_failures(&self) -> Vec<RowFailure> {
        self.failures
            .lock()
            .map(|mut failures| std::mem::take(&mut *failures))
            .unwrap_or_default()
    }

    /// The pairs' joined rows, and for each pair whether it satisfies the residual condition.
    pub fn matching(
        &self,
        pairs: &[(Option<Row<'_>>, Option<Row<'_>>)],
    ) -> Result<(RecordBatch, Vec<bool>)> {
        let joined = self.joined(pairs)?;
        let passed = match self.residual_mask(&joined)? {
            Some(mask) => mask.iter().map(|m| m == Some(true)).collect(),
            None => vec![true; pairs.len()],
        };
        Ok((joined, passed))
    }

    /// Writes `rows`, rows of `side` encoded by [`JoinCodec::rows`], as the side's columns
    /// (the row encoding belongs to the Arrow version, so it is not saved as it is).
    pub fn save_rows<'a>(
        &self,
        side: usize,
        rows: impl IntoIterator<Item = Row<'a>>,
        state: &mut StateWriter,
    ) -> Result<()> {
        let rows: Vec<Row<'a>> = rows.into_iter().collect();
        let columns = self.rows[side].convert_rows(rows.iter().copied())?;
        state.arrays(&conform(columns, &self.row_types(side))?, rows.len())
    }

    /// Reads rows of `side` written by [`JoinCodec::save_rows`], encoded again.
    pub fn load_rows(&self, side: usize, state: &mut StateReader) -> Result<Rows> {
        let (columns, count) = state.arrays()?;
        let rows = self.rows[side].convert_columns(&conform(columns, &self.row_types(side))?)?;
        if rows.num_rows() != count {
            return Err(EngineError::Checkpoint(format!(
                "{count} saved rows became {}",
                rows.num_rows()
            )));
        }
        Ok(rows)
    }

    fn row_types(&self, side: usize) -> Vec<DataType> {
        self.sides[side]
            .schema
            .fields()
            .iter()
            .map(|field| field.data_type().clone())
            .collect()
    }

    /// Writes join keys encoded by [`JoinCodec::keys`] as the key columns.
    pub fn save_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a [u8]>,
        state: &mut StateWriter,
    ) -> Result<()> {
        let parser = self.keys.parser();
        let keys: Vec<Row<'_>> = keys.into_iter().map(|key| parser.parse(key)).collect();
        let columns = self.keys.convert_rows(keys.iter().copied())?;
        state.arrays(&conform(columns, &self.key_types)?, keys.len())
    }

    /// Reads join keys written by [`JoinCodec::save_keys`], encoded again.
    pub fn load_keys(&self, state: &mut StateReader) -> Result<Vec<Box<[u8]>>> {
        let (columns, count) = state.arrays()?;
        let keys = self
            .keys
            .convert_columns(&conform(columns, &self.key_types)?)?;
        if keys.num_rows() != count {
            return Err(EngineError::Checkpoint(format!(
                "{count} saved join keys became {}",
                keys.num_rows()
            )));
        }
        Ok(keys.iter().map(|key| Box::from(key.data())).collect())
    }

    /// Writes join keys that may be absent (`None`: a key with a NULL): which are present,
    /// then those.
    pub fn save_optional_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = Option<&'a [u8]>>,
        state: &mut StateWriter,
    ) -> Result<()> {
        let keys: Vec<Option<&'a [u8]>> = keys.into_iter().collect();
        state.arrays(&[bool_column(keys.iter().map(Option::is_some))], keys.len())?;
        self.save_keys(keys.into_iter().flatten(), state)
    }

    /// Reads join keys written by [`JoinCodec::save_optional_keys`].
    pub fn load_optional_keys(&self, state: &mut StateReader) -> Result<Vec<Option<Box<[u8]>>>> {
        let (columns, count) = state.arrays()?;
        let present = saved_bools(&columns, 0, count)?;
        let keys = self.load_keys(state)?;
        if keys.len() != present.iter().filter(|present| **present).count() {
            return Err(EngineError::Checkpoint(
                "the saved join keys do not fit where they are present".into(),
            ));
        }
        let mut keys = keys.into_iter();
        Ok(present
            .into_iter()
            .map(|present| if present { keys.next() } else { None })
            .collect())
    }
}

/// `columns` cast to `wanted` where they differ (the row encoding gives dictionaries back as
/// their values).
fn conform(columns: Vec<ArrayRef>, wanted: &[DataType]) -> Result<Vec<ArrayRef>> {
    if columns.len() != wanted.len() {
        return Err(EngineError::Checkpoint(format!(
            "expected {} saved columns, found {}",
            wanted.len(),
            columns.len()
        )));
    }
    columns
        .into_iter()
        .zip(wanted)
        .map(|(column, wanted)| {
            Ok(if column.data_type() == wanted {
                column
            } else {
                cast(&column, wanted)?
            })
        })
        .collect()
}

/// Column `index` of saved `columns`: `count` integers.
pub fn saved_i64s(columns: &[ArrayRef], index: usize, count: usize) -> Result<Vec<i64>> {
    columns
        .get(index)
        .and_then(|column| column.as_primitive_opt::<Int64Type>())
        .filter(|column| column.len() == count && column.null_count() == 0)
        .map(|column| column.values().to_vec())
        .ok_or_else(|| not_saved(index, count, "integers"))
}

/// Column `index` of saved `columns`: `count` unsigned integers.
pub fn saved_u64s(columns: &[ArrayRef], index: usize, count: usize) -> Result<Vec<u64>> {
    columns
        .get(index)
        .and_then(|column| column.as_primitive_opt::<UInt64Type>())
        .filter(|column| column.len() == count && column.null_count() == 0)
        .map(|column| column.values().to_vec())
        .ok_or_else(|| not_saved(index, count, "unsigned integers"))
}

/// Column `index` of saved `columns`: `count` counts or positions.
pub fn saved_usizes(columns: &[ArrayRef], index: usize, count: usize) -> Result<Vec<usize>> {
    saved_u64s(columns, index, count)?
        .into_iter()
        .map(|value| {
            usize::try_from(value)
                .map_err(|_| EngineError::Checkpoint(format!("{value} is too large")))
        })
        .collect()
}

/// Column `index` of saved `columns`: `count` flags.
pub fn saved_bools(columns: &[ArrayRef], index: usize, count: usize) -> Result<Vec<bool>> {
    columns
        .get(index)
        .and_then(|column| column.as_boolean_opt())
        .filter(|column| column.len() == count && column.null_count() == 0)
        .map(|column| column.values().iter().collect())
        .ok_or_else(|| not_saved(index, count, "flags"))
}

fn not_saved(index: usize, count: usize, what: &str) -> EngineError {
    EngineError::Checkpoint(format!("saved column {index} is not {count} {what}"))
}

/// A column of integers to save.
pub fn i64_column(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

/// A column of unsigned integers to save.
pub fn u64_column(values: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(values))
}

/// A column of counts or positions to save.
pub fn usize_column(values: impl IntoIterator<Item = usize>) -> ArrayRef {
    u64_column(values.into_iter().map(|value| value as u64))
}

/// A column of flags to save.
pub fn bool_column(values: impl IntoIterator<Item = bool>) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(values.into_iter().map(Some)))
}

/// `array` with NULL wherever `validity` is false.
fn null_where_absent(array: &ArrayRef, validity: &BooleanArray) -> Result<ArrayRef> {
    if validity.true_count() == validity.len() {
        return Ok(array.clone());
    }
    let nulls = new_null_array(array.data_type(), array.len());
    Ok(zip(validity, array, &nulls)?)
}

/// What the checkpoint tests of the joins share: two inputs of random rows and watermarks,
/// fed as the graph feeds them, and a check that a join loaded from another's state goes on
/// exactly as that one does.
#[cfg(test)]
pub(crate) mod checkpoint_tests {
    use datafusion::arrow::array::{Int64Array, StringArray, UInt8Array};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::logical_expr::Operator as BinaryOperator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column};

    use super::*;
    use crate::operator::{Operator, OperatorMetrics};
    use crate::time::{Millis, WATERMARK_MAX, WATERMARK_MIN};
    use crate::{Changes, RowKind};

    /// One call into a join.
    #[derive(Debug, Clone)]
    pub enum Step {
        Rows(usize, Changes),
        /// An input's watermark.
        Watermark(usize, Millis),
    }

    pub use crate::aggregate::checkpoint_tests::{Random, same};

    /// `{prefix}k` (the join key: text, or a dictionary of text), `{prefix}ts` (the event
    /// time, or the window end) and `{prefix}v`.
    pub fn side(prefix: &str, dictionary: bool) -> JoinSide {
        let key_type = if dictionary {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        } else {
            DataType::Utf8
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new(format!("{prefix}k"), key_type, true),
            Field::new(
                format!("{prefix}ts"),
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new(format!("{prefix}v"), DataType::Int64, true),
        ]));
        JoinSide {
            keys: vec![Arc::new(Column::new(&format!("{prefix}k"), 0))],
            time_column: Some(1),
            schema,
        }
    }

    /// The joined columns of `left` and `right`.
    pub fn joined_schema(left: &JoinSide, right: &JoinSide) -> SchemaRef {
        let fields: Vec<Field> = left
            .schema
            .fields()
            .iter()
            .chain(right.schema.fields())
            .map(|field| field.as_ref().clone().with_nullable(true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// `lv <> rv`, over the joined columns.
    pub fn residual() -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(
            Arc::new(Column::new("lv", 2)),
            BinaryOperator::NotEq,
            Arc::new(Column::new("rv", 5)),
        ))
    }

    /// What the random input looks like.
    pub struct Script {
        /// Per input, whether its rows come with random change kinds.
        pub updating: [bool; 2],
        /// Event times are rounded down to a multiple of this (window ends), if positive.
        pub align: Millis,
        pub steps: usize,
    }

    impl Script {
        /// Random rows and watermarks on both inputs, with some late rows, NULL keys and
        /// NULL times; then `+inf` on both inputs.
        pub fn steps(&self, random: &mut Random, schemas: [&SchemaRef; 2]) -> Result<Vec<Step>> {
            let mut steps = Vec::new();
            let mut clock: Millis = 0;
            for _ in 0..self.steps {
                let input = random.below(2) as usize;
                clock += random.below(4) as Millis;
                if random.below(20) < 13 {
                    let changes = self.rows(random, schemas[input], input, clock)?;
                    steps.push(Step::Rows(input, changes));
                } else {
                    let lag = random.below(4) as Millis;
                    steps.push(Step::Watermark(input, clock - lag));
                }
            }
            steps.push(Step::Watermark(0, WATERMARK_MAX));
            steps.push(Step::Watermark(1, WATERMARK_MAX));
            Ok(steps)
        }

        fn rows(
            &self,
            random: &mut Random,
            schema: &SchemaRef,
            input: usize,
            clock: Millis,
        ) -> Result<Changes> {
            let count = 1 + random.below(4) as usize;
            let mut keys = Vec::new();
            let mut times = Vec::new();
            let mut values = Vec::new();
            let mut kinds = Vec::new();
            for _ in 0..count {
                keys.push(match random.below(16) {
                    0 => None,
                    n => Some(["a", "b", "c"][n as usize % 3]),
                });
                let time = clock + random.below(20) as Millis - 10;
                let time = if self.align > 0 {
                    time.div_euclid(self.align) * self.align
                } else {
                    time
                };
                times.push((random.below(20) != 0).then_some(time));
                values.push(Some(random.below(3) as i64));
                let kind = if self.updating[input] {
                    random
                        .pick(&[
                            RowKind::Insert,
                            RowKind::Insert,
                            RowKind::UpdateBefore,
                            RowKind::UpdateAfter,
                            RowKind::Delete,
                        ])
                        .unwrap_or(RowKind::Insert)
                } else {
                    RowKind::Insert
                };
                kinds.push(kind as u8);
            }
            let fields = schema.fields();
            let keys: ArrayRef = Arc::new(StringArray::from(keys));
            let columns = vec![
                cast(&keys, fields[0].data_type())?,
                Arc::new(TimestampMillisecondArray::from(times)) as ArrayRef,
                Arc::new(Int64Array::from(values)) as ArrayRef,
            ];
            let rows = RecordBatch::try_new(schema.clone(), columns)?;
            Ok(Changes {
                rows,
                kinds: self.updating[input].then(|| UInt8Array::from(kinds)),
            })
        }
    }

    /// Inserts of `(k, ts, v)` rows of a side from [`side`].
    pub fn inserts(
        schema: &SchemaRef,
        rows: &[(Option<&str>, Option<Millis>, i64)],
    ) -> Result<Changes> {
        let keys: ArrayRef = Arc::new(StringArray::from_iter(rows.iter().map(|row| row.0)));
        let columns = vec![
            cast(&keys, schema.fields()[0].data_type())?,
            Arc::new(TimestampMillisecondArray::from_iter(
                rows.iter().map(|row| row.1),
            )) as ArrayRef,
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|row| row.2))) as ArrayRef,
        ];
        Ok(Changes::inserts(RecordBatch::try_new(
            schema.clone(),
            columns,
        )?))
    }

    /// What the graph keeps of a join's inputs: their watermarks and the combined one.
    #[derive(Debug, Clone, Copy)]
    struct Inputs {
        watermarks: [Millis; 2],
        combined: Millis,
    }

    impl Default for Inputs {
        fn default() -> Self {
            Inputs {
                watermarks: [WATERMARK_MIN; 2],
                combined: WATERMARK_MIN,
            }
        }
    }

    /// Feeds `steps` as the graph does, collecting the output and the late rows after each
    /// call (and dropping the failures, which are not state).
    fn feed(
        operator: &mut dyn Operator,
        inputs: &mut Inputs,
        steps: &[Step],
    ) -> Result<Vec<Changes>> {
        let mut out = Vec::new();
        for step in steps {
            match step {
                Step::Rows(input, changes) => {
                    operator.process(*input, changes.clone(), &mut out)?
                }
                Step::Watermark(input, watermark) => {
                    let slot = &mut inputs.watermarks[*input];
                    *slot = (*slot).max(*watermark);
                    operator.on_input_watermark(*input, *slot);
                    let combined = inputs.watermarks[0].min(inputs.watermarks[1]);
                    if combined > inputs.combined {
                        inputs.combined = combined;
                        operator.on_watermark(combined, &mut out)?;
                        if combined == WATERMARK_MAX {
                            operator.on_end_of_input(&mut out)?;
                        }
                    }
                }
            }
            out.extend(operator.take_late());
            operator.take_failures();
        }
        Ok(out)
    }

    /// The outputs after the checkpoint.
    pub struct Restored {
        /// Of the join that saved its state.
        pub expected: Vec<Changes>,
        /// Of a fresh one that loaded it.
        pub restored: Vec<Changes>,
        /// Of a fresh one that loaded nothing.
        pub blank: Vec<Changes>,
        /// What the join that saved its state and the one that loaded it say of their state
        /// at the end.
        pub metrics: [OperatorMetrics; 2],
    }

    /// Feeds `steps[..split]` to a join from `build`, saves its state and loads it into
    /// another from `build` (which must read all of it, and save the same bytes again), then
    /// feeds the rest to both, and to a third that loaded nothing.
    pub fn restore<O: Operator>(
        build: impl Fn() -> Result<O>,
        steps: &[Step],
        split: usize,
    ) -> Result<Restored> {
        let (before, after) = steps.split_at(split.min(steps.len()));
        let mut inputs = Inputs::default();
        let mut original = build()?;
        feed(&mut original, &mut inputs, before)?;
        let mut writer = StateWriter::new();
        original.save_state(&mut writer)?;
        let bytes = writer.into_bytes();
        let mut restored = build()?;
        let mut reader = StateReader::new(&bytes);
        restored.load_state(&mut reader)?;
        if !reader.is_at_end() {
            return Err(EngineError::Checkpoint(
                "the state was not read to its end".into(),
            ));
        }
        let mut again = StateWriter::new();
        restored.save_state(&mut again)?;
        if again.into_bytes() != bytes {
            return Err(EngineError::Checkpoint(
                "the loaded state saves other bytes".into(),
            ));
        }
        Ok(Restored {
            expected: feed(&mut original, &mut inputs.clone(), after)?,
            restored: feed(&mut restored, &mut inputs.clone(), after)?,
            blank: feed(&mut build()?, &mut inputs.clone(), after)?,
            metrics: [original.metrics(), restored.metrics()],
        })
    }

    /// One seed of a join's restore test: input from `script` (the left side's keys
    /// dictionary-encoded when `dictionary`), a checkpoint at a random step; fails when the
    /// join that loaded the state goes on otherwise than the one that saved it. Gives whether
    /// a join that loaded nothing would have gone on otherwise too (the state mattered).
    pub fn restores_alike<O: Operator>(
        seed: u64,
        random: &mut Random,
        build: impl Fn() -> Result<O>,
        script: &Script,
        dictionary: bool,
    ) -> Result<bool> {
        let schemas = [side("l", dictionary).schema, side("r", false).schema];
        let steps = script.steps(random, [&schemas[0], &schemas[1]])?;
        let split = random.below(steps.len() as u64 + 1) as usize;
        let outcome = restore(build, &steps, split)?;
        assert!(
            same(&outcome.expected, &outcome.restored),
            "seed {seed}: the restored join differs after step {split}"
        );
        assert_eq!(outcome.metrics[0], outcome.metrics[1], "seed {seed}");
        Ok(!same(&outcome.expected, &outcome.blank))
    }

    #[test]
    fn dictionary_keys_and_rows_come_back_as_they_were() -> Result<()> {
        let left = side("l", true);
        let right = side("r", false);
        let schema = joined_schema(&left, &right);
        let codec = JoinCodec::new(left, right, None, schema)?;
        let script = Script {
            updating: [false; 2],
            align: 0,
            steps: 0,
        };
        let changes = script.rows(&mut Random::new(3), &codec.side(0).schema.clone(), 0, 100)?;
        let keys = codec.keys(0, &changes.rows)?;
        let rows = codec.rows(0, &changes.rows)?;
        let mut writer = StateWriter::new();
        codec.save_keys(keys.rows.iter().map(|key| key.data()), &mut writer)?;
        codec.save_rows(0, rows.iter(), &mut writer)?;
        let bytes = writer.into_bytes();
        let mut reader = StateReader::new(&bytes);
        let loaded_keys = codec.load_keys(&mut reader)?;
        let loaded_rows = codec.load_rows(0, &mut reader)?;
        assert!(reader.is_at_end());
        let saved_keys: Vec<&[u8]> = keys.rows.iter().map(|key| key.data()).collect();
        let loaded: Vec<&[u8]> = loaded_keys.iter().map(|key| &**key).collect();
        assert_eq!(saved_keys, loaded);
        assert!(rows.iter().eq(loaded_rows.iter()));
        assert_eq!(rows.num_rows(), changes.rows.num_rows());
        Ok(())
    }
}
