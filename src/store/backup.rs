//! A copy of the store taken before its schema is migrated, so that an upgrade that goes wrong
//! (a bug in a migration, or a downgrade after it) can be undone by putting the copy back.
//!
//! `VACUUM INTO` writes one consistent snapshot of the database, what the WAL holds included,
//! into a new standalone file, while the store stays open: copying the file with `cp` could
//! miss commits still in `-wal` and would not be a snapshot.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::error::Error;

/// `<state>.v<version>-<UTC time>.bak`, beside the store: e.g. `state.db.v3-20261206T081500Z.bak`.
pub(super) fn backup_path(path: &Path, version: u32, at: DateTime<Utc>) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".v{version}-{}.bak", at.format("%Y%m%dT%H%M%SZ")));
    PathBuf::from(name)
}

/// Writes the backup of the store at schema `version` and returns its path. An existing file
/// at that path is an error, never overwritten: the store is then not migrated.
pub(super) fn back_up(conn: &Connection, path: &Path, version: u32) -> Result<PathBuf, Error> {
    let backup = backup_path(path, version, Utc::now());
    let failed = |source| Error::Backup { path: path.to_path_buf(), backup: backup.clone(), version, source };
    let target = backup.to_str().ok_or_else(|| failed(rusqlite::Error::InvalidPath(backup.clone())))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(failed)?;
    // The copy holds what the store holds: readable by whom the store is, not by the umask.
    if let Err(error) = std::fs::metadata(path).and_then(|m| std::fs::set_permissions(&backup, m.permissions())) {
        tracing::warn!(backup = %backup.display(), %error, "cannot give the store backup the store's permissions");
    }
    tracing::info!(
        path = %path.display(),
        backup = %backup.display(),
        version,
        "store backed up before migrating its schema; put the backup back in place of the store to undo the upgrade"
    );
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backup_is_named_after_the_store_version_and_time() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T08:15:00Z").unwrap().to_utc();
        let path = backup_path(Path::new("/var/lib/tidings/state.db"), 3, at);
        assert_eq!(path, Path::new("/var/lib/tidings/state.db.v3-20261206T081500Z.bak"));
    }
}
