//! The action outbox on PostgreSQL: inserting planned actions, claiming due ones, recording
//! outcomes; the same state machine as on SQLite (see `store::outbox`).
//!
//! Several instances claim from one table: a claim locks the rows it takes with `FOR UPDATE
//! SKIP LOCKED`, so two claims never take the same action and never wait for each other. Every
//! write for an action locks its row and, in a fleet member, is fenced by the lease of its
//! account ([`PgStore::fence_action`]): an instance that lost an account cannot settle its
//! actions any more. A fleet member claims and recovers only the accounts it holds.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use tokio_postgres::{GenericClient, Row, Transaction};

use super::codec::{Millis, Unsigned, names};
use super::{PgStore, db};
use crate::store::outbox::outcome_columns;
use crate::store::retention::SETTLED;
use crate::store::retention::SLIM_PG as SLIM;
use crate::store::{Action, ActionId, ActionState, Error, NewAction, OutboxCounts, OutboxGroup, Outcome, Result};

/// The columns [`action`] reads, in its order.
pub(super) const COLUMNS: &str = "id, idempotency_key, account, mailbox, uidvalidity, uid, kind, payload, \
                       state, attempts, next_attempt_at, claimed_at, last_error, created_at, \
                       updated_at, rule";

/// An action from a row of [`COLUMNS`].
pub(super) fn action(row: &Row) -> std::result::Result<Action, tokio_postgres::Error> {
    Ok(Action {
        id: ActionId(row.try_get(0)?),
        key: row.try_get(1)?,
        account: row.try_get(2)?,
        mailbox: row.try_get(3)?,
        uidvalidity: row.try_get::<_, Option<Unsigned<u32>>>(4)?.map(|u| u.0),
        uid: row.try_get::<_, Option<Unsigned<u32>>>(5)?.map(|u| u.0),
        kind: row.try_get(6)?,
        payload: row.try_get(7)?,
        state: row.try_get(8)?,
        attempts: row.try_get::<_, Unsigned<u32>>(9)?.0,
        next_attempt_at: row.try_get::<_, Millis>(10)?.0,
        claimed_at: row.try_get::<_, Option<Millis>>(11)?.map(|m| m.0),
        last_error: row.try_get(12)?,
        created_at: row.try_get::<_, Millis>(13)?.0,
        updated_at: row.try_get::<_, Millis>(14)?.0,
        rule: row.try_get(15)?,
    })
}

/// The actions of `rows`.
pub(super) fn actions(rows: &[Row]) -> std::result::Result<Vec<Action>, tokio_postgres::Error> {
    rows.iter().map(action).collect()
}

/// Inserts `actions` as pending, in one statement; a key already stored (or twice in
/// `actions`) is skipped. Returns the ids of the rows inserted, in the order of `actions`.
/// Runs inside the caller's transaction (and its fence).
pub(super) async fn insert_all(
    tx: &impl GenericClient,
    actions: &[NewAction],
    now: DateTime<Utc>,
) -> std::result::Result<Vec<ActionId>, tokio_postgres::Error> {
    if actions.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: fn(&NewAction) -> Option<&str>| actions.iter().map(f).collect::<Vec<_>>();
    let number = |f: fn(&NewAction) -> Option<u32>| actions.iter().map(|a| f(a).map(i64::from)).collect::<Vec<_>>();
    let keys = column(|a| Some(&a.key));
    let accounts = column(|a| Some(&a.account));
    let mailboxes = column(|a| a.mailbox.as_deref());
    let kinds = column(|a| Some(&a.kind));
    let rules = column(|a| a.rule.as_deref());
    let (uidvalidities, uids) = (number(|a| a.uidvalidity), number(|a| a.uid));
    let payloads: Vec<&serde_json::Value> = actions.iter().map(|a| &a.payload).collect();
    let due: Vec<i64> = actions.iter().map(|a| a.not_before.unwrap_or(now).timestamp_millis()).collect();
    let rows = tx
        .query(
            "INSERT INTO actions (idempotency_key, account, mailbox, uidvalidity, uid, kind, payload, state, \
                                  attempts, next_attempt_at, created_at, updated_at, rule) \
             SELECT k, a, m, v, u, kind, p, 'pending', 0, due, $10, $10, r \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::jsonb[], \
                         $8::int8[], $9::text[]) WITH ORDINALITY AS n (k, a, m, v, u, kind, p, due, r, ord) \
             ORDER BY ord \
             ON CONFLICT (idempotency_key) DO NOTHING \
             RETURNING id",
            &[
                &keys,
                &accounts,
                &mailboxes,
                &uidvalidities,
                &uids,
                &kinds,
                &payloads,
                &due,
                &rules,
                &now.timestamp_millis(),
            ],
        )
        .await?;
    let mut ids = rows.iter().map(|row| row.try_get(0).map(ActionId)).collect::<std::result::Result<Vec<_>, _>>()?;
    // Identities are drawn in the order the rows go in, which is the order of `actions`.
    ids.sort();
    Ok(ids)
}

