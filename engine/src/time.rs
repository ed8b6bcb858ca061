//! Event time: milliseconds since the Unix epoch, and the watermark bounds.

use datafusion::arrow::array::{ArrayRef, AsArray, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};

/// A point in event time, in milliseconds since 1970-01-01 00:00:00 UTC.
pub type Millis = i64;

/// The watermark before any event has been seen.
pub const WATERMARK_MIN: Millis = Millis::MIN;

/// The watermark at end of input: every pending result is decidable.
pub const WATERMARK_MAX: Millis = Millis::MAX;

/// Formats `millis` as `YYYY-MM-DD HH:MM:SS[.fff]`, or the bound's name for the two bounds.
pub fn format_millis(millis: Millis) -> String {
    match millis {
        WATERMARK_MIN => "-inf".to_string(),
        WATERMARK_MAX => "+inf".to_string(),
        _ => match chrono::DateTime::from_timestamp_millis(millis) {
            Some(time) => time.format(TIMESTAMP_FORMAT).to_string(),
            None => millis.to_string(),
        },
    }
}

// Where rows come from a log, the time they arrived (their publish's stamp) stands for
// the processing time, so that a replay sees the `PROCTIME()` the live run saw.
std::thread_local! {
    static ARRIVAL: std::cell::Cell<Option<Millis>> = const { std::cell::Cell::new(None) };
}

/// Runs `work` with `time` as the processing time of the rows it handles (see
/// [`arrival_time`]).
pub fn with_arrival_time<T>(time: Millis, work: impl FnOnce() -> T) -> T {
    let before = ARRIVAL.replace(Some(time));
    let result = work();
    ARRIVAL.set(before);
    result
}

/// The processing time of the rows being handled on this thread, when their arrival time
/// is known (see [`with_arrival_time`]); `PROCTIME()` reads the wall clock otherwise.
pub fn arrival_time() -> Option<Millis> {
    ARRIVAL.get()
}

/// The display format of timestamps in every result: `YYYY-MM-DD HH:MM:SS[.fff]`.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// Parses a duration such as `5 s`, `500 ms`, `2 MINUTES` or `1 h` (a whole number and a
/// unit: ms, s, min, h, d, or their English names, singular or plural) into milliseconds.
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: Millis = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: expected a whole number and a unit"))?;
    let unit = unit.trim().to_ascii_lowercase();
    if unit.is_empty() {
        return Err(format!(
            "'{text}' is not a duration: the unit is missing (ms, s, min, h or d)"
        ));
    }
    let scale = match unit.trim_end_matches('s') {
        "m" if unit == "ms" => 1,
        "millisecond" => 1,
        "" | "sec" | "second" => 1_000, // "s" trims to
        "min" | "minute" => 60_000,
        "h" | "hour" => 3_600_000,
        "d" | "day" => 86_400_000,
        _ => {
            return Err(format!(
                "'{text}' is not a duration: unknown unit '{unit}' (use ms, s, min, h or d)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("duration '{text}' is too long"))
}

/// `array`, a timestamp of any unit, in milliseconds since the epoch (NULL stays NULL).
pub fn millis(array: &ArrayRef) -> crate::Result<TimestampMillisecondArray> {
    let cast = cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(cast.as_primitive::<TimestampMillisecondType>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("5 s"), Ok(5_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("2 MINUTES"), Ok(120_000));
        assert_eq!(parse_duration("1 hour"), Ok(3_600_000));
        assert_eq!(parse_duration("3 d"), Ok(259_200_000));
        assert!(parse_duration("").is_err());
        assert!(matches!(parse_duration("5"), Err(e) if e.contains("unit is missing")));
        assert!(matches!(parse_duration("5 weeks"), Err(e) if e.contains("unknown unit 'weeks'")));
        assert!(parse_duration("x s").is_err());
    }

    #[test]
    fn formats_whole_seconds_without_fraction() {
        assert_eq!(format_millis(1_586_937_900_000), "2020-04-15 08:05:00");
        assert_eq!(format_millis(1_586_937_900_250), "2020-04-15 08:05:00.250");
        assert_eq!(format_millis(WATERMARK_MAX), "+inf");
    }
}
