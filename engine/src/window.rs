//! Event-time windows: which windows a timestamp belongs to.
//!
//! All bounds are milliseconds since the epoch; a window `[start, end)` includes its start
//! and excludes its end. Windows are aligned to `offset` (0: the epoch), as in Flink.

use crate::time::Millis;

/// A window assignment, as Flink's window table functions declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Windows {
    /// `TUMBLE(..., size [, offset])`: consecutive windows of `size`.
    Tumble { size: Millis, offset: Millis },
    /// `HOP(..., slide, size [, offset])`: windows of `size` starting every `slide`.
    Hop {
        slide: Millis,
        size: Millis,
        offset: Millis,
    },
    /// `CUMULATE(..., step, size [, offset])`: windows that start every `size` and grow by
    /// `step` until they reach `size`.
    Cumulate {
        step: Millis,
        size: Millis,
        offset: Millis,
    },
}

impl Windows {
    /// Checks the sizes: positive, and a multiple of the slide or step where there is one.
    pub fn validate(&self) -> Result<(), String> {
        let (part, size, name) = match *self {
            Windows::Tumble { size, .. } => (size, size, "size"),
            Windows::Hop { slide, size, .. } => (slide, size, "slide"),
            Windows::Cumulate { step, size, .. } => (step, size, "step"),
        };
        if part <= 0 || size <= 0 {
            return Err("window sizes must be positive".into());
        }
        if size % part != 0 {
            return Err(format!("the window size must be a multiple of its {name}"));
        }
        Ok(())
    }

    /// Appends the `(start, end)` of every window containing `time`, by ascending start, then
    /// ascending end.
    pub fn assign(&self, time: Millis, windows: &mut Vec<(Millis, Millis)>) {
        match *self {
            Windows::Tumble { size, offset } => {
                let start = align(time, size, offset);
                windows.push((start, start.saturating_add(size)));
            }
            Windows::Hop {
                slide,
                size,
                offset,
            } => {
                let last = align(time, slide, offset);
                let count = size / slide;
                for back in (0..count).rev() {
                    let start = last.saturating_sub(back * slide);
                    let end = start.saturating_add(size);
                    if end > time {
                        windows.push((start, end));
                    }
                }
            }
            Windows::Cumulate { step, size, offset } => {
                let start = align(time, size, offset);
                for k in 1..=size / step {
                    let end = start.saturating_add(k * step);
                    if end > time {
                        windows.push((start, end));
                    }
                }
            }
        }
    }
}

/// The greatest `offset + k * period` not after `time`.
fn align(time: Millis, period: Millis, offset: Millis) -> Millis {
    time - (time.wrapping_sub(offset)).rem_euclid(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(spec: Windows, time: Millis) -> Vec<(Millis, Millis)> {
        let mut out = Vec::new();
        spec.assign(time, &mut out);
        out
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_or_the_offset() {
        let tumble = Windows::Tumble {
            size: 10,
            offset: 0,
        };
        assert_eq!(windows(tumble, 0), vec![(0, 10)]);
        assert_eq!(windows(tumble, 19), vec![(10, 20)]);
        assert_eq!(windows(tumble, -1), vec![(-10, 0)]);
        let shifted = Windows::Tumble {
            size: 10,
            offset: 3,
        };
        assert_eq!(windows(shifted, 12), vec![(3, 13)]);
        assert_eq!(windows(shifted, 13), vec![(13, 23)]);
    }

    #[test]
    fn hopping_windows_cover_every_window_containing_the_time() {
        let hop = Windows::Hop {
            slide: 5,
            size: 15,
            offset: 0,
        };
        assert_eq!(windows(hop, 12), vec![(0, 15), (5, 20), (10, 25)]);
        assert_eq!(windows(hop, 15), vec![(5, 20), (10, 25), (15, 30)]);
    }

    #[test]
    fn cumulating_windows_grow_by_step() {
        let cumulate = Windows::Cumulate {
            step: 10,
            size: 30,
            offset: 0,
        };
        assert_eq!(windows(cumulate, 5), vec![(0, 10), (0, 20), (0, 30)]);
        assert_eq!(windows(cumulate, 25), vec![(0, 30)]);
        assert_eq!(windows(cumulate, 30), vec![(30, 40), (30, 50), (30, 60)]);
    }

    #[test]
    fn sizes_are_checked() {
        let bad = Windows::Hop {
            slide: 4,
            size: 10,
            offset: 0,
        };
        assert_eq!(
            bad.validate(),
            Err("the window size must be a multiple of its slide".to_string())
        );
        assert!(Windows::Tumble { size: 0, offset: 0 }.validate().is_err());
    }
}
