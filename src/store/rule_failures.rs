//! Rule failures, stored with the message they failed on, in the same transaction as its plan.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::codec::Millis;
use super::error::Error;
use super::sql::{DbError, Row, params};
use super::types::{Checkpoint, FailingRule, RuleFailureRecord};
use super::{Result, Store};

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

impl Store {
    /// The newest `limit` rule failures, newest first.
    pub async fn recent_rule_failures(&self, limit: usize) -> Result<Vec<RuleFailureRecord>> {
        self.read(move |db| {
            Box::pin(async move {
                let rows = db
                    .query(
                        "SELECT account, mailbox, uidvalidity, uid, rule, error, at FROM rule_failures \
                         ORDER BY id DESC LIMIT ?1",
                        params![limit],
                    )
                    .await;
                rows.and_then(|rows| rows.iter().map(record).collect()).map_err(error)
            })
        })
        .await
    }

    /// The rules that failed since `since`, by name (byte order), each with its count and its
    /// last failure (error, time, message): "rules failing now" for `tidings status`,
    /// `/healthz` and alerts.
    pub async fn rule_failures_since(&self, since: DateTime<Utc>) -> Result<Vec<FailingRule>> {
        self.read(move |db| {
            Box::pin(async move {
                let rows = db.query(SINCE, params![since]).await;
                rows.and_then(|rows| rows.iter().map(failing).collect()).map_err(error)
            })
        })
        .await
    }
}

fn error(source: DbError) -> Error {
    Error::Outbox { verb: "read rule failures from", source }
}

/// A failure as `SELECT account, mailbox, uidvalidity, uid, rule, error, at` reads it.
pub(super) fn record(row: &Row) -> std::result::Result<RuleFailureRecord, DbError> {
    Ok(RuleFailureRecord {
        account: row.get(0)?,
        mailbox: row.get(1)?,
        uidvalidity: row.get(2)?,
        uid: row.get(3)?,
        rule: row.get(4)?,
        error: row.get(5)?,
        at: row.get(6)?,
    })
}

/// A rule failing, as [`SINCE`] reads it.
fn failing(row: &Row) -> std::result::Result<FailingRule, DbError> {
    Ok(FailingRule {
        rule: row.get(0)?,
        failures: row.get(1)?,
        last_error: row.get(2)?,
        last_at: row.get(3)?,
        account: row.get(4)?,
        mailbox: row.get(5)?,
        uid: row.get(6)?,
        message_id: row.get(7)?,
    })
}

/// Per rule, the failures at or after `?1`: how many, and the last one (its row with the
/// highest id) with its message's Message-ID.
const SINCE: &str = "SELECT f.rule, n.failures, f.error, f.at, f.account, f.mailbox, f.uid, m.message_id \
     FROM (SELECT rule, COUNT(*) AS failures, MAX(id) AS last FROM rule_failures WHERE at >= ?1 GROUP BY rule) n \
     JOIN rule_failures f ON f.id = n.last \
     LEFT JOIN messages m ON m.account = f.account AND m.mailbox = f.mailbox \
     AND m.uidvalidity = f.uidvalidity AND m.uid = f.uid \
     ORDER BY f.rule COLLATE BINARY";