/// A transaction on a pooled connection, as tokio-postgres's own (which [`PgStore::fence`]
/// and the statements here take; the pool's wrapper is not a `GenericClient`).
pub(super) async fn begin(client: &mut Object) -> std::result::Result<Transaction<'_>, tokio_postgres::Error> {
    let client: &mut tokio_postgres::Client = client;
    client.transaction().await
}

/// Which pending actions a claim may take.
struct Filter<'a> {
    /// Only these accounts' actions; `None`: every account's.
    accounts: Option<&'a [String]>,
    /// Only these kinds; `None`: every kind.
    kinds: Option<&'a [String]>,
}

/// Applies `outcome` to action `id` if it is in one of the states `from`; returns whether it was.
pub(super) async fn set_outcome(
    tx: &impl GenericClient,
    id: ActionId,
    outcome: &Outcome,
    from: &[ActionState],
) -> Result<bool> {
    let (state, next_attempt_at, error_text) = outcome_columns(outcome);
    // A settled action's content goes in the same statement (see `store::retention`).
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE actions SET state = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at), \
             last_error = COALESCE($4, last_error), \
             payload = CASE WHEN $2 IN ({SETTLED}) THEN {slim} ELSE payload END, \
             claimed_at = NULL, updated_at = $5 \
             WHERE id = $1 AND state = ANY($6)",
            slim = *SLIM,
        )
    });
    let changed = tx
        .execute(
            SQL.as_str(),
            &[
                &id.0,
                &state.as_str(),
                &next_attempt_at.map(|t| t.timestamp_millis()),
                &error_text,
                &Utc::now().timestamp_millis(),
                &names(from),
            ],
        )
        .await
        .map_err(db(|| format!("record outcome of action {id}")))?;
    Ok(changed > 0)
}

/// The state of action `id`, `None` if there is no such action.
pub(super) async fn state_of(tx: &impl GenericClient, id: ActionId) -> Result<Option<ActionState>> {
    let row = tx
        .query_opt("SELECT state FROM actions WHERE id = $1", &[&id.0])
        .await
        .map_err(db(|| format!("read action {id}")))?;
    row.map(|row| row.try_get(0)).transpose().map_err(db(|| format!("read action {id}")))
}

/// `values` as a parameter for `($n::text[] IS NULL OR column = ANY($n))`: `None` is NULL,
/// any value.
fn text_array(values: Option<&[String]>) -> Option<Vec<&str>> {
    values.map(|v| v.iter().map(String::as_str).collect())
}

impl PgStore {
    /// Claims up to `limit` pending actions due at `now`: marks them in flight (claimed at
    /// `now`, attempts + 1) and returns them, soonest due first. A fleet member claims only
    /// the accounts it holds.
    pub(crate) async fn claim_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Action>> {
        let held = self.held();
        let what = || "claim due actions".to_owned();
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        let claimed = claim(&tx, Filter { accounts: held.as_deref(), kinds: None }, now, limit, what).await?;
        let accounts: BTreeSet<&str> = claimed.iter().map(|a| a.account.as_str()).collect();
        for account in accounts {
            self.fence(&tx, account).await?;
        }
        tx.commit().await.map_err(db(what))?;
        Ok(claimed)
    }

    /// Like [`PgStore::claim_due`], for one account's actions of the given `kinds` only; in a
    /// fleet member, only while it holds the account's lease.
    pub(crate) async fn claim_due_for(
        &self,
        account: &str,
        kinds: &[&str],
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Action>> {
        let what = || format!("claim due actions of account {account}");
        let accounts = [account.to_owned()];
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        self.fence(&tx, account).await?;
        let claimed = claim(&tx, Filter { accounts: Some(&accounts), kinds: Some(&kinds) }, now, limit, what).await?;
        tx.commit().await.map_err(db(what))?;
        Ok(claimed)
    }

    /// When the next pending action of `account` of the given `kinds` is due, if any.
    pub(crate) async fn next_due(&self, account: &str, kinds: &[&str]) -> Result<Option<DateTime<Utc>>> {
        let what = || format!("find the next due action of account {account}");
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT MIN(next_attempt_at) FROM actions WHERE state = 'pending' AND account = $1 \
                 AND kind = ANY($2)",
                &[&account, &kinds],
            )
            .await
            .map_err(db(what))?;
        Ok(row.try_get::<_, Option<Millis>>(0).map_err(db(what))?.map(|m| m.0))
    }

