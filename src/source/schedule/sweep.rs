//! One fire of one schedule: select the messages, run the rule over each, store the plans.
//!
//! The server selects (EXAMINE, then the schedule's SEARCH; see [`super::search`]); the hits
//! are fetched a chunk at a time (each a byte budget at a time), parsed, and the schedule's one rule runs over each with
//! `now()` the fire time and `msg.trigger` this schedule. The plans are keyed by schedule, fire
//! time and message ([`crate::plan::schedule_key`]), so a fire run again after a crash stores nothing
//! twice. Each chunk is stored before the next is fetched; the last transaction also records
//! the fire, its outcome, and consumes what the rule read with `collected()`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::Instrument;

use super::{Error, search};
use crate::causes::error_chain;
use crate::config::{Account, Run, Schedule};
use crate::exec::Wake;
use crate::imap::{Fetched, Login, Session, Timeouts};
use crate::message::{MessageKey, MessageView};
use crate::plan::Plan;
use crate::rules::{CurrentRules, RuleFailure, RuleSet, Trigger};
use crate::store::{Collected, NewAction, RunOutcome, ScheduleRun, Store};

/// Messages fetched, evaluated and stored per step: a big sweep never holds them all.
const CHUNK: usize = 100;
/// The most collected items one run loads for its rule.
const COLLECTED_LIMIT: usize = 10_000;

/// What one schedule's fires need.
pub struct Sweep {
    /// The schedule's account.
    pub account: Arc<Account>,
    /// The schedule.
    pub schedule: Arc<Schedule>,
    /// The account's IMAP login.
    pub login: Login,
    /// IMAP deadlines.
    pub timeouts: Timeouts,
    /// Where plans and runs are stored.
    pub store: Store,
    /// The rules in force; read once per fire.
    pub rules: CurrentRules,
    /// The account's executors, woken when a run stored actions.
    pub wake: Arc<Wake>,
}

/// What a run has done so far.
#[derive(Debug, Default)]
struct Tally {
    messages: u64,
    actions: u64,
    failures: u64,
    /// The collections the rule read.
    read: BTreeSet<String>,
    /// The last chunk's actions: they go in with the run's record.
    pending: Vec<NewAction>,
}

/// What the rule made of one message (or of the fire, for a schedule without messages).
#[derive(Debug, Default)]
struct Judged {
    actions: Vec<NewAction>,
    failures: Vec<RuleFailure>,
    read: BTreeSet<String>,
}

