//! The store's schema on PostgreSQL: the same numbered versions, with the same names, as the
//! SQLite migrations (`store::migrations`), in PostgreSQL's dialect, so that a store at version N
//! holds the same tables on both. Times stay unix milliseconds in BIGINT (see `store::codec`),
//! payloads become JSONB.
//!
//! Several instances of a fleet start against one database: a transaction-scoped advisory lock
//! makes them apply each step one at a time, and a step already applied is skipped.

use tokio_postgres::Client;

use crate::store::migrations::MIGRATIONS;

/// A key for `pg_advisory_xact_lock`, the same in every instance ("tidg" as in SQLite's
/// application id).
const LOCK: i64 = 0x7469_6467;

/// Version by version, the SQL of each step.
const STEPS: &[(u32, &str)] = &[(1, V1), (2, V2), (3, V3), (4, V4), (5, V5), (6, V6), (7, V7), (8, V8)];

const SCHEMA_TABLE: &str = "
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
);
";

const V1: &str = "
CREATE TABLE checkpoints (
    account     TEXT    NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity BIGINT  NOT NULL CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    last_uid    BIGINT  NOT NULL CHECK (last_uid BETWEEN 0 AND 4294967295),
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (account, mailbox)
);

CREATE TABLE actions (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    account         TEXT    NOT NULL,
    mailbox         TEXT,
    uidvalidity     BIGINT  CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    uid             BIGINT  CHECK (uid BETWEEN 0 AND 4294967295),
    kind            TEXT    NOT NULL,
    payload         JSONB   NOT NULL,
    state           TEXT    NOT NULL
        CONSTRAINT actions_state CHECK (state IN ('pending', 'in_flight', 'done', 'failed', 'uncertain')),
    attempts        BIGINT  NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 4294967295),
    next_attempt_at BIGINT  NOT NULL,
    claimed_at      BIGINT,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    CHECK ((uid IS NULL) = (uidvalidity IS NULL))
);
CREATE INDEX actions_due ON actions (state, next_attempt_at);

CREATE TABLE reply_log (
    id      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account TEXT    NOT NULL,
    handle  TEXT    NOT NULL,
    sender  TEXT    NOT NULL,
    sent_at BIGINT  NOT NULL
);
CREATE INDEX reply_log_sender ON reply_log (account, handle, sender, sent_at);
CREATE INDEX reply_log_account ON reply_log (account, sent_at);

CREATE TABLE schedule_runs (
    name       TEXT    PRIMARY KEY,
    fired_at   BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
";

const V2: &str = "
CREATE TABLE rule_failures (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account     TEXT    NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity BIGINT  NOT NULL CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    uid         BIGINT  NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),
    rule        TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    at          BIGINT  NOT NULL
);
CREATE INDEX rule_failures_by_rule ON rule_failures (rule, at);
CREATE INDEX actions_due_by_account ON actions (account, state, next_attempt_at);
";

/// SQLite rebuilt the table to widen its CHECK; PostgreSQL replaces the constraint in place.
const V3: &str = "
ALTER TABLE actions DROP CONSTRAINT actions_state;
ALTER TABLE actions ADD CONSTRAINT actions_state
    CHECK (state IN ('pending', 'in_flight', 'sending', 'done', 'suppressed', 'failed', 'uncertain', 'dropped'));
ALTER TABLE actions ADD COLUMN rule TEXT;

ALTER TABLE reply_log ADD COLUMN action_id BIGINT;
ALTER TABLE reply_log ADD COLUMN kind TEXT NOT NULL DEFAULT 'reply';
CREATE UNIQUE INDEX reply_log_action ON reply_log (action_id);
";

const V4: &str = "
CREATE TABLE collected (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE,
    account     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    data        JSONB   NOT NULL,
    created_at  BIGINT  NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX collected_waiting ON collected (account, consumed_at, id);

ALTER TABLE schedule_runs ADD COLUMN started_at BIGINT;
ALTER TABLE schedule_runs ADD COLUMN finished_at BIGINT;
ALTER TABLE schedule_runs ADD COLUMN messages BIGINT CHECK (messages >= 0);
ALTER TABLE schedule_runs ADD COLUMN actions BIGINT CHECK (actions >= 0);
ALTER TABLE schedule_runs ADD COLUMN failures BIGINT CHECK (failures >= 0);
ALTER TABLE schedule_runs ADD COLUMN error TEXT;
";

const V5: &str = "
CREATE TABLE gmail_seen (
    account     TEXT    NOT NULL,
    msgid       NUMERIC(20) NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity BIGINT  NOT NULL CHECK (uidvalidity >= 0),
    uid         BIGINT  NOT NULL CHECK (uid >= 0),
    seen_at     BIGINT  NOT NULL,
    PRIMARY KEY (account, msgid)
);
";

const V6: &str = "
CREATE TABLE watchers (
    account    TEXT    NOT NULL,
    mailbox    TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('connecting', 'idle', 'polling', 'down')),
    since      BIGINT  NOT NULL,
    last_error TEXT,
    reconnects BIGINT  NOT NULL DEFAULT 0 CHECK (reconnects >= 0),
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (account, mailbox)
);

