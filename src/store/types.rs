//! The values that go in and out of the store: checkpoints, actions, outcomes, counts.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// Where a watcher stands in one mailbox: every uid up to `last_uid` has its plan stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The account name from the configuration.
    pub account: String,
    /// The mailbox name as the server spells it.
    pub mailbox: String,
    /// The mailbox's UIDVALIDITY: uids are meaningful only within one value.
    pub uidvalidity: u32,
    /// The highest uid whose plan is stored (0: none yet).
    pub last_uid: u32,
}

/// The store's id of an action; also the id shown by `tidings outbox`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionId(pub i64);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where an action stands in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionState {
    /// Waiting for `next_attempt_at`.
    Pending,
    /// Claimed by an executor, outcome not recorded yet.
    InFlight,
    /// A mail whose SMTP transaction may have begun: after a crash it becomes uncertain, never
    /// pending, so that it is not sent twice.
    Sending,
    /// Ran successfully.
    Done,
    /// Not carried out on purpose (a guard against reply loops, a reply already sent to the
    /// sender); `last_error` says why.
    Suppressed,
    /// Gave up (dead letter); `last_error` says why.
    Failed,
    /// Was in flight when tidings stopped: it may or may not have run, so it is not re-run.
    Uncertain,
    /// Dropped by a person (`tidings outbox drop`): never run.
    Dropped,
}

impl ActionState {
    /// Every state, in the order the outbox lists them.
    pub const ALL: [ActionState; 8] = [
        ActionState::Pending,
        ActionState::InFlight,
        ActionState::Sending,
        ActionState::Done,
        ActionState::Suppressed,
        ActionState::Failed,
        ActionState::Uncertain,
        ActionState::Dropped,
    ];

    /// The states that still need something: an executor to run them or a person to look.
    pub const ACTIONABLE: [ActionState; 5] = [
        ActionState::Pending,
        ActionState::InFlight,
        ActionState::Sending,
        ActionState::Failed,
        ActionState::Uncertain,
    ];

    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::InFlight => "in_flight",
            ActionState::Sending => "sending",
            ActionState::Done => "done",
            ActionState::Suppressed => "suppressed",
            ActionState::Failed => "failed",
            ActionState::Uncertain => "uncertain",
            ActionState::Dropped => "dropped",
        }
    }

    /// Whether a person may put it back to pending (`tidings outbox retry`): only what gave up
    /// or may not have run. Done and suppressed actions are settled, and what is pending, in
    /// flight or sending is an executor's.
    pub fn is_retryable(self) -> bool {
        matches!(self, ActionState::Failed | ActionState::Uncertain)
    }

    /// Whether a person may drop it (`tidings outbox drop`): what is waiting or stuck, never
    /// what an executor holds right now or what is settled.
    pub fn is_droppable(self) -> bool {
        matches!(self, ActionState::Pending | ActionState::Failed | ActionState::Uncertain)
    }
}

