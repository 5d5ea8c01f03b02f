//! `tidings schedules`: each schedule of the config with its next fire times, read in its own
//! zone, and how its last run went.
//!
//! Input: the validated schedules and the store's last runs ([`Store::schedule_runs`]). Output:
//! a block per schedule for people, or one JSON object per schedule for scripts. It only reads:
//! without a store (tidings never ran with this config) every schedule shows "never run", and
//! no store is created. Like `tidings outbox` it runs beside the daemon (SQLite in WAL mode).

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Local, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::config::State;
use crate::config::{Run, Schedule};
use crate::source::schedule::fires;
use crate::store::{self, LastRun, RunOutcome, Store};

/// How many upcoming fires are listed per schedule.
pub const NEXT_FIRES: usize = 3;

/// How times are shown: weekday, date, wall time and UTC offset in the schedule's zone.
const TIME: &str = "%a %Y-%m-%d %H:%M:%S %:z";

/// Why the schedules could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store exists but could not be opened or read.
    #[error("cannot read the schedule runs")]
    Store(#[source] store::Error),
    /// The report could not be written (a closed pipe).
    #[error("cannot write the report")]
    Write(#[source] std::io::Error),
}

/// Lists `schedules` with their last runs from the store at `state` (if there is one) to `out`.
pub async fn list(schedules: &[Schedule], state: &State, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let runs = if state.file().is_none_or(Path::exists) {
        let (store, _) = Store::open_at(state, None).await.map_err(Error::Store)?;
        store.schedule_runs().await.map_err(Error::Store)?
    } else {
        Vec::new()
    };
    report(schedules, &runs, Utc::now(), json, out).map_err(Error::Write)
}

/// Writes the report as of `now`: blocks for people, or JSON lines when `json`.
pub fn report(
    schedules: &[Schedule],
    runs: &[LastRun],
    now: DateTime<Utc>,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if schedules.is_empty() && !json {
        return writeln!(out, "no schedules in the config");
    }
    for schedule in schedules {
        let last = runs.iter().find(|(name, _, _)| *name == schedule.name);
        let next = next_fires(schedule, now);
        if json {
            writeln!(out, "{}", json_line(schedule, &next, last))?;
        } else {
            write_block(out, schedule, &next, last)?;
        }
    }
    Ok(())
}

/// The next [`NEXT_FIRES`] fires after `now`.
pub fn next_fires(schedule: &Schedule, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut next = Vec::with_capacity(NEXT_FIRES);
    let mut at = now;
    while next.len() < NEXT_FIRES {
        match fires::next_after(&schedule.cron, schedule.timezone, at) {
            Some(fire) => {
                next.push(fire);
                at = fire;
            }
            None => break,
        }
    }
    next
}

fn write_block(
    out: &mut dyn Write,
    schedule: &Schedule,
    next: &[DateTime<Utc>],
    last: Option<&LastRun>,
) -> std::io::Result<()> {
    let zone = schedule.timezone.map_or("the machine's zone".to_owned(), |tz| tz.name().to_owned());
    writeln!(out, "{}", schedule.name)?;
    writeln!(out, "  cron:  {} ({zone})", schedule.cron_text)?;
    writeln!(out, "  runs:  {}", what_it_runs(schedule))?;
    match next.split_first() {
        None => writeln!(out, "  next:  none within 400 days")?,
        Some((first, rest)) => {
            writeln!(out, "  next:  {}", time_in(*first, schedule.timezone))?;
            for fire in rest {
                writeln!(out, "         {}", time_in(*fire, schedule.timezone))?;
            }
        }
    }
    writeln!(out, "  last:  {}", last_line(last, schedule.timezone))?;
    writeln!(out)
}

/// "sweeps/archive.rhai per message in work/Newsletters", or "... once, with no message ...".
fn what_it_runs(schedule: &Schedule) -> String {
    match schedule.run {
        Run::PerMessage => {
            format!("{} per message in {}/{}", schedule.rule.display(), schedule.account, schedule.mailbox)
        }
        Run::Once => format!("{} once, with no message (account {})", schedule.rule.display(), schedule.account),
    }
}

/// How the last run went, in words.
fn last_line(last: Option<&LastRun>, zone: Option<Tz>) -> String {
    let Some((_, fired_at, outcome)) = last else { return "never run".to_owned() };
    let when = time_in(*fired_at, zone);
    match outcome {
        None => format!("{when}: ran (no outcome recorded)"),
        Some(RunOutcome { error: Some(error), .. }) => format!("{when}: failed: {error}"),
        Some(outcome) => {
            let mut parts = Vec::new();
            if outcome.messages > 0 || outcome.actions == 0 {
                parts.push(count(outcome.messages, "message"));
            }
            parts.push(count(outcome.actions, "action"));
            if outcome.failures > 0 {
                parts.push(count(outcome.failures, "rule failure"));
            }
            let took = (outcome.finished_at - outcome.started_at).num_milliseconds().max(0);
            format!("{when}: ok: {}, took {:.1}s", parts.join(", "), took as f64 / 1000.0)
        }
    }
}

fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `t` as wall time and offset in `zone` (None: the machine's).
fn time_in(t: DateTime<Utc>, zone: Option<Tz>) -> String {
    match zone {
        Some(tz) => t.with_timezone(&tz).format(TIME).to_string(),
        None => t.with_timezone(&Local).format(TIME).to_string(),
    }
}

/// RFC 3339 in `zone`, so scripts see the offset the schedule runs in.
fn rfc3339_in(t: DateTime<Utc>, zone: Option<Tz>) -> String {
    match zone {
        Some(tz) => t.with_timezone(&tz).to_rfc3339(),
        None => t.with_timezone(&Local).to_rfc3339(),
    }
}

fn json_line(schedule: &Schedule, next: &[DateTime<Utc>], last: Option<&LastRun>) -> Value {
    let zone = schedule.timezone;
    let (run, mailbox) = match schedule.run {
        Run::PerMessage => ("per_message", Some(schedule.mailbox.as_str())),
        Run::Once => ("once", None),
    };
    let last = last.map(|(_, fired_at, outcome)| {
        json!({
            "fired_at": rfc3339_in(*fired_at, zone),
            "outcome": outcome.as_ref().map(|o| json!({
                "ok": o.error.is_none(),
                "started_at": rfc3339_in(o.started_at, zone),
                "finished_at": rfc3339_in(o.finished_at, zone),
                "messages": o.messages,
                "actions": o.actions,
                "failures": o.failures,
                "error": o.error,
            })),
        })
    });
    json!({
        "name": schedule.name,
        "cron": schedule.cron_text,
        "timezone": zone.map(|tz| tz.name()),
        "account": schedule.account,
        "mailbox": mailbox,
        "run": run,
        "rule": schedule.rule,
        "next": next.iter().map(|t| rfc3339_in(*t, zone)).collect::<Vec<_>>(),
        "last": last,
    })
}

#[cfg(test)]
#[path = "schedules_tests.rs"]
mod tests;
