//! How long to wait before reconnecting: exponential backoff with full jitter, and a slow
//! fixed delay for failures that retrying soon cannot fix (refused credentials, TLS).
//!
//! It only computes delays; it does not sleep, connect or decide whether to give up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Error;

/// What a failed connection was, for how long to wait and how to say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Network trouble, a timeout, a server that hung up: reconnect on the growing backoff.
    Transient,
    /// Refused credentials or TLS ([`Error::is_auth`], [`Error::is_tls`]): retrying soon
    /// only locks the account; the slow fixed delay.
    Login,
    /// A local file the config names cannot be read ([`Error::is_config`]): the user's to fix
    /// now, not a login to spare; the ordinary backoff, reported once.
    Config,
}

impl Class {
    /// The class of a failure from its three predicates (IMAP and SMTP errors both have them).
    pub fn of(is_config: bool, is_auth: bool, is_tls: bool) -> Class {
        match (is_config, is_auth || is_tls) {
            (true, _) => Class::Config,
            (false, true) => Class::Login,
            (false, false) => Class::Transient,
        }
    }
}

impl Error {
    /// How a connection that failed with this error is retried.
    pub fn class(&self) -> Class {
        Class::of(self.is_config(), self.is_auth(), self.is_tls())
    }
}

/// Reconnect delays for one connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    slow: Duration,
    attempt: u32,
    rng: XorShift,
    /// A configuration error was logged since the last success: its repeats are not news.
    config_reported: bool,
}

impl Default for Backoff {
    /// Base 1 s, cap 5 min, 15 min after an authentication or TLS failure.
    fn default() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300), Duration::from_secs(900))
    }
}

impl Backoff {
    /// Delays from `base` doubling up to `cap`, and `slow` after auth or TLS failures; the
    /// jitter is seeded from the clock and the process id.
    pub fn new(base: Duration, cap: Duration, slow: Duration) -> Backoff {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Backoff::with_seed(base, cap, slow, nanos ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// The same with a fixed seed, for reproducible tests.
    pub fn with_seed(base: Duration, cap: Duration, slow: Duration, seed: u64) -> Backoff {
        Backoff { base, cap: cap.max(base), slow, attempt: 0, rng: XorShift::new(seed), config_reported: false }
    }

    /// The delay before the next attempt: uniform in `[0, min(cap, base * 2^n)]` for the n-th
    /// failure in a row (full jitter, so that many watchers do not reconnect in step).
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let millis = ceiling.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(self.rng.next() % (millis + 1))
    }

    /// The delay after `error`: the slow fixed one for [`Error::is_auth`] and
    /// [`Error::is_tls`], else [`Backoff::next_delay`] (an unreadable CA file,
    /// [`Error::is_config`], is the user's to fix now, not a login to spare: the short one).
    pub fn delay_for(&mut self, error: &Error) -> Duration {
        self.delay_after(error.class())
    }

    /// The delay after a failure of `class`: see [`Backoff::delay_for`].
    pub fn delay_after(&mut self, class: Class) -> Duration {
        match class {
            Class::Login => self.slow,
            Class::Transient | Class::Config => self.next_delay(),
        }
    }

    /// Back to the first delay, after a connection worked.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.config_reported = false;
    }

    /// Whether `error` deserves an error line: a configuration error only the first time since
    /// the last success (its retries come often and say the same), anything else every time.
    pub fn is_news(&mut self, error: &Error) -> bool {
        self.is_news_of(error.class())
    }

    /// Whether a failure of `class` deserves an error line: see [`Backoff::is_news`].
    pub fn is_news_of(&mut self, class: Class) -> bool {
        class != Class::Config || !std::mem::replace(&mut self.config_reported, true)
    }

    /// Failures in a row since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).map_or(self.cap, |d| d.min(self.cap))
    }
}

/// xorshift64: enough to spread reconnects, no crate needed. Not for anything secret.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // Zero is the one state xorshift never leaves.
        XorShift(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn delays_stay_under_a_doubling_ceiling_up_to_the_cap() {
        let mut backoff = Backoff::with_seed(SEC, Duration::from_secs(300), Duration::from_secs(900), 7);
        for n in 0..40u32 {
            let ceiling = SEC.saturating_mul(2u32.saturating_pow(n)).min(Duration::from_secs(300));
            let delay = backoff.next_delay();
            assert!(delay <= ceiling, "attempt {n}: {delay:?} above {ceiling:?}");
        }
        assert_eq!(backoff.attempts(), 40);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert!(backoff.next_delay() <= SEC, "after reset the ceiling is the base again");
    }

    #[test]
    fn jitter_spreads_and_is_reproducible_with_a_seed() {
        let delays = |seed| {
            let mut b = Backoff::with_seed(SEC, Duration::from_secs(300), Duration::from_secs(900), seed);
            (0..20).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(42), delays(42));
        assert_ne!(delays(42), delays(43));
        // At the cap, 50 draws in [0, 300 s] are not all in one half.
        let mut b = Backoff::with_seed(SEC, Duration::from_secs(300), Duration::from_secs(900), 1);
        b.attempt = 20;
        let draws: Vec<Duration> = (0..50).map(|_| b.next_delay()).collect();
        assert!(
            draws.iter().any(|d| *d < Duration::from_secs(150)) && draws.iter().any(|d| *d >= Duration::from_secs(150))
        );
        assert!(draws.iter().all(|d| *d <= Duration::from_secs(300)));
    }

    #[test]
    fn auth_and_tls_failures_wait_the_slow_delay() {
        let mut b = Backoff::with_seed(SEC, Duration::from_secs(60), Duration::from_secs(900), 3);
        let at = || "account `a` (h:993)".to_string();
        let auth = Error::Auth { at: at(), user: "u".into(), source: async_imap::error::Error::No("no".into()) };
        let tls = Error::Tls { at: at(), source: std::io::Error::other("x") };
        let lost = Error::Connect { at: at(), source: std::io::ErrorKind::ConnectionRefused.into() };
        assert_eq!(b.delay_for(&auth), Duration::from_secs(900));
        assert_eq!(b.delay_for(&tls), Duration::from_secs(900));
        assert!(b.delay_for(&lost) <= SEC);
        assert!(Backoff::default().next_delay() <= SEC);
    }

    #[test]
    fn an_unreadable_ca_file_is_retried_soon_and_reported_once() {
        let mut b = Backoff::with_seed(SEC, Duration::from_secs(60), Duration::from_secs(900), 5);
        let missing = Error::CaFile {
            path: "/etc/tidings/ca.pem".into(),
            at: "account `a` (h:993)".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert!(missing.is_config() && !missing.is_tls() && !missing.is_auth());
        assert!(b.delay_for(&missing) <= SEC, "the ordinary backoff, not the 15-minute login one");
        assert!(b.is_news(&missing));
        assert!(!b.is_news(&missing), "the same configuration error is logged once");
        let lost = Error::Connect { at: "a".into(), source: std::io::ErrorKind::ConnectionRefused.into() };
        assert!(b.is_news(&lost) && b.is_news(&lost));
        b.reset();
        assert!(b.is_news(&missing), "after a success it is news again");
    }
}
