//! Retention: what the store forgets, and when (the `retention:` settings; docs/storage.md,
//! "What is stored, for how long, and why").
//!
//! Two things, on both backends:
//!
//! - **Content is dropped when an action settles.** The statement that marks an outbound action
//!   done, suppressed or dropped also replaces its payload with its small, content-free fields
//!   ([`KEPT_KEYS`]: where it went, never what it said) and `"content_dropped": true`. Failed and
//!   uncertain actions keep theirs: a person may retry them. [`Prunable::Content`] does the same
//!   in the background for rows that settled with their content (stores from before this, or
//!   actions stored settled).
//! - **Old rows are deleted in small batches** ([`Prunable`]): one statement per call deletes at
//!   most `limit` rows, so a pruning pass never holds the store for long; the runtime's pruner
//!   pauses between calls. Failed and uncertain actions are never deleted (a person must see
//!   them), and a reply-log row lives at least as long as its reply's own `days` (its
//!   `keep_until`, see migration 8), so the "one reply per sender" memory outlives any shorter
//!   retention.
//!
//! Pruning is safe from every member of a fleet at once: it touches only rows no one writes any
//! more (settled actions, reply-log rows past their use, old history), deleting one twice is a
//! no-op, and PostgreSQL batches skip the rows another member is deleting.

use std::sync::LazyLock;

use super::error::Error;
use super::sql::{Dialect, params};
use super::{Result, Store};
use chrono::{DateTime, Utc};

/// What a settled action keeps of its payload: whom or where it went to, under which handle and
/// period, never a subject, a body, an original message or a rule's data.
pub const KEPT_KEYS: &[&str] = &["kind", "to", "cc", "endpoint", "mailbox", "flags", "days", "handle", "from", "at"];

/// The key a payload without its content carries (`tidings outbox` shows it).
pub const CONTENT_DROPPED: &str = "content_dropped";

/// The kinds whose payload holds content: outbound mail, events and the copy of a sent message.
/// The mailbox kinds hold only a mailbox or flags.
pub const CONTENT_KINDS: &[&str] = &["reply", "forward", "send", "webhook", "command", "save_sent"];

/// The states pruned by age; `failed` and `uncertain` never are.
pub(super) const SETTLED: &str = "'done', 'suppressed', 'dropped'";

/// Whether `payload` is one whose content was dropped.
pub fn content_dropped(payload: &serde_json::Value) -> bool {
    payload.get(CONTENT_DROPPED).and_then(serde_json::Value::as_bool) == Some(true)
}

/// `'a', 'b'` for an SQL `IN (...)`.
pub(super) fn sql_list(items: &[&str]) -> String {
    items.iter().map(|item| format!("'{item}'")).collect::<Vec<_>>().join(", ")
}

/// The SQLite expression of an `actions` row's payload without its content (the payload itself
/// for a kind without content).
pub(super) static SLIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "CASE WHEN kind IN ({kinds}) THEN json_set(COALESCE((SELECT json_group_object(key, value) \
         FROM json_each(actions.payload) WHERE key IN ({keys})), '{{}}'), '$.{CONTENT_DROPPED}', json('true')) \
         ELSE payload END",
        kinds = sql_list(CONTENT_KINDS),
        keys = sql_list(KEPT_KEYS),
    )
});

/// [`SLIM`] in PostgreSQL's dialect (JSONB has its own functions).
pub(super) static SLIM_PG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "CASE WHEN kind IN ({kinds}) THEN COALESCE((SELECT jsonb_object_agg(key, value) \
         FROM jsonb_each(actions.payload) WHERE key IN ({keys})), '{{}}'::jsonb) \
         || '{{\"{CONTENT_DROPPED}\": true}}'::jsonb ELSE payload END",
        kinds = sql_list(CONTENT_KINDS),
        keys = sql_list(KEPT_KEYS),
    )
});

/// [`SLIM`] in `dialect`.
pub(super) fn slim(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => &SLIM,
        Dialect::Postgres => &SLIM_PG,
    }
}

/// What one pruning batch removes (or, for [`Prunable::Content`], empties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prunable {
    /// The content left in settled actions' payloads (settled before `before`).
    Content,
    /// Done, suppressed and dropped actions that last changed before `before`.
    Actions,
    /// Decided messages (`tidings history`) decided before `before`.
    Messages,
    /// Rule failures from before `before`.
    RuleFailures,
    /// Reply-log rows written before `before` and past their own `keep_until`.
    ReplyLog,
    /// Collected items a digest consumed before `before` (waiting ones are kept).
    Collected,
    /// Gmail message ids first seen before `before`.
    GmailSeen,
}

