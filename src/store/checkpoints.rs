//! Mailbox checkpoints: per account and mailbox, the UIDVALIDITY and the last uid whose plan
//! is stored. A checkpoint never moves backwards within one UIDVALIDITY.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::codec::Millis;
use super::error::Error;
use super::types::Checkpoint;

/// The stored checkpoint of `account`/`mailbox`, if any.
pub(super) fn get(conn: &Connection, account: &str, mailbox: &str) -> rusqlite::Result<Option<Checkpoint>> {
    conn.prepare_cached("SELECT uidvalidity, last_uid FROM checkpoints WHERE account = ?1 AND mailbox = ?2")?
        .query_row((account, mailbox), |row| {
            Ok(Checkpoint {
                account: account.to_owned(),
                mailbox: mailbox.to_owned(),
                uidvalidity: row.get(0)?,
                last_uid: row.get(1)?,
            })
        })
        .optional()
}

/// Stores `checkpoint` as the baseline: any uid under a new UIDVALIDITY, only forward
/// under the same one.
pub(super) fn set(conn: &mut Connection, checkpoint: &Checkpoint) -> Result<(), Error> {
    let error = |source| Error::WriteCheckpoint {
        account: checkpoint.account.clone(),
        mailbox: checkpoint.mailbox.clone(),
        source,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
    let stored = get(&tx, &checkpoint.account, &checkpoint.mailbox).map_err(error)?;
    ensure_forward(stored.as_ref(), checkpoint)?;
    upsert(&tx, checkpoint, Utc::now()).map_err(error)?;
    tx.commit().map_err(error)
}

/// Refuses a lower uid under the same UIDVALIDITY; the same uid is allowed (a retried
/// commit), and a new UIDVALIDITY may start anywhere.
pub(super) fn ensure_forward(stored: Option<&Checkpoint>, next: &Checkpoint) -> Result<(), Error> {
    match stored {
        Some(stored) if stored.uidvalidity == next.uidvalidity && next.last_uid < stored.last_uid => {
            Err(Error::CheckpointBackwards {
                account: next.account.clone(),
                mailbox: next.mailbox.clone(),
                uidvalidity: next.uidvalidity,
                stored: stored.last_uid,
                requested: next.last_uid,
            })
        }
        _ => Ok(()),
    }
}

/// Refuses a plan's checkpoint that does not continue the stored one: another UIDVALIDITY (the
/// mailbox must be re-baselined with `set` first), or a lower uid ([`ensure_forward`]).
pub(super) fn ensure_continues(stored: Option<&Checkpoint>, next: &Checkpoint) -> Result<(), Error> {
    if let Some(stored) = stored
        && stored.uidvalidity != next.uidvalidity
    {
        return Err(Error::UidValidityMismatch {
            account: next.account.clone(),
            mailbox: next.mailbox.clone(),
            stored: stored.uidvalidity,
            requested: next.uidvalidity,
        });
    }
    ensure_forward(stored, next)
}

/// Writes `checkpoint` unconditionally; callers check [`ensure_forward`] first.
pub(super) fn upsert(conn: &Connection, checkpoint: &Checkpoint, now: DateTime<Utc>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO checkpoints (account, mailbox, uidvalidity, last_uid, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (account, mailbox) DO UPDATE SET \
         uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, \
         updated_at = excluded.updated_at",
    )?
    .execute((
        &checkpoint.account,
        &checkpoint.mailbox,
        checkpoint.uidvalidity,
        checkpoint.last_uid,
        Millis(now),
    ))?;
    Ok(())
}

/// Every checkpoint with when it last moved, by account and mailbox.
pub(super) fn all(conn: &Connection) -> rusqlite::Result<Vec<(Checkpoint, DateTime<Utc>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT account, mailbox, uidvalidity, last_uid, updated_at FROM checkpoints ORDER BY account, mailbox",
    )?;
    stmt.query_map([], |row| {
        let checkpoint =
            Checkpoint { account: row.get(0)?, mailbox: row.get(1)?, uidvalidity: row.get(2)?, last_uid: row.get(3)? };
        Ok((checkpoint, row.get::<_, Millis>(4)?.0))
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use crate::store::test_backends;
    use crate::store::{Checkpoint, Error};

    fn cp(uidvalidity: u32, last_uid: u32) -> Checkpoint {
        Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity, last_uid }
    }

    #[tokio::test]
    async fn checkpoint_round_trips_per_mailbox() {
        for (backend, store) in test_backends::each().await {
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), None, "{backend}");
            store.set_checkpoint(&cp(7, 10)).await.unwrap();
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 10)), "{backend}");
            assert_eq!(store.checkpoint("work", "Archive").await.unwrap(), None, "{backend}");
            assert_eq!(store.checkpoint("home", "INBOX").await.unwrap(), None, "{backend}");
            // UIDs use all 32 bits.
            let top = Checkpoint { account: "home".into(), uidvalidity: u32::MAX, last_uid: u32::MAX, ..cp(0, 0) };
            store.set_checkpoint(&top).await.unwrap();
            assert_eq!(store.checkpoint("home", "INBOX").await.unwrap().as_ref(), Some(&top), "{backend}");
            let listed: Vec<Checkpoint> = store.checkpoints().await.unwrap().into_iter().map(|(c, _)| c).collect();
            assert_eq!(listed, [top, cp(7, 10)], "{backend}: by account");
        }
    }

    #[tokio::test]
    async fn checkpoint_cannot_go_backwards_within_a_uidvalidity() {
        for (backend, store) in test_backends::each().await {
            store.set_checkpoint(&cp(7, 10)).await.unwrap();
            let error = store.set_checkpoint(&cp(7, 9)).await.unwrap_err();
            assert!(
                matches!(error, Error::CheckpointBackwards { stored: 10, requested: 9, .. }),
                "{backend}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                "cannot move checkpoint work/INBOX backwards from uid 10 to 9 (uidvalidity 7)",
                "{backend}"
            );
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 10)), "{backend}");
            store.set_checkpoint(&cp(7, 10)).await.unwrap();
            store.set_checkpoint(&cp(7, 11)).await.unwrap();
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(7, 11)), "{backend}");
        }
    }

    #[tokio::test]
    async fn new_uidvalidity_rebaselines_at_any_uid() {
        for (backend, store) in test_backends::each().await {
            store.set_checkpoint(&cp(7, 500)).await.unwrap();
            store.set_checkpoint(&cp(8, 3)).await.unwrap();
            assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp(8, 3)), "{backend}");
        }
    }
}
