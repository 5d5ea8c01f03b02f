//! Executors: carry out stored actions exactly once, and record what came of each.
//!
//! Input: pending actions in the store's outbox. Output: changes on the server, and each
//! action's outcome (done, retry later, failed) recorded in the store. An executor makes no
//! decisions about mail: what to do was settled by the rules and is already on disk.
//!
//! This one runs the actions on the message in its mailbox ([`crate::plan::MAILBOX_KINDS`]) and
//! saves copies of sent mail ([`IMAP_KINDS`]); it never claims outbound ones (replies, webhooks
//! ...), which wait in the outbox for their own executors.
//!
//! One executor per account holds its own IMAP connection (the watchers' connections are busy
//! idling). It claims due actions in batches, so a burst of a hundred moves to one folder is one
//! `UID MOVE` with a UID set, not a hundred round trips.
//!
//! Layer: stage (see the map in lib.rs): built from `imap`, `store` and `auth`; it knows nothing
//! of `source`, the runtime or `health`.

pub mod command;
pub mod event;
mod imap_ops;
pub mod mail;
pub mod outbound;
pub mod retry;
mod wake;
pub mod webhook;

pub use wake::Wake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, watch};

use crate::causes::error_chain;
use crate::config::Account;
use crate::imap::{self, Login, Session, Timeouts};
use crate::store::{self, Action, ActionId, Outcome, Store};

/// What this executor claims: the actions on messages in their mailboxes (the plan's
/// `MAILBOX_KINDS`), and the APPEND of sent mail to the account's sent folder
/// ([`mail::save_sent_action`]).
pub const IMAP_KINDS: &[&str] = &["add_flags", "remove_flags", "copy", "move", "delete", "archive", mail::SAVE_SENT];

/// Actions claimed per round. Large, so that a backlog becomes few big UID MOVE / UID STORE
/// commands (each costs the server a transaction); a live mailbox has a handful per round.
const BATCH: usize = 5000;
/// An executor keeps its connection this long after it last used it. Mail comes in bursts,
/// and a new connection costs TLS, login and SELECT before the first action: on loopback 5 ms
/// against Dovecot and ~50 ms against Cyrus, which was most of the push latency; across the
/// internet several round trips more. The connection is counted in the account's budget
/// either way.
const LINGER: Duration = Duration::from_secs(300);
/// A kept connection unused for longer than this is checked with NOOP before it carries an
/// action: a server or a NAT may have dropped it silently, and an action sent on a dead
/// connection would spend one of its attempts.
const CHECK_AFTER: Duration = Duration::from_secs(30);
/// After this many attempts a transiently failing action is given up (dead-lettered).
pub const MAX_ATTEMPTS: u32 = 10;

/// Why an executor stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed; without it no outcome can be recorded, so the executor stops.
    #[error("cannot run actions of account {account}: the store failed")]
    Store {
        /// The account.
        account: String,
        /// The store error.
        #[source]
        source: Box<store::Error>,
    },
    /// A run with `--once` met an error that retrying will not fix (TLS, authentication).
    #[error("cannot run actions of account {account}")]
    Fatal {
        /// The account.
        account: String,
        /// The IMAP error.
        #[source]
        source: Box<imap::Error>,
    },
}

/// Runs one account's actions.
pub struct Executor {
    account: Arc<Account>,
    login: Login,
    timeouts: Timeouts,
    store: Store,
    wake: Arc<Notify>,
    session: Option<Session>,
    /// When the session last carried actions: it is closed `LINGER` after that.
    used_at: Instant,
    backoff: imap::retry::Backoff,
    ops: imap_ops::Targets,
    /// `--once`: give up on errors that retrying will not fix instead of waiting.
    once: bool,
}

impl Executor {
    /// An executor for `account`; `wake` is notified by the watchers when they stored a plan.
    pub fn new(account: Arc<Account>, login: Login, timeouts: Timeouts, store: Store, wake: Arc<Notify>) -> Executor {
        Executor {
            account,
            login,
            timeouts,
            store,
            wake,
            session: None,
            used_at: Instant::now(),
            backoff: imap::retry::Backoff::default(),
            ops: imap_ops::Targets::default(),
            once: false,
        }
    }

