//! The seam both backends implement, so that each store operation is written once: statements
//! (`execute`, `query`, `query_opt`, `query_one`) with typed values in and typed rows out, and
//! transactions that cannot forget their fence.
//!
//! SQL is written in SQLite's dialect with numbered placeholders (`?1`); on PostgreSQL they are
//! rewritten to `$1` at the edge, and `COLLATE BINARY` (byte order) becomes `COLLATE "C"`. Where
//! the dialects really differ, a statement asks [`Db::dialect`], in one place.
//!
//! On SQLite the operations run on the store thread (see `store::sqlite`): a statement there
//! never waits, so the operation's future completes on its first poll ([`finish`]). On
//! PostgreSQL they run on a pooled connection, in a task of their own, so that a caller who
//! stops waiting never leaves a transaction halfway.
//!
//! A write begins with [`Db::begin_write`], called by `Store::write` only: an IMMEDIATE
//! transaction on SQLite (the write lock taken at once, not at the first write), and on
//! PostgreSQL a transaction that first fences every account it writes for (see `postgres::leases`):
//! it locks the account's lease row and goes on only while this fleet member's lease is the
//! current one.

mod postgres;
mod sqlite;
mod value;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use deadpool_postgres::Object;

pub(super) use value::{Row, Value, params};

use super::error::Error;
use super::postgres::Holder;

/// What a statement failed with, on either backend.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused or failed the statement.
    #[error("cannot run the statement on SQLite")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed the statement.
    #[error("cannot run the statement on PostgreSQL")]
    Postgres(#[from] tokio_postgres::Error),
    /// A column did not hold what the store reads from it.
    #[error("cannot read column {idx}: it holds {found}, not {wanted}")]
    Column {
        /// The column, from 0.
        idx: usize,
        /// What it held.
        found: &'static str,
        /// What was wanted.
        wanted: &'static str,
    },
}

/// Which SQL a backend speaks, for the few statements that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// An operation's future (boxed: it borrows the connection it runs on).
pub(super) type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Which accounts a write is fenced by.
#[derive(Clone, Debug)]
pub(super) enum Fence {
    /// The accounts the write is for: a fleet member writes only while it holds their leases.
    Accounts(Vec<String>),
}

impl Fence {
    /// The write for `account`.
    pub(super) fn account(account: &str) -> Fence {
        Fence::Accounts(vec![account.to_owned()])
    }

    /// A write for no account's mail: not fenced (forgetting a removed account's watchers,
    /// which keeps what live instances report).
    pub(super) fn none() -> Fence {
        Fence::Accounts(Vec::new())
    }
}

/// A connection the store's operations run on.
pub(super) struct Db {
    conn: Conn,
}

enum Conn {
    /// The store thread's connection (a mutex only to make `&Db` shareable: one thread uses it).
    Sqlite(Mutex<rusqlite::Connection>),
    /// A pooled connection, and the fleet member's leases when the store is one's.
    Postgres(Object, Option<Arc<Holder>>),
}

impl Db {
    /// The store thread's connection.
    pub(super) fn sqlite(conn: rusqlite::Connection) -> Db {
        Db { conn: Conn::Sqlite(Mutex::new(conn)) }
    }

    /// A pooled connection; writes fenced by `fleet`'s leases when given.
    pub(super) fn postgres(client: Object, fleet: Option<Arc<Holder>>) -> Db {
        Db { conn: Conn::Postgres(client, fleet) }
    }

    /// The SQLite connection itself (the store thread, for what does not go through the seam).
    pub(super) fn connection(&mut self) -> Option<&mut rusqlite::Connection> {
        match &mut self.conn {
            Conn::Sqlite(conn) => Some(conn.get_mut().unwrap_or_else(|e| e.into_inner())),
            Conn::Postgres(..) => None,
        }
    }

    /// The SQLite connection, to close it.
    pub(super) fn into_connection(self) -> Option<rusqlite::Connection> {
        match self.conn {
            Conn::Sqlite(conn) => Some(conn.into_inner().unwrap_or_else(|e| e.into_inner())),
            Conn::Postgres(..) => None,
        }
    }

    /// The fleet member this connection writes for (`None`: SQLite, or a tool's connection).
    pub(super) fn member(&self) -> Option<&str> {
        match &self.conn {
            Conn::Postgres(_, Some(holder)) => Some(&holder.member.id),
            _ => None,
        }
    }

