//! `retention:`, how long the store keeps what it no longer needs (see `store::retention` and
//! docs/storage.md, "What is stored, for how long, and why"). Every key takes a duration or
//! `forever`; what a key leaves out keeps its default.

use std::time::Duration;

use super::diagnostics::{self, Fields, Problems};
use super::tree::{Node, Value};

const KEYS: &[&str] = &["actions", "history", "rule_failures", "reply_log", "collected", "every"];

/// The default of every kept-for setting: 30 days.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(30 * 86_400);
/// How often the store is pruned by default (and once at start).
pub const DEFAULT_EVERY: Duration = Duration::from_secs(3_600);

/// How long each kind of row is kept; `None`: forever. Failed and uncertain actions are never
/// pruned, and a reply-log row is kept at least as long as its reply's own `days`, whatever
/// these say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Done, suppressed and dropped actions, from when they settled.
    pub actions: Option<Duration>,
    /// Decided messages (`tidings history`) and Gmail's seen message ids (never under 30 days).
    pub history: Option<Duration>,
    /// Rule failures.
    pub rule_failures: Option<Duration>,
    /// Reply-log rows (automatic replies, forwards and sends), past their reply's `days`.
    pub reply_log: Option<Duration>,
    /// Collected items once a digest consumed them (waiting ones are always kept).
    pub collected: Option<Duration>,
    /// How often to prune.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        let keep = Some(DEFAULT_KEEP);
        Retention {
            actions: keep,
            history: keep,
            rule_failures: keep,
            reply_log: keep,
            collected: keep,
            every: DEFAULT_EVERY,
        }
    }
}

/// Reads `retention:`.
pub(super) fn validate(node: &Node, problems: &mut Problems) -> Option<Retention> {
    let fields = Fields::read(node, "retention", KEYS, problems)?;
    let mut retention = Retention::default();
    let mut ok = true;
    for (key, slot) in [
        ("actions", &mut retention.actions),
        ("history", &mut retention.history),
        ("rule_failures", &mut retention.rule_failures),
        ("reply_log", &mut retention.reply_log),
        ("collected", &mut retention.collected),
    ] {
        if let Some(n) = fields.get(key) {
            match kept_for(n, &format!("retention: {key}"), problems) {
                Some(value) => *slot = value,
                None => ok = false,
            }
        }
    }
    if let Some(n) = fields.get("every") {
        match kept_for(n, "retention: every", problems) {
            Some(Some(every)) => retention.every = every,
            Some(None) => {
                problems.hint(n.pos, "retention: every cannot be `forever`", "e.g. `every: 1h`");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(retention)
}

/// A duration longer than zero, or `forever` (`None`).
fn kept_for(node: &Node, what: &str, problems: &mut Problems) -> Option<Option<Duration>> {
    if matches!(&node.value, Value::Str(text) if text.trim() == "forever") {
        return Some(None);
    }
    let duration = diagnostics::duration(node, what, problems)?;
    if duration.is_zero() {
        problems.hint(node.pos, format!("{what} must be longer than zero"), "write e.g. `30d`, or `forever`");
        return None;
    }
    Some(Some(duration))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Error};

    const BASE: &str =
        "accounts:\n  work:\n    imap: { host: imap.example.com }\n    username: me\n    password_env: P\n";

    fn load(extra: &str) -> Result<Config, Error> {
        Config::from_yaml(&format!("{BASE}{extra}"), Path::new("/etc/tidings/tidings.yaml"))
    }

    #[test]
    fn defaults_keep_a_month_and_prune_hourly() {
        let config = load("").unwrap();
        assert_eq!(config.retention, Retention::default());
        assert_eq!(config.retention.actions, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(config.retention.every, Duration::from_secs(3_600));
    }

    #[test]
    fn keys_take_durations_or_forever_and_the_rest_keep_their_defaults() {
        let config = load("retention: { actions: 7d, history: forever, reply_log: 90d, every: 10m }\n").unwrap();
        let r = config.retention;
        assert_eq!(r.actions, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(r.history, None);
        assert_eq!(r.reply_log, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!((r.rule_failures, r.collected), (Some(DEFAULT_KEEP), Some(DEFAULT_KEEP)));
        assert_eq!(r.every, Duration::from_secs(600));
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        for (extra, needle) in [
            ("retention: { actions: 0s }\n", "retention: actions must be longer than zero"),
            ("retention: { history: 30 }\n", "retention: history must be a duration"),
            ("retention: { reply_log: 3y }\n", "unknown unit `y`"),
            ("retention: { every: forever }\n", "retention: every cannot be `forever`"),
            ("retention: { action: 7d }\n", "did you mean `actions`"),
            ("retention: 30d\n", "retention"),
        ] {
            let Err(Error::Invalid { problems, .. }) = load(extra) else { panic!("{extra}: accepted") };
            assert!(
                problems.iter().any(|p| p.to_string().contains(needle)),
                "{extra}: expected {needle:?}, got {problems:#?}"
            );
            assert!(problems.iter().all(|p| p.pos.line == 6), "{extra}: {problems:#?}");
        }
    }
}