    /// Puts an uncertain action back to pending (only for actions safe to run twice).
    pub(crate) async fn requeue_uncertain(&self, id: ActionId) -> Result<()> {
        let what = || format!("requeue action {id}");
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        self.fence_action(&tx, id).await?;
        let changed = tx
            .execute(
                "UPDATE actions SET state = 'pending', claimed_at = NULL, updated_at = $2 \
                 WHERE id = $1 AND state = 'uncertain'",
                &[&id.0, &Utc::now().timestamp_millis()],
            )
            .await
            .map_err(db(what))?;
        if changed == 0 {
            return Err(Error::NotInFlight { id });
        }
        tx.commit().await.map_err(db(what))
    }

    /// Records what came of running an in-flight (or sending) action; [`Error::NotInFlight`]
    /// otherwise.
    pub(crate) async fn record_outcome(&self, id: ActionId, outcome: Outcome) -> Result<()> {
        self.record_outcomes(vec![(id, outcome)]).await
    }

    /// Records the outcomes of several in-flight (or sending) actions at once: all or none.
    pub(crate) async fn record_outcomes(&self, outcomes: Vec<(ActionId, Outcome)>) -> Result<()> {
        let what = || match outcomes.as_slice() {
            [(id, _)] => format!("record outcome of action {id}"),
            _ => {
                let ids: Vec<String> = outcomes.iter().map(|(id, _)| id.to_string()).collect();
                format!("record the outcomes of actions {}", ids.join(", "))
            }
        };
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        for (id, outcome) in &outcomes {
            self.fence_action(&tx, *id).await?;
            if !set_outcome(&tx, *id, outcome, &[ActionState::InFlight, ActionState::Sending]).await? {
                return Err(Error::NotInFlight { id: *id });
            }
        }
        tx.commit().await.map_err(db(what))
    }

    /// Settles the actions a previous run left claimed, and returns them in their new state:
    /// mail that was `in_flight` (its SMTP transaction had not begun) is pending again; mail
    /// that was `sending`, and every other kind in flight, is uncertain. A fleet member settles
    /// only the accounts it holds.
    ///
    /// Call once at start-up, before any claim, and only in the process that runs the
    /// executors: an action claimed by a live executor would be taken from it too.
    pub(crate) async fn recover_in_flight(&self) -> Result<Vec<Action>> {
        self.recover(self.held()).await
    }

    /// [`PgStore::recover_in_flight`] for the actions of `account` only (a fleet member that
    /// took the account over).
    pub(crate) async fn recover_in_flight_of(&self, account: &str) -> Result<Vec<Action>> {
        self.recover(Some(vec![account.to_owned()])).await
    }

    /// Settles what is claimed of `accounts` (`None`: of every account), each account fenced.
    async fn recover(&self, accounts: Option<Vec<String>>) -> Result<Vec<Action>> {
        let what = || match accounts.as_deref() {
            Some([account]) => format!("recover in-flight actions of account {account}"),
            Some(accounts) => format!("recover in-flight actions of accounts {}", accounts.join(", ")),
            None => "recover in-flight actions".to_owned(),
        };
        let mut client = self.client().await?;
        let tx = begin(&mut client).await.map_err(db(what))?;
        for account in accounts.iter().flatten() {
            self.fence(&tx, account).await?;
        }
        let sql = format!(
            "UPDATE actions SET \
                 state = CASE WHEN state = 'in_flight' AND kind = ANY($2) THEN 'pending' ELSE 'uncertain' END, \
                 claimed_at = CASE WHEN state = 'in_flight' AND kind = ANY($2) THEN NULL ELSE claimed_at END, \
                 updated_at = $1 \
             WHERE state IN ('in_flight', 'sending') AND ($3::text[] IS NULL OR account = ANY($3)) \
             RETURNING {COLUMNS}"
        );
        let params = text_array(accounts.as_deref());
        let rows = tx
            .query(&sql, &[&Utc::now().timestamp_millis(), &crate::plan::MAIL_KINDS, &params])
            .await
            .map_err(db(what))?;
        let mut recovered = actions(&rows).map_err(db(what))?;
        tx.commit().await.map_err(db(what))?;
        recovered.sort_by_key(|a| a.id);
        Ok(recovered)
    }

