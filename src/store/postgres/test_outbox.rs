//! The outbox as the store tests of plans read it, on both backends.
//!
//! This branch has the PostgreSQL side of plans but not yet that of the outbox (its methods are
//! another change's, still stubs here), so on PostgreSQL these read the `actions` table
//! directly; once that change lands they are `Store::list_outbox` and `Store::outbox_counts` on
//! both, and this file goes.

use super::history::action;
use crate::store::outbox::COLUMNS;
use crate::store::{Action, ActionId, ActionState, Store};

/// Every action, oldest first.
pub(crate) async fn actions(store: &Store) -> Vec<Action> {
    let Some(pg) = store.fleet() else {
        let mut all = store.list_outbox(None, usize::MAX).await.expect("cannot list the outbox");
        all.reverse();
        return all;
    };
    let client = pg.client().await.expect("cannot connect to the PostgreSQL store");
    let rows =
        client.query(&format!("SELECT {COLUMNS} FROM actions ORDER BY id"), &[]).await.expect("cannot read actions");
    rows.iter().map(|row| action(row).expect("cannot decode an action")).collect()
}

/// Action `id`, if stored.
pub(crate) async fn get(store: &Store, id: ActionId) -> Option<Action> {
    actions(store).await.into_iter().find(|a| a.id == id)
}

/// How many actions are pending.
pub(crate) async fn pending(store: &Store) -> usize {
    actions(store).await.iter().filter(|a| a.state == ActionState::Pending).count()
}
