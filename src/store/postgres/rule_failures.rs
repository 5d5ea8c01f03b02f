//! Rule failures on PostgreSQL, stored with the message they failed on, in the same transaction
//! as its plan.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::codec::{self, bigint, millis};
use super::{PgStore, db};
use crate::store::{Checkpoint, FailingRule, Result, RuleFailureRecord};

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

/// A failure as `SELECT account, mailbox, uidvalidity, uid, rule, error, at` reads it.
pub(super) fn record(row: &Row) -> std::result::Result<RuleFailureRecord, tokio_postgres::Error> {
    Ok(RuleFailureRecord {
        account: row.try_get(0)?,
        mailbox: row.try_get(1)?,
        uidvalidity: codec::int(row, 2)?,
        uid: codec::int(row, 3)?,
        rule: row.try_get(4)?,
        error: row.try_get(5)?,
        at: codec::time(row, 6)?,
    })
}

impl PgStore {
    /// The newest `limit` rule failures, newest first.
    pub(crate) async fn recent_rule_failures(&self, limit: usize) -> Result<Vec<RuleFailureRecord>> {
        let what = || "read rule failures".to_owned();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT account, mailbox, uidvalidity, uid, rule, error, at FROM rule_failures \
                 ORDER BY id DESC LIMIT $1",
                &[&bigint(limit)],
            )
            .await
            .map_err(db(what))?;
        rows.iter().map(record).collect::<std::result::Result<_, _>>().map_err(db(what))
    }

    /// Per rule, the failures at or after `since`: how many, and the last one with its
    /// message's Message-ID. Sorted by rule (byte order, as on SQLite).
    pub(crate) async fn rule_failures_since(&self, since: DateTime<Utc>) -> Result<Vec<FailingRule>> {
        let what = || "read rule failures".to_owned();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT f.rule, n.failures, f.error, f.at, f.account, f.mailbox, f.uid, m.message_id \
                 FROM (SELECT rule, COUNT(*) AS failures, MAX(id) AS last FROM rule_failures \
                       WHERE at >= $1 GROUP BY rule) n \
                 JOIN rule_failures f ON f.id = n.last \
                 LEFT JOIN messages m ON m.account = f.account AND m.mailbox = f.mailbox \
                 AND m.uidvalidity = f.uidvalidity AND m.uid = f.uid \
                 ORDER BY f.rule COLLATE \"C\"",
                &[&millis(since)],
            )
            .await
            .map_err(db(what))?;
        let failing = |row: &Row| -> std::result::Result<FailingRule, tokio_postgres::Error> {
            Ok(FailingRule {
                rule: row.try_get(0)?,
                failures: codec::int(row, 1)?,
                last_error: row.try_get(2)?,
                last_at: codec::time(row, 3)?,
                account: row.try_get(4)?,
                mailbox: row.try_get(5)?,
                uid: codec::int(row, 6)?,
                message_id: row.try_get(7)?,
            })
        };
        rows.iter().map(failing).collect::<std::result::Result<_, _>>().map_err(db(what))
    }
}
