//! `state:`, where the store lives: a SQLite file (one machine, the default) or a shared
//! PostgreSQL database (`postgres://user@host/db`, a fleet of instances).

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum State {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL URL (`postgres://` or `postgresql://`); it may hold a password, so it is
    /// never shown as written (its `Display` and `Debug` hide the password).
    Postgres(String),
}

impl State {
    /// Reads `state:` as written, relative paths against `base`.
    pub fn parse(written: &str, base: &Path) -> State {
        if written.starts_with("postgres://") || written.starts_with("postgresql://") {
            State::Postgres(written.to_owned())
        } else {
            State::File(base.join(written))
        }
    }

    /// The SQLite file, when the store is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            State::File(path) => Some(path),
            State::Postgres(_) => None,
        }
    }

    /// A directory for what is kept beside the store (rotated OAuth2 tokens): the SQLite
    /// file's, or the user's state directory with a shared store.
    pub fn local_dir(&self, default: &Path) -> PathBuf {
        match self {
            State::File(path) => path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            State::Postgres(_) => default.to_path_buf(),
        }
    }
}

/// The URL without its password (`postgres://user:***@host/db`), for messages and logs.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "postgres://***".into() };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = tail.split_once('?').map_or(tail, |(path, _)| path);
    format!("{scheme}://{authority}/{tail}")
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::File(path) => write!(f, "{}", path.display()),
            State::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::File(path) => f.debug_tuple("File").field(path).finish(),
            State::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_a_shared_store_and_anything_else_a_file() {
        let base = Path::new("/etc/tidings");
        assert_eq!(State::parse("var/state.db", base), State::File("/etc/tidings/var/state.db".into()));
        assert_eq!(State::parse("/s.db", base).file(), Some(Path::new("/s.db")));
        let pg = State::parse("postgresql://t@db:5433/tidings", base);
        assert_eq!(pg, State::Postgres("postgresql://t@db:5433/tidings".into()));
        assert_eq!(pg.file(), None);
        assert_eq!(pg.local_dir(Path::new("/var/lib/x")), Path::new("/var/lib/x"));
    }

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        let state = State::Postgres("postgres://tidings:s3cret@db.example:5432/mail?sslmode=require".into());
        for shown in [state.to_string(), format!("{state:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("tidings:***@db.example:5432/mail"), "{shown}");
        }
        assert_eq!(State::Postgres("postgres://t@h/d".into()).to_string(), "postgres://t@h/d");
    }
}
