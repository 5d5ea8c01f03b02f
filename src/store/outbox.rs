//! The action outbox: inserting planned actions, claiming due ones, recording outcomes.
//!
//! States move only along: pending -> in_flight (claim, attempts + 1) -> done | failed |
//! suppressed | pending (retry); mail goes in_flight -> sending right before its SMTP
//! transaction (see `sending`). At start-up, actions a crash left claimed become uncertain
//! (they may or may not have run), except mail that never reached `sending`, which is pending
//! again: nothing left the machine yet. Only an executor, or a person (see `by_hand`), moves
//! an uncertain action back to pending, which is what keeps "at most once" true.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row};

use super::codec::{self, Millis};
use super::error::Error;
use super::retention::{SETTLED, SLIM};
use super::types::{Action, ActionId, ActionState, NewAction, OutboxCounts, Outcome};

pub(super) const COLUMNS: &str = "id, idempotency_key, account, mailbox, uidvalidity, uid, kind, payload, \
                       state, attempts, next_attempt_at, claimed_at, last_error, created_at, \
                       updated_at, rule";

pub(super) fn action(row: &Row<'_>) -> rusqlite::Result<Action> {
    Ok(Action {
        id: row.get(0)?,
        key: row.get(1)?,
        account: row.get(2)?,
        mailbox: row.get(3)?,
        uidvalidity: row.get(4)?,
        uid: row.get(5)?,
        kind: row.get(6)?,
        payload: codec::json(row, 7)?,
        state: row.get(8)?,
        attempts: row.get(9)?,
        next_attempt_at: row.get::<_, Millis>(10)?.0,
        claimed_at: row.get::<_, Option<Millis>>(11)?.map(|m| m.0),
        last_error: row.get(12)?,
        created_at: row.get::<_, Millis>(13)?.0,
        updated_at: row.get::<_, Millis>(14)?.0,
        rule: row.get(15)?,
    })
}

/// An action as `SELECT {COLUMNS}` reads it through the seam.
pub(super) fn read_action(row: &super::sql::Row) -> Result<Action, super::sql::DbError> {
    Ok(Action {
        id: row.get(0)?,
        key: row.get(1)?,
        account: row.get(2)?,
        mailbox: row.get(3)?,
        uidvalidity: row.get(4)?,
        uid: row.get(5)?,
        kind: row.get(6)?,
        payload: row.get(7)?,
        state: row.get(8)?,
        attempts: row.get(9)?,
        next_attempt_at: row.get(10)?,
        claimed_at: row.get(11)?,
        last_error: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
        rule: row.get(15)?,
    })
}

/// Inserts `actions` as pending; a key already stored is skipped. Returns the ids of the
/// rows inserted. Runs inside the caller's transaction.
pub(super) fn insert_all(
    conn: &Connection,
    actions: &[NewAction],
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<ActionId>> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO actions (idempotency_key, account, mailbox, uidvalidity, uid, kind, \
         payload, state, attempts, next_attempt_at, created_at, updated_at, rule) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?9, ?9, ?10) \
         ON CONFLICT (idempotency_key) DO NOTHING \
         RETURNING id",
    )?;
    let mut ids = Vec::with_capacity(actions.len());
    for new in actions {
        let id: Option<ActionId> = insert
            .query_row(
                (
                    &new.key,
                    &new.account,
                    &new.mailbox,
                    new.uidvalidity,
                    new.uid,
                    &new.kind,
                    new.payload.to_string(),
                    Millis(new.not_before.unwrap_or(now)),
                    Millis(now),
                    &new.rule,
                ),
                |row| row.get(0),
            )
            .optional()?;
        ids.extend(id);
    }
    Ok(ids)
}

/// Which pending actions a claim may take: one account's, and of it only some kinds (an
/// executor claims only what it can run: the IMAP one leaves replies and webhooks alone).
#[derive(Clone, Copy, Debug)]
pub(super) struct Filter<'a> {
    /// Only this account's actions; `None`: every account's.
    pub account: Option<&'a str>,
    /// Only these kinds; `None`: every kind.
    pub kinds: Option<&'a [String]>,
}

/// The kinds as a JSON array for `json_each`, or NULL for any kind.
fn kinds_json(kinds: Option<&[String]>) -> Option<String> {
    kinds.map(|k| serde_json::Value::from(k.to_vec()).to_string())
}

/// Marks up to `limit` pending actions due at `now` that `filter` accepts in flight and returns
/// them, soonest due first.
pub(super) fn claim_due(
    conn: &Connection,
    filter: Filter<'_>,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Action>, Error> {
    let error = |source: rusqlite::Error| Error::Outbox { verb: "claim due actions in", source: source.into() };
    // One statement, so the select and the update are atomic without a transaction.
    let sql = format!(
        "UPDATE actions SET state = 'in_flight', claimed_at = ?1, attempts = attempts + 1, \
         updated_at = ?1 \
         WHERE id IN (SELECT id FROM actions WHERE state = 'pending' AND next_attempt_at <= ?1 \
                      AND (?3 IS NULL OR account = ?3) \
                      AND (?4 IS NULL OR kind IN (SELECT value FROM json_each(?4))) \
                      ORDER BY next_attempt_at, id LIMIT ?2) \
         RETURNING {COLUMNS}"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let kinds = kinds_json(filter.kinds);
    let mut claimed: Vec<Action> = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_map((Millis(now), limit, filter.account, kinds), action)?.collect())
        .map_err(error)?;
    sort_by_due(&mut claimed);
    Ok(claimed)
}

