//! How values are read from PostgreSQL columns: the same encoding as on SQLite (see
//! `store::codec`), so that both backends hold the same numbers. Times are BIGINT unix
//! milliseconds, UIDs, UIDVALIDITYs, attempts and counts are unsigned numbers in BIGINT, and
//! states are their lowercase names. Writes pass plain `i64`s and `&str`s.
//!
//! A value that does not convert (a negative count, a time out of range) is a column error of
//! the statement, so it reaches the caller as the statement's [`crate::store::Error::Postgres`].

use std::error::Error as StdError;

use chrono::{DateTime, Utc};
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
