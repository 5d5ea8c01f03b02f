//! The mailbox watcher: catch up from the checkpoint, then IDLE (or poll), forever.

use std::sync::Arc;

use chrono::Utc;
use tracing::Instrument;

use super::report::{Listener, Report};
use crate::causes::error_chain;
use crate::config::{Account, Backfill, Mailbox};
use crate::imap::{self, Fetched, Kept, Login, Selected, Session, Timeouts};
use crate::lifecycle::{self, Component, Lost, Mode, Run, Step, Trouble, Until, Words};
use crate::message::{MessageKey, MessageView};
use crate::rules::{CurrentRules, RuleSet};
use crate::store::{self, Checkpoint, MessagePlan, NewAction, Store};

/// Backfill messages fetched and stored per step.
const BACKLOG_SLICE: usize = 200;

/// Why a watcher stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed: without it no plan can be kept, so the watcher stops rather than
    /// process mail it cannot remember.
    #[error("cannot watch {account}/{mailbox}: the store failed")]
    Store {
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// The store error.
        #[source]
        source: store::Error,
    },
    /// With `--once`, any IMAP failure ends the run: there is no later to retry in.
    #[error("cannot watch {account}/{mailbox}")]
    Imap {
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// The IMAP error.
        #[source]
        source: imap::Error,
    },
}

/// Why a pass over a mailbox stopped: its connection failed (retried on a new one), or the
/// watcher must end ([`Error`]: its store failed).
#[derive(Debug)]
pub enum Failure {
    /// The IMAP connection failed, or the server refused a command.
    Connection(imap::Error),
    /// The watcher cannot go on.
    Ended(Error),
}

impl From<imap::Error> for Failure {
    fn from(error: imap::Error) -> Failure {
        Failure::Connection(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Ended(error)
    }
}

/// Watches one mailbox of one account.
pub struct MailboxWatcher {
    account: Arc<Account>,
    mailbox: Mailbox,
    login: Login,
    timeouts: Timeouts,
    store: Store,
    /// Read once per batch: a reload takes effect at the next batch, on the same session.
    rules: CurrentRules,
    wake: Arc<crate::exec::Wake>,
    health: Report,
}

impl MailboxWatcher {
    /// A watcher; `wake` is notified after each stored batch so the executor starts at once.
    pub fn new(
        account: Arc<Account>,
        mailbox: Mailbox,
        login: Login,
        timeouts: Timeouts,
        store: Store,
        rules: CurrentRules,
        wake: Arc<crate::exec::Wake>,
    ) -> MailboxWatcher {
        // Reports to nobody until `reporting_to` names who listens.
        let health = Report::nobody();
        MailboxWatcher { account, mailbox, login, timeouts, store, rules, wake, health }
    }

    /// The same watcher, reporting its connection and what it stored to `listener`.
    pub fn reporting_to(mut self, listener: impl Listener + 'static) -> MailboxWatcher {
        self.health = Report::to(listener);
        self
    }

    /// Watches until shutdown, reconnecting with backoff whenever the connection fails; only
    /// a store failure ends it early. With `--once`: one pass (connect, catch up, store the
    /// plans, log out), and any failure ends it.
    pub async fn run(self, mode: Mode) -> Result<(), Error> {
        let span = tracing::info_span!("mailbox", mailbox = %self.mailbox.name);
        let conn = Kept::new(self.login.clone(), self.timeouts).selecting(&self.mailbox.name);
        lifecycle::drive(Watching { watcher: self, conn, last: None }, mode).instrument(span).await
    }

    /// The mailbox it watches.
    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// Where it reports its connection's state.
    pub fn health(&self) -> &Report {
        &self.health
    }

    /// One visit of a polled mailbox on a `session` the caller keeps (shared by every polled
    /// mailbox of the account): select, catch up from the checkpoint, store the plans.
    pub async fn visit(&self, session: &mut Session) -> Result<(), Failure> {
        let selected = session.select(&self.mailbox.name).await?;
        let last = self.start_point(session, &selected).await?;
        self.catch_up(session, selected.uidvalidity, last).await.map(|_| ())
    }

