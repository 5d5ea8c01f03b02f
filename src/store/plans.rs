//! Storing a plan together with the position it came from, in one transaction: the actions
//! of a message and its mailbox checkpoint, or the actions of a schedule and its run. If the
//! process dies before the commit, neither is stored and the message (or the run) is
//! evaluated again; after it, both are, so nothing is lost and nothing is planned twice.
//!
//! Actions of kind `collect` go to the collected items (see `collected`), not to the outbox:
//! they are data for a schedule's rule, never run by an executor.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::error::Error;
use super::types::{ActionId, Checkpoint, MessagePlan, NewAction, ScheduleRun};
use super::{checkpoints, collected, gmail_seen, history, rule_failures, schedule_runs};

/// Inserts `actions` and moves the checkpoint of their mailbox to `checkpoint`.
pub(super) fn commit_for_mailbox(
    conn: &mut Connection,
    checkpoint: &Checkpoint,
    actions: &[NewAction],
) -> Result<Vec<ActionId>, Error> {
    let plan = MessagePlan {
        checkpoint: checkpoint.clone(),
        actions: actions.to_vec(),
        failures: Vec::new(),
        gmail_msgid: None,
        decided: history::Decided::default(),
    };
    commit_batch(conn, std::slice::from_ref(&plan))
}

/// Stores the plans of several messages (in UID order) in one transaction: one sync to disk
/// for a whole burst instead of one per message. All or nothing.
pub(super) fn commit_batch(conn: &mut Connection, plans: &[MessagePlan]) -> Result<Vec<ActionId>, Error> {
    let Some(first) = plans.first() else { return Ok(Vec::new()) };
    let origin = format!("{}/{}", first.checkpoint.account, first.checkpoint.mailbox);
    let error = |source| Error::Plan { origin: origin.clone(), source };
    let tx = begin(conn).map_err(error)?;
    let now = Utc::now();
    let mut ids = Vec::new();
    // The checkpoint of the mailbox the previous plan was for, written once that mailbox's
    // run of plans ends: a batch is usually one mailbox, and reading and writing its row for
    // every message was most of a big batch's store time. Within the transaction this is the
    // same as writing each one.
    let mut pending: Option<Checkpoint> = None;
    for plan in plans {
        let checkpoint = &plan.checkpoint;
        let stored = match pending.take() {
            Some(previous) if previous.account == checkpoint.account && previous.mailbox == checkpoint.mailbox => {
                Some(previous)
            }
            other => {
                if let Some(previous) = other {
                    checkpoints::upsert(&tx, &previous, now).map_err(error)?;
                }
                checkpoints::get(&tx, &checkpoint.account, &checkpoint.mailbox).map_err(error)?
            }
        };
        checkpoints::ensure_continues(stored.as_ref(), checkpoint)?;
        let first = match plan.gmail_msgid {
            Some(msgid) => gmail_seen::first_sighting(&tx, checkpoint, msgid, now).map_err(error)?,
            None => true,
        };
        if first {
            ids.extend(collected::store_actions(&tx, &plan.actions, now).map_err(error)?);
            rule_failures::insert_all(&tx, checkpoint, &plan.failures, now).map_err(error)?;
            history::record(&tx, checkpoint, &plan.decided, now).map_err(error)?;
        }
        pending = Some(checkpoint.clone());
    }
    if let Some(last) = &pending {
        checkpoints::upsert(&tx, last, now).map_err(error)?;
    }
    tx.commit().map_err(error)?;
    Ok(ids)
}

/// Inserts `actions` and records that schedule `name` fired at `fired_at`.
pub(super) fn commit_for_schedule(
    conn: &mut Connection,
    name: &str,
    fired_at: DateTime<Utc>,
    actions: &[NewAction],
) -> Result<Vec<ActionId>, Error> {
    let error = |source| Error::Plan { origin: format!("schedule {name}"), source };
    let tx = begin(conn).map_err(error)?;
    let now = Utc::now();
    let ids = collected::store_actions(&tx, actions, now).map_err(error)?;
    schedule_runs::upsert(&tx, name, fired_at, now).map_err(error)?;
    tx.commit().map_err(error)?;
    Ok(ids)
}

