//! The store: stage four of the pipeline (after the plan, before the executors).
//!
//! It keeps everything that must survive a crash: mailbox checkpoints, the action outbox,
//! the reply log, schedule runs and what live rules collected for them, in one SQLite file in
//! WAL mode, or in a PostgreSQL database shared by a fleet of instances. A call returns only
//! once its write is committed (and, on SQLite, synced to disk), so whatever the store
//! acknowledged survives a crash or a power loss.
//!
//! What it must not do: run actions, talk to servers, evaluate rules, or decide policy (how
//! long to back off, how many replies are too many): it records, callers decide. It never
//! recreates, truncates or "repairs" a file it cannot read, and it never opens a store
//! written by a newer tidings: both are errors that name the file and leave it untouched.
//!
//! [`Store`] is the one interface to the rest of the crate. An operation is written once, over
//! the SQL seam both backends implement (`sql`: statements with typed values and rows, and a
//! `begin_write` that fences): the reply log, retention, rule failures, history, watcher states
//! and schedule-run reads are (`run` says where they execute: the SQLite store thread, or a
//! pooled PostgreSQL connection). The rest (plans, checkpoints, the outbox, sending, collected
//! items) still asks which backend first, with its PostgreSQL twin in `postgres`, until it moves
//! onto the seam the same way. On PostgreSQL a fleet member's writes are fenced by the account
//! leases it holds, and fleet membership is its own handle, [`Fleet`], which [`Store::open_at`]
//! returns beside the store; the store tests run on both backends (`test_backends`).

mod backup;
mod by_hand;
mod checkpoints;
mod codec;
mod collected;
#[cfg(test)]
mod collected_tests;
mod error;
mod gmail_seen;
mod history;
#[cfg(test)]
mod history_tests;
mod migrations;
mod outbox;
#[cfg(test)]
mod outbox_tests;
mod plans;
pub mod postgres;
mod reply_log;
#[cfg(test)]
mod reply_log_tests;
pub mod retention;
#[cfg(test)]
mod retention_tests;
mod rule_failures;
#[cfg(test)]
mod rule_failures_tests;
mod run;
mod schedule_runs;
#[cfg(test)]
mod schedule_runs_tests;
mod sending;
#[cfg(test)]
mod sending_tests;
mod sql;
mod sqlite;
#[cfg(test)]
pub(crate) mod test_backends;
mod types;
mod watchers;
#[cfg(test)]
mod watchers_tests;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use error::{Damage, Error};
pub use history::{Decided, MessageHistory, MessageQuery};
pub use outbox::OutboxGroup;
pub use postgres::{Fleet, FleetView, Instance, Member, share};
pub use retention::Prunable;
pub use sending::{OncePer, SendGate, SendStart};
pub use types::{
    Action, ActionId, ActionState, Checkpoint, Collected, FailingRule, LastRun, MessagePlan, NewAction, OutboxCounts,
    Outcome, RuleFailureRecord, RunOutcome, ScheduleRun, UnknownState,
};
pub use watchers::WatcherRecord;

/// The result of a store operation.
pub type Result<T> = std::result::Result<T, Error>;

/// A handle to the store; cheap to clone. On SQLite all clones share one connection thread,
/// which ends (closing the file) when the last clone is dropped; on PostgreSQL they share one
/// connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(mpsc::UnboundedSender<sqlite::Job>),
    Postgres(Arc<postgres::PgStore>),
}

/// An account and kinds, owned, to move onto the store thread.
fn owned(account: &str, kinds: &[&str]) -> (String, Vec<String>) {
    (account.to_owned(), kinds.iter().map(|k| (*k).to_owned()).collect())
}

impl Store {
    /// Opens the store at `path`, creating the file and its parent directories if needed,
    /// and migrates it to the schema this binary knows.
    pub async fn open(path: &Path) -> Result<Store> {
        let path = path.to_path_buf();
        let jobs = sqlite::start(move || sqlite::open_file(&path)).await?;
        Ok(Store { backend: Backend::Sqlite(jobs) })
    }

