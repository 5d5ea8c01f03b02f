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

use crate::config::Account;
use crate::imap::{self, Kept, Login, Timeouts};
use crate::lifecycle::{self, Component, Lost, Mode, Run, Step, Trouble, Until, Words};
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
    store: Store,
    wake: Arc<Notify>,
    conn: Kept,
    /// When the session last carried actions: it is closed `LINGER` after that.
    used_at: Instant,
    ops: imap_ops::Targets,
    /// With `--once` beside the watchers: turns true once they stored every plan.
    all_stored: Option<watch::Receiver<bool>>,
}

impl Executor {
    /// An executor for `account`; `wake` is notified by the watchers when they stored a plan.
    pub fn new(account: Arc<Account>, login: Login, timeouts: Timeouts, store: Store, wake: Arc<Notify>) -> Executor {
        Executor {
            account,
            store,
            wake,
            conn: Kept::new(login, timeouts),
            used_at: Instant::now(),
            ops: imap_ops::Targets::default(),
            all_stored: None,
        }
    }

    /// The same executor for `--once` beside the watchers of the same pass: it runs actions
    /// as the watchers store them (woken by them), so that moving a big backlog overlaps
    /// fetching and deciding it; once `all_stored` turns true (or its sender is gone), it
    /// runs what remains and ends.
    pub fn beside(mut self, all_stored: watch::Receiver<bool>) -> Executor {
        self.all_stored = Some(all_stored);
        self
    }

    /// Runs until shutdown; between batches only, so an action in progress is finished (or
    /// its connection dropped) and recorded, never left half-known. With `--once`: every
    /// action that is due now or becomes due, until none is pending; a TLS or authentication
    /// failure ends it at once.
    pub async fn run(self, mode: Mode) -> Result<(), Error> {
        lifecycle::drive(self, mode).await
    }

    /// Whether no more plans will be stored in this `--once` pass.
    fn all_stored(&self) -> bool {
        self.all_stored.as_ref().is_none_or(|s| *s.borrow() || s.has_changed().is_err())
    }

    /// Nothing due now: with `--once`, wait for what the watchers store or what becomes due,
    /// or end. Else wait for a wake-up or what becomes due, keeping the connection until it
    /// was unused for `LINGER`.
    async fn rest(&mut self, once: bool, all_stored: bool) -> Result<Step, Error> {
        if once {
            if !all_stored {
                let until = Until::after(Duration::from_secs(3600)).or_notified(&self.wake);
                return Ok(match self.all_stored.clone() {
                    Some(mut stored) => Step::Idle(until.or(async move {
                        let _ = stored.changed().await;
                    })),
                    None => Step::Idle(until),
                });
            }
            return match self.store.next_due(&self.account.name, IMAP_KINDS).await.map_err(|e| self.store_error(e))? {
                Some(_) => Ok(Step::Idle(Until::after(self.until_next_due().await?))),
                None => Ok(Step::Done),
            };
        }
        // Idle past LINGER: close the connection now (a server would cut it sooner or later
        // anyway), reconnect when there is work.
        let linger = LINGER.saturating_sub(self.used_at.elapsed());
        if linger.is_zero() {
            self.conn.logout().await;
        } else {
            self.leave_mailbox().await;
        }
        let next = self.until_next_due().await?;
        let wait = if self.conn.is_open() { next.min(linger) } else { next };
        Ok(Step::Idle(Until::after(wait).or_notified(&self.wake)))
    }

