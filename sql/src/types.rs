//! Column types of `CREATE TABLE` (Flink's spellings) as Arrow types.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, ExactNumberInfo, TimezoneInfo};

use crate::{Result, SqlError};

/// Flink's default precision of `TIMESTAMP` and `TIMESTAMP_LTZ` without one.
const DEFAULT_TIMESTAMP_PRECISION: u64 = 6;
/// Flink's default `DECIMAL` precision and scale.
const DEFAULT_DECIMAL: (u8, i8) = (10, 0);

/// The Arrow type of a column declared with `declared` (named `column` in errors).
pub fn arrow_type(declared: &ast::DataType, column: &str) -> Result<DataType> {
    use ast::DataType as Sql;
    let data_type = match declared {
        Sql::Boolean | Sql::Bool => DataType::Boolean,
        Sql::TinyInt(_) => DataType::Int8,
        Sql::SmallInt(_) => DataType::Int16,
        Sql::Int(_) | Sql::Integer(_) => DataType::Int32,
        Sql::BigInt(_) => DataType::Int64,
        Sql::Float(_) | Sql::Real | Sql::Float4 => DataType::Float32,
        Sql::Double(_) | Sql::DoublePrecision | Sql::Float8 => DataType::Float64,
        Sql::Decimal(info) | Sql::Numeric(info) | Sql::Dec(info) => decimal(info, column)?,
        Sql::String(_)
        | Sql::Varchar(_)
        | Sql::CharVarying(_)
        | Sql::CharacterVarying(_)
        | Sql::Char(_)
        | Sql::Character(_)
        | Sql::Text => DataType::Utf8,
        Sql::Date => DataType::Date32,
        Sql::Timestamp(precision, zone) => {
            let local = matches!(zone, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz);
            timestamp(*precision, local, column)?
        }
        Sql::Custom(name, modifiers) => {
            let spelled = name.to_string().to_ascii_uppercase();
            match spelled.as_str() {
                "TIMESTAMP_LTZ" => {
                    let precision = match modifiers.as_slice() {
                        [] => None,
                        [value] => Some(value.parse::<u64>().map_err(|_| {
                            SqlError::Invalid(format!(
                                "column '{column}': TIMESTAMP_LTZ precision must be 0 to 9, not '{value}'"
                            ))
                        })?),
                        _ => {
                            return Err(SqlError::Invalid(format!(
                                "column '{column}': TIMESTAMP_LTZ takes one precision"
                            )));
                        }
                    };
                    timestamp(precision, true, column)?
                }
                _ => {
                    return Err(SqlError::Invalid(format!(
                        "unknown type '{declared}' for column '{column}'"
                    )));
                }
            }
        }
        other => {
            return Err(SqlError::Unsupported(format!(
                "type {other} (column '{column}'); use BOOLEAN, INT, BIGINT, FLOAT, DOUBLE, \
                 DECIMAL(p, s), STRING, VARCHAR, DATE, TIMESTAMP(p) or TIMESTAMP_LTZ(p)"
            )));
        }
    };
    Ok(data_type)
}

fn timestamp(precision: Option<u64>, local: bool, column: &str) -> Result<DataType> {
    let unit = match precision.unwrap_or(DEFAULT_TIMESTAMP_PRECISION) {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        7..=9 => TimeUnit::Nanosecond,
        other => {
            return Err(SqlError::Invalid(format!(
                "column '{column}': timestamp precision must be 0 to 9, not {other}"
            )));
        }
    };
    Ok(DataType::Timestamp(unit, local.then(|| "UTC".into())))
}

fn decimal(info: &ExactNumberInfo, column: &str) -> Result<DataType> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => DEFAULT_DECIMAL,
        ExactNumberInfo::Precision(p) => (narrow(*p, column)?, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (narrow(*p, column)?, *s as i8),
    };
    if precision == 0 || precision > 38 || scale < 0 || scale as u8 > precision {
        return Err(SqlError::Invalid(format!(
            "column '{column}': DECIMAL({precision}, {scale}) needs 1 <= precision <= 38 and 0 <= scale <= precision"
        )));
    }
    Ok(DataType::Decimal128(precision, scale))
}

fn narrow(precision: u64, column: &str) -> Result<u8> {
    u8::try_from(precision).map_err(|_| {
        SqlError::Invalid(format!(
            "column '{column}': DECIMAL precision {precision} is over 38"
        ))
    })
}