    /// Opens the shared PostgreSQL store at `url` (trusting `ca_file`'s CAs, else the
    /// platform's) and migrates it. `fleet`: the daemon of a fleet, whose checkpoint and outbox
    /// writes are fenced by the leases it holds; `None`: a tool (`tidings outbox`, `status`)
    /// acting for a person, unfenced.
    pub async fn open_postgres(url: &str, ca_file: Option<&Path>, fleet: Option<postgres::Member>) -> Result<Store> {
        let pg = postgres::PgStore::open(url, ca_file, fleet).await?;
        Ok(Store { backend: Backend::Postgres(Arc::new(pg)) })
    }

    /// Opens the store `state` names: its SQLite file, or the shared PostgreSQL database (as
    /// fleet `member`, or as a tool when `None`; see [`Store::open_postgres`]), with the handle on
    /// its fleet (`None` on SQLite, which has no fleet).
    pub async fn open_at(state: &crate::config::State, member: Option<Member>) -> Result<(Store, Option<Fleet>)> {
        match state {
            crate::config::State::File(path) => Ok((Store::open(path).await?, None)),
            crate::config::State::Postgres(url) => {
                let store = Store::open_postgres(url, None, member).await?;
                let fleet = store.fleet();
                Ok((store, fleet))
            }
        }
    }

    /// The PostgreSQL backend, if this store is one.
    fn pg(&self) -> Option<&postgres::PgStore> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// The fleet side of a shared store (instances and leases); `None` on SQLite. The daemon
    /// and the tools get it from [`Store::open_at`]; this is for tests and benchmarks.
    pub fn fleet(&self) -> Option<Fleet> {
        match &self.backend {
            Backend::Postgres(pg) => Some(Fleet::new(Arc::clone(pg))),
            Backend::Sqlite(_) => None,
        }
    }

    /// Opens a private, empty store in memory (for tests), with the same schema.
    pub async fn open_in_memory() -> Result<Store> {
        let jobs = sqlite::start(sqlite::open_memory).await?;
        Ok(Store { backend: Backend::Sqlite(jobs) })
    }

