//! Printing verdicts: aligned lines for people, one JSON object per line for scripts.
//!
//! Actions are printed from their serde JSON and [`Action::kind`], never by matching on the
//! variants, so an action kind added later prints (and compares) without a change here.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value};

use super::Verdict;
use crate::plan::{Action, Phase};
use crate::rules::Printed;

/// The widest an action is padded to, so that the rules behind short actions line up: a longer
/// one (a webhook with its data) is followed by the rule after three spaces and pads no other.
const ALIGN: usize = 40;
/// The longest an action's line is in a plan, in characters: a webhook's data or a reply's
/// text is clipped here (`--json` has all of it), so that a plan line fits a terminal.
const LINE: usize = 80;

/// The action's JSON object (`{"kind": "move", "mailbox": "A"}`), or just its kind.
pub(super) fn fields(action: &Action) -> Map<String, Value> {
    match serde_json::to_value(action) {
        Ok(Value::Object(map)) => map,
        _ => Map::from_iter([("kind".to_owned(), Value::from(action.kind()))]),
    }
}

/// One line for people: `move -> Lists/rust`, `add flags \Seen`, `delete`,
/// `webhook endpoint=crm data={"id":7}`, `reply to=a@b.example subject="Re: hi" ...`,
/// `collect -> digest data={...}`.
pub fn describe(action: &Action) -> String {
    let mut map = fields(action);
    map.remove("kind");
    let mut text = action.kind().replace('_', " ");
    if let Some(Value::Array(flags)) = map.remove("flags") {
        for flag in &flags {
            text.push(' ');
            text.push_str(&scalar(flag));
        }
    }
    // A folder, or the collection a live rule adds to: where the action goes.
    let target = if matches!(action, Action::Collect { .. }) { "name" } else { "mailbox" };
    if let Some(Value::String(target)) = map.remove(target) {
        text.push_str(" -> ");
        text.push_str(&target);
    }
    for (key, value) in &map {
        text.push_str(&format!(" {key}={}", short(value)));
    }
    text
}

/// A JSON value as text: strings bare, anything else as compact JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field's value in a one-line description: a word bare, a phrase quoted, a list of words
/// comma-separated, anything else compact JSON; long values clipped.
fn short(value: &Value) -> String {
    const MAX: usize = 40;
    let word = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '"' || c == ',');
    let text = match value {
        Value::String(s) if word(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| i.as_str().is_some_and(word)) => {
            items.iter().map(scalar).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX) {
        Some((cut, _)) if text.starts_with('"') => format!("{}…\"", &text[..cut]),
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The action as a fixture's `expect:` list writes it (YAML): `move: Lists/rust`,
/// `flag: \Flagged`, `label: receipt`, `unflag: \Seen`, `delete`, or for other kinds
/// `kind: {json fields}`. Reading this form back gives the same action.
pub fn fixture_form(action: &Action) -> String {
    json_fixture_form(&fields(action))
}

/// [`fixture_form`] of an action's JSON object (`kind` and fields), complete or not.
pub fn json_fixture_form(action: &Map<String, Value>) -> String {
    let mut map = action.clone();
    let kind = match map.remove("kind") {
        Some(Value::String(kind)) => kind,
        _ => return Value::Object(map).to_string(),
    };
    let only = |name: &str| map.len() == 1 && map.contains_key(name);
    match (kind.as_str(), map.get("mailbox"), map.get("flags")) {
        ("move" | "copy", Some(Value::String(mailbox)), _) if only("mailbox") => {
            format!("{kind}: {}", yaml_string(mailbox))
        }
        ("add_flags" | "remove_flags", _, Some(Value::Array(flags))) if only("flags") => {
            let system = flags.iter().all(|f| f.as_str().is_some_and(|f| f.starts_with('\\')));
            let verb = match (kind.as_str(), system) {
                ("add_flags", true) => "flag",
                ("add_flags", false) => "label",
                (_, true) => "unflag",
                (_, false) => "unlabel",
            };
            let names: Vec<String> = flags.iter().map(|f| yaml_string(&scalar(f))).collect();
            match names.as_slice() {
                [one] => format!("{verb}: {one}"),
                _ => format!("{verb}: [{}]", names.join(", ")),
            }
        }
        _ if map.is_empty() => kind,
        // JSON is YAML's flow style: the same text reads back as the same map.
        _ => format!("{kind}: {}", Value::Object(map)),
    }
}

/// `s` as a YAML scalar: bare when that reads back as the same string, else double-quoted.
pub fn yaml_string(s: &str) -> String {
    let first_ok = s.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '\\' || c == '$');
    let chars_ok = s.chars().all(|c| c.is_alphanumeric() || "\\/._-$+@".contains(c));
    let reserved = ["true", "false", "null", "yes", "no", "on", "off", "y", "n"];
    let looks_typed = s.parse::<f64>().is_ok() || reserved.contains(&s.to_lowercase().as_str());
    if first_ok && chars_ok && !looks_typed { s.to_owned() } else { Value::from(s).to_string() }
}

/// An action in the JSON output: `{"rule": .., "kind": .., ...its fields}`.
#[derive(Debug, Serialize)]
pub struct ActionJson<'a> {
    /// The rule that decided it.
    pub rule: &'a str,
    /// The action, flattened: its `kind` and fields.
    #[serde(flatten)]
    pub action: &'a Action,
    /// Why the reply guards would not send it; absent when they would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<&'a str>,
}

