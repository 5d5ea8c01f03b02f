//! Named commands: programs rules may run with `command(name, data)`.
//!
//! A command is an argument vector, never a shell string: no rule text and no event field is
//! ever parsed by a shell. The program is found when the config is loaded (on PATH for a bare
//! name, else as a file), so a typo fails `tidings check`, not the first event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostics::{self as read, Fields, Problems};
use super::tree::{Key, Node, Pos, Value};
use super::webhook::{positive_duration, retries};

/// A validated command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The name rules use.
    pub name: String,
    /// The argument vector as written; `run[0]` is the program.
    pub run: Vec<String>,
    /// The program found for `run[0]`: an absolute path.
    pub program: PathBuf,
    /// How long it may run before it (and every process it started) is killed.
    pub timeout: Duration,
    /// Attempts before the event is dead-lettered.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles from there, up to an hour.
    pub retry_delay: Duration,
    /// Environment variables set for it, on top of the few it inherits.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub dir: PathBuf,
}

const COMMAND_KEYS: &[&str] = &["run", "timeout", "max_attempts", "retry_delay", "env", "dir"];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Validates one entry of `commands:`; `base` is the config's directory, against which relative
/// paths are read.
pub fn validate(key: &Key, node: &Node, base: &Path, problems: &mut Problems) -> Option<Command> {
    let name = key.name.as_str();
    let what = format!("command `{name}`");
    let valid_name = name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid_name {
        problems.hint(
            key.pos,
            format!("{what}: not a command name"),
            "use letters, digits, - _ . (rules call it by this name)",
        );
    }
    let mut fields = Fields::read(node, &what, COMMAND_KEYS, problems)?;
    fields.pos = key.pos;
    let run = match fields.get("run") {
        Some(n) => argv(n, &what, problems),
        None => {
            problems.hint(
                fields.pos,
                format!("{what} has no `run`"),
                "give the program and its arguments as a list, e.g. `run: [mbsync, -a]`",
            );
            None
        }
    };
    let dir = match fields.get("dir") {
        Some(n) => directory(n, &what, base, problems),
        None => Some(base.to_owned()),
    };
    let env = fields.get("env").map_or(Some(Vec::new()), |n| env(n, &what, problems));
    let program = run.as_ref().and_then(|(run, pos)| program(&run[0], *pos, &what, base, problems));
    let timeout = positive_duration(fields.get("timeout"), &format!("{what}: timeout"), DEFAULT_TIMEOUT, problems);
    let (max_attempts, retry_delay) = retries(&fields, &what, problems);
    valid_name.then_some(())?;
    Some(Command {
        name: name.to_owned(),
        run: run?.0,
        program: program?,
        timeout: timeout?,
        max_attempts: max_attempts?,
        retry_delay: retry_delay?,
        env: env?,
        dir: dir?,
    })
}

/// The argument vector, with the position of the program.
fn argv(node: &Node, what: &str, problems: &mut Problems) -> Option<(Vec<String>, Pos)> {
    let what = format!("{what}: run");
    let Value::Seq(items) = &node.value else {
        problems.hint(
            node.pos,
            format!("{what} must be a list (the program, then its arguments), found {}", node.value.kind()),
            "no shell reads it: write `run: [mbsync, -a]`, not `run: \"mbsync -a\"`",
        );
        return None;
    };
    let Some(first) = items.first() else {
        problems.hint(node.pos, format!("{what} is empty"), "give at least the program");
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        // Arguments may be empty strings; the program may not.
        match &item.value {
            Value::Str(s) if !s.contains('\0') => out.push(s.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                problems.hint(
                    item.pos,
                    format!("{what}: arguments must be strings, found {}", item.value.kind()),
                    "quote it",
                );
                return None;
            }
            other => {
                problems.error(item.pos, format!("{what}: arguments must be strings, found {}", other.kind()));
                return None;
            }
        }
    }
    if out[0].trim().is_empty() {
        problems.error(first.pos, format!("{what}: the program cannot be empty"));
        return None;
    }
    Some((out, first.pos))
}

/// Finds the program: a bare name on PATH, a path with a `/` as a file (relative to the config's
/// directory).
fn program(written: &str, pos: Pos, what: &str, base: &Path, problems: &mut Problems) -> Option<PathBuf> {
    if written.contains('/') {
        let path = base.join(written);
        if is_executable(&path) {
            return Some(path);
        }
        problems.hint(
            pos,
            format!("{what}: program `{}` is not an executable file", path.display()),
            "a relative path is read from the config's directory; check the path and its x permission",
        );
        return None;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join(written)).find(|p| p.is_absolute() && is_executable(p));
    if found.is_none() {
        problems.hint(
            pos,
            format!("{what}: program `{written}` is not found on PATH"),
            "install it, or write its absolute path",
        );
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn directory(node: &Node, what: &str, base: &Path, problems: &mut Problems) -> Option<PathBuf> {
    let dir = base.join(read::string(node, &format!("{what}: dir"), problems)?);
    if dir.is_dir() {
        return Some(dir);
    }
    problems.hint(
        node.pos,
        format!("{what}: dir `{}` is not a directory", dir.display()),
        "a relative path is read from the config's directory",
    );
    None
}

fn env(node: &Node, what: &str, problems: &mut Problems) -> Option<Vec<(String, String)>> {
    let what = format!("{what}: env");
    let Value::Map(entries) = &node.value else {
        problems.error(node.pos, format!("{what} must be a map of variable name to value"));
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let name = key.name.as_str();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.error(key.pos, format!("{what}: `{name}` is not a variable name"));
            ok = false;
        } else if name.starts_with("TIDINGS_") {
            problems.hint(
                key.pos,
                format!("{what}: `{name}` cannot be set here"),
                "tidings sets TIDINGS_* variables itself",
            );
            ok = false;
        }
        match &value.value {
            Value::Str(s) if !s.contains('\0') => out.push((name.to_owned(), s.clone())),
            other => {
                problems.hint(
                    value.pos,
                    format!("{what}: {name} must be a string, found {}", other.kind()),
                    "quote it",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
