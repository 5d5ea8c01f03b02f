//! The SQLite connection and the one OS thread that owns it.
//!
//! Why a dedicated thread rather than `Arc<Mutex<Connection>>` + `spawn_blocking`: SQLite
//! runs one writer at a time anyway, so a single owner loses nothing; commands queue in a
//! channel instead of parking blocking-pool threads on a mutex; a transaction can never be
//! held across an `.await`; the prepared-statement cache stays warm on one connection; and
//! when the last `Store` handle is dropped the thread ends and closes the file cleanly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::error::{Damage, Error};
use super::migrations;
use super::sql::Db;

/// Work for the store thread: it runs with the connection and sends its own reply.
pub(super) type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// How long a statement waits for another process's lock (e.g. `tidings outbox` reading
/// while the daemon writes) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the store thread, which opens the connection with `open` and then runs jobs until
/// every sender is dropped. Returns once the connection is open (or failed to open).
pub(super) async fn start<F>(open: F) -> Result<mpsc::UnboundedSender<Job>, Error>
where
    F: FnOnce() -> Result<Connection, Error> + Send + 'static,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job>();
    thread::Builder::new()
        .name("tidings-store".into())
        .spawn(move || match open() {
            Ok(conn) => {
                // The receiver only goes away if the opening task was cancelled; then the
                // senders are gone too and `run` returns at once.
                let _ = ready_tx.send(Ok(()));
                run(conn, jobs_rx);
            }
            Err(error) => {
                let _ = ready_tx.send(Err(error));
            }
        })
        .map_err(|source| Error::Spawn { source })?;
    ready_rx.await.map_err(|_| Error::Stopped)??;
    Ok(jobs_tx)
}

fn run(conn: Connection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut db = Db::sqlite(conn);
    while let Some(job) = jobs.blocking_recv() {
        job(&mut db);
    }
    let Some(conn) = db.into_connection() else { return };
    if let Err((_, error)) = conn.close() {
        tracing::warn!(error = %error, "store connection did not close cleanly");
    }
}

/// Opens (creating if needed) the store file and brings its schema up to date.
///
/// Before anything is written the file is checked: empty, not a database, damaged, another
/// program's, or from a newer tidings are errors that leave it byte for byte as it was. Only
/// where no file exists is a new store made, whole, beside it and then linked into place
/// ([`create_store`]), so an empty file at the path is never one tidings left: it was truncated,
/// and taking it as new would take mail delivered meanwhile as old and forget who was replied to.
pub(super) fn open_file(path: &Path) -> Result<Connection, Error> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir { path: dir.to_path_buf(), source })?;
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_store(path)?,
        Err(source) => return Err(Error::CreateFile { path: path.to_path_buf(), source }),
        Ok(meta) if meta.is_file() && meta.len() == 0 => return Err(Error::Empty { path: path.to_path_buf() }),
        Ok(_) => {}
    }
    // Without CREATE: the file is there (made above, or found); if it went away meanwhile,
    // opening fails rather than making an empty one.
    let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|source| configure_error(path, source))?;
    inspect(&conn, path)?;
    enable_wal(&conn, path)?;
    // FULL: in WAL mode NORMAL may lose the last commits on power loss (the WAL is synced
    // only at checkpoints); FULL syncs the WAL on every commit, so a plan or an outcome
    // that the store acknowledged is on disk, which is what exactly-once rests on.
    // secure_delete FAST: content dropped from a settled action or pruned (see `retention`) is
    // zeroed in the pages SQLite writes anyway, instead of lingering in the file's free space.
    conn.pragma_update(None, "synchronous", "FULL")
        .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
        .and_then(|()| conn.pragma_update(None, "secure_delete", "FAST"))
        .map_err(|source| configure_error(path, source))?;
    migrations::migrate(&mut conn, path)?;
    tracing::debug!(path = %path.display(), version = migrations::latest(), "store opened");
    Ok(conn)
}

