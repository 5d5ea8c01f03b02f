//! How the store's values sit in PostgreSQL columns, read back with their range checked.
//!
//! The schema keeps SQLite's types (see `migrations`): times are unix milliseconds in BIGINT,
//! UIDs, UIDVALIDITYs and counts are BIGINT. A value outside its Rust type's range (a UID over
//! 2^32, a negative count) is a decoding error of that column, never a silently wrapped number;
//! going through `FromSql` makes it a `tokio_postgres::Error` like any other failed read.

use std::error::Error as StdError;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use crate::store::ActionState;

type Boxed = Box<dyn StdError + Sync + Send>;

/// A BIGINT of unix milliseconds.
struct Millis(DateTime<Utc>);

impl<'a> FromSql<'a> for Millis {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Boxed> {
        let millis = i64::from_sql(ty, raw)?;
        DateTime::from_timestamp_millis(millis).map(Millis).ok_or_else(|| format!("{millis} ms is no time").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// A BIGINT that must fit `T` (`u32` for UIDs, `u64` for counts).
struct Int<T>(T);

impl<'a, T> FromSql<'a> for Int<T>
where
    T: TryFrom<i64>,
    T::Error: StdError + Sync + Send + 'static,
{
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Boxed> {
        Ok(Int(T::try_from(i64::from_sql(ty, raw)?)?))
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// An action state by its stored name.
struct State(ActionState);

impl<'a> FromSql<'a> for State {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Boxed> {
        Ok(State(<&str as FromSql>::from_sql(ty, raw)?.parse()?))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// A time to store: unix milliseconds.
pub(super) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A count or limit to bind as BIGINT (saturating: a limit of `usize::MAX` means no limit).
pub(super) fn bigint<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Column `idx` of `row`: a time.
pub(super) fn time(row: &Row, idx: usize) -> Result<DateTime<Utc>, tokio_postgres::Error> {
    row.try_get::<_, Millis>(idx).map(|m| m.0)
}

/// Column `idx` of `row`: a time, or NULL.
pub(super) fn time_opt(row: &Row, idx: usize) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    row.try_get::<_, Option<Millis>>(idx).map(|m| m.map(|m| m.0))
}

/// Column `idx` of `row`: a BIGINT that fits `T`.
pub(super) fn int<T>(row: &Row, idx: usize) -> Result<T, tokio_postgres::Error>
where
    T: TryFrom<i64>,
    T::Error: StdError + Sync + Send + 'static,
{
    row.try_get::<_, Int<T>>(idx).map(|n| n.0)
}

/// Column `idx` of `row`: a BIGINT that fits `T`, or NULL.
pub(super) fn int_opt<T>(row: &Row, idx: usize) -> Result<Option<T>, tokio_postgres::Error>
where
    T: TryFrom<i64>,
    T::Error: StdError + Sync + Send + 'static,
{
    row.try_get::<_, Option<Int<T>>>(idx).map(|n| n.map(|n| n.0))
}

/// Column `idx` of `row`: an action state.
pub(super) fn state(row: &Row, idx: usize) -> Result<ActionState, tokio_postgres::Error> {
    row.try_get::<_, State>(idx).map(|s| s.0)
}
