//! Throttling of wrong tokens: each failed `auth` is answered late, the more failures its
//! address has had lately the later (doubling from [`FIRST_DELAY`] up to [`MOST_DELAY`]); an
//! address's failures are forgotten [`FORGET_AFTER`] after its last one or on its first
//! success; and a connection is closed after [`FAILURES_PER_CONNECTION`] wrong tokens. Every
//! failure is logged to stderr with its address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The delay of an address's first failed `auth`.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay of a failed `auth`.
pub const MOST_DELAY: Duration = Duration::from_secs(10);
/// How long an address's failures are remembered after its last one.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Wrong tokens one connection may send; the last is answered, then the connection closes.
pub const FAILURES_PER_CONNECTION: u32 = 5;

/// Addresses remembered before the forgotten ones are swept out.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub(crate) struct AuthThrottle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    count: u32,
    last: Instant,
}

impl AuthThrottle {
    /// Counts a failure from `address`; how long to wait before answering it, and how many
    /// failures the address has had lately.
    pub(crate) fn failed(&self, address: IpAddr) -> (Duration, u32) {
        let now = Instant::now();
        let Ok(mut failures) = self.failures.lock() else {
            return (MOST_DELAY, u32::MAX);
        };
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        let entry = failures.entry(address).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        (delay(entry.count), entry.count)
    }

    /// Forgets `address`'s failures.
    pub(crate) fn succeeded(&self, address: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&address);
        }
    }
}

/// The delay of an address's `count`-th recent failure.
fn delay(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MOST_DELAY)
}

/// Whether `given` equals `expected`, in a time that depends on their lengths only.
pub(crate) fn same_token(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let differences = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    given.len() == expected.len() && differences == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_most() {
        let delays: Vec<u128> = (1..=9).map(|n| delay(n).as_millis()).collect();
        assert_eq!(
            delays,
            vec![100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]
        );
        assert_eq!(delay(u32::MAX), MOST_DELAY);
    }

    #[test]
    fn failures_count_per_address_until_a_success() {
        let throttle = AuthThrottle::default();
        let (one, two) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(throttle.failed(one).1, 1);
        assert_eq!(throttle.failed(one).1, 2);
        assert_eq!(throttle.failed(two).1, 1);
        throttle.succeeded(one);
        assert_eq!(throttle.failed(one), (FIRST_DELAY, 1));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("secret", "secret"));
        assert!(!same_token("secre", "secret"));
        assert!(!same_token("secret!", "secret"));
        assert!(!same_token("sekret", "secret"));
        assert!(!same_token("", "secret"));
    }
}
