//! What happened to a message, on PostgreSQL: the rules that acted on it, its actions and their
//! outcomes, the rules that failed on it (`tidings history`).

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::codec::{self, millis};
use super::{PgStore, db, rule_failures};
use crate::store::history::bare;
use crate::store::outbox::COLUMNS;
use crate::store::{Checkpoint, Decided, MessageHistory, MessageQuery, Result};

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

/// A decided message as the `SELECT` of [`PgStore::history`] reads it, without its actions and
/// failures yet.
fn message(row: &Row) -> std::result::Result<MessageHistory, tokio_postgres::Error> {
    let matched: serde_json::Value = row.try_get(5)?;
    Ok(MessageHistory {
        account: row.try_get(0)?,
        mailbox: row.try_get(1)?,
        uidvalidity: codec::int(row, 2)?,
        uid: codec::int(row, 3)?,
        message_id: row.try_get(4)?,
        // Written by `record` from a list of names, so it parses; an empty list if not.
        matched: serde_json::from_value(matched).unwrap_or_default(),
        stopped_by: row.try_get(6)?,
        decided_at: codec::time(row, 7)?,
        actions: Vec::new(),
        failures: Vec::new(),
    })
}

/// Every decided message `query` names, oldest first, with its actions and failures.
async fn find(
    client: &impl GenericClient,
    query: &MessageQuery,
) -> std::result::Result<Vec<MessageHistory>, tokio_postgres::Error> {
    let (message_id, uid, account, mailbox) = match query {
        MessageQuery::MessageId(id) => (Some(bare(id)), None, None, None),
        MessageQuery::Uid { uid, account, mailbox } => (None, Some(i64::from(*uid)), account.clone(), mailbox.clone()),
    };
    let rows = client
        .query(
            "SELECT account, mailbox, uidvalidity, uid, message_id, matched, stopped_by, decided_at FROM messages \
             WHERE ($1::text IS NULL OR message_id = $1) AND ($2::bigint IS NULL OR uid = $2) \
             AND ($3::text IS NULL OR account = $3) AND ($4::text IS NULL OR mailbox = $4) \
             ORDER BY decided_at, account COLLATE \"C\", mailbox COLLATE \"C\", uid",
            &[&message_id, &uid, &account, &mailbox],
        )
        .await?;
    let actions = client
        .prepare(&format!(
            "SELECT {COLUMNS} FROM actions WHERE account = $1 AND mailbox = $2 AND uidvalidity = $3 AND uid = $4 \
             ORDER BY id"
        ))
        .await?;
    let failures = client
        .prepare(
            "SELECT account, mailbox, uidvalidity, uid, rule, error, at FROM rule_failures \
             WHERE account = $1 AND mailbox = $2 AND uidvalidity = $3 AND uid = $4 ORDER BY id",
        )
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut m = message(row)?;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&m.account, &m.mailbox, &i64::from(m.uidvalidity), &i64::from(m.uid)];
        m.actions = super::outbox::actions(&client.query(&actions, &key).await?)?;
        m.failures = client
            .query(&failures, &key)
            .await?
            .iter()
            .map(rule_failures::record)
            .collect::<std::result::Result<_, _>>()?;
        found.push(m);
    }
    Ok(found)
}

impl PgStore {
    /// The decided messages `query` names, with their actions and rule failures.
    pub(crate) async fn history(&self, query: MessageQuery) -> Result<Vec<MessageHistory>> {
        let client = self.client().await?;
        find(&**client, &query).await.map_err(db(|| "read the history of a message".to_owned()))
    }
}
