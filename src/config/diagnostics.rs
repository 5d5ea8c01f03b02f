//! Collecting config problems, and reading the positioned tree without stopping at the first.
//!
//! Validation walks the whole tree once; every reader here records what is wrong and returns
//! `None`, so one run of `tidings check` lists every mistake, each with its line.

use std::fmt;

use super::tree::{Key, Node, Pos, Value};

/// One thing wrong with the config, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub pos: Pos,
    /// What is wrong, e.g. "port 99999 is out of range".
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// The problems found so far, and the paths the config names (checked on disk later, by
/// [`super::Config::check_files`]).
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>, pub Vec<super::files::Named>);

impl Problems {
    /// Records a problem.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.0.push(Problem { pos, message: message.into(), hint: None });
    }
    /// Records a problem with a hint.
    pub fn hint(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(Problem { pos, message: message.into(), hint: Some(hint.into()) });
    }
}

/// The keys of one map, checked against the keys it may have.
pub struct Fields<'a> {
    entries: &'a [(Key, Node)],
    /// Where the map is.
    pub pos: Pos,
}

impl<'a> Fields<'a> {
    /// Reads `node` as a map whose keys must be among `known`. Unknown and repeated keys are
    /// reported here, so callers only ask for what they know.
    pub fn read(node: &'a Node, what: &str, known: &[&str], problems: &mut Problems) -> Option<Self> {
        let entries = match &node.value {
            Value::Map(entries) => entries.as_slice(),
            Value::Null => &[],
            other => {
                problems.error(node.pos, format!("{what} must be a map, found {}", other.kind()));
                return None;
            }
        };
        for (i, (key, _)) in entries.iter().enumerate() {
            if let Some((first, _)) = entries[..i].iter().find(|(k, _)| k.name == key.name) {
                problems.error(
                    key.pos,
                    format!("`{}` is given twice in {what} (first at line {})", key.name, first.pos.line),
                );
            } else if !known.contains(&key.name.as_str()) {
                match closest(&key.name, known) {
                    Some(near) => problems.hint(
                        key.pos,
                        format!("unknown key `{}` in {what}", key.name),
                        format!("did you mean `{near}`?"),
                    ),
                    None => problems.hint(
                        key.pos,
                        format!("unknown key `{}` in {what}", key.name),
                        format!("known keys: {}", known.join(", ")),
                    ),
                }
            }
        }
        Some(Fields { entries, pos: node.pos })
    }

    /// The value of `key`, if given (the first, when it was repeated).
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v)
    }

    /// The entries in written order (for maps keyed by user names, like accounts).
    pub fn entries(&self) -> &'a [(Key, Node)] {
        self.entries
    }
}

/// Reads a map keyed by user-chosen names (accounts, webhooks): reports repeated names and
/// yields each first occurrence.
pub fn named_entries<'a>(node: &'a Node, what: &str, problems: &mut Problems) -> Vec<(&'a Key, &'a Node)> {
    let entries = match &node.value {
        Value::Map(entries) => entries.as_slice(),
        Value::Null => &[],
        other => {
            problems.error(node.pos, format!("{what} must be a map by name, found {}", other.kind()));
            return Vec::new();
        }
    };
    let mut out: Vec<(&Key, &Node)> = Vec::new();
    for (key, value) in entries {
        if let Some((first, _)) = out.iter().find(|(k, _)| k.name == key.name) {
            problems.hint(
                key.pos,
                format!("{what}: `{}` is defined twice (first at line {})", key.name, first.pos.line),
                "names must be unique; rename or merge one of them",
            );
        } else if key.name.trim().is_empty() {
            problems.error(key.pos, format!("{what}: a name cannot be empty"));
        } else {
            out.push((key, value));
        }
    }
    out
}

