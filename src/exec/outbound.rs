//! The outbound dispatcher: replies, forwards and notices over SMTP, webhooks and commands,
//! from the outbox, for one account.
//!
//! Two lanes, so that neither can hold up the other (and neither can hold up mail sorting,
//! which is the IMAP executor's):
//! - the **mail lane** sends one message at a time over one SMTP connection. It is at most
//!   once: a row becomes `sending` (with its reply-log entry, in one transaction) only after the
//!   connection is open and authenticated, right before `MAIL FROM`. If the transaction then
//!   breaks off without a reply from the server, the message may or may not have gone out: the
//!   row becomes `uncertain` and is never resent by itself (`tidings outbox retry` resends it).
//!   A 4xx/5xx reply means nothing was accepted, so the row goes back to pending (or fails).
//! - the **event lane** delivers webhooks and runs commands, several at a time, each retried
//!   with backoff until it succeeds or reaches its endpoint's limit (dead letter). It is at least
//!   once: a row in flight at a crash is delivered again; receivers deduplicate by the
//!   `Idempotency-Key`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::mail::{self, guard, smtp};
use super::{Ran, event, retry};
use crate::auth::Credentials;
use crate::causes::error_chain;
use crate::config::{self, Account};
use crate::imap::retry::Class;
use crate::lifecycle::{self, Component, Lost, Mode, Run, Step, Trouble, Until, Words};
use crate::plan::{Action as Planned, EVENT_KINDS, MAIL_KINDS};
use crate::store::{self, Action, ActionId, OncePer, Outcome, SendGate, SendStart, Store};

/// Mail rows claimed per round: small, since each is a whole SMTP transaction.
const MAIL_BATCH: usize = 20;
/// Webhooks and commands running at once per account.
const EVENT_SLOTS: usize = 16;
/// How often an idle lane looks at the store anyway: `tidings outbox retry` from another
/// process changes it without waking anybody.
const POLL: Duration = Duration::from_secs(5);
/// How long the mail lane keeps its SMTP connection after the last message, so that replies to
/// mail coming in a burst go out without a new connection, TLS handshake and login. Servers
/// wait at least 5 minutes for a client (RFC 5321 4.5.3.2.7); a kept connection is checked
/// with NOOP before it is used again anyway.
const KEEP_SMTP: Duration = Duration::from_secs(60);

/// Why a lane stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed; without it no outcome can be recorded, so the lane stops.
    #[error("cannot send outbound actions of account {account}: the store failed")]
    Store {
        /// The account.
        account: String,
        /// The store error.
        #[source]
        source: Box<store::Error>,
    },
}

/// What the lanes of one account share.
#[derive(Clone)]
pub struct Outbound {
    account: Arc<Account>,
    store: Store,
    smtp: Option<Arc<smtp::Smtp>>,
    webhooks: Arc<super::webhook::Webhooks>,
    commands: Arc<BTreeMap<String, config::Command>>,
}

impl Outbound {
    /// The dispatcher of `account`; its SMTP server (if any) is logged in to with `credentials`.
    pub fn new(
        account: Arc<Account>,
        credentials: &Credentials,
        store: Store,
        webhooks: Arc<super::webhook::Webhooks>,
        commands: Arc<BTreeMap<String, config::Command>>,
    ) -> Outbound {
        let smtp = account.smtp.as_ref().map(|_| Arc::new(smtp::Smtp::new(&account, credentials)));
        Outbound { account, store, smtp, webhooks, commands }
    }

    fn store_error(&self, source: store::Error) -> Error {
        Error::Store { account: self.account.name.clone(), source: Box::new(source) }
    }

    async fn due_now(&self, kinds: &[&str]) -> Result<bool, Error> {
        let next = self.store.next_due(&self.account.name, kinds).await.map_err(|e| self.store_error(e))?;
        Ok(next.is_some_and(|at| at <= Utc::now()))
    }

    /// How long an idle lane waits (unless woken): until the next row of `kinds` is due, at
    /// most [`POLL`].
    async fn idle_for(&self, kinds: &[&str]) -> Result<Duration, Error> {
        let next = self.store.next_due(&self.account.name, kinds).await.map_err(|e| self.store_error(e))?;
        Ok(next.map_or(POLL, |at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(POLL)))
    }

