//! The crate's error: one variant per module, each wrapping that module's own error enum.
//!
//! Layer: orchestration (see the map in lib.rs): it names every module's error, so it sits on top.

/// Any error the library returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading or validating the config.
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// Compiling the rules.
    #[error(transparent)]
    Rules(#[from] crate::rules::Error),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A mailbox watcher.
    #[error(transparent)]
    Watch(#[from] crate::source::watch::Error),
    /// An executor.
    #[error(transparent)]
    Exec(#[from] crate::exec::Error),
    /// The outbound dispatcher (mail, webhooks, commands).
    #[error(transparent)]
    Outbound(#[from] crate::exec::outbound::Error),
    /// Setting up the webhook client.
    #[error(transparent)]
    Webhook(#[from] crate::exec::webhook::Error),
    /// Starting the `/healthz` and `/metrics` listener.
    #[error(transparent)]
    Http(#[from] crate::health::http::Error),
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
