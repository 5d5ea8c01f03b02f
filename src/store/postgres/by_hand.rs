//! What a person does with the outbox on PostgreSQL (`tidings outbox retry` and `drop`),
//! possibly while instances of a fleet run: each change locks the action's row and checks the
//! state it changes from, so it cannot race an executor's claim (see `store::by_hand`).

use std::collections::BTreeSet;

use chrono::Utc;
use tokio_postgres::GenericClient;

use super::codec::names;
use super::outbox::{COLUMNS, action, actions, begin, state_of};
use super::{PgStore, db};
use crate::store::by_hand::{DROPPABLE, ONLY_DROPPABLE, ONLY_RETRYABLE, RETRYABLE};
use crate::store::{Action, ActionId, ActionState, Error, Result};

/// What a retry leaves: pending, due now, with a fresh attempt count. `last_error` is kept so
/// that the listing still says why it needed one.
const TO_PENDING: &str = "state = 'pending', attempts = 0, next_attempt_at = $1, claimed_at = NULL, updated_at = $1";

impl PgStore {
    /// Puts failed or uncertain action `id` back to pending, due now, with its attempts reset;
    /// returns it. Any other state is [`Error::WrongState`].
    pub(crate) async fn retry(&self, id: ActionId) -> Result<Action> {
        self.change(id, "retry", TO_PENDING, RETRYABLE, ONLY_RETRYABLE).await
    }

    /// Puts every failed and uncertain action back to pending (in a fleet member: of the
    /// accounts it holds); returns them, oldest first.
    pub(crate) async fn retry_all(&self) -> Result<Vec<Action>> {
        let what = || "retry failed and uncertain actions".to_owned();
        let held = self.held();
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        let rows = tx
            .query(
                "SELECT id, account FROM actions WHERE state = ANY($1) \
                 AND ($2::text[] IS NULL OR account = ANY($2)) ORDER BY id FOR UPDATE",
                &[&names(RETRYABLE), &held],
            )
            .await
            .map_err(db(what))?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut accounts = BTreeSet::new();
        for row in &rows {
            ids.push(row.try_get::<_, i64>(0).map_err(db(what))?);
            accounts.insert(row.try_get::<_, String>(1).map_err(db(what))?);
        }
        for account in &accounts {
            self.fence(&tx, account).await?;
        }
        let sql = format!("UPDATE actions SET {TO_PENDING} WHERE id = ANY($2) RETURNING {COLUMNS}");
        let rows = tx.query(&sql, &[&Utc::now().timestamp_millis(), &ids]).await.map_err(db(what))?;
        let mut retried = actions(&rows).map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        retried.sort_by_key(|a| a.id);
        Ok(retried)
    }

    /// Drops pending, failed or uncertain action `id`: it is never run; returns it. Any other
    /// state is [`Error::WrongState`].
    pub(crate) async fn drop_action(&self, id: ActionId) -> Result<Action> {
        // A dropped action never runs: its content goes with it (see `store::retention`).
        let set = format!(
            "state = 'dropped', claimed_at = NULL, updated_at = $1, payload = {}",
            *crate::store::retention::SLIM_PG
        );
        self.change(id, "drop", &set, DROPPABLE, ONLY_DROPPABLE).await
    }

    /// Applies `set` (with `$1` = now) to action `id` if it is in one of the states `from`.
    async fn change(
        &self,
        id: ActionId,
        verb: &'static str,
        set: &str,
        from: &[ActionState],
        allowed: &'static str,
    ) -> Result<Action> {
        let what = || format!("{verb} action {id}");
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        self.fence_action(&tx, id).await?;
        let changed = update(&tx, id, set, from).await.map_err(db(what))?;
        match changed {
            Some(action) => {
                tx.commit().await.map_err(db(what))?;
                Ok(action)
            }
            None => {
                let found = state_of(&tx, id).await?;
                Err(Error::WrongState { verb, id, found, allowed })
            }
        }
    }
}

/// `UPDATE ... SET set` of action `id` if it is in one of the states `from`; the action as it
/// is now.
async fn update(
    tx: &impl GenericClient,
    id: ActionId,
    set: &str,
    from: &[ActionState],
) -> std::result::Result<Option<Action>, tokio_postgres::Error> {
    let sql = format!("UPDATE actions SET {set} WHERE id = $2 AND state = ANY($3) RETURNING {COLUMNS}");
    let row = tx.query_opt(&sql, &[&Utc::now().timestamp_millis(), &id.0, &names(from)]).await?;
    row.as_ref().map(action).transpose()
}
