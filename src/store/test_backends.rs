//! The store's tests run on both backends: every test that goes through [`Store`] asks
//! [`each`] for its stores and runs its body on each, an in-memory SQLite one and a fresh
//! database on a real PostgreSQL. The PostgreSQL is the integration tests' own harness (its
//! files are compiled in here): one cluster per test binary, started on first use, as the
//! `postgres` user, on a free loopback port, removed when the binary ends.
//!
//! Without PostgreSQL's binaries the PostgreSQL half is skipped, loudly, except under CI
//! (`CI=true`), where it fails: CI installs them (tests/install-deps.sh).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Store;

#[allow(dead_code, unused_imports)]
#[path = "../../tests/harness/postgres.rs"]
mod postgres;
#[allow(dead_code, unused_imports)]
#[path = "../../tests/harness/process.rs"]
mod process;
#[allow(dead_code, unused_imports)]
#[path = "../../tests/harness/tls.rs"]
mod tls;

pub(crate) use postgres::Postgres;

/// The cluster of this test binary; `None` when PostgreSQL is not installed (outside CI).
pub(crate) fn cluster() -> Option<&'static Postgres> {
    static CLUSTER: OnceLock<Option<Postgres>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| match Postgres::start() {
            Ok(pg) => Some(pg),
            Err(error) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("PostgreSQL is needed for the store tests under CI: {error:#}")
            }
            Err(error) => {
                eprintln!("!!! SKIPPED: the store tests on PostgreSQL (cannot start it: {error:#})");
                None
            }
        })
        .as_ref()
}

/// A new, empty database on the cluster; its URL.
pub(crate) fn fresh_database(pg: &Postgres) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let name = format!("store_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    pg.psql("postgres", &format!("CREATE DATABASE {name}")).expect("cannot create a test database");
    pg.url(&name)
}

/// A fresh database on the cluster (started on first use): its URL and the CA file to trust;
/// `None` when PostgreSQL is not installed (outside CI).
pub(crate) async fn database() -> Option<(String, PathBuf)> {
    tokio::task::spawn_blocking(|| cluster().map(|pg| (fresh_database(pg), pg.ca_file.clone())))
        .await
        .expect("the PostgreSQL starter panicked")
}

/// The stores a test runs on, named: SQLite in memory, and PostgreSQL (a fresh database,
/// opened as a tool would, unfenced) when it is available.
pub(crate) async fn each() -> Vec<(&'static str, Store)> {
    let mut stores = vec![("sqlite", Store::open_in_memory().await.expect("cannot open SQLite in memory"))];
    if let Some((url, ca_file)) = database().await {
        let store = Store::open_postgres(&url, Some(&ca_file), None).await.expect("cannot open the PostgreSQL store");
        stores.push(("postgres", store));
    }
    stores
}

/// A store a test can open again, as a restarted process would: a SQLite file in a temp dir,
/// or a PostgreSQL database (each opening a new pool).
pub(super) enum Reopenable {
    /// The file, in a temp dir removed with it.
    Sqlite(tempfile::TempDir),
    /// The database's URL and CA file.
    Postgres(String, PathBuf),
}

impl Reopenable {
    /// A new handle on the store, sharing nothing with earlier ones but what is stored.
    pub(super) async fn open(&self) -> Store {
        match self {
            Reopenable::Sqlite(dir) => Store::open(&dir.path().join("tidings.db")).await,
            Reopenable::Postgres(url, ca_file) => Store::open_postgres(url, Some(ca_file), None).await,
        }
        .expect("cannot open the store again")
    }
}

/// [`each`] for tests of what survives a restart: the stores as [`Reopenable`]s.
pub(super) async fn each_reopenable() -> Vec<(&'static str, Reopenable)> {
    let mut stores = vec![("sqlite", Reopenable::Sqlite(tempfile::tempdir().expect("cannot create a temp dir")))];
    if let Some((url, ca_file)) = database().await {
        stores.push(("postgres", Reopenable::Postgres(url, ca_file)));
    }
    stores
}

/// Every action in `store`, oldest first (for tests that look at what a plan stored).
pub(crate) async fn actions(store: &Store) -> Vec<super::Action> {
    let mut all = store.list_outbox(None, usize::MAX).await.expect("cannot list the outbox");
    all.reverse();
    all
}

/// How many actions are pending.
pub(crate) async fn pending(store: &Store) -> usize {
    usize::try_from(store.outbox_counts().await.expect("cannot count the outbox").pending).unwrap_or(usize::MAX)
}

/// Fleet member `id` (its leases running `lease`) on the database at `url`, joined and holding
/// the leases of `accounts`, claimed as the runtime claims them.
pub(crate) async fn member(
    url: &str,
    ca_file: &std::path::Path,
    id: &str,
    lease: std::time::Duration,
    accounts: &[&str],
) -> Store {
    let member = super::postgres::Member { id: id.to_owned(), host: "test".to_owned(), pid: 1, lease };
    let store = Store::open_postgres(url, Some(ca_file), Some(member)).await.expect("cannot open the PostgreSQL store");
    let pg = store.fleet().expect("a PostgreSQL store");
    pg.join().await.expect("cannot join the fleet");
    for account in accounts {
        assert!(pg.claim(account).await.expect("cannot claim").is_some(), "the lease of {account} is held");
    }
    store
}

/// Another instance, `owner`, takes `account` over: its lease is made to expire and `owner`
/// claims it, with the next epoch (through `tool`'s connection).
pub(crate) async fn take_over(tool: &Store, account: &str, owner: &str) {
    let client = tool.fleet().expect("a PostgreSQL store").client().await.unwrap();
    client.execute("UPDATE leases SET expires_at = now() WHERE account = $1", &[&account]).await.unwrap();
    let lease = super::postgres::leases::claim(&**client, account, owner, std::time::Duration::from_secs(60)).await;
    assert!(lease.unwrap().is_some(), "the lease of {account} expired and was claimed by {owner}");
}
