//! Retention on PostgreSQL: the same content dropping and batched pruning as on SQLite (see
//! `store::retention`), in PostgreSQL's dialect. A batch locks the rows it deletes with `FOR
//! UPDATE SKIP LOCKED`, so instances of a fleet pruning at once split the work instead of
//! waiting for each other.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::{PgStore, db};
use crate::store::Result;
use crate::store::retention::{CONTENT_DROPPED, CONTENT_KINDS, KEPT_KEYS, Prunable, SETTLED, sql_list};

/// The expression of an `actions` row's payload without its content (the payload itself for a
/// kind without content).
pub(super) static SLIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "CASE WHEN kind IN ({kinds}) THEN COALESCE((SELECT jsonb_object_agg(key, value) \
         FROM jsonb_each(actions.payload) WHERE key IN ({keys})), '{{}}'::jsonb) \
         || '{{\"{CONTENT_DROPPED}\": true}}'::jsonb ELSE payload END",
        kinds = sql_list(CONTENT_KINDS),
        keys = sql_list(KEPT_KEYS),
    )
});

/// The statement of one batch: `$1` the cutoff, `$2` the batch size (and for the reply log
/// `$3`, now).
fn statement(what: Prunable) -> String {
    match what {
        Prunable::Content => format!(
            "UPDATE actions SET payload = {slim} WHERE id IN (SELECT id FROM actions \
             WHERE state IN ({SETTLED}) AND updated_at < $1 AND kind IN ({kinds}) \
             AND NOT payload ? '{CONTENT_DROPPED}' LIMIT $2 FOR UPDATE SKIP LOCKED)",
            slim = *SLIM,
            kinds = sql_list(CONTENT_KINDS),
        ),
        Prunable::Actions => format!(
            "DELETE FROM actions WHERE id IN (SELECT id FROM actions \
             WHERE state IN ({SETTLED}) AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        ),
        Prunable::Messages => "DELETE FROM messages WHERE (account, mailbox, uidvalidity, uid) IN \
             (SELECT account, mailbox, uidvalidity, uid FROM messages WHERE decided_at < $1 LIMIT $2 \
             FOR UPDATE SKIP LOCKED)"
            .to_owned(),
        Prunable::RuleFailures => "DELETE FROM rule_failures WHERE id IN \
             (SELECT id FROM rule_failures WHERE at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)"
            .to_owned(),
        Prunable::ReplyLog => "DELETE FROM reply_log WHERE id IN \
             (SELECT id FROM reply_log WHERE keep_until < $3 AND sent_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            .to_owned(),
        Prunable::Collected => "DELETE FROM collected WHERE id IN \
             (SELECT id FROM collected WHERE consumed_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)"
            .to_owned(),
        Prunable::GmailSeen => "DELETE FROM gmail_seen WHERE (account, msgid) IN \
             (SELECT account, msgid FROM gmail_seen WHERE seen_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            .to_owned(),
    }
}

impl PgStore {
    /// One batch of pruning (see `Store::prune`); returns how many rows it deleted (or emptied).
    pub(crate) async fn prune(
        &self,
        what: Prunable,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<u64> {
        let error = db(|| format!("prune {}", what.name()));
        let client = self.client().await?;
        let (before, now) = (before.timestamp_millis(), now.timestamp_millis());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = statement(what);
        match what {
            Prunable::ReplyLog => client.execute(&sql, &[&before, &limit, &now]).await,
            _ => client.execute(&sql, &[&before, &limit]).await,
        }
        .map_err(error)
    }
}
