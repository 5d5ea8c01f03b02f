//! Running rules: the live rules over one message, or a schedule's rule over one message or
//! none; a fresh scope and plan per rule, failures contained.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rhai::{CallFnOptions, EvalAltResult, ImmutableString, Scope};

use super::api::actions::{self, Evaluating, Recorder};
use super::api::address::glob;
use super::api::message::{BodyRead, Msg};
use super::trigger::{Collected, Trigger};
use super::{Rule, RuleSet};
use crate::message::MessageView;
use crate::plan::Decision;

/// What the rules decided for one message.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Every decision, in the order made (rule order, then call order).
    pub decisions: Vec<Decision>,
    /// Rules that failed on this message; their decisions are dropped.
    pub failures: Vec<RuleFailure>,
    /// The rule that called `stop()`, if any; later rules did not run.
    pub stopped_by: Option<String>,
    /// What the rules wrote with `print()` and `debug()`, in order.
    pub printed: Vec<Printed>,
    /// Whether a rule read the message's body (text, HTML, attachments), failed rules included.
    pub body_read: bool,
}

/// A line a rule wrote with `print()` or `debug()`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Printed {
    /// The rule's name.
    pub rule: String,
    /// The line, at most [`super::printed::MAX_CHARS`] characters.
    pub text: String,
}

/// A rule that failed at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFailure {
    /// The rule's name.
    pub rule: String,
    /// What went wrong, with the script position.
    pub error: String,
}

impl RuleSet {
    /// Runs the live rules that `selected` allows over `message`, in order, until one stops.
    /// `now` is the trigger's time, which rules read with `now()`: injected, so that fixtures
    /// and dry runs can fix it. Blocking (rules are CPU work): call it from a blocking thread.
    pub fn evaluate(&self, message: &Arc<MessageView>, selected: &[String], now: DateTime<Utc>) -> Evaluation {
        let mut evaluation = Evaluation::default();
        let context = Context::new(Some(message), now, Trigger::Live, None);
        for rule in self.live.iter().filter(|r| selects(selected, &r.name)) {
            let span = tracing::info_span!("rule", rule = %rule.name);
            let _entered = span.enter();
            let result = self.run(rule, &context, actions::Tally::of(&evaluation.decisions));
            evaluation.printed.extend(printed(rule));
            match result {
                Ok(recorder) => {
                    evaluation.decisions.extend(recorder.decisions);
                    if recorder.stopped {
                        evaluation.stopped_by = Some(rule.name.clone());
                        break;
                    }
                }
                Err(error) => {
                    // Logged by the caller, once the evaluation is final: a message evaluated on
                    // its header first is evaluated again whole, and only that one counts.
                    tracing::debug!(%error, "rule failed in this evaluation");
                    evaluation.failures.push(RuleFailure { rule: rule.name.clone(), error });
                }
            }
        }
        evaluation.body_read = context.body_read.get();
        evaluation
    }

    /// Runs one rule once; its recorder, or why it failed. A rule past its wall-clock limit is
    /// not run again: running it twice would let one slow rule hold its account (and the
    /// blocking pool) for twice its limit on every message.
    pub(super) fn run(&self, rule: &Rule, context: &Context, earlier: actions::Tally) -> Result<Recorder, String> {
        // Lines an earlier evaluation on this thread left (one that panicked) are not this rule's.
        super::printed::take();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.attempt(rule, context, earlier)))
            .unwrap_or_else(|panic| Err(Attempt::Panicked(panic_text(&panic))))
            .map_err(|e| e.describe(&self.limits))
    }

    fn attempt(&self, rule: &Rule, context: &Context, earlier: actions::Tally) -> Result<Recorder, Attempt> {
        // Before the clock starts: waiting for a core, or compiling the slot's copy of the rule,
        // is not the rule's time (see `slots`).
        let slot = super::slots::SLOTS.take();
        let ast = rule.copy(slot.index, &self.engine).map_err(Attempt::Copy)?;
        // Room for `msg` and a rule's usual handful of `let`s, without regrowing on each.
        let mut scope = Scope::with_capacity(16);
        // A schedule's rule without a message (`run: once`) sees `msg` as `()`.
        match &context.message {
            Some(message) => scope.push_constant(MSG.clone(), Msg(Arc::clone(message), context.body_read.clone())),
            None => scope.push_constant(MSG.clone(), ()),
        };
        let recorder = Recorder::new(
            rule.name.clone(),
            context.now,
            earlier,
            context.message.clone(),
            context.trigger.clone(),
            context.collected.clone(),
        );
        let evaluating = Evaluating::new(recorder);
        // The recorder goes to the API functions as the run's tag, not through a global: the
        // rule's statements run, then a no-op the engine needs a name for (see `actions::END`).
        let options = CallFnOptions::new().eval_ast(true).in_all_namespaces(true).with_tag(evaluating.clone());
        let deadline = Instant::now() + self.limits.wall_time;
        let result = actions::on_the_clock(deadline, || {
            self.engine.call_fn_with_options::<()>(options, &mut scope, ast, actions::END, ())
        });
        let recorder = evaluating.finish();
        match result {
            Ok(()) => Ok(recorder),
            Err(err) if actions::is_stop(&err) => Ok(recorder),
            Err(err) if matches!(*err, EvalAltResult::ErrorTerminated(..)) => Err(Attempt::TimedOut),
            Err(err) => Err(Attempt::Failed(err)),
        }
    }
}

