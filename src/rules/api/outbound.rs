//! Mail actions: `reply`, `forward`, `send` (webhooks and commands are in `events`).
//!
//! They are recorded in the plan like the others and run after the disposition, by their own
//! executors (SMTP, HTTP, process), never by the IMAP one. The message may have moved by then,
//! so each action carries what it needs, captured here. Everything that can be checked without
//! IO is checked here, so that a mistake fails the rule in `tidings test` rather than the action
//! at 3 a.m.: option names and types, addresses, webhook names.
//!
//! Options are maps, since Rhai has no named arguments: `reply(#{ body: "...", days: 7 })`.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::actions::{record, running};
use super::events::type_name;
use super::fail;
use super::reference::{Doc, doc, function};
use crate::message::{Address, MessageView};
use crate::plan::{Action, Forward, NewMessage, Original, Reply};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Days between two replies to one sender when the rule does not say (Sieve vacation's default).
pub const REPLY_DAYS: i64 = 7;

/// A rule's option map, checked key by key.
struct Options {
    what: &'static str,
    map: Map,
}

impl Options {
    /// Refuses keys outside `known`, listing the known ones.
    fn new(what: &'static str, map: Map, known: &[&str]) -> Result<Options> {
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(fail(format!("{what}: unknown option `{unknown}` (known: {})", known.join(", "))));
        }
        Ok(Options { what, map })
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

    /// A header value: one line, or the message could grow headers the rule did not write.
    fn line(&self, key: &str) -> Result<Option<String>> {
        let value = self.text(key)?;
        if value.as_deref().is_some_and(|v| v.contains(['\r', '\n'])) {
            return Err(fail(format!("{}: `{key}` must be one line", self.what)));
        }
        Ok(value)
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

    /// One address or an array of them; `[]` when absent.
    fn addresses(&self, key: &str) -> Result<Vec<String>> {
        let Some(value) = self.map.get(key) else { return Ok(Vec::new()) };
        let items: Vec<Dynamic> = match value.read_lock::<Array>() {
            Some(list) => list.clone(),
            None => vec![value.clone()],
        };
        items.iter().map(|item| address(self.what, key, item)).collect()
    }
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
fn message(what: &str) -> Result<(String, Arc<MessageView>)> {
    match running() {
        Some((rule, Some(view))) => Ok((rule, view)),
        Some((_, None)) => Err(fail(format!("{what}: a schedule's rule has no message to {what}; use send()"))),
        None => Err(fail("actions can only be called while a rule runs on a message")),
    }
}

fn reply(options: Map) -> Result<()> {
    let o = Options::new("reply", options, &["body", "subject", "days"])?;
    let body = o.required("body")?;
    let days = o.int("days")?.unwrap_or(REPLY_DAYS);
    let days = u32::try_from(days)
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .ok_or_else(|| fail(format!("reply: `days` must be from 1 to 3650, not {days}")))?;
    let (rule, view) = message("reply")?;
    let to = view.reply_to().first().or(view.from()).map(|a| a.address.clone()).unwrap_or_default();
    let to = address("reply", "the sender", &Dynamic::from(to))
        .map_err(|_| fail("reply: the message has no From or Reply-To address to reply to"))?;
    let original = Original::of(&view);
    let subject = match o.line("subject")? {
        Some(subject) => subject,
        None if original.subject.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) => original.subject.clone(),
        None => format!("Re: {}", original.subject),
    };
    record(Action::Reply(Reply { to, subject, body, days, handle: rule, original, html: None, from: None, at: None }))
}

fn forward(options: Map) -> Result<()> {
    let o = Options::new("forward", options, &["to", "note"])?;
    let to = o.addresses("to")?;
    if to.is_empty() {
        return Err(fail("forward: `to` is required"));
    }
    let note = o.text("note")?;
    let (_, view) = message("forward")?;
    let text = view.text().to_owned();
    record(Action::Forward(Forward { to, note, original: Original::of(&view), text, attached: None, from: None }))
}

fn send(options: Map) -> Result<()> {
    let o = Options::new("send", options, &["to", "cc", "subject", "body"])?;
    let to = o.addresses("to")?;
    if to.is_empty() {
        return Err(fail("send: `to` is required"));
    }
    let cc = o.addresses("cc")?;
    let subject = o.line("subject")?.ok_or_else(|| fail("send: `subject` is required"))?;
    record(Action::Send(NewMessage { to, cc, subject, body: o.required("body")?, html: None, from: None, at: None }))
}

const REPLY: Doc = doc(
    "reply(text)",
    "Reply to the sender (Reply-To, else From) with this text, at most once per sender in 7 days.",
    r#"if !msg.is_auto_submitted { reply("I am away until Monday."); }"#,
);
const REPLY_WITH: Doc = doc(
    "reply(#{ body, subject, days })",
    "Reply with options: body (required), subject (default Re: ...), days between replies to one sender (default 7).",
    r#"reply(#{ body: "Back on Monday.", days: 1 })"#,
);
const FORWARD: Doc = doc(
    "forward(to)",
    "Forward the message (its headers summary and text) to an address.",
    r#"forward("assistant@example.com")"#,
);
const FORWARD_WITH: Doc = doc(
    "forward(#{ to, note })",
    "Forward with options: to (an address or an array of them), note (text above the message).",
    r#"forward(#{ to: ["a@example.com", "b@example.com"], note: "FYI" })"#,
);
const SEND: Doc = doc(
    "send(#{ to, cc, subject, body })",
    "Send a new message (a notice, a digest): to and subject and body required, cc optional.",
    r#"send(#{ to: "me@example.com", subject: "Big attachment from " + msg.from, body: msg.subject })"#,
);
/// Registers the outbound actions, the mail ones here and the events in [`super::events`].
pub fn register(engine: &mut Engine) {
    let e = engine;
    function(e, "reply", REPLY, |body: &str| reply(Map::from([("body".into(), body.into())])));
    function(e, "reply", REPLY_WITH, reply);
    function(e, "forward", FORWARD, |to: &str| forward(Map::from([("to".into(), to.into())])));
    function(e, "forward", FORWARD_WITH, forward);
    function(e, "send", SEND, send);
    super::events::register(e);
}
