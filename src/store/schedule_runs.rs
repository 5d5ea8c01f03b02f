//! Schedule runs: when each named schedule last fired, so that a restart neither repeats a
//! run nor forgets one. The stored time only moves forward.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::codec::Millis;
use super::error::Error;
use super::sql::{DbError, Row, params};
use super::types::{LastRun, RunOutcome};
use super::{Result, Store};

/// Records that schedule `name` fired at `fired_at`.
pub(super) fn record(conn: &Connection, name: &str, fired_at: DateTime<Utc>) -> Result<()> {
    upsert(conn, name, fired_at, Utc::now()).map_err(|source| Error::ScheduleRun {
        verb: "write",
        name: name.to_owned(),
        source: source.into(),
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

impl Store {
    /// Every schedule that ran, by name (byte order): its last fire time and, when recorded,
    /// that run's outcome (`tidings schedules`).
    pub async fn schedule_runs(&self) -> Result<Vec<LastRun>> {
        self.read(|db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        "SELECT name, fired_at, started_at, finished_at, messages, actions, failures, error \
                         FROM schedule_runs ORDER BY name COLLATE BINARY",
                        &[],
                    )
                    .await;
                rows.and_then(|rows| rows.iter().map(last_run).collect())
                    .map_err(|source| Error::ScheduleRuns { source })
            })
        })
        .await
    }

    /// When schedule `name` last fired.
    pub async fn last_schedule_run(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        let name = name.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                let row = db.query_opt("SELECT fired_at FROM schedule_runs WHERE name = ?1", params![&name]).await;
                row.and_then(|row| row.map(|row| row.get(0)).transpose()).map_err(|source| Error::ScheduleRun {
                    verb: "read",
                    name,
                    source,
                })
            })
        })
        .await
    }
}

/// A schedule's last run as [`Store::schedule_runs`] reads it.
fn last_run(row: &Row) -> std::result::Result<LastRun, DbError> {
    let outcome = match (row.get(2)?, row.get(3)?) {
        (Some(started_at), Some(finished_at)) => Some(RunOutcome {
            started_at,
            finished_at,
            messages: row.get(4)?,
            actions: row.get(5)?,
            failures: row.get(6)?,
            error: row.get(7)?,
        }),
        _ => None,
    };
    Ok((row.get(0)?, row.get(1)?, outcome))
}
