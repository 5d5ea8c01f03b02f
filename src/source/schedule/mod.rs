//! Schedules: the second trigger beside the mailbox watchers. Rules run on a clock.
//!
//! A [`Scheduler`] runs one task per schedule of its account: at start-up it asks [`fires`]
//! whether a fire was missed while tidings was down (and runs it once, or not, as `catch_up`
//! says), then sleeps until the next fire, runs it ([`sweep`]), and so on. A fire of a sweep
//! selects messages with a server-side SEARCH ([`search`]), runs the schedule's rule over each,
//! and stores the plans in the outbox like live mail; the account's executors carry them out.
//!
//! Two schedules never sweep one mailbox at the same time ([`SweepLocks`]). A failed fire (the
//! server down, a rule failing) is logged and recorded as that run's outcome, and the task goes
//! on to the next fire. What it must not do: decide about mail (the rule does) or change the
//! mailbox (the executors do); a sweep only reads, with EXAMINE.

pub mod fires;
pub mod search;
pub mod sweep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::causes::error_chain;
use crate::config::{Account, Run, Schedule};
use crate::exec::Wake;
use crate::imap::{self, Login, Timeouts};
use crate::rules::CurrentRules;
use crate::store::{self, Store};
use sweep::Sweep;

/// Why a schedule's fire could not run or be recorded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `search:` cannot be sent to this server.
    #[error("cannot search for schedule `{schedule}`: {reason}")]
    Search {
        /// The schedule.
        schedule: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached or refused a step of the sweep.
    #[error("cannot sweep {account}/{mailbox} for schedule `{schedule}`")]
    Imap {
        /// The schedule.
        schedule: String,
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// The IMAP error (boxed: it is large, and every `Result` here would carry its size).
        #[source]
        source: Box<imap::Error>,
    },
    /// The store failed: the run's plans or its record could not be kept.
    #[error("cannot run schedule `{schedule}`: the store failed")]
    Store {
        /// The schedule.
        schedule: String,
        /// The store error (boxed, as the IMAP one).
        #[source]
        source: Box<store::Error>,
    },
}

/// One lock per (account, mailbox), shared by every schedule: two sweeps of one mailbox would
/// plan the same messages twice over, each under its own fire's keys.
#[derive(Clone, Debug, Default)]
pub struct SweepLocks(Arc<Mutex<HashMap<(String, String), MailboxLock>>>);

/// Held while a sweep works in one mailbox.
type MailboxLock = Arc<tokio::sync::Mutex<()>>;

impl SweepLocks {
    /// The lock of `mailbox` in `account`.
    pub fn of(&self, account: &str, mailbox: &str) -> MailboxLock {
        // Each use is one map lookup or insert: a panic cannot leave it half done.
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry((account.to_owned(), mailbox.to_owned())).or_default().clone()
    }
}

/// The schedules of one account.
pub struct Scheduler {
    account: Arc<Account>,
    schedules: Vec<Schedule>,
    login: Login,
    timeouts: Timeouts,
    store: Store,
    rules: CurrentRules,
    wake: Arc<Wake>,
    locks: SweepLocks,
}

impl Scheduler {
    /// A scheduler for `schedules` of `account` (the caller picks the account's own); `wake` is
    /// the account's executors' wake-up, `locks` shared by every account's scheduler.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        account: Arc<Account>,
        schedules: Vec<Schedule>,
        login: Login,
        timeouts: Timeouts,
        store: Store,
        rules: CurrentRules,
        wake: Arc<Wake>,
        locks: SweepLocks,
    ) -> Scheduler {
        Scheduler { account, schedules, login, timeouts, store, rules, wake, locks }
    }

    /// Runs every schedule until `shutdown` turns true; a run in progress stops between chunks.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        for schedule in self.schedules {
            let span = tracing::info_span!("schedule", schedule = %schedule.name);
            let sweep = Sweep {
                account: self.account.clone(),
                schedule: Arc::new(schedule),
                login: self.login.clone(),
                timeouts: self.timeouts,
                store: self.store.clone(),
                rules: self.rules.clone(),
                wake: self.wake.clone(),
            };
            tasks.spawn(every_fire(sweep, self.locks.clone(), shutdown.clone()).instrument(span));
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(panic) = joined {
                tracing::error!(%panic, "schedule task panicked");
            }
        }
    }
}

/// One schedule's life: a missed fire first (if `catch_up` says so), then each next fire.
async fn every_fire(sweep: Sweep, locks: SweepLocks, mut shutdown: watch::Receiver<bool>) {
    let schedule = sweep.schedule.clone();
    let last = match sweep.store.last_schedule_run(&schedule.name).await {
        Ok(last) => last,
        Err(e) => {
            // Without the record no fire can be told run or not; the next one can still run.
            tracing::error!(error = %error_chain(&e), "cannot read when the schedule last fired; no catch-up");
            None
        }
    };
    let now = Utc::now();
    let mut missed = fires::missed(&schedule.cron, schedule.timezone, last, now, schedule.catch_up);
    // Never earlier than the last fire: with the clock turned back, that fire must not repeat.
    let mut after = last.map_or(now, |last| last.max(now));
    loop {
        let fire = match missed.take() {
            Some(fire) => {
                tracing::info!(fired_at = %fire.to_rfc3339(), "running a fire missed while tidings was not running");
                fire
            }
            None => match fires::next_after(&schedule.cron, schedule.timezone, after) {
                Some(fire) => fire,
                None => {
                    tracing::warn!(cron = %schedule.cron_text, "the schedule never fires again");
                    return;
                }
            },
        };
        tracing::debug!(next = %fire.to_rfc3339(), "waiting for the next fire");
        if !sleep_until(fire, &mut shutdown).await {
            return;
        }
        // A run without messages reads no mailbox, so it takes no mailbox's lock.
        let lock = (schedule.run == Run::PerMessage).then(|| locks.of(&schedule.account, &schedule.mailbox));
        let _held = match &lock {
            Some(lock) => tokio::select! {
                held = lock.lock() => Some(held),
                _ = shutdown.changed() => return,
            },
            None => None,
        };
        match sweep.fire(fire, &shutdown).await {
            Ok(Some(_)) => {}
            Ok(None) => return, // shutdown asked mid-run; the fire was not recorded
            Err(e) => tracing::error!(error = %error_chain(&e), fired_at = %fire.to_rfc3339(), "schedule run failed"),
        }
        // Fires that passed while this one ran are not run one by one.
        after = fire.max(Utc::now());
    }
}

/// Sleeps until the wall clock reads `at`; `false` if shutdown came first. Timers run on the
/// monotonic clock, so a wall clock changed meanwhile (NTP, suspend) is read again on waking.
async fn sleep_until(at: DateTime<Utc>, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        let Ok(left) = (at - Utc::now()).to_std() else { return true };
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            changed = shutdown.changed() => if changed.is_err() { return false },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::SweepLocks;

    /// Every schedule of a mailbox gets the one lock: while one sweeps, another waits.
    #[tokio::test]
    async fn one_lock_per_account_and_mailbox() {
        let locks = SweepLocks::default();
        let (a, b) = (locks.of("work", "INBOX"), locks.clone().of("work", "INBOX"));
        assert!(Arc::ptr_eq(&a, &b));
        let held = a.lock().await;
        assert!(b.try_lock().is_err(), "a second sweep of the mailbox waits");
        assert!(locks.of("work", "Newsletters").try_lock().is_ok());
        assert!(locks.of("home", "INBOX").try_lock().is_ok());
        drop(held);
        assert!(b.try_lock().is_ok());
    }
}