impl fmt::Display for ActionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is none of [`ActionState::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown action state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for ActionState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// An action of a plan, before it is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAction {
    /// Unique across the store: storing the same key again is a no-op (the first one wins).
    pub key: String,
    /// The account the action acts for.
    pub account: String,
    /// The mailbox of the message it acts on, if any.
    pub mailbox: Option<String>,
    /// The UIDVALIDITY of the message it acts on; set together with `uid`.
    pub uidvalidity: Option<u32>,
    /// The uid of the message it acts on; set together with `uidvalidity`.
    pub uid: Option<u32>,
    /// What to do: "move", "reply", "webhook", ...
    pub kind: String,
    /// The action's parameters.
    pub payload: serde_json::Value,
    /// Not to run before this time; `None`: due as soon as it is stored.
    pub not_before: Option<DateTime<Utc>>,
    /// The rule that planned it, for `tidings outbox` and event payloads; `None`: no rule
    /// (a follow-up such as saving a sent message).
    pub rule: Option<String>,
}

impl NewAction {
    /// An action due at once, about no message in particular.
    pub fn new(
        key: impl Into<String>,
        account: impl Into<String>,
        kind: impl Into<String>,
        payload: serde_json::Value,
    ) -> NewAction {
        NewAction {
            key: key.into(),
            account: account.into(),
            mailbox: None,
            uidvalidity: None,
            uid: None,
            kind: kind.into(),
            payload,
            not_before: None,
            rule: None,
        }
    }

    /// The same action, about message `uid` of `mailbox`.
    pub fn for_message(mut self, mailbox: impl Into<String>, uidvalidity: u32, uid: u32) -> Self {
        self.mailbox = Some(mailbox.into());
        self.uidvalidity = Some(uidvalidity);
        self.uid = Some(uid);
        self
    }

    /// The same action, not to run before `at`.
    pub fn not_before(mut self, at: DateTime<Utc>) -> Self {
        self.not_before = Some(at);
        self
    }

    /// The same action, planned by `rule`.
    pub fn by_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }
}

/// A stored action.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    /// The store's id.
    pub id: ActionId,
    /// The idempotency key it was stored with.
    pub key: String,
    /// The account the action acts for.
    pub account: String,
    /// The mailbox of the message it acts on, if any.
    pub mailbox: Option<String>,
    /// The UIDVALIDITY of the message it acts on, if any.
    pub uidvalidity: Option<u32>,
    /// The uid of the message it acts on, if any.
    pub uid: Option<u32>,
    /// What to do: "move", "reply", "webhook", ...
    pub kind: String,
    /// The action's parameters.
    pub payload: serde_json::Value,
    /// Where it stands.
    pub state: ActionState,
    /// How many times an executor claimed it.
    pub attempts: u32,
    /// When it is (or was) due.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was last claimed, while in flight or uncertain.
    pub claimed_at: Option<DateTime<Utc>>,
    /// The error of the last failed attempt, if any.
    pub last_error: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The rule that planned it, if any (actions stored before schema version 3 have none).
    pub rule: Option<String>,
}

/// What came of running a claimed action.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It ran.
    Done,
    /// It failed but may succeed later: pending again from `next_attempt_at`.
    Retry {
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
        /// Why this attempt failed.
        error: String,
    },
    /// It failed for good (dead letter).
    Failed {
        /// Why.
        error: String,
    },
    /// It was not carried out on purpose (a guard said no); kept with the reason.
    Suppressed {
        /// Why, for `tidings outbox`, `tidings test` and the logs.
        reason: String,
    },
}

/// How many actions are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting to run.
    pub pending: u64,
    /// Claimed by an executor.
    pub in_flight: u64,
    /// Mail being sent.
    pub sending: u64,
    /// Ran.
    pub done: u64,
    /// Not carried out on purpose.
    pub suppressed: u64,
    /// Gave up.
    pub failed: u64,
    /// Might have run; need a person to look.
    pub uncertain: u64,
    /// Dropped by a person.
    pub dropped: u64,
}

impl OutboxCounts {
    /// The count of one state.
    pub fn get(&self, state: ActionState) -> u64 {
        let mut copy = *self;
        *copy.slot(state)
    }

    pub(super) fn slot(&mut self, state: ActionState) -> &mut u64 {
        match state {
            ActionState::Pending => &mut self.pending,
            ActionState::InFlight => &mut self.in_flight,
            ActionState::Sending => &mut self.sending,
            ActionState::Done => &mut self.done,
            ActionState::Suppressed => &mut self.suppressed,
            ActionState::Failed => &mut self.failed,
            ActionState::Uncertain => &mut self.uncertain,
            ActionState::Dropped => &mut self.dropped,
        }
    }
}

/// One message's plan, for [`crate::store::Store::commit_plans`]: its actions, the failures
/// of the rules that ran on it, and the checkpoint that moves past it.
#[derive(Clone, Debug, PartialEq)]
pub struct MessagePlan {
    /// The mailbox position after this message (its UID as `last_uid`).
    pub checkpoint: Checkpoint,
    /// The actions to store.
    pub actions: Vec<NewAction>,
    /// `(rule, error)` for each rule that failed on the message.
    pub failures: Vec<(String, String)>,
    /// Gmail's X-GM-MSGID of the message, on Gmail: when another label folder's watcher
    /// stored a plan for the same id first, this one's actions and failures are dropped and
    /// only the checkpoint moves (see migration 5).
    pub gmail_msgid: Option<u64>,
    /// Its Message-ID and the rules that acted, for `tidings history`.
    pub decided: super::history::Decided,
}

/// A stored rule failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFailureRecord {
    /// The account.
    pub account: String,
    /// The mailbox.
    pub mailbox: String,
    /// The mailbox UIDVALIDITY.
    pub uidvalidity: u32,
    /// The message UID.
    pub uid: u32,
    /// The rule's name.
    pub rule: String,
    /// What went wrong.
    pub error: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One rule's failures since a moment ("rules failing now"), with its last failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailingRule {
    /// The rule's name.
    pub rule: String,
    /// How many messages it failed on since then.
    pub failures: u64,
    /// What went wrong the last time.
    pub last_error: String,
    /// When that was.
    pub last_at: DateTime<Utc>,
    /// The account of the message it last failed on.
    pub account: String,
    /// Its mailbox.
    pub mailbox: String,
    /// Its UID.
    pub uid: u32,
    /// Its Message-ID, without angle brackets; `None` when it has none.
    pub message_id: Option<String>,
}

/// What live rules collected for one account and not yet consumed, by name (each list oldest
/// first), as loaded for a schedule's run: what `collected(name)` gives its rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Collected {
    /// The data of each item, by the name it was collected under.
    pub items: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
    /// The highest row id loaded (0: none): the run consumes up to it and no further, so an
    /// item collected while it ran waits for the next run.
    pub up_to: i64,
}

/// A schedule run, finished: what [`crate::store::Store::finish_schedule_run`] stores at once.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRun {
    /// The schedule's name in the config.
    pub name: String,
    /// The fire time this run was for.
    pub fired_at: DateTime<Utc>,
    /// The last actions of the run (those of earlier chunks went in with
    /// `commit_schedule_chunk`).
    pub actions: Vec<NewAction>,
    /// What the run's rule read with `collected()`: `(account, names, up_to)`; those items are
    /// consumed, up to that row id only.
    pub consume: Option<(String, Vec<String>, i64)>,
    /// How it went.
    pub outcome: RunOutcome,
}

/// How a schedule run went, for `tidings schedules`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Messages the rule ran over (0 for a `run: once` schedule).
    pub messages: u64,
    /// Actions stored.
    pub actions: u64,
    /// Rule failures.
    pub failures: u64,
    /// Why the run did not complete (the server was down, ...); `None`: it did.
    pub error: Option<String>,
}

/// A schedule's last run as listed by [`crate::store::Store::schedule_runs`]: its name, the fire
/// time, and that run's outcome (`None`: recorded without one).
pub type LastRun = (String, DateTime<Utc>, Option<RunOutcome>);
