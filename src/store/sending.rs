//! Sending mail at most once: the step from `in_flight` to `sending`, and out of it.
//!
//! Right before its SMTP transaction a mail action goes through [`begin_send`], one IMMEDIATE
//! transaction that checks the reply log (once per sender per period, the daily cap), writes
//! this send's reply-log row and marks the action `sending`. Two dispatchers, even in two
//! processes, cannot both pass the cap with the last free slot: the write lock is taken before
//! the first count. After the transaction the outcome is one of: sent ([`complete_with`]),
//! refused by the server, so nothing was sent ([`abort_send`], which takes the reply-log row
//! back), or unknown ([`mark_uncertain`], which keeps it: the mail may be out).

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, TransactionBehavior};

use super::codec::{self, Millis};
use super::error::Error;
use super::outbox;
use super::types::{ActionId, ActionState, NewAction, Outcome};

/// What [`begin_send`] needs to know about the mail about to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendStart {
    /// The account that sends (the daily cap is per account).
    pub account: String,
    /// The action's kind, "reply", "forward" or "send", recorded in the reply log.
    pub kind: String,
    /// For a reply: at most one per sender per period. `None` for forwards and new messages.
    pub once_per: Option<OncePer>,
    /// At most this many messages per account in any 24 hours (`daily_send_limit`).
    pub daily_limit: u32,
    /// For a forward: at most this many forwards to `recipient` in any hour (`forward_rate`).
    /// `None` for replies and new messages.
    pub forward_rate: Option<u32>,
    /// Where the mail goes (the first recipient), recorded in the reply log.
    pub recipient: String,
    /// Now: the send's time in the reply log, and the end of the 24 hours counted.
    pub now: DateTime<Utc>,
}

/// The "one reply per sender per rule handle per `days`" memory of a reply (RFC 3834, Sieve
/// vacation's `:days` and `:handle`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OncePer {
    /// What the memory is kept under: the rule's handle.
    pub handle: String,
    /// The sender replied to, normalized by the caller (compared exactly).
    pub sender: String,
    /// The period, in days.
    pub days: u32,
}

/// Whether the SMTP transaction may begin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendGate {
    /// Yes: the action is `sending` and the send is in the reply log.
    Go,
    /// No: this sender got a reply for this handle within the period; the action is `suppressed`.
    AlreadyReplied {
        /// When that reply was sent.
        at: DateTime<Utc>,
    },
    /// No: the account forwarded `forward_rate` messages to this destination in the last hour;
    /// the action is `suppressed` (a loop, most likely) and does not count towards the daily cap.
    OverForwardRate {
        /// How many forwards went to the destination in the last hour.
        sent: u64,
        /// The rate.
        limit: u32,
    },
    /// No: the account sent its daily limit in the last 24 hours; the action is `failed`, with
    /// a reason that says how to retry it.
    OverDailyLimit {
        /// How many the account sent in the last 24 hours.
        sent: u64,
        /// The limit.
        limit: u32,
    },
}

fn error(verb: &'static str, id: ActionId) -> impl Fn(rusqlite::Error) -> Error {
    move |source| Error::Action { verb, id, source }
}

/// Why [`begin_send`] refuses an action that is not claimed.
pub(super) const ONLY_CLAIMED: &str = "only a claimed (in_flight) action can be sent";
/// Why [`abort_send`] refuses an action that is not sending.
pub(super) const ONLY_SENDING_ABORTED: &str = "only a sending action can be aborted";
/// Why [`mark_uncertain`] refuses an action that is not sending.
pub(super) const ONLY_SENDING_UNCERTAIN: &str = "only a sending action can become uncertain";

/// Whether a reply at `at` to the sender of `once` stops one at `now` (both backends).
pub(super) fn within_period(once: &OncePer, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    at > now - Duration::days(i64::from(once.days))
}

/// Why a reply was suppressed: the sender got one at `at`.
pub(super) fn already_replied(once: &OncePer, at: DateTime<Utc>) -> String {
    format!(
        "already replied to {} at {} (at most one reply per {} day{} for handle {:?})",
        once.sender,
        at.format("%Y-%m-%d %H:%M:%S UTC"),
        once.days,
        if once.days == 1 { "" } else { "s" },
        once.handle,
    )
}

/// Why action `id` failed: its account sent `sent` messages in the last 24 hours; says how to
/// retry it.
pub(super) fn over_daily_limit(id: ActionId, start: &SendStart, sent: u64) -> String {
    format!(
        "daily send limit reached: account {} sent {sent} messages in the 24 hours before {} \
         (daily_send_limit {}); retry with `tidings outbox retry {id}` once it sent fewer, or raise the limit",
        start.account,
        start.now.format("%Y-%m-%d %H:%M:%S UTC"),
        start.daily_limit,
    )
}

