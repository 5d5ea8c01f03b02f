//! Sending mail at most once on PostgreSQL: the step from `in_flight` to `sending`, and out of
//! it, with the same gate as on SQLite (see `store::sending`).
//!
//! SQLite serializes every writer, so two dispatchers cannot both pass the daily cap with its
//! last free slot. Here the instances of a fleet write at once, so [`PgStore::begin_send`]
//! takes a transaction-scoped advisory lock on the sending account before it counts: the
//! checks and the reply-log row of one account's sends happen one at a time, whichever
//! instance runs them.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::codec::{Millis, Unsigned};
use super::outbox::{begin, insert_all, set_outcome, state_of};
use super::{PgStore, db};
use crate::store::sending::{
    ONLY_CLAIMED, ONLY_SENDING_ABORTED, ONLY_SENDING_UNCERTAIN, already_replied, day_before, hour_before, log_entry,
    log_keep_until, over_daily_limit, over_forward_rate, within_period,
};
use crate::store::{ActionId, ActionState, Error, NewAction, OncePer, Outcome, Result, SendGate, SendStart};

/// The first key of the per-account advisory locks of [`PgStore::begin_send`] ("tidg", as the
/// migrations' lock; two-key locks are a space of their own); the second is the account's hash.
const SEND_LOCK: i32 = 0x7469_6467;

impl PgStore {
    /// Right before the SMTP transaction of the in-flight mail action `id`: checks "once per
    /// sender per period" and the daily cap and, if they allow it, records the send in the
    /// reply log and marks the action `sending`, all in one transaction. When they do not,
    /// the action is settled (suppressed, or failed with how to retry) and the gate says why.
    pub(crate) async fn begin_send(&self, id: ActionId, start: SendStart) -> Result<SendGate> {
        const VERB: &str = "begin sending";
        let what = || format!("begin sending action {id}");
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        self.fence_action(&tx, id).await?;
        let found = state_of(&tx, id).await?;
        if found != Some(ActionState::InFlight) {
            return Err(Error::WrongState { verb: VERB, id, found, allowed: ONLY_CLAIMED });
        }
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&SEND_LOCK, &start.account])
            .await
            .map_err(db(what))?;
        if let Some(once) = &start.once_per
            && let Some(at) = last_reply(&tx, id, &start, once).await.map_err(db(what))?
            && within_period(once, at, start.now)
        {
            set_outcome(&tx, id, &Outcome::Suppressed { reason: already_replied(once, at) }, &[ActionState::InFlight])
                .await?;
            tx.commit().await.map_err(db(what))?;
            return Ok(SendGate::AlreadyReplied { at });
        }
        if let Some(limit) = start.forward_rate {
            let sent = forwarded_in_last_hour(&tx, id, &start).await.map_err(db(what))?;
            if sent >= u64::from(limit) {
                let reason = over_forward_rate(&start, sent, limit);
                set_outcome(&tx, id, &Outcome::Suppressed { reason }, &[ActionState::InFlight]).await?;
                tx.commit().await.map_err(db(what))?;
                return Ok(SendGate::OverForwardRate { sent, limit });
            }
        }
        let sent = sent_in_last_day(&tx, id, &start).await.map_err(db(what))?;
        if sent >= u64::from(start.daily_limit) {
            let error = over_daily_limit(id, &start, sent);
            set_outcome(&tx, id, &Outcome::Failed { error }, &[ActionState::InFlight]).await?;
            tx.commit().await.map_err(db(what))?;
            return Ok(SendGate::OverDailyLimit { sent, limit: start.daily_limit });
        }
        log_send(&tx, id, &start).await.map_err(db(what))?;
        tx.execute(
            "UPDATE actions SET state = 'sending', updated_at = $2 WHERE id = $1",
            &[&id.0, &Utc::now().timestamp_millis()],
        )
        .await
        .map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        Ok(SendGate::Go)
    }

    /// The server refused the mail of sending action `id`, so nothing was sent: records
    /// `outcome` ([`Outcome::Retry`] or [`Outcome::Failed`]) and takes its reply-log row back.
    pub(crate) async fn abort_send(&self, id: ActionId, outcome: Outcome) -> Result<()> {
        const VERB: &str = "abort sending";
        let what = || format!("abort sending action {id}");
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        self.fence_action(&tx, id).await?;
        if !set_outcome(&tx, id, &outcome, &[ActionState::Sending]).await? {
            let found = state_of(&tx, id).await?;
            return Err(Error::WrongState { verb: VERB, id, found, allowed: ONLY_SENDING_ABORTED });
        }
        tx.execute("DELETE FROM reply_log WHERE action_id = $1", &[&id.0]).await.map_err(db(what))?;
        tx.commit().await.map_err(db(what))
    }

    /// The SMTP transaction of sending action `id` broke off: the mail may be out. The action
    /// becomes uncertain, is never resent automatically, and keeps counting towards the caps.
    pub(crate) async fn mark_uncertain(&self, id: ActionId, error: impl Into<String>) -> Result<()> {
        const VERB: &str = "mark uncertain";
        let error: String = error.into();
        let what = || format!("mark uncertain action {id}");
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        self.fence_action(&tx, id).await?;
        let changed = tx
            .execute(
                "UPDATE actions SET state = 'uncertain', last_error = $2, updated_at = $3 \
                 WHERE id = $1 AND state = 'sending'",
                &[&id.0, &error, &Utc::now().timestamp_millis()],
            )
            .await
            .map_err(db(what))?;
        if changed == 0 {
            let found = state_of(&tx, id).await?;
            return Err(Error::WrongState { verb: VERB, id, found, allowed: ONLY_SENDING_UNCERTAIN });
        }
        tx.commit().await.map_err(db(what))
    }

    /// Marks in-flight or sending action `id` done and stores `follow_up` (a copy for the Sent
    /// folder) in the same transaction. Returns the follow-up's id (`None` without one, or when
    /// its key was already stored).
    pub(crate) async fn complete_with(&self, id: ActionId, follow_up: Option<NewAction>) -> Result<Option<ActionId>> {
        let what = || format!("complete action {id}");
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        let account = self.fence_action(&tx, id).await?;
        if !set_outcome(&tx, id, &Outcome::Done, &[ActionState::InFlight, ActionState::Sending]).await? {
            return Err(Error::NotInFlight { id });
        }
        let inserted = match follow_up {
            Some(new) => {
                if account.as_deref() != Some(new.account.as_str()) {
                    self.fence(&tx, &new.account).await?;
                }
                insert_all(&tx, std::slice::from_ref(&new), Utc::now()).await.map_err(db(what))?
            }
            None => Vec::new(),
        };
        tx.commit().await.map_err(db(what))?;
        Ok(inserted.first().copied())
    }

    /// The reply-log row of action `id`, if it has one: `(sender, sent_at)`.
    #[cfg(test)]
    pub(crate) async fn logged(&self, id: ActionId) -> Result<Option<(String, DateTime<Utc>)>> {
        let what = || format!("read the reply log of action {id}");
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT sender, sent_at FROM reply_log WHERE action_id = $1", &[&id.0])
            .await
            .map_err(db(what))?;
        let logged = |row: tokio_postgres::Row| {
            Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get::<_, Millis>(1)?.0))
        };
        row.map(logged).transpose().map_err(db(what))
    }
}

