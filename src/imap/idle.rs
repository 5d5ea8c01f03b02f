//! IDLE (RFC 2177): wait for the server to announce new mail, for a bounded time or until
//! the caller wants to stop, and always end with DONE so the session stays usable.
//!
//! async-imap's IDLE handle is not used. It takes the session by value (a DONE that never
//! comes back would lose the connection), and its `init()` queues responses that precede
//! the continuation where they cannot be seen until DONE, so an EXISTS arriving right then
//! would wait out the whole IDLE. Here IDLE is three steps on the session's own stream:
//! `IDLE` up to the `+`, reading responses until EXISTS, the deadline or `stop` (reading is
//! cancel-safe: a partly read response stays in async-imap's buffer), then `DONE` up to the
//! tagged OK. Only EXISTS ends the wait as news: flag changes and expunges by other clients
//! keep it waiting. What to fetch afterwards is the caller's business.

use std::pin::pin;
use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, RequestId, Response, Status};
use tracing::debug;

use super::connect::Conn;
use super::{Result, Session, wire};

type ImapError = async_imap::error::Error;

/// How an [`Session::idle`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleOutcome {
    /// The server announced new messages (or had before IDLE started): fetch.
    Changed,
    /// Nothing new within the time asked for: IDLE again.
    Timeout,
    /// The caller's `stop` future completed (shutdown); DONE was sent.
    Stopped,
}

/// What waiting in IDLE ended with.
enum Waited {
    Exists,
    /// The server ended IDLE itself with its tagged answer: no DONE to send.
    Ended,
    Elapsed,
    Stopped,
    Failed(ImapError),
}

impl Session {
    /// Waits in IDLE on the selected mailbox for at most `max` (capped at
    /// [`Timeouts::idle_refresh`](super::Timeouts)) or until `stop` completes, then ends
    /// IDLE with DONE. Returns [`IdleOutcome::Changed`] at once, without IDLE, if new mail
    /// was announced since the last fetch. Needs the IDLE capability: without it, poll with
    /// [`Session::noop`]. `stop` is any future, e.g. `shutdown.changed()` of a
    /// `tokio::sync::watch::Receiver`; its output is ignored. Pass `std::future::pending::<()>()`
    /// to never interrupt.
    pub async fn idle(&mut self, max: Duration, stop: impl Future) -> Result<IdleOutcome> {
        let what = format!("wait in IDLE on {}", self.selected_name());
        self.require_selected(&what)?;
        if !self.caps.idle {
            return Err(self.unsupported(&what, "the server does not offer IDLE; poll with NOOP"));
        }
        if self.new_mail {
            return Ok(IdleOutcome::Changed);
        }
        let limit = self.timeouts.command;
        let start = tokio::time::timeout(limit, start(self.live(&what)?)).await;
        let (tag, early) = self.settle(&what, limit, start)?;
        debug!(at = %self.at, early, "imap: idling");
        let max = max.min(self.timeouts.idle_refresh);
        let waited = if early { Waited::Exists } else { wait(self.live(&what)?, &tag, max, stop).await };
        if matches!(waited, Waited::Exists) {
            // The moment the news arrived: where the push latency benchmark starts tidings' share.
            debug!(at = %self.at, "imap: new mail announced");
        }
        let outcome = match waited {
            Waited::Exists => IdleOutcome::Changed,
            Waited::Elapsed => IdleOutcome::Timeout,
            Waited::Ended => return Ok(IdleOutcome::Timeout),
            Waited::Stopped => IdleOutcome::Stopped,
            Waited::Failed(source) => return self.settle(&what, limit, Ok(Err(source))),
        };
        let done = tokio::time::timeout(limit, finish(self.live(&what)?, &tag)).await;
        let late = self.settle(&format!("end IDLE on {}", self.selected_name()), limit, done)?;
        debug!(at = %self.at, ?outcome, late, "imap: idle ended");
        Ok(match outcome {
            IdleOutcome::Timeout if late => IdleOutcome::Changed,
            other => other,
        })
    }
}

/// Sends IDLE and reads up to the continuation; `true` if EXISTS came before it.
async fn start(conn: &mut Conn) -> Result<(RequestId, bool), ImapError> {
    let tag = conn.run_command("IDLE").await?;
    let mut exists = false;
    loop {
        let response = conn.read_response().await?.ok_or(ImapError::ConnectionLost)?;
        match response.parsed() {
            Response::Continue(_) => return Ok((tag, exists)),
            Response::Done { tag: t, status, outcome } if *t == tag => {
                // Refused (NO/BAD) or, oddly, completed at once: either way not idling.
                return Err(
                    wire::refused(status, outcome).unwrap_or_else(|| ImapError::Bad("IDLE ended at once".into()))
                );
            }
            Response::MailboxData(MailboxDatum::Exists(_)) => exists = true,
            _ => {}
        }
    }
}

/// Reads responses until EXISTS, BYE, an error or the end of IDLE, until `max` passes, or
/// until `stop`.
async fn wait(conn: &mut Conn, tag: &RequestId, max: Duration, stop: impl Future) -> Waited {
    let mut deadline = pin!(tokio::time::sleep(max));
    let mut stop = pin!(stop);
    loop {
        let response = tokio::select! {
            response = conn.read_response() => response,
            () = &mut deadline => return Waited::Elapsed,
            _ = &mut stop => return Waited::Stopped,
        };
        match response {
            Err(e) => return Waited::Failed(e.into()),
            Ok(None) => return Waited::Failed(ImapError::ConnectionLost),
            Ok(Some(data)) => match data.parsed() {
                Response::MailboxData(MailboxDatum::Exists(_)) => return Waited::Exists,
                Response::Done { tag: t, .. } if t == tag => return Waited::Ended,
                Response::Data { status: Status::Bye, outcome } => {
                    let text = outcome.information.as_deref().unwrap_or("").to_owned();
                    return Waited::Failed(std::io::Error::other(format!("the server said BYE: {text}")).into());
                }
                // Keep-alives (`* OK Still here`), flag changes, expunges: keep waiting.
                _ => {}
            },
        }
    }
}

/// Sends DONE and reads up to IDLE's tagged answer; `true` if EXISTS came meanwhile.
async fn finish(conn: &mut Conn, tag: &RequestId) -> Result<bool, ImapError> {
    conn.run_command_untagged("DONE").await?;
    let mut exists = false;
    loop {
        let response = conn.read_response().await?.ok_or(ImapError::ConnectionLost)?;
        match response.parsed() {
            Response::Done { tag: t, status, outcome } if t == tag => {
                return wire::refused(status, outcome).map_or(Ok(exists), Err);
            }
            Response::MailboxData(MailboxDatum::Exists(_)) => exists = true,
            _ => {}
        }
    }
}