/// Why a forward was suppressed: `sent` forwards went to its destination in the last hour.
pub(super) fn over_forward_rate(start: &SendStart, sent: u64, limit: u32) -> String {
    format!(
        "forward rate reached: account {} forwarded {sent} messages to {} in the hour before {} (forward_rate {limit}); \
         a forwarding loop, most likely. Not sent, and not counted against daily_send_limit",
        start.account,
        start.recipient,
        start.now.format("%Y-%m-%d %H:%M:%S UTC"),
    )
}

/// The start of the hour the forward rate counts.
pub(super) fn hour_before(start: &SendStart) -> DateTime<Utc> {
    start.now - Duration::hours(1)
}

/// The `(handle, sender)` of a send's reply-log row: a reply's handle and sender, or no handle
/// and the recipient of a forward or a new message.
pub(super) fn log_entry(start: &SendStart) -> (&str, &str) {
    match &start.once_per {
        Some(once) => (once.handle.as_str(), once.sender.as_str()),
        None => ("", start.recipient.as_str()),
    }
}

/// Until when the reply-log row of this send is needed (see `retention::keep_until`).
pub(super) fn log_keep_until(start: &SendStart) -> DateTime<Utc> {
    super::retention::keep_until(start.now, start.once_per.as_ref().map(|once| once.days))
}

/// The start of the 24 hours the daily cap counts.
pub(super) fn day_before(start: &SendStart) -> DateTime<Utc> {
    start.now - Duration::hours(24)
}

/// The gate in front of an SMTP transaction; see the module documentation.
pub(super) fn begin_send(conn: &mut Connection, id: ActionId, start: &SendStart) -> Result<SendGate, Error> {
    const VERB: &str = "begin sending";
    let sql_error = error(VERB, id);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql_error)?;
    let found = outbox::state_of(&tx, id).map_err(&sql_error)?;
    if found != Some(ActionState::InFlight) {
        return Err(Error::WrongState { verb: VERB, id, found, allowed: ONLY_CLAIMED });
    }
    if let Some(once) = &start.once_per
        && let Some(at) = last_reply(&tx, id, start, once).map_err(&sql_error)?
        && within_period(once, at, start.now)
    {
        settle(&tx, id, &Outcome::Suppressed { reason: already_replied(once, at) })?;
        tx.commit().map_err(&sql_error)?;
        return Ok(SendGate::AlreadyReplied { at });
    }
    if let Some(limit) = start.forward_rate {
        let sent = forwarded_in_last_hour(&tx, id, start).map_err(&sql_error)?;
        if sent >= u64::from(limit) {
            settle(&tx, id, &Outcome::Suppressed { reason: over_forward_rate(start, sent, limit) })?;
            tx.commit().map_err(&sql_error)?;
            return Ok(SendGate::OverForwardRate { sent, limit });
        }
    }
    let sent = sent_in_last_day(&tx, id, start).map_err(&sql_error)?;
    if sent >= u64::from(start.daily_limit) {
        settle(&tx, id, &Outcome::Failed { error: over_daily_limit(id, start, sent) })?;
        tx.commit().map_err(&sql_error)?;
        return Ok(SendGate::OverDailyLimit { sent, limit: start.daily_limit });
    }
    log_send(&tx, id, start).map_err(&sql_error)?;
    tx.execute("UPDATE actions SET state = 'sending', updated_at = ?2 WHERE id = ?1", (id, Millis(Utc::now())))
        .map_err(&sql_error)?;
    tx.commit().map_err(&sql_error)?;
    Ok(SendGate::Go)
}

/// The last reply to `once.sender` under `once.handle`, other than this action's own (a row it
/// left when it turned uncertain and a person retried it).
fn last_reply(
    conn: &Connection,
    id: ActionId,
    start: &SendStart,
    once: &OncePer,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    conn.prepare_cached(
        "SELECT MAX(sent_at) FROM reply_log WHERE account = ?1 AND kind = ?2 AND handle = ?3 AND sender = ?4 \
         AND action_id IS NOT ?5",
    )?
    .query_row((&start.account, &start.kind, &once.handle, &once.sender, id), |row| row.get::<_, Option<Millis>>(0))
    .map(|at| at.map(|m| m.0))
}

/// How many messages the account sent in the 24 hours before `start.now`, this action aside.
fn sent_in_last_day(conn: &Connection, id: ActionId, start: &SendStart) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT COUNT(*) FROM reply_log WHERE account = ?1 AND sent_at > ?2 AND action_id IS NOT ?3")?
        .query_row((&start.account, Millis(day_before(start)), id), |row| codec::count(row, 0))
}

