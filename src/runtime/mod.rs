//! The daemon: `run(config, shutdown)` owns every long-lived task and stops them cleanly.
//!
//! `shutdown` is a future (as in mini-redis): `main` passes Ctrl-C/SIGTERM, tests pass a channel,
//! and nothing here decides on its own when to stop.

use std::fs::{File, TryLockError};
use std::future::Future;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::rules::RuleSet;
use crate::store::Store;

/// Errors that stop the daemon before or while it starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config's secrets or rules were not usable.
    #[error("cannot start")]
    Start(#[source] crate::Error),
    /// Another daemon already runs with this store.
    #[error("cannot lock {path}: another tidings daemon is running with the same state file")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created.
    #[error("cannot create lock file {path}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// What `run` prepared, kept for the lifetime of the daemon.
pub struct Daemon {
    /// The validated config.
    pub config: Config,
    /// The compiled rules.
    pub rules: RuleSet,
    /// The open store.
    pub store: Store,
}

/// Starts everything the config asks for and runs until `shutdown` resolves.
///
/// Start-up order matters: rules compile and secrets resolve before the store is touched and
/// long before any connection, so a mistake fails fast and changes nothing.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let rules = RuleSet::compile(&config).map_err(|e| Error::Start(e.into()))?;
    let _secrets = config.resolve_secrets().map_err(|e| Error::Start(e.into()))?;
    let _lock = lock(&config.state)?;
    let store = Store::open(&config.state).await.map_err(|e| Error::Start(e.into()))?;
    // Actions claimed by a process that died may or may not have happened: never re-run them
    // blindly. They become `uncertain`, for a person (or an idempotent executor) to settle.
    let uncertain = store.recover_in_flight().await.map_err(|e| Error::Start(e.into()))?;
    for action in &uncertain {
        tracing::warn!(id = %action.id, kind = %action.kind, account = %action.account, "action was in flight at the last stop; marked uncertain");
    }
    let daemon = Daemon { config, rules, store };
    tracing::info!(
        accounts = daemon.config.accounts.len(),
        rules = daemon.rules.live.len(),
        state = %daemon.config.state.display(),
        "tidings started"
    );
    shutdown.await;
    tracing::info!("shutting down");
    Ok(())
}

/// Takes an exclusive lock beside the state file for the daemon's lifetime: two daemons on one
/// store would both watch the same mailboxes and both run the same actions. The OS drops the
/// lock when the process dies, so a crash never leaves a stale lock behind.
fn lock(state: &Path) -> Result<File, Error> {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::LockFile { path: path.clone(), source })?;
    }
    let file = File::create(&path).map_err(|source| Error::LockFile { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(TryLockError::Error(source)) => Err(Error::LockFile { path, source }),
    }
}