/// Inserts the actions of one chunk of a schedule run (keys already stored are skipped). The
/// run itself is recorded by [`finish_schedule_run`], so a crash before it leaves the fire to be
/// run again, and the chunks stored so far add nothing the second time.
pub(super) fn commit_schedule_chunk(conn: &mut Connection, actions: &[NewAction]) -> Result<Vec<ActionId>, Error> {
    let error = |source| Error::Plan { origin: "a schedule run".to_owned(), source };
    let tx = begin(conn).map_err(error)?;
    let ids = collected::store_actions(&tx, actions, Utc::now()).map_err(error)?;
    tx.commit().map_err(error)?;
    Ok(ids)
}

/// Stores the last actions of a schedule run, consumes what its rule read with `collected()`,
/// and records the fire time and the outcome, all in one transaction: the summary of a digest is
/// in the outbox exactly when its items are consumed.
pub(super) fn finish_schedule_run(conn: &mut Connection, run: &ScheduleRun) -> Result<(), Error> {
    let error = |source| Error::Plan { origin: format!("schedule {}", run.name), source };
    let tx = begin(conn).map_err(error)?;
    let now = Utc::now();
    collected::store_actions(&tx, &run.actions, now).map_err(error)?;
    if let Some((account, names, up_to)) = &run.consume {
        collected::consume(&tx, account, names, *up_to, now).map_err(error)?;
    }
    schedule_runs::upsert(&tx, &run.name, run.fired_at, now).map_err(error)?;
    schedule_runs::set_outcome(&tx, &run.name, run.fired_at, &run.outcome).map_err(error)?;
    tx.commit().map_err(error)
}

