//! The reply log on PostgreSQL: one row per automatic reply sent, for the RFC 3834 guard and
//! the per-account daily cap (see `store::reply_log`).

use chrono::{DateTime, Utc};

use super::codec::{Millis, Unsigned};
use super::outbox::begin;
use super::{PgStore, db};
use crate::store::Result;
use crate::store::retention::{MAX_REPLY_DAYS, keep_until};

impl PgStore {
    /// When `account` last sent an automatic reply to `sender` for rule `handle`.
    pub(crate) async fn last_reply(&self, account: &str, handle: &str, sender: &str) -> Result<Option<DateTime<Utc>>> {
        let what = || format!("read reply log of account {account}");
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MAX(sent_at) FROM reply_log WHERE account = $1 AND handle = $2 AND sender = $3",
                &[&account, &handle, &sender],
            )
            .await
            .map_err(db(what))?;
        Ok(row.try_get::<_, Option<Millis>>(0).map_err(db(what))?.map(|m| m.0))
    }

    /// Records that `account` sent an automatic reply to `sender` for rule `handle` at `at`; in
    /// a fleet member, only while it holds the account's lease.
    pub(crate) async fn record_reply(
        &self,
        account: &str,
        handle: &str,
        sender: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let what = || format!("write reply log of account {account}");
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        self.fence(&tx, account).await?;
        // Its reply's `days` is not known here: kept as long as any reply's could be.
        let keep_until = keep_until(at, Some(MAX_REPLY_DAYS));
        tx.execute(
            "INSERT INTO reply_log (account, handle, sender, sent_at, keep_until) VALUES ($1, $2, $3, $4, $5)",
            &[&account, &handle, &sender, &at.timestamp_millis(), &keep_until.timestamp_millis()],
        )
        .await
        .map_err(db(what))?;
        tx.commit().await.map_err(db(what))
    }

    /// How many automatic replies `account` sent at or after `since`.
    pub(crate) async fn count_sent_since(&self, account: &str, since: DateTime<Utc>) -> Result<u64> {
        let what = || format!("read reply log of account {account}");
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM reply_log WHERE account = $1 AND sent_at >= $2",
                &[&account, &since.timestamp_millis()],
            )
            .await
            .map_err(db(what))?;
        Ok(row.try_get::<_, Unsigned<u64>>(0).map_err(db(what))?.0)
    }
}