    async fn until_next_due(&self) -> Result<Duration, Error> {
        let next = self.store.next_due(&self.account.name, IMAP_KINDS).await.map_err(|e| self.store_error(e))?;
        // Nothing pending: sleep until woken; an hour is only a backstop.
        Ok(next.map_or(Duration::from_secs(3600), |at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)))
    }

    /// One claim-and-run round.
    async fn round(&mut self, run: &mut Run) -> Result<Round, Lost<Error>> {
        // Connect only when something is due: an idle account holds no executor connection.
        // Connecting before claiming keeps an outage from using up the actions' attempts.
        let due =
            self.store.next_due(&self.account.name, IMAP_KINDS).await.map_err(|e| Lost::Fatal(self.store_error(e)))?;
        if due.is_none_or(|at| at > Utc::now()) {
            return Ok(Round::Idle);
        }
        if self.used_at.elapsed() > CHECK_AFTER
            && let Some(session) = self.conn.current()
            && let Err(e) = session.noop().await
        {
            tracing::debug!(error = %e, "the kept connection is gone; reconnecting");
            self.conn.forget();
        }
        match self.conn.session().await {
            Ok(live) if live.new => {
                run.connected();
                self.ops = imap_ops::Targets::default();
            }
            Ok(_) => {}
            Err(e) => return Err(self.unreachable(e, run.once())),
        }
        let claimed = self
            .store
            .claim_due_for(&self.account.name, IMAP_KINDS, Utc::now(), BATCH)
            .await
            .map_err(|e| Lost::Fatal(self.store_error(e)))?;
        if claimed.is_empty() {
            return Ok(Round::Idle);
        }
        let outcomes = match self.conn.current() {
            Some(session) => imap_ops::run(session, &self.account, &mut self.ops, &claimed).await,
            None => Vec::new(),
        };
        self.used_at = Instant::now();
        let outcomes = settle(&claimed, outcomes);
        if self.conn.current().is_some_and(|s| s.is_broken()) {
            self.conn.forget();
        }
        self.store.record_outcomes(outcomes).await.map_err(|e| Lost::Fatal(self.store_error(e)))?;
        Ok(Round::Worked)
    }

    fn unreachable(&self, error: imap::Error, once: bool) -> Lost<Error> {
        if once && (error.is_auth() || error.is_tls() || error.is_config()) {
            return Lost::Fatal(Error::Fatal { account: self.account.name.clone(), source: Box::new(error) });
        }
        Lost::Retry(Trouble::imap(&error))
    }

    /// A kept connection waits with no mailbox selected. Against the harness Dovecot (several
    /// sessions per process), while this idle session kept INBOX selected, mail delivered to
    /// INBOX did not wake the watcher's IDLE there in tests/watch.rs and tests/reload.rs (it
    /// did in benches/push, so the exact trigger is Dovecot's); with nothing selected it always
    /// did. The cost is one SELECT before the next action. Without UNSELECT the connection is
    /// closed instead, as CLOSE would expunge other clients' `\Deleted` mail.
    async fn leave_mailbox(&mut self) {
        let Some(session) = self.conn.current() else { return };
        match session.unselect().await {
            Ok(true) => {}
            Ok(false) => self.conn.logout().await,
            Err(e) => {
                tracing::debug!(error = %e, "cannot leave the mailbox; the connection is dropped");
                self.conn.forget();
            }
        }
    }

    fn store_error(&self, source: store::Error) -> Error {
        Error::Store { account: self.account.name.clone(), source: Box::new(source) }
    }
}

impl Component for Executor {
    type Error = Error;
    const WORDS: Words = Words {
        login: "cannot log in to run actions; retrying slowly",
        lost: "cannot connect to run actions; retrying",
    };

    async fn step(&mut self, run: &mut Run) -> Result<Step, Lost<Error>> {
        // Read before the round: an idle round that started after the last plan was stored
        // has seen every action there will be.
        let all_stored = self.all_stored();
        match self.round(run).await? {
            Round::Worked => Ok(Step::Worked),
            Round::Idle => self.rest(run.once(), all_stored).await.map_err(Lost::Fatal),
        }
    }

    async fn close(&mut self) {
        self.conn.logout().await;
    }
}

enum Round {
    /// Actions were claimed and run: look for more at once.
    Worked,
    /// Nothing due.
    Idle,
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
