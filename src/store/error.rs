//! Errors of the store: one enum, each message "cannot <verb> <object>" naming the path,
//! account, mailbox, action or schedule, with the cause in `source` (never in the message).

use std::path::PathBuf;

use super::types::{ActionId, ActionState};

/// An error of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory that should hold the store could not be created.
    #[error("cannot create store directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A new store file could not be created owner-only.
    #[error("cannot create store {path}")]
    CreateFile {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The OS thread that owns the connection could not be started.
    #[error("cannot start store thread")]
    Spawn {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SQLite could not open the file (permissions, a directory in the way, ...).
    #[error("cannot open store {path}")]
    Open {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database, is damaged, or belongs to another program.
    /// Nothing was written to it.
    #[error("cannot open store {path}: it is not a tidings store or it is corrupt (left untouched)")]
    NotAStore {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Damage,
    },
    /// The file is there but empty (0 bytes): truncated, or made by someone else. A store
    /// tidings makes is never empty. Nothing was written to it.
    #[error(
        "cannot open store {path}: the file is empty; it is not a tidings store (was it truncated?). \
         It was left untouched. Put the store back from a backup, or, to start afresh, move the \
         file away: a new store takes the mail already in the mailboxes as old and has no memory \
         of replies sent"
    )]
    Empty {
        /// The store file.
        path: PathBuf,
    },
    /// The store was written by a newer tidings; this binary does not know its schema.
    #[error(
        "cannot open store {path}: its schema version {found} is newer than this tidings knows \
         ({known}); run a newer tidings or use another store path"
    )]
    TooNew {
        /// The store file.
        path: PathBuf,
        /// The schema version found in the file.
        found: u32,
        /// The newest schema version this binary knows.
        known: u32,
    },
    /// A connection setting (pragma) could not be applied.
    #[error("cannot configure store {path}")]
    Configure {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file system refused write-ahead logging, so commits would not be durable as designed.
    #[error("cannot enable write-ahead logging for store {path}: the journal mode stays {mode}")]
    NoWal {
        /// The store file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The copy taken before migrating an older store could not be written; nothing was
    /// migrated.
    #[error("cannot back up store {path} to {backup} before migrating it from schema version {version}")]
    Backup {
        /// The store file.
        path: PathBuf,
        /// The backup file that was being written.
        backup: PathBuf,
        /// The schema version of the store (and of the backup).
        version: u32,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A schema migration failed; it was rolled back, the store keeps its previous version.
    #[error("cannot migrate store {path} to schema version {version} ({name})")]
    Migrate {
        /// The store file.
        path: PathBuf,
        /// The migration's version.
        version: u32,
        /// The migration's name.
        name: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The store thread has stopped (it panicked); no command can run.
    #[error("cannot reach store: its thread has stopped")]
    Stopped,
    /// A transaction could not begin or commit (a write fenced out fails as [`Error::Lease`]).
    #[error("cannot {verb} a store transaction")]
    Transaction {
        /// "begin", "commit".
        verb: &'static str,
        /// Why.
        #[source]
        source: super::sql::DbError,
    },
    /// Reading a mailbox checkpoint failed.
    #[error("cannot read checkpoint {account}/{mailbox}")]
    ReadCheckpoint {
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// Writing a mailbox checkpoint failed; the stored one is unchanged.
    #[error("cannot write checkpoint {account}/{mailbox}")]
    WriteCheckpoint {
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A checkpoint would move to a lower uid within the same UIDVALIDITY.
    #[error(
        "cannot move checkpoint {account}/{mailbox} backwards from uid {stored} to {requested} \
         (uidvalidity {uidvalidity})"
    )]
    CheckpointBackwards {
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// The UIDVALIDITY both share.
        uidvalidity: u32,
        /// The last uid stored.
        stored: u32,
        /// The last uid asked for.
        requested: u32,
    },
    /// A plan was committed against a UIDVALIDITY other than the stored checkpoint's.
    #[error(
        "cannot commit plan for {account}/{mailbox}: uidvalidity {requested} does not match the \
         checkpoint's {stored}; re-baseline the checkpoint first"
    )]
    UidValidityMismatch {
        /// The account.
        account: String,
        /// The mailbox.
        mailbox: String,
        /// The stored UIDVALIDITY.
        stored: u32,
        /// The UIDVALIDITY of the plan.
        requested: u32,
    },
    /// Storing a plan (its actions and its checkpoint or schedule run) failed; nothing was stored.
    #[error("cannot commit plan for {origin}")]
    Plan {
        /// Where the plan came from: "account/mailbox" or "schedule NAME".
        origin: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing what `tidings status` and `tidings history` show failed.
    #[error("cannot {verb}")]
    Report {
        /// What was being done: "read watcher states", "read the history of a message".
        verb: &'static str,
        /// Why.
        #[source]
        source: super::sql::DbError,
    },
    /// A batch of pruning (see `retention`) failed; nothing of that batch was deleted.
    #[error("cannot prune {what} in the store")]
    Prune {
        /// What was being pruned: "done actions", "the reply log".
        what: &'static str,
        /// Why.
        #[source]
        source: super::sql::DbError,
    },
    /// A statement on the shared PostgreSQL store failed (or its transaction did not commit);
    /// nothing of that call was stored.
    #[error("cannot {what} (PostgreSQL store)")]
    Postgres {
        /// What was being done, naming the account, mailbox, action or schedule:
        /// "commit plan for work/INBOX", "claim due actions of account work".
        what: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection to the shared PostgreSQL store could be had (down, refused, pool closed).
    #[error("cannot connect to the PostgreSQL store")]
    Pool(#[source] deadpool_postgres::PoolError),
    /// The PostgreSQL store could not be set up (its URL, CA file or TLS).
    #[error("cannot open the PostgreSQL store")]
    Connect(#[source] super::postgres::connect::Error),
    /// The PostgreSQL store's schema could not be brought up to date.
    #[error("cannot open the PostgreSQL store")]
    PgMigrate(#[source] super::postgres::migrations::Error),
    /// A fleet instance wrote for an account whose lease another instance took over (a stale
    /// epoch), or a lease operation failed: the write was refused, nothing was stored.
    #[error(transparent)]
    Lease(#[from] super::postgres::leases::Error),
    /// A lease operation was asked of a store opened as a tool, not as a fleet member.
    #[error("cannot {verb}: the store was not opened as a member of a fleet")]
    NotAMember {
        /// What was asked: "claim a lease", "heartbeat", ...
        verb: &'static str,
    },
    /// A fleet instance wrote for an account it holds no lease on.
    #[error("cannot write for account {account}: this instance holds no lease on it")]
    NotHeld {
        /// The account.
        account: String,
    },
    /// An operation on the outbox as a whole failed.
    #[error("cannot {verb} outbox")]
    Outbox {
        /// What was being done: "claim due actions in", "recover", "count", "list".
        verb: &'static str,
        /// Why.
        #[source]
        source: super::sql::DbError,
    },
    /// An operation on one action failed.
    #[error("cannot {verb} action {id}")]
    Action {
        /// What was being done: "read", "record outcome of".
        verb: &'static str,
        /// The action.
        id: ActionId,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// An outcome was recorded for an action that is not in flight (unknown, never claimed,
    /// already finished, or turned uncertain at start-up).
    #[error("cannot record outcome of action {id}: it is not in flight")]
    NotInFlight {
        /// The action.
        id: ActionId,
    },
    /// An action is not in a state that allows what was asked (or does not exist): retrying a
    /// done action, dropping one an executor holds, sending one that was not claimed.
    #[error("cannot {verb} action {id}: {}", wrong_state(*.found, .allowed))]
    WrongState {
        /// What was being done: "retry", "drop", "begin sending", ...
        verb: &'static str,
        /// The action.
        id: ActionId,
        /// Its state; `None`: there is no such action.
        found: Option<ActionState>,
        /// Which actions allow it, as a sentence: "only failed or uncertain actions can be retried".
        allowed: &'static str,
    },
    /// Reading or writing the reply log failed.
    #[error("cannot {verb} reply log of account {account}")]
    ReplyLog {
        /// What was being done: "read", "write".
        verb: &'static str,
        /// The account.
        account: String,
        /// Why.
        #[source]
        source: super::sql::DbError,
    },
    /// Reading or writing a schedule run failed.
    #[error("cannot {verb} run of schedule {name}")]
    ScheduleRun {
        /// What was being done: "read", "write".
        verb: &'static str,
        /// The schedule.
        name: String,
        /// Why.
        #[source]
        source: super::sql::DbError,
    },
    /// Listing the schedule runs failed.
    #[error("cannot read schedule runs")]
    ScheduleRuns {
        /// Why.
        #[source]
        source: super::sql::DbError,
    },
    /// Reading the items collected for an account failed.
    #[error("cannot read items collected for account {account}")]
    ReadCollected {
        /// The account.
        account: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
}

fn wrong_state(found: Option<ActionState>, allowed: &str) -> String {
    match found {
        Some(state) => format!("it is {state}; {allowed}"),
        None => "there is no such action".to_owned(),
    }
}

/// Why a file is not a usable store.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    /// SQLite rejected the file: not a database, or a damaged one.
    #[error("sqlite rejected the file")]
    Sqlite(#[source] rusqlite::Error),
    /// `PRAGMA quick_check` found damage; the text is SQLite's first report.
    #[error("integrity check failed: {0}")]
    IntegrityCheck(String),
    /// The database carries another program's application id.
    #[error("the database belongs to another program (application id {0:#010x})")]
    ForeignApplication(i32),
    /// The database has tables but no tidings schema: another program's database.
    #[error("the database has tables but no tidings schema")]
    ForeignSchema,
    /// A SQLite database with no tables at all: not a store tidings made (it makes a new
    /// store whole before giving it its name).
    #[error("the database is empty: it has no tidings schema")]
    NoSchema,
}
