//! The daemon's watcher states on PostgreSQL, for `tidings status` in another process.
//!
//! Reports and forgets are posted to the store's [`Writer`](super::writer::Writer), so they are
//! written in the order made; a read (`watchers`, `clear_watchers`) first waits for those posted
//! before it. In a fleet, every instance writes here: a report is fenced by its account's lease
//! (one from an instance that lost the account is dropped), and neither a forget nor the clear at
//! start touches the rows of an account another live instance holds.

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::codec::{self, bigint, millis};
use super::{PgStore, db, leases};
use crate::store::{Error, Result, WatcherRecord};

/// Stores `record`, replacing the mailbox's previous one; `epoch`: a fleet member's lease on the
/// account, which must still be current.
async fn set(pool: &Pool, record: &WatcherRecord, epoch: Option<i64>) -> Result<()> {
    write(&mut pool.get().await.map_err(Error::Pool)?, record, epoch).await
}

/// [`set`] on a `client` at hand.
async fn write(client: &mut deadpool_postgres::Object, record: &WatcherRecord, epoch: Option<i64>) -> Result<()> {
    let what = || format!("record the state of watcher {}/{}", record.account, record.mailbox);
    let tx = client.transaction().await.map_err(db(what))?;
    if let Some(epoch) = epoch {
        leases::fence(&*tx, &record.account, epoch).await?;
    }
    tx.execute(
        "INSERT INTO watchers (account, mailbox, state, since, last_error, reconnects, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (account, mailbox) DO UPDATE SET state = excluded.state, since = excluded.since, \
         last_error = excluded.last_error, reconnects = excluded.reconnects, updated_at = excluded.updated_at",
        &[
            &record.account,
            &record.mailbox,
            &record.state,
            &millis(record.since),
            &record.last_error,
            &bigint(record.reconnects),
            &millis(record.updated_at),
        ],
    )
    .await
    .map_err(db(what))?;
    tx.commit().await.map_err(db(what))
}

/// Forgets the watchers of `account`; `member`: a fleet member's id, which keeps the rows of
/// another live instance holding the account.
async fn forget(pool: &Pool, account: &str, member: Option<&str>) -> Result<()> {
    let client = pool.get().await.map_err(Error::Pool)?;
    client
        .execute(
            "DELETE FROM watchers WHERE account = $1 AND ($2::text IS NULL OR NOT EXISTS \
             (SELECT 1 FROM leases l WHERE l.account = $1 AND l.owner <> $2 AND l.expires_at > now()))",
            &[&account, &member],
        )
        .await
        .map_err(db(|| format!("forget the watcher states of account {account}")))?;
    Ok(())
}

/// A watcher as the `SELECT` of [`PgStore::watchers`] reads it.
fn record(row: &Row) -> std::result::Result<WatcherRecord, tokio_postgres::Error> {
    Ok(WatcherRecord {
        account: row.try_get(0)?,
        mailbox: row.try_get(1)?,
        state: row.try_get(2)?,
        since: codec::time(row, 3)?,
        last_error: row.try_get(4)?,
        reconnects: codec::int(row, 5)?,
        updated_at: codec::time(row, 6)?,
    })
}

impl PgStore {
    /// Records a watcher's state without waiting for it: the write is queued behind every
    /// report made before, so states are written in the order reported. A failure is logged;
    /// `tidings status` then shows an older state, nothing else depends on it.
    pub(crate) fn report_watcher(&self, record: WatcherRecord) {
        let (account, mailbox) = (&record.account, &record.mailbox);
        let epoch = match self.fleet_state() {
            None => None,
            Some(_) => match self.epoch(account) {
                Some(epoch) => Some(epoch),
                None => {
                    tracing::debug!(%account, %mailbox, "watcher state not recorded: this instance holds no lease on the account");
                    return;
                }
            },
        };
        self.writer.post(move |pool| async move {
            let (account, mailbox) = (&record.account, &record.mailbox);
            match set(&pool, &record, epoch).await {
                Ok(()) => {}
                Err(error @ Error::Lease(leases::Error::Stale { .. })) => {
                    tracing::debug!(%error, %account, %mailbox, "watcher state not recorded: another instance holds the account now");
                }
                Err(error) => {
                    tracing::warn!(%error, %account, %mailbox, "cannot record the watcher's state in the store");
                }
            }
        });
    }

    /// Forgets the watcher states of `account` (removed by a reload), without waiting: queued
    /// behind its reports. In a fleet, not the states of another live instance holding it.
    pub(crate) fn forget_watchers(&self, account: &str) {
        let account = account.to_owned();
        let member = self.fleet_state().map(|fleet| fleet.member.id.clone());
        self.writer.post(move |pool| async move {
            if let Err(error) = forget(&pool, &account, member.as_deref()).await {
                tracing::warn!(%error, %account, "cannot forget the watcher states of a removed account");
            }
        });
    }

    /// Records a watcher's state and waits for it, after the reports posted before it: a write
    /// that must be known to have reached the store (see [`crate::store::Store::record_watcher`]).
    pub(crate) async fn record_watcher(&self, record: &WatcherRecord) -> Result<()> {
        let epoch = match self.fleet_state() {
            None => None,
            Some(_) => {
                Some(self.epoch(&record.account).ok_or_else(|| Error::NotHeld { account: record.account.clone() })?)
            }
        };
        self.writer.flush().await;
        write(&mut self.client().await?, record, epoch).await
    }

    /// Forgets the watcher states a previous daemon left (called at start). In a fleet member,
    /// only those of accounts no live instance holds: the others are live instances' own.
    pub(crate) async fn clear_watchers(&self) -> Result<()> {
        self.writer.flush().await;
        let sql = match self.fleet_state() {
            None => "DELETE FROM watchers",
            Some(_) => {
                "DELETE FROM watchers WHERE NOT EXISTS \
                 (SELECT 1 FROM leases l WHERE l.account = watchers.account AND l.expires_at > now())"
            }
        };
        let client = self.client().await?;
        client.execute(sql, &[]).await.map_err(db(|| "clear the watcher states".to_owned()))?;
        Ok(())
    }

    /// The watcher states last reported, by account and mailbox (after the reports this
    /// process posted before the call).
    pub(crate) async fn watchers(&self) -> Result<Vec<WatcherRecord>> {
        self.writer.flush().await;
        let what = || "read the watcher states".to_owned();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT account, mailbox, state, since, last_error, reconnects, updated_at FROM watchers \
                 ORDER BY account COLLATE \"C\", mailbox COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(db(what))?;
        rows.iter().map(record).collect::<std::result::Result<_, _>>().map_err(db(what))
    }
}