    /// Where to start: the stored checkpoint, or a baseline on the first start or after the
    /// server reset UIDVALIDITY (never a replay of the whole mailbox).
    async fn start_point(&self, session: &mut Session, selected: &Selected) -> Result<u32, Failure> {
        let stored =
            self.store.checkpoint(&self.account.name, &self.mailbox.name).await.map_err(|e| self.store_error(e))?;
        let top = selected.uidnext.saturating_sub(1);
        match &stored {
            Some(cp) if cp.uidvalidity == selected.uidvalidity => return Ok(cp.last_uid),
            Some(cp) => tracing::warn!(
                old = cp.uidvalidity,
                new = selected.uidvalidity,
                "UIDVALIDITY changed: the mailbox was recreated; starting after its newest message, old mail is not replayed"
            ),
            None => tracing::info!(backfill = ?self.mailbox.backfill, "first start in this mailbox"),
        }
        let backfill = if stored.is_some() { Backfill::None } else { self.mailbox.backfill };
        let (baseline, backlog) = match backfill {
            Backfill::None => (top, Vec::new()),
            Backfill::All => (0, Vec::new()),
            Backfill::Unseen => (top, session.search_uids("UNSEEN").await?),
            Backfill::Within(age) => {
                let since = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                (top, session.search_uids(&format!("SINCE {}", since.format("%-d-%b-%Y"))).await?)
            }
        };
        // The backlog is processed before the baseline is stored: a crash in between repeats the
        // (idempotent) backlog rather than losing it.
        // Sized in slices, fetched and stored a byte budget at a time: a backlog of thousands
        // must not be loaded into memory at once.
        for slice in backlog.chunks(BACKLOG_SLICE) {
            let mut groups = session.groups(slice, self.account.watch.max_message_size).await?;
            while let Some(fetched) = session.fetch_group(&mut groups).await? {
                self.process(selected.uidvalidity, fetched, false).await?;
            }
        }
        let checkpoint = self.checkpoint(selected.uidvalidity, baseline);
        self.store.set_checkpoint(&checkpoint).await.map_err(|e| self.store_error(e))?;
        Ok(baseline)
    }

    /// Fetches everything above `last` and processes it; returns the new last UID.
    ///
    /// The UIDs come from one SEARCH. Headers are fetched in slices of [`imap::FETCH_LIMIT`],
    /// at most [`imap::HEADER_CAP`] of each; while one slice is being decided (off the async
    /// threads) the next is being fetched. Messages whose rules want more than the header (a
    /// body, an outbound action) or whose header is longer than that are fetched whole, a byte
    /// budget at a time, and decided then ([`Self::decide_whole`]).
    /// Plans are stored in UID order, each batch with its checkpoint, so a crash repeats at
    /// most the slice in progress.
    async fn catch_up(&self, session: &mut Session, uidvalidity: u32, mut last: u32) -> Result<u32, Failure> {
        let max = self.account.watch.max_message_size;
        loop {
            let uids = session.uids_after(last).await?;
            let mut slices = uids.chunks(imap::FETCH_LIMIT);
            let Some(first) = slices.next() else { return Ok(last) };
            let mut current = (first, session.fetch_headers(first, max).await?);
            loop {
                let following = slices.next();
                // The next slice is fetched while this one is decided and stored.
                let (next, decided) = tokio::join!(
                    async {
                        match following {
                            Some(uids) => session.fetch_headers(uids, max).await.map(|f| Some((uids, f))),
                            None => Ok(None),
                        }
                    },
                    async {
                        let headers = current.1;
                        let (plans, mut wanting) = self.decide(uidvalidity, headers.fetched).await;
                        // A header longer than the header pass takes is judged on the whole message.
                        wanting.extend(headers.long);
                        match wanting.is_empty() {
                            true => self.store_plans(uidvalidity, plans, true).await.map(|()| None),
                            false => Ok(Some((plans, wanting))),
                        }
                    },
                );
                let next = next?;
                if let Some((plans, wanting)) = decided? {
                    self.decide_whole(session, uidvalidity, plans, wanting).await?;
                }
                // Past the whole slice: a UID of it without a plan was expunged meanwhile.
                last = current.0.last().copied().unwrap_or(last).max(last);
                match next {
                    Some(next) => current = next,
                    None => break,
                }
            }
        }
    }