/// An error in the JSON output; `rule` is null for an error that is not a rule's.
#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    /// The rule that failed, if a rule did.
    pub rule: Option<&'a str>,
    /// What went wrong.
    pub error: &'a str,
}

/// A verdict's JSON fields, to flatten into a line that says which message it is about.
#[derive(Debug, Serialize)]
pub struct VerdictJson<'a> {
    /// Rules that decided something, and the one that stopped.
    pub rules_matched: &'a [String],
    /// The rule that called `stop()`.
    pub stopped_by: Option<&'a str>,
    /// The plan, in execution order.
    pub actions: Vec<ActionJson<'a>>,
    /// Dispositions a later one overrode.
    pub overridden: Vec<ActionJson<'a>>,
    /// Rule failures (and, for a message that could not be read, why).
    pub errors: Vec<ErrorJson<'a>>,
    /// What the rules wrote with `print()` and `debug()`: `{"rule": .., "text": ..}`; left out
    /// when they wrote nothing, so a line's keys stay those scripts already read.
    #[serde(skip_serializing_if = "<[Printed]>::is_empty")]
    pub printed: &'a [Printed],
}

impl<'a> VerdictJson<'a> {
    /// The JSON view of `verdict`.
    pub fn new(verdict: &'a Verdict) -> VerdictJson<'a> {
        VerdictJson {
            rules_matched: &verdict.rules_matched,
            stopped_by: verdict.stopped_by.as_deref(),
            actions: verdict
                .plan
                .actions
                .iter()
                .enumerate()
                .map(|(i, p)| ActionJson { rule: &p.rule, action: &p.action, suppressed: verdict.suppressed(i) })
                .collect(),
            overridden: verdict
                .plan
                .overridden
                .iter()
                .map(|d| ActionJson { rule: &d.rule, action: &d.action, suppressed: None })
                .collect(),
            errors: verdict.failures.iter().map(|f| ErrorJson { rule: Some(&f.rule), error: &f.error }).collect(),
            printed: &verdict.printed,
        }
    }
}

/// Writes `line` as one line of JSON.
pub fn write_json_line(out: &mut dyn Write, line: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line).map_err(io::Error::from)?;
    writeln!(out)
}