// RETURNING yields rows in no promised order.
fn sort_by_due(actions: &mut [Action]) {
    actions.sort_by_key(|a| (a.next_attempt_at, a.id));
}

/// Records the outcomes of several in-flight (or sending) actions in one transaction (one
/// sync to disk).
pub(super) fn record_outcomes(conn: &mut Connection, outcomes: &[(ActionId, Outcome)]) -> Result<(), Error> {
    let tx =
        conn.transaction().map_err(|source| Error::Outbox { verb: "record outcomes in", source: source.into() })?;
    for (id, outcome) in outcomes {
        record_outcome(&tx, *id, outcome)?;
    }
    tx.commit().map_err(|source| Error::Outbox { verb: "record outcomes in", source: source.into() })
}

/// Records what came of an in-flight or sending action.
pub(super) fn record_outcome(conn: &Connection, id: ActionId, outcome: &Outcome) -> Result<(), Error> {
    if set_outcome(conn, id, outcome, &[ActionState::InFlight, ActionState::Sending])? {
        Ok(())
    } else {
        Err(Error::NotInFlight { id })
    }
}

/// Applies `outcome` to action `id` if it is in one of the states `from`; returns whether it was.
pub(super) fn set_outcome(
    conn: &Connection,
    id: ActionId,
    outcome: &Outcome,
    from: &[ActionState],
) -> Result<bool, Error> {
    let (state, next_attempt_at, error_text) = outcome_columns(outcome);
    let next_attempt_at = next_attempt_at.map(Millis);
    // A settled action's content goes in the same statement (see `retention`).
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE actions SET state = ?2, \
             next_attempt_at = COALESCE(?3, next_attempt_at), \
             last_error = COALESCE(?4, last_error), \
             payload = CASE WHEN ?2 IN ({SETTLED}) THEN {slim} ELSE payload END, \
             claimed_at = NULL, updated_at = ?5 \
             WHERE id = ?1 AND state IN (SELECT value FROM json_each(?6))",
            slim = *SLIM,
        )
    });
    let changed = conn
        .prepare_cached(&SQL)
        .and_then(|mut stmt| {
            stmt.execute((id, state, next_attempt_at, error_text, Millis(Utc::now()), states_json(from)))
        })
        .map_err(|source| Error::Action { verb: "record outcome of", id, source })?;
    Ok(changed > 0)
}

/// What `outcome` writes (on both backends): the new state, the next attempt of a retry, and
/// the text for `last_error`; `None` leaves a column as it is.
pub(super) fn outcome_columns(outcome: &Outcome) -> (ActionState, Option<DateTime<Utc>>, Option<&str>) {
    match outcome {
        Outcome::Done => (ActionState::Done, None, None),
        Outcome::Retry { next_attempt_at, error } => {
            (ActionState::Pending, Some(*next_attempt_at), Some(error.as_str()))
        }
        Outcome::Failed { error } => (ActionState::Failed, None, Some(error.as_str())),
        Outcome::Suppressed { reason } => (ActionState::Suppressed, None, Some(reason.as_str())),
    }
}

/// States as a JSON array of their names, for `json_each`.
pub(super) fn states_json(states: &[ActionState]) -> String {
    serde_json::Value::from(states.iter().map(|s| s.as_str()).collect::<Vec<_>>()).to_string()
}

/// The state of action `id`, `None` if there is no such action.
pub(super) fn state_of(conn: &Connection, id: ActionId) -> rusqlite::Result<Option<ActionState>> {
    conn.prepare_cached("SELECT state FROM actions WHERE id = ?1")?.query_row([id], |row| row.get(0)).optional()
}

/// Settles what a crash left claimed, and returns those actions in their new state: mail still
/// `in_flight` is pending again (its SMTP transaction starts only after `sending` is on disk,
/// so nothing was sent); mail `sending` and every other kind in flight become uncertain.
/// `account`: only that account's actions (`None`: every account's).
pub(super) fn recover_in_flight(conn: &Connection, account: Option<&str>) -> Result<Vec<Action>, Error> {
    let sql = format!(
        "UPDATE actions SET \
             state = CASE WHEN state = 'in_flight' AND kind IN (SELECT value FROM json_each(?2)) \
                          THEN 'pending' ELSE 'uncertain' END, \
             claimed_at = CASE WHEN state = 'in_flight' AND kind IN (SELECT value FROM json_each(?2)) \
                          THEN NULL ELSE claimed_at END, \
             updated_at = ?1 \
         WHERE state IN ('in_flight', 'sending') AND (?3 IS NULL OR account = ?3) \
         RETURNING {COLUMNS}"
    );
    let mail_kinds = serde_json::Value::from(crate::plan::MAIL_KINDS.to_vec()).to_string();
    let mut recovered: Vec<Action> = conn
        .prepare(&sql)
        .and_then(|mut stmt| stmt.query_map((Millis(Utc::now()), mail_kinds, account), action)?.collect())
        .map_err(|source| Error::Outbox { verb: "recover in-flight actions in", source: source.into() })?;
    recovered.sort_by_key(|a| a.id);
    Ok(recovered)
}

