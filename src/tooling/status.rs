//! `tidings status` and `tidings history`: the daemon's health and a message's story, read from
//! the store, so they work from another shell while the daemon runs (and after it stopped).
//!
//! Status: every mailbox of the config or the store with its connection state (as the daemon
//! last reported it; an account no longer in the config only while a running daemon still
//! reports it), checkpoint, last message and errors; the outbox per account; the rules
//! failing now (in the last hour) and the newest rule failures; and the same verdict as
//! `/healthz`: healthy, degraded (rules failing now, dead letters) or unhealthy. History: for a Message-ID or a UID, the
//! rules that acted on the message and every action with its outcome. Neither prints a
//! message's content.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error_text;
use super::outbox::{span, target};
use crate::causes::one_line;
use crate::config::{Config, State};
use crate::health::{self, Conn, Seen, Severity, Verdict};
use crate::store::{
    self, Checkpoint, FailingRule, Fleet, FleetView, MessageHistory, MessageQuery, OutboxGroup, Store, WatcherRecord,
};

/// Why status or history could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config's state file does not exist: tidings never ran with this config.
    #[error("cannot read {what}: there is no store at {path} (tidings has not run with this config yet)")]
    NoStore {
        /// "the status", "the history".
        what: &'static str,
        /// The state path from the config.
        path: PathBuf,
    },
    /// The store could not be opened or read.
    #[error("cannot read {what} from the store")]
    Store {
        /// "the status", "the history".
        what: &'static str,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// The report could not be written (a closed pipe).
    #[error("cannot write the report")]
    Write(#[source] std::io::Error),
}

async fn open(state: &State, what: &'static str) -> Result<(Store, Option<Fleet>), Error> {
    if let Some(path) = state.file().filter(|path| !path.exists()) {
        return Err(Error::NoStore { what, path: path.to_owned() });
    }
    Store::open_at(state, None).await.map_err(|source| Error::Store { what, source })
}

/// One mailbox's line of the status.
#[derive(Clone, Debug, Default)]
struct Row {
    watcher: Option<WatcherRecord>,
    checkpoint: Option<(Checkpoint, DateTime<Utc>)>,
}

/// Everything the status shows.
struct Status {
    running: bool,
    rows: BTreeMap<(String, String), Row>,
    outbox: Vec<OutboxGroup>,
    failures: Vec<store::RuleFailureRecord>,
    /// The rules that failed in the last hour.
    failing: Vec<FailingRule>,
    verdict: Verdict,
    /// The instances sharing a PostgreSQL store; `None` with a SQLite one.
    fleet: Option<FleetView>,
}

/// Writes the status of the daemon using `config` to `out`; returns how healthy it is.
pub async fn status(config: &Config, json: bool, out: &mut dyn Write) -> Result<Severity, Error> {
    const WHAT: &str = "the status";
    let (store, fleet) = open(&config.state, WHAT).await?;
    let err = |source| Error::Store { what: WHAT, source };
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for account in &config.accounts {
        for mailbox in &account.mailboxes {
            rows.entry((account.name.clone(), mailbox.name.clone())).or_default();
        }
    }
    for (checkpoint, at) in store.checkpoints().await.map_err(err)? {
        let key = (checkpoint.account.clone(), checkpoint.mailbox.clone());
        rows.entry(key).or_default().checkpoint = Some((checkpoint, at));
    }
    let fleet = match fleet {
        Some(fleet) => Some(fleet.view().await.map_err(err)?),
        None => None,
    };
    let running = match (&fleet, config.state.file()) {
        (Some(fleet), _) => fleet.instances.iter().any(|i| i.alive),
        (None, Some(file)) => daemon_running(file),
        (None, None) => false,
    };
    for watcher in store.watchers().await.map_err(err)? {
        let key = (watcher.account.clone(), watcher.mailbox.clone());
        rows.entry(key).or_default().watcher = Some(watcher);
    }
    // An account gone from the config keeps its checkpoints (and outbox and history) in the
    // store, but no mailbox row: a running daemon reports its watchers until a reload removes
    // the account (and its states with it), and from then on there is nothing to report.
    rows.retain(|(account, _), row| {
        (running && row.watcher.is_some()) || config.accounts.iter().any(|a| &a.name == account)
    });
    let outbox = store.outbox_groups().await.map_err(err)?;
    let failures = store.recent_rule_failures(5).await.map_err(err)?;
    let now = Utc::now();
    let failing = store.rule_failures_since(now - health::FAILING_NOW).await.map_err(err)?;
    let runs = store.schedule_runs().await.map_err(err)?;
    let verdict = if running {
        let seen = rows.iter().filter_map(|((account, mailbox), row)| {
            let w = row.watcher.as_ref()?;
            let conn = Conn::parse(&w.state)?;
            Some(Seen { account, mailbox, conn, since: w.since, last_error: w.last_error.as_deref() })
        });
        let mut verdict = health::judge(now, &config.health, seen, &outbox, &failing);
        verdict.degraded.extend(health::failed_runs(&runs, now - health::FAILING_NOW));
        let unheld = fleet.iter().flat_map(|f| &f.unheld).filter(|a| config.accounts.iter().any(|c| &c.name == *a));
        verdict.problems.extend(unheld.map(|a| format!("account {a} is held by no live instance")));
        verdict
    } else if fleet.is_some() {
        Verdict::unhealthy(format!("no instance of the fleet on {} is running", config.state))
    } else {
        Verdict::unhealthy(format!("the daemon is not running (no lock held on {}.lock)", config.state))
    };
    let status = Status { running, rows, outbox, failures, failing, verdict, fleet };
    let written = if json { write_json(&status, now, out) } else { write_text(&status, now, out) };
    written.map_err(Error::Write)?;
    Ok(status.verdict.severity())
}

/// Whether a daemon holds the lock beside the state file (see `runtime::lock`).
fn daemon_running(state: &Path) -> bool {
    // Opened read-only and never created: looking must not leave a file behind.
    match std::fs::File::open(crate::runtime::lock_path(state)) {
        Ok(file) => match file.try_lock_shared() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(_)) => false,
        },
        Err(_) => false,
    }
}