/// What one evaluation runs with, whatever the rule.
pub(super) struct Context {
    /// The message; `None` for a schedule's rule run once without one.
    pub message: Option<Arc<MessageView>>,
    /// What `now()` returns.
    pub now: DateTime<Utc>,
    /// What started it.
    pub trigger: Trigger,
    /// What live rules collected, for a schedule's rule.
    pub collected: Option<Arc<Collected>>,
    /// Whether a rule of this evaluation read the body: the evaluation's, not the view's.
    pub body_read: BodyRead,
}

impl Context {
    pub(super) fn new(
        message: Option<&Arc<MessageView>>,
        now: DateTime<Utc>,
        trigger: Trigger,
        collected: Option<Arc<Collected>>,
    ) -> Context {
        Context { message: message.cloned(), now, trigger, collected, body_read: BodyRead::default() }
    }
}

/// How one run of a rule failed.
enum Attempt {
    /// Past the wall-clock limit.
    TimedOut,
    /// Any other error.
    Failed(Box<EvalAltResult>),
    /// The engine panicked (a bug in rhai or in tidings, never the rule's fault alone): the
    /// message still gets a verdict and the watcher goes on.
    Panicked(String),
    /// The slot's copy of the rule did not compile (it compiled once already: a bug).
    Copy(String),
}

/// The name `msg`, made once rather than on every evaluation.
static MSG: LazyLock<ImmutableString> = LazyLock::new(|| "msg".into());

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

impl Attempt {
    fn describe(&self, limits: &crate::config::Limits) -> String {
        match self {
            Attempt::TimedOut => format!("stopped after the wall-clock limit of {:?}", limits.wall_time),
            Attempt::Failed(err) => describe(err, limits),
            Attempt::Panicked(text) => format!("the rule engine panicked: {text}"),
            Attempt::Copy(text) => text.clone(),
        }
    }
}

fn describe(err: &EvalAltResult, limits: &crate::config::Limits) -> String {
    match err {
        EvalAltResult::ErrorTerminated(..) => format!("stopped after the wall-clock limit of {:?}", limits.wall_time),
        EvalAltResult::ErrorTooManyOperations(pos) => {
            format!("stopped after the limit of {} operations ({pos})", limits.operations)
        }
        // A typo that only shows at run time gets the nearest known name, as tidings.yaml's do.
        other => match super::hint::did_you_mean(other) {
            Some(hint) => format!("{other}; {hint}"),
            None => other.to_string(),
        },
    }
}

/// What `rule` printed in the run that just ended.
pub(super) fn printed(rule: &Rule) -> impl Iterator<Item = Printed> + '_ {
    super::printed::take().into_iter().map(|text| Printed { rule: rule.name.clone(), text })
}

/// Whether the account's `rules:` globs select `name`; no globs select every rule.
pub fn selects(globs: &[String], name: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| glob(g, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_select_rules() {
        assert!(selects(&[], "any.rhai"));
        let globs = vec!["news*".to_owned(), "?-receipts.rhai".to_owned()];
        assert!(selects(&globs, "newsletters.rhai"));
        assert!(selects(&globs, "1-receipts.rhai"));
        assert!(!selects(&globs, "10-receipts.rhai"));
        assert!(!selects(&globs, "github.rhai"));
        assert!(glob("*a*b", "xxaxxb"));
        assert!(!glob("*a*b", "xxaxxbc"));
    }
}
