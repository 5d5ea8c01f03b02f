//! `tidings outbox`: what waits, fails or needs a person in the outbox, and the two things a
//! person does about it: retry a failed or uncertain action, or drop one.
//!
//! It works beside a running daemon: the store is SQLite in WAL mode, so this reads while the
//! daemon writes, and each retry or drop is one statement that checks the state it changes
//! from (see `store::by_hand`), so it cannot race the daemon's claims. It never takes the
//! daemon's lock file, and never creates a store: without one there is nothing to show.
//!
//! Output: an aligned table (oldest first) and a summary line for people, or one JSON object
//! per action for scripts. Payloads are not printed (they hold message bodies); each row shows
//! its target instead: the webhook endpoint, the command, the first recipient, the mailbox.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error_text;
use crate::causes::one_line;
use crate::config::State;
use crate::store::{self, Action, ActionId, ActionState, OutboxCounts, Store};

/// Why the outbox could not be shown or changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config's state file does not exist: tidings never ran with this config.
    #[error("cannot open the outbox: there is no store at {path} (tidings has not run with this config yet)")]
    NoStore {
        /// The state from the config.
        path: State,
    },
    /// The store could not be opened or read.
    #[error("cannot read the outbox")]
    Store(#[source] store::Error),
    /// The report could not be written (a closed pipe).
    #[error("cannot write the report")]
    Write(#[source] std::io::Error),
}

/// What `tidings outbox` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListOptions {
    /// Also done, suppressed and dropped actions; without it only what is waiting or needs a person.
    pub all: bool,
    /// One JSON object per action instead of the table.
    pub json: bool,
    /// At most this many actions, the newest.
    pub limit: usize,
}

/// Which actions `tidings outbox retry` puts back to pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// These.
    Ids(Vec<ActionId>),
    /// Every failed and uncertain action.
    All,
}

/// How many of the actions asked for were changed, and how many were refused (each refusal is
/// reported on the error stream as it happens); the caller turns this into an exit status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Retried or dropped.
    pub changed: usize,
    /// Not in a state that allows it, or unknown.
    pub refused: usize,
}

/// Opens the store at `state` if there is one.
async fn open(state: &State) -> Result<Option<Store>, Error> {
    if state.file().is_some_and(|path| !path.exists()) {
        return Ok(None);
    }
    Store::open_at(state, None).await.map(|(store, _)| Some(store)).map_err(Error::Store)
}

/// Lists the outbox of the store at `state` to `out`.
pub async fn list(state: &State, options: ListOptions, out: &mut dyn Write) -> Result<(), Error> {
    let Some(store) = open(state).await? else {
        if !options.json {
            writeln!(out, "the outbox is empty: there is no store at {} yet", state).map_err(Error::Write)?;
        }
        return Ok(());
    };
    let states: &[ActionState] = if options.all { &ActionState::ALL } else { &ActionState::ACTIONABLE };
    let mut actions = store.list_outbox_in(states, options.limit).await.map_err(Error::Store)?;
    actions.reverse();
    let counts = store.outbox_counts().await.map_err(Error::Store)?;
    let now = Utc::now();
    let written = if options.json {
        actions.iter().try_for_each(|action| writeln!(out, "{}", json_line(action, now)))
    } else {
        write_table(out, &actions, now).and_then(|()| writeln!(out, "{}", summary(&counts, actions.len(), options)))
    };
    written.map_err(Error::Write)
}