    async fn wait(&self, kinds: &[&str], wake: &Notify, shutdown: &mut watch::Receiver<bool>) -> Result<(), Error> {
        let until = self.idle_for(kinds).await?;
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(until) => {}
            _ = shutdown.changed() => {}
        }
        Ok(())
    }

    /// The mail lane until shutdown, woken by `wake`. With `--once`: every mail row due now,
    /// then return; rows that fail transiently (or find the server unreachable) stay pending
    /// for the next run.
    pub async fn run_mail(self, wake: Arc<Notify>, mode: Mode) -> Result<(), Error> {
        lifecycle::drive(MailLane::new(self, wake), mode).await
    }

    /// The event lane until `shutdown`; deliveries in progress are finished and recorded first.
    pub async fn run_events(self, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        let slots = Arc::new(Semaphore::new(EVENT_SLOTS));
        let mut running = JoinSet::new();
        while !*shutdown.borrow() {
            let claimed = self.claim_events(slots.available_permits()).await?;
            let worked = !claimed.is_empty();
            for row in claimed {
                // Cannot fail: the semaphore is never closed, and no more rows were claimed
                // than permits were available.
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let this = self.clone();
                running.spawn(
                    async move {
                        let result = this.deliver(row).await;
                        drop(permit);
                        result
                    }
                    .in_current_span(),
                );
            }
            while let Some(done) = running.try_join_next() {
                self.joined(done)?;
            }
            if worked && slots.available_permits() > 0 {
                continue;
            }
            // With no free slot some delivery is running: wait for one to end (or for shutdown).
            // With a free slot, wait for work as well.
            if slots.available_permits() > 0 {
                tokio::select! {
                    Some(done) = running.join_next(), if !running.is_empty() => self.joined(done)?,
                    result = self.wait(EVENT_KINDS, &wake, &mut shutdown) => result?,
                }
            } else {
                tokio::select! {
                    Some(done) = running.join_next() => self.joined(done)?,
                    _ = shutdown.changed() => {}
                }
            }
        }
        while let Some(done) = running.join_next().await {
            self.joined(done)?;
        }
        Ok(())
    }

    /// `--once`: every webhook and command due now, then return.
    pub async fn run_events_once(self) -> Result<(), Error> {
        let mut running = JoinSet::new();
        loop {
            let claimed = self.claim_events(EVENT_SLOTS).await?;
            if claimed.is_empty() {
                break;
            }
            for row in claimed {
                let this = self.clone();
                running.spawn(async move { this.deliver(row).await }.in_current_span());
            }
            while let Some(done) = running.join_next().await {
                self.joined(done)?;
            }
        }
        Ok(())
    }

    fn joined(&self, done: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
        match done {
            Ok(result) => result,
            Err(panic) => {
                // The row stays in flight and becomes pending again at the next start.
                tracing::error!(%panic, "an event delivery panicked");
                Ok(())
            }
        }
    }

    async fn claim_events(&self, limit: usize) -> Result<Vec<Action>, Error> {
        if limit == 0 || !self.due_now(EVENT_KINDS).await? {
            return Ok(Vec::new());
        }
        self.store
            .claim_due_for(&self.account.name, EVENT_KINDS, Utc::now(), limit)
            .await
            .map_err(|e| self.store_error(e))
    }

    /// Delivers one webhook or runs one command, and records the outcome.
    async fn deliver(&self, row: Action) -> Result<(), Error> {
        // The endpoint's (or command's) name from the config, never its URL: that may hold a token.
        let endpoint = row.payload.get("endpoint").and_then(serde_json::Value::as_str).unwrap_or("");
        let rule = row.rule.as_deref().unwrap_or("");
        let span = tracing::info_span!("action", id = %row.id, kind = %row.kind, rule, %endpoint);
        let outcome = async {
            let (ran, policy) = match serde_json::from_value::<Planned>(row.payload.clone()) {
                Ok(Planned::Webhook(hook)) => match self.webhooks.endpoint(&hook.endpoint) {
                    Some(endpoint) => (self.webhooks.deliver(&row, &hook).await, Some(endpoint.retry_policy())),
                    None => (Ran::Permanent(format!("no webhook named `{}` in the config", hook.endpoint)), None),
                },
                Ok(Planned::Command(run)) => match self.commands.get(&run.endpoint) {
                    Some(command) => {
                        let payload = event::payload(&row, &run);
                        (super::command::run(command, &payload).await, Some(command.retry_policy()))
                    }
                    None => (Ran::Permanent(format!("no command named `{}` in the config", run.endpoint)), None),
                },
                Ok(other) => (Ran::Permanent(format!("a {} action is not an event", other.kind())), None),
                Err(e) => (Ran::Permanent(format!("cannot read the stored action: {e}")), None),
            };
            let outcome = settle_event(&row, ran, policy);
            log_outcome(&outcome);
            outcome
        }
        .instrument(span)
        .await;
        self.store.record_outcome(row.id, outcome).await.map_err(|e| self.store_error(e))
    }
}