impl Prunable {
    /// Every kind of row, in the order a pruning pass goes through them.
    pub const ALL: [Prunable; 7] = [
        Prunable::Content,
        Prunable::Actions,
        Prunable::Messages,
        Prunable::RuleFailures,
        Prunable::ReplyLog,
        Prunable::Collected,
        Prunable::GmailSeen,
    ];

    /// What it is, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Prunable::Content => "content of settled actions",
            Prunable::Actions => "settled actions",
            Prunable::Messages => "decided messages",
            Prunable::RuleFailures => "rule failures",
            Prunable::ReplyLog => "the reply log",
            Prunable::Collected => "consumed collected items",
            Prunable::GmailSeen => "seen Gmail message ids",
        }
    }

    /// The statement of one batch: `?1` the cutoff, `?2` the batch size (and for the reply log
    /// `?3`, now). On PostgreSQL a batch skips the rows another instance is pruning.
    fn statement(self, dialect: Dialect) -> String {
        let (lock, kept) = match dialect {
            Dialect::Sqlite => ("", format!("json_extract(payload, '$.{CONTENT_DROPPED}') IS NULL")),
            Dialect::Postgres => (" FOR UPDATE SKIP LOCKED", format!("payload -> '{CONTENT_DROPPED}' IS NULL")),
        };
        match self {
            Prunable::Content => format!(
                "UPDATE actions SET payload = {slim} WHERE id IN (SELECT id FROM actions \
                 WHERE state IN ({SETTLED}) AND updated_at < ?1 AND kind IN ({kinds}) AND {kept} LIMIT ?2{lock})",
                slim = slim(dialect),
                kinds = sql_list(CONTENT_KINDS),
            ),
            Prunable::Actions => format!(
                "DELETE FROM actions WHERE id IN (SELECT id FROM actions \
                 WHERE state IN ({SETTLED}) AND updated_at < ?1 LIMIT ?2{lock})"
            ),
            Prunable::Messages => format!(
                "DELETE FROM messages WHERE (account, mailbox, uidvalidity, uid) IN \
                 (SELECT account, mailbox, uidvalidity, uid FROM messages WHERE decided_at < ?1 LIMIT ?2{lock})"
            ),
            Prunable::RuleFailures => format!(
                "DELETE FROM rule_failures WHERE id IN \
                 (SELECT id FROM rule_failures WHERE at < ?1 ORDER BY id LIMIT ?2{lock})"
            ),
            Prunable::ReplyLog => format!(
                "DELETE FROM reply_log WHERE id IN \
                 (SELECT id FROM reply_log WHERE keep_until < ?3 AND sent_at < ?1 LIMIT ?2{lock})"
            ),
            Prunable::Collected => format!(
                "DELETE FROM collected WHERE id IN \
                 (SELECT id FROM collected WHERE consumed_at < ?1 ORDER BY id LIMIT ?2{lock})"
            ),
            Prunable::GmailSeen => format!(
                "DELETE FROM gmail_seen WHERE (account, msgid) IN \
                 (SELECT account, msgid FROM gmail_seen WHERE seen_at < ?1 LIMIT ?2{lock})"
            ),
        }
    }
}

impl Store {
    /// Prunes one batch of `what` (see [`retention`](self)): at most `limit` rows older than
    /// `before` (the reply log: also past their own `keep_until`); returns how many. Safe to call
    /// from every instance of a fleet at once.
    pub async fn prune(&self, what: Prunable, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let now = Utc::now();
        self.read(move |db| {
            Box::pin(async move {
                let sql = what.statement(db.dialect());
                match what {
                    Prunable::ReplyLog => db.execute(&sql, params![before, limit, now]).await,
                    _ => db.execute(&sql, params![before, limit]).await,
                }
                .map_err(|source| Error::Prune { what: what.name(), source })
            })
        })
        .await
    }
}

/// Until when a reply-log row is needed: a reply's "once per `days`" memory, and every send's
/// place in the 24 hours of the daily cap.
pub(super) fn keep_until(sent_at: DateTime<Utc>, days: Option<u32>) -> DateTime<Utc> {
    sent_at + chrono::Duration::days(i64::from(days.unwrap_or(1).max(1)))
}

/// The longest `days` a reply may have: what a row written without its reply's `days` is
/// kept for.
pub(super) const MAX_REPLY_DAYS: u32 = 3650;
