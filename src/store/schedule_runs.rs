//! Schedule runs: when each named schedule last fired, so that a restart neither repeats a
//! run nor forgets one. The stored time only moves forward.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

use super::codec::{self, Millis};
use super::error::Error;
use super::types::{LastRun, RunOutcome};

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
/// earlier run must not make the schedule fire again. A later fire clears the outcome stored
/// for the earlier one (the new run's outcome, if any, is set next by [`set_outcome`]).
pub(super) fn upsert(
    conn: &Connection,
    name: &str,
    fired_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO schedule_runs (name, fired_at, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET \
         fired_at = MAX(fired_at, excluded.fired_at), updated_at = excluded.updated_at, \
         started_at = IIF(excluded.fired_at > fired_at, NULL, started_at), \
         finished_at = IIF(excluded.fired_at > fired_at, NULL, finished_at), \
         messages = IIF(excluded.fired_at > fired_at, NULL, messages), \
         actions = IIF(excluded.fired_at > fired_at, NULL, actions), \
         failures = IIF(excluded.fired_at > fired_at, NULL, failures), \
         error = IIF(excluded.fired_at > fired_at, NULL, error)",
    )?
    .execute((name, Millis(fired_at), Millis(now)))?;
    Ok(())
}

/// Records the outcome of the run for `fired_at`, unless a later fire is already stored (a late
/// finish of an older run must not hide the newer outcome). Call after [`upsert`].
pub(super) fn set_outcome(
    conn: &Connection,
    name: &str,
    fired_at: DateTime<Utc>,
    outcome: &RunOutcome,
) -> rusqlite::Result<()> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "UPDATE schedule_runs SET started_at = ?3, finished_at = ?4, messages = ?5, actions = ?6, \
         failures = ?7, error = ?8 WHERE name = ?1 AND fired_at = ?2",
    )?
    .execute((
        name,
        Millis(fired_at),
        Millis(outcome.started_at),
        Millis(outcome.finished_at),
        count(outcome.messages),
        count(outcome.actions),
        count(outcome.failures),
        &outcome.error,
    ))?;
    Ok(())
}

/// Every schedule's last fire and, when recorded, that run's outcome, by name.
pub(super) fn all(conn: &Connection) -> Result<Vec<LastRun>, Error> {
    let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<LastRun> {
        let outcome = match (row.get::<_, Option<Millis>>(2)?, row.get::<_, Option<Millis>>(3)?) {
            (Some(started), Some(finished)) => Some(RunOutcome {
                started_at: started.0,
                finished_at: finished.0,
                messages: codec::count(row, 4)?,
                actions: codec::count(row, 5)?,
                failures: codec::count(row, 6)?,
                error: row.get(7)?,
            }),
            _ => None,
        };
        Ok((row.get(0)?, row.get::<_, Millis>(1)?.0, outcome))
    };
    conn.prepare_cached(
        "SELECT name, fired_at, started_at, finished_at, messages, actions, failures, error \
         FROM schedule_runs ORDER BY name",
    )
    .and_then(|mut stmt| stmt.query_map([], read)?.collect())
    .map_err(|source| Error::ScheduleRuns { source })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use serde_json::json;

    use crate::store::{NewAction, test_backends};

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    #[tokio::test]
    async fn schedule_run_round_trips_and_never_moves_back() {
        for (backend, store) in test_backends::each().await {
            let t = at(1_700_000_000_456);
            assert_eq!(store.last_schedule_run("digest").await.unwrap(), None, "{backend}");
            store.record_schedule_run("digest", t).await.unwrap();
            assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t), "{backend}");
            store.record_schedule_run("digest", t - Duration::days(1)).await.unwrap();
            assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t), "{backend}");
            let later = t + Duration::days(1);
            store.record_schedule_run("digest", later).await.unwrap();
            assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(later), "{backend}");
            assert_eq!(store.last_schedule_run("other").await.unwrap(), None, "{backend}");
        }
    }

    #[tokio::test]
    async fn schedule_plan_stores_actions_and_run_together() {
        for (backend, store) in test_backends::each().await {
            let t = at(1_700_000_000_000);
            let action = NewAction::new("digest@1700000000000", "work", "webhook", json!({}));
            let ids = store.commit_schedule_plan("digest", t, vec![action.clone()]).await.unwrap();
            assert_eq!(ids.len(), 1, "{backend}");
            assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t), "{backend}");
            let again = store.commit_schedule_plan("digest", t, vec![action]).await.unwrap();
            assert!(again.is_empty(), "{backend}: the same run planned twice stores nothing new");
            assert_eq!(test_backends::pending(&store).await, 1, "{backend}");
        }
    }
}
