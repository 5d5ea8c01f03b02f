//! What happened to a message: the rules that acted on it, its actions and their outcomes, the
//! rules that failed on it (`tidings history`).

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::codec::Millis;
use super::error::Error;
use super::outbox::{self, COLUMNS};
use super::sql::{Db, DbError, Row, params};
use super::types::{Action, Checkpoint, RuleFailureRecord};
use super::{Result, Store, rule_failures};

/// Which message(s) to explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageQuery {
    /// By Message-ID (with or without the angle brackets).
    MessageId(String),
    /// By UID, in any account and mailbox unless narrowed.
    Uid {
        /// The UID.
        uid: u32,
        /// Only this account.
        account: Option<String>,
        /// Only this mailbox.
        mailbox: Option<String>,
    },
}

impl std::fmt::Display for MessageQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageQuery::MessageId(id) => write!(f, "Message-ID <{}>", bare(id)),
            MessageQuery::Uid { uid, account, mailbox } => {
                write!(f, "UID {uid}")?;
                if let Some(account) = account {
                    write!(f, " in account {account}")?;
                }
                if let Some(mailbox) = mailbox {
                    write!(f, " in mailbox {mailbox}")?;
                }
                Ok(())
            }
        }
    }
}

/// One decided message and everything stored about it.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageHistory {
    /// The account.
    pub account: String,
    /// The mailbox it was decided in.
    pub mailbox: String,
    /// The mailbox's UIDVALIDITY then.
    pub uidvalidity: u32,
    /// Its UID there.
    pub uid: u32,
    /// Its Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// The rules that decided something for it, in rule order.
    pub matched: Vec<String>,
    /// The rule that called `stop()`, if one did.
    pub stopped_by: Option<String>,
    /// When its plan was stored.
    pub decided_at: DateTime<Utc>,
    /// Its actions, in the order planned, each with its state now.
    pub actions: Vec<Action>,
    /// The rules that failed on it.
    pub failures: Vec<RuleFailureRecord>,
}

/// What the rules made of one message, stored with its plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// Its UID; `None`: the checkpoint's `last_uid` (not so for a backfill, whose plans carry
    /// the checkpoint from before it).
    pub uid: Option<u32>,
    /// Its Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// The rules that decided something for it, in rule order.
    pub matched: Vec<String>,
    /// The rule that called `stop()`, if one did.
    pub stopped_by: Option<String>,
}

/// Records the message `decided` in the mailbox of `checkpoint`. A message decided again (a
/// crash before its checkpoint moved) keeps its first record.
pub(super) fn record(
    conn: &Connection,
    checkpoint: &Checkpoint,
    decided: &Decided,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let matched = serde_json::to_string(&decided.matched).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO messages (account, mailbox, uidvalidity, uid, message_id, matched, stopped_by, decided_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
    )?
    .execute((
        &checkpoint.account,
        &checkpoint.mailbox,
        checkpoint.uidvalidity,
        decided.uid.unwrap_or(checkpoint.last_uid),
        &decided.message_id,
        matched,
        &decided.stopped_by,
        Millis(now),
    ))?;
    Ok(())
}

impl Store {
    /// The decided messages `query` names, oldest first, with their actions and rule failures.
    pub async fn history(&self, query: MessageQuery) -> Result<Vec<MessageHistory>> {
        self.read(move |db| Box::pin(async move { find(db, &query).await.map_err(error) })).await
    }
}

fn error(source: DbError) -> Error {
    Error::Report { verb: "read the history of a message", source }
}

async fn find(db: &Db, query: &MessageQuery) -> std::result::Result<Vec<MessageHistory>, DbError> {
    let (message_id, uid, account, mailbox) = match query {
        MessageQuery::MessageId(id) => (Some(bare(id)), None, None, None),
        MessageQuery::Uid { uid, account, mailbox } => (None, Some(*uid), account.clone(), mailbox.clone()),
    };
    let rows = db
        .query(
            "SELECT account, mailbox, uidvalidity, uid, message_id, matched, stopped_by, decided_at FROM messages \
             WHERE (CAST(?1 AS TEXT) IS NULL OR message_id = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR uid = ?2) \
             AND (CAST(?3 AS TEXT) IS NULL OR account = ?3) AND (CAST(?4 AS TEXT) IS NULL OR mailbox = ?4) \
             ORDER BY decided_at, account COLLATE BINARY, mailbox COLLATE BINARY, uid",
            params![message_id, uid, account, mailbox],
        )
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut m = message(row)?;
        let key = params![&m.account, &m.mailbox, m.uidvalidity, m.uid];
        let actions = format!(
            "SELECT {COLUMNS} FROM actions WHERE account = ?1 AND mailbox = ?2 AND uidvalidity = ?3 AND uid = ?4 \
             ORDER BY id"
        );
        m.actions =
            db.query(&actions, key).await?.iter().map(outbox::read_action).collect::<std::result::Result<_, _>>()?;
        let failures = "SELECT account, mailbox, uidvalidity, uid, rule, error, at FROM rule_failures \
             WHERE account = ?1 AND mailbox = ?2 AND uidvalidity = ?3 AND uid = ?4 ORDER BY id";
        m.failures =
            db.query(failures, key).await?.iter().map(rule_failures::record).collect::<std::result::Result<_, _>>()?;
        found.push(m);
    }
    Ok(found)
}

/// A decided message as [`find`] reads it, without its actions and failures yet.
fn message(row: &Row) -> std::result::Result<MessageHistory, DbError> {
    Ok(MessageHistory {
        account: row.get(0)?,
        mailbox: row.get(1)?,
        uidvalidity: row.get(2)?,
        uid: row.get(3)?,
        message_id: row.get(4)?,
        // Written by `record` from a list of names, so it parses; an empty list if not.
        matched: serde_json::from_value(row.get(5)?).unwrap_or_default(),
        stopped_by: row.get(6)?,
        decided_at: row.get(7)?,
        actions: Vec::new(),
        failures: Vec::new(),
    })
}

/// A Message-ID as stored: without surrounding whitespace and angle brackets.
pub(super) fn bare(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_owned()
}
