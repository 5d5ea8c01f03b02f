//! Polled mailboxes: the ones beyond an account's connection budget (`config::budget`). Instead
//! of a connection each in IDLE, they are visited one after another on one shared connection
//! every `poll_interval`: select, catch up from the checkpoint, store the plans.

use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use super::watch::{Error, Failure, MailboxWatcher};
use crate::causes::error_chain;
use crate::imap::{Kept, Login, Timeouts};
use crate::lifecycle::{self, Component, Lost, Mode, Run, Step, Trouble, Until, Words};

/// Visits a set of mailboxes in turn on one connection.
pub struct MailboxPoller {
    watchers: Vec<MailboxWatcher>,
    conn: Kept,
    interval: Duration,
}

impl MailboxPoller {
    /// A poller visiting each of `watchers`' mailboxes every `interval`.
    pub fn new(watchers: Vec<MailboxWatcher>, login: Login, timeouts: Timeouts, interval: Duration) -> MailboxPoller {
        MailboxPoller { watchers, conn: Kept::new(login, timeouts), interval }
    }

    /// Polls until `shutdown` turns true. A lost connection is replaced after a backoff; a
    /// mailbox the server refuses (deleted, say) is logged and the others are still visited.
    /// Only a store failure ends it early.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        lifecycle::drive(self, Mode::Daemon(shutdown)).await
    }
}

impl Component for MailboxPoller {
    type Error = Error;
    const WORDS: Words = Words { login: "cannot log in to poll", lost: "polling connection lost; reconnecting" };

    /// Visits every mailbox once, connecting first if there is no live session.
    async fn step(&mut self, run: &mut Run) -> Result<Step, Lost<Error>> {
        let session = self.conn.session().await.map_err(|e| Trouble::imap(&e))?.session;
        for watcher in &self.watchers {
            if run.stopping() {
                break;
            }
            let span = tracing::info_span!("mailbox", mailbox = %watcher.mailbox().name);
            match watcher.visit(session).instrument(span.clone()).await {
                Ok(()) => watcher.health().watching(false),
                Err(Failure::Ended(error)) => return Err(Lost::Fatal(error)),
                Err(Failure::Connection(e)) if session.is_broken() => {
                    self.conn.forget();
                    return Err(Trouble::imap(&e).into());
                }
                Err(Failure::Connection(e)) => {
                    watcher.health().failed(&error_chain(&e));
                    span.in_scope(
                        || tracing::warn!(error = %error_chain(&e), "cannot poll this mailbox; the others go on"),
                    )
                }
            }
        }
        run.connected();
        Ok(Step::Idle(Until::after(self.interval)))
    }

    fn lost(&mut self, said: &str) {
        self.watchers.iter().for_each(|w| w.health().failed(said));
    }

    fn ended(&mut self, error: &Error) {
        // Polling ends (a store failure) until the runtime starts the account again: every
        // mailbox shows as down meanwhile.
        let stopped = format!("stopped until the account restarts: {}", error_chain(error));
        self.watchers.iter().for_each(|w| w.health().failed(&stopped));
    }

    async fn close(&mut self) {
        self.conn.logout().await;
    }
}