impl Sweep {
    /// Runs the fire at `fired_at` and records it with its outcome. A failure of the server or
    /// of the search is the run's outcome, recorded like success: that fire is done, the next
    /// one runs as usual. `Err` only when the store failed; `Ok(None)` when `shutdown` came
    /// mid-run: the fire is not recorded, so a restart can run it again (idempotently).
    pub async fn fire(
        &self,
        fired_at: DateTime<Utc>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Option<RunOutcome>, Error> {
        let started_at = Utc::now();
        let collected =
            self.store.collected(&self.account.name, COLLECTED_LIMIT).await.map_err(|e| self.store_error(e))?;
        let collected = Arc::new(collected);
        let rules = self.rules.get();
        let mut tally = Tally::default();
        let ran = match self.schedule.run {
            Run::PerMessage => self.sweep(&rules, fired_at, &collected, &mut tally, shutdown).await,
            Run::Once => Ok(self.once(&rules, fired_at, &collected, &mut tally).await),
        };
        let error = match ran {
            Ok(true) => None,
            Ok(false) => return Ok(None),
            Err(e @ Error::Store { .. }) => return Err(e),
            Err(e) => Some(error_chain(&e)),
        };
        let outcome = RunOutcome {
            started_at,
            finished_at: Utc::now(),
            messages: tally.messages,
            actions: tally.actions,
            failures: tally.failures,
            error,
        };
        let consume = (!tally.read.is_empty())
            .then(|| (self.account.name.clone(), tally.read.iter().cloned().collect(), collected.up_to));
        let run = ScheduleRun {
            name: self.schedule.name.clone(),
            fired_at,
            actions: std::mem::take(&mut tally.pending),
            consume,
            outcome: outcome.clone(),
        };
        self.store.finish_schedule_run(run).await.map_err(|e| self.store_error(e))?;
        if outcome.actions > 0 {
            self.wake.notify();
        }
        match &outcome.error {
            None => tracing::info!(
                fired_at = %fired_at.to_rfc3339(),
                messages = outcome.messages,
                actions = outcome.actions,
                failures = outcome.failures,
                "schedule ran"
            ),
            Some(error) => {
                tracing::error!(fired_at = %fired_at.to_rfc3339(), messages = outcome.messages, %error, "schedule run failed")
            }
        }
        Ok(Some(outcome))
    }

    /// The sweep proper; `Ok(false)` if stopped by `shutdown` between chunks.
    async fn sweep(
        &self,
        rules: &Arc<RuleSet>,
        fired_at: DateTime<Utc>,
        collected: &Arc<Collected>,
        tally: &mut Tally,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, Error> {
        let span = tracing::info_span!("mailbox", mailbox = %self.schedule.mailbox);
        async move {
            let mut session = Session::connect(&self.login, self.timeouts).await.map_err(|e| self.imap_error(e))?;
            let selected = session.examine(&self.schedule.mailbox).await.map_err(|e| self.imap_error(e))?;
            let query = search::build(
                &self.schedule.name,
                &self.schedule.search,
                session.capabilities(),
                fired_at,
                Utc::now(),
            )?;
            let mut uids = session.search(&query.criteria).await.map_err(|e| self.imap_error(e))?;
            if query.refine.is_needed() {
                let dates = session.internal_dates(&uids).await.map_err(|e| self.imap_error(e))?;
                uids = dates.into_iter().filter(|(_, date)| query.refine.keeps(*date)).map(|(uid, _)| uid).collect();
            }
            tracing::info!(criteria = %query.criteria.to_string().replace("\r\n", " "), found = uids.len(), "searched");
            for chunk in uids.chunks(CHUNK) {
                if *shutdown.borrow() {
                    tracing::info!("shutting down mid-sweep; the fire is left for the next start");
                    return Ok(false);
                }
                let max = self.account.watch.max_message_size;
                let mut groups = session.groups(chunk, max).await.map_err(|e| self.imap_error(e))?;
                // A byte budget at a time, each group judged and its bytes dropped before the next.
                while let Some(fetched) = session.fetch_group(&mut groups).await.map_err(|e| self.imap_error(e))? {
                    let judged = self.judge_all(rules, selected.uidvalidity, fetched, fired_at, collected).await;
                    self.take(judged, tally).await?;
                }
            }
            if let Err(e) = session.logout().await {
                tracing::debug!(error = %e, "logout failed; the connection is dropped anyway");
            }
            Ok(true)
        }
        .instrument(span)
        .await
    }

    /// `run: once`: the rule runs one time with no message; its actions go in with the record.
    async fn once(
        &self,
        rules: &Arc<RuleSet>,
        fired_at: DateTime<Utc>,
        collected: &Arc<Collected>,
        tally: &mut Tally,
    ) -> bool {
        let (rules, collected, schedule) = (rules.clone(), collected.clone(), self.schedule.clone());
        let account = self.account.name.clone();
        let span = tracing::Span::current();
        let judged = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            judge(&rules, &schedule, &account, None, fired_at, &collected)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        tally.failures += judged.failures.len() as u64;
        tally.actions += judged.actions.len() as u64;
        tally.read.extend(judged.read);
        tally.pending = judged.actions;
        true
    }

    /// Parses and evaluates a chunk on a blocking thread (rules are CPU work).
    async fn judge_all(
        &self,
        rules: &Arc<RuleSet>,
        uidvalidity: u32,
        fetched: Vec<Fetched>,
        fired_at: DateTime<Utc>,
        collected: &Arc<Collected>,
    ) -> Vec<Judged> {
        let (rules, collected, schedule) = (rules.clone(), collected.clone(), self.schedule.clone());
        let account = self.account.name.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let judge = |f: Fetched| judge_message(&rules, &schedule, &account, uidvalidity, f, fired_at, &collected);
            fetched.into_iter().map(judge).collect()
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Counts a chunk's verdicts, stores the previous chunk's actions, and keeps this one's for
    /// the next store (or the run's record).
    async fn take(&self, judged: Vec<Judged>, tally: &mut Tally) -> Result<(), Error> {
        let mut actions = Vec::new();
        for j in judged {
            tally.messages += 1;
            tally.failures += j.failures.len() as u64;
            tally.actions += j.actions.len() as u64;
            tally.read.extend(j.read);
            actions.extend(j.actions);
        }
        let earlier = std::mem::replace(&mut tally.pending, actions);
        if !earlier.is_empty() {
            let stored = earlier.len();
            self.store.commit_schedule_chunk(earlier).await.map_err(|e| self.store_error(e))?;
            tracing::debug!(actions = stored, "chunk stored");
            self.wake.notify();
        }
        Ok(())
    }

    fn imap_error(&self, source: crate::imap::Error) -> Error {
        Error::Imap {
            schedule: self.schedule.name.clone(),
            account: self.account.name.clone(),
            mailbox: self.schedule.mailbox.clone(),
            source: Box::new(source),
        }
    }

    fn store_error(&self, source: crate::store::Error) -> Error {
        Error::Store { schedule: self.schedule.name.clone(), source: Box::new(source) }
    }
}

/// Parses one fetched message and runs the schedule's rule over it.
fn judge_message(
    rules: &RuleSet,
    schedule: &Schedule,
    account: &str,
    uidvalidity: u32,
    fetched: Fetched,
    fired_at: DateTime<Utc>,
    collected: &Collected,
) -> Judged {
    let key = MessageKey::new(account, schedule.mailbox.as_str(), uidvalidity, fetched.uid);
    let span = tracing::info_span!("message", uid = fetched.uid, uidvalidity);
    let _entered = span.enter();
    let view = Arc::new(crate::message::parse(&fetched.raw, fetched.meta(key)));
    judge(rules, schedule, account, Some(&view), fired_at, collected)
}

/// Decides by the schedule's rule over `message` (or once without one), `now()` being the fire
/// time, and makes the plan outbox rows.
fn judge(
    rules: &RuleSet,
    schedule: &Schedule,
    account: &str,
    message: Option<&Arc<MessageView>>,
    fired_at: DateTime<Utc>,
    collected: &Collected,
) -> Judged {
    let trigger = Trigger::Schedule { name: schedule.name.clone(), fired_at };
    // The config names the rule by its path under the rules directory, as the rule set does.
    let rule = match rules.scheduled_rule(&schedule.rule.to_string_lossy()) {
        Ok(rule) => rule,
        Err(failure) => return Judged { failures: vec![failure], ..Judged::default() },
    };
    // UID 0 never names a message (IMAP UIDs start at 1): the stand-in of a run without one.
    let key = message.map_or_else(|| MessageKey::new(account, schedule.mailbox.as_str(), 0, 0), |v| v.key().clone());
    let ruling = rules.decide_scheduled(rule, message, key, &trigger, fired_at, collected);
    let actions = new_actions(account, message.map(|v| v.key()), ruling.plan);
    Judged { actions, failures: ruling.failures, read: ruling.read }
}

/// The plan's actions as outbox rows. `message` is `None` for a fire without messages: then
/// only outbound actions make sense, and any other is dropped.
fn new_actions(account: &str, message: Option<&MessageKey>, plan: Plan) -> Vec<NewAction> {
    for overridden in &plan.overridden {
        tracing::info!(rule = %overridden.rule, action = overridden.action.kind(), "disposition overridden by a later decision");
    }
    plan.actions
        .into_iter()
        .filter_map(|planned| {
            if message.is_none() && !planned.action.is_outbound() {
                tracing::warn!(rule = %planned.rule, action = planned.action.kind(), "a rule run without a message cannot act on one; dropped");
                return None;
            }
            // Serialising a plain enum of strings cannot fail; `Null` would be refused by the
            // store's json check and surface as a store error, never as a silent wrong action.
            let payload = serde_json::to_value(&planned.action).unwrap_or(serde_json::Value::Null);
            let mut action = NewAction::new(planned.key, account, planned.action.kind(), payload).by_rule(planned.rule);
            if let Some(m) = message {
                action = action.for_message(m.mailbox.clone(), m.uidvalidity, m.uid);
            }
            if let Some(at) = planned.action.not_before() {
                action = action.not_before(at);
            }
            Some(action)
        })
        .collect()
}