fn write_text(status: &Status, now: DateTime<Utc>, out: &mut dyn Write) -> std::io::Result<()> {
    match (status.running, status.verdict.severity()) {
        (true, Severity::Healthy) => writeln!(out, "tidings: running, healthy")?,
        (true, Severity::Degraded) => writeln!(out, "tidings: running, DEGRADED")?,
        (true, Severity::Unhealthy) => writeln!(out, "tidings: running, UNHEALTHY")?,
        (false, _) => writeln!(out, "tidings: NOT RUNNING (connection states are from its last run)")?,
    }
    for problem in status.verdict.lines() {
        writeln!(out, "  ! {problem}")?;
    }
    writeln!(out)?;
    let header = ["ACCOUNT", "MAILBOX", "STATE", "SINCE", "LAST MESSAGE", "CHECKPOINT", "RECONNECTS", "LAST ERROR"];
    let (rows, below): (Vec<[String; 8]>, Vec<Option<String>>) = status
        .rows
        .iter()
        .map(|((account, mailbox), row)| {
            let w = row.watcher.as_ref();
            let (error, below) = error_text::cell(w.and_then(|w| w.last_error.as_deref()).unwrap_or(""), 72);
            let cells = [
                account.clone(),
                mailbox.clone(),
                w.map_or("not reported".into(), |w| w.state.clone()),
                w.map_or("-".into(), |w| span(now - w.since)),
                row.checkpoint.as_ref().map_or("never".into(), |(_, at)| format!("{} ago", span(now - *at))),
                row.checkpoint.as_ref().map_or("-".into(), |(c, _)| format!("{}:{}", c.uidvalidity, c.last_uid)),
                w.map_or("-".into(), |w| w.reconnects.to_string()),
                error,
            ];
            (cells, below)
        })
        .unzip();
    table(out, &header, &rows, &below)?;
    writeln!(out)?;
    if let Some(fleet) = &status.fleet {
        write_fleet(fleet, now, out)?;
    }
    let mut accounts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for g in &status.outbox {
        let mut cell = format!("{} {} {}", g.count, g.kind, g.state);
        if let Some(due) = g.oldest_due.filter(|due| *due <= now) {
            cell.push_str(&format!(" (oldest due {} ago)", span(now - due)));
        }
        accounts.entry(&g.account).or_default().push(cell);
    }
    if accounts.is_empty() {
        writeln!(out, "outbox: empty")?;
    }
    for (account, cells) in accounts {
        writeln!(out, "outbox {account}: {}", cells.join(", "))?;
    }
    write_failing(&status.failing, now, out)?;
    if !status.failures.is_empty() {
        writeln!(out, "\nnewest rule failures:")?;
        for f in &status.failures {
            let (error, below) = error_text::cell(&f.error, 100);
            writeln!(
                out,
                "  {} ago  {}  {}/{} uid {}: {error}",
                span(now - f.at),
                f.rule,
                f.account,
                f.mailbox,
                f.uid
            )?;
            if let Some(error) = below {
                error_text::write_below(out, &error, "    ")?;
            }
        }
    }
    Ok(())
}

