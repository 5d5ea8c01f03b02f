//! Rule tooling: `tidings test` (rules over `.eml` files and fixtures, no account, no network)
//! and `tidings dry-run` (rules over a real mailbox, changing nothing); and `tidings outbox`
//! (see [`outbox`]), the one tooling command that changes the store: by a person's hand.
//! `tidings schedules` (see [`schedules`]) lists each schedule's next fires and last run;
//! `tidings status` and `tidings history` (see [`status`]) show the daemon's health and what
//! happened to a message. `tidings init` (see [`init`]) writes a first config and rule set.
//!
//! Input: a compiled [`RuleSet`] and messages (files, fixture cases, or fetched read-only with
//! EXAMINE and `BODY.PEEK`). Output: per message a [`Verdict`] (the rules that decided
//! something, the [`Plan`] exactly as the live pipeline would store it, the overridden
//! dispositions, the rule failures and the replies the reply guards would suppress), printed for
//! people or as one JSON object per line, and for a dry run a [`summary::Summary`].
//!
//! What it must not do: write to the store, change anything on a server, or decide exit codes
//! (the binary does; this module reports outcomes and classifies errors).
//!
//! Layer: orchestration (see the map in lib.rs): it may use every layer below.

pub mod dry_run;
pub mod error_text;
pub mod expect;
pub mod fixtures;
pub mod init;
pub mod outbox;
pub mod probe;
mod progress;
pub mod report;
pub mod schedules;
pub mod status;
pub mod summary;
pub mod test_cmd;

#[cfg(test)]
mod test_output_tests;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::Account;
use crate::exec::mail::guard;
use crate::message::{MessageKey, MessageView};
use crate::plan::{Action, Plan};
use crate::rules::{Collected, Printed, Rule, RuleFailure, RuleSet, Ruling, Trigger};

/// The "rule" a failure is charged to when the engine itself failed (it panicked).
pub const ENGINE: &str = "(rule engine)";

/// What the rules decided for one message, ready to print or compare.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Rules that decided something (overridden decisions included), and the rule that called
    /// `stop()`, in the order they ran.
    pub rules_matched: Vec<String>,
    /// The rule that called `stop()`, if any: later rules did not run.
    pub stopped_by: Option<String>,
    /// The plan, ordered and keyed as the live pipeline stores it.
    pub plan: Plan,
    /// Rules that failed on this message (their decisions are not in the plan).
    pub failures: Vec<RuleFailure>,
    /// Replies in the plan that the reply guards would not send, by their index in
    /// `plan.actions`, with the reason (see [`Verdict::guard`]).
    pub suppressed: Vec<(usize, String)>,
    /// What the rules wrote with `print()` and `debug()`, shown under the message.
    pub printed: Vec<Printed>,
}

impl Verdict {
    /// Decides `view` by the live rules that `globs` select, at time `now`, as the watcher does.
    /// A panic in the rule engine is reported as a failure of this message, not a crash of the
    /// whole run: one message must not hide the verdicts on thousands of others.
    pub fn judge(rules: &RuleSet, view: &Arc<MessageView>, globs: &[String], now: DateTime<Utc>) -> Verdict {
        let ruling = catch_unwind(AssertUnwindSafe(|| rules.decide(view, globs, now)))
            .unwrap_or_else(|panic| Ruling::nothing(view.key().clone(), engine_panic(&panic)));
        Verdict::of(ruling)
    }

    /// Decides by a schedule's `rule` as its schedule does when it fires (`trigger`, at `now`):
    /// over `view`, or once without a message. `key` stands for the message in the plan (any key
    /// when there is none). Returns the verdict and the names `collected()` read, sorted.
    pub fn judge_scheduled(
        rules: &RuleSet,
        rule: &Rule,
        view: Option<&Arc<MessageView>>,
        key: MessageKey,
        trigger: &Trigger,
        now: DateTime<Utc>,
        collected: &Collected,
    ) -> (Verdict, Vec<String>) {
        let decide = || rules.decide_scheduled(rule, view, key.clone(), trigger, now, collected);
        let mut ruling = catch_unwind(AssertUnwindSafe(decide))
            .unwrap_or_else(|panic| Ruling::nothing(key.clone(), engine_panic(&panic)));
        let read = std::mem::take(&mut ruling.read).into_iter().collect();
        (Verdict::of(ruling), read)
    }

    /// The decider's ruling, before the guards are looked at.
    fn of(ruling: Ruling) -> Verdict {
        Verdict {
            rules_matched: ruling.matched,
            stopped_by: ruling.stopped_by,
            plan: ruling.plan,
            failures: ruling.failures,
            suppressed: Vec::new(),
            printed: ruling.printed,
        }
    }