/// Applies an endpoint's retry policy to one delivery.
fn settle_event(row: &Action, ran: Ran, policy: Option<retry::Policy>) -> Outcome {
    let policy = policy.unwrap_or_default();
    let (error, retry_after) = match ran {
        Ran::Done => return Outcome::Done,
        Ran::Permanent(error) => return Outcome::Failed { error },
        Ran::Transient(error) => (error, None),
        Ran::RetryAfter(after, error) => (error, Some(after)),
    };
    if row.attempts >= policy.max_attempts {
        return Outcome::Failed { error: format!("gave up after {} attempts: {error}", row.attempts) };
    }
    Outcome::Retry { next_attempt_at: policy.next_attempt(row.attempts, retry_after), error }
}

fn log_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Done => tracing::info!("delivered"),
        Outcome::Retry { next_attempt_at, error } => {
            tracing::warn!(%error, retry_at = %next_attempt_at, "not delivered; will retry")
        }
        Outcome::Failed { error } => tracing::error!(%error, "not delivered; dead-lettered (see `tidings outbox`)"),
        Outcome::Suppressed { reason } => tracing::info!(%reason, "suppressed"),
    }
}

enum MailRound {
    /// Rows were claimed and handled: look for more at once.
    Worked,
    /// Nothing due.
    Idle,
    /// The SMTP server could not be reached.
    Unreachable(smtp::SmtpError),
}

/// The mail lane's state: its SMTP connection, kept across the rows of a round.
struct MailLane {
    out: Outbound,
    connection: Option<smtp::SmtpConnection>,
    /// Since when the connection has been kept with nothing to send.
    idle_since: Option<Instant>,
    wake: Arc<Notify>,
}

/// What to send, composed and checked, before the SMTP transaction.
struct Ready {
    composed: mail::compose::Composed,
    once_per: Option<OncePer>,
    recipient: String,
}

impl MailLane {
    fn new(out: Outbound, wake: Arc<Notify>) -> MailLane {
        MailLane { out, connection: None, idle_since: None, wake }
    }

    /// Nothing to send: keeps the connection until it has been idle for [`KEEP_SMTP`].
    async fn rest(&mut self) {
        if self.connection.is_none() {
            return;
        }
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= KEEP_SMTP {
            self.quit().await;
        }
    }

    async fn quit(&mut self) {
        self.idle_since = None;
        if let Some(connection) = self.connection.take() {
            connection.quit().await;
        }
    }

