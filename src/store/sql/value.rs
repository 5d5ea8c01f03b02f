//! Values in and out of the seam: what a statement binds and what a row holds, the same on both
//! backends (the encoding of `store::codec`: times as unix milliseconds in a BIGINT, unsigned
//! numbers in a signed BIGINT, states by their lowercase names, payloads as JSON).

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::DbError;
use crate::store::types::{ActionId, ActionState};

/// A value bound to a statement or read from a column.
#[derive(Clone, Debug, PartialEq)]
pub(in crate::store) enum Value {
    /// NULL.
    Null,
    /// An integer (BIGINT on PostgreSQL).
    Int(i64),
    /// Text.
    Text(String),
    /// A JSON document: JSONB on PostgreSQL, its text on SQLite.
    Json(Json),
}

impl Value {
    /// The type's name, for a column error.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
            Value::Json(_) => "JSON",
        }
    }
}

/// A row read through the seam, its columns in the order the `SELECT` names them.
#[derive(Debug)]
pub(in crate::store) struct Row(pub(super) Vec<Value>);

impl Row {
    /// Column `idx` as a `T`: a column missing, NULL where a value is wanted, or out of `T`'s
    /// range is an error of the statement, never a silently wrapped number.
    pub(in crate::store) fn get<T: FromValue>(&self, idx: usize) -> Result<T, DbError> {
        let value = self.0.get(idx).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| DbError::Column { idx, found: value.kind(), wanted: T::WANTED })
    }
}

/// A Rust type a column converts to.
pub(in crate::store) trait FromValue: Sized {
    /// What the column should hold, for the error when it does not.
    const WANTED: &'static str;
    /// The value, or `None` when the column does not hold one of this type.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const WANTED: &'static str = "an integer";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            const WANTED: &'static str = "an unsigned integer in range";
            fn from_value(value: &Value) -> Option<Self> {
                i64::from_value(value).and_then(|n| <$t>::try_from(n).ok())
            }
        }
    )*};
}
unsigned!(u32, u64, usize);

impl FromValue for String {
    const WANTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }
}

impl FromValue for DateTime<Utc> {
    const WANTED: &'static str = "a time in unix milliseconds";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(DateTime::from_timestamp_millis)
    }
}

impl FromValue for Json {
    const WANTED: &'static str = "JSON";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Json(json) => Some(json.clone()),
            Value::Text(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }
}

impl FromValue for ActionId {
    const WANTED: &'static str = "an action id";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(ActionId)
    }
}

impl FromValue for ActionState {
    const WANTED: &'static str = "an action state";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(text) => text.parse().ok(),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const WANTED: &'static str = T::WANTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            value => T::from_value(value).map(Some),
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Text(text.to_owned())
    }
}

impl From<&String> for Value {
    fn from(text: &String) -> Value {
        Value::Text(text.clone())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(text)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

/// Counts and limits saturate: a limit of `usize::MAX` means no limit.
macro_rules! saturating {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
    )*};
}
saturating!(u32, u64, usize);

impl From<DateTime<Utc>> for Value {
    fn from(at: DateTime<Utc>) -> Value {
        Value::Int(at.timestamp_millis())
    }
}

impl From<ActionId> for Value {
    fn from(id: ActionId) -> Value {
        Value::Int(id.0)
    }
}

impl From<ActionState> for Value {
    fn from(state: ActionState) -> Value {
        Value::Text(state.as_str().to_owned())
    }
}

impl From<&Json> for Value {
    fn from(json: &Json) -> Value {
        Value::Json(json.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

/// The values of a statement, each converted with `Value::from`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::sql::Value::from($value)),*]
    };
}
pub(in crate::store) use params;
