//! Rule failures on PostgreSQL, stored with the message they failed on, in the same transaction
//! as its plan (read back through the seam by `store::rule_failures`; this goes when the plans
//! are written once).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::codec::millis;
use crate::store::Checkpoint;

/// Inserts the failures of the rules that ran on the message at `checkpoint`.
pub(super) async fn insert_all(
    tx: &impl GenericClient,
    checkpoint: &Checkpoint,
    failures: &[(String, String)],
    now: DateTime<Utc>,
) -> std::result::Result<(), tokio_postgres::Error> {
    if failures.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare(
            "INSERT INTO rule_failures (account, mailbox, uidvalidity, uid, rule, error, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let (uidvalidity, uid) = (i64::from(checkpoint.uidvalidity), i64::from(checkpoint.last_uid));
    for (rule, error) in failures {
        tx.execute(&insert, &[&checkpoint.account, &checkpoint.mailbox, &uidvalidity, &uid, rule, error, &millis(now)])
            .await?;
    }
    Ok(())
}
