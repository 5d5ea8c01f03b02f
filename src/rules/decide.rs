//! The decider: one message in, one [`Ruling`] out. The watcher, the schedule sweeps,
//! `tidings test` and `tidings dry-run` all decide through here, so that what a dry run shows is
//! what the daemon stores: the same plan, keyed the same way, the same matched rules, the same
//! answer to "is this final or does it need the body".
//!
//! What callers do with a ruling (log it, store it, print it, check it against a fixture) is
//! theirs; deciding does no IO and logs nothing but the rules' own lines.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::evaluate::{Printed, RuleFailure};
use super::trigger::{Collected, Trigger};
use super::{Rule, RuleSet};
use crate::message::{MessageKey, MessageView};
use crate::plan::{self, Decision, Plan};

/// What the rules decided for one message (or for a schedule's rule run once without one).
#[derive(Clone, Debug)]
pub struct Ruling {
    /// The plan, ordered and keyed as it is stored.
    pub plan: Plan,
    /// Rules that decided something (overridden decisions included), then the rule that called
    /// `stop()`, each once, in the order they ran.
    pub matched: Vec<String>,
    /// The rule that called `stop()`, if any: later rules did not run.
    pub stopped_by: Option<String>,
    /// Rules that failed on this message (their decisions are not in the plan).
    pub failures: Vec<RuleFailure>,
    /// What the rules wrote with `print()` and `debug()`.
    pub printed: Vec<Printed>,
    /// Only the header was fetched and the rules want more (they read the body, or decided an
    /// outbound action, which carries message content): this ruling is not final; fetch the
    /// message whole and decide again. Rules are pure, so deciding twice changes nothing.
    pub body_wanted: bool,
    /// The collections a schedule's rule read with `collected()`: the run consumes those.
    pub read: BTreeSet<String>,
}

impl Ruling {
    /// A ruling with nothing decided for `message`: what a caller reports when deciding itself
    /// failed (the engine panicked), with the failure added.
    pub fn nothing(message: MessageKey, failure: RuleFailure) -> Ruling {
        Ruling {
            plan: Plan::build(message, Vec::new()),
            matched: Vec::new(),
            stopped_by: None,
            failures: vec![failure],
            printed: Vec::new(),
            body_wanted: false,
            read: BTreeSet::new(),
        }
    }
}

impl RuleSet {
    /// Decides `view` by the live rules that `globs` select, at `now` (what `now()` returns).
    /// Blocking (rules are CPU work): call it from a blocking thread.
    pub fn decide(&self, view: &Arc<MessageView>, globs: &[String], now: DateTime<Utc>) -> Ruling {
        let evaluation = self.evaluate(view, globs, now);
        let body_wanted = body_wanted(Some(view), evaluation.body_read, &evaluation.decisions);
        Ruling {
            matched: matched(&evaluation.decisions, evaluation.stopped_by.as_deref()),
            plan: Plan::build(view.key().clone(), evaluation.decisions),
            stopped_by: evaluation.stopped_by,
            failures: evaluation.failures,
            printed: evaluation.printed,
            body_wanted,
            read: BTreeSet::new(),
        }
    }

    /// Decides by a schedule's `rule` as its schedule does when it fires (`trigger`, at `now`):
    /// over `view`, or once without a message. `key` stands for the message in the plan (for a
    /// run without one, a key no message has). A schedule's decisions are keyed by the fire
    /// ([`plan::schedule_key`]): a fire run again after a crash stores nothing twice.
    pub fn decide_scheduled(
        &self,
        rule: &Rule,
        view: Option<&Arc<MessageView>>,
        key: MessageKey,
        trigger: &Trigger,
        now: DateTime<Utc>,
        collected: &Collected,
    ) -> Ruling {
        let evaluation = self.evaluate_scheduled_rule(rule, view, trigger, now, collected);
        let body_wanted = body_wanted(view, evaluation.body_read, &evaluation.decisions);
        let matched = matched(&evaluation.decisions, None);
        let message = view.map(|v| v.key());
        let plan = match trigger {
            Trigger::Schedule { name, fired_at } => Plan::build_keyed(key, evaluation.decisions, |_, d| {
                plan::schedule_key(name, *fired_at, message, &d.rule, d.position)
            }),
            Trigger::Live => Plan::build(key, evaluation.decisions),
        };
        Ruling {
            matched,
            plan,
            stopped_by: None,
            failures: evaluation.failures,
            printed: evaluation.printed,
            body_wanted,
            read: evaluation.read,
        }
    }

    /// The schedule rule named `name` (its path relative to the rules directory, as the config
    /// gives it), or the failure to report when no schedule named it at compile time.
    pub fn scheduled_rule(&self, name: &str) -> Result<&Rule, RuleFailure> {
        self.scheduled.iter().find(|r| r.name == name).ok_or_else(|| RuleFailure {
            rule: name.to_owned(),
            error: "cannot run rule: no schedule in the config names it, so it was not compiled".to_owned(),
        })
    }
}

/// Whether a ruling on `view` is not final: its body was not fetched, and the rules read it or
/// decided something other than a mailbox action (outbound actions carry message content).
fn body_wanted(view: Option<&Arc<MessageView>>, body_read: bool, decisions: &[Decision]) -> bool {
    view.is_some_and(|v| v.body_deferred())
        && (body_read || decisions.iter().any(|d| !plan::MAILBOX_KINDS.contains(&d.action.kind())))
}

/// The rules that made a decision, then the stopping rule, each once, in order.
fn matched(decisions: &[Decision], stopped_by: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in decisions.iter().map(|d| d.rule.as_str()).chain(stopped_by) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
