//! Action functions. Calling one records a decision in the running evaluation's plan; nothing
//! happens to the mailbox until the plan is stored and an executor carries it out.
//!
//! The plan being built is the [`Recorder`] of one rule run, handed to the engine as that run's
//! tag ([`Evaluating`]): the functions reach it through their call context, scripts cannot reach
//! it except through these functions, and no state is shared between evaluations. Only the
//! deadline is kept per thread, for the engine's progress callback, which gets no context.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, NativeCallContext};

use super::fail;
use super::reference::{Doc, doc, function};
use crate::message::MessageView;
use crate::plan::{Action, Decision};
use crate::rules::trigger::{Collected, Trigger};

/// Most actions the rules may decide for one message, all rules together (like Sieve's limit on
/// actions): a rule looping over `flag()` fails at once instead of filling the outbox.
pub const MAX_ACTIONS: usize = 50;
/// Most outbound actions (reply, forward, send, webhook, command) for one message, all rules
/// together (like Sieve's limit on redirects): a mistake cannot turn one message into a flood.
pub const MAX_OUTBOUND: usize = 5;

/// The decisions of one rule evaluation in progress.
#[derive(Debug)]
pub struct Recorder {
    /// The rule being run.
    pub rule: String,
    /// Its decisions, in call order.
    pub decisions: Vec<Decision>,
    /// Whether the rule called `stop()`.
    pub stopped: bool,
    /// The trigger's time, what `now()` returns.
    pub now: chrono::DateTime<chrono::Utc>,
    /// What the earlier rules decided for the same message, counted against the caps.
    pub earlier: Tally,
    /// The message the rule runs on; `None` for a schedule's rule, which has none.
    pub message: Option<Arc<MessageView>>,
    /// What started the evaluation (`msg.trigger`, `trigger()`).
    pub trigger: Trigger,
    /// What live rules collected, for a schedule's rule; `None` for a live rule.
    pub collected: Option<Arc<Collected>>,
    /// The names the rule read with `collected()`: the run consumes those.
    pub read: BTreeSet<String>,
}

/// How many actions, and of them outbound ones, were decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// All actions.
    pub actions: usize,
    /// Outbound actions.
    pub outbound: usize,
}

impl Tally {
    /// Counts `decisions`.
    pub fn of(decisions: &[Decision]) -> Tally {
        let outbound = decisions.iter().filter(|d| d.action.is_outbound()).count();
        Tally { actions: decisions.len(), outbound }
    }
}

/// One rule run's [`Recorder`], as the engine carries it: the tag of the run.
#[derive(Clone)]
pub struct Evaluating(Arc<Mutex<Recorder>>);

impl Evaluating {
    /// The tag of a run that records into `recorder`.
    pub fn new(recorder: Recorder) -> Evaluating {
        Evaluating(Arc::new(Mutex::new(recorder)))
    }

    /// What the run recorded. The engine drops its copies of the tag when the run ends; a copy
    /// still held (a panic mid-run) leaves the recorder to be taken from under it.
    pub fn finish(self) -> Recorder {
        match Arc::try_unwrap(self.0) {
            Ok(recorder) => recorder.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
            Err(shared) => {
                let mut recorder = lock(&shared);
                let empty = Recorder::new(String::new(), recorder.now, Tally::default(), None, Trigger::Live, None);
                std::mem::replace(&mut *recorder, empty)
            }
        }
    }
}

impl Recorder {
    /// A recorder for `rule`, with nothing recorded yet.
    pub fn new(
        rule: String,
        now: chrono::DateTime<chrono::Utc>,
        earlier: Tally,
        message: Option<Arc<MessageView>>,
        trigger: Trigger,
        collected: Option<Arc<Collected>>,
    ) -> Recorder {
        Recorder {
            rule,
            decisions: Vec::new(),
            stopped: false,
            now,
            earlier,
            message,
            trigger,
            collected,
            read: BTreeSet::new(),
        }
    }
}

fn lock(recorder: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    // Changed in single statements: a poisoned lock (a panic mid-run) still holds a good record.
    recorder.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

thread_local! {
    /// When the rule running on this thread must give up (the wall-clock limit).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The value `stop()` terminates a script with, to tell it from a timeout.
pub const STOP: &str = "tidings:stop";
/// [`STOP`] as a script string, made once: rules call `stop()` on most messages.
static STOP_VALUE: LazyLock<ImmutableString> = LazyLock::new(|| STOP.into());
/// The value the progress callback terminates a script with past its deadline.
pub const TIMEOUT: &str = "tidings:timeout";

/// Runs `f` with `deadline` as this thread's running rule's; clears it after, even when `f`
/// panics (a stale deadline would stop the next plugin compiled on this thread).
pub fn on_the_clock<T>(deadline: Instant, f: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(None));
        }
    }
    DEADLINE.with(|d| d.set(Some(deadline)));
    let _clear = Clear;
    f()
}

