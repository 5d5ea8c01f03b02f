//! `tidings dry-run`: the live rules over a real mailbox's existing messages, changing nothing.
//!
//! The mailbox is opened with EXAMINE (read-only: the server refuses any change, and does not
//! even clear `\Recent`) and messages are fetched with `BODY.PEEK`, in slices. Each message is
//! judged exactly as the live watcher judges new mail, and the plan shown is the one it would
//! store: flag changes, then copies, then the last move or delete, later rules still seeing the
//! message (unless one stopped). Sequential effects across mailboxes are modelled too: a message
//! a plan moves or copies into another *watched* mailbox is judged again there, with the flags
//! the plan gave it, as that mailbox's watcher would see it as new mail (at most
//! [`MAX_HOPS`] times; a loop is reported). Nothing is written to the store or the server.

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::progress::Progress;
use super::report::{self, VerdictJson, fields};
use super::summary::Summary;
use super::{Error, Verdict};
use crate::config::{Account, Config};
use crate::imap::{Fetched, Groups, Login, Session, Timeouts};
use crate::message::{MessageKey, Meta};
use crate::rules::RuleSet;

/// Messages sized per slice, then fetched (and judged) a byte budget at a time: bounded
/// memory, steady progress.
pub const SLICE: usize = 200;
/// How many watched mailboxes a message may be followed into.
pub const MAX_HOPS: usize = 3;

/// Which messages to look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every message.
    #[default]
    All,
    /// Messages that arrived within a duration (`30d`) or since a date (`2026-01-31`).
    Since(String),
    /// An IMAP SEARCH as written, e.g. `UNSEEN FROM "shop.example"`.
    Search(String),
}

impl Selection {
    /// The UID SEARCH criteria, for a run at `now`.
    pub fn criteria(&self, now: DateTime<Utc>) -> Result<String, Error> {
        let bad = |option: String, reason: String| Error::Option { option, reason };
        match self {
            Selection::All => Ok("ALL".to_owned()),
            Selection::Search(text) if text.trim().is_empty() => {
                Err(bad("--search".into(), "the search is empty".into()))
            }
            Selection::Search(text) => Ok(text.clone()),
            Selection::Since(text) => {
                let date = match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                    Ok(date) => date,
                    Err(_) => {
                        let age = crate::config::duration::parse(text)
                            .map_err(|reason| bad(format!("--since {text}"), reason))?;
                        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                        now.checked_sub_signed(age).unwrap_or(DateTime::<Utc>::MIN_UTC).date_naive()
                    }
                };
                Ok(format!("SINCE {}", date.format("%-d-%b-%Y")))
            }
        }
    }
}

/// What to dry-run, and how to report it.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The account; may be omitted when the config has exactly one.
    pub account: Option<String>,
    /// The mailbox (UTF-8 path, `/` separators).
    pub mailbox: String,
    /// Which messages.
    pub selection: Selection,
    /// Only the newest this many of the selected messages.
    pub limit: Option<usize>,
    /// One JSON object per message and a last `{"summary": ...}` line, instead of text.
    pub json: bool,
    /// Only the summary.
    pub quiet: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// One message's verdicts: in its mailbox, then in each watched mailbox it would land in.
#[derive(Debug)]
pub struct Judged {
    /// Its UID.
    pub uid: u32,
    /// Its From address, or empty.
    pub from: String,
    /// Its subject.
    pub subject: String,
    /// `(mailbox, verdict)`, the first in the mailbox dry-run.
    pub steps: Vec<(String, Verdict)>,
    /// Set when following the message would go round in circles.
    pub loop_at: Option<String>,
}

/// What a judgement needs besides the message.
#[derive(Clone)]
struct Context {
    rules: Arc<RuleSet>,
    account: Arc<Account>,
    mailbox: String,
    uidvalidity: u32,
    now: DateTime<Utc>,
}

/// Runs the dry run and writes the report to `out`; returns the summary.
pub async fn run(
    config: &Config,
    rules: Arc<RuleSet>,
    options: &Options,
    out: &mut dyn Write,
) -> Result<Summary, Error> {
    let account = Arc::new(find_account(config, options.account.as_deref())?.clone());
    let now = Utc::now();
    let criteria = options.selection.criteria(now)?;
    let password =
        account.password.resolve().map_err(|source| Error::Secret { account: account.name.clone(), source })?;
    let imap = |source| Error::Imap {
        account: account.name.clone(),
        mailbox: options.mailbox.clone(),
        source: Box::new(source),
    };
    let timeouts = Timeouts { command: account.watch.command_timeout, send_id: account.imap_id, ..Timeouts::default() };
    let mut session =
        Session::connect(&Login::new(&account, &crate::auth::Credentials::new(&account, password)), timeouts)
            .await
            .map_err(imap)?;
    let selected = session.examine(&options.mailbox).await.map_err(imap)?;
    let mut uids = session.search_uids(&criteria).await.map_err(imap)?;
    if let Some(limit) = options.limit {
        uids.drain(..uids.len().saturating_sub(limit));
    }
    let context = Context {
        rules,
        account: account.clone(),
        mailbox: options.mailbox.clone(),
        uidvalidity: selected.uidvalidity,
        now,
    };
    let summary = judge_slices(&mut session, &context, &uids, options, out).await?;
    if let Err(e) = session.logout().await {
        tracing::debug!(error = %e, "logout failed; the connection is dropped anyway");
    }
    write_summary(out, &summary, &account.name, &options.mailbox, &criteria, options.json)?;
    Ok(summary)
}

