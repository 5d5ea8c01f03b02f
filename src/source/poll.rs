//! Polled mailboxes: the ones beyond an account's connection budget (`config::budget`). Instead
//! of a connection each in IDLE, they are visited one after another on one shared connection
//! every `poll_interval`: select, catch up from the checkpoint, store the plans.

use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use super::watch::{Error, MailboxWatcher};
use crate::causes::error_chain;
use crate::imap::{self, Login, Session, Timeouts};

/// Visits a set of mailboxes in turn on one connection.
pub struct MailboxPoller {
    watchers: Vec<MailboxWatcher>,
    login: Login,
    timeouts: Timeouts,
    interval: Duration,
}

impl MailboxPoller {
    /// A poller visiting each of `watchers`' mailboxes every `interval`.
    pub fn new(watchers: Vec<MailboxWatcher>, login: Login, timeouts: Timeouts, interval: Duration) -> MailboxPoller {
        MailboxPoller { watchers, login, timeouts, interval }
    }

    /// Polls until `shutdown` turns true. A lost connection is replaced after a backoff; a
    /// mailbox the server refuses (deleted, say) is logged and the others are still visited.
    /// Only a store failure ends it early.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        let mut backoff = imap::retry::Backoff::default();
        let mut session: Option<Session> = None;
        while !*shutdown.borrow() {
            let round = match self.round(&mut session, &shutdown).await {
                Ok(round) => round,
                Err(error) => {
                    // Polling ends (a store failure) until the runtime starts the account
                    // again: every mailbox shows as down meanwhile.
                    let stopped = format!("stopped until the account restarts: {}", error_chain(&error));
                    self.watchers.iter().for_each(|w| w.health().failed(&stopped));
                    return Err(error);
                }
            };
            let delay = match round {
                Ok(()) => {
                    backoff.reset();
                    self.interval
                }
                Err(error) => {
                    session = None;
                    let delay = backoff.delay_for(&error);
                    if error.is_config() {
                        let advice = crate::exec::config_advice(&error);
                        self.watchers.iter().for_each(|w| w.health().failed(&advice));
                        if backoff.is_news(&error) {
                            tracing::error!(error = %advice, retry_in = ?delay, "configuration error");
                        }
                    } else if error.is_auth() || error.is_tls() {
                        tracing::error!(error = %error_chain(&error), retry_in = ?delay, "cannot log in to poll");
                    } else {
                        tracing::warn!(error = %error_chain(&error), retry_in = ?delay, "polling connection lost; reconnecting");
                    }
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => {}
            }
        }
        if let Some(session) = session
            && let Err(e) = session.logout().await
        {
            tracing::debug!(error = %e, "logout failed; the connection is dropped anyway");
        }
        Ok(())
    }

    /// Visits every mailbox once, connecting first if there is no live session.
    async fn round(
        &self,
        slot: &mut Option<Session>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Result<(), imap::Error>, Error> {
        if slot.as_ref().is_none_or(Session::is_broken) {
            match Session::connect(&self.login, self.timeouts).await {
                Ok(session) => *slot = Some(session),
                Err(e) => {
                    self.watchers.iter().for_each(|w| w.health().failed(&error_chain(&e)));
                    return Ok(Err(e));
                }
            }
        }
        let Some(session) = slot.as_mut() else { return Ok(Ok(())) };
        for watcher in &self.watchers {
            if *shutdown.borrow() {
                break;
            }
            let span = tracing::info_span!("mailbox", mailbox = %watcher.mailbox().name);
            match watcher.visit(session).instrument(span.clone()).await {
                Ok(result) => {
                    result?;
                    watcher.health().watching(false);
                }
                Err(e) if session.is_broken() => {
                    self.watchers.iter().for_each(|w| w.health().failed(&error_chain(&e)));
                    return Ok(Err(e));
                }
                Err(e) => {
                    watcher.health().failed(&error_chain(&e));
                    span.in_scope(
                        || tracing::warn!(error = %error_chain(&e), "cannot poll this mailbox; the others go on"),
                    )
                }
            }
        }
        Ok(Ok(()))
    }
}
