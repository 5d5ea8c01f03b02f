//! Configuration, in two stages (as ripgrep does it).
//!
//! Stage one ([`tree`]) is the YAML as written, every node with its line and column. Stage two
//! (this module and its per-section files) validates that tree into a typed [`Config`]. Every
//! problem found is collected, so one `tidings check` lists all of them, each with file, line,
//! column and a hint; an invalid config never reaches the runtime.
//!
//! This module reads files and the environment only; it never connects anywhere. Secrets are
//! read by [`Config::resolve_secrets`], which the runtime calls before the first connection.
//!
//! Layer: data (see the map in lib.rs). Settings only: it imports no mechanism, stage or
//! orchestration module, so a validated config holds no connection and no token cache (whoever
//! runs an account makes its [`crate::auth::Credentials`]).

pub mod account;
pub mod budget;
pub mod command;
pub mod diagnostics;
pub mod duration;
pub mod files;
pub mod fingerprint;
pub mod fleet;
pub mod monitor;
pub mod oauth2;
pub mod provider;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod state;
pub mod template;
pub mod tree;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use account::{Account, Backfill, Mailbox, Server, Tls, Watch};
pub use budget::ConnectionPlan;
pub use command::Command;
pub use diagnostics::Problem;
pub use fingerprint::Fingerprint;
pub use fleet::Fleet;
pub use monitor::{AlertMail, Alerts, Http, Thresholds};
pub use oauth2::OAuth2;
pub use provider::Provider;
pub use retention::Retention;
pub use schedule::{CatchUp, Run, Schedule, Search};
pub use secret::{Secret, SecretSource};
pub use state::State;
pub use template::Template;
pub use webhook::{Include, Webhook};

use diagnostics::{Fields, Problems};

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Accounts, in the order written.
    pub accounts: Vec<Account>,
    /// The directory of rule scripts.
    pub rules_dir: PathBuf,
    /// The directory of plugin modules that rules import.
    pub plugins_dir: PathBuf,
    /// Where the store lives: a SQLite file, or a shared PostgreSQL database.
    pub state: State,
    /// Webhook endpoints by name.
    pub webhooks: BTreeMap<String, Webhook>,
    /// Commands rules may run, by name.
    pub commands: BTreeMap<String, Command>,
    /// Schedules, in the order written.
    pub schedules: Vec<Schedule>,
    /// The sandbox every rule evaluation runs in.
    pub limits: Limits,
    /// The HTTP listener for `/healthz` and `/metrics`, when asked for.
    pub http: Option<Http>,
    /// When a watcher or the outbox counts as unhealthy.
    pub health: Thresholds,
    /// Lease timings with a shared (PostgreSQL) store.
    pub fleet: Fleet,
    /// Where alerts go, when anywhere.
    pub alerts: Option<Alerts>,
    /// How long the store keeps settled actions, history and the reply log.
    pub retention: Retention,
    /// The files and directories named, checked on disk by [`Config::check_files`].
    pub files: files::Files,
}

/// Bounds on one rule evaluation, so a runaway rule cannot stall a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Rhai operations per evaluation.
    pub operations: u64,
    /// Wall-clock time per evaluation.
    pub wall_time: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { operations: 1_000_000, wall_time: std::time::Duration::from_millis(100) }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `--config`, no `$TIDINGS_CONFIG`, and nothing in the XDG config dir.
    #[error("cannot find a config file: none given with --config or $TIDINGS_CONFIG, and {tried} does not exist")]
    NotFound {
        /// The default path that was tried.
        tried: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The file is read but wrong; every problem found is listed.
    #[error("{}", Invalid { path, problems })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Everything wrong with it, in file order.
        problems: Vec<Problem>,
    },
    /// A secret could not be read (the message never contains the secret).
    #[error("cannot resolve the secret of {owner}")]
    Secret {
        /// e.g. "account `work`".
        owner: String,
        /// What went wrong.
        #[source]
        source: secret::Error,
    },
}

/// Formats the problems of an invalid config, one per line with `file:line:col:`.
struct Invalid<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "cannot load config {}: {n} problem{}", self.path.display(), if n == 1 { "" } else { "s" })?;
        for problem in self.problems {
            write!(f, "\n  {}:{problem}", self.path.display())?;
        }
        Ok(())
    }
}

const TOP_KEYS: &[&str] = &[
    "accounts",
    "rules",
    "plugins",
    "state",
    "webhooks",
    "commands",
    "schedules",
    "limits",
    "http",
    "health",
    "alerts",
    "fleet",
    "retention",
];
const LIMIT_KEYS: &[&str] = &["operations", "wall_time"];
const RULES_KEYS: &[&str] = &["dir", "allow_empty"];