    /// Notes the replies that the reply guards would suppress when the outbox sends them (a
    /// list, a robot, automatic mail, the account itself, no usable envelope sender ...), and
    /// the forwards the loop marker would stop. With the account, every guard; without one
    /// (`tidings test` for an account the config lacks), those that need no account.
    /// The once-per-`days` memory and the daily cap live in the store, so they are not shown.
    pub fn guard(mut self, account: Option<&Account>) -> Verdict {
        self.suppressed = self
            .plan
            .actions
            .iter()
            .enumerate()
            .filter_map(|(i, planned)| match &planned.action {
                Action::Reply(reply) => guard::check_reply(reply, account).err().map(|s| (i, s.reason)),
                Action::Forward(forward) => guard::check_recipients(&forward.to, &[])
                    .and_then(|()| account.map_or(Ok(()), |account| guard::check_forward(&forward.original, account)))
                    .err()
                    .map(|s| (i, s.reason)),
                Action::Send(message) => guard::check_recipients(&message.to, &message.cc).err().map(|s| (i, s.reason)),
                _ => None,
            })
            .collect();
        self
    }

    /// Why the action at `index` of the plan would be suppressed, if it would.
    pub fn suppressed(&self, index: usize) -> Option<&str> {
        self.suppressed.iter().find(|(i, _)| *i == index).map(|(_, reason)| reason.as_str())
    }
}

/// A panic of the rule engine as a failure of the message it was deciding.
fn engine_panic(panic: &Box<dyn std::any::Any + Send>) -> RuleFailure {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    RuleFailure { rule: ENGINE.to_owned(), error: format!("the rule engine panicked: {message}") }
}

/// One problem in a fixture file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureProblem {
    /// The fixture file.
    pub path: PathBuf,
    /// The case (from 1), if the problem is in one.
    pub case: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Why a test or dry run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path given on the command line cannot be read.
    #[error("cannot read {path}")]
    ReadPath {
        /// The path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// No path was given and the rules directory has no fixtures.
    #[error("cannot find anything to test: no PATH given and no *.yaml fixtures in {dir}")]
    NothingToTest {
        /// Where fixtures were looked for.
        dir: PathBuf,
    },
    /// Fixture files are wrong; every problem found is listed.
    #[error("cannot load fixtures: {}", list(.0))]
    Fixtures(Vec<FixtureProblem>),
    /// The account named on the command line is not in the config.
    #[error("cannot find account `{name}` in the config (accounts: {known})")]
    UnknownAccount {
        /// The name given.
        name: String,
        /// The names in the config, comma-separated.
        known: String,
    },
    /// A command-line option has a value that cannot be used.
    #[error("cannot use {option}: {reason}")]
    Option {
        /// The option, e.g. `--since 30x`.
        option: String,
        /// Why not.
        reason: String,
    },
    /// The account's password cannot be read.
    #[error("cannot resolve the password of account `{account}`")]
    Secret {
        /// The account.
        account: String,
        /// What went wrong.
        #[source]
        source: crate::config::secret::Error,
    },
    /// The server refused or failed.
    #[error("cannot dry-run {account}/{mailbox}")]
    Imap {
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// The IMAP error (boxed: it is large, and rare).
        #[source]
        source: Box<crate::imap::Error>,
    },
    /// Writing the report failed (a closed pipe, a full disk).
    #[error("cannot write the report")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// Whether the input is at fault (a path, a fixture, an option, the account name), rather
    /// than the server or the output: the binary exits with its usage status then.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::ReadPath { .. }
                | Error::NothingToTest { .. }
                | Error::Fixtures(_)
                | Error::UnknownAccount { .. }
                | Error::Option { .. }
        )
    }
}

fn list(problems: &[FixtureProblem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match p.case {
            Some(case) => format!("\n  {}: case {case}: {}", p.path.display(), p.message),
            None => format!("\n  {}: {}", p.path.display(), p.message),
        })
        .collect();
    format!("{} problem{}{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, lines.concat())
}

/// A verdict of rule "r" deciding `actions` for a message of account `t`, for unit tests.
#[cfg(test)]
pub(crate) fn test_verdict(actions: Vec<crate::plan::Action>) -> Verdict {
    let decisions = actions.into_iter().enumerate().map(|(position, action)| crate::plan::Decision {
        rule: "r".into(),
        position,
        action,
    });
    Verdict {
        rules_matched: vec![],
        stopped_by: None,
        plan: crate::plan::Plan::build(crate::message::MessageKey::new("t", "INBOX", 1, 1), decisions.collect()),
        failures: vec![],
        suppressed: vec![],
        printed: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_engine_is_one_message_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/a.rhai"), "boom();\n").unwrap();
        let config = crate::config::Config::from_yaml("accounts: {}\n", &dir.path().join("t.yaml")).unwrap();
        let mut rules = RuleSet::compile(&config).unwrap();
        rules.engine.register_fn("boom", || -> () { panic!("kaboom") });
        let view = Arc::new(crate::message::parse(
            b"Subject: x\n\ny\n",
            crate::message::Meta::new(crate::message::MessageKey::new("t", "INBOX", 1, 1)),
        ));
        let verdict = Verdict::judge(&rules, &view, &[], Utc::now());
        // The rule set catches an engine panic per rule, so the failure names the rule that was
        // running; the tooling's own guard (ENGINE) remains for panics outside a rule.
        assert_eq!(
            verdict.failures,
            [RuleFailure { rule: "a.rhai".into(), error: "the rule engine panicked: kaboom".into() }]
        );
        assert!(verdict.plan.actions.is_empty());
    }
}
