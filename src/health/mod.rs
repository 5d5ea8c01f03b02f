//! Health you can see: what each watcher's connection is doing, counts of what happened (for
//! `/metrics`), and the verdict `/healthz`, `tidings status` and the alerts share.
//!
//! The verdict has three grades. Unhealthy: tidings is not doing its job (a watcher down, the
//! outbox backing up). Degraded: it is, but a person is needed (a rule failed on a message in the
//! last hour, actions were dead-lettered). Healthy: neither.
//!
//! The watchers report in the stages' words ([`crate::source::report::Listener`]); each one's
//! [`WatcherHealth`] hears it into one shared [`Health`]. Nothing here talks to a server. Watcher
//! states are also written to the store (when they change, not per message), so that
//! `tidings status` in another process shows them. Counts live in memory only: Prometheus
//! expects counters to restart at zero with the process.
//!
//! Layer: orchestration (see the map in lib.rs): it reads the store and listens to the watchers;
//! no stage imports it.

pub mod alerts;
pub mod http;
pub mod metrics;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::config::Thresholds;
use crate::source::report::Listener;
use crate::store::{ActionState, FailingRule, LastRun, OutboxGroup, Store, WatcherRecord};

/// How far back a rule failure makes a rule "failing now", and the verdict degraded.
pub const FAILING_NOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What a watcher's connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    /// Logging in, or waiting to retry after a failure it has not reported yet.
    Connecting,
    /// Selected and waiting for mail in IDLE.
    Idle,
    /// Selected, and checking for mail every poll interval.
    Polling,
    /// The last attempt failed; waiting to retry.
    Down,
}

impl Conn {
    /// As shown and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Conn::Connecting => "connecting",
            Conn::Idle => "idle",
            Conn::Polling => "polling",
            Conn::Down => "down",
        }
    }

    /// From its stored name.
    pub fn parse(text: &str) -> Option<Conn> {
        [Conn::Connecting, Conn::Idle, Conn::Polling, Conn::Down].into_iter().find(|c| c.as_str() == text)
    }

    /// Whether the mailbox is being watched.
    pub fn is_up(self) -> bool {
        matches!(self, Conn::Idle | Conn::Polling)
    }
}

/// One watcher as last reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherState {
    /// What its connection is doing.
    pub conn: Conn,
    /// Up: since it connected. Not up: since it last worked (or since start, if it never did).
    pub since: DateTime<Utc>,
    /// Why the last attempt failed, until one succeeds.
    pub last_error: Option<String>,
    /// Connections lost or refused since start.
    pub reconnects: u64,
    /// Messages the rules decided on since start.
    pub messages: u64,
    /// When the last of them was stored.
    pub last_message_at: Option<DateTime<Utc>>,
}

/// Per rule: messages it decided something for, and failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// Messages the rule decided something for.
    pub hits: u64,
    /// Messages it failed on.
    pub errors: u64,
}

#[derive(Debug)]
struct Board {
    started: DateTime<Utc>,
    watchers: BTreeMap<(String, String), WatcherState>,
    rules: BTreeMap<String, RuleCounts>,
}

/// The daemon's health board; cheap to clone, all clones share it.
#[derive(Clone, Debug)]
pub struct Health {
    board: Arc<Mutex<Board>>,
    /// Where watcher states are written for `tidings status`; none in tests of this module.
    store: Option<Store>,
}

/// How bad the verdict is; ordered, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing needs a person.
    Healthy,
    /// Working, but something needs a person: a rule failing now, dead-lettered actions.
    Degraded,
    /// Not doing its job: a watcher down, the outbox backing up, the daemon not running.
    Unhealthy,
}

impl Severity {
    /// As shown: `healthy`, `degraded`, `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Healthy => "healthy",
            Severity::Degraded => "degraded",
            Severity::Unhealthy => "unhealthy",
        }
    }
}

/// What `/healthz`, `tidings status` and the alerts say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What makes it unhealthy, one line each.
    pub problems: Vec<String>,
    /// What makes it degraded, one line each.
    pub degraded: Vec<String>,
}

impl Verdict {
    /// An unhealthy verdict for one reason.
    pub fn unhealthy(problem: String) -> Verdict {
        Verdict { problems: vec![problem], degraded: Vec::new() }
    }

    /// The worst grade found.
    pub fn severity(&self) -> Severity {
        match (self.problems.is_empty(), self.degraded.is_empty()) {
            (false, _) => Severity::Unhealthy,
            (true, false) => Severity::Degraded,
            (true, true) => Severity::Healthy,
        }
    }

    /// Nothing found at all.
    pub fn is_healthy(&self) -> bool {
        self.severity() == Severity::Healthy
    }

    /// Whether `/healthz` answers 200: unless unhealthy, or degraded with
    /// `health: { degraded_is_unhealthy: true }`.
    pub fn answers_ok(&self, thresholds: &Thresholds) -> bool {
        match self.severity() {
            Severity::Healthy => true,
            Severity::Degraded => !thresholds.degraded_is_unhealthy,
            Severity::Unhealthy => false,
        }
    }