/// Retries the actions `which` names; see [`Changed`].
pub async fn retry(state: &State, which: &Which, out: &mut dyn Write, err: &mut dyn Write) -> Result<Changed, Error> {
    let Some(store) = open(state).await? else { return Err(Error::NoStore { path: state.clone() }) };
    let mut changed = Changed::default();
    match which {
        Which::All => {
            let uncertain = store.list_outbox(Some(ActionState::Uncertain), usize::MAX).await.map_err(Error::Store)?;
            let retried = store.retry_all().await.map_err(Error::Store)?;
            if retried.is_empty() {
                writeln!(out, "nothing to retry: no action is failed or uncertain").map_err(Error::Write)?;
            }
            for action in &retried {
                let was_uncertain = uncertain.iter().any(|u| u.id == action.id);
                writeln!(out, "{}", retried_line(action, was_uncertain)).map_err(Error::Write)?;
            }
            changed.changed = retried.len();
        }
        Which::Ids(ids) => {
            for id in ids {
                let before = store.action(*id).await.map_err(Error::Store)?;
                match store.retry(*id).await {
                    Ok(action) => {
                        let was_uncertain = before.is_some_and(|b| b.state == ActionState::Uncertain);
                        writeln!(out, "{}", retried_line(&action, was_uncertain)).map_err(Error::Write)?;
                        changed.changed += 1;
                    }
                    Err(e) => refuse(e, err, &mut changed)?,
                }
            }
        }
    }
    Ok(changed)
}

/// Drops the actions `ids`; see [`Changed`].
pub async fn drop(state: &State, ids: &[ActionId], out: &mut dyn Write, err: &mut dyn Write) -> Result<Changed, Error> {
    let Some(store) = open(state).await? else { return Err(Error::NoStore { path: state.clone() }) };
    let mut changed = Changed::default();
    for id in ids {
        match store.drop_action(*id).await {
            Ok(action) => {
                writeln!(out, "action {} ({}) dropped: it will not run", action.id, what(&action))
                    .map_err(Error::Write)?;
                changed.changed += 1;
            }
            Err(e) => refuse(e, err, &mut changed)?,
        }
    }
    Ok(changed)
}

/// Reports a refused retry or drop and carries on with the next id; any other store error
/// ends the command.
fn refuse(error: store::Error, err: &mut dyn Write, changed: &mut Changed) -> Result<(), Error> {
    match error {
        store::Error::WrongState { .. } => {
            writeln!(err, "error: {error}").map_err(Error::Write)?;
            changed.refused += 1;
            Ok(())
        }
        other => Err(Error::Store(other)),
    }
}

/// "action 12 (webhook ops) is pending again, due now", with a warning for mail that was
/// uncertain: it may be out already.
pub fn retried_line(action: &Action, was_uncertain: bool) -> String {
    let mut line = format!("action {} ({}) is pending again, due now", action.id, what(action));
    if was_uncertain && crate::plan::MAIL_KINDS.contains(&action.kind.as_str()) {
        line.push_str("; it was uncertain, so it may have been sent already and may arrive twice");
    }
    line
}

/// "webhook ops", "reply a@x.org": the kind and its target.
fn what(action: &Action) -> String {
    match target(action) {
        target if target.is_empty() => action.kind.clone(),
        target => format!("{} {target}", action.kind),
    }
}

/// What the action goes to, read from its payload: the webhook endpoint or command name, the
/// first recipient (with how many more), the mailbox, or the flags; empty when it has none.
pub fn target(action: &Action) -> String {
    let payload = &action.payload;
    let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_owned);
    if let Some(endpoint) = text("endpoint") {
        return endpoint;
    }
    match payload.get("to") {
        Some(Value::String(to)) => return to.clone(),
        Some(Value::Array(to)) if !to.is_empty() => {
            let first = to[0].as_str().unwrap_or_default();
            return if to.len() > 1 { format!("{first} (+{})", to.len() - 1) } else { first.to_owned() };
        }
        _ => {}
    }
    if let Some(mailbox) = text("mailbox") {
        return mailbox;
    }
    if action.kind == "save_sent" {
        return "\\Sent".to_owned();
    }
    match payload.get("flags").and_then(Value::as_array) {
        Some(flags) => flags.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        None => String::new(),
    }
}

/// The JSON object of one action: everything but the payload, times in RFC 3339.
pub fn json_line(action: &Action, now: DateTime<Utc>) -> Value {
    json!({
        "id": action.id.0,
        "key": action.key,
        "account": action.account,
        "kind": action.kind,
        "rule": action.rule,
        "target": target(action),
        "state": action.state.as_str(),
        "attempts": action.attempts,
        "next_attempt_at": action.next_attempt_at.to_rfc3339(),
        "due": action.state == ActionState::Pending && action.next_attempt_at <= now,
        "mailbox": action.mailbox,
        "uidvalidity": action.uidvalidity,
        "uid": action.uid,
        "created_at": action.created_at.to_rfc3339(),
        "updated_at": action.updated_at.to_rfc3339(),
        "claimed_at": action.claimed_at.map(|t| t.to_rfc3339()),
        "last_error": action.last_error,
        // Settled actions keep where they went, not what they said (see `store::retention`).
        "content_dropped": crate::store::retention::content_dropped(&action.payload),
    })
}