/// The rules failing now: each with how often in the last hour, and its last failure.
fn write_failing(failing: &[FailingRule], now: DateTime<Utc>, out: &mut dyn Write) -> std::io::Result<()> {
    if failing.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nrules failing now (last hour):")?;
    let header = ["RULE", "FAILURES", "LAST", "LAST MESSAGE", "LAST ERROR"];
    let (rows, below): (Vec<[String; 5]>, Vec<Option<String>>) = failing
        .iter()
        .map(|f| {
            let id = f.message_id.as_deref().map_or_else(|| format!("uid {}", f.uid), |id| format!("<{id}>"));
            let (error, below) = error_text::cell(&f.last_error, 100);
            let cells = [
                f.rule.clone(),
                f.failures.to_string(),
                format!("{} ago", span(now - f.last_at)),
                format!("{}/{} {}", f.account, f.mailbox, one_line(&id, 60)),
                error,
            ];
            (cells, below)
        })
        .unzip();
    table(out, &header, &rows, &below)
}

/// The instances of a fleet, each with its heartbeat and the accounts it holds.
fn write_fleet(fleet: &FleetView, now: DateTime<Utc>, out: &mut dyn Write) -> std::io::Result<()> {
    let header = ["INSTANCE", "STATE", "HEARTBEAT", "UP", "ACCOUNTS"];
    let rows: Vec<[String; 5]> = fleet
        .instances
        .iter()
        .map(|i| {
            let accounts: Vec<String> = i.accounts.iter().map(|(a, epoch, _)| format!("{a}#{epoch}")).collect();
            [
                i.id.clone(),
                if i.alive { "live" } else { "EXPIRED" }.to_owned(),
                format!("{} ago", span(now - i.heartbeat_at)),
                span(now - i.started_at),
                format!("{}: {}", accounts.len(), accounts.join(" ")),
            ]
        })
        .collect();
    table(out, &header, &rows, &[])?;
    if !fleet.unheld.is_empty() {
        writeln!(out, "held by no live instance: {}", fleet.unheld.join(" "))?;
    }
    writeln!(out)
}

fn fleet_json(fleet: &FleetView) -> Value {
    let instances: Vec<Value> = fleet
        .instances
        .iter()
        .map(|i| {
            let accounts: Vec<Value> = i
                .accounts
                .iter()
                .map(|(a, epoch, expires)| json!({"account": a, "epoch": epoch, "expires_at": expires.to_rfc3339()}))
                .collect();
            json!({
                "id": i.id, "host": i.host, "pid": i.pid, "alive": i.alive,
                "started_at": i.started_at.to_rfc3339(), "heartbeat_at": i.heartbeat_at.to_rfc3339(),
                "accounts": accounts,
            })
        })
        .collect();
    json!({"instances": instances, "unheld": fleet.unheld})
}