    /// Every line, the unhealthy ones first.
    pub fn lines(&self) -> impl Iterator<Item = &String> {
        self.problems.iter().chain(&self.degraded)
    }
}

impl Health {
    /// An empty board; watcher states are also written to `store` when given.
    pub fn new(store: Option<Store>) -> Health {
        let board = Board { started: Utc::now(), watchers: BTreeMap::new(), rules: BTreeMap::new() };
        Health { board: Arc::new(Mutex::new(board)), store }
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        // Every update is a few plain assignments: a panic cannot leave the board half-changed.
        self.board.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The handle one watcher reports through; the mailbox shows as connecting from now on.
    pub fn watcher(&self, account: &str, mailbox: &str) -> WatcherHealth {
        let handle = WatcherHealth { health: self.clone(), account: account.to_owned(), mailbox: mailbox.to_owned() };
        handle.update(|state| *state = Some(state.take().unwrap_or_else(|| fresh(Utc::now()))), true);
        handle
    }

    /// Forgets the watchers of an account a reload removed (and their stored states).
    pub fn forget_account(&self, account: &str) {
        self.lock().watchers.retain(|(a, _), _| a != account);
        if let Some(store) = &self.store {
            store.forget_watchers(account);
        }
    }

    /// Counts what the rules did with one message: `matched` decided something, `failed` failed.
    fn rules_ran<'a>(&self, matched: impl IntoIterator<Item = &'a str>, failed: impl IntoIterator<Item = &'a str>) {
        let mut board = self.lock();
        for rule in matched {
            counts(&mut board, rule).hits += 1;
        }
        for rule in failed {
            counts(&mut board, rule).errors += 1;
        }
    }

    /// When the daemon started.
    pub fn started(&self) -> DateTime<Utc> {
        self.lock().started
    }

    /// Every watcher, by account and mailbox.
    pub fn watchers(&self) -> Vec<((String, String), WatcherState)> {
        self.lock().watchers.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Every rule that ran, with its counts.
    pub fn rules(&self) -> Vec<(String, RuleCounts)> {
        self.lock().rules.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The verdict over the board, the outbox and the rules failing now (see [`judge`]).
    pub fn verdict(
        &self,
        now: DateTime<Utc>,
        thresholds: &Thresholds,
        outbox: &[OutboxGroup],
        failing: &[FailingRule],
    ) -> Verdict {
        let watchers = self.watchers();
        let seen = watchers.iter().map(|((account, mailbox), s)| Seen {
            account,
            mailbox,
            conn: s.conn,
            since: s.since,
            last_error: s.last_error.as_deref(),
        });
        judge(now, thresholds, seen, outbox, failing)
    }
}

/// A watcher as the verdict needs it, from the board or from the store.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// The account.
    pub account: &'a str,
    /// The mailbox.
    pub mailbox: &'a str,
    /// Its connection.
    pub conn: Conn,
    /// See [`WatcherState::since`].
    pub since: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<&'a str>,
}

/// The verdict over `watchers`, `outbox` and `failing` (the rules that failed within
/// [`FAILING_NOW`]); `tidings status` gives it over the states the daemon stored. Unhealthy when
/// a watcher has not been watching for `unhealthy_after` or longer, or a pending action has been
/// overdue for `outbox_overdue` or longer; else degraded when a rule is failing now or actions
/// were dead-lettered (failed for good, or uncertain).
pub fn judge<'a>(
    now: DateTime<Utc>,
    thresholds: &Thresholds,
    watchers: impl IntoIterator<Item = Seen<'a>>,
    outbox: &[OutboxGroup],
    failing: &[FailingRule],
) -> Verdict {
    let mut problems = Vec::new();
    for w in watchers {
        let down = (now - w.since).to_std().unwrap_or_default();
        if !w.conn.is_up() && down >= thresholds.unhealthy_after {
            let why = w.last_error.map(|e| format!(": {e}")).unwrap_or_default();
            problems.push(format!(
                "watcher {}/{} has been {} for {}s{why}",
                w.account,
                w.mailbox,
                w.conn.as_str(),
                down.as_secs()
            ));
        }
    }
    for group in outbox.iter().filter(|g| g.state == ActionState::Pending) {
        let overdue = group.oldest_due.and_then(|due| (now - due).to_std().ok()).unwrap_or_default();
        if overdue >= thresholds.outbox_overdue {
            problems.push(format!(
                "outbox of {} is backing up: {} {} action(s) pending, the oldest overdue by {}s",
                group.account,
                group.count,
                group.kind,
                overdue.as_secs()
            ));
        }
    }
    let mut degraded = Vec::new();
    for f in failing {
        let id = f.message_id.as_deref().map_or_else(|| format!("uid {}", f.uid), |id| format!("Message-ID <{id}>"));
        degraded.push(format!(
            "rule {} failed on {} message(s) in the last hour, last on {}/{} {id}: {}",
            f.rule,
            f.failures,
            f.account,
            f.mailbox,
            crate::causes::one_line(&f.last_error, 200)
        ));
    }
    for group in outbox.iter().filter(|g| matches!(g.state, ActionState::Failed | ActionState::Uncertain)) {
        let what = if group.state == ActionState::Failed { "failed for good" } else { "uncertain (may have run)" };
        degraded.push(format!(
            "{} {} action(s) of account {} {what}; see `tidings outbox`",
            group.count, group.kind, group.account
        ));
    }
    Verdict { problems, degraded }
}