const HEADER: [&str; 10] = ["ID", "ACCOUNT", "KIND", "RULE", "TARGET", "STATE", "TRIES", "NEXT", "AGE", "LAST ERROR"];
/// Widest a free-text column gets, in characters; longer text is cut with an ellipsis (an error
/// keeps its root cause: see [`error_text`]).
const TARGET_WIDTH: usize = 32;
const RULE_WIDTH: usize = 24;
const ERROR_WIDTH: usize = 72;

/// The table: a header and one aligned row per action, in the order given. Nothing at all
/// when there are no actions (the summary says so).
pub fn write_table(out: &mut dyn Write, actions: &[Action], now: DateTime<Utc>) -> std::io::Result<()> {
    if actions.is_empty() {
        return Ok(());
    }
    let (rows, below): (Vec<[String; 10]>, Vec<Option<String>>) = actions.iter().map(|action| row(action, now)).unzip();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = HEADER.map(str::to_owned);
    for (cells, below) in std::iter::once((&header, &None)).chain(rows.iter().zip(&below)) {
        let mut line = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index == cells.len() - 1 {
                line.push_str(cell);
            } else if index == 0 || index == 6 {
                line.push_str(&format!("{cell:>width$}  "));
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
        if let Some(error) = below {
            error_text::write_below(out, error, "    ")?;
        }
    }
    Ok(())
}

/// One action's cells, and its whole error when the LAST ERROR cell cannot hold its root cause.
fn row(action: &Action, now: DateTime<Utc>) -> ([String; 10], Option<String>) {
    let next = match action.state {
        ActionState::Pending if action.next_attempt_at <= now => "now".to_owned(),
        ActionState::Pending => format!("in {}", span(action.next_attempt_at - now)),
        _ => "-".to_owned(),
    };
    let (error, below) = error_text::cell(action.last_error.as_deref().unwrap_or(""), ERROR_WIDTH);
    let cells = [
        action.id.to_string(),
        action.account.clone(),
        action.kind.clone(),
        one_line(action.rule.as_deref().unwrap_or("-"), RULE_WIDTH),
        one_line(&target(action), TARGET_WIDTH),
        action.state.to_string(),
        action.attempts.to_string(),
        next,
        span(now - action.created_at),
        error,
    ];
    (cells, below)
}

/// A duration the way people say it, in its largest whole unit: "45s", "12m", "3h", "2d".
pub fn span(duration: chrono::Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// The line under the table: how many are listed, what each state counts, and what to do.
pub fn summary(counts: &OutboxCounts, listed: usize, options: ListOptions) -> String {
    let states: &[ActionState] = if options.all { &ActionState::ALL } else { &ActionState::ACTIONABLE };
    let total: u64 = states.iter().map(|s| counts.get(*s)).sum();
    let parts = |states: &[ActionState]| -> Vec<String> {
        states.iter().filter(|s| counts.get(**s) > 0).map(|s| format!("{} {s}", counts.get(*s))).collect()
    };
    let mut line = if total == 0 {
        "nothing waiting: no action is pending, in flight, sending, failed or uncertain".to_owned()
    } else {
        parts(states).join(", ")
    };
    if (listed as u64) < total {
        line.push_str(&format!(" (showing the newest {listed}; --limit N shows more)"));
    }
    if !options.all {
        let settled = parts(&[ActionState::Done, ActionState::Suppressed, ActionState::Dropped]);
        if !settled.is_empty() {
            line.push_str(&format!("; not listed: {} (--all lists them)", settled.join(", ")));
        }
    }
    if counts.failed + counts.uncertain > 0 {
        line.push_str("\nretry: tidings outbox retry ID... | --all    drop: tidings outbox drop ID...");
    }
    line
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