/// Makes a new store at `path`: initialised in an owner-only temporary file beside it, then
/// linked into place under its name. A crash or a full disk meanwhile leaves at most the
/// temporary file, never an empty or half-made store at `path`. Linking, unlike renaming, never
/// replaces a store another tidings made at the same moment: that one is then opened instead.
fn create_store(path: &Path) -> Result<(), Error> {
    let temp = temp_path(path);
    let created = fill_new(&temp, path).and_then(|()| {
        let placed = match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // A file system without hard links: a rename, which a racing start could overwrite.
            Err(_) => std::fs::rename(&temp, path),
            Ok(()) => Ok(()),
        };
        placed.and_then(|()| sync_parent(path)).map_err(|source| Error::CreateFile { path: path.to_path_buf(), source })
    });
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name = temp.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
    if created.is_ok() {
        tracing::info!(path = %path.display(), "new store created");
    }
    created
}

/// `.<name>.<pid>-<n>.new` beside `path`: hidden, and one per process and attempt.
fn temp_path(path: &Path) -> PathBuf {
    static ATTEMPT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let attempt = ATTEMPT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{attempt}.new", std::process::id()))
}

/// Creates `temp` owner-only and writes the whole schema into it. `path` names the store in
/// errors: the temporary file is nobody's concern.
fn fill_new(temp: &Path, path: &Path) -> Result<(), Error> {
    // A leftover of this same pid (a crash, then a pid reused) holds nothing anyone needs.
    let _ = std::fs::remove_file(temp);
    create_private(temp).map_err(|source| Error::CreateFile { path: path.to_path_buf(), source })?;
    let mut conn = Connection::open(temp).map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    // The default rollback journal with synchronous FULL: every migration is on disk when it
    // commits, and closing leaves no journal to carry over.
    conn.pragma_update(None, "synchronous", "FULL")
        .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
        .map_err(|source| configure_error(path, source))?;
    migrations::migrate(&mut conn, path)?;
    conn.close().map_err(|(_, source)| Error::Open { path: path.to_path_buf(), source })
}

/// Makes the new name durable: a store that acknowledged commits must not vanish on power loss.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

/// Creates a store file owner-only (0600). SQLite would create it 0644 less the umask, readable
/// by every local user, and it gives its `-wal` and `-shm` files the mode of the database, so
/// creating the database right covers all three.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map(drop)
}

/// Opens a private in-memory store (for tests of other modules): same schema, no file.
pub(super) fn open_memory() -> Result<Connection, Error> {
    let path = Path::new(":memory:");
    let mut conn = Connection::open_in_memory().map_err(|source| Error::Open { path: path.to_path_buf(), source })?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(|source| configure_error(path, source))?;
    migrations::migrate(&mut conn, path)?;
    Ok(conn)
}

fn configure_error(path: &Path, source: rusqlite::Error) -> Error {
    Error::Configure { path: path.to_path_buf(), source }
}

/// Read-only checks, in the order that reads least before it can fail.
fn inspect(conn: &Connection, path: &Path) -> Result<(), Error> {
    let not_a_store = |damage| Error::NotAStore { path: path.to_path_buf(), source: damage };
    let read_error = |source| read_error(path, source);
    // quick_check reads every page (without the slow index cross-checks): a store is small,
    // and finding damage at start-up beats finding it halfway through a plan.
    let check: String = conn.query_row("PRAGMA quick_check(1)", [], |row| row.get(0)).map_err(read_error)?;
    if check != "ok" {
        return Err(not_a_store(Damage::IntegrityCheck(check)));
    }
    let app_id: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0)).map_err(read_error)?;
    if app_id != 0 && app_id != migrations::APPLICATION_ID {
        return Err(not_a_store(Damage::ForeignApplication(app_id)));
    }
    // A new store is made whole before it gets its name, so a file without the schema table is
    // not one tidings is making: another program's database, or an empty one.
    match migrations::stored_version(conn).map_err(read_error)? {
        None if has_tables(conn).map_err(read_error)? => Err(not_a_store(Damage::ForeignSchema)),
        None => Err(not_a_store(Damage::NoSchema)),
        Some(found) if found > migrations::latest() => {
            Err(Error::TooNew { path: path.to_path_buf(), found, known: migrations::latest() })
        }
        _ => Ok(()),
    }
}

fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema \
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\')",
        [],
        |row| row.get(0),
    )
}

