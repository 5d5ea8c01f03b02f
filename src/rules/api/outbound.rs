//! Mail actions: `reply`, `forward`, `send` (webhooks and commands are in `events`).
//!
//! They are recorded in the plan like the others and run after the disposition, by their own
//! executors (SMTP, HTTP, process), never by the IMAP one. The message may have moved by then,
//! so each action carries what it needs, captured here. Everything that can be checked without
//! IO is checked here, so that a mistake fails the rule in `tidings test` rather than the action
//! at 3 a.m.: option names and types, addresses, webhook names. A mistake is the rule's, never the
//! message's: what a sender writes (no usable envelope sender, a From of `<>`, a CR LF in the
//! subject, 20,000 recipients) is recorded as it is, made one line, or left out, and the outbox
//! suppresses what has nowhere to go, with the reason.
//!
//! Options are maps, since Rhai has no named arguments: `reply(#{ body: "...", days: 7 })`.

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::actions::{record, running, trigger_time};
use super::date::{self, Date};
use super::events::type_name;
use super::fail;
use super::reference::{Doc, doc, function};
use crate::message::{Address, MessageView};
use crate::plan::{Action, Forward, NewMessage, Original, Reply, one_line};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Days between two replies to one sender when the rule does not say (Sieve vacation's default).
pub const REPLY_DAYS: i64 = 7;

/// How far ahead `at` may schedule a message: further is a typo (a wrong year), not a plan.
const MAX_DELAY_DAYS: i64 = 366;

/// A rule's option map, checked key by key.
struct Options {
    what: &'static str,
    map: Map,
    /// The trigger's time of the running evaluation, which `at` is checked against.
    now: Option<DateTime<Utc>>,
}

impl Options {
    /// Refuses keys outside `known`, listing the known ones.
    fn new(ctx: &NativeCallContext, what: &'static str, map: Map, known: &[&str]) -> Result<Options> {
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(fail(format!("{what}: unknown option `{unknown}` (known: {})", known.join(", "))));
        }
        Ok(Options { what, map, now: trigger_time(ctx) })
    }

    fn text(&self, key: &str) -> Result<Option<String>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_string() => Ok(Some(v.to_string())),
            Some(v) => Err(fail(format!("{}: `{key}` must be a string, not {}", self.what, type_name(v)))),
        }
    }

    fn required(&self, key: &str) -> Result<String> {
        self.text(key)?.ok_or_else(|| fail(format!("{}: `{key}` is required", self.what)))
    }

    /// A header value, made one line: control characters (CR, LF) become spaces, or the message
    /// could grow headers the rule did not write. Not an error, since the text often comes from
    /// the message (`"Re: " + msg.subject`), which a sender writes.
    fn line(&self, key: &str) -> Result<Option<String>> {
        Ok(self.text(key)?.map(|value| one_line(&value)))
    }

    fn flag(&self, key: &str) -> Result<bool> {
        match self.map.get(key) {
            None => Ok(false),
            Some(v) => v.as_bool().map_err(|t| fail(format!("{}: `{key}` must be true or false, not {t}", self.what))),
        }
    }

    /// One address, checked; `None` when absent.
    fn address(&self, key: &str) -> Result<Option<String>> {
        self.map.get(key).map(|value| address(self.what, key, value)).transpose()
    }

    /// When to send: a `Date` (`now() + ...`, `date("...")`) or an RFC 3339 string, at most
    /// a year after the trigger time.
    fn at(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(value) = self.map.get(key) else { return Ok(None) };
        let at = match value.read_lock::<Date>() {
            Some(d) => d.0,
            None if value.is_string() => date::parse(&value.to_string())
                .map_err(|_| fail(format!("{}: `{key}`: cannot read `{value}` as a date: write 2026-12-24T08:00:00+01:00 (RFC 3339) or use date()", self.what)))?
                .0,
            None => return Err(fail(format!("{}: `{key}` must be a date or an RFC 3339 string, not {}", self.what, type_name(value)))),
        };
        let at = at.with_timezone(&Utc);
        if let Some(now) = self.now
            && at > now + chrono::Duration::days(MAX_DELAY_DAYS)
        {
            return Err(fail(format!("{}: `{key}` is more than a year after now ({})", self.what, at.to_rfc3339())));
        }
        Ok(Some(at))
    }

    fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .map(Some)
                .map_err(|t| fail(format!("{}: `{key}` must be a whole number, not {t}", self.what))),
        }
    }

    /// One address or an array of them; `[]` when absent. An `Address` value comes from the
    /// message (`msg.from`, `msg.reply_to[0]`), so one that is not usable is left out rather
    /// than failing the rule: the second number says how many were. Text the rule wrote must be
    /// an address.
    fn recipients(&self, key: &str) -> Result<(Vec<String>, usize)> {
        let Some(value) = self.map.get(key) else { return Ok((Vec::new(), 0)) };
        let items: Vec<Dynamic> = match value.read_lock::<Array>() {
            Some(list) => list.clone(),
            None => vec![value.clone()],
        };
        let (mut usable, mut dropped) = (Vec::new(), 0);
        for item in &items {
            match item.read_lock::<Address>() {
                Some(a) if a.address.parse::<lettre::Address>().is_err() => dropped += 1,
                _ => usable.push(address(self.what, key, item)?),
            }
        }
        Ok((usable, dropped))
    }
}