/// The verdict for people, indented under a heading the caller wrote: the rules matched, the
/// plan in order with the rule behind each action, the overridden dispositions, the errors.
pub fn write_verdict(out: &mut dyn Write, verdict: &Verdict, indent: &str) -> io::Result<()> {
    let matched = match (verdict.rules_matched.is_empty(), &verdict.stopped_by) {
        (true, _) => "none".to_owned(),
        (false, None) => verdict.rules_matched.join(", "),
        (false, Some(stopper)) => {
            let names: Vec<String> = verdict
                .rules_matched
                .iter()
                .map(|n| if n == stopper { format!("{n} (stopped)") } else { n.clone() })
                .collect();
            names.join(", ")
        }
    };
    writeln!(out, "{indent}rules matched: {matched}")?;
    if verdict.plan.actions.is_empty() {
        writeln!(out, "{indent}plan: nothing to do")?;
    }
    let clip = |line: String| match line.char_indices().nth(LINE) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    };
    let lines: Vec<String> = verdict.plan.actions.iter().map(|p| clip(describe(&p.action))).collect();
    let width = lines.iter().map(|l| l.chars().count()).filter(|w| *w <= ALIGN).max().unwrap_or(0);
    for (n, (line, planned)) in lines.iter().zip(&verdict.plan.actions).enumerate() {
        let pad = width.saturating_sub(line.chars().count());
        writeln!(out, "{indent}{}. {line}{:pad$}   ({})", n + 1, "", planned.rule)?;
        if let Some(reason) = verdict.suppressed(n) {
            writeln!(out, "{indent}   suppressed: {reason}")?;
        }
    }
    let winner = verdict.plan.actions.iter().find(|p| p.action.phase() == Phase::Disposition);
    for lost in &verdict.plan.overridden {
        let by = winner.map_or_else(String::new, |w| format!(" by {} ({})", describe(&w.action), w.rule));
        writeln!(out, "{indent}conflict: {} ({}) overridden{by}", describe(&lost.action), lost.rule)?;
    }
    for printed in &verdict.printed {
        writeln!(out, "{indent}print ({}): {}", printed.rule, printed.text)?;
    }
    for failure in &verdict.failures {
        writeln!(out, "{indent}error: {}: {}", failure.rule, failure.error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageKey;
    use crate::plan::{Decision, Plan};
    use crate::rules::RuleFailure;

    fn flags(names: &[&str]) -> Action {
        Action::AddFlags { flags: names.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn actions_read_well() {
        assert_eq!(describe(&Action::Move { mailbox: "Lists/rust".into() }), "move -> Lists/rust");
        assert_eq!(describe(&flags(&["\\Seen", "x"])), "add flags \\Seen x");
        assert_eq!(describe(&Action::Delete), "delete");
        let collect = Action::Collect { name: "digest".into(), data: serde_json::json!({"subject": "Hi"}) };
        assert_eq!(describe(&collect), "collect -> digest data={\"subject\":\"Hi\"}");
        assert_eq!(fixture_form(&collect), "collect: {\"data\":{\"subject\":\"Hi\"},\"name\":\"digest\"}");
        assert_eq!(fixture_form(&Action::Move { mailbox: "Überweisungen/2026".into() }), "move: Überweisungen/2026");
        assert_eq!(fixture_form(&Action::Copy { mailbox: "a: b".into() }), "copy: \"a: b\"");
        assert_eq!(fixture_form(&flags(&["\\Flagged"])), "flag: \\Flagged");
        assert_eq!(fixture_form(&flags(&["receipt"])), "label: receipt");
        assert_eq!(fixture_form(&flags(&["\\Seen", "x"])), "label: [\\Seen, x]");
        assert_eq!(fixture_form(&Action::RemoveFlags { flags: vec!["\\Seen".into()] }), "unflag: \\Seen");
        assert_eq!(fixture_form(&Action::Delete), "delete");
        assert_eq!(yaml_string("yes"), "\"yes\"");
        assert_eq!(yaml_string("2026"), "\"2026\"");
        assert_eq!(yaml_string("$Label1"), "$Label1");
    }

    #[test]
    fn a_verdict_prints_its_plan_conflicts_and_errors() {
        let decide = |rule: &str, position, action| Decision { rule: String::from(rule), position, action };
        let decisions = vec![
            decide("a.rhai", 0, Action::Move { mailbox: "A".into() }),
            decide("b.rhai", 0, flags(&["\\Flagged"])),
            decide("b.rhai", 1, Action::Move { mailbox: "B".into() }),
        ];
        let verdict = Verdict {
            rules_matched: vec!["a.rhai".into(), "b.rhai".into()],
            stopped_by: Some("b.rhai".into()),
            plan: Plan::build(MessageKey::new("t", "INBOX", 1, 1), decisions),
            failures: vec![RuleFailure { rule: "c.rhai".into(), error: "boom".into() }],
            suppressed: vec![],
            printed: vec![],
        };
        let mut out = Vec::new();
        write_verdict(&mut out, &verdict, "  ").unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = "  rules matched: a.rhai, b.rhai (stopped)\n\
                        \x20 1. add flags \\Flagged   (b.rhai)\n\
                        \x20 2. move -> B            (b.rhai)\n\
                        \x20 conflict: move -> A (a.rhai) overridden by move -> B (b.rhai)\n\
                        \x20 error: c.rhai: boom\n";
        assert_eq!(text, expected);
        let json = serde_json::to_string(&VerdictJson::new(&verdict)).unwrap();
        assert!(json.contains(r#""actions":[{"rule":"b.rhai","kind":"add_flags","flags":["\\Flagged"]}"#), "{json}");
        assert!(json.contains(r#""overridden":[{"rule":"a.rhai","kind":"move","mailbox":"A"}]"#), "{json}");
        assert!(json.contains(r#""errors":[{"rule":"c.rhai","error":"boom"}]"#), "{json}");
    }
}
