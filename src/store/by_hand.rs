//! What a person does with the outbox (`tidings outbox retry` and `drop`), possibly while the
//! daemon runs: each change is one statement that checks the state it changes from, so it
//! cannot race an executor's claim (SQLite runs one writer at a time, and an executor only
//! takes pending actions, which a retry produces and a drop removes).

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension};

use super::codec::Millis;
use super::error::Error;
use super::outbox::{self, COLUMNS, states_json};
use super::types::{Action, ActionId, ActionState};

/// What a retry leaves: pending, due now, with a fresh attempt count. `last_error` is kept so
/// that the listing still says why it needed one.
const TO_PENDING: &str = "state = 'pending', attempts = 0, next_attempt_at = ?1, claimed_at = NULL, updated_at = ?1";

/// What a person may retry, and why anything else is refused (both backends).
pub(super) const RETRYABLE: &[ActionState] = &[ActionState::Failed, ActionState::Uncertain];
pub(super) const ONLY_RETRYABLE: &str = "only failed or uncertain actions can be retried";
/// What a person may drop, and why anything else is refused (both backends).
pub(super) const DROPPABLE: &[ActionState] = &[ActionState::Pending, ActionState::Failed, ActionState::Uncertain];
pub(super) const ONLY_DROPPABLE: &str = "only pending, failed or uncertain actions can be dropped";

/// Puts a failed or uncertain action back to pending, due now; returns it as it is now.
pub(super) fn retry(conn: &Connection, id: ActionId) -> Result<Action, Error> {
    change(conn, id, "retry", TO_PENDING, RETRYABLE, ONLY_RETRYABLE)
}

/// Puts every failed and uncertain action back to pending; returns them, oldest first.
pub(super) fn retry_all(conn: &Connection) -> Result<Vec<Action>, Error> {
    let sql =
        format!("UPDATE actions SET {TO_PENDING} WHERE state IN (SELECT value FROM json_each(?2)) RETURNING {COLUMNS}");
    let mut retried: Vec<Action> = conn
        .prepare(&sql)
        .and_then(|mut stmt| stmt.query_map((Millis(Utc::now()), states_json(RETRYABLE)), outbox::action)?.collect())
        .map_err(|source| Error::Outbox { verb: "retry failed and uncertain actions in", source: source.into() })?;
    retried.sort_by_key(|a| a.id);
    Ok(retried)
}

/// Drops a pending, failed or uncertain action: it is never run; returns it as it is now.
pub(super) fn drop_action(conn: &Connection, id: ActionId) -> Result<Action, Error> {
    // A dropped action never runs: its content goes with it (see `retention`).
    let set = format!("state = 'dropped', claimed_at = NULL, updated_at = ?1, payload = {}", *super::retention::SLIM);
    change(conn, id, "drop", &set, DROPPABLE, ONLY_DROPPABLE)
}

/// Applies `set` (with `?1` = now) to action `id` if it is in one of the states `from`.
fn change(
    conn: &Connection,
    id: ActionId,
    verb: &'static str,
    set: &str,
    from: &[ActionState],
    allowed: &'static str,
) -> Result<Action, Error> {
    let sql = format!(
        "UPDATE actions SET {set} WHERE id = ?2 AND state IN (SELECT value FROM json_each(?3)) RETURNING {COLUMNS}"
    );
    let sql_error = |source| Error::Action { verb, id, source };
    let changed = conn
        .prepare(&sql)
        .and_then(|mut stmt| stmt.query_row((Millis(Utc::now()), id, states_json(from)), outbox::action).optional())
        .map_err(sql_error)?;
    match changed {
        Some(action) => Ok(action),
        None => {
            let found = outbox::state_of(conn, id).map_err(sql_error)?;
            Err(Error::WrongState { verb, id, found, allowed })
        }
    }
}