    /// Fetches the messages that want their body (or have a header too long for the header
    /// pass) whole, one byte budget's worth at a time,
    /// decides each group and stores it before the next is fetched: memory holds one group.
    /// `plans` (of the same slice, decided on the header) are stored along, in UID order, and
    /// only up to the next message still waiting: a checkpoint never passes a message that has
    /// no plan yet.
    async fn decide_whole(
        &self,
        session: &mut Session,
        uidvalidity: u32,
        mut plans: Vec<MessagePlan>,
        wanting: Vec<Fetched>,
    ) -> Result<(), Failure> {
        let mut groups = imap::Groups::of_headers(wanting, self.account.watch.max_message_size);
        while let Some(whole) = session.fetch_group(&mut groups).await? {
            plans.extend(self.decide(uidvalidity, whole).await.0);
            plans.sort_by_key(|p| p.checkpoint.last_uid);
            let ready = match groups.next_uid() {
                Some(waiting) => plans.partition_point(|p| p.checkpoint.last_uid < waiting),
                // A message expunged meanwhile has no plan; it is passed like any other.
                None => plans.len(),
            };
            let batch: Vec<MessagePlan> = plans.drain(..ready).collect();
            self.store_plans(uidvalidity, batch, true).await?;
        }
        Ok(())
    }

    /// Parses and evaluates a batch, then stores every plan and the checkpoint together.
    async fn process(&self, uidvalidity: u32, fetched: Vec<Fetched>, move_checkpoint: bool) -> Result<(), Error> {
        let (mut plans, wanting) = self.decide(uidvalidity, fetched).await;
        // Whole messages (backfill fetches them whole) never want more; kept for safety.
        debug_assert!(wanting.is_empty());
        plans.sort_by_key(|p| p.checkpoint.last_uid);
        self.store_plans(uidvalidity, plans, move_checkpoint).await
    }

    /// Parses and evaluates a batch on the blocking pool: the plans, and the messages fetched
    /// without their body whose rules wanted it (no plan for those yet; their bytes dropped).
    async fn decide(&self, uidvalidity: u32, fetched: Vec<Fetched>) -> (Vec<MessagePlan>, Vec<Fetched>) {
        if fetched.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let (account, mailbox, rules) = (self.account.clone(), self.mailbox.name.clone(), self.rules.get());
        let span = tracing::Span::current();
        let decided = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            fetched.into_iter().map(|f| evaluate(&account, &mailbox, uidvalidity, f, &rules)).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let mut plans = Vec::with_capacity(decided.len());
        let mut wanting = Vec::new();
        for decision in decided {
            match decision {
                Decision::Plan(plan) => plans.push(plan),
                Decision::WantsBody(known) => wanting.push(*known),
            }
        }
        (plans, wanting)
    }

    /// Stores the plans of a batch (in UID order) and the checkpoint, in one transaction.
    async fn store_plans(&self, uidvalidity: u32, plans: Vec<MessagePlan>, move_checkpoint: bool) -> Result<(), Error> {
        if plans.is_empty() {
            return Ok(());
        }
        let count = plans.len();
        let plans: Vec<MessagePlan> = if move_checkpoint {
            plans
        } else {
            // Backfill: the checkpoint is set once, after the backlog (see `start_point`).
            let current =
                self.store.checkpoint(&self.account.name, &self.mailbox.name).await.map_err(|e| self.store_error(e))?;
            plans
                .into_iter()
                .map(|mut p| {
                    p.checkpoint = current.clone().unwrap_or_else(|| self.checkpoint(uidvalidity, 0));
                    p
                })
                .collect()
        };
        let actions: usize = plans.iter().map(|p| p.actions.len()).sum();
        let matched: Vec<String> = plans.iter().flat_map(|p| p.decided.matched.iter().cloned()).collect();
        let failed: Vec<String> = plans.iter().flat_map(|p| p.failures.iter().map(|(rule, _)| rule.clone())).collect();
        self.store.commit_plans(plans).await.map_err(|e| self.store_error(e))?;
        self.health.stored(count, matched.iter().map(String::as_str), failed.iter().map(String::as_str));
        tracing::info!(messages = count, actions, "plans stored");
        if actions > 0 {
            self.wake.notify();
        }
        Ok(())
    }

