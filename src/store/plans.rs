//! Storing a plan together with the position it came from, in one transaction: the actions
//! of a message and its mailbox checkpoint, or the actions of a schedule and its run. If the
//! process dies before the commit, neither is stored and the message (or the run) is
//! evaluated again; after it, both are, so nothing is lost and nothing is planned twice.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::error::Error;
use super::types::{ActionId, Checkpoint, NewAction};
use super::{checkpoints, outbox, schedule_runs};

/// Inserts `actions` and moves the checkpoint of their mailbox to `checkpoint`.
pub(super) fn commit_for_mailbox(
    conn: &mut Connection,
    checkpoint: &Checkpoint,
    actions: &[NewAction],
) -> Result<Vec<ActionId>, Error> {
    let error = |source| Error::Plan { origin: format!("{}/{}", checkpoint.account, checkpoint.mailbox), source };
    let tx = begin(conn).map_err(error)?;
    let stored = checkpoints::get(&tx, &checkpoint.account, &checkpoint.mailbox).map_err(error)?;
    if let Some(stored) = &stored
        && stored.uidvalidity != checkpoint.uidvalidity
    {
        return Err(Error::UidValidityMismatch {
            account: checkpoint.account.clone(),
            mailbox: checkpoint.mailbox.clone(),
            stored: stored.uidvalidity,
            requested: checkpoint.uidvalidity,
        });
    }
    checkpoints::ensure_forward(stored.as_ref(), checkpoint)?;
    let now = Utc::now();
    let ids = outbox::insert_all(&tx, actions, now).map_err(error)?;
    checkpoints::upsert(&tx, checkpoint, now).map_err(error)?;
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
    let ids = outbox::insert_all(&tx, actions, now).map_err(error)?;
    schedule_runs::upsert(&tx, name, fired_at, now).map_err(error)?;
    tx.commit().map_err(error)?;
    Ok(ids)
}

// IMMEDIATE takes the write lock before the first read, so the checkpoint read cannot go
// stale before the write (and no read-to-write lock upgrade can fail with SQLITE_BUSY).
fn begin(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}