    /// Runs `work` on the store thread and waits for its result. If the caller stops
    /// waiting, the work still runs to completion (committed or rolled back), never halfway.
    async fn call<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: sqlite::Job = Box::new(move |db| {
            let Some(conn) = db.connection() else { return };
            // The caller may have stopped waiting; the work is done either way.
            let _ = reply_tx.send(work(conn));
        });
        // Every method asks `pg()` first: only a SQLite store gets here.
        let Backend::Sqlite(jobs) = &self.backend else { return Err(Error::Stopped) };
        jobs.send(job).map_err(|_| Error::Stopped)?;
        reply_rx.await.map_err(|_| Error::Stopped)?
    }

    /// The checkpoint of `account`/`mailbox`, if one was stored.
    pub async fn checkpoint(&self, account: &str, mailbox: &str) -> Result<Option<Checkpoint>> {
        if let Some(pg) = self.pg() {
            return pg.checkpoint(account, mailbox).await;
        }
        let (account, mailbox) = (account.to_owned(), mailbox.to_owned());
        self.call(move |conn| {
            checkpoints::get(conn, &account, &mailbox).map_err(|source| Error::ReadCheckpoint {
                account,
                mailbox,
                source,
            })
        })
        .await
    }

    /// Stores a baseline checkpoint (first sight of a mailbox, or a new UIDVALIDITY).
    /// Under the same UIDVALIDITY it refuses a lower uid ([`Error::CheckpointBackwards`]).
    pub async fn set_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.set_checkpoint(checkpoint).await;
        }
        let checkpoint = checkpoint.clone();
        self.call(move |conn| checkpoints::set(conn, &checkpoint)).await
    }

    /// Stores the plan of a message and moves its mailbox checkpoint, in one transaction.
    ///
    /// Actions whose key is already stored are skipped (not an error): returns the ids of
    /// the actions inserted. Refuses a checkpoint that goes backwards, or whose UIDVALIDITY
    /// differs from the stored one (re-baseline with [`Store::set_checkpoint`] first).
    pub async fn commit_plan(&self, checkpoint: &Checkpoint, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        if let Some(pg) = self.pg() {
            return pg.commit_plan(checkpoint, actions).await;
        }
        let checkpoint = checkpoint.clone();
        self.call(move |conn| plans::commit_for_mailbox(conn, &checkpoint, &actions)).await
    }

    /// Stores the actions of one chunk of a schedule run (a sweep's messages, a few at a time).
    /// Keys already stored are skipped: the same fire run again after a crash adds nothing.
    /// Returns the ids of the actions inserted.
    pub async fn commit_schedule_chunk(&self, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        if let Some(pg) = self.pg() {
            return pg.commit_schedule_chunk(actions).await;
        }
        self.call(move |conn| plans::commit_schedule_chunk(conn, &actions)).await
    }

    /// Stores the actions that tell an alert (keyed by the alert's event, so instances of a fleet
    /// telling the same thing store it once). On a shared store they are not fenced: an alert is
    /// news about the fleet, not a step of an account's mail, and whichever instance holds the
    /// account it goes through claims and sends it. Returns the ids of the actions inserted.
    pub async fn commit_alerts(&self, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        if let Some(pg) = self.pg() {
            return pg.commit_alerts(actions).await;
        }
        self.call(move |conn| plans::commit_schedule_chunk(conn, &actions)).await
    }

    /// Finishes a schedule run, in one transaction: stores its last actions, consumes the
    /// collected items its rule read (up to the id it loaded), moves the schedule's fire time
    /// forward (never back) and records the outcome. A fire time earlier than the stored one
    /// stores the actions and consumes, but records neither the time nor the outcome.
    pub async fn finish_schedule_run(&self, run: ScheduleRun) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.finish_schedule_run(run).await;
        }
        self.call(move |conn| plans::finish_schedule_run(conn, &run)).await
    }

    /// Up to `limit` items live rules collected for `account` and no run consumed yet, oldest
    /// first, by name.
    pub async fn collected(&self, account: &str, limit: usize) -> Result<Collected> {
        if let Some(pg) = self.pg() {
            return pg.collected(account, limit).await;
        }
        let account = account.to_owned();
        self.call(move |conn| {
            collected::waiting(conn, &account, limit).map_err(|source| Error::ReadCollected { account, source })
        })
        .await
    }

    /// Stores the plan of a schedule run and records the run, in one transaction. Keys
    /// already stored are skipped; returns the ids of the actions inserted.
    pub async fn commit_schedule_plan(
        &self,
        name: &str,
        fired_at: DateTime<Utc>,
        actions: Vec<NewAction>,
    ) -> Result<Vec<ActionId>> {
        if let Some(pg) = self.pg() {
            return pg.commit_schedule_plan(name, fired_at, actions).await;
        }
        let name = name.to_owned();
        self.call(move |conn| plans::commit_for_schedule(conn, &name, fired_at, &actions)).await
    }

    /// Claims up to `limit` pending actions due at `now`: marks them in flight (claimed at
    /// `now`, attempts + 1) and returns them, soonest due first.
    pub async fn claim_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Action>> {
        if let Some(pg) = self.pg() {
            return pg.claim_due(now, limit).await;
        }
        let any = outbox::Filter { account: None, kinds: None };
        self.call(move |conn| outbox::claim_due(conn, any, now, limit)).await
    }

    /// Like [`Store::claim_due`], for one account's actions of the given `kinds` only: each
    /// account's executor holds its own connection, and claims only what it can run (the IMAP
    /// executor leaves replies and webhooks pending for theirs).
    pub async fn claim_due_for(
        &self,
        account: &str,
        kinds: &[&str],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Action>> {
        if let Some(pg) = self.pg() {
            return pg.claim_due_for(account, kinds, now, limit).await;
        }
        let (account, kinds) = owned(account, kinds);
        self.call(move |conn| {
            outbox::claim_due(conn, outbox::Filter { account: Some(&account), kinds: Some(&kinds) }, now, limit)
        })
        .await
    }

    /// When the next pending action of `account` of the given `kinds` is due, if any.
    pub async fn next_due(&self, account: &str, kinds: &[&str]) -> Result<Option<DateTime<Utc>>> {
        if let Some(pg) = self.pg() {
            return pg.next_due(account, kinds).await;
        }
        let (account, kinds) = owned(account, kinds);
        self.call(move |conn| outbox::next_due(conn, outbox::Filter { account: Some(&account), kinds: Some(&kinds) }))
            .await
    }

    /// Puts an uncertain action back to pending (only for actions safe to run twice).
    pub async fn requeue_uncertain(&self, id: ActionId) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.requeue_uncertain(id).await;
        }
        self.call(move |conn| outbox::requeue_uncertain(conn, id)).await
    }

    /// Stores the plans of a batch of messages and moves their checkpoints, in one
    /// transaction; see [`Store::commit_plan`] for the rules each one follows.
    pub async fn commit_plans(&self, plans: Vec<MessagePlan>) -> Result<Vec<ActionId>> {
        if let Some(pg) = self.pg() {
            return pg.commit_plans(plans).await;
        }
        self.call(move |conn| plans::commit_batch(conn, &plans)).await
    }

    /// Records what came of running an in-flight (or sending) action; [`Error::NotInFlight`]
    /// otherwise.
    pub async fn record_outcome(&self, id: ActionId, outcome: Outcome) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.record_outcome(id, outcome).await;
        }
        self.call(move |conn| outbox::record_outcome(conn, id, &outcome)).await
    }

    /// Records the outcomes of several in-flight (or sending) actions at once: all or none.
    pub async fn record_outcomes(&self, outcomes: Vec<(ActionId, Outcome)>) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.record_outcomes(outcomes).await;
        }
        self.call(move |conn| outbox::record_outcomes(conn, &outcomes)).await
    }

    /// Settles the actions a previous run left claimed, and returns them in their new state:
    /// mail that was `in_flight` (its SMTP transaction had not begun) is pending again; mail
    /// that was `sending`, and every other kind in flight, is uncertain.
    ///
    /// Call once at start-up, before any claim, and only in the process that runs the
    /// executors: an action claimed by a live executor would be taken from it too.
    pub async fn recover_in_flight(&self) -> Result<Vec<Action>> {
        if let Some(pg) = self.pg() {
            return pg.recover_in_flight().await;
        }
        self.call(|conn| outbox::recover_in_flight(conn, None)).await
    }

    /// [`Store::recover_in_flight`] for the actions of `account` only: a fleet member calls it
    /// when it takes an account over, since the instance that worked it before may have died
    /// with actions claimed (the accounts it keeps working are left alone).
    pub async fn recover_in_flight_of(&self, account: &str) -> Result<Vec<Action>> {
        if let Some(pg) = self.pg() {
            return pg.recover_in_flight_of(account).await;
        }
        let account = account.to_owned();
        self.call(move |conn| outbox::recover_in_flight(conn, Some(&account))).await
    }

    /// Right before the SMTP transaction of the in-flight mail action `id`: checks "once per
    /// sender per period" and the daily cap and, if they allow it, records the send in the
    /// reply log and marks the action `sending`, all in one transaction. When they do not,
    /// the action is settled (suppressed, or failed with how to retry) and the gate says why.
    pub async fn begin_send(&self, id: ActionId, start: SendStart) -> Result<SendGate> {
        if let Some(pg) = self.pg() {
            return pg.begin_send(id, start).await;
        }
        self.call(move |conn| sending::begin_send(conn, id, &start)).await
    }

    /// The server refused the mail of sending action `id`, so nothing was sent: records
    /// `outcome` ([`Outcome::Retry`] or [`Outcome::Failed`]) and takes its reply-log row back.
    pub async fn abort_send(&self, id: ActionId, outcome: Outcome) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.abort_send(id, outcome).await;
        }
        self.call(move |conn| sending::abort_send(conn, id, &outcome)).await
    }

    /// The SMTP transaction of sending action `id` broke off: the mail may be out. The action
    /// becomes uncertain, is never resent automatically, and keeps counting towards the caps.
    pub async fn mark_uncertain(&self, id: ActionId, error: impl Into<String>) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.mark_uncertain(id, error).await;
        }
        let error = error.into();
        self.call(move |conn| sending::mark_uncertain(conn, id, &error)).await
    }

    /// Marks in-flight or sending action `id` done and stores `follow_up` (a copy for the Sent
    /// folder) in the same transaction. Returns the follow-up's id (`None` without one, or when
    /// its key was already stored).
    pub async fn complete_with(&self, id: ActionId, follow_up: Option<NewAction>) -> Result<Option<ActionId>> {
        if let Some(pg) = self.pg() {
            return pg.complete_with(id, follow_up).await;
        }
        self.call(move |conn| sending::complete_with(conn, id, follow_up.as_ref())).await
    }

    /// Puts failed or uncertain action `id` back to pending, due now, with its attempts reset
    /// (`tidings outbox retry`); returns it. Any other state is [`Error::WrongState`].
    pub async fn retry(&self, id: ActionId) -> Result<Action> {
        if let Some(pg) = self.pg() {
            return pg.retry(id).await;
        }
        self.call(move |conn| by_hand::retry(conn, id)).await
    }

    /// Puts every failed and uncertain action back to pending; returns them, oldest first.
    pub async fn retry_all(&self) -> Result<Vec<Action>> {
        if let Some(pg) = self.pg() {
            return pg.retry_all().await;
        }
        self.call(|conn| by_hand::retry_all(conn)).await
    }

    /// Drops pending, failed or uncertain action `id`: it is never run (`tidings outbox
    /// drop`); returns it. Any other state is [`Error::WrongState`].
    pub async fn drop_action(&self, id: ActionId) -> Result<Action> {
        if let Some(pg) = self.pg() {
            return pg.drop_action(id).await;
        }
        self.call(move |conn| by_hand::drop_action(conn, id)).await
    }

    /// One action by id.
    pub async fn action(&self, id: ActionId) -> Result<Option<Action>> {
        if let Some(pg) = self.pg() {
            return pg.action(id).await;
        }
        self.call(move |conn| outbox::get(conn, id)).await
    }

    /// How many actions are in each state.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        if let Some(pg) = self.pg() {
            return pg.outbox_counts().await;
        }
        self.call(|conn| outbox::counts(conn)).await
    }

    /// Up to `limit` actions in `state` (`None`: any state), newest first.
    pub async fn list_outbox(&self, state: Option<ActionState>, limit: usize) -> Result<Vec<Action>> {
        if let Some(pg) = self.pg() {
            return pg.list_outbox(state, limit).await;
        }
        self.call(move |conn| outbox::list(conn, state, limit)).await
    }

    /// Up to `limit` actions in any of `states`, newest first.
    pub async fn list_outbox_in(&self, states: &[ActionState], limit: usize) -> Result<Vec<Action>> {
        if let Some(pg) = self.pg() {
            return pg.list_outbox_in(states, limit).await;
        }
        let states = states.to_vec();
        self.call(move |conn| outbox::list_in(conn, &states, limit)).await
    }

    /// Actions counted by account, kind and state, with the oldest due time of the pending ones
    /// (for `/metrics`, `/healthz` and `tidings status`).
    pub async fn outbox_groups(&self) -> Result<Vec<OutboxGroup>> {
        self.outbox_groups_in(&ActionState::ALL).await
    }

    /// [`Store::outbox_groups`] for the actions in `states` only (the alerts, every few seconds,
    /// want the dead letters, not a scan of every action ever stored).
    pub async fn outbox_groups_in(&self, states: &[ActionState]) -> Result<Vec<OutboxGroup>> {
        if let Some(pg) = self.pg() {
            return pg.outbox_groups_in(states).await;
        }
        let states = states.to_vec();
        self.call(move |conn| {
            outbox::groups(conn, &states).map_err(|source| Error::Outbox { verb: "count", source: source.into() })
        })
        .await
    }

    /// Every checkpoint (mailbox position, and when it last moved).
    pub async fn checkpoints(&self) -> Result<Vec<(Checkpoint, DateTime<Utc>)>> {
        if let Some(pg) = self.pg() {
            return pg.checkpoints().await;
        }
        self.call(|conn| {
            checkpoints::all(conn)
                .map_err(|source| Error::Report { verb: "read the checkpoints", source: source.into() })
        })
        .await
    }

    /// Records that schedule `name` fired at `fired_at`; an earlier time than the one stored
    /// is ignored, so the stored run only moves forward.
    pub async fn record_schedule_run(&self, name: &str, fired_at: DateTime<Utc>) -> Result<()> {
        if let Some(pg) = self.pg() {
            return pg.record_schedule_run(name, fired_at).await;
        }
        let name = name.to_owned();
        self.call(move |conn| schedule_runs::record(conn, &name, fired_at)).await
    }
}