/// The `at` of an options map that may hold nothing else, for `webhook(endpoint, data, #{ at })`.
pub(super) fn only_at(ctx: &NativeCallContext, what: &'static str, options: Map) -> Result<Option<DateTime<Utc>>> {
    Options::new(ctx, what, options, &["at"])?.at("at")
}

/// A bare address (`ann@example.com`), checked for syntax; an `Address` value counts too.
fn address(what: &str, key: &str, value: &Dynamic) -> Result<String> {
    let text = match value.read_lock::<Address>() {
        Some(a) => a.address.clone(),
        None if value.is_string() => value.to_string(),
        None => return Err(fail(format!("{what}: `{key}` must hold addresses, not {}", type_name(value)))),
    };
    match text.parse::<lettre::Address>() {
        Ok(_) => Ok(text),
        Err(e) => Err(fail(format!("{what}: `{text}` is not an address ({e}); write a bare local@domain"))),
    }
}

/// The message the running rule decides about, for actions that answer or pass it on.
fn message(ctx: &NativeCallContext, what: &str) -> Result<(String, Arc<MessageView>)> {
    match running(ctx) {
        Some((rule, Some(view))) => Ok((rule, view)),
        Some((_, None)) => Err(fail(format!("{what}: a schedule's rule has no message to {what}; use send()"))),
        None => Err(fail("actions can only be called while a rule runs")),
    }
}

/// Which address of the message a reply goes to (`reply(#{ to })`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The envelope sender, from Return-Path: what RFC 3834 section 4 and RFC 5230 say, and
    /// the only one a sender cannot point at somebody else without also getting the bounces.
    ReturnPath,
    /// The first usable Reply-To address, else From: for service answers (an order desk).
    ReplyTo,
    /// The From address.
    From,
}

impl Target {
    fn of(option: Option<&str>) -> Result<Target> {
        match option {
            None | Some("return-path") => Ok(Target::ReturnPath),
            Some("reply-to") => Ok(Target::ReplyTo),
            Some("from") => Ok(Target::From),
            Some(other) => Err(fail(format!(
                "reply: `to` must be \"return-path\" (the envelope sender, the default), \"reply-to\" or \"from\", not {other:?}"
            ))),
        }
    }
}

