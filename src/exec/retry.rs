//! When to try a webhook or command again: exponential backoff with full jitter.
//!
//! The n-th retry waits a random time between zero and `first * 2^(n-1)`, at most an hour
//! ("full jitter": a receiver that comes back after an outage is not hit by every event at the
//! same instant). A receiver's `Retry-After` is a floor: it is never retried sooner than it
//! asked, up to a day.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::webhook::{DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_DELAY};

/// The longest wait between two attempts, from backoff alone.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// The longest `Retry-After` honoured: a receiver asking for a week is retried after a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// An endpoint's or command's retry settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts before the event is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay (before jitter).
    pub first: Duration,
    /// The longest delay (before jitter).
    pub max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { max_attempts: DEFAULT_MAX_ATTEMPTS, first: DEFAULT_RETRY_DELAY, max: MAX_DELAY }
    }
}

impl Policy {
    /// When to try again after `attempts` attempts failed, no sooner than `retry_after`.
    pub fn next_attempt(&self, attempts: u32, retry_after: Option<Duration>) -> DateTime<Utc> {
        next_attempt(attempts, self.first, self.max, retry_after)
    }
}

impl crate::config::Webhook {
    /// Its retry settings.
    pub fn retry_policy(&self) -> Policy {
        Policy { max_attempts: self.max_attempts, first: self.retry_delay, ..Policy::default() }
    }
}

impl crate::config::Command {
    /// Its retry settings.
    pub fn retry_policy(&self) -> Policy {
        Policy { max_attempts: self.max_attempts, first: self.retry_delay, ..Policy::default() }
    }
}

/// When to try again after `attempts` attempts failed: now plus [`delay`].
pub fn next_attempt(attempts: u32, first: Duration, max: Duration, retry_after: Option<Duration>) -> DateTime<Utc> {
    let wait = delay(attempts, first, max, retry_after, random_fraction());
    Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1))
}

/// The wait after `attempts` failed attempts, for a random `fraction` in [0, 1): the cap
/// `first * 2^(attempts-1)` (at most `max`) times `fraction`, and at least `retry_after`.
pub fn delay(attempts: u32, first: Duration, max: Duration, retry_after: Option<Duration>, fraction: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(40);
    let cap = first.saturating_mul(2u32.saturating_pow(doublings)).min(max);
    let jittered = cap.mul_f64(fraction.clamp(0.0, 1.0));
    jittered.max(retry_after.unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// A random number in [0, 1). Falls back to the middle when the system has no randomness,
/// which only loses the jitter.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    // 53 random bits: every value a double in [0, 1) can hold at that spacing.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_cap_doubles_up_to_the_maximum() {
        let caps: Vec<Duration> = (1..=13).map(|n| delay(n, S(2), MAX_DELAY, None, 1.0)).collect();
        let expected: Vec<Duration> =
            [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600].into_iter().map(S).collect();
        assert_eq!(caps, expected);
        assert_eq!(delay(u32::MAX, S(2), MAX_DELAY, None, 1.0), MAX_DELAY, "no overflow");
        assert_eq!(delay(0, S(2), MAX_DELAY, None, 1.0), S(2), "attempts 0 is treated as the first");
    }

    #[test]
    fn jitter_spans_zero_to_the_cap() {
        assert_eq!(delay(3, S(2), MAX_DELAY, None, 0.0), Duration::ZERO);
        assert_eq!(delay(3, S(2), MAX_DELAY, None, 0.5), S(4));
        for attempts in 1..20 {
            let cap = delay(attempts, S(2), MAX_DELAY, None, 1.0);
            for _ in 0..50 {
                let wait = delay(attempts, S(2), MAX_DELAY, None, random_fraction());
                assert!(wait <= cap && cap <= MAX_DELAY, "{wait:?} > {cap:?}");
            }
        }
        let draws: Vec<f64> = (0..1000).map(|_| random_fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }

    #[test]
    fn retry_after_is_a_floor_up_to_a_day() {
        assert_eq!(delay(1, S(2), MAX_DELAY, Some(S(120)), 0.3), S(120));
        assert_eq!(delay(12, S(2), MAX_DELAY, Some(S(5)), 1.0), MAX_DELAY, "backoff longer than asked");
        assert_eq!(delay(1, S(2), MAX_DELAY, Some(S(30 * 86_400)), 1.0), MAX_RETRY_AFTER);
    }

    #[test]
    fn next_attempt_is_within_the_bounds() {
        let before = Utc::now();
        let at = Policy::default().next_attempt(5, None);
        assert!(at >= before && at <= Utc::now() + chrono::Duration::seconds(32), "{at} vs {before}");
        let at = Policy::default().next_attempt(1, Some(S(600)));
        assert!(at >= before + chrono::Duration::seconds(600));
    }

    #[test]
    fn the_imap_executor_honours_retry_after_too() {
        let row = crate::exec::event::test_row("k", "move");
        let ran = vec![(row.id, crate::exec::Ran::RetryAfter(S(600), "busy".into()))];
        let before = Utc::now();
        match crate::exec::settle(std::slice::from_ref(&row), ran).as_slice() {
            [(_, crate::store::Outcome::Retry { next_attempt_at, error })] => {
                assert!(*next_attempt_at >= before + chrono::Duration::seconds(600), "{next_attempt_at}");
                assert_eq!(error, "busy");
            }
            other => panic!("{other:?}"),
        }
    }
}