/// How many forwards the account sent to `start.recipient` in the hour before `start.now`,
/// this action aside (forwards are logged with no handle).
fn forwarded_in_last_hour(conn: &Connection, id: ActionId, start: &SendStart) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM reply_log WHERE account = ?1 AND handle = '' AND sender = ?2 AND kind = 'forward' \
         AND sent_at > ?3 AND action_id IS NOT ?4",
    )?
    .query_row((&start.account, &start.recipient, Millis(hour_before(start)), id), |row| codec::count(row, 0))
}

/// Writes the reply-log row of this send: one per action, replacing an earlier attempt's.
fn log_send(conn: &Connection, id: ActionId, start: &SendStart) -> rusqlite::Result<()> {
    let (handle, sender) = log_entry(start);
    conn.prepare_cached("DELETE FROM reply_log WHERE action_id = ?1")?.execute([id])?;
    conn.prepare_cached(
        "INSERT INTO reply_log (account, handle, sender, sent_at, action_id, kind, keep_until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute((
        &start.account,
        handle,
        sender,
        Millis(start.now),
        id,
        &start.kind,
        Millis(log_keep_until(start)),
    ))?;
    Ok(())
}

/// Applies an outcome to the in-flight action being gated.
fn settle(conn: &Connection, id: ActionId, outcome: &Outcome) -> Result<(), Error> {
    // The state was read in this transaction, under the write lock: it is still in flight.
    outbox::set_outcome(conn, id, outcome, &[ActionState::InFlight]).map(drop)
}

/// The server refused the mail (a 4xx or 5xx reply), so nothing was sent: records `outcome`
/// (a retry or a failure) and takes the send's reply-log row back, so that it neither counts
/// towards the cap nor stops a later reply to the sender.
pub(super) fn abort_send(conn: &mut Connection, id: ActionId, outcome: &Outcome) -> Result<(), Error> {
    const VERB: &str = "abort sending";
    let sql_error = error(VERB, id);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql_error)?;
    if !outbox::set_outcome(&tx, id, outcome, &[ActionState::Sending])? {
        let found = outbox::state_of(&tx, id).map_err(&sql_error)?;
        return Err(Error::WrongState { verb: VERB, id, found, allowed: ONLY_SENDING_ABORTED });
    }
    tx.execute("DELETE FROM reply_log WHERE action_id = ?1", [id]).map_err(&sql_error)?;
    tx.commit().map_err(&sql_error)
}

/// The connection failed during the SMTP transaction: the mail may or may not be out. The
/// action becomes uncertain (never resent automatically) and its reply-log row stays.
pub(super) fn mark_uncertain(conn: &Connection, id: ActionId, error_text: &str) -> Result<(), Error> {
    const VERB: &str = "mark uncertain";
    let changed = conn
        .prepare_cached(
            "UPDATE actions SET state = 'uncertain', last_error = ?2, updated_at = ?3 \
             WHERE id = ?1 AND state = 'sending'",
        )
        .and_then(|mut stmt| stmt.execute((id, error_text, Millis(Utc::now()))))
        .map_err(error(VERB, id))?;
    if changed == 0 {
        let found = outbox::state_of(conn, id).map_err(error(VERB, id))?;
        return Err(Error::WrongState { verb: VERB, id, found, allowed: ONLY_SENDING_UNCERTAIN });
    }
    Ok(())
}

/// Marks an in-flight or sending action done and stores its follow-up (saving a sent message
/// in the Sent folder) in the same transaction: a crash between the two cannot lose the copy.
/// Returns the follow-up's id, `None` without one or when its key was already stored.
pub(super) fn complete_with(
    conn: &mut Connection,
    id: ActionId,
    follow_up: Option<&NewAction>,
) -> Result<Option<ActionId>, Error> {
    let sql_error = error("complete", id);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&sql_error)?;
    if !outbox::set_outcome(&tx, id, &Outcome::Done, &[ActionState::InFlight, ActionState::Sending])? {
        return Err(Error::NotInFlight { id });
    }
    let inserted = match follow_up {
        Some(new) => outbox::insert_all(&tx, std::slice::from_ref(new), Utc::now()).map_err(&sql_error)?,
        None => Vec::new(),
    };
    tx.commit().map_err(&sql_error)?;
    Ok(inserted.first().copied())
}

/// The reply-log row of action `id`, if it has one: `(sender, sent_at)`.
#[cfg(test)]
pub(super) fn logged(conn: &Connection, id: ActionId) -> rusqlite::Result<Option<(String, DateTime<Utc>)>> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT sender, sent_at FROM reply_log WHERE action_id = ?1", [id], |row| {
        Ok((row.get(0)?, row.get::<_, Millis>(1)?.0))
    })
    .optional()
}
