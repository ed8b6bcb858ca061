//! Event-time windows: which windows a timestamp belongs to.
//!
//! All bounds are milliseconds since the epoch; a window `[start, end)` includes its start
//! and excludes its end. Windows are aligned to `offset` (0: the epoch), as in Flink.

use crate::limits::MAX_WINDOWS_PER_ROW;
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
    /// `SESSION(..., gap)`: rows of a key less than `gap` apart share a window. A row alone
    /// is the proto-session `[time, time + gap)`; the session aggregation merges them.
    Session { gap: Millis },
}

impl Windows {
    /// Checks the sizes: positive, and a multiple of the slide or step where there is one,
    /// at most [`MAX_WINDOWS_PER_ROW`] times over.
    pub fn validate(&self) -> Result<(), String> {
        let (part, size, name) = match *self {
            Windows::Tumble { size, .. } => (size, size, "size"),
            Windows::Hop { slide, size, .. } => (slide, size, "slide"),
            Windows::Cumulate { step, size, .. } => (step, size, "step"),
            Windows::Session { gap } => (gap, gap, "gap"),
        };
        if part <= 0 || size <= 0 {
            return Err("window sizes must be positive".into());
        }
        if size % part != 0 {
            return Err(format!("the window size must be a multiple of its {name}"));
        }
        if size / part > MAX_WINDOWS_PER_ROW {
            return Err(format!(
                "a size of {size} ms over a {name} of {part} ms puts each row in {} windows \
                 (limit {MAX_WINDOWS_PER_ROW})",
                size / part
            ));
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
            Windows::Session { gap } => windows.push((time, time.saturating_add(gap))),
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

impl Windows {
    /// For windows made of shared slices (`HOP`: slides, `CUMULATE`: steps), the tumbling
    /// slices to aggregate rows into, so that each row is counted once and each window merges
    /// its slices.
    pub fn slices(&self) -> Option<Windows> {
        match *self {
            Windows::Hop { slide, offset, .. } => Some(Windows::Tumble {
                size: slide,
                offset,
            }),
            Windows::Cumulate { step, offset, .. } => Some(Windows::Tumble { size: step, offset }),
            Windows::Tumble { .. } | Windows::Session { .. } => None,
        }
    }

    /// The end of the last window that contains the slice ending at `slice_end`.
    pub fn last_window_end(&self, slice_end: Millis) -> Millis {
        match *self {
            Windows::Hop { slide, size, .. } => slice_end.saturating_add(size - slide),
            Windows::Cumulate { size, offset, .. } => {
                align(slice_end - 1, size, offset).saturating_add(size)
            }
            Windows::Tumble { .. } | Windows::Session { .. } => slice_end,
        }
    }

    /// The ends of the windows that contain the slice ending at `slice_end`, ascending.
    pub fn window_ends_of_slice(&self, slice_end: Millis) -> Vec<Millis> {
        let step = match *self {
            Windows::Hop { slide, .. } => slide,
            Windows::Cumulate { step, .. } => step,
            Windows::Tumble { size, .. } => size,
            Windows::Session { gap } => gap,
        };
        let last = self.last_window_end(slice_end);
        let mut ends = vec![slice_end];
        while let Some(&end) = ends.last().filter(|end| **end < last) {
            ends.push(end.saturating_add(step));
        }
        ends
    }

    /// The start of the window that ends at `end`.
    pub fn window_start(&self, end: Millis) -> Millis {
        match *self {
            Windows::Tumble { size, .. } | Windows::Hop { size, .. } => end.saturating_sub(size),
            Windows::Cumulate { size, offset, .. } => align(end - 1, size, offset),
            Windows::Session { gap } => end.saturating_sub(gap),
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
    fn windows_find_their_slices() {
        let hop = Windows::Hop {
            slide: 5,
            size: 15,
            offset: 0,
        };
        assert_eq!(hop.slices(), Some(Windows::Tumble { size: 5, offset: 0 }));
        assert_eq!(hop.window_ends_of_slice(10), vec![10, 15, 20]);
        assert_eq!(hop.window_start(20), 5);
        let cumulate = Windows::Cumulate {
            step: 2,
            size: 6,
            offset: 0,
        };
        assert_eq!(cumulate.window_ends_of_slice(8), vec![8, 10, 12]);
        assert_eq!(cumulate.window_ends_of_slice(12), vec![12]);
        assert_eq!(cumulate.window_start(10), 6);
        assert_eq!(cumulate.window_start(12), 6);
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
        let tiny_steps = Windows::Cumulate {
            step: 1,
            size: 30 * 24 * 3_600_000,
            offset: 0,
        };
        assert_eq!(
            tiny_steps.validate(),
            Err(
                "a size of 2592000000 ms over a step of 1 ms puts each row in 2592000000 \
                 windows (limit 500)"
                    .to_string()
            )
        );
        let most = Windows::Hop {
            slide: 60_000,
            size: 500 * 60_000,
            offset: 0,
        };
        assert_eq!(most.validate(), Ok(()));
    }
}
