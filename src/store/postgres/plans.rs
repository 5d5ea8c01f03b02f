//! Storing a plan together with the position it came from, in one transaction, on PostgreSQL:
//! the actions of a message and its mailbox checkpoint, or the actions of a schedule and its
//! run (see SQLite's `plans` for why). Every transaction first fences the accounts it writes
//! for (see [`PgStore::fence`]): a fleet member whose lease was taken over stores nothing.
//!
//! Actions of kind `collect` go to the collected items, not to the outbox: they are data for a
//! schedule's rule, never run by an executor.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::{PgStore, checkpoints, collected, db, gmail_seen, history, rule_failures, schedule_runs};
use crate::store::checkpoints::ensure_continues;
use crate::store::collected::KIND as COLLECT;
use crate::store::{ActionId, Checkpoint, MessagePlan, NewAction, Result, ScheduleRun};

impl PgStore {
    /// Stores the plan of a message and moves its mailbox checkpoint, in one transaction.
    ///
    /// Actions whose key is already stored are skipped (not an error): returns the ids of
    /// the actions inserted. Refuses a checkpoint that goes backwards, or whose UIDVALIDITY
    /// differs from the stored one (re-baseline with `set_checkpoint` first).
    pub(crate) async fn commit_plan(&self, checkpoint: &Checkpoint, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        let plan = MessagePlan {
            checkpoint: checkpoint.clone(),
            actions,
            failures: Vec::new(),
            gmail_msgid: None,
            decided: Default::default(),
        };
        self.commit_plans(vec![plan]).await
    }

