//! How values sit in PostgreSQL columns: the same encoding as on SQLite (see `store::codec`), so
//! both backends hold the same numbers. Times are BIGINT unix milliseconds; UIDs, UIDVALIDITYs,
//! attempts and counts are unsigned numbers in BIGINT; states are their lowercase names.
//!
//! A value that does not convert back (a UID over 2^32, a negative count, a time out of range)
//! is a column error of the statement, never a silently wrapped number: going through `FromSql`
//! makes it a `tokio_postgres::Error` like any other failed read, which reaches the caller as the
//! statement's [`crate::store::Error::Postgres`].

use std::error::Error as StdError;

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use crate::store::ActionState;

type Failure = Box<dyn StdError + Sync + Send>;

/// A time as stored: unix milliseconds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Millis(pub DateTime<Utc>);

impl<'a> FromSql<'a> for Millis {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Failure> {
        let millis = i64::from_sql(ty, raw)?;
        DateTime::from_timestamp_millis(millis)
            .map(Millis)
            .ok_or_else(|| format!("time {millis} ms out of range").into())
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

/// An unsigned number (a UID, a count, ...) stored in a signed BIGINT.
#[derive(Clone, Copy, Debug)]
pub(super) struct Unsigned<T>(pub T);

impl<'a, T> FromSql<'a> for Unsigned<T>
where
    T: TryFrom<i64>,
    T::Error: StdError + Sync + Send + 'static,
{
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Failure> {
        Ok(Unsigned(T::try_from(i64::from_sql(ty, raw)?)?))
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as FromSql>::accepts(ty)
    }
}

impl<'a> FromSql<'a> for ActionState {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Failure> {
        Ok(<&str as FromSql>::from_sql(ty, raw)?.parse()?)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// The names of `states`, for `state = ANY($n)`.
pub(super) fn names(states: &[ActionState]) -> Vec<&'static str> {
    states.iter().map(|s| s.as_str()).collect()
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

/// Column `idx` of `row`: a BIGINT that fits `T`.
pub(super) fn int<T>(row: &Row, idx: usize) -> Result<T, tokio_postgres::Error>
where
    T: TryFrom<i64>,
    T::Error: StdError + Sync + Send + 'static,
{
    row.try_get::<_, Unsigned<T>>(idx).map(|n| n.0)
}