    async fn round(&mut self, run: &mut Run) -> Result<MailRound, Error> {
        if !self.out.due_now(MAIL_KINDS).await? {
            return Ok(MailRound::Idle);
        }
        let Some(smtp) = self.out.smtp.clone() else {
            // Rules may send only when the account has an SMTP server, so each such row fails
            // with that said, instead of waiting forever.
            let claimed = self.claim().await?;
            for row in &claimed {
                let error = format!("account {} has no `smtp:` server to send with", self.out.account.name);
                self.record(row.id, Outcome::Failed { error }).await?;
            }
            return Ok(MailRound::Worked);
        };
        // A connection kept while idle may have been closed by the server meanwhile.
        if self.idle_since.take().is_some()
            && let Some(connection) = self.connection.as_mut()
            && !connection.alive().await
        {
            self.connection = None;
        }
        // Connect before claiming, so that an outage does not use up the rows' attempts.
        if self.connection.is_none() {
            match smtp.connect().await {
                Ok(connection) => {
                    run.connected();
                    self.connection = Some(connection);
                }
                Err(e) => return Ok(MailRound::Unreachable(e)),
            }
        }
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(MailRound::Idle);
        }
        for row in claimed {
            let rule = row.rule.as_deref().unwrap_or("");
            // How many, not who: set once the message is composed.
            let span =
                tracing::info_span!("action", id = %row.id, kind = %row.kind, rule, recipients = tracing::field::Empty);
            self.one(row, &smtp).instrument(span).await?;
        }
        Ok(MailRound::Worked)
    }

    async fn claim(&self) -> Result<Vec<Action>, Error> {
        let out = &self.out;
        out.store
            .claim_due_for(&out.account.name, MAIL_KINDS, Utc::now(), MAIL_BATCH)
            .await
            .map_err(|e| out.store_error(e))
    }

    async fn record(&self, id: ActionId, outcome: Outcome) -> Result<(), Error> {
        log_outcome(&outcome);
        self.out.store.record_outcome(id, outcome).await.map_err(|e| self.out.store_error(e))
    }

    /// One mail row: guards, composition, the gate in the store, the SMTP transaction.
    async fn one(&mut self, row: Action, smtp: &smtp::Smtp) -> Result<(), Error> {
        let ready = match self.prepare(&row) {
            Ok(ready) => ready,
            Err(outcome) => return self.record(row.id, outcome).await,
        };
        tracing::Span::current().record("recipients", ready.composed.envelope.to().len());
        if self.connection.is_none() {
            match smtp.connect().await {
                Ok(connection) => self.connection = Some(connection),
                Err(e) => {
                    let error = format!("cannot connect to the SMTP server: {}", error_chain(&e));
                    return self.record(row.id, retry_mail(&row, error)).await;
                }
            }
        }
        let out = &self.out;
        let start = SendStart {
            account: out.account.name.clone(),
            kind: row.kind.clone(),
            once_per: ready.once_per.clone(),
            daily_limit: out.account.daily_send_limit,
            forward_rate: (row.kind == "forward").then_some(out.account.forward_rate),
            recipient: ready.recipient.clone(),
            now: Utc::now(),
        };
        match out.store.begin_send(row.id, start).await.map_err(|e| out.store_error(e))? {
            SendGate::Go => {}
            SendGate::AlreadyReplied { at } => {
                tracing::info!(replied_at = %at, "reply suppressed: this sender already had one within the period");
                return Ok(());
            }
            SendGate::OverForwardRate { sent, limit } => {
                tracing::warn!(
                    sent,
                    limit,
                    "forward suppressed: the account's forward_rate to this destination is reached"
                );
                return Ok(());
            }
            SendGate::OverDailyLimit { sent, limit } => {
                tracing::error!(
                    sent,
                    limit,
                    "not sent: the account's daily limit of outbound messages is reached; dead-lettered (see `tidings outbox`)"
                );
                return Ok(());
            }
        }
        // From here on the row is `sending`: a crash leaves it uncertain, never resent.
        let Some(connection) = self.connection.as_mut() else { return Ok(()) };
        match connection.send(&ready.composed).await {
            Ok(()) => {
                let follow_up = out
                    .account
                    .save_sent
                    .as_ref()
                    .map(|_| mail::save_sent_action(&out.account, &row.key, &ready.composed));
                out.store.complete_with(row.id, follow_up).await.map_err(|e| out.store_error(e))?;
                tracing::info!(message_id = %ready.composed.message_id, "sent");
            }
            Err(smtp::SendError::Refused { permanent, message }) => {
                // Refused before the final dot, nothing was accepted; a connection that broke on
                // the way is replaced for the next row.
                if connection.is_broken() {
                    self.connection = None;
                }
                let error = format!("the SMTP server refused the message: {message}");
                let outcome = if permanent { Outcome::Failed { error } } else { retry_mail(&row, error) };
                log_outcome(&outcome);
                out.store.abort_send(row.id, outcome).await.map_err(|e| out.store_error(e))?;
            }
            Err(smtp::SendError::Uncertain(message)) => {
                self.connection = None;
                let error = format!("the SMTP transaction broke off, the message may have been sent: {message}");
                tracing::error!(%error, "uncertain: not resent automatically (see `tidings outbox`)");
                out.store.mark_uncertain(row.id, error).await.map_err(|e| out.store_error(e))?;
            }
        }
        Ok(())
    }

    /// Decodes, guards and composes a row; `Err` is the outcome to record instead of sending.
    fn prepare(&self, row: &Action) -> Result<Ready, Outcome> {
        let account = &self.out.account;
        let action: Planned = serde_json::from_value(row.payload.clone())
            .map_err(|e| Outcome::Failed { error: format!("cannot read the stored action: {e}") })?;
        let failed = |error: String| Outcome::Failed { error };
        match action {
            Planned::Reply(reply) => {
                guard::check_reply(&reply, Some(account)).map_err(|s| Outcome::Suppressed { reason: s.to_string() })?;
                let from = guard::from_address(&reply.original, account, reply.from.as_deref()).map_err(failed)?;
                let composed = mail::compose::reply(&reply, &from, account).map_err(|e| failed(e.to_string()))?;
                let once_per =
                    OncePer { handle: reply.handle.clone(), sender: reply.to.to_lowercase(), days: reply.days };
                Ok(Ready { composed, once_per: Some(once_per), recipient: reply.to })
            }
            Planned::Forward(forward) => {
                guard::check_recipients(&forward.to, &[])
                    .and_then(|()| guard::check_forward(&forward.original, account))
                    .map_err(|s| Outcome::Suppressed { reason: s.to_string() })?;
                let from = guard::sender_address(account, forward.from.as_deref()).map_err(failed)?;
                let composed = mail::compose::forward(&forward, &from, account).map_err(|e| failed(e.to_string()))?;
                Ok(Ready { composed, once_per: None, recipient: forward.to.join(", ").to_lowercase() })
            }
            Planned::Send(message) => {
                guard::check_recipients(&message.to, &message.cc)
                    .map_err(|s| Outcome::Suppressed { reason: s.to_string() })?;
                let from = guard::sender_address(account, message.from.as_deref()).map_err(failed)?;
                let composed = mail::compose::send(&message, &from, account).map_err(|e| failed(e.to_string()))?;
                Ok(Ready { composed, once_per: None, recipient: message.to.join(", ") })
            }
            other => Err(failed(format!("a {} action is not mail", other.kind()))),
        }
    }
}

