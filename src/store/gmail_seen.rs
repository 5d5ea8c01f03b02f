//! Gmail messages already planned, by X-GM-MSGID (see migration 5): one message seen through
//! several label folders is acted on once, by whichever watcher stores its plan first.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

use super::codec::Millis;
use super::types::Checkpoint;

/// Records that `msgid` was seen at the checkpoint's position (mailbox, UIDVALIDITY, UID) and
/// says whether that is its first sighting: `false` when it was recorded before at another
/// position, i.e. in another label folder or under an older UIDVALIDITY. Called inside the
/// transaction that stores the plan, so two watchers cannot both see a first sighting.
pub(super) fn first_sighting(
    conn: &Connection,
    at: &Checkpoint,
    msgid: u64,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    // SQLite integers are signed: the id is stored bit for bit (Gmail's stay below 2^63 anyway).
    let id = i64::from_ne_bytes(msgid.to_ne_bytes());
    let stored: Option<(String, u32, u32)> = conn
        .prepare_cached("SELECT mailbox, uidvalidity, uid FROM gmail_seen WHERE account = ?1 AND msgid = ?2")?
        .query_row((&at.account, id), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((mailbox, uidvalidity, uid)) = stored {
        return Ok(mailbox == at.mailbox && uidvalidity == at.uidvalidity && uid == at.last_uid);
    }
    conn.prepare_cached(
        "INSERT INTO gmail_seen (account, msgid, mailbox, uidvalidity, uid, seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute((&at.account, id, &at.mailbox, at.uidvalidity, at.last_uid, Millis(now)))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::store::test_backends;
    use crate::store::{Checkpoint, MessagePlan, NewAction};

    /// The plan of message `msgid` seen as `uid` in `mailbox`: one action and one rule failure.
    fn plan(mailbox: &str, uid: u32, msgid: Option<u64>) -> MessagePlan {
        let key = format!("{mailbox}-{uid}");
        MessagePlan {
            checkpoint: Checkpoint { account: "gmail".into(), mailbox: mailbox.into(), uidvalidity: 7, last_uid: uid },
            actions: vec![
                NewAction::new(key, "gmail", "archive", json!({"kind": "archive"})).for_message(mailbox, 7, uid),
            ],
            failures: vec![("r.rhai".into(), "boom".into())],
            gmail_msgid: msgid,
            decided: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_message_seen_in_a_second_label_folder_stores_nothing_but_its_checkpoint() {
        for (backend, store) in test_backends::each().await {
            assert_eq!(store.commit_plans(vec![plan("INBOX", 3, Some(99))]).await.unwrap().len(), 1, "{backend}");
            // The same sighting committed again (a retry after a crash) is still the first one.
            let again = store.commit_plans(vec![plan("INBOX", 3, Some(99))]).await.unwrap();
            assert_eq!(again.len(), 0, "{backend}: key known");
            assert_eq!(test_backends::actions(&store).await.len(), 1, "{backend}");
            let failures = store.recent_rule_failures(10).await.unwrap().len();
            // Through another label folder: the checkpoint moves, nothing else is stored.
            assert!(store.commit_plans(vec![plan("Receipts", 12, Some(99))]).await.unwrap().is_empty(), "{backend}");
            let receipts = store.checkpoint("gmail", "Receipts").await.unwrap().map(|c| c.last_uid);
            assert_eq!(receipts, Some(12), "{backend}");
            assert_eq!(test_backends::actions(&store).await.len(), 1, "{backend}");
            let now = store.recent_rule_failures(10).await.unwrap().len();
            assert_eq!(now, failures, "{backend}: no failure stored either");
            // Another message there, and messages without an id (other servers), are planned as usual.
            assert_eq!(store.commit_plans(vec![plan("Receipts", 13, Some(100))]).await.unwrap().len(), 1, "{backend}");
            let others = store.commit_plans(vec![plan("Other", 1, None), plan("Other", 2, None)]).await.unwrap();
            assert_eq!(others.len(), 2, "{backend}");
            // Accounts are apart: the same id in another account is another message.
            let mut other = plan("INBOX", 3, Some(99));
            other.checkpoint.account = "work".into();
            other.actions = vec![NewAction::new("work-3", "work", "archive", json!({})).for_message("INBOX", 7, 3)];
            assert_eq!(store.commit_plans(vec![other]).await.unwrap().len(), 1, "{backend}");
            // Ids use all 64 bits.
            assert_eq!(store.commit_plans(vec![plan("INBOX", 4, Some(u64::MAX))]).await.unwrap().len(), 1, "{backend}");
            let seen_again = store.commit_plans(vec![plan("Receipts", 14, Some(u64::MAX))]).await.unwrap();
            assert!(seen_again.is_empty(), "{backend}");
        }
    }
}
