//! Hot reload: the rule set in force, and the poller that replaces it when files change.
//!
//! The [`Reloader`] checks the rules directory (live rules, scheduled rules, data files) and the
//! plugins directory every [`POLL_INTERVAL`], by file modification time and size (no OS file
//! watcher: polling a few small files is cheap and works on every filesystem, network mounts
//! included). When something changed it compiles a whole new [`RuleSet`] on a blocking thread;
//! if that compiles, it is swapped in at once and the next batch of mail uses it, and if not,
//! every error is logged with file:line:column and the previous set keeps running. Watchers
//! read [`CurrentRules`] once per batch, so a swap never touches an IMAP session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Error, RuleSet};
use crate::config::Config;

/// How often the files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// After a change is seen, the files must stay the same this long before they are compiled,
/// so that a file caught half-written is not reported as broken.
const SETTLE: Duration = Duration::from_millis(200);

/// At most this many settle waits: a file rewritten without pause is compiled anyway.
const MAX_SETTLE: u32 = 10;

/// The rule set in force. Clones are cheap and all see every swap.
#[derive(Clone)]
pub struct CurrentRules(watch::Receiver<Arc<RuleSet>>);

impl CurrentRules {
    /// Rules that never change (`run --once`, tools).
    pub fn fixed(rules: Arc<RuleSet>) -> CurrentRules {
        // The sender is dropped: a receiver still reads the last value it sent.
        CurrentRules(watch::channel(rules).1)
    }

    /// The set in force now. A caller keeps it for one batch of mail, so each message is
    /// evaluated by one whole set, never half an old one and half a new one.
    pub fn get(&self) -> Arc<RuleSet> {
        self.0.borrow().clone()
    }
}

/// What one check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// No file changed.
    Unchanged,
    /// Files changed and the new set, with this many live rules, is in force.
    Reloaded(usize),
    /// Files changed but did not compile; the previous set is still in force.
    Rejected,
}

/// Watches the rule, data and plugin files and swaps in a new rule set when they change.
pub struct Reloader {
    config: Arc<Config>,
    current: watch::Sender<Arc<RuleSet>>,
    /// The files as they were when the set in force (or the last rejected one) was compiled.
    seen: Snapshot,
}

impl Reloader {
    /// Compiles the rules (an error here stops start-up) and returns the reloader with the
    /// handle every watcher reads the rules through.
    pub fn start(config: &Config) -> Result<(Reloader, CurrentRules), Error> {
        // Taken before compiling: a change made while compiling is seen by the first check.
        let seen = Snapshot::take(config);
        let rules = Arc::new(RuleSet::compile(config)?);
        let (current, receiver) = watch::channel(rules);
        Ok((Reloader { config: Arc::new(config.clone()), current, seen }, CurrentRules(receiver)))
    }

    /// Checks every [`POLL_INTERVAL`] until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.changed() => continue,
            }
            self.check().await;
        }
    }

    /// One check: when files changed, compiles them and swaps the new set in, or logs why not.
    pub async fn check(&mut self) -> Check {
        let (config, seen) = (self.config.clone(), self.seen.clone());
        let compiled = tokio::task::spawn_blocking(move || {
            let now = Snapshot::take(&config);
            (now != seen).then(|| {
                let now = now.settle(&config);
                let compiled = RuleSet::compile(&config);
                (now, compiled)
            })
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let Some((now, compiled)) = compiled else { return Check::Unchanged };
        let changed = self.seen.changes(&now);
        self.seen = now;
        match compiled {
            Ok(rules) => {
                let live = rules.live.len();
                let (scheduled, plugins) = (rules.scheduled.len(), rules.plugins_compiled());
                self.current.send_replace(Arc::new(rules));
                tracing::info!(rules = live, scheduled, plugins, changed = %changed, "rules reloaded");
                Check::Reloaded(live)
            }
            Err(Error::Compile(errors)) => {
                for e in &errors {
                    let at = format!("{}:{}:{}", e.file.display(), e.line, e.column);
                    tracing::error!(at = %at, error = %e.message, "rule does not compile; the previous rules keep running");
                }
                tracing::warn!(failed = errors.len(), changed = %changed, "rules not reloaded");
                Check::Rejected
            }
            Err(error) => {
                tracing::error!(error = %crate::causes::error_chain(&error), "rules not reloaded; the previous rules keep running");
                Check::Rejected
            }
        }
    }
}

/// Modification time and size of every file that can change the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Snapshot(BTreeMap<PathBuf, (Option<SystemTime>, u64)>);

/// How deep folders are searched: deeper is a mistake (or a loop), not a rule layout.
const MAX_DEPTH: usize = 8;

impl Snapshot {
    fn take(config: &Config) -> Snapshot {
        let mut files = BTreeMap::new();
        scan(&config.rules_dir, MAX_DEPTH, &["rhai"], &mut files);
        scan(&config.plugins_dir, MAX_DEPTH, &["rhai"], &mut files);
        scan(&config.rules_dir.join(super::data::DIR), 0, &["txt", "yaml", "yml"], &mut files);
        Snapshot(files)
    }

    /// Waits until the files stop changing, then returns them as they are.
    fn settle(mut self, config: &Config) -> Snapshot {
        for _ in 0..MAX_SETTLE {
            std::thread::sleep(SETTLE);
            let again = Snapshot::take(config);
            if again == self {
                break;
            }
            self = again;
        }
        self
    }

    /// The files added, changed or removed since `self`, for the log.
    fn changes(&self, now: &Snapshot) -> String {
        let mut names: Vec<String> = now.0.iter().filter(|(p, v)| self.0.get(*p) != Some(v)).map(name).collect();
        names.extend(self.0.keys().filter(|p| !now.0.contains_key(*p)).map(|p| format!("{} (removed)", p.display())));
        names.join(", ")
    }
}

fn name((path, _): (&PathBuf, &(Option<SystemTime>, u64))) -> String {
    path.display().to_string()
}

/// Adds the files under `dir` with one of `extensions` to `files`. Only what compiling reads
/// counts: editor swap and backup files (`.name.swp`, `name~`) and fixtures (`rules/tests/`)
/// are not rules, and saving in an editor should reload once, not thrice.
fn scan(dir: &Path, depth: usize, extensions: &[&str], files: &mut BTreeMap<PathBuf, (Option<SystemTime>, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        // `file_type` does not follow symlinks: a symlinked folder is not searched (no loops),
        // while a symlinked file is followed to its target by `metadata` below.
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if depth > 0 && !hidden {
                scan(&path, depth - 1, extensions, files);
            }
            continue;
        }
        let relevant = path.extension().is_some_and(|e| extensions.iter().any(|x| e == *x));
        if hidden || !relevant {
            continue;
        }
        let (modified, size) = match std::fs::metadata(&path) {
            Ok(meta) => (meta.modified().ok(), meta.len()),
            Err(_) => (None, 0),
        };
        files.insert(path, (modified, size));
    }
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
