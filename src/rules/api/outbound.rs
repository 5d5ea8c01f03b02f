//! Outbound actions: `reply`, `forward`, `send`, `webhook`, `command`.
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
use super::date::Date;
use super::fail;
use super::reference::{Doc, doc, function};
use crate::message::{Address, MessageView};
use crate::plan::{Action, Event, EventMessage, Forward, NewMessage, Original, Reply};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Days between two replies to one sender when the rule does not say (Sieve vacation's default).
pub const REPLY_DAYS: i64 = 7;
/// Deepest nesting of arrays and maps in webhook or command data.
const MAX_DEPTH: usize = 32;

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

/// Rhai data as JSON: maps, arrays, strings, numbers, booleans, `()` as null; addresses and
/// dates as their strings.
pub fn json(value: &Dynamic, depth: usize) -> std::result::Result<serde_json::Value, String> {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        return Err(format!("it is nested deeper than {MAX_DEPTH} levels"));
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Some(list) = value.read_lock::<Array>() {
        return list.iter().map(|v| json(v, depth + 1)).collect::<std::result::Result<_, _>>().map(Value::Array);
    }
    if let Some(map) = value.read_lock::<Map>() {
        let object = map.iter().map(|(k, v)| Ok((k.to_string(), json(v, depth + 1)?)));
        return object.collect::<std::result::Result<_, String>>().map(Value::Object);
    }
    if let Some(a) = value.read_lock::<Address>() {
        return Ok(Value::String(a.address.clone()));
    }
    if let Some(d) = value.read_lock::<Date>() {
        return Ok(Value::String(d.0.to_rfc3339()));
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(n) = value.as_int() {
        return Ok(Value::from(n));
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{f} is not a JSON number"));
    }
    if value.is_string() || value.is_char() {
        return Ok(Value::String(value.to_string()));
    }
    Err(format!("it holds a {}, which has no JSON form (pick fields, such as msg.subject)", type_name(value)))
}

/// A value's type as scripts know it: `Message`, not the Rust path of the host type.
fn type_name(value: &Dynamic) -> &'static str {
    if value.is::<super::message::Msg>() {
        "Message"
    } else if value.is::<super::message::Auth>() {
        "Auth"
    } else {
        value.type_name()
    }
}

fn data(what: &str, name: &str, value: &Dynamic) -> Result<serde_json::Value> {
    json(value, 0).map_err(|e| fail(format!("cannot send data to {what} `{name}`: {e}")))
}

/// An event for the running rule: the message's facts when it runs on one.
fn event(target: String, data: serde_json::Value) -> Result<Event> {
    let (_, view) = running().ok_or_else(|| fail("actions can only be called while a rule runs on a message"))?;
    let message = view.map(|v| EventMessage::of(&v));
    Ok(Event { endpoint: target, data, message, at: None })
}

/// A command name: a word, so that it reads as a name in the config and in logs.
fn command_name(name: &str) -> Result<String> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then(|| name.to_owned()).ok_or_else(|| fail(format!("`{name}` is not a command name (letters, digits, - _ .)")))
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
const COMMAND: Doc = doc(
    "command(name, data)",
    "Run the external program configured under that name, with data as JSON on its standard input.",
    r#"command("notify", #{ title: msg.subject })"#,
);

/// Registers the outbound actions; `webhook()` knows no endpoint until [`set_webhooks`].
pub fn register(engine: &mut Engine) {
    let e = engine;
    function(e, "reply", REPLY, |body: &str| reply(Map::from([("body".into(), body.into())])));
    function(e, "reply", REPLY_WITH, reply);
    function(e, "forward", FORWARD, |to: &str| forward(Map::from([("to".into(), to.into())])));
    function(e, "forward", FORWARD_WITH, forward);
    function(e, "send", SEND, send);
    set_webhooks(e, Vec::<String>::new());
    function(e, "command", COMMAND, |name: &str, value: Dynamic| {
        let name = command_name(name)?;
        let data = data("command", &name, &value)?;
        record(Action::Command(event(name, data)?))
    });
}

/// Makes `webhook()` accept exactly the endpoints named in the config's `webhooks:`: rules name
/// endpoints, never URLs, so no rule can send mail content where the config did not say.
pub fn set_webhooks(engine: &mut Engine, names: impl IntoIterator<Item = impl Into<String>>) {
    let known: Arc<[String]> = names.into_iter().map(Into::into).collect();
    function(
        engine,
        "webhook",
        doc(
            "webhook(endpoint, data)",
            "POST data as JSON to a webhook endpoint named in the config (names only: no URLs in rules).",
            r#"webhook("chat", #{ text: "Mail from " + msg.from + ": " + msg.subject })"#,
        ),
        move |endpoint: &str, value: Dynamic| {
            if !known.iter().any(|k| k == endpoint) {
                let listed = if known.is_empty() {
                    "the config defines none".to_owned()
                } else {
                    format!("known: {}", known.join(", "))
                };
                return Err(fail(format!("no webhook named `{endpoint}` in the config ({listed})")));
            }
            let data = data("webhook", endpoint, &value)?;
            record(Action::Webhook(event(endpoint.to_owned(), data)?))
        },
    );
}
