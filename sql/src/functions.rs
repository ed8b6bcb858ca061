//! Functions sluice adds to DataFusion's: `PROCTIME()`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// `PROCTIME()`: the time at which the row is processed, as `TIMESTAMP_LTZ(3)`: the time the
/// row arrived when it comes from a log (its publish's stamp, the same on every replay: see
/// `sluice_engine::time::arrival_time`), the wall clock otherwise.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ProcTime {
    signature: Signature,
}

impl ProcTime {
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::from(ProcTime {
            signature: Signature::nullary(Volatility::Volatile),
        }))
    }
}

impl ScalarUDFImpl for ProcTime {
    fn name(&self) -> &str {
        "proctime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(proctime_type())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), proctime_type(), false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = ScalarValue::TimestampMillisecond(
            Some(
                sluice_engine::time::arrival_time()
                    .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            ),
            Some("UTC".into()),
        );
        Ok(ColumnarValue::Array(
            now.to_array_of_size(args.number_rows)?,
        ))
    }
}

fn proctime_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}
