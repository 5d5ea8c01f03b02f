//! Expected actions in fixtures: the readable shorthand (`move: F`, `flag: \Seen`, `delete`)
//! read into an action's JSON form, matched against what the rules decided, and the diff.
//!
//! Everything goes through the JSON form of [`Action`] (its serde representation, `kind` plus
//! fields), so an action kind added later can be expected without a change here.

use serde_json::{Map, Value};

use super::report::{fixture_form, json_fixture_form};
use crate::plan::Action;

/// An expected action: an action's JSON form (`{"kind": "move", "mailbox": "A"}`), complete or
/// partial. A field it leaves out is not compared, so `reply: {subject: "Re: hi"}` expects any
/// reply with that subject, and a bare `reply` any reply at all.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected(pub Map<String, Value>);

impl Expected {
    /// Reads one `expect:` item. The kind must exist and the fields given must have the right
    /// types, so a typo is reported when the fixture loads, not as a puzzling mismatch.
    pub fn parse(item: &Value) -> Result<Expected, String> {
        let json = match item {
            Value::String(kind) => bare(kind),
            Value::Object(map) if map.contains_key("kind") => map.clone(),
            Value::Object(map) if map.len() == 1 => {
                let (key, value) = map.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap_or(("", &Value::Null));
                shorthand(key, value)?
            }
            _ => {
                return Err(format!(
                    "`{item}` is not an action: write e.g. `move: Folder`, `flag: \\Seen` or `delete`"
                ));
            }
        };
        match serde_json::from_value::<Action>(Value::Object(json.clone())) {
            Ok(_) => Ok(Expected(json)),
            // A partial form (the fields that matter to this case) is fine; serde checks the
            // kind and the fields' types before it finds one missing.
            Err(e) if e.to_string().starts_with("missing field") => Ok(Expected(json)),
            Err(e) => Err(format!("`{}` is not an action: {e}", json_fixture_form(&json))),
        }
    }

    /// Whether `action` is this one: same kind, and every field given here equal there.
    pub fn matches(&self, action: &Action) -> bool {
        let got = serde_json::to_value(action).unwrap_or(Value::Null);
        contains(&Value::Object(self.0.clone()), &got)
    }

    /// Whether it expects a `collect`.
    pub fn is_collect(&self) -> bool {
        self.0.get("kind").and_then(Value::as_str) == Some("collect")
    }

    /// How a fixture writes it.
    pub fn form(&self) -> String {
        json_fixture_form(&self.0)
    }
}

/// Whether `got` has everything `expected` has: maps recursively by key, anything else equal.
fn contains(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => e.iter().all(|(k, v)| g.get(k).is_some_and(|g| contains(v, g))),
        _ => expected == got,
    }
}

fn bare(kind: &str) -> Map<String, Value> {
    match kind {
        "mark_read" => flags_json("add_flags", vec![Value::from("\\Seen")]),
        "mark_unread" => flags_json("remove_flags", vec![Value::from("\\Seen")]),
        kind => Map::from_iter([("kind".to_owned(), Value::from(kind))]),
    }
}

fn shorthand(key: &str, value: &Value) -> Result<Map<String, Value>, String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let kind = match key {
        "flag" | "label" | "add_flags" => Some("add_flags"),
        "unflag" | "unlabel" | "remove_flags" => Some("remove_flags"),
        _ => None,
    };
    match (key, kind, value) {
        (_, Some(kind), Value::Array(items)) => {
            let names: Option<Vec<Value>> = items.iter().map(|i| text(i).map(Value::from)).collect();
            names.map(|names| flags_json(kind, names)).ok_or_else(|| format!("{key}: expected flag names"))
        }
        (_, Some(kind), one) => text(one)
            .map(|name| flags_json(kind, vec![Value::from(name)]))
            .ok_or_else(|| format!("{key}: expected a flag name")),
        (_, None, Value::Object(fields)) => {
            let mut map = Map::from_iter([("kind".to_owned(), Value::from(key))]);
            map.extend(fields.clone());
            Ok(map)
        }
        ("move" | "copy", None, one) => {
            let mailbox = text(one).ok_or_else(|| format!("{key}: expected a folder name"))?;
            Ok(Map::from_iter([("kind".to_owned(), Value::from(key)), ("mailbox".to_owned(), Value::from(mailbox))]))
        }
        (_, None, Value::Null) => Ok(bare(key)),
        // An unknown kind is the likelier mistake (a typo): serde lists the kinds there are.
        _ => match serde_json::from_value::<Action>(Value::Object(bare(key))) {
            Err(e) if e.to_string().contains("unknown variant") => Err(format!("`{key}` is not an action: {e}")),
            _ => Err(format!("`{key}: {value}`: write the action's fields as a map, e.g. `{key}: {{field: value}}`")),
        },
    }
}

fn flags_json(kind: &str, flags: Vec<Value>) -> Map<String, Value> {
    Map::from_iter([("kind".to_owned(), Value::from(kind)), ("flags".to_owned(), Value::Array(flags))])
}

/// Whether `got` is `expected`, action for action.
pub fn all_match(expected: &[Expected], got: &[&Action]) -> bool {
    expected.len() == got.len() && expected.iter().zip(got).all(|(e, g)| e.matches(g))
}

/// A diff by longest common subsequence, as fixture lines: `    matched`, `  - expected only`,
/// `  + got only`.
pub fn diff(expected: &[Expected], got: &[&Action]) -> Vec<String> {
    let (n, m) = (expected.len(), got.len());
    let same = |i: usize, j: usize| expected[i].matches(got[j]);
    // lcs[i][j]: the longest common subsequence of expected[i..] and got[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if same(i, j) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && same(i, j) {
            out.push(format!("    {}", expected[i].form()));
            (i, j) = (i + 1, j + 1);
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("  - {}", expected[i].form()));
            i += 1;
        } else {
            out.push(format!("  + {}", fixture_form(got[j])));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
#[path = "expect_tests.rs"]
mod tests;
