//! STUB (to be replaced): PostgreSQL counterparts of the Store methods named below.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::store::*;

impl PgStore {
    /// Claims up to `limit` pending actions due at `now`: marks them in flight (claimed at
    /// `now`, attempts + 1) and returns them, soonest due first.
    pub(crate) async fn claim_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Action>> {
        todo!("PostgreSQL: claim_due")
    }

    /// Like [`Store::claim_due`], for one account's actions of the given `kinds` only: each
    /// account's executor holds its own connection, and claims only what it can run (the IMAP
    /// executor leaves replies and webhooks pending for theirs).
    pub(crate) async fn claim_due_for(
        &self,
        account: &str,
        kinds: &[&str],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Action>> {
        todo!("PostgreSQL: claim_due_for")
    }

    /// When the next pending action of `account` of the given `kinds` is due, if any.
    pub(crate) async fn next_due(&self, account: &str, kinds: &[&str]) -> Result<Option<DateTime<Utc>>> {
        todo!("PostgreSQL: next_due")
    }

    /// Puts an uncertain action back to pending (only for actions safe to run twice).
    pub(crate) async fn requeue_uncertain(&self, id: ActionId) -> Result<()> {
        todo!("PostgreSQL: requeue_uncertain")
    }

    /// Records what came of running an in-flight (or sending) action; [`Error::NotInFlight`]
    /// otherwise.
    pub(crate) async fn record_outcome(&self, id: ActionId, outcome: Outcome) -> Result<()> {
        todo!("PostgreSQL: record_outcome")
    }

    /// Records the outcomes of several in-flight (or sending) actions at once: all or none.
    pub(crate) async fn record_outcomes(&self, outcomes: Vec<(ActionId, Outcome)>) -> Result<()> {
        todo!("PostgreSQL: record_outcomes")
    }

    /// Settles the actions a previous run left claimed, and returns them in their new state:
    /// mail that was `in_flight` (its SMTP transaction had not begun) is pending again; mail
    /// that was `sending`, and every other kind in flight, is uncertain.
    ///
    /// Call once at start-up, before any claim, and only in the process that runs the
    /// executors: an action claimed by a live executor would be taken from it too.
    pub(crate) async fn recover_in_flight(&self) -> Result<Vec<Action>> {
        todo!("PostgreSQL: recover_in_flight")
    }

    /// Right before the SMTP transaction of the in-flight mail action `id`: checks "once per
    /// sender per period" and the daily cap and, if they allow it, records the send in the
    /// reply log and marks the action `sending`, all in one transaction. When they do not,
    /// the action is settled (suppressed, or failed with how to retry) and the gate says why.
    pub(crate) async fn begin_send(&self, id: ActionId, start: SendStart) -> Result<SendGate> {
        todo!("PostgreSQL: begin_send")
    }

    /// The server refused the mail of sending action `id`, so nothing was sent: records
    /// `outcome` ([`Outcome::Retry`] or [`Outcome::Failed`]) and takes its reply-log row back.
    pub(crate) async fn abort_send(&self, id: ActionId, outcome: Outcome) -> Result<()> {
        todo!("PostgreSQL: abort_send")
    }

    /// The SMTP transaction of sending action `id` broke off: the mail may be out. The action
    /// becomes uncertain, is never resent automatically, and keeps counting towards the caps.
    pub(crate) async fn mark_uncertain(&self, id: ActionId, error: impl Into<String>) -> Result<()> {
        todo!("PostgreSQL: mark_uncertain")
    }

    /// Marks in-flight or sending action `id` done and stores `follow_up` (a copy for the Sent
    /// folder) in the same transaction. Returns the follow-up's id (`None` without one, or when
    /// its key was already stored).
    pub(crate) async fn complete_with(&self, id: ActionId, follow_up: Option<NewAction>) -> Result<Option<ActionId>> {
        todo!("PostgreSQL: complete_with")
    }

    /// Puts failed or uncertain action `id` back to pending, due now, with its attempts reset
    /// (`tidings outbox retry`); returns it. Any other state is [`Error::WrongState`].
    pub(crate) async fn retry(&self, id: ActionId) -> Result<Action> {
        todo!("PostgreSQL: retry")
    }

    /// Puts every failed and uncertain action back to pending; returns them, oldest first.
    pub(crate) async fn retry_all(&self) -> Result<Vec<Action>> {
        todo!("PostgreSQL: retry_all")
    }

    /// Drops pending, failed or uncertain action `id`: it is never run (`tidings outbox
    /// drop`); returns it. Any other state is [`Error::WrongState`].
    pub(crate) async fn drop_action(&self, id: ActionId) -> Result<Action> {
        todo!("PostgreSQL: drop_action")
    }

    /// One action by id.
    pub(crate) async fn action(&self, id: ActionId) -> Result<Option<Action>> {
        todo!("PostgreSQL: action")
    }

    /// How many actions are in each state.
    pub(crate) async fn outbox_counts(&self) -> Result<OutboxCounts> {
        todo!("PostgreSQL: outbox_counts")
    }

    /// Up to `limit` actions in `state` (`None`: any state), newest first.
    pub(crate) async fn list_outbox(&self, state: Option<ActionState>, limit: usize) -> Result<Vec<Action>> {
        todo!("PostgreSQL: list_outbox")
    }

    /// Up to `limit` actions in any of `states`, newest first.
    pub(crate) async fn list_outbox_in(&self, states: &[ActionState], limit: usize) -> Result<Vec<Action>> {
        todo!("PostgreSQL: list_outbox_in")
    }

    /// [`Store::outbox_groups`] for the actions in `states` only (the alerts, every few seconds,
    /// want the dead letters, not a scan of every action ever stored).
    pub(crate) async fn outbox_groups_in(&self, states: &[ActionState]) -> Result<Vec<OutboxGroup>> {
        todo!("PostgreSQL: outbox_groups_in")
    }

    /// When `account` last sent an automatic reply to `sender` for rule `handle`.
    pub(crate) async fn last_reply(&self, account: &str, handle: &str, sender: &str) -> Result<Option<DateTime<Utc>>> {
        todo!("PostgreSQL: last_reply")
    }

    /// Records that `account` sent an automatic reply to `sender` for rule `handle` at `at`.
    pub(crate) async fn record_reply(&self, account: &str, handle: &str, sender: &str, at: DateTime<Utc>) -> Result<()> {
        todo!("PostgreSQL: record_reply")
    }

    /// How many automatic replies `account` sent at or after `since`.
    pub(crate) async fn count_sent_since(&self, account: &str, since: DateTime<Utc>) -> Result<u64> {
        todo!("PostgreSQL: count_sent_since")
    }
}