/// Fetches the messages group by group and judges each group while the next is fetched;
/// writes each message's report (unless quiet) and returns the summary.
async fn judge_slices(
    session: &mut Session,
    context: &Context,
    uids: &[u32],
    options: &Options,
    out: &mut dyn Write,
) -> Result<Summary, Error> {
    let imap = |source| Error::Imap {
        account: context.account.name.clone(),
        mailbox: context.mailbox.clone(),
        source: Box::new(source),
    };
    let mut summary = Summary::default();
    let mut progress = Progress::new(uids.len(), options.progress);
    let mut pending: Option<tokio::task::JoinHandle<Vec<Judged>>> = None;
    let mut report = |judged: Vec<Judged>, summary: &mut Summary| -> std::io::Result<()> {
        for message in &judged {
            summary.add(&message.steps.iter().map(|(_, v)| v).collect::<Vec<_>>());
            if !options.quiet {
                write_judged(out, &options.mailbox, message, options.json)?;
            }
        }
        progress.advance(judged.len());
        Ok(())
    };
    let mut slices = uids.chunks(SLICE);
    let mut groups = Groups::default();
    loop {
        // Sized a slice at a time, fetched a byte budget at a time: at most two groups (one
        // judged, one fetched) are in memory.
        while groups.is_empty()
            && let Some(slice) = slices.next()
        {
            groups = session.groups(slice, context.account.watch.max_message_size).await.map_err(imap)?;
        }
        let next = match session.fetch_group(&mut groups).await.map_err(imap)? {
            Some(fetched) => {
                let context = context.clone();
                Some(tokio::task::spawn_blocking(move || fetched.iter().map(|f| judge(&context, f)).collect()))
            }
            None => None,
        };
        let done = std::mem::replace(&mut pending, next);
        if let Some(done) = done {
            let judged = done.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            report(judged, &mut summary)?;
        }
        if pending.is_none() {
            return Ok(summary);
        }
    }
}

fn find_account<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a Account, Error> {
    let known = || config.accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ");
    match (name, config.accounts.as_slice()) {
        (Some(name), _) => {
            config.account(name).ok_or_else(|| Error::UnknownAccount { name: name.to_owned(), known: known() })
        }
        (None, [only]) => Ok(only),
        (None, _) => Err(Error::Option {
            option: "--account".into(),
            reason: format!("the config has {} accounts; name one of: {}", config.accounts.len(), known()),
        }),
    }
}

/// Judges one fetched message in its mailbox, then follows it into watched mailboxes.
fn judge(context: &Context, fetched: &Fetched) -> Judged {
    let key = MessageKey::new(context.account.name.clone(), context.mailbox.clone(), context.uidvalidity, fetched.uid);
    let span = tracing::info_span!("message", uid = fetched.uid, uidvalidity = context.uidvalidity);
    let _entered = span.enter();
    let meta = fetched.meta(key);
    let view = Arc::new(crate::message::parse(&fetched.raw, meta.clone()));
    let from = view.from().map(|a| a.address.clone()).unwrap_or_default();
    let subject = view.subject().to_owned();
    let first =
        Verdict::judge(&context.rules, &view, &context.account.rules, context.now).guard(Some(&context.account));
    let mut judged =
        Judged { uid: fetched.uid, from, subject, steps: vec![(context.mailbox.clone(), first)], loop_at: None };
    follow(context, &fetched.raw, meta, &mut judged);
    judged
}

