//! Stage one of the config: the YAML as the user wrote it, every node with its position.
//!
//! serde-saphyr parses; this module only keeps what validation needs to point at a line: the
//! value, where it is, and the keys of maps in their written order (duplicates kept, so that a
//! repeated account name is reported rather than silently merged).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A position in the config file, 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// Line, from 1; 0 when unknown.
    pub line: u32,
    /// Column, from 1; 0 when unknown.
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML node and where it was written.
#[derive(Clone, Debug)]
pub struct Node {
    /// The node's value.
    pub value: Value,
    /// Where the node starts.
    pub pos: Pos,
}

/// A map key and where it was written.
#[derive(Clone, Debug)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// The value of a YAML node.
#[derive(Clone, Debug)]
pub enum Value {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A string scalar.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A map, in written order, duplicates kept.
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// What kind of value this is, for messages like "expected a map, found a string".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// The deepest nesting of maps and lists a config may have; the deepest real one has 5.
pub const MAX_DEPTH: usize = 16;

/// Parses YAML text into a positioned tree; the error carries serde-saphyr's own position.
pub fn parse(text: &str) -> Result<Node, (Pos, String)> {
    let options = serde_saphyr::options! {
        // Keep repeated keys: validation reports them with both positions.
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::PassThrough,
        // `on`/`yes` as booleans surprise people; they stay strings here.
        strict_booleans: true,
        // A config is a few levels deep. Each level is a recursion of the deserializer (about
        // 30 KB of stack in a debug build), so the default of 64 overflowed a 2 MB thread's
        // stack on 70 nested maps (a hostile input kept in tests/fuzz_regressions): a deeper file is
        // refused instead.
        budget: serde_saphyr::budget! { max_depth: MAX_DEPTH },
    };
    if text.trim().is_empty() {
        return Ok(Node { value: Value::Map(Vec::new()), pos: Pos { line: 1, column: 1 } });
    }
    let spanned: Spanned<Value> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let pos = e.location().map(|l| Pos { line: l.line() as u32, column: l.column() as u32 });
        (pos.unwrap_or_default(), e.to_string())
    })?;
    Ok(from_spanned(spanned))
}

fn from_spanned(s: Spanned<Value>) -> Node {
    Node { value: s.value, pos: Pos { line: s.referenced.line() as u32, column: s.referenced.column() as u32 } }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v).map(Value::Int).map_err(|_| E::custom("number too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(from_spanned(item));
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let value = from_spanned(map.next_value::<Spanned<Value>>()?);
            let pos = from_spanned(key.clone()).pos;
            let name = match key.value {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(x) => x.to_string(),
                Value::Null => String::new(),
                other => return Err(de::Error::custom(format!("a map key cannot be {}", other.kind()))),
            };
            entries.push((Key { name, pos }, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_duplicates() {
        let node = parse("accounts:\n  work:\n    port: 993\n  work:\n    port: x\n").unwrap();
        let Value::Map(top) = &node.value else { panic!("top is {:?}", node.value) };
        assert_eq!(top[0].0.name, "accounts");
        assert_eq!(top[0].0.pos, Pos { line: 1, column: 1 });
        let Value::Map(accounts) = &top[0].1.value else { panic!() };
        assert_eq!(accounts.len(), 2, "duplicate kept");
        assert_eq!(accounts[1].0.pos.line, 4);
        let Value::Map(work) = &accounts[0].1.value else { panic!() };
        assert!(matches!(work[0].1.value, Value::Int(993)));
        assert_eq!(work[0].1.pos, Pos { line: 3, column: 11 });
    }

    #[test]
    fn syntax_error_has_position() {
        let (pos, msg) = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(pos.line >= 1, "{pos} {msg}");
    }
}
