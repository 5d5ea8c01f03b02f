//! The reply log: one row per automatic reply sent, for the RFC 3834 guard ("at most one
//! reply per sender per rule handle per period") and the per-account daily cap. Senders are
//! compared exactly as given: the caller normalizes addresses.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::codec::{self, Millis};
use super::error::Error;

fn error(verb: &'static str, account: &str) -> impl FnOnce(rusqlite::Error) -> Error {
    let account = account.to_owned();
    move |source| Error::ReplyLog { verb, account, source }
}

/// When `account` last replied to `sender` for rule `handle`.
pub(super) fn last(
    conn: &Connection,
    account: &str,
    handle: &str,
    sender: &str,
) -> Result<Option<DateTime<Utc>>, Error> {
    conn.prepare_cached("SELECT MAX(sent_at) FROM reply_log WHERE account = ?1 AND handle = ?2 AND sender = ?3")
        .and_then(|mut stmt| stmt.query_row((account, handle, sender), |row| row.get::<_, Option<Millis>>(0)))
        .map(|at| at.map(|m| m.0))
        .map_err(error("read", account))
}

/// Records that `account` replied to `sender` for rule `handle` at `at`.
pub(super) fn record(
    conn: &Connection,
    account: &str,
    handle: &str,
    sender: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    // Its reply's `days` is not known here: kept as long as any reply's could be.
    let keep_until = super::retention::keep_until(at, Some(super::retention::MAX_REPLY_DAYS));
    conn.prepare_cached(
        "INSERT INTO reply_log (account, handle, sender, sent_at, keep_until) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut stmt| stmt.execute((account, handle, sender, Millis(at), Millis(keep_until))))
    .map(drop)
    .map_err(error("write", account))
}

/// How many replies `account` sent at or after `since`.
pub(super) fn count_since(conn: &Connection, account: &str, since: DateTime<Utc>) -> Result<u64, Error> {
    conn.prepare_cached("SELECT COUNT(*) FROM reply_log WHERE account = ?1 AND sent_at >= ?2")
        .and_then(|mut stmt| stmt.query_row((account, Millis(since)), |row| codec::count(row, 0)))
        .map_err(error("read", account))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use crate::store::test_backends::each;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    #[tokio::test]
    async fn last_reply_is_per_account_handle_and_sender() {
        for (backend, store) in each().await {
            let t = at(1_700_000_000_123);
            assert_eq!(store.last_reply("work", "vacation", "a@x.org").await.unwrap(), None, "{backend}");
            store.record_reply("work", "vacation", "a@x.org", t).await.unwrap();
            store.record_reply("work", "vacation", "a@x.org", t + Duration::hours(1)).await.unwrap();
            let last = store.last_reply("work", "vacation", "a@x.org").await.unwrap();
            assert_eq!(last, Some(t + Duration::hours(1)), "{backend}");
            assert_eq!(store.last_reply("work", "vacation", "b@x.org").await.unwrap(), None, "{backend}");
            assert_eq!(store.last_reply("work", "other", "a@x.org").await.unwrap(), None, "{backend}");
            assert_eq!(store.last_reply("home", "vacation", "a@x.org").await.unwrap(), None, "{backend}");
        }
    }

    #[tokio::test]
    async fn count_sent_since_counts_one_account_from_a_time_on() {
        for (backend, store) in each().await {
            let t = at(1_700_000_000_000);
            for (account, sender, offset) in
                [("work", "a@x.org", 0), ("work", "b@x.org", 10), ("work", "c@x.org", 20), ("home", "a@x.org", 20)]
            {
                let sent = t + Duration::minutes(offset);
                store.record_reply(account, "h", sender, sent).await.unwrap();
            }
            assert_eq!(store.count_sent_since("work", t).await.unwrap(), 3, "{backend}");
            assert_eq!(store.count_sent_since("work", t + Duration::minutes(10)).await.unwrap(), 2, "{backend}");
            assert_eq!(store.count_sent_since("work", t + Duration::minutes(21)).await.unwrap(), 0, "{backend}");
            assert_eq!(store.count_sent_since("home", t).await.unwrap(), 1, "{backend}");
        }
    }
}