    /// Which SQL this connection speaks.
    pub(super) fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(..) => Dialect::Postgres,
        }
    }

    /// Runs `sql` with `params`; how many rows it changed.
    pub(super) async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &self.conn {
            Conn::Sqlite(conn) => sqlite::execute(&lock(conn), sql, params),
            Conn::Postgres(client, _) => {
                let stmt = client.prepare_cached(&postgres::rewrite(sql)).await?;
                Ok(client.execute(&stmt, &refs(params)).await?)
            }
        }
    }

    /// Runs `sql` with `params`; every row it returns.
    pub(super) async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match &self.conn {
            Conn::Sqlite(conn) => sqlite::query(&lock(conn), sql, params),
            Conn::Postgres(client, _) => {
                let stmt = client.prepare_cached(&postgres::rewrite(sql)).await?;
                postgres::rows(&client.query(&stmt, &refs(params)).await?)
            }
        }
    }

    /// Runs `sql` with `params`; its first row, if any.
    pub(super) async fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs `sql` with `params`, which returns one row (an aggregate, a `RETURNING`).
    pub(super) async fn query_one(&self, sql: &str, params: &[Value]) -> Result<Row, DbError> {
        // No row is read as a row of NULLs: the caller's `get` names the column it wanted.
        Ok(self.query_opt(sql, params).await?.unwrap_or(Row(Vec::new())))
    }

    /// Begins a write fenced by `fence`: IMMEDIATE on SQLite; on PostgreSQL, each account's lease
    /// row locked and checked, once, in byte order (the order every writer locks them in).
    pub(super) async fn begin_write(&self, fence: &Fence) -> Result<(), Error> {
        let begin = |source| Error::Transaction { verb: "begin", source };
        match &self.conn {
            Conn::Sqlite(conn) => sqlite::execute(&lock(conn), "BEGIN IMMEDIATE", &[]).map(drop).map_err(begin),
            Conn::Postgres(client, fleet) => {
                client.batch_execute("BEGIN").await.map_err(|e| begin(e.into()))?;
                let (Some(fleet), Fence::Accounts(accounts)) = (fleet, fence) else { return Ok(()) };
                let mut accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
                accounts.sort_unstable();
                accounts.dedup();
                for account in accounts {
                    fleet.fence(&***client, account).await?;
                }
                Ok(())
            }
        }
    }

    /// Commits the write begun.
    pub(super) async fn commit(&self) -> Result<(), Error> {
        self.end("COMMIT").await.map_err(|source| Error::Transaction { verb: "commit", source })
    }

    /// Rolls the write begun back (its failure is not the caller's error: the write failed
    /// already, and a connection that cannot roll back is dropped by the pool or closes).
    pub(super) async fn rollback(&self) {
        if let Err(error) = self.end("ROLLBACK").await {
            tracing::warn!(error = ?error, "cannot roll a store transaction back");
        }
    }

    async fn end(&self, verb: &str) -> Result<(), DbError> {
        match &self.conn {
            Conn::Sqlite(conn) => sqlite::execute(&lock(conn), verb, &[]).map(drop),
            Conn::Postgres(client, _) => Ok(client.batch_execute(verb).await?),
        }
    }
}

fn lock(conn: &Mutex<rusqlite::Connection>) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
    // Only the store thread locks it, one statement at a time: a poisoned lock is a panic in a
    // statement, which left the connection as SQLite keeps it, consistent.
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

fn refs(params: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params.iter().map(|value| value as &(dyn tokio_postgres::types::ToSql + Sync)).collect()
}

/// Runs `op` in a write fenced by `fence`: committed if it succeeds, rolled back if not.
pub(super) async fn write<T, F>(db: &Db, fence: &Fence, op: F) -> Result<T, Error>
where
    F: for<'a> FnOnce(&'a Db) -> Pending<'a, T>,
{
    db.begin_write(fence).await?;
    match op(db).await {
        Ok(value) => db.commit().await.map(|()| value),
        Err(error) => {
            db.rollback().await;
            Err(error)
        }
    }
}

/// The output of a future on SQLite, whose statements never wait: it is ready on its first poll.
pub(super) fn finish<T>(future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        // Only an operation that awaited something other than a statement gets here.
        Poll::Pending => Err(Error::Stopped),
    }
}
