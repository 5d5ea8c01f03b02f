//! The daemon's watcher states, for `tidings status` in another process.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::codec::{self, Millis};

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

/// Stores `record`, replacing the mailbox's previous one.
pub(super) fn set(conn: &Connection, record: &WatcherRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO watchers (account, mailbox, state, since, last_error, reconnects, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (account, mailbox) DO UPDATE SET state = excluded.state, since = excluded.since, \
         last_error = excluded.last_error, reconnects = excluded.reconnects, updated_at = excluded.updated_at",
    )?
    .execute((
        &record.account,
        &record.mailbox,
        &record.state,
        Millis(record.since),
        &record.last_error,
        i64::try_from(record.reconnects).unwrap_or(i64::MAX),
        Millis(record.updated_at),
    ))?;
    Ok(())
}

/// Forgets every watcher: a starting daemon reports its own.
pub(super) fn clear(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM watchers", []).map(drop)
}

/// Forgets the watchers of one account.
pub(super) fn forget(conn: &Connection, account: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM watchers WHERE account = ?1", [account]).map(drop)
}

/// Every watcher, by account and mailbox.
pub(super) fn all(conn: &Connection) -> rusqlite::Result<Vec<WatcherRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT account, mailbox, state, since, last_error, reconnects, updated_at FROM watchers \
         ORDER BY account, mailbox",
    )?;
    stmt.query_map([], |row| {
        Ok(WatcherRecord {
            account: row.get(0)?,
            mailbox: row.get(1)?,
            state: row.get(2)?,
            since: row.get::<_, Millis>(3)?.0,
            last_error: row.get(4)?,
            reconnects: codec::count(row, 5)?,
            updated_at: row.get::<_, Millis>(6)?.0,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::WatcherRecord;
    use crate::store::test_backends;

    /// The `i`th state reported for `account`'s INBOX.
    fn report(account: &str, i: u64) -> WatcherRecord {
        let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + i64::try_from(i).unwrap()).unwrap();
        WatcherRecord {
            account: account.into(),
            mailbox: "INBOX".into(),
            state: ["connecting", "idle", "polling", "down"][usize::try_from(i % 4).unwrap()].into(),
            since: at,
            last_error: (i % 4 == 3).then(|| format!("error {i}")),
            reconnects: i,
            updated_at: at,
        }
    }

    #[tokio::test]
    async fn states_are_written_in_the_order_reported_and_forgotten_per_account() {
        for (backend, store) in test_backends::each().await {
            for i in 0..50 {
                store.report_watcher(report("work", i));
            }
            store.report_watcher(report("home", 7));
            let shown = store.watchers().await.unwrap();
            assert_eq!(shown, [report("home", 7), report("work", 49)], "{backend}: the last report of each");
            store.forget_watchers("home");
            assert_eq!(store.watchers().await.unwrap(), [report("work", 49)], "{backend}");
            store.report_watcher(report("home", 8));
            store.clear_watchers().await.unwrap();
            assert!(store.watchers().await.unwrap().is_empty(), "{backend}: a report made before the clear is cleared");
        }
    }

    /// The awaited write (the daemon's probe before it starts an account that failed on the
    /// store again) lands after the reports posted before it, and replaces them.
    #[tokio::test]
    async fn a_recorded_state_is_written_when_the_call_returns_after_earlier_reports() {
        for (backend, store) in test_backends::each().await {
            for i in 0..20 {
                store.report_watcher(report("work", i));
            }
            store.record_watcher(report("work", 23)).await.unwrap();
            assert_eq!(store.watchers().await.unwrap(), [report("work", 23)], "{backend}");
        }
    }
}
