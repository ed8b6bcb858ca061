//! Event time: milliseconds since the Unix epoch, and the watermark bounds.

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

/// The display format of timestamps in every result: `YYYY-MM-DD HH:MM:SS[.fff]`.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_without_fraction() {
        assert_eq!(format_millis(1_586_937_900_000), "2020-04-15 08:05:00");
        assert_eq!(format_millis(1_586_937_900_250), "2020-04-15 08:05:00.250");
        assert_eq!(format_millis(WATERMARK_MAX), "+inf");
    }
}
