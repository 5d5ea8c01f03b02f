//! Event actions: `webhook(endpoint, data)` and `command(name, data)`.
//!
//! Both carry the rule's data as JSON plus the message's facts, captured when the rule decided;
//! the dispatcher wraps them in the versioned payload. Rules name endpoints and commands, never
//! URLs or programs: what leaves the machine, and where, is in the config.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::actions::{record, running};
use super::date::Date;
use super::fail;
use super::reference::{Doc, doc, function};
use crate::message::Address;
use crate::plan::{Action, Event, EventMessage};

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

const COMMAND: Doc = doc(
    "command(name, data)",
    "Run the external program configured under that name, with data as JSON on its standard input.",
    r#"command("notify", #{ title: msg.subject })"#,
);

/// Registers `webhook()` (knowing no endpoint until [`set_webhooks`]) and `command()`.
pub fn register(e: &mut Engine) {
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