/// Judges the message again in each watched mailbox the last plan moves or copies it into.
fn follow(context: &Context, raw: &[u8], mut meta: Meta, judged: &mut Judged) {
    let mut queue: Vec<(String, Vec<String>)> = Vec::new();
    let mut current = 0;
    loop {
        let (_, verdict) = &judged.steps[current];
        meta.flags = flags_after(&meta.flags, verdict);
        for target in landing_mailboxes(verdict) {
            if context.account.mailboxes.iter().any(|m| m.name == target) {
                queue.push((target, meta.flags.clone()));
            }
        }
        let Some((target, flags)) = queue.pop() else { return };
        if judged.steps.iter().any(|(m, _)| *m == target) || judged.steps.len() > MAX_HOPS {
            judged.loop_at = Some(target);
            return;
        }
        // The watcher there sees a new message: a new UID, unknown until the move is done.
        let key = MessageKey::new(context.account.name.clone(), target.clone(), 0, 0);
        let view = Arc::new(crate::message::parse(raw, Meta { key, flags: flags.clone(), ..meta.clone() }));
        meta.flags = flags;
        let verdict =
            Verdict::judge(&context.rules, &view, &context.account.rules, context.now).guard(Some(&context.account));
        judged.steps.push((target, verdict));
        current = judged.steps.len() - 1;
    }
}

/// The mailboxes a plan puts the message in: its copies and its move.
fn landing_mailboxes(verdict: &Verdict) -> Vec<String> {
    let landing = verdict.plan.actions.iter().filter(|p| matches!(p.action.kind(), "move" | "copy"));
    landing.filter_map(|p| fields(&p.action).get("mailbox").and_then(Value::as_str).map(str::to_owned)).collect()
}

/// `flags` after the plan's flag changes, in plan order.
fn flags_after(flags: &[String], verdict: &Verdict) -> Vec<String> {
    let mut flags = flags.to_vec();
    for planned in &verdict.plan.actions {
        let map = fields(&planned.action);
        let names = map.get("flags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
        match planned.action.kind() {
            "add_flags" => names.for_each(|n| {
                if !flags.iter().any(|f| f.eq_ignore_ascii_case(n)) {
                    flags.push(n.to_owned());
                }
            }),
            "remove_flags" => names.for_each(|n| flags.retain(|f| !f.eq_ignore_ascii_case(n))),
            _ => {}
        }
    }
    flags
}

#[derive(Serialize)]
struct MessageLine<'a> {
    uid: u32,
    mailbox: &'a str,
    from: &'a str,
    subject: &'a str,
    #[serde(flatten)]
    verdict: VerdictJson<'a>,
    then: Vec<FollowLine<'a>>,
    #[serde(rename = "loop", skip_serializing_if = "Option::is_none")]
    loop_at: Option<&'a str>,
}

#[derive(Serialize)]
struct FollowLine<'a> {
    mailbox: &'a str,
    #[serde(flatten)]
    verdict: VerdictJson<'a>,
}

fn write_judged(out: &mut dyn Write, mailbox: &str, judged: &Judged, json: bool) -> std::io::Result<()> {
    let (_, first) = &judged.steps[0];
    if json {
        let then = judged.steps[1..].iter().map(|(m, v)| FollowLine { mailbox: m, verdict: VerdictJson::new(v) });
        let line = MessageLine {
            uid: judged.uid,
            mailbox,
            from: &judged.from,
            subject: &judged.subject,
            verdict: VerdictJson::new(first),
            then: then.collect(),
            loop_at: judged.loop_at.as_deref(),
        };
        return report::write_json_line(out, &line);
    }
    let quiet = |v: &Verdict| v.plan.actions.is_empty() && v.plan.overridden.is_empty() && v.failures.is_empty();
    if judged.steps.iter().all(|(_, v)| quiet(v)) {
        return Ok(());
    }
    let subject: String = judged.subject.chars().take(70).collect();
    writeln!(out, "UID {} from {}: {subject}", judged.uid, if judged.from.is_empty() { "?" } else { &judged.from })?;
    report::write_verdict(out, first, "  ")?;
    for (mailbox, verdict) in &judged.steps[1..] {
        writeln!(out, "  then in {mailbox} (watched: judged again as new mail there):")?;
        report::write_verdict(out, verdict, "    ")?;
    }
    if let Some(target) = &judged.loop_at {
        writeln!(out, "  followed no further at {target}: it was there before (a loop) or moved {MAX_HOPS} times")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    summary: &'a Summary,
}

fn write_summary(
    out: &mut dyn Write,
    summary: &Summary,
    account: &str,
    mailbox: &str,
    criteria: &str,
    json: bool,
) -> std::io::Result<()> {
    if json {
        return report::write_json_line(out, &SummaryLine { summary });
    }
    let n = summary.messages;
    let heading = format!(
        "\ndry run of {account}/{mailbox} ({criteria}): {n} message{}, read-only: nothing was changed.\n\
         The plans are exactly what `tidings run` would store. Messages per effect:",
        if n == 1 { "" } else { "s" }
    );
    summary.write(out, &heading)
}

#[cfg(test)]
#[path = "dry_run_tests.rs"]
mod tests;