/// How many operations the progress callback lets pass between two looks at the clock.
const CLOCK_EVERY: u64 = 32;

/// Stops the running rule, as the progress callback does, once it is past its deadline: called
/// first by the native functions whose cost grows with their input, so that a loop of them
/// stops at the limit rather than [`CLOCK_EVERY`] long calls later. The error cannot be caught
/// by the script (`try` does not catch a termination).
pub fn within_deadline() -> Result<(), Box<EvalAltResult>> {
    match past_deadline() {
        true => Err(Box::new(EvalAltResult::ErrorTerminated(Dynamic::from(TIMEOUT), rhai::Position::NONE))),
        false => Ok(()),
    }
}

/// Whether the rule running on this thread has run past its deadline (checked by the progress
/// callback).
pub fn past_deadline() -> bool {
    DEADLINE.with(|d| d.get().is_some_and(|deadline| Instant::now() > deadline))
}

/// The trigger's time of the running evaluation, if one is.
pub fn trigger_time(ctx: &NativeCallContext) -> Option<chrono::DateTime<chrono::Utc>> {
    with_current(ctx, |r| r.now)
}

/// Runs `f` on the running evaluation (the tag of the run `ctx` is in), if one is.
pub(super) fn with_current<T>(ctx: &NativeCallContext, f: impl FnOnce(&mut Recorder) -> T) -> Option<T> {
    let evaluating = ctx.tag()?.read_lock::<Evaluating>()?;
    Some(f(&mut lock(&evaluating.0)))
}

/// The running rule's name and the message it runs on (`None` for a schedule's rule), for
/// actions that capture facts of the message.
pub(super) fn running(ctx: &NativeCallContext) -> Option<(String, Option<Arc<MessageView>>)> {
    with_current(ctx, |r| (r.rule.clone(), r.message.clone()))
}

/// Runs host work done for the running rule off its wall clock (copying a large message into a
/// webhook's event): the limit bounds what the rule does, not the copying of what it asked for.
pub(super) fn off_the_clock<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let spent = started.elapsed();
    DEADLINE.with(|d| d.set(d.get().map(|deadline| deadline + spent)));
    out
}

/// Records `action` for the running rule, within the per-message caps.
pub(super) fn record(ctx: &NativeCallContext, action: Action) -> Result<(), Box<EvalAltResult>> {
    let recorded = with_current(ctx, |recorder| {
        let so_far = Tally::of(&recorder.decisions);
        if recorder.earlier.actions + so_far.actions >= MAX_ACTIONS {
            return Err(fail(format!("too many actions for one message (limit {MAX_ACTIONS}, all rules together)")));
        }
        if action.is_outbound() && recorder.earlier.outbound + so_far.outbound >= MAX_OUTBOUND {
            return Err(fail(format!(
                "too many outbound actions for one message (limit {MAX_OUTBOUND}: replies, forwards, sends, webhooks and commands, all rules together)"
            )));
        }
        let position = recorder.decisions.len();
        recorder.decisions.push(Decision { rule: recorder.rule.clone(), position, action });
        Ok(())
    });
    recorded.unwrap_or_else(|| Err(fail("actions can only be called while a rule runs")))
}

fn folder(name: &str) -> Result<String, Box<EvalAltResult>> {
    let trimmed = name.trim_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(str::is_empty) || name.contains(['\r', '\n', '\0']) {
        return Err(fail(format!("`{name}` is not a folder name")));
    }
    Ok(trimmed.to_owned())
}

/// A system flag (`\Seen`) as given, or a keyword checked against IMAP's atom rules.
fn flag_name(name: &str) -> Result<String, Box<EvalAltResult>> {
    const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    if let Some(system) = SYSTEM.iter().find(|s| s.eq_ignore_ascii_case(name)) {
        return Ok((*system).to_owned());
    }
    if name.starts_with('\\') {
        return Err(fail(format!("`{name}` is not a system flag (use one of {})", SYSTEM.join(", "))));
    }
    let bad = |c: char| c.is_control() || c.is_whitespace() || "(){%*\"\\]".contains(c) || !c.is_ascii();
    if name.is_empty() || name.chars().any(bad) {
        return Err(fail(format!("`{name}` cannot be a keyword: no spaces, non-ASCII or (){{%*\"\\]")));
    }
    Ok(name.to_owned())
}

fn add_flag(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
    record(&ctx, Action::AddFlags { flags: vec![flag_name(name)?] })
}