fn write_json(status: &Status, now: DateTime<Utc>, out: &mut dyn Write) -> std::io::Result<()> {
    let mailboxes: Vec<Value> = status
        .rows
        .iter()
        .map(|((account, mailbox), row)| {
            let w = row.watcher.as_ref();
            let c = row.checkpoint.as_ref();
            json!({
                "account": account,
                "mailbox": mailbox,
                "state": w.map(|w| w.state.as_str()),
                "since": w.map(|w| w.since.to_rfc3339()),
                "reconnects": w.map(|w| w.reconnects),
                "last_error": w.and_then(|w| w.last_error.as_deref()),
                "reported_at": w.map(|w| w.updated_at.to_rfc3339()),
                "uidvalidity": c.map(|(c, _)| c.uidvalidity),
                "last_uid": c.map(|(c, _)| c.last_uid),
                "last_message_at": c.map(|(_, at)| at.to_rfc3339()),
            })
        })
        .collect();
    let outbox: Vec<Value> = status
        .outbox
        .iter()
        .map(|g| {
            json!({
                "account": g.account, "kind": g.kind, "state": g.state.as_str(), "count": g.count,
                "oldest_due": g.oldest_due.map(|d| d.to_rfc3339()),
            })
        })
        .collect();
    let failures: Vec<Value> = status
        .failures
        .iter()
        .map(|f| {
            json!({
                "account": f.account, "mailbox": f.mailbox, "uidvalidity": f.uidvalidity, "uid": f.uid,
                "rule": f.rule, "error": f.error, "at": f.at.to_rfc3339(),
            })
        })
        .collect();
    let failing: Vec<Value> = status
        .failing
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule, "failures": f.failures, "last_error": f.last_error,
                "last_at": f.last_at.to_rfc3339(), "account": f.account, "mailbox": f.mailbox, "uid": f.uid,
                "message_id": f.message_id,
            })
        })
        .collect();
    let dead: Vec<Value> = status
        .outbox
        .iter()
        .filter(|g| matches!(g.state, store::ActionState::Failed | store::ActionState::Uncertain))
        .map(|g| json!({ "account": g.account, "kind": g.kind, "state": g.state.as_str(), "count": g.count }))
        .collect();
    let report = json!({
        "running": status.running,
        "healthy": status.verdict.is_healthy(),
        "verdict": status.verdict.severity().as_str(),
        "problems": status.verdict.lines().collect::<Vec<_>>(),
        "rules_failing": failing,
        "dead_letters": dead,
        "at": now.to_rfc3339(),
        "mailboxes": mailboxes,
        "outbox": outbox,
        "rule_failures": failures,
        "fleet": status.fleet.as_ref().map(fleet_json),
    });
    writeln!(out, "{report}")
}

/// An aligned table: a header and rows, the last column left ragged; under a row, its whole
/// error when `below` has one for it (see [`error_text::cell`]).
fn table<const N: usize>(
    out: &mut dyn Write,
    header: &[&str; N],
    rows: &[[String; N]],
    below: &[Option<String>],
) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_owned);
    let below = std::iter::once(None).chain(below.iter().map(Option::as_deref)).chain(std::iter::repeat(None));
    for (cells, below) in std::iter::once(&header).chain(rows).zip(below) {
        let mut line = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", line.trim_end())?;
        if let Some(error) = below {
            error_text::write_below(out, error, "    ")?;
        }
    }
    Ok(())
}

/// Writes what happened to the messages `query` names; returns how many were found.
pub async fn history(state: &State, query: MessageQuery, json: bool, out: &mut dyn Write) -> Result<usize, Error> {
    const WHAT: &str = "the history";
    let (store, _) = open(state, WHAT).await?;
    let found = store.history(query).await.map_err(|source| Error::Store { what: WHAT, source })?;
    let written = found.iter().try_for_each(|m| match json {
        true => writeln!(out, "{}", history_json(m)),
        false => write_history(m, out),
    });
    written.map_err(Error::Write)?;
    Ok(found.len())
}

fn write_history(m: &MessageHistory, out: &mut dyn Write) -> std::io::Result<()> {
    let id = m.message_id.as_deref().map_or("no Message-ID".into(), |id| format!("Message-ID <{id}>"));
    writeln!(out, "{}/{} uid {} (UIDVALIDITY {}), {id}", m.account, m.mailbox, m.uid, m.uidvalidity)?;
    writeln!(out, "  decided {}", m.decided_at.format("%Y-%m-%d %H:%M:%S UTC"))?;
    match m.matched.is_empty() {
        true => writeln!(out, "  no rule decided anything for it")?,
        false => writeln!(out, "  rules that acted: {}", m.matched.join(", "))?,
    }
    if let Some(rule) = &m.stopped_by {
        writeln!(out, "  {rule} called stop(): later rules did not run")?;
    }
    for f in &m.failures {
        writeln!(out, "  rule {} FAILED: {}", f.rule, one_line(&f.error, usize::MAX))?;
    }
    for a in &m.actions {
        let tries = if a.attempts == 1 { "1 try".to_owned() } else { format!("{} tries", a.attempts) };
        let when = a.updated_at.format("%Y-%m-%d %H:%M:%S UTC");
        let rule = a.rule.as_deref().unwrap_or("-");
        writeln!(
            out,
            "  action #{} {} {} by {rule}: {} ({tries}, {when})",
            a.id,
            a.kind,
            one_line(&target(a), 60),
            a.state
        )?;
        if let Some(error) = &a.last_error {
            // On a line of its own: never cut.
            writeln!(out, "    last error: {}", one_line(error, usize::MAX))?;
        }
    }
    if m.actions.is_empty() {
        writeln!(out, "  no actions")?;
    }
    Ok(())
}