    /// One action by id.
    pub(crate) async fn action(&self, id: ActionId) -> Result<Option<Action>> {
        let what = || format!("read action {id}");
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {COLUMNS} FROM actions WHERE id = $1"), &[&id.0])
            .await
            .map_err(db(what))?;
        row.as_ref().map(action).transpose().map_err(db(what))
    }

    /// How many actions are in each state.
    pub(crate) async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let what = || "count the outbox".to_owned();
        let client = self.client().await?;
        let rows = client.query("SELECT state, COUNT(*) FROM actions GROUP BY state", &[]).await.map_err(db(what))?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let state: ActionState = row.try_get(0).map_err(db(what))?;
            *counts.slot(state) = row.try_get::<_, Unsigned<u64>>(1).map_err(db(what))?.0;
        }
        Ok(counts)
    }

    /// Up to `limit` actions in `state` (`None`: any state), newest first.
    pub(crate) async fn list_outbox(&self, state: Option<ActionState>, limit: usize) -> Result<Vec<Action>> {
        let states = match state {
            Some(state) => vec![state],
            None => ActionState::ALL.to_vec(),
        };
        self.list_outbox_in(&states, limit).await
    }

    /// Up to `limit` actions in any of `states`, newest first.
    pub(crate) async fn list_outbox_in(&self, states: &[ActionState], limit: usize) -> Result<Vec<Action>> {
        let what = || "list the outbox".to_owned();
        let client = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM actions WHERE state = ANY($1) ORDER BY id DESC LIMIT $2");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client.query(&sql, &[&names(states), &limit]).await.map_err(db(what))?;
        actions(&rows).map_err(db(what))
    }

    /// Actions in any of `states` counted by account, kind and state, with the oldest due time
    /// of the pending ones.
    pub(crate) async fn outbox_groups_in(&self, states: &[ActionState]) -> Result<Vec<OutboxGroup>> {
        let what = || "count the outbox by account, kind and state".to_owned();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT account, kind, state, COUNT(*), MIN(CASE WHEN state = 'pending' THEN next_attempt_at END) \
                 FROM actions WHERE state = ANY($1) \
                 GROUP BY account, kind, state ORDER BY account, kind, state",
                &[&names(states)],
            )
            .await
            .map_err(db(what))?;
        let group = |row: &Row| -> std::result::Result<OutboxGroup, tokio_postgres::Error> {
            Ok(OutboxGroup {
                account: row.try_get(0)?,
                kind: row.try_get(1)?,
                state: row.try_get(2)?,
                count: row.try_get::<_, Unsigned<u64>>(3)?.0,
                oldest_due: row.try_get::<_, Option<Millis>>(4)?.map(|m| m.0),
            })
        };
        rows.iter().map(group).collect::<std::result::Result<_, _>>().map_err(db(what))
    }
}

/// Marks up to `limit` pending actions due at `now` that `filter` accepts in flight and returns
/// them, soonest due first. Rows another claim holds are skipped, not waited for.
async fn claim(
    tx: &impl GenericClient,
    filter: Filter<'_>,
    now: DateTime<Utc>,
    limit: usize,
    what: impl Fn() -> String,
) -> Result<Vec<Action>> {
    let sql = format!(
        "WITH picked AS ( \
             SELECT id FROM actions WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND ($3::text[] IS NULL OR account = ANY($3)) \
             AND ($4::text[] IS NULL OR kind = ANY($4)) \
             ORDER BY next_attempt_at, id LIMIT $2 \
             FOR UPDATE SKIP LOCKED) \
         UPDATE actions SET state = 'in_flight', claimed_at = $1, attempts = attempts + 1, updated_at = $1 \
         FROM picked WHERE actions.id = picked.id \
         RETURNING {}",
        qualified(COLUMNS, "actions")
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let accounts = text_array(filter.accounts);
    let kinds = text_array(filter.kinds);
    let rows = tx.query(&sql, &[&now.timestamp_millis(), &limit, &accounts, &kinds]).await.map_err(db(&what))?;
    let mut claimed = actions(&rows).map_err(db(&what))?;
    // RETURNING yields rows in no promised order.
    claimed.sort_by_key(|a| (a.next_attempt_at, a.id));
    Ok(claimed)
}

/// `columns` (comma-separated) each prefixed with `table.`, where a join makes a bare name
/// ambiguous.
fn qualified(columns: &str, table: &str) -> String {
    columns.split(',').map(|c| format!("{table}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}