// IMMEDIATE takes the write lock before the first read, so the checkpoint read cannot go
// stale before the write (and no read-to-write lock upgrade can fail with SQLITE_BUSY).
fn begin(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::store::test_backends;
    use crate::store::{ActionState, Checkpoint, Error, NewAction};

    fn cp(uidvalidity: u32, last_uid: u32) -> Checkpoint {
        Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity, last_uid }
    }

    fn act(key: &str, uid: u32) -> NewAction {
        NewAction::new(key, "work", "move", json!({"key": key})).for_message("INBOX", 7, uid)
    }

    #[tokio::test]
    async fn commit_plan_stores_actions_and_moves_checkpoint() {
        for (backend, store) in test_backends::each().await {
            let ids = store.commit_plan(&cp(7, 5), vec![act("a", 5), act("b", 5).by_rule("r.rhai")]).await.unwrap();
            assert_eq!(ids.len(), 2, "{backend}");
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 5)), "{backend}");
            let stored = store.action(ids[0]).await.unwrap().unwrap();
            assert_eq!((stored.key.as_str(), stored.payload), ("a", json!({"key": "a"})), "{backend}");
            let position = (stored.mailbox.as_deref(), stored.uidvalidity, stored.uid);
            assert_eq!(position, (Some("INBOX"), Some(7), Some(5)), "{backend}");
            let fresh = (stored.state, stored.attempts, stored.claimed_at, stored.rule);
            assert_eq!(fresh, (ActionState::Pending, 0, None, None), "{backend}");
            assert_eq!(stored.next_attempt_at, stored.created_at, "{backend}");
            let b = store.action(ids[1]).await.unwrap().unwrap();
            assert_eq!(b.rule.as_deref(), Some("r.rhai"), "{backend}");
            // A message that matched no rule still moves the checkpoint.
            assert!(store.commit_plan(&cp(7, 6), vec![]).await.unwrap().is_empty(), "{backend}");
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 6)), "{backend}");
        }
    }

    #[tokio::test]
    async fn same_key_twice_is_one_action_and_the_first_wins() {
        for (backend, store) in test_backends::each().await {
            let ids = store.commit_plan(&cp(7, 5), vec![act("a", 5), act("a", 5)]).await.unwrap();
            assert_eq!(ids.len(), 1, "{backend}");
            let mut changed = act("a", 5);
            changed.payload = json!({"changed": true});
            let again = store.commit_plan(&cp(7, 5), vec![changed, act("b", 5)]).await.unwrap();
            assert_eq!(again.len(), 1, "{backend}: only b is new");
            let all = test_backends::actions(&store).await;
            assert_eq!(all.len(), 2, "{backend}");
            let a = all.iter().find(|action| action.key == "a").unwrap();
            assert_eq!((a.id, &a.payload), (ids[0], &json!({"key": "a"})), "{backend}");
        }
    }

    #[tokio::test]
    async fn failed_commit_stores_nothing_and_keeps_the_checkpoint() {
        for (backend, store) in test_backends::each().await {
            store.set_checkpoint(&cp(7, 4)).await.unwrap();
            let mut broken = act("broken", 5);
            broken.uidvalidity = None; // a uid without its UIDVALIDITY violates the schema
            let error = store.commit_plan(&cp(7, 5), vec![act("good", 5), broken]).await.unwrap_err();
            assert!(matches!(error, Error::Plan { .. } | Error::Postgres { .. }), "{backend}: {error:?}");
            let message = error.to_string();
            assert!(message.starts_with("cannot commit plan for work/INBOX"), "{backend}: {message}");
            assert_eq!(test_backends::pending(&store).await, 0, "{backend}");
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 4)), "{backend}");
        }
    }

    #[tokio::test]
    async fn commit_plan_refuses_backwards_and_stale_uidvalidity() {
        for (backend, store) in test_backends::each().await {
            store.commit_plan(&cp(7, 10), vec![act("a", 10)]).await.unwrap();
            let error = store.commit_plan(&cp(7, 9), vec![act("b", 9)]).await.unwrap_err();
            assert!(
                matches!(error, Error::CheckpointBackwards { stored: 10, requested: 9, .. }),
                "{backend}: {error:?}"
            );
            let error = store.commit_plan(&cp(8, 11), vec![act("c", 11)]).await.unwrap_err();
            assert!(
                matches!(error, Error::UidValidityMismatch { stored: 7, requested: 8, .. }),
                "{backend}: {error:?}"
            );
            assert_eq!(test_backends::pending(&store).await, 1, "{backend}: only a was stored");
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 10)), "{backend}");
            store.set_checkpoint(&cp(8, 0)).await.unwrap();
            store.commit_plan(&cp(8, 1), vec![act("c", 1)]).await.unwrap();
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(8, 1)), "{backend}");
        }
    }

    /// A batch over two mailboxes moves each one's checkpoint, and a bad plan anywhere in it
    /// stores none of it.
    #[tokio::test]
    async fn a_batch_is_all_or_nothing_across_mailboxes() {
        for (backend, store) in test_backends::each().await {
            let plan = |mailbox: &str, uid: u32| crate::store::MessagePlan {
                checkpoint: Checkpoint { mailbox: mailbox.into(), ..cp(7, uid) },
                actions: vec![NewAction::new(format!("{mailbox}-{uid}"), "work", "move", json!({}))],
                failures: Vec::new(),
                gmail_msgid: None,
                decided: Default::default(),
            };
            let batch = vec![plan("INBOX", 1), plan("INBOX", 2), plan("Lists", 5), plan("INBOX", 3)];
            assert_eq!(store.commit_plans(batch).await.unwrap().len(), 4, "{backend}");
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 3)), "{backend}");
            let lists = store.checkpoint("work", "Lists").await.unwrap().map(|c| c.last_uid);
            assert_eq!(lists, Some(5), "{backend}");
            let error = store.commit_plans(vec![plan("Lists", 6), plan("INBOX", 2)]).await.unwrap_err();
            assert!(
                matches!(error, Error::CheckpointBackwards { stored: 3, requested: 2, .. }),
                "{backend}: {error:?}"
            );
            let lists = store.checkpoint("work", "Lists").await.unwrap().map(|c| c.last_uid);
            assert_eq!(lists, Some(5), "{backend}: the batch's first plan was rolled back too");
            assert_eq!(test_backends::actions(&store).await.len(), 4, "{backend}");
        }
    }
}