    /// Runs until `shutdown` turns true; between batches only, so an action in progress is
    /// finished (or its connection dropped) and recorded, never left half-known.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        while !*shutdown.borrow() {
            match self.round().await? {
                Round::Worked => continue,
                Round::Idle => {}
                Round::Unreachable(delay) => {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
            // Idle past LINGER: close the connection now (a server would cut it sooner or
            // later anyway), reconnect when there is work.
            let linger = LINGER.saturating_sub(self.used_at.elapsed());
            if linger.is_zero() {
                self.logout().await;
            } else {
                self.leave_mailbox().await;
            }
            let next = self.until_next_due().await?;
            let wait = if self.session.is_some() { next.min(linger) } else { next };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.logout().await;
        Ok(())
    }

    /// Runs every action that is due now or becomes due, until none is pending: `--once`.
    /// A TLS or authentication failure ends it at once.
    pub async fn run_once(self) -> Result<(), Error> {
        let (_stored, all_stored) = watch::channel(true);
        self.run_once_beside(all_stored).await
    }

    /// `--once` beside the watchers of the same pass: runs actions as the watchers store
    /// them (woken by them), so that moving a big backlog overlaps fetching and deciding it;
    /// once `all_stored` turns true (or its sender is gone), runs what remains and returns.
    pub async fn run_once_beside(mut self, mut all_stored: watch::Receiver<bool>) -> Result<(), Error> {
        self.once = true;
        let mut finished = *all_stored.borrow();
        loop {
            // Read before the round: an Idle round that started after the last plan was
            // stored has seen every action there will be.
            let finished_before = finished;
            match self.round().await? {
                Round::Worked => continue,
                Round::Unreachable(delay) => tokio::time::sleep(delay).await,
                Round::Idle if finished_before => {
                    match self.store.next_due(&self.account.name, IMAP_KINDS).await.map_err(|e| self.store_error(e))? {
                        Some(_) => tokio::time::sleep(self.until_next_due().await?).await,
                        None => break,
                    }
                }
                Round::Idle => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        changed = all_stored.changed() => finished = changed.is_err() || *all_stored.borrow(),
                    }
                }
            }
        }
        self.logout().await;
        Ok(())
    }

    async fn until_next_due(&self) -> Result<Duration, Error> {
        let next = self.store.next_due(&self.account.name, IMAP_KINDS).await.map_err(|e| self.store_error(e))?;
        // Nothing pending: sleep until woken; an hour is only a backstop.
        Ok(next.map_or(Duration::from_secs(3600), |at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)))
    }

    /// One claim-and-run round.
    async fn round(&mut self) -> Result<Round, Error> {
        // Connect only when something is due: an idle account holds no executor connection.
        // Connecting before claiming keeps an outage from using up the actions' attempts.
        let due = self.store.next_due(&self.account.name, IMAP_KINDS).await.map_err(|e| self.store_error(e))?;
        if due.is_none_or(|at| at > Utc::now()) {
            return Ok(Round::Idle);
        }
        if let Some(session) = self.session.as_mut()
            && self.used_at.elapsed() > CHECK_AFTER
            && let Err(e) = session.noop().await
        {
            tracing::debug!(error = %e, "the kept connection is gone; reconnecting");
            self.session = None;
        }
        if self.session.is_none() {
            match Session::connect(&self.login, self.timeouts).await {
                Ok(session) => {
                    self.backoff.reset();
                    self.ops = imap_ops::Targets::default();
                    self.session = Some(session);
                }
                Err(e) => return self.unreachable(e),
            }
        }
        let claimed = self
            .store
            .claim_due_for(&self.account.name, IMAP_KINDS, Utc::now(), BATCH)
            .await
            .map_err(|e| self.store_error(e))?;
        if claimed.is_empty() {
            return Ok(Round::Idle);
        }
        let outcomes = match self.session.as_mut() {
            Some(session) => imap_ops::run(session, &self.account, &mut self.ops, &claimed).await,
            None => Vec::new(),
        };
        self.used_at = Instant::now();
        let outcomes = settle(&claimed, outcomes);
        if self.session.as_ref().is_some_and(Session::is_broken) {
            self.session = None;
        }
        self.store.record_outcomes(outcomes).await.map_err(|e| self.store_error(e))?;
        Ok(Round::Worked)
    }

    fn unreachable(&mut self, error: imap::Error) -> Result<Round, Error> {
        if self.once && (error.is_auth() || error.is_tls() || error.is_config()) {
            return Err(Error::Fatal { account: self.account.name.clone(), source: Box::new(error) });
        }
        if error.is_config() {
            if self.backoff.is_news(&error) {
                tracing::error!(error = %config_advice(&error), "configuration error");
            }
        } else if error.is_auth() || error.is_tls() {
            tracing::error!(error = %error_chain(&error), "cannot log in to run actions; retrying slowly");
        } else {
            tracing::warn!(error = %error_chain(&error), "cannot connect to run actions; retrying");
        }
        let delay = self.backoff.delay_for(&error);
        Ok(Round::Unreachable(delay))
    }

    /// A kept connection waits with no mailbox selected. Against the harness Dovecot (several
    /// sessions per process), while this idle session kept INBOX selected, mail delivered to
    /// INBOX did not wake the watcher's IDLE there in tests/watch.rs and tests/reload.rs (it
    /// did in benches/push, so the exact trigger is Dovecot's); with nothing selected it always
    /// did. The cost is one SELECT before the next action. Without UNSELECT the connection is
    /// closed instead, as CLOSE would expunge other clients' `\Deleted` mail.
    async fn leave_mailbox(&mut self) {
        let Some(session) = self.session.as_mut() else { return };
        match session.unselect().await {
            Ok(true) => {}
            Ok(false) => self.logout().await,
            Err(e) => {
                tracing::debug!(error = %e, "cannot leave the mailbox; the connection is dropped");
                self.session = None;
            }
        }
    }

    async fn logout(&mut self) {
        if let Some(session) = self.session.take()
            && let Err(e) = session.logout().await
        {
            tracing::debug!(error = %e, "logout failed; the connection is dropped anyway");
        }
    }

    fn store_error(&self, source: store::Error) -> Error {
        Error::Store { account: self.account.name.clone(), source: Box::new(source) }
    }
}

