//! Files that must stay private: the secrets the config reads from files (passwords, OAuth2
//! refresh tokens and client secrets, webhook signing secrets) and the state files (the store
//! with its WAL files and lock, which hold mail metadata and the outbox).
//!
//! tidings creates its own files owner-only; files the user made may be open to others. Those
//! are warned about at start, naming the file, its mode and the fix, but never changed: the
//! user may share a file with a group on purpose, and a daemon that chmods behind their back
//! surprises. What it must not do: read a secret (only metadata is looked at).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::{Config, SecretSource};

/// Group and others: any of their bits set makes a private file not private.
const OPEN_BITS: u32 = 0o077;

/// Logs a warning for every secret or state file the group or others can read or write.
pub(super) fn warn_if_open(config: &Config) {
    for (what, path) in private_files(config) {
        if let Some(mode) = open_mode(&path) {
            tracing::warn!(
                file = %path.display(),
                mode = %format_args!("{mode:04o}"),
                "{what} is readable or writable by group or others; make it owner-only: chmod 600 {}",
                path.display()
            );
        }
    }
}

/// The file's permission bits when group or others have any; `None` when private or missing
/// (a missing optional file, e.g. a rotated token not yet written, is no risk).
fn open_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & OPEN_BITS != 0).then_some(mode)
}

/// Every file the config names that holds a secret or state, with what it is for.
fn private_files(config: &Config) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let mut secret = |what: String, source: Option<&SecretSource>| {
        if let Some(SecretSource::File(path)) = source {
            files.push((what, path.clone()));
        }
    };
    for account in &config.accounts {
        let name = &account.name;
        match &account.oauth2 {
            Some(oauth) => {
                secret(format!("the OAuth2 refresh token file of account `{name}`"), Some(&oauth.refresh_token));
                secret(format!("the OAuth2 client secret file of account `{name}`"), oauth.client_secret.as_ref());
            }
            None => secret(format!("the password file of account `{name}`"), Some(&account.password)),
        }
    }
    for hook in config.webhooks.values() {
        secret(format!("the secret file of webhook `{}`", hook.name), hook.secret.as_ref());
    }
    for account in &config.accounts {
        if let Some(oauth) = &account.oauth2 {
            files.push((format!("the rotated OAuth2 token of account `{}`", account.name), oauth.store.clone()));
        }
    }
    let Some(state) = config.state.file() else { return files };
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut name = state.as_os_str().to_owned();
        name.push(suffix);
        files.push(("the state file".to_owned(), PathBuf::from(name)));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_open_to_group_or_others_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "x").unwrap();
        for (mode, open) in [(0o600, None), (0o400, None), (0o640, Some(0o640)), (0o604, Some(0o604))] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(open_mode(&file), open, "{mode:o}");
        }
        assert_eq!(open_mode(&dir.path().join("missing")), None);
    }

    #[test]
    fn secret_and_state_files_are_listed() {
        let yaml = "state: s/state.db\naccounts:\n  w:\n    imap: { host: h }\n    username: u\n    password_file: pw\n\
                    webhooks:\n  h:\n    url: https://example.com/\n    secret_file: hook.key\n";
        let config = Config::from_yaml(yaml, Path::new("/etc/tidings/tidings.yaml")).unwrap();
        let files = private_files(&config);
        let paths: Vec<String> = files.iter().map(|(_, p)| p.display().to_string()).collect();
        for expected in
            ["/etc/tidings/pw", "/etc/tidings/hook.key", "/etc/tidings/s/state.db-wal", "/etc/tidings/s/state.db.lock"]
        {
            assert!(paths.iter().any(|p| p == expected), "{expected} not in {paths:?}");
        }
        assert!(files.iter().any(|(what, _)| what == "the password file of account `w`"), "{files:?}");
    }
}