    /// Stores the plans of a batch of messages (in UID order) and moves their checkpoints, in
    /// one transaction; see [`PgStore::commit_plan`] for the rules each one follows. All or
    /// nothing.
    pub(crate) async fn commit_plans(&self, plans: Vec<MessagePlan>) -> Result<Vec<ActionId>> {
        let Some(first) = plans.first() else { return Ok(Vec::new()) };
        let origin = format!("{}/{}", first.checkpoint.account, first.checkpoint.mailbox);
        let what = || format!("commit plan for {origin}");
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db(what))?;
        let tx = &*transaction;
        self.fence_each(tx, plans.iter().map(|plan| plan.checkpoint.account.as_str())).await?;
        let now = Utc::now();
        let mut ids = Vec::new();
        // The checkpoint of the mailbox the previous plan was for, written once that mailbox's
        // run of plans ends (a batch is usually one mailbox): one read and one write per
        // mailbox instead of per message, the same as writing each one within the transaction.
        let mut pending: Option<Checkpoint> = None;
        for plan in &plans {
            let checkpoint = &plan.checkpoint;
            let stored = match pending.take() {
                Some(previous) if previous.account == checkpoint.account && previous.mailbox == checkpoint.mailbox => {
                    Some(previous)
                }
                other => {
                    if let Some(previous) = other {
                        checkpoints::upsert(tx, &previous, now).await.map_err(db(what))?;
                    }
                    checkpoints::get(tx, &checkpoint.account, &checkpoint.mailbox, true).await.map_err(db(what))?
                }
            };
            ensure_continues(stored.as_ref(), checkpoint)?;
            let first = match plan.gmail_msgid {
                Some(msgid) => gmail_seen::first_sighting(tx, checkpoint, msgid, now).await.map_err(db(what))?,
                None => true,
            };
            if first {
                ids.extend(store_actions(tx, &plan.actions, now).await.map_err(db(what))?);
                rule_failures::insert_all(tx, checkpoint, &plan.failures, now).await.map_err(db(what))?;
                history::record(tx, checkpoint, &plan.decided, now).await.map_err(db(what))?;
            }
            pending = Some(checkpoint.clone());
        }
        if let Some(last) = &pending {
            checkpoints::upsert(tx, last, now).await.map_err(db(what))?;
        }
        transaction.commit().await.map_err(db(what))?;
        Ok(ids)
    }

    /// Stores the actions of one chunk of a schedule run (a sweep's messages, a few at a time).
    /// Keys already stored are skipped: the same fire run again after a crash adds nothing. The
    /// run itself is recorded by [`PgStore::finish_schedule_run`]. Returns the ids of the
    /// actions inserted.
    pub(crate) async fn commit_schedule_chunk(&self, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        self.insert_actions(actions, true, || "commit plan for a schedule run".to_owned()).await
    }

    /// Stores alert actions without fencing them (see `Store::commit_alerts`).
    pub(crate) async fn commit_alerts(&self, actions: Vec<NewAction>) -> Result<Vec<ActionId>> {
        self.insert_actions(actions, false, || "store alerts".to_owned()).await
    }

    /// Stores `actions` in one transaction, fenced by their accounts when `fenced`.
    async fn insert_actions(
        &self,
        actions: Vec<NewAction>,
        fenced: bool,
        what: impl Fn() -> String + Copy,
    ) -> Result<Vec<ActionId>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db(what))?;
        if fenced {
            self.fence_each(&*tx, actions.iter().map(|a| a.account.as_str())).await?;
        }
        let ids = store_actions(&*tx, &actions, Utc::now()).await.map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        Ok(ids)
    }

    /// Finishes a schedule run, in one transaction: stores its last actions, consumes the
    /// collected items its rule read (up to the id it loaded), moves the schedule's fire time
    /// forward (never back) and records the outcome. A fire time earlier than the stored one
    /// stores the actions and consumes, but records neither the time nor the outcome.
    pub(crate) async fn finish_schedule_run(&self, run: ScheduleRun) -> Result<()> {
        let what = || format!("commit plan for schedule {}", run.name);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db(what))?;
        let tx = &*transaction;
        let consumed = run.consume.iter().map(|(account, _, _)| account.as_str());
        self.fence_each(tx, run.actions.iter().map(|a| a.account.as_str()).chain(consumed)).await?;
        let now = Utc::now();
        store_actions(tx, &run.actions, now).await.map_err(db(what))?;
        if let Some((account, names, up_to)) = &run.consume {
            collected::consume(tx, account, names, *up_to, now).await.map_err(db(what))?;
        }
        schedule_runs::upsert(tx, &run.name, run.fired_at, now).await.map_err(db(what))?;
        schedule_runs::set_outcome(tx, &run.name, run.fired_at, &run.outcome).await.map_err(db(what))?;
        transaction.commit().await.map_err(db(what))
    }

    /// Stores the plan of a schedule run and records the run, in one transaction. Keys
    /// already stored are skipped; returns the ids of the actions inserted.
    pub(crate) async fn commit_schedule_plan(
        &self,
        name: &str,
        fired_at: DateTime<Utc>,
        actions: Vec<NewAction>,
    ) -> Result<Vec<ActionId>> {
        let what = || format!("commit plan for schedule {name}");
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db(what))?;
        self.fence_each(&*tx, actions.iter().map(|a| a.account.as_str())).await?;
        let now = Utc::now();
        let ids = store_actions(&*tx, &actions, now).await.map_err(db(what))?;
        schedule_runs::upsert(&*tx, name, fired_at, now).await.map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        Ok(ids)
    }

    /// Fences each distinct account of a write once, in name order (see [`PgStore::fence`]).
    async fn fence_each<'a>(&self, tx: &impl GenericClient, accounts: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for account in accounts.into_iter().collect::<BTreeSet<_>>() {
            self.fence(tx, account).await?;
        }
        Ok(())
    }
}

/// Stores `actions`: those of kind `collect` as collected items, the others in the outbox.
/// Returns the outbox ids of the rows inserted (collected items have none).
async fn store_actions(
    tx: &impl GenericClient,
    actions: &[NewAction],
    now: DateTime<Utc>,
) -> std::result::Result<Vec<ActionId>, tokio_postgres::Error> {
    let (collect, outbound): (Vec<&NewAction>, Vec<&NewAction>) = actions.iter().partition(|a| a.kind == COLLECT);
    collected::insert_all(tx, &collect, now).await?;
    let outbound: Vec<NewAction> = outbound.into_iter().cloned().collect();
    super::outbox::insert_all(tx, &outbound, now).await
}
