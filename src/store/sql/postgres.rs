//! The seam on PostgreSQL: statements on a pooled connection, their `?N` placeholders rewritten
//! to `$N` here, at the edge, so the store's SQL is written once.

use std::error::Error as StdError;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::{DbError, Row, Value};

type Failure = Box<dyn StdError + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Failure> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) => n.to_sql_checked(ty, out),
            Value::Text(text) => text.to_sql_checked(ty, out),
            Value::Json(json) if *ty == Type::JSON || *ty == Type::JSONB => json.to_sql(ty, out),
            Value::Json(json) => json.to_string().to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`: a NULL goes anywhere.
        true
    }

    to_sql_checked!();
}

/// `sql` with SQLite's placeholders (`?N`, or `?` numbered in order) as PostgreSQL's (`$N`),
/// and SQLite's byte order (`COLLATE BINARY`) as PostgreSQL's (`COLLATE "C"`). Quoted text is
/// left alone.
pub(super) fn rewrite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut next, mut quoted) = (1, false);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                        out.push(digit);
                    }
                } else {
                    out.push_str(&next.to_string());
                    next += 1;
                }
            }
            c => out.push(c),
        }
        if !quoted && out.ends_with(" COLLATE BINARY") {
            out.truncate(out.len() - "BINARY".len());
            out.push_str("\"C\"");
        }
    }
    out
}

/// A column as the seam holds it, by its PostgreSQL type.
fn value(row: &tokio_postgres::Row, idx: usize) -> Result<Value, DbError> {
    let ty = row.columns()[idx].type_();
    let value = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(idx)?.map(Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(idx)?.map(|n| Value::Int(n.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(idx)?.map(|n| Value::Int(n.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(idx)?.map(|b| Value::Int(b.into())),
        Type::JSON | Type::JSONB => row.try_get::<_, Option<serde_json::Value>>(idx)?.map(Value::Json),
        _ => row.try_get::<_, Option<String>>(idx)?.map(Value::Text),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// Every row `rows` holds, as the seam's.
pub(super) fn rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, DbError> {
    rows.iter().map(|row| (0..row.len()).map(|idx| value(row, idx)).collect::<Result<_, _>>().map(Row)).collect()
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn placeholders_are_numbered_as_postgresql_wants_and_quoted_text_is_left_alone() {
        assert_eq!(
            rewrite("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1"
        );
        assert_eq!(rewrite("UPDATE t SET a = ? WHERE b = ?"), "UPDATE t SET a = $1 WHERE b = $2");
        assert_eq!(rewrite("SELECT '?' , ?3"), "SELECT '?' , $3");
        assert_eq!(rewrite("ORDER BY a COLLATE BINARY, b"), "ORDER BY a COLLATE \"C\", b");
    }
}