impl Config {
    /// Finds the config: `explicit` (from `--config` or `$TIDINGS_CONFIG`), else the XDG config
    /// dir's `tidings/tidings.yaml`.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Error> {
        if let Some(path) = explicit {
            return Ok(path.to_owned());
        }
        let tried = xdg_dir("XDG_CONFIG_HOME", ".config").join("tidings").join("tidings.yaml");
        if tried.exists() { Ok(tried) } else { Err(Error::NotFound { tried }) }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        Config::from_yaml(&text, path)
    }

    /// Validates YAML text; `path` names it in messages and anchors relative paths.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, Error> {
        let invalid = |problems: Vec<Problem>| Error::Invalid { path: path.to_owned(), problems };
        let root = tree::parse(text).map_err(|(pos, message)| {
            invalid(vec![Problem { pos, message: format!("not valid YAML: {message}"), hint: None }])
        })?;
        let base = base_dir(path);
        let mut problems = Problems::default();
        let config = validate(&root, path, &base, &mut problems);
        let Problems(mut problems, named) = problems;
        let config = config.map(|config| Config { files: files::Files { named, ..config.files }, ..config });
        problems.sort_by_key(|p| (p.pos.line, p.pos.column));
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(invalid(problems)),
        }
    }

    /// Reads every secret now, so a missing password stops start-up instead of the first login.
    pub fn resolve_secrets(&self) -> Result<Secrets, Error> {
        let mut secrets = Secrets::default();
        for account in &self.accounts {
            let name = &account.name;
            let owner = match &account.oauth2 {
                Some(_) => format!("account `{name}` (its OAuth2 refresh token; `tidings auth {name}` gets one)"),
                None => format!("account `{name}`"),
            };
            let value = account.password.resolve().map_err(|source| Error::Secret { owner, source })?;
            // The client secret is only sent at the first refresh: check now that it can be read.
            if let Some(oauth) = &account.oauth2 {
                let owner = format!("account `{name}` (its OAuth2 client secret)");
                oauth.read_client_secret().map_err(|source| Error::Secret { owner, source })?;
            }
            secrets.passwords.insert(name.clone(), value);
        }
        for hook in self.webhooks.values() {
            if let Some(source) = &hook.secret {
                let value = source
                    .resolve()
                    .map_err(|source| Error::Secret { owner: format!("webhook `{}`", hook.name), source })?;
                secrets.webhooks.insert(hook.name.clone(), value);
            }
        }
        Ok(secrets)
    }

    /// The account with this name.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }
}

/// Secrets read at start-up, by owner name. Debug shows names only.
#[derive(Debug, Default)]
pub struct Secrets {
    /// Account passwords by account name.
    pub passwords: BTreeMap<String, Secret<String>>,
    /// Webhook signing secrets by endpoint name.
    pub webhooks: BTreeMap<String, Secret<String>>,
}

/// The directory relative paths in the config at `path` are read from: the config's own, made
/// absolute. A bare `--config tidings.yaml` has the parent `""`, which as a command's working
/// directory fails every command; and an absolute base means the same wherever it is used later.
fn base_dir(path: &Path) -> PathBuf {
    // `absolute` only fails without a working directory; the relative form is all there is then.
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    path.parent().filter(|dir| !dir.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_owned)
}

