//! Schedule runs: when each named schedule last fired, so that a restart neither repeats a
//! run nor forgets one. The stored time only moves forward.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

use super::codec::Millis;
use super::error::Error;

/// When schedule `name` last fired.
pub(super) fn last(conn: &Connection, name: &str) -> Result<Option<DateTime<Utc>>, Error> {
    conn.prepare_cached("SELECT fired_at FROM schedule_runs WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], |row| row.get::<_, Millis>(0)).optional())
        .map(|at| at.map(|m| m.0))
        .map_err(|source| Error::ScheduleRun { verb: "read", name: name.to_owned(), source })
}

/// Records that schedule `name` fired at `fired_at`.
pub(super) fn record(conn: &Connection, name: &str, fired_at: DateTime<Utc>) -> Result<(), Error> {
    upsert(conn, name, fired_at, Utc::now()).map_err(|source| Error::ScheduleRun {
        verb: "write",
        name: name.to_owned(),
        source,
    })
}

/// Keeps the later of the stored and the given time: a late or repeated record of an
/// earlier run must not make the schedule fire again.
pub(super) fn upsert(
    conn: &Connection,
    name: &str,
    fired_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO schedule_runs (name, fired_at, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET \
         fired_at = MAX(fired_at, excluded.fired_at), updated_at = excluded.updated_at",
    )?
    .execute((name, Millis(fired_at), Millis(now)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use serde_json::json;

    use crate::store::{NewAction, Store};

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    #[tokio::test]
    async fn schedule_run_round_trips_and_never_moves_back() {
        let store = Store::open_in_memory().await.unwrap();
        let t = at(1_700_000_000_456);
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), None);
        store.record_schedule_run("digest", t).await.unwrap();
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t));
        store.record_schedule_run("digest", t - Duration::days(1)).await.unwrap();
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t));
        let later = t + Duration::days(1);
        store.record_schedule_run("digest", later).await.unwrap();
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(later));
        assert_eq!(store.last_schedule_run("other").await.unwrap(), None);
    }

    #[tokio::test]
    async fn schedule_plan_stores_actions_and_run_together() {
        let store = Store::open_in_memory().await.unwrap();
        let t = at(1_700_000_000_000);
        let action = NewAction::new("digest@1700000000000", "work", "webhook", json!({}));
        let ids = store.commit_schedule_plan("digest", t, vec![action.clone()]).await.unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t));
        let again = store.commit_schedule_plan("digest", t, vec![action]).await.unwrap();
        assert!(again.is_empty(), "the same run planned twice stores nothing new");
        assert_eq!(store.outbox_counts().await.unwrap().pending, 1);
    }
}