/// The degraded lines for schedules whose last run, finished since `since`, had rule failures
/// or did not complete. A schedule's failures are kept per run (`tidings schedules`), not per
/// message like a live rule's, so its last run is what says whether it is failing now.
pub fn failed_runs(runs: &[LastRun], since: DateTime<Utc>) -> Vec<String> {
    let recent = runs.iter().filter_map(|(name, fired_at, outcome)| {
        let outcome = outcome.as_ref().filter(|o| o.finished_at >= since)?;
        Some((name, fired_at, outcome))
    });
    let mut lines = Vec::new();
    for (name, fired_at, outcome) in recent {
        let at = fired_at.format("%Y-%m-%d %H:%M UTC");
        if let Some(error) = &outcome.error {
            let error = crate::causes::one_line(error, 200);
            lines.push(format!("schedule {name}: the run fired at {at} did not complete: {error}"));
        }
        if outcome.failures > 0 {
            lines.push(format!(
                "schedule {name}: its rule failed {} time(s) in the run fired at {at}; see `tidings schedules` and the log",
                outcome.failures
            ));
        }
    }
    lines
}

fn fresh(now: DateTime<Utc>) -> WatcherState {
    WatcherState {
        conn: Conn::Connecting,
        since: now,
        last_error: None,
        reconnects: 0,
        messages: 0,
        last_message_at: None,
    }
}

fn counts<'b>(board: &'b mut Board, rule: &str) -> &'b mut RuleCounts {
    // The usual case, on every message: no key to allocate for a rule already counted.
    if !board.rules.contains_key(rule) {
        board.rules.insert(rule.to_owned(), RuleCounts::default());
    }
    board.rules.get_mut(rule).expect("inserted above")
}

/// What one watcher reports through.
#[derive(Clone, Debug)]
pub struct WatcherHealth {
    health: Health,
    account: String,
    mailbox: String,
}

/// The board hears a watcher through its handle: the watchers report in the stages' words.
impl Listener for WatcherHealth {
    fn watching(&self, idle: bool) {
        WatcherHealth::watching(self, idle);
    }

    fn failed(&self, error: &str) {
        WatcherHealth::failed(self, error);
    }

    fn stored(&self, count: usize, matched: &[&str], failed: &[&str]) {
        WatcherHealth::stored(self, count, matched.iter().copied(), failed.iter().copied());
    }
}

impl WatcherHealth {
    /// Selected the mailbox and is waiting for mail (`idle`: in IDLE, else polling).
    pub fn watching(&self, idle: bool) {
        let conn = if idle { Conn::Idle } else { Conn::Polling };
        self.update(
            |state| {
                let state = state.get_or_insert_with(|| fresh(Utc::now()));
                if state.conn != conn {
                    state.since = Utc::now();
                }
                state.conn = conn;
                state.last_error = None;
            },
            true,
        );
    }

    /// The connection failed or was refused: down (since it last worked) until it is back.
    pub fn failed(&self, error: &str) {
        self.update(
            |state| {
                let state = state.get_or_insert_with(|| fresh(Utc::now()));
                if state.conn.is_up() {
                    state.since = Utc::now();
                }
                state.conn = Conn::Down;
                state.last_error = Some(error.to_owned());
                state.reconnects += 1;
            },
            true,
        );
    }

    /// `count` messages were decided on and their plans stored; the rules in `matched` decided
    /// something for one of them (once per message), those in `failed` failed on one.
    pub fn stored<'a>(
        &self,
        count: usize,
        matched: impl IntoIterator<Item = &'a str>,
        failed: impl IntoIterator<Item = &'a str>,
    ) {
        self.health.rules_ran(matched, failed);
        if count == 0 {
            return;
        }
        self.update(
            |state| {
                let state = state.get_or_insert_with(|| fresh(Utc::now()));
                state.messages += count as u64;
                state.last_message_at = Some(Utc::now());
            },
            false,
        );
    }

    /// Changes the state under the lock; `persist`: also writes it to the store (state changes
    /// only: a write per message would double the store's work on a backlog).
    fn update(&self, change: impl FnOnce(&mut Option<WatcherState>), persist: bool) {
        let mut board = self.health.lock();
        let key = (self.account.clone(), self.mailbox.clone());
        let mut state = board.watchers.remove(&key);
        change(&mut state);
        let Some(state) = state else { return };
        if persist && let Some(store) = &self.health.store {
            store.report_watcher(WatcherRecord {
                account: self.account.clone(),
                mailbox: self.mailbox.clone(),
                state: state.conn.as_str().to_owned(),
                since: state.since,
                last_error: state.last_error.clone(),
                reconnects: state.reconnects,
                updated_at: Utc::now(),
            });
        }
        board.watchers.insert(key, state);
    }
}