    fn checkpoint(&self, uidvalidity: u32, last_uid: u32) -> Checkpoint {
        Checkpoint { account: self.account.name.clone(), mailbox: self.mailbox.name.clone(), uidvalidity, last_uid }
    }

    fn store_error(&self, source: store::Error) -> Error {
        Error::Store { account: self.account.name.clone(), mailbox: self.mailbox.name.clone(), source }
    }

    fn imap_error(&self, source: imap::Error) -> Error {
        Error::Imap { account: self.account.name.clone(), mailbox: self.mailbox.name.clone(), source }
    }
}

/// A watcher on its own connection, driven by [`lifecycle::drive`].
struct Watching {
    watcher: MailboxWatcher,
    conn: Kept,
    /// The UIDVALIDITY and the last UID passed, on the current connection.
    last: Option<(u32, u32)>,
}

impl Watching {
    /// Connects and selects if needed (then catches up from the start point), catches up,
    /// and waits in IDLE; without IDLE the driver waits `poll_interval` and the next step
    /// checks with NOOP.
    async fn pass(&mut self, run: &mut Run) -> Result<Step, Failure> {
        let watcher = &self.watcher;
        let live = self.conn.session().await?;
        let session = live.session;
        let idle = session.capabilities().idle;
        if let Some(selected) = live.selected {
            self.last = None;
            run.connected();
            watcher.health.watching(idle);
            tracing::info!(uidvalidity = selected.uidvalidity, uidnext = selected.uidnext, idle, "watching");
            self.last = Some((selected.uidvalidity, watcher.start_point(session, &selected).await?));
        } else if !idle {
            session.noop().await?;
        }
        let Some((uidvalidity, last)) = self.last else { return Ok(Step::Worked) };
        self.last = Some((uidvalidity, watcher.catch_up(session, uidvalidity, last).await?));
        if run.once() {
            return Ok(Step::Done);
        }
        if run.stopping() {
            return Ok(Step::Worked);
        }
        if !idle {
            return Ok(Step::Idle(Until::after(watcher.account.watch.poll_interval)));
        }
        session.idle(watcher.account.watch.idle_interval, run.stopped()).await?;
        Ok(Step::Worked)
    }
}

impl Component for Watching {
    type Error = Error;
    const WORDS: Words = Words { login: "cannot log in", lost: "connection lost; reconnecting" };

    async fn step(&mut self, run: &mut Run) -> Result<Step, Lost<Error>> {
        match self.pass(run).await {
            Ok(step) => Ok(step),
            Err(Failure::Connection(error)) => {
                // A new connection starts again from the checkpoint: nothing is kept of this one.
                self.conn.forget();
                match run.once() {
                    true => Err(Lost::Fatal(self.watcher.imap_error(error))),
                    false => Err(Lost::Retry(Trouble::imap(&error))),
                }
            }
            Err(Failure::Ended(error)) => Err(Lost::Fatal(error)),
        }
    }

    fn lost(&mut self, said: &str) {
        self.watcher.health.failed(said);
    }

    fn ended(&mut self, error: &Error) {
        // The watcher ends (a store failure) and its account with it, to be started again
        // with backoff (runtime): down meanwhile, so that /healthz and the alerts say so
        // instead of showing its last good state.
        if matches!(error, Error::Store { .. }) {
            self.watcher.health.failed(&format!("stopped until the account restarts: {}", error_chain(error)));
        }
    }