enum Round {
    /// Actions were claimed and run: look for more at once.
    Worked,
    /// Nothing due.
    Idle,
    /// The server could not be reached; try again after this long.
    Unreachable(Duration),
}

/// What an action's run came to, before retry policy.
#[derive(Clone, Debug)]
pub enum Ran {
    /// It happened.
    Done,
    /// It may work later (network, timeout, server busy).
    Transient(String),
    /// It will not work (no such folder and creating is off, refused by the server).
    Permanent(String),
    /// It may work later, but not before this long: the receiver said so (`Retry-After`).
    RetryAfter(Duration, String),
}

/// Applies the retry policy: transient errors retry with exponential delay until
/// [`MAX_ATTEMPTS`], then the action is dead-lettered. Actions without a result (the
/// connection was lost before their turn) are retried soon.
fn settle(claimed: &[Action], ran: Vec<(ActionId, Ran)>) -> Vec<(ActionId, Outcome)> {
    claimed
        .iter()
        .map(|action| {
            let result = ran.iter().find(|(id, _)| *id == action.id).map(|(_, r)| r);
            let outcome = match result {
                Some(Ran::Done) => Outcome::Done,
                Some(Ran::Permanent(error)) => Outcome::Failed { error: error.clone() },
                Some(Ran::Transient(error) | Ran::RetryAfter(_, error)) if action.attempts >= MAX_ATTEMPTS => {
                    Outcome::Failed { error: format!("gave up after {} attempts: {error}", action.attempts) }
                }
                Some(Ran::Transient(error)) => {
                    Outcome::Retry { next_attempt_at: retry_at(action.attempts), error: error.clone() }
                }
                Some(Ran::RetryAfter(after, error)) => {
                    let asked = Utc::now() + chrono::Duration::from_std(*after).unwrap_or(chrono::Duration::days(1));
                    Outcome::Retry { next_attempt_at: retry_at(action.attempts).max(asked), error: error.clone() }
                }
                None => Outcome::Retry {
                    next_attempt_at: retry_at(0),
                    error: "not run: the connection was lost first".into(),
                },
            };
            (action.id, outcome)
        })
        .collect()
}

/// 2, 4, 8 ... seconds after the n-th attempt, at most an hour.
fn retry_at(attempts: u32) -> chrono::DateTime<Utc> {
    let seconds = 2u64.saturating_pow(attempts.clamp(1, 12)).min(3600);
    Utc::now() + chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(3600))
}

/// A configuration error ([`imap::Error::is_config`]) with what to do about it, for logs and
/// `tidings status`.
pub fn config_advice(error: &imap::Error) -> String {
    format!("{}; fix the config (or the file it names) and send SIGHUP; retrying meanwhile", error_chain(error))
}
