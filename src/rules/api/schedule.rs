//! Triggers and digests: `trigger()` and `msg.trigger` (what started the evaluation),
//! `collect(name, data)` in live rules and `collected(name)` in a schedule's rule.
//!
//! A live rule collects data under a name; the store keeps it with the message's plan. When a
//! schedule fires, its rule reads everything collected under that name for the account, oldest
//! first, and the run consumes what it read in the transaction that stores its own plan (the
//! digest's summary): nothing is lost to a restart and nothing is summarised twice.

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::actions::{record, with_current};
use super::date::Date;
use super::events::json;
use super::fail;
use super::message::Msg;
use super::reference::{Doc, doc, function, getter};
use crate::plan::Action;
use crate::rules::trigger::Trigger;

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Longest collection name: it is a name, not data.
const MAX_NAME: usize = 64;

/// What started the running evaluation, as scripts see it.
fn trigger(ctx: NativeCallContext) -> Result<Map> {
    let trigger =
        with_current(&ctx, |r| r.trigger.clone()).ok_or_else(|| fail("trigger() is only known while a rule runs"))?;
    let mut map = Map::new();
    match trigger {
        Trigger::Live => {
            map.insert("kind".into(), "live".into());
        }
        Trigger::Schedule { name, fired_at } => {
            map.insert("kind".into(), "schedule".into());
            map.insert("name".into(), name.into());
            map.insert("fired_at".into(), Dynamic::from(Date(fired_at.fixed_offset())));
        }
    }
    Ok(map)
}

/// A collection name: a word, so that it reads as a name in rules and in the store.
fn collection(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    ok.then(|| name.to_owned())
        .ok_or_else(|| fail(format!("`{name}` is not a collection name (letters, digits, - _ ., at most {MAX_NAME})")))
}

fn collect(ctx: NativeCallContext, name: &str, data: Dynamic) -> Result<()> {
    let name = collection(name)?;
    if with_current(&ctx, |r| r.trigger.is_schedule()).unwrap_or(false) {
        return Err(fail("collect() is for live rules; a schedule's rule reads with collected(name)"));
    }
    let data = json(&data, 0).map_err(|e| fail(format!("cannot collect data into `{name}`: {e}")))?;
    record(&ctx, Action::Collect { name, data })
}

fn collected(ctx: NativeCallContext, name: &str) -> Result<Array> {
    let name = collection(name)?;
    let items = with_current(&ctx, |r| {
        let items = r.collected.as_ref().map(|c| c.items.get(&name).cloned().unwrap_or_default());
        if items.is_some() {
            r.read.insert(name.clone());
        }
        items
    })
    .flatten()
    .ok_or_else(|| fail("collected() is for a schedule's rule; a live rule adds with collect(name, data)"))?;
    Ok(items.iter().map(dynamic).collect())
}

/// JSON as Rhai data: objects as maps, arrays as arrays, null as `()`.
fn dynamic(value: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.clone().into(),
        Value::Array(items) => items.iter().map(dynamic).collect::<Array>().into(),
        Value::Object(map) => {
            Dynamic::from_map(map.iter().map(|(k, v)| (k.as_str().into(), dynamic(v))).collect::<Map>())
        }
    }
}

const TRIGGER: Doc = doc(
    "trigger() -> map",
    "What started this evaluation: #{ kind: \"live\" } for new mail, #{ kind: \"schedule\", name, fired_at } when a schedule fired (fired_at is a Date, the same as now()).",
    r#"if trigger().kind == "schedule" { print("fired by " + trigger().name); }"#,
);
const MSG_TRIGGER: Doc = doc(
    "msg.trigger -> map",
    "The same as trigger(), from the message: live mail or the schedule whose sweep selected it.",
    r#"if msg.trigger.kind == "live" && msg.subject.contains("urgent") { flag("\\Flagged"); }"#,
);
const COLLECT: Doc = doc(
    "collect(name, data)",
    "Live rules: keep data (a map, array, string ...) under a name for a schedule's rule to read with collected(name); stored with the message's plan, once per message.",
    r#"collect("digest", #{ from: msg.from.address, subject: msg.subject })"#,
);
const COLLECTED: Doc = doc(
    "collected(name) -> array",
    "A schedule's rule: the data live rules collected under that name for the account, oldest first ([] if none); the run consumes what it read once its plan is stored.",
    r#"if trigger().kind == "schedule" { let items = collected("digest"); print(items.len()); }"#,
);

/// Registers `trigger()`, `msg.trigger`, `collect()` and `collected()`.
pub fn register(engine: &mut Engine) {
    let e = engine;
    function(e, "trigger", TRIGGER, trigger);
    getter(e, "trigger", MSG_TRIGGER, |ctx: NativeCallContext, _: &mut Msg| trigger(ctx));
    function(e, "collect", COLLECT, collect);
    function(e, "collected", COLLECTED, collected);
}
