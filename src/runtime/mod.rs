//! The daemon: `run(config, shutdown)` owns every long-lived task and stops them cleanly.
//!
//! `shutdown` is a future (as in mini-redis): `main` passes Ctrl-C/SIGTERM, tests pass a channel,
//! and nothing here decides on its own when to stop.

use std::future::Future;

use crate::config::Config;
use crate::rules::RuleSet;
use crate::store::Store;

/// Errors that stop the daemon before or while it starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config's secrets or rules were not usable.
    #[error("cannot start: {0}")]
    Start(#[source] crate::Error),
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