fn remove_flag(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
    record(&ctx, Action::RemoveFlags { flags: vec![flag_name(name)?] })
}

const MOVE_TO: Doc = doc(
    "move_to(folder)",
    "The final disposition: move to a folder (created if missing; / separates levels; UTF-8 names work).",
    r#"move_to("Lists/rust-users")"#,
);
const COPY_TO: Doc =
    doc("copy_to(folder)", "Copy to a folder; the message stays where it is.", r#"copy_to("Backup/Receipts")"#);
const ARCHIVE: Doc = doc(
    "archive()",
    "The final disposition: move to the server's special-use \\Archive folder; on Gmail, remove the \\Inbox label.",
    "if msg.date != () && msg.date.age_days > 90 { archive(); }",
);
const DELETE: Doc = doc(
    "delete()",
    "The final disposition: move to \\Trash (or expunge, with `delete: expunge` on the account).",
    r#"if msg.from == "spam@example.com" { delete(); }"#,
);
const FLAG: Doc = doc(
    "flag(name)",
    "Set a flag: a system flag when the name starts with a backslash (\\Flagged), else a keyword.",
    r#"flag("\\Flagged")"#,
);
const UNFLAG: Doc = doc("unflag(name)", "Clear a flag or keyword.", r#"unflag("\\Flagged")"#);
const LABEL: Doc = doc(
    "label(name)",
    "Add a label: on Gmail a Gmail label (X-GM-LABELS; also \\Important), elsewhere an IMAP keyword.",
    r#"label("receipt")"#,
);
const UNLABEL: Doc = doc("unlabel(name)", "Remove a label (a Gmail label on Gmail).", r#"unlabel("todo")"#);
const MARK_READ: Doc = doc("mark_read()", "Set \\Seen.", "if msg.is_auto_submitted { mark_read(); }");
const MARK_UNREAD: Doc = doc("mark_unread()", "Clear \\Seen.", "mark_unread()");
const STOP_DOC: Doc = doc(
    "stop()",
    "End this rule, keeping its decisions; later rules do not see the message.",
    r#"if msg.from.domain == "github.com" { move_to("GitHub"); stop(); }"#,
);

/// Registers the mailbox actions and `stop()`; the outbound ones are in `outbound`.
pub fn register(engine: &mut Engine) {
    let e = engine;
    function(e, "move_to", MOVE_TO, |ctx: NativeCallContext, to: &str| {
        record(&ctx, Action::Move { mailbox: folder(to)? })
    });
    function(e, "copy_to", COPY_TO, |ctx: NativeCallContext, to: &str| {
        record(&ctx, Action::Copy { mailbox: folder(to)? })
    });
    function(e, "archive", ARCHIVE, |ctx: NativeCallContext| record(&ctx, Action::Archive));
    function(e, "delete", DELETE, |ctx: NativeCallContext| record(&ctx, Action::Delete));
    function(e, "flag", FLAG, add_flag);
    function(e, "unflag", UNFLAG, remove_flag);
    // Both record a flag change: on Gmail the executor sends names that are neither system flags
    // nor `$` keywords as X-GM-LABELS (see docs/gmail.md); elsewhere they are IMAP keywords.
    function(e, "label", LABEL, add_flag);
    function(e, "unlabel", UNLABEL, remove_flag);
    function(e, "mark_read", MARK_READ, |ctx: NativeCallContext| {
        record(&ctx, Action::AddFlags { flags: vec!["\\Seen".into()] })
    });
    function(e, "mark_unread", MARK_UNREAD, |ctx: NativeCallContext| {
        record(&ctx, Action::RemoveFlags { flags: vec!["\\Seen".into()] })
    });
    function(e, "stop", STOP_DOC, |ctx: NativeCallContext| -> Result<(), Box<EvalAltResult>> {
        with_current(&ctx, |recorder| recorder.stopped = true);
        Err(Box::new(EvalAltResult::ErrorTerminated(STOP_VALUE.clone().into(), ctx.call_position())))
    });
    e.on_progress(|ops| {
        // Reading the clock costs about as much as an operation, so not on every one. A native
        // call counts as one operation however long it runs: those whose cost grows with a
        // large input (a regex over the body) check the clock themselves (`within_deadline`).
        (ops % CLOCK_EVERY == 0 && past_deadline()).then(|| Dynamic::from(TIMEOUT))
    });
}

/// The function a rule run calls after the rule's statements: a name no script can write.
pub const END: &str = "tidings:end";

/// Whether an evaluation error is `stop()` rather than a failure.
pub fn is_stop(err: &EvalAltResult) -> bool {
    matches!(err, EvalAltResult::ErrorTerminated(value, _) if value.read_lock::<ImmutableString>().is_some_and(|s| s.as_str() == STOP))
}
