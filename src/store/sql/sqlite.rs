//! The seam on SQLite: statements on the store thread's connection, cached prepared.

use rusqlite::Connection;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

use super::{DbError, Row, Value};

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::from(rusqlite::types::Null),
            Value::Int(n) => ToSqlOutput::from(*n),
            Value::Text(text) => ToSqlOutput::from(text.as_str()),
            Value::Json(json) => ToSqlOutput::from(json.to_string()),
        })
    }
}

/// Runs `sql` with `params`; how many rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, params: &[Value]) -> Result<u64, DbError> {
    let changed = conn.prepare_cached(sql)?.execute(rusqlite::params_from_iter(params))?;
    Ok(changed as u64)
}

/// Runs `sql` with `params`; every row it returns.
pub(super) fn query(conn: &Connection, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut read = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns).map(|idx| row.get_ref(idx).map(value)).collect::<Result<_, _>>()?;
        read.push(Row(values));
    }
    Ok(read)
}

/// A column as the seam holds it; a REAL or BLOB (no table has one) is kept as its text.
fn value(raw: ValueRef<'_>) -> Value {
    match raw {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Text(text) | ValueRef::Blob(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Real(x) => Value::Text(x.to_string()),
    }
}