fn validate(root: &tree::Node, path: &Path, base: &Path, problems: &mut Problems) -> Option<Config> {
    let top = Fields::read(root, "the config", TOP_KEYS, problems)?;
    // A default is reported where its key would be: `rules: { allow_empty: true }`, else 1:1.
    let dir = |key: &str, node: Option<&tree::Node>, default: &str, problems: &mut Problems| match node {
        Some(n) => diagnostics::string(n, key, problems).map(|p| (base.join(p), n.pos, true)),
        None => Some((base.join(default), top.get(key).map_or(top.pos, |n| n.pos), false)),
    };
    let (rules_node, allow_empty) = match top.get("rules") {
        Some(n) if matches!(n.value, tree::Value::Map(_)) => rules_block(n, problems),
        other => (other, Some(false)),
    };
    let rules_dir = dir("rules", rules_node, "rules", problems);
    let plugins_dir = dir("plugins", top.get("plugins"), "plugins", problems);
    if let Some((path, pos, _)) = &rules_dir {
        problems.name_path(*pos, "rules", path, files::Kind::Dir);
    }
    if let Some((path, pos, given)) = &plugins_dir {
        let kind = if *given { files::Kind::Dir } else { files::Kind::OptionalDir };
        problems.name_path(*pos, "plugins", path, kind);
    }
    let state_dir = xdg_dir("XDG_STATE_HOME", ".local/state").join("tidings");
    let state = match top.get("state") {
        Some(n) => diagnostics::string(n, "state", problems).map(|p| State::parse(&p, base)),
        None => Some(State::File(state_dir.join("state.db"))),
    };
    let mut accounts = Vec::new();
    let mut names = Vec::new();
    if let Some(node) = top.get("accounts") {
        for (key, value) in diagnostics::named_entries(node, "accounts", problems) {
            names.push(key.name.as_str());
            accounts.extend(account::validate(key, value, base, problems));
        }
    }
    // A rotated refresh token from the environment is kept next to the state database.
    if let Some(state) = &state {
        for account in &mut accounts {
            if let Some(oauth2) = account.oauth2.as_mut() {
                oauth2.place_store(&account.name, &state.local_dir(&state_dir));
            }
        }
    }
    let mut webhooks = BTreeMap::new();
    if let Some(node) = top.get("webhooks") {
        for (key, value) in diagnostics::named_entries(node, "webhooks", problems) {
            webhooks.extend(webhook::validate(key, value, base, problems).map(|w| (key.name.clone(), w)));
        }
    }
    let mut commands = BTreeMap::new();
    if let Some(node) = top.get("commands") {
        for (key, value) in diagnostics::named_entries(node, "commands", problems) {
            commands.extend(command::validate(key, value, base, problems).map(|c| (key.name.clone(), c)));
        }
    }
    let mut schedules = Vec::new();
    if let Some(node) = top.get("schedules") {
        for (key, value) in diagnostics::named_entries(node, "schedules", problems) {
            schedules.extend(schedule::validate(key, value, &names, problems));
        }
    }
    let limits = match top.get("limits") {
        Some(node) => limits(node, problems),
        None => Some(Limits::default()),
    };
    let http = match top.get("http") {
        Some(node) => Some(monitor::http(node, problems)?),
        None => None,
    };
    let health = match top.get("health") {
        Some(node) => monitor::thresholds(node, problems)?,
        None => Thresholds::default(),
    };
    let fleet = match top.get("fleet") {
        Some(node) => fleet::validate(node, problems)?,
        None => Fleet::default(),
    };
    let retention = match top.get("retention") {
        Some(node) => retention::validate(node, problems),
        None => Some(Retention::default()),
    };
    let alerts = match top.get("alerts") {
        Some(node) => {
            let endpoints: Vec<&str> = webhooks.keys().map(String::as_str).collect();
            let alerts = monitor::alerts(node, &endpoints, &names, problems)?;
            let sender = alerts.mail.as_ref().and_then(|m| accounts.iter().find(|a| a.name == m.account));
            if sender.is_some_and(|a| a.smtp.is_none()) {
                problems.hint(
                    node.pos,
                    "alerts: mail: the account has no `smtp:` server to send with",
                    "add `smtp:` to the account, or send alerts with another one",
                );
                return None;
            }
            Some(alerts)
        }
        None => None,
    };
    Some(Config {
        limits: limits?,
        http,
        health,
        fleet,
        alerts,
        retention: retention?,
        path: path.to_owned(),
        accounts,
        files: files::Files {
            named: Vec::new(),
            rules_pos: rules_dir.as_ref().map(|(_, pos, _)| *pos).unwrap_or_default(),
            allow_empty: allow_empty?,
        },
        rules_dir: rules_dir?.0,
        plugins_dir: plugins_dir?.0,
        state: state?,
        webhooks,
        commands,
        schedules,
    })
}

/// `rules: { dir: DIR, allow_empty: true }`: the `dir` node (if written) and `allow_empty`.
fn rules_block<'a>(node: &'a tree::Node, problems: &mut Problems) -> (Option<&'a tree::Node>, Option<bool>) {
    let Some(fields) = Fields::read(node, "rules", RULES_KEYS, problems) else { return (None, None) };
    let allow_empty = match fields.get("allow_empty") {
        Some(n) => diagnostics::boolean(n, "rules: allow_empty", problems),
        None => Some(false),
    };
    (fields.get("dir"), allow_empty)
}

fn limits(node: &tree::Node, problems: &mut Problems) -> Option<Limits> {
    let fields = Fields::read(node, "limits", LIMIT_KEYS, problems)?;
    let mut limits = Limits::default();
    if let Some(n) = fields.get("operations") {
        match n.value {
            tree::Value::Int(ops) if ops > 0 => limits.operations = ops.unsigned_abs(),
            _ => {
                problems.error(n.pos, "limits: operations must be a positive number");
                return None;
            }
        }
    }
    if let Some(n) = fields.get("wall_time") {
        limits.wall_time = diagnostics::duration(n, "limits: wall_time", problems)?;
    }
    Some(limits)
}

/// `$VAR`, else `$HOME/fallback`, as the XDG base directory spec says.
pub fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(fallback),
    }
}
