//! The daemon's watcher states, for `tidings status` in another process.

use chrono::{DateTime, Utc};

use super::error::Error;
use super::postgres::leases;
use super::sql::{Db, DbError, Fence, Row, params};
use super::{Result, Store};

/// A watcher's connection, as last reported by the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherRecord {
    /// The account.
    pub account: String,
    /// The mailbox.
    pub mailbox: String,
    /// `connecting`, `idle`, `polling` or `down`.
    pub state: String,
    /// Since when it is in that state (for `down` and `connecting`: since it last worked).
    pub since: DateTime<Utc>,
    /// The last connection error, if the last attempt failed.
    pub last_error: Option<String>,
    /// How often it reconnected since the daemon started.
    pub reconnects: u64,
    /// When the daemon wrote this.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Records a watcher's state without waiting for it: the write is queued behind every
    /// store call made before, so states are written in the order reported. A failure is
    /// logged; `tidings status` then shows an older state, nothing else depends on it. In a
    /// fleet, a report is fenced by its account's lease: one from an instance that does not hold
    /// the account (or lost it) is dropped.
    pub fn report_watcher(&self, record: WatcherRecord) {
        let (account, mailbox) = (record.account.clone(), record.mailbox.clone());
        let failed = move |error: Error| match error {
            Error::NotHeld { .. } | Error::Lease(leases::Error::Stale { .. }) => {
                tracing::debug!(%error, %account, %mailbox, "watcher state not recorded: another instance holds the account");
            }
            error => tracing::warn!(%error, %account, %mailbox, "cannot record the watcher's state in the store"),
        };
        self.post(Fence::account(&record.account), move |db| Box::pin(set(db, record)), failed);
    }

    /// Records a watcher's state like [`Store::report_watcher`], but waits for the write and
    /// returns its failure: the daemon writes the state of a watcher that stopped on a store
    /// error before it starts the account again, so the write tells whether the store takes
    /// writes again (a disk no longer full) before a new watcher reports itself up.
    pub async fn record_watcher(&self, record: WatcherRecord) -> Result<()> {
        self.flush_posted().await;
        self.write(Fence::account(&record.account), move |db| Box::pin(set(db, record))).await
    }

    /// Forgets the watcher states of `account` (removed by a reload), without waiting: queued
    /// behind its reports. In a fleet, not the states of another live instance holding it.
    pub fn forget_watchers(&self, account: &str) {
        let owned = account.to_owned();
        let failed = move |error: Error| {
            tracing::warn!(%error, account = %owned, "cannot forget the watcher states of a removed account");
        };
        let account = account.to_owned();
        self.post(
            Fence::none(),
            move |db| {
                Box::pin(async move {
                    let result = match db.member() {
                        None => db.execute("DELETE FROM watchers WHERE account = ?1", params![&account]).await,
                        Some(member) => {
                            let others = "DELETE FROM watchers WHERE account = ?1 AND NOT EXISTS (SELECT 1 FROM leases l \
                                          WHERE l.account = ?1 AND l.owner <> ?2 AND l.expires_at > now())";
                            db.execute(others, params![&account, member]).await
                        }
                    };
                    result.map(drop).map_err(error("forget the watcher states of an account"))
                })
            },
            failed,
        );
    }

    /// Forgets the watcher states a previous daemon left (called at start). In a fleet member,
    /// only those of accounts no live instance holds: the others are live instances' own.
    pub async fn clear_watchers(&self) -> Result<()> {
        self.flush_posted().await;
        self.read(|db| {
            Box::pin(async move {
                let sql = match db.member() {
                    None => "DELETE FROM watchers",
                    Some(_) => {
                        "DELETE FROM watchers WHERE NOT EXISTS \
                         (SELECT 1 FROM leases l WHERE l.account = watchers.account AND l.expires_at > now())"
                    }
                };
                db.execute(sql, &[]).await.map(drop).map_err(error("clear the watcher states"))
            })
        })
        .await
    }

    /// The watcher states the daemon last reported, by account and mailbox (after the reports
    /// this process posted before the call).
    pub async fn watchers(&self) -> Result<Vec<WatcherRecord>> {
        self.flush_posted().await;
        self.read(|db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        "SELECT account, mailbox, state, since, last_error, reconnects, updated_at FROM watchers \
                         ORDER BY account COLLATE BINARY, mailbox COLLATE BINARY",
                        &[],
                    )
                    .await;
                rows.and_then(|rows| rows.iter().map(read).collect()).map_err(error("read the watcher states"))
            })
        })
        .await
    }
}

fn error(verb: &'static str) -> impl FnOnce(DbError) -> Error {
    move |source| Error::Report { verb, source }
}

/// Stores `record`, replacing the mailbox's previous one.
async fn set(db: &Db, record: WatcherRecord) -> Result<()> {
    db.execute(
        "INSERT INTO watchers (account, mailbox, state, since, last_error, reconnects, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (account, mailbox) DO UPDATE SET state = excluded.state, since = excluded.since, \
         last_error = excluded.last_error, reconnects = excluded.reconnects, updated_at = excluded.updated_at",
        params![
            &record.account,
            &record.mailbox,
            &record.state,
            record.since,
            record.last_error.as_ref(),
            record.reconnects,
            record.updated_at
        ],
    )
    .await
    .map(drop)
    .map_err(error("record a watcher's state"))
}

/// A watcher as [`Store::watchers`] reads it.
fn read(row: &Row) -> std::result::Result<WatcherRecord, DbError> {
    Ok(WatcherRecord {
        account: row.get(0)?,
        mailbox: row.get(1)?,
        state: row.get(2)?,
        since: row.get(3)?,
        last_error: row.get(4)?,
        reconnects: row.get(5)?,
        updated_at: row.get(6)?,
    })
}
