//! Gmail messages already planned, by X-GM-MSGID, on PostgreSQL: one message seen through
//! several label folders is acted on once, by whichever watcher stores its plan first.
//!
//! The id is a u64 and PostgreSQL has no unsigned BIGINT, so the column is NUMERIC(20), bound
//! as text and cast: every id fits, none is stored bit-cast as a negative number.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::codec::{self, millis};
use crate::store::Checkpoint;

/// Records that `msgid` was seen at the checkpoint's position (mailbox, UIDVALIDITY, UID) and
/// says whether that is its first sighting: `false` when it was recorded before at another
/// position, i.e. in another label folder or under an older UIDVALIDITY. Called inside the
/// transaction that stores the plan.
///
/// The insert comes first: watchers of two label folders commit concurrently here (SQLite
/// serializes them), and the second one's insert waits for the first's transaction, then does
/// nothing, and its read sees the first sighting, so both cannot see a first one and neither
/// fails on the key.
pub(super) async fn first_sighting(
    tx: &impl GenericClient,
    at: &Checkpoint,
    msgid: u64,
    now: DateTime<Utc>,
) -> Result<bool, tokio_postgres::Error> {
    let id = msgid.to_string();
    let (uidvalidity, uid) = (i64::from(at.uidvalidity), i64::from(at.last_uid));
    let inserted = tx
        .execute(
            "INSERT INTO gmail_seen (account, msgid, mailbox, uidvalidity, uid, seen_at) \
             VALUES ($1, $2::text::numeric, $3, $4, $5, $6) ON CONFLICT (account, msgid) DO NOTHING",
            &[&at.account, &id, &at.mailbox, &uidvalidity, &uid, &millis(now)],
        )
        .await?;
    if inserted == 1 {
        return Ok(true);
    }
    let row = tx
        .query_one(
            "SELECT mailbox, uidvalidity, uid FROM gmail_seen WHERE account = $1 AND msgid = $2::text::numeric",
            &[&at.account, &id],
        )
        .await?;
    let mailbox: String = row.try_get(0)?;
    let seen_at: (u32, u32) = (codec::int(&row, 1)?, codec::int(&row, 2)?);
    Ok(mailbox == at.mailbox && seen_at == (at.uidvalidity, at.last_uid))
}
