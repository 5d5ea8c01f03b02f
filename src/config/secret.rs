//! Secrets: where a password comes from, and a wrapper that never shows it.
//!
//! A secret is read once, when the config is resolved, before any connection; from then on it
//! lives in a [`Secret`], whose `Debug` and `Display` print `[redacted]`, so that a stray
//! `{:?}` in a log line or an error cannot leak it.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The value itself, for the one place that must send it (a login, a signature).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret is read from. Exactly one per account or endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file; trailing newlines are dropped, the rest is the secret.
    File(PathBuf),
    /// A command run with `sh -c` (e.g. `pass show mail/work`); its first line is the secret.
    Command(String),
}

/// Why a secret could not be read. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The variable is unset or not UTF-8.
    #[error("cannot read secret from environment variable {name}: it is not set")]
    EnvUnset {
        /// Variable name.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read secret file {path}")]
    File {
        /// File path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The command could not be started.
    #[error("cannot run secret command `{command}`")]
    CommandStart {
        /// The command line.
        command: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The command ran and failed; its stderr is not shown, as it may echo the secret.
    #[error("cannot read secret from command `{command}`: it exited with {status}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The source produced nothing.
    #[error("cannot use secret from {source_name}: it is empty")]
    Empty {
        /// Which source, e.g. `file /run/secrets/pw`.
        source_name: String,
    },
    /// The source holds something other than the secret expected (a JSON file without the
    /// field wanted, say). The reason names fields, never values that may be secret.
    #[error("cannot use secret from {source_name}: {reason}")]
    Malformed {
        /// Which source.
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl SecretSource {
    /// Reads the secret now. Blocking: call it at start-up, before connections are made.
    pub fn resolve(&self) -> Result<Secret<String>, Error> {
        let value = match self {
            SecretSource::Env(name) => std::env::var(name).map_err(|_| Error::EnvUnset { name: name.clone() })?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|source| Error::File { path: path.clone(), source })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            SecretSource::Command(command) => run_command(command)?,
        };
        if value.is_empty() {
            return Err(Error::Empty { source_name: self.to_string() });
        }
        Ok(Secret::new(value))
    }
}

fn run_command(command: &str) -> Result<String, Error> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| Error::CommandStart { command: command.to_owned(), source })?;
    if !output.status.success() {
        return Err(Error::CommandFailed { command: command.to_owned(), status: output.status });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("").to_owned())
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
            SecretSource::Command(command) => write!(f, "command `{command}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let secret = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn resolves_file_and_command_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(SecretSource::File(path).resolve().unwrap().expose(), "s3cret");
        let from_cmd = SecretSource::Command("printf 'abc\\nignored'".into()).resolve().unwrap();
        assert_eq!(from_cmd.expose(), "abc");
        let failed = SecretSource::Command("exit 3".into()).resolve().unwrap_err();
        assert!(failed.to_string().contains("exited with"), "{failed}");
        let unset = SecretSource::Env("TIDINGS_TEST_SURELY_UNSET_VAR".into()).resolve().unwrap_err();
        assert!(unset.to_string().contains("TIDINGS_TEST_SURELY_UNSET_VAR"), "{unset}");
        let missing = SecretSource::File(dir.path().join("nope")).resolve().unwrap_err();
        assert!(missing.to_string().starts_with("cannot read secret file"), "{missing}");
    }
}