    async fn close(&mut self) {
        self.conn.logout().await;
    }
}

/// What came of evaluating one fetched message.
enum Decision {
    /// The plan to store.
    Plan(MessagePlan),
    /// Only its header was fetched and the rules want more (its body, or an outbound action
    /// that carries message content): fetch it whole and evaluate again. What was fetched,
    /// without the header bytes.
    WantsBody(Box<Fetched>),
}

/// Parses one fetched message, runs the rules, and turns their decisions into a stored plan.
fn evaluate(account: &Account, mailbox: &str, uidvalidity: u32, mut fetched: Fetched, rules: &RuleSet) -> Decision {
    let uid = fetched.uid;
    let key = MessageKey::new(account.name.clone(), mailbox, uidvalidity, uid);
    let span = tracing::info_span!("message", uid, uidvalidity);
    let _entered = span.enter();
    let meta = fetched.meta(key.clone());
    let view = Arc::new(crate::message::parse_owned(std::mem::take(&mut fetched.raw), meta));
    if view.truncated() {
        // Said once per message, where it is decided: a rule reading `msg.text` of such a
        // message gets "" and its author needs to know why.
        tracing::info!(
            size = view.size(),
            max_message_size = account.watch.max_message_size,
            "message over max_message_size: the rules see its header only (no body, no attachments)"
        );
    }
    let ruling = rules.decide(&view, &account.rules, chrono::Utc::now());
    if ruling.body_wanted {
        tracing::debug!("the rules want the whole message; fetching it");
        return Decision::WantsBody(Box::new(fetched));
    }
    // Only here, where the ruling is final: a failure on the header alone is not one (the
    // message is evaluated again whole), so it is neither logged nor counted.
    for failure in &ruling.failures {
        tracing::warn!(rule = %failure.rule, error = %failure.error, "rule failed; its decisions for this message are dropped");
    }
    for overridden in &ruling.plan.overridden {
        tracing::info!(rule = %overridden.rule, action = overridden.action.kind(), "disposition overridden by a later rule");
    }
    let decided = store::Decided {
        uid: Some(uid),
        message_id: view.message_id().map(str::to_owned),
        matched: ruling.matched,
        stopped_by: ruling.stopped_by,
    };
    Decision::Plan(MessagePlan {
        checkpoint: Checkpoint {
            account: account.name.clone(),
            mailbox: mailbox.to_owned(),
            uidvalidity,
            last_uid: uid,
        },
        actions: ruling.plan.actions.iter().map(|p| new_action(&view, p)).collect(),
        failures: ruling.failures.into_iter().map(|f| (f.rule, f.error)).collect(),
        // On Gmail the store keeps the first of the message's label folders to plan it.
        gmail_msgid: view.gmail().map(|g| g.msgid),
        decided,
    })
}

fn new_action(view: &MessageView, planned: &crate::plan::Planned) -> NewAction {
    let key = view.key();
    // Serialising a plain enum of strings cannot fail; `Null` would be refused by the store's
    // json check and surface as a store error, never as a silent wrong action.
    let payload = serde_json::to_value(&planned.action).unwrap_or(serde_json::Value::Null);
    let action = NewAction::new(planned.key.clone(), key.account.clone(), planned.action.kind(), payload)
        .for_message(key.mailbox.clone(), key.uidvalidity, key.uid)
        .by_rule(planned.rule.clone());
    match planned.action.not_before() {
        Some(at) => action.not_before(at),
        None => action,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use crate::message::{MessageKey, Meta, parse};
    use crate::plan::{Action, Event, Planned};

    /// The outbox row carries what `tidings outbox` shows and when the action may run.
    #[test]
    fn a_planned_action_is_stored_with_its_rule_and_its_time() {
        let view = parse(b"Subject: hi\r\n\r\nhi\r\n", Meta::new(MessageKey::new("work", "INBOX", 9, 42)));
        let at: DateTime<Utc> = "2030-01-02T03:04:05Z".parse().unwrap();
        let event = Event { at: Some(at), ..Event::new("ops", serde_json::json!({})) };
        let later = Planned { key: "k1".into(), rule: "notify.rhai".into(), action: Action::Webhook(event) };
        let new = super::new_action(&view, &later);
        assert_eq!((new.rule.as_deref(), new.not_before), (Some("notify.rhai"), Some(at)));
        assert_eq!(
            (new.kind.as_str(), new.mailbox.as_deref(), new.uidvalidity, new.uid),
            ("webhook", Some("INBOX"), Some(9), Some(42))
        );
        let now = Planned { key: "k2".into(), rule: "sort.rhai".into(), action: Action::Archive };
        assert_eq!(super::new_action(&view, &now).not_before, None);
    }
}
