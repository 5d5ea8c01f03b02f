//! The schema, as an ordered list of migrations, and the code that applies them.
//!
//! Versions are the store's, not SQLite's: a PostgreSQL backend keeps its own SQL for the
//! same numbered steps, so a store at version N means the same tables on both. The version
//! lives in a `schema_migrations` table rather than `PRAGMA user_version` for that reason.
//! A migration is never edited once released: a change is a new, higher version.

use std::path::Path;

use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior};

use super::backup::back_up;
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
    Migration { version: 3, name: "outbound: sending, suppressed, dropped; rule; reply log per action", sql: V3 },
    Migration { version: 4, name: "schedules: collected items, run outcomes", sql: V4 },
    Migration { version: 5, name: "gmail: messages seen by X-GM-MSGID", sql: V5 },
    Migration { version: 6, name: "health: watcher states, decided messages", sql: V6 },
    Migration { version: 7, name: "fleet: instances, account leases", sql: V7 },
    Migration { version: 8, name: "retention: reply log expiry, pruning indexes", sql: V8 },
];

/// Retention (see `retention`): a reply-log row is the memory of "one reply per sender per
/// `days`", so pruning must know how long each row is needed; `keep_until` says it (a reply's
/// own `days`, at least the 24 hours of the daily cap). Rows written before this version do not
/// say their `days`: a reply's is taken as the longest a rule may ask (3650), so none is
/// forgotten early. The indexes let the pruner find old rows without reading every row.
const V8: &str = "
ALTER TABLE reply_log ADD COLUMN keep_until INTEGER;
UPDATE reply_log SET keep_until = sent_at + CASE WHEN kind = 'reply' THEN 3650 ELSE 1 END * 86400000;
CREATE INDEX reply_log_keep_until ON reply_log (keep_until);
CREATE INDEX actions_settled ON actions (state, updated_at);
CREATE INDEX messages_by_decided_at ON messages (decided_at);
CREATE INDEX gmail_seen_by_time ON gmail_seen (seen_at);
";

/// What `tidings status` and `tidings history` read. `watchers` is the daemon's last word on
/// each connection (written when it changes, cleared at start), so another process can show it.
/// `messages` has one row per message the rules decided on, stored with its plan: the
/// Message-ID to find it by and the rules that acted on it, which the outbox alone cannot tell
/// (a rule that matched and only called `stop()` leaves no action).
const V6: &str = "
CREATE TABLE watchers (
    account    TEXT    NOT NULL,
    mailbox    TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('connecting', 'idle', 'polling', 'down')),
    since      INTEGER NOT NULL,
    last_error TEXT,
    reconnects INTEGER NOT NULL DEFAULT 0 CHECK (reconnects >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, mailbox)
) STRICT;

CREATE TABLE messages (
    account     TEXT    NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity INTEGER NOT NULL CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    uid         INTEGER NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),
    message_id  TEXT,
    matched     TEXT    NOT NULL CHECK (json_valid(matched)),
    stopped_by  TEXT,
    decided_at  INTEGER NOT NULL,
    PRIMARY KEY (account, mailbox, uidvalidity, uid)
) STRICT, WITHOUT ROWID;
CREATE INDEX messages_by_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX messages_by_uid ON messages (uid);
";

