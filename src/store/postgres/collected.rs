//! Collected items on PostgreSQL: what live rules `collect()`ed for a schedule's rule (a digest)
//! to read, stored with the plan that collected them, keyed by its idempotency key, and
//! consumed by the run that read them, up to the highest id it loaded (see SQLite's
//! `collected` for the whole story).

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::{GenericClient, Row};

use super::codec::{bigint, millis};
use super::{PgStore, db};
use crate::store::{Collected, NewAction, Result};

/// How long a consumed item is kept, so that its key still dedupes a late replay (as on SQLite).
const KEEP_CONSUMED_DAYS: i64 = 30;

/// Inserts collect actions (payload `{"name": ..., "data": ...}`); a key already stored is
/// skipped.
pub(super) async fn insert_all(
    tx: &impl GenericClient,
    actions: &[&NewAction],
    now: DateTime<Utc>,
) -> std::result::Result<(), tokio_postgres::Error> {
    if actions.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare(
            "INSERT INTO collected (key, account, name, data, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key) DO NOTHING",
        )
        .await?;
    for action in actions {
        // The plan always writes a name; a payload without one is refused by the NOT NULL
        // constraint and fails the whole commit, never stored under a made-up name.
        let name = action.payload.get("name").and_then(serde_json::Value::as_str);
        let data = action.payload.get("data").cloned().unwrap_or(serde_json::Value::Null);
        tx.execute(&insert, &[&action.key, &action.account, &name, &data, &millis(now)]).await?;
    }
    Ok(())
}

/// Marks the items of `account` under `names` with ids up to `up_to` consumed, and prunes
/// items consumed long ago.
pub(super) async fn consume(
    tx: &impl GenericClient,
    account: &str,
    names: &[String],
    up_to: i64,
    now: DateTime<Utc>,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let consumed = tx
        .execute(
            "UPDATE collected SET consumed_at = $4 WHERE account = $1 AND consumed_at IS NULL AND id <= $3 \
             AND name = ANY($2)",
            &[&account, &names, &up_to, &millis(now)],
        )
        .await?;
    tx.execute("DELETE FROM collected WHERE consumed_at < $1", &[&millis(now - Duration::days(KEEP_CONSUMED_DAYS))])
        .await?;
    Ok(consumed)
}

/// An item as the `SELECT id, name, data` of [`PgStore::collected`] reads it.
fn item(row: &Row) -> std::result::Result<(i64, String, serde_json::Value), tokio_postgres::Error> {
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

impl PgStore {
    /// Up to `limit` items live rules collected for `account` and no run consumed yet, oldest
    /// first, by name.
    pub(crate) async fn collected(&self, account: &str, limit: usize) -> Result<Collected> {
        let what = || format!("read items collected for account {account}");
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, data FROM collected WHERE account = $1 AND consumed_at IS NULL ORDER BY id LIMIT $2",
                &[&account, &bigint(limit)],
            )
            .await
            .map_err(db(what))?;
        let mut collected = Collected::default();
        for row in &rows {
            let (id, name, data) = item(row).map_err(db(what))?;
            collected.items.entry(name).or_default().push(data);
            collected.up_to = collected.up_to.max(id);
        }
        Ok(collected)
    }
}
