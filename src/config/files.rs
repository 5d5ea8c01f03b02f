//! The files and directories a config names, checked on disk.
//!
//! Validation only records them (with where they were written): the config is also loaded by
//! commands that must work while a file is missing (`tidings status` shows the daemon's error
//! about it). `tidings check` and the daemon's start and reload call [`Config::check_files`],
//! so a missing CA file or rules directory stops them with its line instead of failing a login
//! later, and a rules directory with nothing in it is not a daemon that silently does nothing.

use std::path::{Path, PathBuf};

use super::diagnostics::Problems;
use super::tree::Pos;
use super::{Config, Error, Problem};

/// A file or directory named by the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    /// Where it was written (the config's start for a default).
    pub pos: Pos,
    /// The key that names it, e.g. ``account `work`: ca_file``.
    pub what: String,
    /// The path, made absolute against the config's directory.
    pub path: PathBuf,
    /// What must be there.
    pub kind: Kind,
}

/// What a named path must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A readable file.
    File,
    /// A readable file holding a secret: checked only when secrets are read.
    Secret,
    /// A readable directory.
    Dir,
    /// A directory that may be absent (the default plugins folder), but readable if there.
    OptionalDir,
}

/// The named paths, and what the rules directory must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    /// Every path named, in file order.
    pub named: Vec<Named>,
    /// Where `rules:` was written (1:1 when it was not).
    pub rules_pos: Pos,
    /// `rules: { dir: ..., allow_empty: true }`: no live rules is what the user wants.
    pub allow_empty: bool,
}

impl Problems {
    /// Records a path the config names, for [`Config::check_files`].
    pub fn name_path(&mut self, pos: Pos, what: impl Into<String>, path: &Path, kind: Kind) {
        self.1.push(Named { pos, what: what.into(), path: path.to_owned(), kind });
    }
}

