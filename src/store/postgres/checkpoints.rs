//! Mailbox checkpoints on PostgreSQL: per account and mailbox, the UIDVALIDITY and the last uid
//! whose plan is stored; never backwards within one UIDVALIDITY (the rule is SQLite's
//! `checkpoints::ensure_forward`, shared).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::codec::{self, millis};
use super::{PgStore, db};
use crate::store::checkpoints::ensure_forward;
use crate::store::{Checkpoint, Result};

/// The stored checkpoint of `account`/`mailbox`, if any. `lock`: locked until the transaction
/// ends, so that a writer that reads it to decide the next one keeps it from moving meanwhile.
pub(super) async fn get(
    client: &impl GenericClient,
    account: &str,
    mailbox: &str,
    lock: bool,
) -> std::result::Result<Option<Checkpoint>, tokio_postgres::Error> {
    let sql = "SELECT uidvalidity, last_uid FROM checkpoints WHERE account = $1 AND mailbox = $2";
    let sql = if lock { format!("{sql} FOR UPDATE") } else { sql.to_owned() };
    let row = client.query_opt(&sql, &[&account, &mailbox]).await?;
    row.map(|row| {
        Ok(Checkpoint {
            account: account.to_owned(),
            mailbox: mailbox.to_owned(),
            uidvalidity: codec::int(&row, 0)?,
            last_uid: codec::int(&row, 1)?,
        })
    })
    .transpose()
}

/// Writes `checkpoint` unconditionally; callers check `ensure_forward` first.
pub(super) async fn upsert(
    tx: &impl GenericClient,
    checkpoint: &Checkpoint,
    now: DateTime<Utc>,
) -> std::result::Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO checkpoints (account, mailbox, uidvalidity, last_uid, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (account, mailbox) DO UPDATE SET \
         uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, updated_at = excluded.updated_at",
        &[
            &checkpoint.account,
            &checkpoint.mailbox,
            &i64::from(checkpoint.uidvalidity),
            &i64::from(checkpoint.last_uid),
            &millis(now),
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// The checkpoint of `account`/`mailbox`, if one was stored.
    pub(crate) async fn checkpoint(&self, account: &str, mailbox: &str) -> Result<Option<Checkpoint>> {
        let what = || format!("read checkpoint {account}/{mailbox}");
        let client = self.client().await?;
        get(&**client, account, mailbox, false).await.map_err(db(what))
    }

    /// Stores a baseline checkpoint (first sight of a mailbox, or a new UIDVALIDITY).
    /// Under the same UIDVALIDITY it refuses a lower uid ([`crate::store::Error::CheckpointBackwards`]).
    pub(crate) async fn set_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        let what = || format!("write checkpoint {}/{}", checkpoint.account, checkpoint.mailbox);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db(what))?;
        self.fence(&*tx, &checkpoint.account).await?;
        let stored = get(&*tx, &checkpoint.account, &checkpoint.mailbox, true).await.map_err(db(what))?;
        ensure_forward(stored.as_ref(), checkpoint)?;
        upsert(&*tx, checkpoint, Utc::now()).await.map_err(db(what))?;
        tx.commit().await.map_err(db(what))
    }

    /// Every checkpoint (mailbox position, and when it last moved), by account and mailbox.
    pub(crate) async fn checkpoints(&self) -> Result<Vec<(Checkpoint, DateTime<Utc>)>> {
        let what = || "read the checkpoints".to_owned();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT account, mailbox, uidvalidity, last_uid, updated_at FROM checkpoints \
                 ORDER BY account COLLATE \"C\", mailbox COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(db(what))?;
        rows.iter()
            .map(|row| {
                let checkpoint = Checkpoint {
                    account: row.try_get(0)?,
                    mailbox: row.try_get(1)?,
                    uidvalidity: codec::int(row, 2)?,
                    last_uid: codec::int(row, 3)?,
                };
                Ok((checkpoint, codec::time(row, 4)?))
            })
            .collect::<std::result::Result<_, tokio_postgres::Error>>()
            .map_err(db(what))
    }
}