impl Component for MailLane {
    type Error = Error;
    const WORDS: Words = Words {
        login: "cannot log in to the SMTP server; retrying slowly",
        lost: "cannot connect to the SMTP server; retrying",
    };

    async fn step(&mut self, run: &mut Run) -> Result<Step, Lost<Error>> {
        match self.round(run).await.map_err(Lost::Fatal)? {
            MailRound::Worked => Ok(Step::Worked),
            MailRound::Idle if run.once() => Ok(Step::Done),
            MailRound::Idle => {
                self.rest().await;
                let wait = self.out.idle_for(MAIL_KINDS).await.map_err(Lost::Fatal)?;
                Ok(Step::Idle(Until::after(wait).or_notified(&self.wake)))
            }
            MailRound::Unreachable(e) if run.once() => {
                tracing::warn!(error = %error_chain(&e), "cannot connect to the SMTP server; the mail waits for the next run");
                Ok(Step::Done)
            }
            MailRound::Unreachable(e) => {
                Err(Trouble::new(Class::of(e.is_config(), e.is_auth(), e.is_tls()), &e).into())
            }
        }
    }

    async fn close(&mut self) {
        self.quit().await;
    }
}

/// A mail row that did not reach the server: pending again later, or dead after many attempts.
fn retry_mail(row: &Action, error: String) -> Outcome {
    let policy = retry::Policy::default();
    if row.attempts >= policy.max_attempts {
        return Outcome::Failed { error: format!("gave up after {} attempts: {error}", row.attempts) };
    }
    Outcome::Retry { next_attempt_at: policy.next_attempt(row.attempts, None), error }
}