/// Puts an uncertain action back to pending, for an executor that knows re-running it is
/// harmless (a flag store, a move of a UID that may already be gone).
pub(super) fn requeue_uncertain(conn: &Connection, id: ActionId) -> Result<(), Error> {
    let changed = conn
        .prepare_cached(
            "UPDATE actions SET state = 'pending', claimed_at = NULL, updated_at = ?2 \
             WHERE id = ?1 AND state = 'uncertain'",
        )
        .and_then(|mut stmt| stmt.execute((id, Millis(Utc::now()))))
        .map_err(|source| Error::Action { verb: "requeue", id, source })?;
    if changed == 0 {
        return Err(Error::NotInFlight { id });
    }
    Ok(())
}

/// The earliest time a pending action that `filter` accepts is due, if any.
pub(super) fn next_due(conn: &Connection, filter: Filter<'_>) -> Result<Option<DateTime<Utc>>, Error> {
    conn.prepare_cached(
        "SELECT MIN(next_attempt_at) FROM actions WHERE state = 'pending' AND (?1 IS NULL OR account = ?1) \
         AND (?2 IS NULL OR kind IN (SELECT value FROM json_each(?2)))",
    )
    .and_then(|mut stmt| {
        stmt.query_row((filter.account, kinds_json(filter.kinds)), |row| row.get::<_, Option<Millis>>(0))
    })
    .map(|m| m.map(|m| m.0))
    .map_err(|source| Error::Outbox { verb: "find the next due action in", source: source.into() })
}

/// One action by id.
pub(super) fn get(conn: &Connection, id: ActionId) -> Result<Option<Action>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM actions WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], action).optional())
        .map_err(|source| Error::Action { verb: "read", id, source })
}

/// Actions of one account, kind and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxGroup {
    /// The account.
    pub account: String,
    /// The kind ("move", "webhook", ...).
    pub kind: String,
    /// The state.
    pub state: ActionState,
    /// How many.
    pub count: u64,
    /// For pending actions: when the one due first was due.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Actions in any of `states` counted by account, kind and state (the state index narrows a
/// few states down without reading the whole table).
pub(super) fn groups(conn: &Connection, states: &[ActionState]) -> rusqlite::Result<Vec<OutboxGroup>> {
    let mut stmt = conn.prepare_cached(
        "SELECT account, kind, state, COUNT(*), MIN(CASE WHEN state = 'pending' THEN next_attempt_at END) \
         FROM actions WHERE state IN (SELECT value FROM json_each(?1)) \
         GROUP BY account, kind, state ORDER BY account, kind, state",
    )?;
    stmt.query_map([states_json(states)], |row| {
        Ok(OutboxGroup {
            account: row.get(0)?,
            kind: row.get(1)?,
            state: row.get(2)?,
            count: codec::count(row, 3)?,
            oldest_due: row.get::<_, Option<Millis>>(4)?.map(|m| m.0),
        })
    })?
    .collect()
}

/// How many actions are in each state.
pub(super) fn counts(conn: &Connection) -> Result<OutboxCounts, Error> {
    let rows: Vec<(ActionState, u64)> = conn
        .prepare_cached("SELECT state, COUNT(*) FROM actions GROUP BY state")
        .and_then(|mut stmt| stmt.query_map([], |row| Ok((row.get(0)?, codec::count(row, 1)?)))?.collect())
        .map_err(|source| Error::Outbox { verb: "count", source: source.into() })?;
    let mut counts = OutboxCounts::default();
    for (state, n) in rows {
        *counts.slot(state) = n;
    }
    Ok(counts)
}

/// Up to `limit` actions in any of `states`, newest first.
pub(super) fn list_in(conn: &Connection, states: &[ActionState], limit: usize) -> Result<Vec<Action>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM actions WHERE state IN (SELECT value FROM json_each(?1)) ORDER BY id DESC LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_map((states_json(states), limit), action)?.collect())
        .map_err(|source| Error::Outbox { verb: "list", source: source.into() })
}

/// Up to `limit` actions, in `state` or in any state, newest first.
pub(super) fn list(conn: &Connection, state: Option<ActionState>, limit: usize) -> Result<Vec<Action>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM actions WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_map((state, limit), action)?.collect())
        .map_err(|source| Error::Outbox { verb: "list", source: source.into() })
}
