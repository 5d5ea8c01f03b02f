//! Rule failures, stored with the message they failed on, in the same transaction as its plan.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::codec::Millis;
use super::types::{Checkpoint, FailingRule, RuleFailureRecord};

/// Inserts the failures of the rules that ran on the message at `checkpoint`.
pub(super) fn insert_all(
    conn: &Connection,
    checkpoint: &Checkpoint,
    failures: &[(String, String)],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO rule_failures (account, mailbox, uidvalidity, uid, rule, error, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (rule, error) in failures {
        insert.execute((
            &checkpoint.account,
            &checkpoint.mailbox,
            checkpoint.uidvalidity,
            checkpoint.last_uid,
            rule,
            error,
            Millis(now),
        ))?;
    }
    Ok(())
}

/// The newest `limit` failures, newest first.
pub(super) fn recent(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<RuleFailureRecord>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT account, mailbox, uidvalidity, uid, rule, error, at FROM rule_failures \
         ORDER BY id DESC LIMIT ?1",
    )?;
    stmt.query_map([limit], |row| {
        Ok(RuleFailureRecord {
            account: row.get(0)?,
            mailbox: row.get(1)?,
            uidvalidity: row.get(2)?,
            uid: row.get(3)?,
            rule: row.get(4)?,
            error: row.get(5)?,
            at: row.get::<_, Millis>(6)?.0,
        })
    })?
    .collect()
}

/// Per rule, the failures at or after `since`: how many, and the last one with its message's
/// Message-ID. Sorted by rule.
pub(super) fn since(conn: &Connection, since: DateTime<Utc>) -> rusqlite::Result<Vec<FailingRule>> {
    let mut stmt = conn.prepare_cached(SINCE)?;
    stmt.query_map([Millis(since)], |row| {
        Ok(FailingRule {
            rule: row.get(0)?,
            failures: super::codec::count(row, 1)?,
            last_error: row.get(2)?,
            last_at: row.get::<_, Millis>(3)?.0,
            account: row.get(4)?,
            mailbox: row.get(5)?,
            uid: row.get(6)?,
            message_id: row.get(7)?,
        })
    })?
    .collect()
}

/// The query of [`since`]: the newest failure of a rule is its row with the highest id.
const SINCE: &str = "SELECT f.rule, n.failures, f.error, f.at, f.account, f.mailbox, f.uid, m.message_id \
     FROM (SELECT rule, COUNT(*) AS failures, MAX(id) AS last FROM rule_failures WHERE at >= ?1 GROUP BY rule) n \
     JOIN rule_failures f ON f.id = n.last \
     LEFT JOIN messages m ON m.account = f.account AND m.mailbox = f.mailbox \
     AND m.uidvalidity = f.uidvalidity AND m.uid = f.uid \
     ORDER BY f.rule";

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, Utc};

    use crate::store::{Checkpoint, Decided, MessagePlan, test_backends};

    /// Message `uid` of work's INBOX, on which each of `failed` failed with `error`.
    fn plan(uid: u32, message_id: Option<&str>, failed: &[&str], error: &str) -> MessagePlan {
        MessagePlan {
            checkpoint: Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 7, last_uid: uid },
            actions: Vec::new(),
            failures: failed.iter().map(|rule| ((*rule).to_owned(), format!("{error} {uid}"))).collect(),
            gmail_msgid: None,
            decided: Decided { uid: None, message_id: message_id.map(str::to_owned), ..Decided::default() },
        }
    }

    #[tokio::test]
    async fn failures_since_a_moment_are_counted_per_rule_with_the_last_message_and_error() {
        for (backend, store) in test_backends::each().await {
            let before = Utc::now() - TimeDelta::seconds(1);
            store
                .commit_plans(vec![
                    plan(1, Some("one@x"), &["b.rhai", "a.rhai"], "boom"),
                    plan(2, Some("two@x"), &["b.rhai"], "bang"),
                    plan(3, None, &["a.rhai"], "oops"),
                    plan(4, Some("fine@x"), &[], ""),
                ])
                .await
                .unwrap();
            let failing = store.rule_failures_since(before).await.unwrap();
            let seen: Vec<_> = failing
                .iter()
                .map(|f| (f.rule.as_str(), f.failures, f.last_error.as_str(), f.uid, f.message_id.as_deref()))
                .collect();
            assert_eq!(
                seen,
                [("a.rhai", 2, "oops 3", 3, None), ("b.rhai", 2, "bang 2", 2, Some("two@x"))],
                "{backend}"
            );
            assert!(failing.iter().all(|f| f.account == "work" && f.mailbox == "INBOX" && f.last_at >= before));
            let later = Utc::now() + TimeDelta::seconds(1);
            assert!(store.rule_failures_since(later).await.unwrap().is_empty(), "{backend}: none since then");
        }
    }
}