fn history_json(m: &MessageHistory) -> Value {
    let actions: Vec<Value> = m.actions.iter().map(|a| super::outbox::json_line(a, Utc::now())).collect();
    let failures: Vec<Value> =
        m.failures.iter().map(|f| json!({ "rule": f.rule, "error": f.error, "at": f.at.to_rfc3339() })).collect();
    json!({
        "account": m.account,
        "mailbox": m.mailbox,
        "uidvalidity": m.uidvalidity,
        "uid": m.uid,
        "message_id": m.message_id,
        "decided_at": m.decided_at.to_rfc3339(),
        "matched": m.matched,
        "stopped_by": m.stopped_by,
        "actions": actions,
        "rule_failures": failures,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::store::Instance;

    #[test]
    fn rules_failing_now_show_each_rule_its_count_last_message_and_error() {
        let now = Utc::now();
        let failing = |rule: &str, failures, message_id: Option<&str>| FailingRule {
            rule: rule.to_owned(),
            failures,
            last_error: "cannot read\n  the subject".to_owned(),
            last_at: now - TimeDelta::minutes(3),
            account: "work".to_owned(),
            mailbox: "INBOX".to_owned(),
            uid: 12,
            message_id: message_id.map(str::to_owned),
        };
        let mut out = Vec::new();
        write_failing(&[failing("a.rhai", 30, Some("x@y")), failing("b.rhai", 1, None)], now, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "rules failing now (last hour):", "{text}");
        assert!(lines[2].starts_with("RULE") && lines[2].ends_with("LAST ERROR"), "{text}");
        assert!(lines[3].starts_with("a.rhai  30") && lines[3].contains("3m ago  work/INBOX <x@y>"), "{text}");
        assert!(lines[3].ends_with("cannot read the subject"), "{text}");
        assert!(lines[4].starts_with("b.rhai  1 ") && lines[4].contains("work/INBOX uid 12"), "{text}");
        let mut none = Vec::new();
        write_failing(&[], now, &mut none).unwrap();
        assert!(none.is_empty(), "nothing when no rule is failing");
    }

    #[test]
    fn a_failing_rule_whose_error_is_too_long_has_it_whole_under_its_row() {
        let now = Utc::now();
        let said = "x".repeat(40);
        let error = format!("Function not found: contains ((), &str) {said} {said} (line 3, position 20)");
        let failing = FailingRule {
            rule: "lists.rhai".to_owned(),
            failures: 2,
            last_error: error.clone(),
            last_at: now,
            account: "work".to_owned(),
            mailbox: "INBOX".to_owned(),
            uid: 12,
            message_id: None,
        };
        let mut out = Vec::new();
        write_failing(&[failing], now, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[3].starts_with("lists.rhai") && lines[3].ends_with('…'), "{text}");
        let under: Vec<&str> = lines[4..].iter().flat_map(|l| l.split_whitespace()).skip(1).collect();
        assert!(lines[4].starts_with("    error: Function not found"), "{text}");
        assert_eq!(under.join(" "), error, "{text}");
    }

    #[test]
    fn the_fleet_shows_each_instance_its_heartbeat_and_accounts_and_what_no_one_holds() {
        let now = Utc::now();
        let instance = |id: &str, alive, accounts: &[(&str, i64)]| Instance {
            id: id.to_owned(),
            host: "h".to_owned(),
            pid: 7,
            started_at: now - TimeDelta::minutes(5),
            heartbeat_at: now - TimeDelta::seconds(3),
            alive,
            accounts: accounts.iter().map(|(a, e)| ((*a).to_owned(), *e, now)).collect(),
        };
        let fleet = FleetView {
            instances: vec![instance("h/1/a", true, &[("work", 3), ("home", 1)]), instance("h/2/b", false, &[])],
            unheld: vec!["shop".to_owned()],
        };
        let mut out = Vec::new();
        write_fleet(&fleet, now, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("INSTANCE") && lines[0].contains("HEARTBEAT"), "{text}");
        assert!(
            lines[1].starts_with("h/1/a") && lines[1].contains("live") && lines[1].ends_with("2: work#3 home#1"),
            "{text}"
        );
        assert!(lines[2].starts_with("h/2/b") && lines[2].contains("EXPIRED") && lines[2].contains("0:"), "{text}");
        assert_eq!(lines[3], "held by no live instance: shop", "{text}");
        let json = fleet_json(&fleet);
        assert_eq!(json["instances"][0]["accounts"][0]["epoch"], 3);
        assert_eq!(json["unheld"][0], "shop");
    }
}
