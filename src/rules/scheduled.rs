//! Running a schedule's rule: over each message a sweep selected, or once without a message
//! (`run: once`: digests, notices), with `now()` the fire time and `msg.trigger` the schedule.
//!
//! The same engine, limits, caps and failure handling as live rules; what differs is what the
//! rule is told (the trigger), what it may read (`collected()`) and what the run must consume
//! afterwards (the names it read).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::api::actions::Tally;
use super::evaluate::{Context, RuleFailure};
use super::trigger::{Collected, Trigger};
use super::{CompileError, Compiler, Rule, RuleSet};
use crate::message::MessageView;
use crate::plan::Decision;

/// What a schedule's rule decided for one message, or for its one run without a message.
#[derive(Debug, Default)]
pub struct ScheduledEvaluation {
    /// Its decisions, in the order made.
    pub decisions: Vec<Decision>,
    /// The rule's failure, if it failed (its decisions are then dropped).
    pub failures: Vec<RuleFailure>,
    /// The collections the rule read with `collected()`: the run consumes those, and only if it
    /// stores its plan.
    pub read: BTreeSet<String>,
    /// What the rule wrote with `print()` and `debug()`.
    pub printed: Vec<super::Printed>,
    /// Whether the rule read the message's body, failed or not.
    pub body_read: bool,
}

impl RuleSet {
    /// Runs the schedule rule named `rule` (its path relative to the rules directory, as in the
    /// config) over `message`, or once without one. `now` is what `now()` returns (the fire
    /// time), `trigger` what `msg.trigger` tells, `collected` what `collected(name)` gives.
    /// Blocking, like [`RuleSet::evaluate`].
    pub fn evaluate_scheduled(
        &self,
        rule: &str,
        message: Option<&Arc<MessageView>>,
        trigger: &Trigger,
        now: DateTime<Utc>,
        collected: &Collected,
    ) -> ScheduledEvaluation {
        match self.scheduled_rule(rule) {
            Ok(found) => self.evaluate_scheduled_rule(found, message, trigger, now, collected),
            Err(failure) => ScheduledEvaluation { failures: vec![failure], ..ScheduledEvaluation::default() },
        }
    }

    /// Like [`RuleSet::evaluate_scheduled`], for a rule compiled apart (see
    /// [`RuleSet::compile_rule`]): `tidings test` runs a fixture's schedule rule that no schedule
    /// of the config names.
    pub fn evaluate_scheduled_rule(
        &self,
        rule: &Rule,
        message: Option<&Arc<MessageView>>,
        trigger: &Trigger,
        now: DateTime<Utc>,
        collected: &Collected,
    ) -> ScheduledEvaluation {
        let mut evaluation = ScheduledEvaluation::default();
        let span = tracing::info_span!("rule", rule = %rule.name);
        let _entered = span.enter();
        let context = Context::new(message, now, trigger.clone(), Some(Arc::new(collected.clone())));
        let result = self.run(rule, &context, Tally::default());
        evaluation.printed = super::evaluate::printed(rule).collect();
        match result {
            Ok(recorder) => {
                evaluation.decisions = recorder.decisions;
                evaluation.read = recorder.read;
            }
            Err(error) => {
                tracing::warn!(%error, "rule failed; its decisions are dropped");
                evaluation.failures.push(RuleFailure { rule: rule.name.clone(), error });
            }
        }
        evaluation.body_read = context.body_read.get();
        evaluation
    }

    /// Compiles the rule at `name` (relative to `rules_dir`) with this set's engine, plugins and
    /// data files, without adding it to the set.
    pub fn compile_rule(&self, rules_dir: &Path, name: &str) -> Result<Rule, CompileError> {
        let compiler = Compiler { engine: &self.engine, plugins: &self.plugins, rules_dir };
        let mut errors = Vec::new();
        match compiler.file(&rules_dir.join(name), &mut errors) {
            Some(rule) => Ok(rule),
            None => Err(errors.pop().unwrap_or_else(|| CompileError {
                file: rules_dir.join(name),
                line: 0,
                column: 0,
                message: "cannot compile rule".to_owned(),
            })),
        }
    }
}
