//! The reply log: one row per automatic reply sent, for the RFC 3834 guard ("at most one
//! reply per sender per rule handle per period") and the per-account daily cap. Senders are
//! compared exactly as given: the caller normalizes addresses.

use chrono::{DateTime, Utc};

use super::error::Error;
use super::sql::{Db, DbError, Fence, params};
use super::{Result, Store};

fn error(verb: &'static str, account: &str) -> impl FnOnce(DbError) -> Error {
    let account = account.to_owned();
    move |source| Error::ReplyLog { verb, account, source }
}

impl Store {
    /// When `account` last sent an automatic reply to `sender` for rule `handle`.
    pub async fn last_reply(&self, account: &str, handle: &str, sender: &str) -> Result<Option<DateTime<Utc>>> {
        let (account, handle, sender) = (account.to_owned(), handle.to_owned(), sender.to_owned());
        self.read(move |db| Box::pin(async move { last(db, &account, &handle, &sender).await })).await
    }

    /// Records that `account` sent an automatic reply to `sender` for rule `handle` at `at`; in
    /// a fleet member, only while it holds the account's lease.
    pub async fn record_reply(&self, account: &str, handle: &str, sender: &str, at: DateTime<Utc>) -> Result<()> {
        let (account, handle, sender) = (account.to_owned(), handle.to_owned(), sender.to_owned());
        self.write(Fence::account(&account), move |db| {
            Box::pin(async move { record(db, &account, &handle, &sender, at).await })
        })
        .await
    }

    /// How many automatic replies `account` sent at or after `since`.
    pub async fn count_sent_since(&self, account: &str, since: DateTime<Utc>) -> Result<u64> {
        let account = account.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                db.query_one(
                    "SELECT COUNT(*) FROM reply_log WHERE account = ?1 AND sent_at >= ?2",
                    params![&account, since],
                )
                .await
                .and_then(|row| row.get(0))
                .map_err(error("read", &account))
            })
        })
        .await
    }
}

/// When `account` last replied to `sender` for rule `handle`.
async fn last(db: &Db, account: &str, handle: &str, sender: &str) -> Result<Option<DateTime<Utc>>> {
    db.query_one(
        "SELECT MAX(sent_at) FROM reply_log WHERE account = ?1 AND handle = ?2 AND sender = ?3",
        params![account, handle, sender],
    )
    .await
    .and_then(|row| row.get(0))
    .map_err(error("read", account))
}

/// Records that `account` replied to `sender` for rule `handle` at `at`.
async fn record(db: &Db, account: &str, handle: &str, sender: &str, at: DateTime<Utc>) -> Result<()> {
    // Its reply's `days` is not known here: kept as long as any reply's could be.
    let keep_until = super::retention::keep_until(at, Some(super::retention::MAX_REPLY_DAYS));
    db.execute(
        "INSERT INTO reply_log (account, handle, sender, sent_at, keep_until) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![account, handle, sender, at, keep_until],
    )
    .await
    .map(drop)
    .map_err(error("write", account))
}