/// Reads a string. Numbers and booleans are refused rather than converted: a host of `1` or a
/// username of `true` is a typo worth hearing about.
pub fn string(node: &Node, what: &str, problems: &mut Problems) -> Option<String> {
    match &node.value {
        Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Str(_) => {
            problems.error(node.pos, format!("{what} cannot be empty"));
            None
        }
        other => {
            problems.error(node.pos, format!("{what} must be a string, found {}", other.kind()));
            None
        }
    }
}

/// Reads a boolean.
pub fn boolean(node: &Node, what: &str, problems: &mut Problems) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        other => {
            problems.error(node.pos, format!("{what} must be true or false, found {}", other.kind()));
            None
        }
    }
}

/// Reads a TCP port (1-65535).
pub fn port(node: &Node, what: &str, problems: &mut Problems) -> Option<u16> {
    match &node.value {
        Value::Int(n) if (1..=65535).contains(n) => u16::try_from(*n).ok(),
        Value::Int(n) => {
            problems.hint(node.pos, format!("{what} {n} is out of range"), "a port is a number from 1 to 65535");
            None
        }
        other => {
            problems.error(node.pos, format!("{what} must be a number from 1 to 65535, found {}", other.kind()));
            None
        }
    }
}

/// A count of `unit` (messages, connections) of at least `min`; `why_min` is the hint when it is
/// smaller.
pub fn count(node: &Node, what: &str, unit: &str, min: u32, why_min: &str, problems: &mut Problems) -> Option<u32> {
    match &node.value {
        Value::Int(n) if *n >= i64::from(min) => match u32::try_from(*n) {
            Ok(n) => Some(n),
            Err(_) => {
                problems.error(node.pos, format!("{what} {n} is too large"));
                None
            }
        },
        Value::Int(n) => {
            problems.hint(node.pos, format!("{what} must be at least {min}, found {n}"), why_min);
            None
        }
        other => {
            problems.error(node.pos, format!("{what} must be a whole number of {unit}, found {}", other.kind()));
            None
        }
    }
}

/// Reads a human duration (`90s`, `10m`, `7d`).
pub fn duration(node: &Node, what: &str, problems: &mut Problems) -> Option<std::time::Duration> {
    let Value::Str(text) = &node.value else {
        problems.hint(
            node.pos,
            format!("{what} must be a duration, found {}", node.value.kind()),
            "write it with a unit, e.g. `90s`, `10m`, `7d`",
        );
        return None;
    };
    super::duration::parse(text).map_err(|e| problems.error(node.pos, format!("{what}: {e}"))).ok()
}

/// Reads a list of strings; a single string is accepted as a list of one.
pub fn strings(node: &Node, what: &str, problems: &mut Problems) -> Option<Vec<(String, Pos)>> {
    match &node.value {
        Value::Str(_) => string(node, what, problems).map(|s| vec![(s, node.pos)]),
        Value::Seq(items) => {
            let read: Vec<_> = items.iter().map(|n| string(n, what, problems).map(|s| (s, n.pos))).collect();
            read.into_iter().collect()
        }
        other => {
            problems.error(node.pos, format!("{what} must be a list of strings, found {}", other.kind()));
            None
        }
    }
}

/// Reads one of a fixed set of words.
pub fn choice<'c>(node: &Node, what: &str, choices: &[&'c str], problems: &mut Problems) -> Option<&'c str> {
    let Value::Str(text) = &node.value else {
        problems.error(node.pos, format!("{what} must be one of {}, found {}", choices.join(", "), node.value.kind()));
        return None;
    };
    match choices.iter().find(|c| **c == text.as_str()) {
        Some(c) => Some(c),
        None => {
            problems.hint(
                node.pos,
                format!("{what} `{text}` is not recognised"),
                format!("use one of: {}", choices.join(", ")),
            );
            None
        }
    }
}

/// The known word nearest to a misspelt one, if it is near enough to be a typo.
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys_only() {
        assert_eq!(closest("pasword_env", &["password_env", "username"]), Some("password_env"));
        assert_eq!(closest("colour", &["host", "port"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
