//! Event actions: `webhook(endpoint, data)` and `command(name, data)`.
//!
//! Both carry the rule's data as JSON plus the message's facts, captured when the rule decided;
//! the dispatcher wraps them in the versioned payload. Rules name endpoints and commands, never
//! URLs or programs: what leaves the machine, and where, is in the config.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::actions::{off_the_clock, record, running};
use super::date::Date;
use super::fail;
use super::reference::{Doc, doc, function};
use crate::config::{Include, Webhook};
use crate::message::{Address, MessageView};
use crate::plan::{Action, Event, EventAttachment, EventMessage};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Deepest nesting of arrays and maps in webhook or command data.
const MAX_DEPTH: usize = 32;

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
pub(super) fn type_name(value: &Dynamic) -> &'static str {
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

/// An event for the running rule: the message's facts when it runs on one, with the extras the
/// endpoint's `include` asks for.
fn event(ctx: &NativeCallContext, target: String, data: serde_json::Value, include: Include) -> Result<Event> {
    let (_, view) = running(ctx).ok_or_else(|| fail("actions can only be called while a rule runs"))?;
    let message = view.map(|v| off_the_clock(|| with_extras(EventMessage::of(&v), &v, include)));
    Ok(Event { endpoint: target, data, message, at: None })
}

/// `message` with the parts of `view` that `include` names. They are captured now, while the
/// message is at hand: by the time the event is delivered it may have been moved or deleted.
fn with_extras(mut message: EventMessage, view: &MessageView, include: Include) -> EventMessage {
    let b64 = base64::engine::general_purpose::STANDARD;
    if include.text {
        message.text = Some(view.text().to_owned());
    }
    if include.html {
        message.html = view.html().map(str::to_owned);
    }
    if include.raw {
        message.raw = Some(b64.encode(view.raw()));
    }
    if include.attachments {
        message.attachments = Some(attachments(view));
    }
    message
}

/// The view's attachments with their decoded content. The raw bytes are parsed again by the
/// parser that found the attachments, so the two lists are the same parts in the same order.
fn attachments(view: &MessageView) -> Vec<EventAttachment> {
    let listed = view.attachments();
    if listed.is_empty() {
        return Vec::new();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let parsed = mail_parser::MessageParser::new().parse(view.raw());
    let contents =
        parsed.as_ref().map(|m| m.attachments().map(|p| p.contents()).collect::<Vec<_>>()).unwrap_or_default();
    listed
        .iter()
        .enumerate()
        .map(|(i, a)| EventAttachment {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            content: contents.get(i).map(|c| b64.encode(c)).unwrap_or_default(),
        })
        .collect()
}

/// A command name: a word, so that it reads as a name in the config and in logs.
fn command_name(name: &str) -> Result<String> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then(|| name.to_owned()).ok_or_else(|| fail(format!("`{name}` is not a command name (letters, digits, - _ .)")))
}

const COMMAND: Doc = doc(
    "command(name, data)",
    "Run the external program configured under that name, with data as JSON on its standard input.",
    r#"command("notify", #{ title: msg.subject })"#,
);

const WEBHOOK_AT: Doc = doc(
    "webhook(endpoint, data, #{ at })",
    "The same, sent later: at is a Date or RFC 3339 text (at most a year ahead); it waits in the outbox until then.",
    r#"webhook("chat", #{ text: "Still unanswered: " + msg.subject }, #{ at: now() + "1d" })"#,
);
const WEBHOOK: Doc = doc(
    "webhook(endpoint, data)",
    "POST data as JSON to a webhook endpoint named in the config (names only: no URLs in rules).",
    r#"webhook("chat", #{ text: "Mail from " + msg.from + ": " + msg.subject })"#,
);

/// Registers `webhook()` and `command()`, knowing no endpoint and no command until
/// [`set_webhooks`] and [`set_commands`].
pub fn register(e: &mut Engine) {
    set_webhooks(e, &BTreeMap::new());
    set_commands(e, Vec::<String>::new());
}

/// Makes `webhook()` accept exactly the endpoints named in the config's `webhooks:`: rules name
/// endpoints, never URLs, so no rule can send mail content where the config did not say. Each
/// endpoint's `include` decides how much of the message its events carry.
pub fn set_webhooks(engine: &mut Engine, webhooks: &BTreeMap<String, Webhook>) {
    let known: Arc<BTreeMap<String, Include>> =
        Arc::new(webhooks.iter().map(|(name, hook)| (name.clone(), hook.include)).collect());
    let hooks = Arc::clone(&known);
    function(engine, "webhook", WEBHOOK, move |ctx: NativeCallContext, endpoint: &str, value: Dynamic| {
        record(&ctx, Action::Webhook(webhook(&ctx, &hooks, endpoint, &value)?))
    });
    function(
        engine,
        "webhook",
        WEBHOOK_AT,
        move |ctx: NativeCallContext, endpoint: &str, value: Dynamic, options: Map| {
            let at = super::outbound::only_at(&ctx, "webhook", options)?;
            record(&ctx, Action::Webhook(Event { at, ..webhook(&ctx, &known, endpoint, &value)? }))
        },
    );
}

/// The event of `webhook(endpoint, value)`, for an endpoint the config names.
fn webhook(
    ctx: &NativeCallContext,
    known: &BTreeMap<String, Include>,
    endpoint: &str,
    value: &Dynamic,
) -> Result<Event> {
    let Some(include) = known.get(endpoint) else {
        return Err(fail(format!("no webhook named `{endpoint}` in the config ({})", listed(known.keys()))));
    };
    let data = data("webhook", endpoint, value)?;
    event(ctx, endpoint.to_owned(), data, *include)
}

/// Makes `command()` accept exactly the commands named in the config's `commands:`: rules name
/// commands, never programs.
pub fn set_commands(engine: &mut Engine, names: impl IntoIterator<Item = impl Into<String>>) {
    let known: Arc<[String]> = names.into_iter().map(Into::into).collect();
    function(engine, "command", COMMAND, move |ctx: NativeCallContext, name: &str, value: Dynamic| {
        let name = command_name(name)?;
        if !known.contains(&name) {
            return Err(fail(format!("no command named `{name}` in the config ({})", listed(known.iter()))));
        }
        let data = data("command", &name, &value)?;
        record(&ctx, Action::Command(event(&ctx, name, data, Include::default())?))
    });
}

/// `known: a, b`, or that the config defines none.
fn listed<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "the config defines none".to_owned() } else { format!("known: {}", names.join(", ")) }
}