/// A header's text for a reason shown to people: one line, at most 80 characters.
fn shown(value: &str) -> String {
    let line = one_line(value.trim());
    match line.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// Where a reply to `view` goes, or why it cannot go anywhere: `(address, None)` or
/// `("", Some(reason))`. Never an error: the sender writes these headers, and a rule must not fail
/// on them (the reply is then a suppressed action that says why).
fn recipient(view: &MessageView, original: &Original, target: Target) -> (String, Option<String>) {
    let usable = |a: &str| a.parse::<lettre::Address>().is_ok();
    let header = |name: &str| view.header(name).map_or_else(|| "none".to_owned(), |v| format!("{:?}", shown(v)));
    let from = view.from().map(|a| a.address.clone()).filter(|a| usable(a));
    let found = match target {
        Target::ReturnPath => match original.return_path.as_deref() {
            None => Err("the message has no Return-Path (envelope sender) to reply to".to_owned()),
            Some("") => Err("the envelope sender is <> (a bounce or another automatic message)".to_owned()),
            Some(path) if usable(path) => Ok(path.to_owned()),
            Some(path) => Err(format!("the envelope sender {:?} is not a usable address", shown(path))),
        },
        Target::ReplyTo => {
            view.reply_to().iter().map(|a| a.address.clone()).find(|a| usable(a)).or(from).ok_or_else(|| {
                format!(
                    "the message has no usable Reply-To or From address (Reply-To: {}, From: {})",
                    header("reply-to"),
                    header("from")
                )
            })
        }
        Target::From => {
            from.ok_or_else(|| format!("the message has no usable From address (From: {})", header("from")))
        }
    };
    match found {
        Ok(address) => (address, None),
        Err(reason) => (String::new(), Some(reason)),
    }
}

fn reply(ctx: NativeCallContext, options: Map) -> Result<()> {
    let o = Options::new(&ctx, "reply", options, &["body", "html", "subject", "days", "handle", "from", "at", "to"])?;
    let target = Target::of(o.text("to")?.as_deref())?;
    let body = o.required("body")?;
    let days = o.int("days")?.unwrap_or(REPLY_DAYS);
    let days = u32::try_from(days)
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .ok_or_else(|| fail(format!("reply: `days` must be from 1 to 3650, not {days}")))?;
    let handle = o.line("handle")?;
    if handle.as_deref().is_some_and(|h| h.trim().is_empty()) {
        return Err(fail("reply: `handle` cannot be empty"));
    }
    let (html, from, at) = (o.text("html")?, o.address("from")?, o.at("at")?);
    let (rule, view) = message(&ctx, "reply")?;
    let original = Original::of(&view);
    let (to, unusable) = recipient(&view, &original, target);
    let subject = match o.line("subject")? {
        Some(subject) => subject,
        None if original.subject.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) => one_line(&original.subject),
        None => one_line(&format!("Re: {}", original.subject)),
    };
    let handle = handle.unwrap_or(rule);
    record(&ctx, Action::Reply(Reply { to, unusable, subject, body, days, handle, original, html, from, at }))
}

fn forward(ctx: NativeCallContext, options: Map) -> Result<()> {
    let o = Options::new(&ctx, "forward", options, &["to", "note", "attach", "from"])?;
    // With no usable address left (all from the message), the forward is recorded and the outbox
    // suppresses it, saying so.
    let (to, dropped) = o.recipients("to")?;
    if to.is_empty() && dropped == 0 {
        return Err(fail("forward: `to` is required"));
    }
    let (note, attach, from) = (o.text("note")?, o.flag("attach")?, o.address("from")?);
    let (_, view) = message(&ctx, "forward")?;
    // A message over max_message_size (its size is the sender's choice) goes inline with its
    // headers summary and a line that says why, rather than failing the rule.
    let (attached, note) = match attach {
        true if view.truncated() => {
            let why = "(The original is over this account's max_message_size: only its headers were fetched, so it is not attached.)";
            (None, Some(note.map_or_else(|| why.to_owned(), |n| format!("{n}\n\n{why}"))))
        }
        true => (Some(base64::engine::general_purpose::STANDARD.encode(view.raw())), note),
        false => (None, note),
    };
    let text = view.text().to_owned();
    record(&ctx, Action::Forward(Forward { to, note, original: Original::of(&view), text, attached, from }))
}

