//! The handle on the shared PostgreSQL store: its pool, and the fencing of a fleet member's
//! writes by the leases it holds.
//!
//! Every method of `Store` has its PostgreSQL counterpart on [`PgStore`], with the same
//! signature and the same guarantees (one transaction per call, keys deduplicated, checkpoints
//! never backwards), in the files beside this one, named as the SQLite ones are.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::GenericClient;

use super::writer::Writer;
use super::{connect, leases, migrations};
use crate::store::{ActionId, Error, Result};

/// How many connections one instance opens at most. Every store call holds one for a single
/// transaction; account workers queue for them, so this bounds the database's load per
/// instance, not the number of accounts (see docs/scaling.md).
pub const POOL_SIZE: usize = 16;

/// How long a tool's session may sit idle inside a transaction (see `connect::pool`).
const TOOL_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(15);

/// Who a fleet member is, and how long its leases run.
#[derive(Clone, Debug)]
pub struct Member {
    /// Unique per process: host, pid and start time.
    pub id: String,
    /// The host name, shown by `tidings status`.
    pub host: String,
    /// The process id, shown by `tidings status`.
    pub pid: u32,
    /// How long a lease (and the instance's own heartbeat) runs unless renewed.
    pub lease: Duration,
}

/// The shared store.
#[derive(Debug)]
pub struct PgStore {
    pool: Pool,
    /// `Some` in a fleet member: its identity and the epochs of the leases it holds.
    fleet: Option<Arc<Holder>>,
    /// The fire-and-forget writes (watcher states), in the order posted.
    pub(crate) writer: Writer,
}

#[derive(Debug)]
pub(crate) struct Holder {
    pub(crate) member: Member,
    /// Account -> epoch of the lease held; a std mutex: held for a map lookup, never across
    /// an await (see [`Holder::epochs`]).
    epochs: Mutex<HashMap<String, i64>>,
}

impl Holder {
    /// Inside the transaction `tx` of a write for `account`: goes on only while the lease this
    /// member holds is the account's current one (see `leases::fence`).
    pub(crate) async fn fence(&self, tx: &impl GenericClient, account: &str) -> Result<()> {
        let epoch = self.epochs().get(account).copied();
        let epoch = epoch.ok_or_else(|| Error::NotHeld { account: account.to_owned() })?;
        leases::fence(tx, account, epoch).await?;
        Ok(())
    }

    /// The epochs of the leases held, locked (a panic elsewhere leaves the map usable: each
    /// change to it is a single insert or remove).
    pub(super) fn epochs(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        self.epochs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The error of statement `what` (a closure, so the message is built only on failure).
pub(crate) fn db<F: FnOnce() -> String>(what: F) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Postgres { what: what(), source }
}

impl PgStore {
    /// Connects (the URL may carry `sslrootcert=<file>`), migrates, and, for a fleet member,
    /// fences its writes from now on.
    pub(crate) async fn open(url: &str, ca_file: Option<&Path>, member: Option<Member>) -> Result<PgStore> {
        let idle = member.as_ref().map_or(TOOL_IDLE_IN_TRANSACTION, |m| m.lease / 2);
        let pool = connect::pool(url, ca_file, POOL_SIZE, idle).map_err(Error::Connect)?;
        let store = PgStore {
            writer: Writer::start(pool.clone()),
            pool,
            fleet: member.map(|member| Arc::new(Holder { member, epochs: Mutex::default() })),
        };
        let mut client = store.client().await?;
        migrations::migrate(&mut client).await.map_err(Error::PgMigrate)?;
        Ok(store)
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(Error::Pool)
    }

    pub(super) fn fleet_state(&self) -> Option<&Holder> {
        self.fleet.as_deref()
    }

    /// The fleet member's leases, for the seam's fenced writes (`None`: not a fleet member).
    pub(crate) fn fencing(&self) -> Option<Arc<Holder>> {
        self.fleet.clone()
    }

    /// The accounts a fleet member may write for (the leases it holds); `None`: any account (a
    /// tool, or a store that is not a fleet member's).
    pub(crate) fn held(&self) -> Option<Vec<String>> {
        let fleet = self.fleet.as_ref()?;
        Some(fleet.epochs().keys().cloned().collect())
    }

    /// Inside the transaction `tx` of a write for `account`: a fleet member's write goes on only
    /// while the lease it holds is the account's current one (see `leases::fence`). A tool's
    /// write, acting for a person, is not fenced.
    pub(crate) async fn fence(&self, tx: &impl GenericClient, account: &str) -> Result<()> {
        match &self.fleet {
            Some(fleet) => fleet.fence(tx, account).await,
            None => Ok(()),
        }
    }

    /// Inside `tx`: locks action `id` against other writers and fences its account (see
    /// [`PgStore::fence`]). `None` when there is no such action.
    pub(crate) async fn fence_action(&self, tx: &impl GenericClient, id: ActionId) -> Result<Option<String>> {
        let row = tx
            .query_opt("SELECT account FROM actions WHERE id = $1 FOR UPDATE", &[&id.0])
            .await
            .map_err(db(|| format!("read action {id}")))?;
        let Some(row) = row else { return Ok(None) };
        let account: String = row.get(0);
        self.fence(tx, &account).await?;
        Ok(Some(account))
    }
}