CREATE TABLE messages (
    account     TEXT    NOT NULL,
    mailbox     TEXT    NOT NULL,
    uidvalidity BIGINT  NOT NULL CHECK (uidvalidity BETWEEN 0 AND 4294967295),
    uid         BIGINT  NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),
    message_id  TEXT,
    matched     JSONB   NOT NULL,
    stopped_by  TEXT,
    decided_at  BIGINT  NOT NULL,
    PRIMARY KEY (account, mailbox, uidvalidity, uid)
);
CREATE INDEX messages_by_message_id ON messages (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX messages_by_uid ON messages (uid);
";

/// Instances heartbeat in `instances`; each account is worked by the holder of its lease (see
/// `leases`). Times here are the database's (`now()`), so instances' clocks need not agree.
const V7: &str = "
CREATE TABLE instances (
    id           TEXT        PRIMARY KEY,
    host         TEXT        NOT NULL,
    pid          BIGINT      NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE leases (
    account      TEXT        PRIMARY KEY,
    owner        TEXT        NOT NULL,
    epoch        BIGINT      NOT NULL CHECK (epoch > 0),
    expires_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX leases_by_owner ON leases (owner);
";

const V8: &str = "
ALTER TABLE reply_log ADD COLUMN keep_until BIGINT;
UPDATE reply_log SET keep_until = sent_at + CASE WHEN kind = 'reply' THEN 3650 ELSE 1 END * 86400000::bigint;
CREATE INDEX reply_log_keep_until ON reply_log (keep_until);
CREATE INDEX actions_settled ON actions (state, updated_at);
CREATE INDEX messages_by_decided_at ON messages (decided_at);
CREATE INDEX gmail_seen_by_time ON gmail_seen (seen_at);
";

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step failed; the database stays at the last version that fully applied.
    #[error("cannot migrate the PostgreSQL store to schema version {version} ({name})")]
    Step {
        /// The step's version.
        version: u32,
        /// The step's name.
        name: &'static str,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database was written by a newer tidings.
    #[error(
        "cannot use the PostgreSQL store: its schema is at version {found}, newer than this tidings knows ({known}); upgrade tidings"
    )]
    Newer {
        /// The version found.
        found: u32,
        /// The newest this binary knows.
        known: u32,
    },
}

/// Applies every step newer than the database's version, each in its own transaction; returns
/// the versions this call applied (another instance may have applied the others).
pub async fn migrate(client: &mut Client) -> Result<Vec<u32>, Error> {
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let sql = STEPS.iter().find(|(v, _)| *v == migration.version).map(|(_, sql)| *sql).unwrap_or_default();
        let step = |source| Error::Step { version: migration.version, name: migration.name, source };
        let tx = client.transaction().await.map_err(step)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(step)?;
        tx.batch_execute(SCHEMA_TABLE).await.map_err(step)?;
        let current: i32 =
            tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(step)?.get(0);
        let current = u32::try_from(current).unwrap_or(0);
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if current > known {
            return Err(Error::Newer { found: current, known });
        }
        if current >= migration.version {
            continue;
        }
        tx.batch_execute(sql).await.map_err(step)?;
        let version = i32::try_from(migration.version).unwrap_or(i32::MAX);
        let now = chrono::Utc::now().timestamp_millis();
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[&version, &migration.name, &now],
        )
        .await
        .map_err(step)?;
        tx.commit().await.map_err(step)?;
        tracing::info!(version = migration.version, name = migration.name, "PostgreSQL store schema migrated");
        applied.push(migration.version);
    }
    Ok(applied)
}

/// Every SQLite step has its PostgreSQL counterpart (a test checks it; [`migrate`] would
/// otherwise record a version whose tables it never created).
pub fn covers_every_version() -> bool {
    MIGRATIONS.iter().all(|m| STEPS.iter().any(|(v, _)| *v == m.version)) && STEPS.len() == MIGRATIONS.len()
}