fn send(ctx: NativeCallContext, options: Map) -> Result<()> {
    let o = Options::new(&ctx, "send", options, &["to", "cc", "subject", "body", "html", "from", "at"])?;
    let (to, dropped) = o.recipients("to")?;
    if to.is_empty() && dropped == 0 {
        return Err(fail("send: `to` is required"));
    }
    let (cc, _) = o.recipients("cc")?;
    let subject = o.line("subject")?.ok_or_else(|| fail("send: `subject` is required"))?;
    let body = o.required("body")?;
    let (html, from, at) = (o.text("html")?, o.address("from")?, o.at("at")?);
    record(&ctx, Action::Send(NewMessage { to, cc, subject, body, html, from, at }))
}

const REPLY: Doc = doc(
    "reply(text)",
    "Reply to the envelope sender (Return-Path) with this text, at most once per sender in 7 days; never to lists, robots, bounces or automatic mail. A message without a usable envelope sender (<>, none) gets no reply: the reply is recorded as suppressed, with the reason, and the rule's other decisions stand.",
    r#"if !msg.is_auto_submitted { reply("I am away until Monday."); }"#,
);
const REPLY_WITH: Doc = doc(
    "reply(#{ body, html, subject, days, handle, from, at, to })",
    "Reply with options: body (required), html (an HTML alternative), subject (default Re: ...; control characters become spaces), days between replies to one sender (default 7), handle (what once-per-days is counted under; default the rule's name), from (one of the account's addresses; default the one the message was sent to), at (a Date or RFC 3339 text: not before then), to: \"return-path\" (default: the envelope sender, as RFC 3834 and Sieve vacation do), \"reply-to\" (the first usable Reply-To, else From) or \"from\". Reply-To and From are written by the sender: one that passes SPF for its own domain can name any victim, so use them only for answers a person asked for (a service desk), never for an out-of-office reply.",
    r#"reply(#{ body: "Back on Monday.", days: 1, handle: "away", at: "2026-12-28T08:00:00+01:00" })"#,
);
const FORWARD: Doc = doc(
    "forward(to)",
    "Forward the message (its headers summary and text) to an address; never a message this account forwarded before (X-Loop), at most forward_rate an hour to one address.",
    r#"forward("assistant@example.com")"#,
);
const FORWARD_WITH: Doc = doc(
    "forward(#{ to, note, attach, from })",
    "Forward with options: to (an address or an array of them; an Address from the message, such as msg.from, that is not usable is left out, and with nobody left the forward is suppressed, not a failure), note (text above the message), attach (true: the whole original as a message/rfc822 attachment; a message over max_message_size goes inline, with a line that says so), from (one of the account's addresses). A forward carries X-Loop: <the account's address> and the X-Loop lines of the message forwarded; a message that already carries this account's is not forwarded again (suppressed), and forwards to one destination are limited per hour (forward_rate).",
    r#"forward(#{ to: ["a@example.com", "b@example.com"], note: "FYI", attach: true })"#,
);
const SEND: Doc = doc(
    "send(#{ to, cc, subject, body, html, from, at })",
    "Send a new message (a notice, a digest): to, subject and body required; cc, html, from (one of the account's addresses) and at (a Date or RFC 3339 text: not before then) optional. Control characters in the subject (a CR LF from msg.subject) become spaces; an Address from the message in to or cc that is not usable is left out (with nobody left the message is suppressed).",
    r#"send(#{ to: "me@example.com", subject: "Big attachment from " + msg.from, body: msg.subject })"#,
);
/// Registers the outbound actions, the mail ones here and the events in [`super::events`].
pub fn register(engine: &mut Engine) {
    let e = engine;
    function(e, "reply", REPLY, |ctx: NativeCallContext, body: &str| {
        reply(ctx, Map::from([("body".into(), body.into())]))
    });
    function(e, "reply", REPLY_WITH, reply);
    function(e, "forward", FORWARD, |ctx: NativeCallContext, to: &str| {
        forward(ctx, Map::from([("to".into(), to.into())]))
    });
    function(e, "forward", FORWARD_WITH, forward);
    function(e, "send", SEND, send);
    super::events::register(e);
}