/// A fleet shares a PostgreSQL store (`store::postgres`); a SQLite store has one instance and
/// never fills these tables. They are here so that version 7 means the same tables on both.
const V7: &str = "
CREATE TABLE instances (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE leases (
    account      TEXT    PRIMARY KEY,
    owner        TEXT    NOT NULL,
    epoch        INTEGER NOT NULL CHECK (epoch > 0),
    expires_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;
";

/// Gmail shows one message in every folder of its labels (INBOX, `Receipts`, `[Gmail]/All
/// Mail`), each time under another UID but with one X-GM-MSGID. The first watcher to store a
/// plan for a message records its id here in the same transaction; a watcher of another label
/// folder that meets the same id later stores no actions for it, so the rules act once. The
/// first sighting (mailbox, UIDVALIDITY, UID) is kept so that a retried commit of that same
/// sighting is not mistaken for a second one.
const V5: &str = "
CREATE TABLE gmail_seen (
    account     TEXT    NOT NULL,
    msgid       INTEGER NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity INTEGER NOT NULL CHECK (uidvalidity >= 0),
    uid         INTEGER NOT NULL CHECK (uid >= 0),
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (account, msgid)
) STRICT, WITHOUT ROWID;
";

/// Schedules. `collected` holds what live rules `collect()`ed for a schedule's rule to read:
/// one row per decision (its key is the plan's idempotency key, so a message evaluated again
/// adds nothing). A digest marks the rows it read `consumed_at` in the transaction that stores
/// its summary, rather than deleting them, so that a key stays known and a late replay of the
/// same message cannot bring an item back into the next digest; consumed rows are pruned after
/// a while. `schedule_runs` gains the outcome of the last run, for `tidings schedules`; runs
/// recorded before this version have none (NULL).
const V4: &str = "
CREATE TABLE collected (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL UNIQUE,
    account     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    data        TEXT    NOT NULL CHECK (json_valid(data)),
    created_at  INTEGER NOT NULL,
    consumed_at INTEGER
) STRICT;
CREATE INDEX collected_waiting ON collected (account, consumed_at, id);

ALTER TABLE schedule_runs ADD COLUMN started_at INTEGER;
ALTER TABLE schedule_runs ADD COLUMN finished_at INTEGER;
ALTER TABLE schedule_runs ADD COLUMN messages INTEGER CHECK (messages >= 0);
ALTER TABLE schedule_runs ADD COLUMN actions INTEGER CHECK (actions >= 0);
ALTER TABLE schedule_runs ADD COLUMN failures INTEGER CHECK (failures >= 0);
ALTER TABLE schedule_runs ADD COLUMN error TEXT;
";

/// Outbound mail and the `tidings outbox` command. SQLite cannot change a CHECK constraint, so
/// `actions` is rebuilt (new table, copy, drop, rename) with the states `sending` (an SMTP
/// transaction may have begun), `suppressed` (a guard said no) and `dropped` (a person said
/// no), and the rule that planned each action. The AUTOINCREMENT counter is carried over so
/// that an id shown by `tidings outbox` is never given to another action. The reply log gains
/// the action each row was written for (a refused send deletes its own row, and a row is
/// unique per action) and the kind of mail it counts (every kind counts towards the daily
/// cap; only replies towards "once per sender per period").
const V3: &str = "
CREATE TABLE actions_v3 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    account         TEXT    NOT NULL,
    mailbox         TEXT,
    uidvalidity     INTEGER CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    uid             INTEGER CHECK (uid BETWEEN 0 AND 4294967295),
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    state           TEXT    NOT NULL
        CHECK (state IN ('pending', 'in_flight', 'sending', 'done', 'suppressed', 'failed',
                         'uncertain', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 4294967295),
    next_attempt_at INTEGER NOT NULL,
    claimed_at      INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    rule            TEXT,
    CHECK ((uid IS NULL) = (uidvalidity IS NULL))
) STRICT;

INSERT INTO actions_v3 (id, idempotency_key, account, mailbox, uidvalidity, uid, kind, payload,
                        state, attempts, next_attempt_at, claimed_at, last_error, created_at,
                        updated_at, rule)
SELECT id, idempotency_key, account, mailbox, uidvalidity, uid, kind, payload, state, attempts,
       next_attempt_at, claimed_at, last_error, created_at, updated_at, NULL
FROM actions;

DELETE FROM sqlite_sequence WHERE name = 'actions_v3';
INSERT INTO sqlite_sequence (name, seq) SELECT 'actions_v3', seq FROM sqlite_sequence WHERE name = 'actions';

DROP TABLE actions;
ALTER TABLE actions_v3 RENAME TO actions;
CREATE INDEX actions_due ON actions (state, next_attempt_at);
CREATE INDEX actions_due_by_account ON actions (account, state, next_attempt_at);

ALTER TABLE reply_log ADD COLUMN action_id INTEGER;
ALTER TABLE reply_log ADD COLUMN kind TEXT NOT NULL DEFAULT 'reply';
CREATE UNIQUE INDEX reply_log_action ON reply_log (action_id);
";

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
/// that a failure leaves the store at the last version that fully applied. A store that has a
/// schema already is backed up first ([`back_up`]); a new one has nothing to keep.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    migrate_to(conn, path, latest())
}

/// [`migrate`], up to `target` only (tests build stores of older versions with it).
pub(super) fn migrate_to(conn: &mut Connection, path: &Path, target: u32) -> Result<(), Error> {
    // Indexing cannot panic: MIGRATIONS is a non-empty constant (checked by a test below).
    let current = stored_version(conn).map_err(|source| migrate_error(path, &MIGRATIONS[0], source))?.unwrap_or(0);
    // An in-memory store (tests) has no file to keep a copy of.
    let on_disk = conn.path().is_some_and(|file| !file.is_empty());
    if on_disk && current > 0 && current < target {
        back_up(conn, path, current)?;
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current && m.version <= target) {
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

    /// A store at version 2 with rows in every table it had, as a user upgrading has one.
    fn v2_store_with_rows() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..2] {
            assert!(apply(&mut conn, migration).unwrap());
        }
        conn.execute_batch(
            "INSERT INTO actions (id, idempotency_key, account, mailbox, uidvalidity, uid, kind, payload, state, \
                                  attempts, next_attempt_at, claimed_at, last_error, created_at, updated_at) VALUES
                 (1, 'k1', 'work', 'INBOX', 9, 42, 'move', '{\"mailbox\":\"A\"}', 'done', 1, 10, NULL, NULL, 5, 11),
                 (2, 'k2', 'work', NULL, NULL, NULL, 'webhook', '{}', 'failed', 3, 20, NULL, 'boom', 6, 21),
                 (3, 'k3', 'home', 'INBOX', 1, 7, 'reply', '{\"to\":\"a@x.org\"}', 'uncertain', 1, 30, 29, NULL, 7, 31),
                 (4, 'k4', 'home', 'INBOX', 1, 8, 'copy', '{}', 'pending', 0, 40, NULL, NULL, 8, 8),
                 (5, 'k5', 'home', 'INBOX', 1, 9, 'copy', '{}', 'in_flight', 1, 50, 49, NULL, 9, 49);
             -- The newest action was deleted: its id must still never come back.
             INSERT INTO actions (id, idempotency_key, account, kind, payload, state, next_attempt_at, created_at,
                                  updated_at) VALUES (6, 'k6', 'home', 'move', '{}', 'done', 1, 1, 1);
             DELETE FROM actions WHERE id = 6;
             INSERT INTO reply_log (account, handle, sender, sent_at) VALUES ('work', 'vacation', 'a@x.org', 100);
             INSERT INTO checkpoints VALUES ('work', 'INBOX', 9, 42, 5);",
        )
        .unwrap();
        conn
    }

    fn actions_v2_columns(conn: &Connection) -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = conn
            .prepare(
                "SELECT id, idempotency_key, account, mailbox, uidvalidity, uid, kind, payload, state, attempts, \
                 next_attempt_at, claimed_at, last_error, created_at, updated_at FROM actions ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |row| (0..15).map(|i| row.get(i)).collect()).unwrap().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn v3_keeps_every_row_of_a_v2_store_unchanged() {
        let mut conn = v2_store_with_rows();
        let before = actions_v2_columns(&conn);
        assert_eq!(before.len(), 5);
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(stored_version(&conn).unwrap(), Some(latest()));
        assert_eq!(actions_v2_columns(&conn), before);
        let rules: Vec<Option<String>> = conn
            .prepare("SELECT rule FROM actions")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rules, vec![None; 5]);
        let log: (String, String, String, i64, Option<i64>, String) = conn
            .query_row("SELECT account, handle, sender, sent_at, action_id, kind FROM reply_log", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .unwrap();
        assert_eq!(log, ("work".into(), "vacation".into(), "a@x.org".into(), 100, None, "reply".into()));
        let checkpoint: i64 = conn.query_row("SELECT last_uid FROM checkpoints", [], |r| r.get(0)).unwrap();
        assert_eq!(checkpoint, 42);
    }

    #[test]
    fn v3_accepts_the_new_states_keeps_the_indexes_and_never_reuses_an_id() {
        let mut conn = v2_store_with_rows();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        let insert = |key: &str, state: &str| {
            conn.execute(
                "INSERT INTO actions (idempotency_key, account, kind, payload, state, next_attempt_at, created_at, \
                 updated_at, rule) VALUES (?1, 'work', 'reply', '{}', ?2, 1, 1, 1, 'vacation.rhai')",
                (key, state),
            )
        };
        for state in ["sending", "suppressed", "dropped"] {
            insert(state, state).unwrap();
        }
        assert!(insert("bogus", "bogus").is_err(), "the state CHECK survived the rebuild");
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM actions WHERE idempotency_key IN ('sending', 'suppressed', 'dropped') ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ids, [7, 8, 9], "id 6 was used before the migration");
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for index in
            ["actions_due", "actions_due_by_account", "reply_log_account", "reply_log_action", "reply_log_sender"]
        {
            assert!(indexes.iter().any(|i| i == index), "{index} missing from {indexes:?}");
        }
        assert!(
            conn.execute(
                "INSERT INTO actions (idempotency_key, account, kind, payload, state, next_attempt_at, \
                          created_at, updated_at) VALUES ('k1', 'x', 'move', '{}', 'pending', 1, 1, 1)",
                []
            )
            .is_err(),
            "idempotency keys stay unique"
        );
    }

    #[test]
    fn v4_keeps_schedule_runs_without_an_outcome_and_adds_collected() {
        let mut conn = v2_store_with_rows();
        conn.execute("INSERT INTO schedule_runs VALUES ('digest', 1000, 1001)", []).unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        let run: (i64, Option<i64>, Option<String>) = conn
            .query_row("SELECT fired_at, started_at, error FROM schedule_runs WHERE name = 'digest'", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(run, (1000, None, None));
        let insert = |key: &str, data: &str| {
            conn.execute(
                "INSERT INTO collected (key, account, name, data, created_at) VALUES (?1, 'work', 'digest', ?2, 1)",
                (key, data),
            )
        };
        insert("k", "{}").unwrap();
        assert!(insert("k", "{}").is_err(), "keys are unique");
        assert!(insert("other", "not json").is_err(), "data is JSON");
    }

    #[test]
    fn v8_keeps_old_reply_log_rows_as_long_as_any_reply_could_need_them() {
        let mut conn = v2_store_with_rows();
        conn.execute(
            "INSERT INTO reply_log (account, handle, sender, sent_at) VALUES ('work', '', 'b@x.org', 200)",
            [],
        )
        .unwrap();
        migrate_to(&mut conn, Path::new(":memory:"), 7).unwrap();
        conn.execute("UPDATE reply_log SET kind = 'send' WHERE sender = 'b@x.org'", []).unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT kind, keep_until FROM reply_log ORDER BY sent_at")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let day = 86_400_000;
        assert_eq!(rows, [("reply".to_owned(), 100 + 3650 * day), ("send".to_owned(), 200 + day)]);
    }
}
