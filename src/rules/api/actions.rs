//! Action functions. Calling one records a decision in the running evaluation's plan; nothing
//! happens to the mailbox until the plan is stored and an executor carries it out.
//!
//! The plan being built lives in a thread-local slot that the host fills before a rule runs and
//! empties after: it belongs to one evaluation, scripts cannot reach it except through these
//! functions, and no state is shared between evaluations.

use std::cell::RefCell;
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};

use crate::plan::{Action, Decision};

/// The decisions of one rule evaluation in progress.
#[derive(Debug)]
pub struct Recorder {
    /// The rule being run.
    pub rule: String,
    /// Its decisions, in call order.
    pub decisions: Vec<Decision>,
    /// Whether the rule called `stop()`.
    pub stopped: bool,
    /// When the evaluation must give up (the wall-clock limit).
    pub deadline: Instant,
    /// The trigger's time, what `now()` returns.
    pub now: chrono::DateTime<chrono::Utc>,
}

thread_local! {
    static CURRENT: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// The value `stop()` terminates a script with, to tell it from a timeout.
pub const STOP: &str = "tidings:stop";
/// The value the progress callback terminates a script with past its deadline.
pub const TIMEOUT: &str = "tidings:timeout";

/// Runs `f` with `recorder` installed as this thread's current evaluation; returns both.
pub fn with_recorder<T>(recorder: Recorder, f: impl FnOnce() -> T) -> (T, Recorder) {
    CURRENT.with(|slot| *slot.borrow_mut() = Some(recorder));
    let out = f();
    let recorder = CURRENT.with(|slot| slot.borrow_mut().take());
    // The slot was filled two lines up on this same thread and only `with_recorder` empties it.
    (out, recorder.expect("the recorder is still installed"))
}

/// Whether the current evaluation has run past its deadline (checked by the progress callback).
pub fn past_deadline() -> bool {
    CURRENT.with(|slot| slot.borrow().as_ref().is_some_and(|r| Instant::now() > r.deadline))
}

fn record(ctx: &NativeCallContext, action: Action) -> Result<(), Box<EvalAltResult>> {
    CURRENT.with(|slot| match slot.borrow_mut().as_mut() {
        Some(recorder) => {
            let position = recorder.decisions.len();
            recorder.decisions.push(Decision { rule: recorder.rule.clone(), position, action });
            Ok(())
        }
        None => Err(script_error(ctx, "actions can only be called while a rule runs on a message")),
    })
}

/// Turns a host complaint into a script error at the caller's position.
fn script_error(ctx: &NativeCallContext, message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), ctx.call_position()))
}

fn folder(ctx: &NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
    let trimmed = name.trim_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(str::is_empty) || name.contains(['\r', '\n', '\0']) {
        return Err(script_error(ctx, format!("`{name}` is not a folder name")));
    }
    Ok(trimmed.to_owned())
}

/// A system flag (`\Seen`) as given, or a keyword checked against IMAP's atom rules.
fn flag_name(ctx: &NativeCallContext, name: &str) -> Result<String, Box<EvalAltResult>> {
    const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    if let Some(system) = SYSTEM.iter().find(|s| s.eq_ignore_ascii_case(name)) {
        return Ok((*system).to_owned());
    }
    if name.starts_with('\\') {
        return Err(script_error(ctx, format!("`{name}` is not a system flag (use one of {})", SYSTEM.join(", "))));
    }
    let bad = |c: char| c.is_control() || c.is_whitespace() || "(){%*\"\\]".contains(c) || !c.is_ascii();
    if name.is_empty() || name.chars().any(bad) {
        return Err(script_error(ctx, format!("`{name}` cannot be a keyword: no spaces, non-ASCII or (){{%*\"\\]")));
    }
    Ok(name.to_owned())
}

fn add_flag(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
    let flags = vec![flag_name(&ctx, name)?];
    record(&ctx, Action::AddFlags { flags })
}

fn remove_flag(ctx: NativeCallContext, name: &str) -> Result<(), Box<EvalAltResult>> {
    let flags = vec![flag_name(&ctx, name)?];
    record(&ctx, Action::RemoveFlags { flags })
}

/// Registers the action functions.
pub fn register(engine: &mut Engine) {
    engine
        .register_fn("move_to", |ctx: NativeCallContext, to: &str| {
            let mailbox = folder(&ctx, to)?;
            record(&ctx, Action::Move { mailbox })
        })
        .register_fn("copy_to", |ctx: NativeCallContext, to: &str| {
            let mailbox = folder(&ctx, to)?;
            record(&ctx, Action::Copy { mailbox })
        })
        .register_fn("flag", add_flag)
        .register_fn("unflag", remove_flag)
        // Outside Gmail a label is an IMAP keyword; the Gmail mapping comes with provider support.
        .register_fn("label", add_flag)
        .register_fn("unlabel", remove_flag)
        .register_fn("mark_read", |ctx: NativeCallContext| {
            record(&ctx, Action::AddFlags { flags: vec!["\\Seen".into()] })
        })
        .register_fn("mark_unread", |ctx: NativeCallContext| {
            record(&ctx, Action::RemoveFlags { flags: vec!["\\Seen".into()] })
        })
        .register_fn("delete", |ctx: NativeCallContext| record(&ctx, Action::Delete))
        .register_fn("stop", |ctx: NativeCallContext| -> Result<(), Box<EvalAltResult>> {
            CURRENT.with(|slot| {
                if let Some(recorder) = slot.borrow_mut().as_mut() {
                    recorder.stopped = true;
                }
            });
            Err(Box::new(EvalAltResult::ErrorTerminated(Dynamic::from(STOP), ctx.call_position())))
        });
    engine.on_progress(|ops| {
        // Reading the clock on every operation would cost more than the rules; every 256 is
        // plenty for a 100 ms limit.
        (ops % 256 == 0 && past_deadline()).then(|| Dynamic::from(TIMEOUT))
    });
}

/// Whether an evaluation error is `stop()` rather than a failure.
pub fn is_stop(err: &EvalAltResult) -> bool {
    matches!(err, EvalAltResult::ErrorTerminated(value, _) if value.clone().into_string().is_ok_and(|s| s == STOP))
}
