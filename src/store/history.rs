//! What happened to a message: the rules that acted on it, its actions and their outcomes, the
//! rules that failed on it (`tidings history`).

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::codec::Millis;
use super::outbox::{self, COLUMNS};
use super::types::{Action, Checkpoint, RuleFailureRecord};

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

/// Every decided message `query` names, oldest first, with its actions and failures.
pub(super) fn find(conn: &Connection, query: &MessageQuery) -> rusqlite::Result<Vec<MessageHistory>> {
    let (message_id, uid, account, mailbox) = match query {
        MessageQuery::MessageId(id) => (Some(bare(id)), None, None, None),
        MessageQuery::Uid { uid, account, mailbox } => (None, Some(*uid), account.clone(), mailbox.clone()),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT account, mailbox, uidvalidity, uid, message_id, matched, stopped_by, decided_at FROM messages \
         WHERE (?1 IS NULL OR message_id = ?1) AND (?2 IS NULL OR uid = ?2) \
         AND (?3 IS NULL OR account = ?3) AND (?4 IS NULL OR mailbox = ?4) \
         ORDER BY decided_at, account, mailbox, uid",
    )?;
    let found: Vec<MessageHistory> = stmt
        .query_map((message_id, uid, account, mailbox), |row| {
            let matched: String = row.get(5)?;
            Ok(MessageHistory {
                account: row.get(0)?,
                mailbox: row.get(1)?,
                uidvalidity: row.get(2)?,
                uid: row.get(3)?,
                message_id: row.get(4)?,
                // Written by `record` from a list of names, so it parses; an empty list if not.
                matched: serde_json::from_str(&matched).unwrap_or_default(),
                stopped_by: row.get(6)?,
                decided_at: row.get::<_, Millis>(7)?.0,
                actions: Vec::new(),
                failures: Vec::new(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    found
        .into_iter()
        .map(|mut message| {
            message.actions = actions_of(conn, &message)?;
            message.failures = failures_of(conn, &message)?;
            Ok(message)
        })
        .collect()
}

fn actions_of(conn: &Connection, m: &MessageHistory) -> rusqlite::Result<Vec<Action>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM actions WHERE account = ?1 AND mailbox = ?2 AND uidvalidity = ?3 AND uid = ?4 \
         ORDER BY id"
    );
    conn.prepare_cached(&sql)?.query_map((&m.account, &m.mailbox, m.uidvalidity, m.uid), outbox::action)?.collect()
}

fn failures_of(conn: &Connection, m: &MessageHistory) -> rusqlite::Result<Vec<RuleFailureRecord>> {
    conn.prepare_cached(
        "SELECT rule, error, at FROM rule_failures WHERE account = ?1 AND mailbox = ?2 AND uidvalidity = ?3 \
         AND uid = ?4 ORDER BY id",
    )?
    .query_map((&m.account, &m.mailbox, m.uidvalidity, m.uid), |row| {
        Ok(RuleFailureRecord {
            account: m.account.clone(),
            mailbox: m.mailbox.clone(),
            uidvalidity: m.uidvalidity,
            uid: m.uid,
            rule: row.get(0)?,
            error: row.get(1)?,
            at: row.get::<_, Millis>(2)?.0,
        })
    })?
    .collect()
}

/// A Message-ID as stored: without surrounding whitespace and angle brackets.
pub(super) fn bare(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Decided, MessageQuery};
    use crate::store::{ActionState, Checkpoint, MessagePlan, NewAction, test_backends};

    /// The plan of message `uid` of work's INBOX: two actions by two rules, one failed rule.
    fn plan(uid: u32, message_id: Option<&str>) -> MessagePlan {
        let act = |key: &str, rule: &str| {
            NewAction::new(format!("{key}-{uid}"), "work", key, json!({})).for_message("INBOX", 7, uid).by_rule(rule)
        };
        MessagePlan {
            checkpoint: Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 7, last_uid: uid },
            actions: vec![act("add_flags", "a.rhai"), act("move", "b.rhai")],
            failures: vec![("c.rhai".into(), "boom".into())],
            gmail_msgid: None,
            decided: Decided {
                uid: None,
                message_id: message_id.map(str::to_owned),
                matched: vec!["a.rhai".into(), "b.rhai".into()],
                stopped_by: Some("b.rhai".into()),
            },
        }
    }

    #[tokio::test]
    async fn a_committed_message_is_found_with_its_actions_and_failures() {
        for (backend, store) in test_backends::each().await {
            store.commit_plans(vec![plan(5, Some("abc@example.com")), plan(6, None)]).await.unwrap();
            let found = store.history(MessageQuery::MessageId(" <abc@example.com>".into())).await.unwrap();
            assert_eq!(found.len(), 1, "{backend}");
            let m = &found[0];
            let head = (m.account.as_str(), m.mailbox.as_str(), m.uidvalidity, m.uid, m.message_id.as_deref());
            assert_eq!(head, ("work", "INBOX", 7, 5, Some("abc@example.com")), "{backend}");
            assert_eq!(
                (&m.matched[..], m.stopped_by.as_deref()),
                (&["a.rhai".to_owned(), "b.rhai".to_owned()][..], Some("b.rhai")),
                "{backend}"
            );
            let actions: Vec<(&str, ActionState)> = m.actions.iter().map(|a| (a.key.as_str(), a.state)).collect();
            assert_eq!(actions, [("add_flags-5", ActionState::Pending), ("move-5", ActionState::Pending)], "{backend}");
            let failures: Vec<(&str, &str, u32)> =
                m.failures.iter().map(|f| (f.rule.as_str(), f.error.as_str(), f.uid)).collect();
            assert_eq!(failures, [("c.rhai", "boom", 5)], "{backend}");
            // By UID, narrowed or not.
            let by_uid = |uid, account: Option<&str>| MessageQuery::Uid {
                uid,
                account: account.map(str::to_owned),
                mailbox: None,
            };
            let found = store.history(by_uid(6, Some("work"))).await.unwrap();
            assert_eq!(
                found.iter().map(|m| (m.uid, m.message_id.clone(), m.actions.len())).collect::<Vec<_>>(),
                [(6, None, 2)],
                "{backend}"
            );
            assert!(store.history(by_uid(6, Some("home"))).await.unwrap().is_empty(), "{backend}");
            assert!(
                store.history(MessageQuery::MessageId("other@example.com".into())).await.unwrap().is_empty(),
                "{backend}"
            );
        }
    }
}
