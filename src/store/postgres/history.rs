//! The record of a decided message, written on PostgreSQL with its plan (read back through the
//! seam by `store::history`; this goes when the plans are written once).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::codec::millis;
use crate::store::{Checkpoint, Decided};

/// Records the message `decided` in the mailbox of `checkpoint`. A message decided again (a
/// crash before its checkpoint moved) keeps its first record.
pub(super) async fn record(
    tx: &impl GenericClient,
    checkpoint: &Checkpoint,
    decided: &Decided,
    now: DateTime<Utc>,
) -> std::result::Result<(), tokio_postgres::Error> {
    let matched = serde_json::Value::from(decided.matched.clone());
    tx.execute(
        "INSERT INTO messages (account, mailbox, uidvalidity, uid, message_id, matched, stopped_by, decided_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            &checkpoint.account,
            &checkpoint.mailbox,
            &i64::from(checkpoint.uidvalidity),
            &i64::from(decided.uid.unwrap_or(checkpoint.last_uid)),
            &decided.message_id,
            &matched,
            &decided.stopped_by,
            &millis(now),
        ],
    )
    .await?;
    Ok(())
}