impl Config {
    /// Checks on disk every file and directory the config names: each must exist and be
    /// readable (secret files only when `secrets`). With `live_rules` (the live rules compiled
    /// from the rules directory), none is a problem too unless schedules give the config work
    /// or `allow_empty` says it is meant.
    pub fn check_files(&self, secrets: bool, live_rules: Option<usize>) -> Result<(), Error> {
        let mut problems: Vec<Problem> =
            self.files.named.iter().filter(|n| secrets || n.kind != Kind::Secret).filter_map(check).collect();
        // A missing rules directory is reported as missing, not also as empty.
        let empty = live_rules == Some(0) && self.rules_dir.is_dir();
        if empty && self.schedules.is_empty() && !self.files.allow_empty {
            let dir = self.rules_dir.display();
            problems.push(Problem {
                pos: self.files.rules_pos,
                message: format!("rules: `{dir}` holds no live rule: the daemon would watch and do nothing"),
                hint: Some(format!(
                    "put rule files (*.rhai) directly in it, or write `rules: {{ dir: {dir}, allow_empty: true }}` \
                     to run without rules on purpose"
                )),
            });
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.sort_by_key(|p| (p.pos.line, p.pos.column));
        Err(Error::Invalid { path: self.path.clone(), problems })
    }
}

/// The problem with one named path, if any.
fn check(named: &Named) -> Option<Problem> {
    let Named { pos, what, path, kind } = named;
    let shown = path.display();
    let dir = matches!(kind, Kind::Dir | Kind::OptionalDir);
    let problem = |message: String, hint: &str| Problem { pos: *pos, message, hint: Some(hint.to_owned()) };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if *kind == Kind::OptionalDir {
                return None;
            }
            let hint = match (what.as_str(), dir) {
                (w, _) if w.ends_with("refresh_token_file") => {
                    "run `tidings auth ACCOUNT` to get a refresh token into it"
                }
                ("rules", _) => {
                    "create it and put rule files (*.rhai) in it; a relative path is read from the config's directory"
                }
                (_, true) => "create it, or correct the path; a relative path is read from the config's directory",
                (_, false) => "correct the path; a relative path is read from the config's directory",
            };
            return Some(problem(format!("{what}: `{shown}` does not exist"), hint));
        }
        Err(e) => return Some(problem(format!("{what}: cannot read `{shown}`: {e}"), "check the path's permissions")),
    };
    if dir != metadata.is_dir() {
        let (is, want) = if dir { ("a file", "a directory") } else { ("a directory", "a file") };
        return Some(problem(format!("{what}: `{shown}` is {is}, not {want}"), "correct the path"));
    }
    let readable = if dir { std::fs::read_dir(path).map(|_| ()) } else { std::fs::File::open(path).map(|_| ()) };
    readable.err().map(|e| {
        problem(format!("{what}: cannot read `{shown}`: {e}"), "let the user tidings runs as read it (chmod/chown)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, yaml: &str) -> Config {
        Config::from_yaml(yaml, &dir.join("tidings.yaml")).unwrap()
    }

    fn problems(result: Result<(), Error>) -> Vec<Problem> {
        match result {
            Err(Error::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    const ACCOUNT: &str =
        "accounts:\n  a:\n    imap: { host: h }\n    username: u\n    password_file: pw\n    ca_file: ca.pem\n";

    #[test]
    fn missing_files_are_named_with_their_key_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let found = problems(config(dir.path(), ACCOUNT).check_files(true, None));
        let messages: Vec<String> = found.iter().map(|p| format!("{}: {}", p.pos, p.message)).collect();
        assert_eq!(messages.len(), 3, "{messages:#?}");
        assert!(
            messages[0].starts_with("1:1: rules: `") && messages[0].ends_with("/rules` does not exist"),
            "{messages:?}"
        );
        assert!(
            messages[1].starts_with("5:20: account `a`: password_file") && messages[1].contains("/pw`"),
            "{messages:?}"
        );
        assert!(
            messages[2].starts_with("6:14: account `a`: ca_file") && messages[2].contains("ca.pem"),
            "{messages:?}"
        );
        // The password file is a secret: not looked for with --skip-secrets.
        let skipped = problems(config(dir.path(), ACCOUNT).check_files(false, None));
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(!skipped.iter().any(|p| p.message.contains("password_file")));
    }

    #[test]
    fn present_files_pass_and_the_default_plugins_folder_may_be_absent() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["pw", "ca.pem"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        assert!(config(dir.path(), ACCOUNT).check_files(true, Some(1)).is_ok());
        let named = problems(config(dir.path(), &format!("plugins: mods\n{ACCOUNT}")).check_files(true, Some(1)));
        assert_eq!(named.len(), 1, "{named:?}");
        assert!(named[0].message.starts_with("plugins: `") && named[0].message.contains("mods"), "{named:?}");
        let file_as_dir = problems(config(dir.path(), &format!("rules: pw\n{ACCOUNT}")).check_files(true, Some(1)));
        assert!(file_as_dir[0].message.ends_with("is a file, not a directory"), "{file_as_dir:?}");
    }

    #[test]
    fn no_live_rules_is_a_problem_unless_asked_for_or_scheduled() {
        let dir = tempfile::tempdir().unwrap();
        let missing = problems(config(dir.path(), "accounts: {}\n").check_files(true, Some(0)));
        assert_eq!(missing.len(), 1, "missing, not also empty: {missing:?}");
        assert!(missing[0].message.ends_with("does not exist"), "{missing:?}");
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        let empty = problems(config(dir.path(), "accounts: {}\n").check_files(true, Some(0)));
        assert_eq!(empty.len(), 1, "{empty:?}");
        assert!(empty[0].message.contains("holds no live rule"), "{empty:?}");
        assert!(empty[0].hint.as_deref().unwrap_or_default().contains("allow_empty: true"), "{empty:?}");
        let asked = config(dir.path(), "rules: { dir: rules, allow_empty: true }\naccounts: {}\n");
        assert_eq!(asked.rules_dir, dir.path().join("rules"));
        assert!(asked.check_files(true, Some(0)).is_ok());
        let scheduled = "accounts:\n  a:\n    imap: { host: h }\n    username: u\n    password_env: P\n\
                         schedules:\n  s:\n    cron: \"0 7 * * *\"\n    account: a\n    rule: sweeps/x.rhai\n";
        assert!(config(dir.path(), scheduled).check_files(true, Some(0)).is_ok());
    }
}
