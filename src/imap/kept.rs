//! A connection kept across failures: opened when first wanted, dropped when it broke, opened
//! again on the next use, with its mailbox selected again. The caller decides when to give up
//! and how long to wait (see `crate::lifecycle`); this only reconnects.

use tracing::debug;

use super::{Login, Result, Selected, Session, Timeouts};

/// One account's connection for one long-lived user (a watcher, the poller, an executor).
#[derive(Debug)]
pub struct Kept {
    login: Login,
    timeouts: Timeouts,
    /// Selected on every new connection, for a watcher; `None` for users that select per use.
    mailbox: Option<String>,
    session: Option<Session>,
}

/// The live session [`Kept::session`] hands out.
pub struct Live<'a> {
    /// The session, connected and logged in.
    pub session: &'a mut Session,
    /// Whether it was opened by this call (the previous one was gone or broken).
    pub new: bool,
    /// The kept mailbox as selected on a new connection; `None` on a kept one.
    pub selected: Option<Selected>,
}

impl Kept {
    /// No connection yet: the first [`Kept::session`] opens it.
    pub fn new(login: Login, timeouts: Timeouts) -> Kept {
        Kept { login, timeouts, mailbox: None, session: None }
    }

    /// The same, selecting `mailbox` on every new connection.
    pub fn selecting(mut self, mailbox: &str) -> Kept {
        self.mailbox = Some(mailbox.to_owned());
        self
    }

    /// The live session, opened (and its mailbox selected) first if there is none or the last
    /// one broke. A failure leaves no connection behind.
    pub async fn session(&mut self) -> Result<Live<'_>> {
        let kept = self.session.take().filter(|s| !s.is_broken());
        let new = kept.is_none();
        let mut session = match kept {
            Some(session) => session,
            None => Session::connect(&self.login, self.timeouts).await?,
        };
        let selected = match (&self.mailbox, new) {
            (Some(mailbox), true) => Some(session.select(mailbox).await?),
            _ => None,
        };
        Ok(Live { session: self.session.insert(session), new, selected })
    }

    /// Whether a connection is held now (it may have broken since).
    pub fn is_open(&self) -> bool {
        self.session.is_some()
    }

    /// The session held now, if any (it may have broken since).
    pub fn current(&mut self) -> Option<&mut Session> {
        self.session.as_mut()
    }

    /// Drops the connection without a word to the server (it is gone or not trusted).
    pub fn forget(&mut self) {
        self.session = None;
    }

    /// Logs out, if connected. A failed LOGOUT only costs a debug line: the socket is closed
    /// either way.
    pub async fn logout(&mut self) {
        if let Some(session) = self.session.take()
            && let Err(e) = session.logout().await
        {
            debug!(error = %e, "logout failed; the connection is dropped anyway");
        }
    }
}
