//! Schedule runs on PostgreSQL: when each named schedule last fired, and how that run went. The
//! stored time only moves forward.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::codec::{bigint, millis};
use super::{PgStore, db};
use crate::store::{Result, RunOutcome};

/// Keeps the later of the stored and the given time: a late or repeated record of an earlier
/// run must not make the schedule fire again. A later fire clears the outcome stored for the
/// earlier one (the new run's outcome, if any, is set next by [`set_outcome`]).
pub(super) async fn upsert(
    tx: &impl GenericClient,
    name: &str,
    fired_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> std::result::Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO schedule_runs AS r (name, fired_at, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET \
         fired_at = GREATEST(r.fired_at, excluded.fired_at), updated_at = excluded.updated_at, \
         started_at = CASE WHEN excluded.fired_at > r.fired_at THEN NULL ELSE r.started_at END, \
         finished_at = CASE WHEN excluded.fired_at > r.fired_at THEN NULL ELSE r.finished_at END, \
         messages = CASE WHEN excluded.fired_at > r.fired_at THEN NULL ELSE r.messages END, \
         actions = CASE WHEN excluded.fired_at > r.fired_at THEN NULL ELSE r.actions END, \
         failures = CASE WHEN excluded.fired_at > r.fired_at THEN NULL ELSE r.failures END, \
         error = CASE WHEN excluded.fired_at > r.fired_at THEN NULL ELSE r.error END",
        &[&name, &millis(fired_at), &millis(now)],
    )
    .await?;
    Ok(())
}

/// Records the outcome of the run for `fired_at`, unless a later fire is already stored (a late
/// finish of an older run must not hide the newer outcome). Call after [`upsert`].
pub(super) async fn set_outcome(
    tx: &impl GenericClient,
    name: &str,
    fired_at: DateTime<Utc>,
    outcome: &RunOutcome,
) -> std::result::Result<(), tokio_postgres::Error> {
    tx.execute(
        "UPDATE schedule_runs SET started_at = $3, finished_at = $4, messages = $5, actions = $6, \
         failures = $7, error = $8 WHERE name = $1 AND fired_at = $2",
        &[
            &name,
            &millis(fired_at),
            &millis(outcome.started_at),
            &millis(outcome.finished_at),
            &bigint(outcome.messages),
            &bigint(outcome.actions),
            &bigint(outcome.failures),
            &outcome.error,
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// Records that schedule `name` fired at `fired_at`; an earlier time than the one stored
    /// is ignored, so the stored run only moves forward. Keyed by the schedule alone, so not
    /// fenced: any instance may record a fire, and the time only moves forward.
    pub(crate) async fn record_schedule_run(&self, name: &str, fired_at: DateTime<Utc>) -> Result<()> {
        let client = self.client().await?;
        upsert(&**client, name, fired_at, Utc::now()).await.map_err(db(|| format!("write run of schedule {name}")))
    }
}