/// The last reply to `once.sender` under `once.handle`, other than this action's own (a row it
/// left when it turned uncertain and a person retried it).
async fn last_reply(
    tx: &impl GenericClient,
    id: ActionId,
    start: &SendStart,
    once: &OncePer,
) -> std::result::Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    let row = tx
        .query_one(
            "SELECT MAX(sent_at) FROM reply_log WHERE account = $1 AND kind = $2 AND handle = $3 AND sender = $4 \
             AND action_id IS DISTINCT FROM $5",
            &[&start.account, &start.kind, &once.handle, &once.sender, &id.0],
        )
        .await?;
    Ok(row.try_get::<_, Option<Millis>>(0)?.map(|m| m.0))
}

/// How many messages the account sent in the 24 hours before `start.now`, this action aside.
async fn sent_in_last_day(
    tx: &impl GenericClient,
    id: ActionId,
    start: &SendStart,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sql = "SELECT COUNT(*) FROM reply_log WHERE account = $1 AND sent_at > $2 AND action_id IS DISTINCT FROM $3";
    count(tx, sql, &[&start.account, &day_before(start).timestamp_millis(), &id.0]).await
}

/// The one count a query returns.
async fn count(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> std::result::Result<u64, tokio_postgres::Error> {
    Ok(tx.query_one(sql, params).await?.try_get::<_, Unsigned<u64>>(0)?.0)
}

/// How many forwards the account sent to `start.recipient` in the hour before `start.now`,
/// this action aside.
async fn forwarded_in_last_hour(
    tx: &impl GenericClient,
    id: ActionId,
    start: &SendStart,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sql = "SELECT COUNT(*) FROM reply_log WHERE account = $1 AND handle = '' AND sender = $2 \
               AND kind = 'forward' AND sent_at > $3 AND action_id IS DISTINCT FROM $4";
    count(tx, sql, &[&start.account, &start.recipient, &hour_before(start).timestamp_millis(), &id.0]).await
}

/// Writes the reply-log row of this send: one per action, replacing an earlier attempt's.
async fn log_send(
    tx: &impl GenericClient,
    id: ActionId,
    start: &SendStart,
) -> std::result::Result<(), tokio_postgres::Error> {
    let (handle, sender) = log_entry(start);
    tx.execute("DELETE FROM reply_log WHERE action_id = $1", &[&id.0]).await?;
    tx.execute(
        "INSERT INTO reply_log (account, handle, sender, sent_at, action_id, kind, keep_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &start.account,
            &handle,
            &sender,
            &start.now.timestamp_millis(),
            &id.0,
            &start.kind,
            &log_keep_until(start).timestamp_millis(),
        ],
    )
    .await?;
    Ok(())
}
