//! Collected items: what live rules `collect()`ed for a schedule's rule (a digest) to read.
//!
//! An item is stored with the plan of the message that collected it, in the same transaction,
//! keyed by the plan's idempotency key, so a message evaluated again adds nothing. A run loads
//! the items waiting and, in the transaction that stores its own plan, marks those its rule read
//! consumed, up to the highest id it loaded: an item collected while the run went on waits for
//! the next one. Consumed rows are kept for a while (the key stays known) and then pruned.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rusqlite::Connection;

use super::codec::{self, Millis};
use super::types::{ActionId, Collected, NewAction};

/// The kind of the plan actions that are stored here rather than in the outbox.
pub(super) const KIND: &str = "collect";

/// How long a consumed item is kept, so that its key still dedupes a late replay.
const KEEP_CONSUMED_DAYS: i64 = 30;

/// Stores `actions`: those of kind `collect` as collected items, the others in the outbox.
/// Returns the outbox ids of the rows inserted (collected items have none).
pub(super) fn store_actions(
    conn: &Connection,
    actions: &[NewAction],
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<ActionId>> {
    let (collect, outbound): (Vec<&NewAction>, Vec<&NewAction>) = actions.iter().partition(|a| a.kind == KIND);
    insert_all(conn, &collect, now)?;
    let outbound: Vec<NewAction> = outbound.into_iter().cloned().collect();
    super::outbox::insert_all(conn, &outbound, now)
}

/// Inserts collect actions (payload `{"name": ..., "data": ...}`); a key already stored is
/// skipped.
fn insert_all(conn: &Connection, actions: &[&NewAction], now: DateTime<Utc>) -> rusqlite::Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO collected (key, account, name, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (key) DO NOTHING",
    )?;
    for action in actions {
        // The plan always writes a name; a payload without one is refused by the NOT NULL
        // constraint and fails the whole commit, never stored under a made-up name.
        let name = action.payload.get("name").and_then(serde_json::Value::as_str);
        let data = action.payload.get("data").cloned().unwrap_or(serde_json::Value::Null);
        insert.execute((&action.key, &action.account, name, data.to_string(), Millis(now)))?;
    }
    Ok(())
}

/// Up to `limit` items of `account` not yet consumed, oldest first.
pub(super) fn waiting(conn: &Connection, account: &str, limit: usize) -> rusqlite::Result<Collected> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, data FROM collected WHERE account = ?1 AND consumed_at IS NULL ORDER BY id LIMIT ?2",
    )?;
    let rows =
        stmt.query_map((account, limit), |row| Ok((row.get::<_, i64>(0)?, row.get(1)?, codec::json(row, 2)?)))?;
    let mut items: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    let mut up_to = 0;
    for row in rows {
        let (id, name, data): (i64, String, serde_json::Value) = row?;
        items.entry(name).or_default().push(data);
        up_to = up_to.max(id);
    }
    Ok(Collected { items, up_to })
}

/// Marks the items of `account` under `names` with ids up to `up_to` consumed, and prunes
/// items consumed long ago.
pub(super) fn consume(
    conn: &Connection,
    account: &str,
    names: &[String],
    up_to: i64,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let names = serde_json::Value::from(names.to_vec()).to_string();
    let consumed = conn
        .prepare_cached(
            "UPDATE collected SET consumed_at = ?4 WHERE account = ?1 AND consumed_at IS NULL AND id <= ?3 \
             AND name IN (SELECT value FROM json_each(?2))",
        )?
        .execute((account, names, up_to, Millis(now)))?;
    conn.prepare_cached("DELETE FROM collected WHERE consumed_at < ?1")?
        .execute([Millis(now - Duration::days(KEEP_CONSUMED_DAYS))])?;
    Ok(consumed)
}