/// SQLite reports a file that is not a database, or a damaged one, only on the first read.
fn read_error(path: &Path, source: rusqlite::Error) -> Error {
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            Error::NotAStore { path: path.to_path_buf(), source: Damage::Sqlite(source) }
        }
        _ => Error::Open { path: path.to_path_buf(), source },
    }
}

fn enable_wal(conn: &Connection, path: &Path) -> Result<(), Error> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|source| configure_error(path, source))?;
    if mode.eq_ignore_ascii_case("wal") { Ok(()) } else { Err(Error::NoWal { path: path.to_path_buf(), mode }) }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use chrono::{DateTime, Utc};
    use rusqlite::Connection;
    use serde_json::json;

    use crate::store::migrations::{self, MIGRATIONS};
    use crate::store::{Checkpoint, Damage, Error, NewAction, Outcome, Store};

    fn store_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("state").join("nested").join("tidings.db")
    }

    fn raw(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    fn migration_rows(path: &Path) -> u32 {
        raw(path).query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn fresh_file_is_created_migrated_and_reopen_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        drop(Store::open(&path).await.unwrap());
        assert!(path.is_file());
        assert_eq!(migration_rows(&path) as usize, MIGRATIONS.len());
        let mode: String = raw(&path).pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(Store::open(&path).await.unwrap());
        drop(Store::open(&path).await.unwrap());
        assert_eq!(migration_rows(&path) as usize, MIGRATIONS.len());
        let version = migrations::stored_version(&raw(&path)).unwrap();
        assert_eq!(version, Some(migrations::latest()));
    }

    /// Mail metadata and the outbox are nobody else's business: the database and the WAL files
    /// SQLite creates beside it are owner-only whatever the umask (the tests run with 022).
    #[tokio::test]
    async fn a_new_store_and_its_wal_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let store = Store::open(&path).await.unwrap();
        store
            .commit_plan(
                &Checkpoint { account: "a".into(), mailbox: "INBOX".into(), uidvalidity: 1, last_uid: 1 },
                vec![],
            )
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
        }
        drop(store);
        // An existing file keeps its mode (a warning at start says so, not a silent chmod).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        drop(Store::open(&path).await.unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[tokio::test]
    async fn connection_is_durable_and_checks_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&store_path(&dir)).await.unwrap();
        let pragmas = store
            .call(|conn| {
                let get = |name| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
                Ok((get("synchronous"), get("foreign_keys"), get("busy_timeout"), get("secure_delete")))
            })
            .await
            .unwrap();
        // synchronous 2 is FULL; secure_delete 2 is FAST.
        let pragmas = (pragmas.0.unwrap(), pragmas.1.unwrap(), pragmas.2.unwrap(), pragmas.3.unwrap());
        assert_eq!(pragmas, (2, 1, 5000, 2));
    }

    /// The `.bak` files beside `path`.
    fn backups(path: &Path) -> Vec<PathBuf> {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
            .filter(|p| p.extension().is_some_and(|e| e == "bak"))
            .collect();
        found.sort();
        found
    }

    /// A store file as a tidings of schema `version` left it, in WAL mode, and its connection.
    fn old_store(dir: &tempfile::TempDir, version: u32) -> (PathBuf, Connection) {
        let path = store_path(dir);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut conn = raw(&path);
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        migrations::migrate_to(&mut conn, &path, version).unwrap();
        (path, conn)
    }

    #[tokio::test]
    async fn migrating_an_older_store_leaves_a_backup_that_opens_at_the_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = old_store(&dir, 2);
        {
            // Its last commit still in the WAL.
            conn.execute(
                "INSERT INTO checkpoints (account, mailbox, uidvalidity, last_uid, updated_at) \
                 VALUES ('work', 'INBOX', 9, 42, 0)",
                [],
            )
            .unwrap();
            // Owner-only, unlike what the umask gives a new file.
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            // Kept open: the row is in the WAL, not in the main file, when the store opens it.
            assert!(backups(&path).is_empty(), "no backup of a new file");
            let store = Store::open(&path).await.unwrap();
            assert_eq!(migrations::stored_version(&raw(&path)).unwrap(), Some(migrations::latest()));
            drop(store);
            drop(conn);
        }
        let found = backups(&path);
        assert_eq!(found.len(), 1, "{found:?}");
        let name = found[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("tidings.db.v2-") && name.ends_with("Z.bak"), "{name}");
        let old = Connection::open_with_flags(&found[0], rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert_eq!(migrations::stored_version(&old).unwrap(), Some(2), "the backup is at the old version");
        let uid: u32 = old.query_row("SELECT last_uid FROM checkpoints", [], |r| r.get(0)).unwrap();
        assert_eq!(uid, 42, "the backup holds what was committed");
        let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
        assert_eq!(mode(&found[0]), mode(&path), "the backup is as readable as the store, no more");
        let tables: u32 =
            old.query_row("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'collected'", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0, "the backup has no table of a later version");
        // Up to date now: opening it again takes no second backup.
        drop(Store::open(&path).await.unwrap());
        assert_eq!(backups(&path).len(), 1);
    }

    #[tokio::test]
    async fn a_backup_that_cannot_be_written_stops_the_migration() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = old_store(&dir, 1);
        drop(conn);
        // Every name the backup could take this second and the next is taken already.
        let now = Utc::now();
        for at in [now, now + chrono::Duration::seconds(1)] {
            std::fs::write(crate::store::backup::backup_path(&path, 1, at), "taken").unwrap();
        }
        let error = Store::open(&path).await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Backup { version: 1, .. }), "{error:?}");
        assert!(message.starts_with(&format!("cannot back up store {} to ", path.display())), "{message}");
        assert_eq!(migrations::stored_version(&raw(&path)).unwrap(), Some(1), "not migrated without a backup");
    }

    #[tokio::test]
    async fn newer_schema_version_is_a_clear_error_and_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        drop(Store::open(&path).await.unwrap());
        raw(&path)
            .execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'x', 0)", [])
            .unwrap();
        let error = Store::open(&path).await.unwrap_err();
        assert!(matches!(error, Error::TooNew { found: 999, known, .. } if known == migrations::latest()), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot open store {}: its schema version 999 is newer than this tidings knows \
                 ({}); run a newer tidings or use another store path",
                path.display(),
                migrations::latest()
            )
        );
        assert_eq!(migrations::stored_version(&raw(&path)).unwrap(), Some(999));
    }

    /// Asserts that opening `path` fails as not-a-store and leaves its bytes as they were.
    async fn assert_refused_untouched(path: &Path) -> Damage {
        let before = std::fs::read(path).unwrap();
        let error = Store::open(path).await.unwrap_err();
        assert_eq!(std::fs::read(path).unwrap(), before, "the file was modified");
        let message = error.to_string();
        assert!(message.starts_with("cannot open store "), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        match error {
            Error::NotAStore { source, .. } => source,
            other => panic!("expected NotAStore, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_file_is_a_clear_error_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tidings.db");
        for garbage in [b"hello, not a database\n".to_vec(), b"\xde\xad\xbe\xef".repeat(2048)] {
            std::fs::write(&path, &garbage).unwrap();
            let damage = assert_refused_untouched(&path).await;
            assert!(matches!(damage, Damage::Sqlite(_)), "{damage:?}");
        }
    }

    #[tokio::test]
    async fn damaged_page_is_a_clear_error_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        drop(Store::open(&path).await.unwrap());
        // Move everything from the WAL into the main file, so the damage below is seen.
        raw(&path).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let page_size = 4096;
        assert!(bytes.len() >= 3 * page_size, "expected several pages");
        bytes[page_size..2 * page_size].fill(0xa5);
        std::fs::write(&path, &bytes).unwrap();
        let damage = assert_refused_untouched(&path).await;
        assert!(matches!(damage, Damage::Sqlite(_) | Damage::IntegrityCheck(_)), "{damage:?}");
    }

    #[tokio::test]
    async fn another_programs_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.db");
        raw(&path).execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('a');").unwrap();
        let damage = assert_refused_untouched(&path).await;
        assert!(matches!(damage, Damage::ForeignSchema), "{damage:?}");

        let other = dir.path().join("other.db");
        raw(&other).execute_batch("PRAGMA application_id = 1234;").unwrap();
        let damage = assert_refused_untouched(&other).await;
        assert!(matches!(damage, Damage::ForeignApplication(1234)), "{damage:?}");
    }

    /// A truncated store is not taken for a new one: mail delivered meanwhile would be taken as
    /// old and the reply-once memory would be gone without a word.
    #[tokio::test]
    async fn an_empty_file_is_refused_untouched_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        drop(Store::open(&path).await.unwrap());
        std::fs::File::create(&path).unwrap();
        let error = Store::open(&path).await.unwrap_err();
        assert!(matches!(&error, Error::Empty { path: p } if *p == path), "{error:?}");
        let message = error.to_string();
        for part in [
            format!("cannot open store {}: the file is empty", path.display()),
            "not a tidings store (was it truncated?)".to_owned(),
            "left untouched".to_owned(),
            "from a backup".to_owned(),
            "move the file away".to_owned(),
        ] {
            assert!(message.contains(&part), "{part:?} missing from {message}");
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "the file was written to");
    }

    #[tokio::test]
    async fn an_empty_sqlite_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tidings.db");
        // A valid header and no table: SQLite writes a page when a pragma changes the header.
        raw(&path).execute_batch("PRAGMA user_version = 1;").unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        let damage = assert_refused_untouched(&path).await;
        assert!(matches!(damage, Damage::NoSchema), "{damage:?}");
    }

    /// A new store is made beside its path and linked into place whole: what is left in the
    /// directory is the store alone (and its WAL files), owner-only, with tidings' id.
    #[tokio::test]
    async fn a_new_store_leaves_no_temporary_file_and_carries_the_application_id() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tidings.db");
        let store = Store::open(&path).await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["tidings.db", "tidings.db-shm", "tidings.db-wal"]);
        drop(store);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let id: i32 = raw(&path).pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
        assert_eq!(id, migrations::APPLICATION_ID);
    }

    /// A store from before the application id was written (the id 0, tidings' tables) opens.
    #[tokio::test]
    async fn a_store_without_the_application_id_but_with_the_schema_opens() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = old_store(&dir, migrations::latest());
        conn.pragma_update(None, "application_id", 0).unwrap();
        drop(conn);
        drop(Store::open(&path).await.unwrap());
        assert_eq!(migrations::stored_version(&raw(&path)).unwrap(), Some(migrations::latest()));
    }

    /// Two starts making the same new store at once: one store, both open it, nothing is lost.
    #[tokio::test]
    async fn two_opens_of_a_new_store_at_once_share_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tidings.db");
        let (a, b) = tokio::join!(Store::open(&path), Store::open(&path));
        let (a, b) = (a.unwrap(), b.unwrap());
        let checkpoint = Checkpoint { account: "a".into(), mailbox: "INBOX".into(), uidvalidity: 1, last_uid: 7 };
        a.commit_plan(&checkpoint, vec![]).await.unwrap();
        assert_eq!(b.checkpoint("a", "INBOX").await.unwrap(), Some(checkpoint));
    }

    #[tokio::test]
    async fn committed_data_survives_dropping_the_store_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let t = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let checkpoint = Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 9, last_uid: 42 };
        {
            let store = Store::open(&path).await.unwrap();
            let action = NewAction::new("k1", "work", "move", json!({"to": "Archive"}))
                .for_message("INBOX", 9, 42)
                .not_before(t);
            store.commit_plan(&checkpoint, vec![action]).await.unwrap();
            let claimed = store.claim_due(Utc::now(), 10).await.unwrap();
            store.record_outcome(claimed[0].id, Outcome::Done).await.unwrap();
            store.record_reply("work", "vacation", "a@x.org", t).await.unwrap();
            store.record_schedule_run("digest", t).await.unwrap();
        }
        let store = Store::open(&path).await.unwrap();
        assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(checkpoint));
        let done = store.list_outbox(None, 10).await.unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].payload, json!({"to": "Archive"}));
        assert_eq!(done[0].state, crate::store::ActionState::Done);
        assert_eq!(store.last_reply("work", "vacation", "a@x.org").await.unwrap(), Some(t));
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t));
    }
}
