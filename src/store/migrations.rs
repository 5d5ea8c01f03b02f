//! The schema, as an ordered list of migrations, and the code that applies them.
//!
//! Versions are the store's, not SQLite's: a PostgreSQL backend keeps its own SQL for the
//! same numbered steps, so a store at version N means the same tables on both. The version
//! lives in a `schema_migrations` table rather than `PRAGMA user_version` for that reason.
//! A migration is never edited once released: a change is a new, higher version.

use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior};

use super::codec::Millis;
use super::error::Error;

/// Written in the database header so that tidings recognizes its own files ("tidg").
pub(super) const APPLICATION_ID: i32 = 0x7469_6467;

/// One step of the schema.
pub(super) struct Migration {
    /// Strictly increasing from 1, without gaps.
    pub version: u32,
    /// A short name, stored with the version for people reading the file.
    pub name: &'static str,
    /// The SQLite statements.
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "checkpoints, outbox, reply log, schedule runs", sql: V1 },
    Migration { version: 2, name: "rule failures, per-account claims", sql: V2 },
];

/// Rule failures are kept with the message they failed on, for `tidings status` and history;
/// the index serves the per-account executor claims.
const V2: &str = "
CREATE TABLE rule_failures (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     TEXT    NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity INTEGER NOT NULL CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    uid         INTEGER NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),
    rule        TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    at          INTEGER NOT NULL
) STRICT;

CREATE INDEX rule_failures_by_rule ON rule_failures (rule, at);
CREATE INDEX actions_due_by_account ON actions (account, state, next_attempt_at);
";

/// Times are unix milliseconds (see `codec`); u32 columns are range-checked so that a bad
/// value fails on write rather than on every later read.
const V1: &str = "
CREATE TABLE checkpoints (
    account     TEXT    NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity INTEGER NOT NULL CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    last_uid    INTEGER NOT NULL CHECK (last_uid BETWEEN 0 AND 4294967295),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account, mailbox)
) STRICT;

CREATE TABLE actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    account         TEXT    NOT NULL,
    mailbox         TEXT,
    uidvalidity     INTEGER CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    uid             INTEGER CHECK (uid BETWEEN 0 AND 4294967295),
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    state           TEXT    NOT NULL
        CHECK (state IN ('pending', 'in_flight', 'done', 'failed', 'uncertain')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 4294967295),
    next_attempt_at INTEGER NOT NULL,
    claimed_at      INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CHECK ((uid IS NULL) = (uidvalidity IS NULL))
) STRICT;
CREATE INDEX actions_due ON actions (state, next_attempt_at);

CREATE TABLE reply_log (
    id      INTEGER PRIMARY KEY,
    account TEXT    NOT NULL,
    handle  TEXT    NOT NULL,
    sender  TEXT    NOT NULL,
    sent_at INTEGER NOT NULL
) STRICT;
CREATE INDEX reply_log_sender ON reply_log (account, handle, sender, sent_at);
CREATE INDEX reply_log_account ON reply_log (account, sent_at);

CREATE TABLE schedule_runs (
    name       TEXT    PRIMARY KEY,
    fired_at   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
";

const SCHEMA_TABLE: &str = "
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT;
";

/// The newest version this binary knows.
pub(super) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The version recorded in the file; `None` when it has no schema table yet.
pub(super) fn stored_version(conn: &Connection) -> rusqlite::Result<Option<u32>> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema \
         WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |row| row.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    version_in_table(conn).map(Some)
}

fn version_in_table(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| row.get(0))
}

/// Applies every migration newer than the file's version, each in its own transaction, so
/// that a failure leaves the store at the last version that fully applied.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    // Indexing cannot panic: MIGRATIONS is a non-empty constant (checked by a test below).
    let current = stored_version(conn).map_err(|source| migrate_error(path, &MIGRATIONS[0], source))?.unwrap_or(0);
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let applied = apply(conn, migration).map_err(|source| migrate_error(path, migration, source))?;
        if applied {
            tracing::info!(
                path = %path.display(),
                version = migration.version,
                name = migration.name,
                "store schema migrated"
            );
        }
    }
    Ok(())
}

fn migrate_error(path: &Path, migration: &Migration, source: rusqlite::Error) -> Error {
    Error::Migrate { path: path.to_path_buf(), version: migration.version, name: migration.name, source }
}

/// Returns whether the migration ran (false: another process applied it meanwhile).
fn apply(conn: &mut Connection, migration: &Migration) -> rusqlite::Result<bool> {
    // IMMEDIATE takes the write lock before the version is read again, so two processes
    // opening the same new store cannot both apply a step.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA_TABLE)?;
    if version_in_table(&tx)? >= migration.version {
        return Ok(false);
    }
    tx.execute_batch(migration.sql)?;
    tx.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
        (migration.version, migration.name, Millis(Utc::now())),
    )?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one_without_gaps() {
        assert!(!MIGRATIONS.is_empty());
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
        }
        assert_eq!(latest() as usize, MIGRATIONS.len());
    }

    #[test]
    fn migrate_is_idempotent_and_records_each_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        assert_eq!(stored_version(&conn).unwrap(), None);
        migrate(&mut conn, path).unwrap();
        migrate(&mut conn, path).unwrap();
        assert_eq!(stored_version(&conn).unwrap(), Some(latest()));
        let rows: u32 = conn.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(rows as usize, MIGRATIONS.len());
        let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
        assert_eq!(app_id, APPLICATION_ID);
    }
}
