//! STUB (to be replaced): PostgreSQL counterparts of the Store methods named below.

#![allow(unused_variables)]

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::store::*;

impl PgStore {
    /// The checkpoint of `account`/`mailbox`, if one was stored.
    pub(crate) async fn checkpoint(&self, account: &str, mailbox: &str) -> Result<Option<Checkpoint>> {
        todo!("PostgreSQL: checkpoint")
    }

    /// Stores a baseline checkpoint (first sight of a mailbox, or a new UIDVALIDITY).
    /// Under the same UIDVALIDITY it refuses a lower uid ([`Error::CheckpointBackwards`]).
    pub(crate) async fn set_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        todo!("PostgreSQL: set_checkpoint")
    }

    /// Stores the plan of a message and moves its mailbox checkpoint, in one transaction.
    ///
    /// Actions whose key is already stored are skipped (not an error): returns the ids of
    /// the actions inserted. Refuses a checkpoint that goes backwards, or whose UIDVALIDITY
    /// differs from the stored one (re-baseline with [`Store::set_checkpoint`] first).
    pub(crate) async fn commit_plan(&self, checkpoint: &Checkpoint, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        todo!("PostgreSQL: commit_plan")
    }

    /// Stores the actions of one chunk of a schedule run (a sweep's messages, a few at a time).
    /// Keys already stored are skipped: the same fire run again after a crash adds nothing.
    /// Returns the ids of the actions inserted.
    pub(crate) async fn commit_schedule_chunk(&self, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        todo!("PostgreSQL: commit_schedule_chunk")
    }

    /// Finishes a schedule run, in one transaction: stores its last actions, consumes the
    /// collected items its rule read (up to the id it loaded), moves the schedule's fire time
    /// forward (never back) and records the outcome. A fire time earlier than the stored one
    /// stores the actions and consumes, but records neither the time nor the outcome.
    pub(crate) async fn finish_schedule_run(&self, run: ScheduleRun) -> Result<()> {
        todo!("PostgreSQL: finish_schedule_run")
    }

    /// Up to `limit` items live rules collected for `account` and no run consumed yet, oldest
    /// first, by name.
    pub(crate) async fn collected(&self, account: &str, limit: usize) -> Result<Collected> {
        todo!("PostgreSQL: collected")
    }

    /// Every schedule that ran, by name: its last fire time and, when recorded, that run's
    /// outcome (`tidings schedules`).
    pub(crate) async fn schedule_runs(&self) -> Result<Vec<LastRun>> {
        todo!("PostgreSQL: schedule_runs")
    }

    /// Stores the plan of a schedule run and records the run, in one transaction. Keys
    /// already stored are skipped; returns the ids of the actions inserted.
    pub(crate) async fn commit_schedule_plan(
        &self,
        name: &str,
        fired_at: DateTime<Utc>,
        actions: Vec<NewAction>,
    ) -> Result<Vec<ActionId>> {
        todo!("PostgreSQL: commit_schedule_plan")
    }

    /// Stores the plans of a batch of messages and moves their checkpoints, in one
    /// transaction; see [`Store::commit_plan`] for the rules each one follows.
    pub(crate) async fn commit_plans(&self, plans: Vec<MessagePlan>) -> Result<Vec<ActionId>> {
        todo!("PostgreSQL: commit_plans")
    }

    /// The newest `limit` rule failures, newest first.
    pub(crate) async fn recent_rule_failures(&self, limit: usize) -> Result<Vec<RuleFailureRecord>> {
        todo!("PostgreSQL: recent_rule_failures")
    }

    /// Records a watcher's state without waiting for it: the write is queued behind every
    /// store call made before, so states are written in the order reported. A failure is
    /// logged; `tidings status` then shows an older state, nothing else depends on it.
    pub(crate) fn report_watcher(&self, record: WatcherRecord) {
        todo!("PostgreSQL: report_watcher")
    }

    /// Forgets the watcher states of `account` (removed by a reload), without waiting.
    pub(crate) fn forget_watchers(&self, account: &str) {
        todo!("PostgreSQL: forget_watchers")
    }

    /// Forgets the watcher states a previous daemon left (called at start).
    pub(crate) async fn clear_watchers(&self) -> Result<()> {
        todo!("PostgreSQL: clear_watchers")
    }

    /// The watcher states the daemon last reported.
    pub(crate) async fn watchers(&self) -> Result<Vec<WatcherRecord>> {
        todo!("PostgreSQL: watchers")
    }

    /// Every checkpoint (mailbox position, and when it last moved).
    pub(crate) async fn checkpoints(&self) -> Result<Vec<(Checkpoint, DateTime<Utc>)>> {
        todo!("PostgreSQL: checkpoints")
    }

    /// The decided messages `query` names, with their actions and rule failures.
    pub(crate) async fn history(&self, query: MessageQuery) -> Result<Vec<MessageHistory>> {
        todo!("PostgreSQL: history")
    }

    /// When schedule `name` last fired.
    pub(crate) async fn last_schedule_run(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        todo!("PostgreSQL: last_schedule_run")
    }

    /// Records that schedule `name` fired at `fired_at`; an earlier time than the one stored
    /// is ignored, so the stored run only moves forward.
    pub(crate) async fn record_schedule_run(&self, name: &str, fired_at: DateTime<Utc>) -> Result<()> {
        todo!("PostgreSQL: record_schedule_run")
    }
}
