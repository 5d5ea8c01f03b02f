//! Rule fixtures: sample messages paired with the plan the rules must produce for them.
//!
//! A fixture is a YAML file (by convention `rules/tests/*.yaml`):
//!
//! ```yaml
//! now: 2026-11-26T10:00:00Z   # optional: what now() returns (default: the current time)
//! account: work               # optional: msg.account, and that account's `rules:` globs
//! mailbox: INBOX              # optional: msg.mailbox (default INBOX)
//! cases:
//!   - name: a receipt is flagged and labelled      # optional
//!     message: ../../examples/mail/2-receipt.eml   # relative to this file
//!     expect:
//!       - flag: \Flagged
//!       - label: receipt
//!   - message:
//!       raw: |
//!         From: news@shop.example
//!         Subject: Deals
//!         List-Unsubscribe: <mailto:u@shop.example>
//!
//!         Hi
//!     flags: [\Seen]                   # optional: the message's flags on the server
//!     expect: [mark_read, move: Newsletters]
//!     stopped_by: 30-lists.rhai         # optional; `stopped_by: null` = no rule stopped
//!     failures: []                      # rules expected to fail (default: none may fail)
//!     overridden: [move: Inbox/Old]     # optional: the dispositions a later one overrode
//!     suppressed: ["Precedence: bulk"]  # optional: the replies the reply guards stop (and the
//!                                       # forwards the loop marker stops), in plan order, each
//!                                       # by a part of its reason; [] = none is
//!     return_path: ann@example.org      # optional: the envelope sender, put on top of the
//!                                       # message as `Return-Path:` ("<>": the null sender)
//! ```
//!
//! A reply goes to the envelope sender, which the delivering server writes as the first
//! `Return-Path:` header: a message file saved from a mailbox has it; an inline one without it
//! gets a reply that is suppressed ("no Return-Path"), unless the case gives `return_path`.
//!
//! `expect` is the plan in execution order, one action per item: `move: F`, `copy: F`,
//! `flag: \Flagged` / `label: x` (both add flags; a list adds several at once), `unflag:` /
//! `unlabel:`, `mark_read`, `mark_unread`, `delete`; any other action kind as `kind` or
//! `kind: {field: value, ...}` with the fields of its JSON form (or the JSON form itself,
//! `{kind: archive}`). Fields left out of that form are not compared: `- reply` expects a reply,
//! `- reply: {subject: "Re: hi"}` one with that subject. See [`Expected`].
//!
//! A reply in `expect` is what the rule decided; whether it would go out is `suppressed`'s
//! business. The guards that need the account (its own addresses, To/Cc) apply when the case's
//! account is in the config; the others always.
//!
//! A fixture with `rule:` tests a schedule's rule instead of the live rules: each case runs that
//! rule alone, as the schedule would when it fires at `now` (its sweep over the case's message,
//! or, for a case without `message`, its one run of `run: once`), with `collected(name)`
//! giving the case's `collected:` items:
//!
//! ```yaml
//! rule: sweeps/daily-digest.rhai     # relative to the rules directory
//! schedule: daily-digest             # optional: the name msg.trigger gives (default: file stem)
//! now: 2026-11-27T07:00:00+01:00     # the fire time
//! collected: { digest: [{from: a@x.org, subject: Hi}] }   # optional; a case may set its own
//! cases:
//!   - message: {raw: "..."}          # absent: the rule runs once with no message
//!     received: 2026-11-10T08:00:00Z # optional: msg.received (the INTERNALDATE a sweep reads)
//!     expect: [archive]
//!     read: [digest]                 # optional: the names collected() must have read
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::expect::{self, Expected};
use super::{FixtureProblem, Verdict};
use crate::message::{MessageKey, MessageView, Meta};
use crate::plan::Action;
use crate::rules::{Collected, Trigger};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixture {
    rule: Option<String>,
    schedule: Option<String>,
    collected: Option<BTreeMap<String, Vec<Value>>>,
    now: Option<String>,
    account: Option<String>,
    mailbox: Option<String>,
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Option<String>,
    message: Option<RawMessage>,
    #[serde(default)]
    flags: Vec<String>,
    received: Option<String>,
    collected: Option<BTreeMap<String, Vec<Value>>>,
    read: Option<Vec<String>>,
    now: Option<String>,
    account: Option<String>,
    mailbox: Option<String>,
    expect: Vec<Value>,
    #[serde(default, deserialize_with = "present")]
    stopped_by: Option<Option<String>>,
    #[serde(default)]
    failures: Vec<String>,
    overridden: Option<Vec<Value>>,
    suppressed: Option<Vec<String>>,
    return_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMessage {
    File(String),
    Inline { raw: String },
}

/// `Some(value)` for a key that is present, even as `null`; an absent key stays `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A fixture file, loaded and checked.
#[derive(Debug)]
pub struct Fixture {
    /// The file.
    pub path: PathBuf,
    /// The schedule's rule its cases run (relative to the rules directory); `None`: the live
    /// rules.
    pub rule: Option<String>,
    /// Its cases, in file order.
    pub cases: Vec<Case>,
}

/// One sample message and what the rules must decide for it.
#[derive(Debug)]
pub struct Case {
    /// Its number in the file, from 1.
    pub number: usize,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// The message file, unless the message is inline.
    pub file: Option<PathBuf>,
    /// The message; `None` for a schedule's rule run once without one.
    pub raw: Option<Vec<u8>>,
    /// Its flags on the server.
    pub flags: Vec<String>,
    /// Its INTERNALDATE (`msg.received`).
    pub received: Option<DateTime<Utc>>,
    /// What started the evaluation: live mail, or the fixture's schedule firing at `now`.
    pub trigger: Trigger,
    /// What `collected(name)` gives a schedule's rule.
    pub collected: Collected,
    /// The names `collected()` must have read, if checked.
    pub read: Option<Vec<String>>,
    /// The account it is evaluated for (`test` if the fixture names none).
    pub account: String,
    /// The mailbox it is in.
    pub mailbox: String,
    /// The trigger time.
    pub now: DateTime<Utc>,
    /// The plan, in order.
    pub expect: Vec<Expected>,
    /// `Some(None)`: no rule may stop; `Some(Some(r))`: `r` must; `None`: not checked.
    pub stopped_by: Option<Option<String>>,
    /// The rules that must fail (sorted); no other may.
    pub failures: Vec<String>,
    /// The overridden dispositions, if checked.
    pub overridden: Option<Vec<Expected>>,
    /// A part of the reason of each reply the guards suppress, in plan order, if checked.
    pub suppressed: Option<Vec<String>>,
    /// Whether `collect` actions are compared: only when some case of the fixture lists one,
    /// so that a rule collecting for a digest does not make every other fixture list it.
    pub collects_checked: bool,
}

impl Fixture {
    /// Reads the fixture at `path` and the message files it names; `now` is the trigger time
    /// for cases that set none. Every problem is returned, not only the first.
    pub fn load(path: &Path, now: DateTime<Utc>) -> Result<Fixture, Vec<FixtureProblem>> {
        let problem = |case, message| FixtureProblem { path: path.to_owned(), case, message };
        let text = std::fs::read_to_string(path).map_err(|e| vec![problem(None, format!("cannot read it: {e}"))])?;
        let options = serde_saphyr::options! { strict_booleans: true };
        let raw: RawFixture = serde_saphyr::from_str_with_options(&text, options)
            .map_err(|e| vec![problem(None, format!("not a fixture: {e}"))])?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let schedule = match (&raw.rule, raw.schedule) {
            (Some(rule), name) => {
                let stem = Path::new(rule).file_stem().map(|s| s.to_string_lossy().into_owned());
                Some(name.or(stem).unwrap_or_default())
            }
            (None, Some(_)) => {
                return Err(vec![problem(None, "`schedule` needs `rule`: the schedule's rule".to_owned())]);
            }
            (None, None) => None,
        };
        if raw.rule.is_none() && raw.collected.is_some() {
            return Err(vec![problem(None, "`collected` needs `rule`: only a schedule's rule reads it".to_owned())]);
        }
        let defaults = Defaults {
            now: parse_time(raw.now.as_deref(), now).map_err(|e| vec![problem(None, e)])?,
            account: raw.account.unwrap_or_else(|| "test".to_owned()),
            mailbox: raw.mailbox.unwrap_or_else(|| "INBOX".to_owned()),
            schedule,
            collected: raw.collected.unwrap_or_default(),
        };
        let mut cases = Vec::new();
        let mut problems = Vec::new();
        for (i, case) in raw.cases.into_iter().enumerate() {
            match Case::resolve(i + 1, case, dir, &defaults) {
                Ok(case) => cases.push(case),
                Err(errors) => problems.extend(errors.into_iter().map(|e| problem(Some(i + 1), e))),
            }
        }
        if cases.is_empty() && problems.is_empty() {
            problems.push(problem(None, "it has no cases".to_owned()));
        }
        let collects_checked = cases.iter().any(|c| c.expect.iter().any(Expected::is_collect));
        for case in &mut cases {
            case.collects_checked = collects_checked;
        }
        if problems.is_empty() { Ok(Fixture { path: path.to_owned(), rule: raw.rule, cases }) } else { Err(problems) }
    }
}

struct Defaults {
    now: DateTime<Utc>,
    account: String,
    mailbox: String,
    /// The schedule's name, for a fixture of a schedule's rule.
    schedule: Option<String>,
    collected: BTreeMap<String, Vec<Value>>,
}

/// `raw` with `Return-Path: <path>` on top, as the delivering server writes the envelope sender
/// (`""` or `<>`: the null sender of bounces and auto-replies), in the message's line ending.
fn with_return_path(raw: Vec<u8>, path: &str) -> Vec<u8> {
    let path = path.trim().trim_start_matches('<').trim_end_matches('>');
    let eol = if raw.windows(2).any(|w| w == b"\r\n") { "\r\n" } else { "\n" };
    let mut out = format!("Return-Path: <{path}>{eol}").into_bytes();
    out.extend(raw);
    out
}

impl Case {
    fn resolve(number: usize, raw: RawCase, dir: &Path, defaults: &Defaults) -> Result<Case, Vec<String>> {
        let mut errors = Vec::new();
        let (file, bytes) = match raw.message {
            Some(RawMessage::File(name)) => {
                let file = dir.join(name);
                let bytes = std::fs::read(&file).unwrap_or_else(|e| {
                    errors.push(format!("cannot read message {}: {e}", file.display()));
                    Vec::new()
                });
                (Some(file), Some(bytes))
            }
            Some(RawMessage::Inline { raw }) => (None, Some(raw.into_bytes())),
            None if defaults.schedule.is_none() => {
                errors.push("it has no `message` (only a schedule's rule runs without one)".to_owned());
                (None, None)
            }
            None => (None, None),
        };
        let bytes = match (bytes, &raw.return_path) {
            (Some(bytes), Some(path)) => Some(with_return_path(bytes, path)),
            (bytes, None) => bytes,
            (None, Some(_)) => {
                errors.push("`return_path` needs a `message`".to_owned());
                None
            }
        };
        let now = parse_time(raw.now.as_deref(), defaults.now).unwrap_or_else(|e| {
            errors.push(e);
            defaults.now
        });
        let received = raw.received.as_deref().map(|text| {
            parse_time(Some(text), now).unwrap_or_else(|e| {
                errors.push(e.replacen("now:", "received:", 1));
                now
            })
        });
        let trigger = match &defaults.schedule {
            Some(name) => Trigger::Schedule { name: name.clone(), fired_at: now },
            None => Trigger::Live,
        };
        if defaults.schedule.is_none() && (raw.collected.is_some() || raw.read.is_some()) {
            errors.push("`collected` and `read` need the fixture's `rule`: only a schedule's rule reads".to_owned());
        }
        let items = raw.collected.unwrap_or_else(|| defaults.collected.clone());
        let up_to = items.values().map(Vec::len).sum::<usize>();
        let collected = Collected { items, up_to: i64::try_from(up_to).unwrap_or(i64::MAX) };
        let mut actions = |items: &[Value], field: &str| -> Vec<Expected> {
            let (ok, bad): (Vec<_>, Vec<_>) = items.iter().map(Expected::parse).partition(Result::is_ok);
            errors.extend(bad.into_iter().filter_map(Result::err).map(|e| format!("{field}: {e}")));
            ok.into_iter().filter_map(Result::ok).collect()
        };
        let expect = actions(&raw.expect, "expect");
        let overridden = raw.overridden.map(|items| actions(&items, "overridden"));
        let mut failures = raw.failures;
        failures.sort();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Case {
            number,
            name: raw.name,
            file,
            raw: bytes,
            flags: raw.flags,
            received,
            trigger,
            collected,
            read: raw.read.map(|mut names| {
                names.sort();
                names
            }),
            account: raw.account.unwrap_or_else(|| defaults.account.clone()),
            mailbox: raw.mailbox.unwrap_or_else(|| defaults.mailbox.clone()),
            now,
            expect,
            stopped_by: raw.stopped_by,
            failures,
            overridden,
            suppressed: raw.suppressed,
            collects_checked: false,
        })
    }

    /// `case 3 (name)`, for reports.
    pub fn title(&self) -> String {
        match &self.name {
            Some(name) => format!("case {}: {name}", self.number),
            None => format!("case {}", self.number),
        }
    }

    /// The message's key: UIDVALIDITY 1, UID the case number.
    pub fn key(&self) -> MessageKey {
        MessageKey::new(self.account.clone(), self.mailbox.clone(), 1, u32::try_from(self.number).unwrap_or(u32::MAX))
    }

    /// The message as rules see it (see [`Case::key`]); `None` when the case has none.
    pub fn view(&self) -> Option<Arc<MessageView>> {
        let raw = self.raw.as_ref()?;
        let meta = Meta { flags: self.flags.clone(), internal_date: self.received, ..Meta::new(self.key()) };
        Some(Arc::new(crate::message::parse(raw, meta)))
    }

    /// What differs between the names a schedule's rule read with `collected()` and those the
    /// case expects; empty when not checked or the same.
    pub fn check_read(&self, read: &[String]) -> Vec<String> {
        match &self.read {
            Some(expected) if expected.as_slice() != read => {
                vec![format!("read: expected [{}], got [{}]", expected.join(", "), read.join(", "))]
            }
            _ => Vec::new(),
        }
    }

    /// What differs between this case's expectations and `verdict`, as readable lines; empty
    /// when the case passes.
    pub fn check(&self, verdict: &Verdict) -> Vec<String> {
        let mut lines = Vec::new();
        let got: Vec<&Action> = verdict
            .plan
            .actions
            .iter()
            .map(|p| &p.action)
            .filter(|a| self.collects_checked || !matches!(a, Action::Collect { .. }))
            .collect();
        if !expect::all_match(&self.expect, &got) {
            lines.push("plan (- expected, + got):".to_owned());
            lines.extend(expect::diff(&self.expect, &got));
        }
        if let Some(expected) = &self.overridden {
            let got: Vec<&Action> = verdict.plan.overridden.iter().map(|d| &d.action).collect();
            if !expect::all_match(expected, &got) {
                lines.push("overridden (- expected, + got):".to_owned());
                lines.extend(expect::diff(expected, &got));
            }
        }
        if let Some(expected) = &self.stopped_by
            && *expected != verdict.stopped_by
        {
            let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "no rule".to_owned());
            lines.push(format!("stopped_by: expected {}, got {}", show(expected), show(&verdict.stopped_by)));
        }
        if let Some(expected) = &self.suppressed {
            let got: Vec<&str> = verdict.suppressed.iter().map(|(_, reason)| reason.as_str()).collect();
            let same = expected.len() == got.len() && expected.iter().zip(&got).all(|(e, g)| g.contains(e.as_str()));
            if !same {
                lines.push(format!("suppressed: expected {expected:?}, got {got:?}"));
            }
        }
        let mut failed: Vec<&str> = verdict.failures.iter().map(|f| f.rule.as_str()).collect();
        failed.sort_unstable();
        if failed.iter().copied().ne(self.failures.iter().map(String::as_str)) {
            lines.push(format!("failures: expected [{}], got [{}]", self.failures.join(", "), failed.join(", ")));
            lines.extend(verdict.failures.iter().map(|f| format!("  {}: {}", f.rule, f.error)));
        }
        lines
    }
}

/// `2026-11-26T10:00:00Z` or `2026-11-26` (midnight UTC); `default` when absent.
fn parse_time(text: Option<&str>, default: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let Some(text) = text else { return Ok(default) };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.to_utc());
    }
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => Ok(date.and_time(chrono::NaiveTime::MIN).and_utc()),
        Err(_) => Err(format!("now: `{text}` is not a time like 2026-11-26T10:00:00Z or a date like 2026-11-26")),
    }
}

#[cfg(test)]
#[path = "fixtures_tests.rs"]
mod tests;
