//! `/metrics`: the board and the outbox in the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{Health, Severity, Verdict};
use crate::store::{ActionState, FailingRule, OutboxGroup};

/// Everything `/metrics` shows, gathered at one moment.
pub struct Snapshot<'a> {
    /// The board.
    pub health: &'a Health,
    /// The outbox, by account, kind and state.
    pub outbox: &'a [OutboxGroup],
    /// The rules that failed within the last hour.
    pub failing: &'a [FailingRule],
    /// What `/healthz` would say now.
    pub verdict: &'a Verdict,
    /// Whether `/healthz` would answer 200.
    pub healthz_ok: bool,
    /// The moment.
    pub now: DateTime<Utc>,
}

/// The exposition text.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let mut out = Text::default();
    let Snapshot { health, outbox, failing, verdict, healthz_ok, now } = snapshot;
    out.family("tidings_healthy", "gauge", "1 when /healthz answers 200, else 0.");
    out.sample("tidings_healthy", &[], u64::from(*healthz_ok));
    out.family("tidings_degraded", "gauge", "1 while degraded: a rule failed in the last hour, or dead letters.");
    out.sample("tidings_degraded", &[], u64::from(verdict.severity() == Severity::Degraded));
    out.family("tidings_start_time_seconds", "gauge", "When the daemon started, in unix seconds.");
    out.sample("tidings_start_time_seconds", &[], health.started().timestamp());

    let watchers = health.watchers();
    let per_mailbox =
        |out: &mut Text, name: &str, kind: &str, help: &str, value: &dyn Fn(&super::WatcherState) -> i64| {
            out.family(name, kind, help);
            for ((account, mailbox), state) in &watchers {
                out.sample(name, &[("account", account), ("mailbox", mailbox)], value(state));
            }
        };
    per_mailbox(&mut out, "tidings_watcher_up", "gauge", "1 while the mailbox is watched (IDLE or polling).", &|s| {
        i64::from(s.conn.is_up())
    });
    per_mailbox(
        &mut out,
        "tidings_watcher_down_seconds",
        "gauge",
        "How long the watcher has not been watching; 0 while it is.",
        &|s| if s.conn.is_up() { 0 } else { (*now - s.since).num_seconds().max(0) },
    );
    per_mailbox(&mut out, "tidings_imap_reconnects_total", "counter", "Watcher connections lost or refused.", &|s| {
        i64::try_from(s.reconnects).unwrap_or(i64::MAX)
    });
    per_mailbox(&mut out, "tidings_messages_processed_total", "counter", "Messages decided on and stored.", &|s| {
        i64::try_from(s.messages).unwrap_or(i64::MAX)
    });
    out.family("tidings_last_message_timestamp_seconds", "gauge", "When the last message was stored, unix seconds.");
    for ((account, mailbox), state) in &watchers {
        if let Some(at) = state.last_message_at {
            out.sample(
                "tidings_last_message_timestamp_seconds",
                &[("account", account), ("mailbox", mailbox)],
                at.timestamp(),
            );
        }
    }

    let rules = health.rules();
    out.family("tidings_rule_hits_total", "counter", "Messages a rule decided something for.");
    for (rule, counts) in &rules {
        out.sample("tidings_rule_hits_total", &[("rule", rule)], counts.hits);
    }
    out.family("tidings_rule_errors_total", "counter", "Messages a rule failed on.");
    for (rule, counts) in &rules {
        out.sample("tidings_rule_errors_total", &[("rule", rule)], counts.errors);
    }
    out.family("tidings_rules_failing", "gauge", "Rules that failed on a message in the last hour.");
    out.sample("tidings_rules_failing", &[], failing.len());
    out.family("tidings_rule_failures_last_hour", "gauge", "Messages a rule failed on in the last hour.");
    for f in failing.iter() {
        out.sample("tidings_rule_failures_last_hour", &[("rule", &f.rule)], f.failures);
    }

    out.family(
        "tidings_actions",
        "gauge",
        "Actions in the store by account, kind and state (done, failed, ... are outcomes).",
    );
    for g in outbox.iter() {
        out.sample(
            "tidings_actions",
            &[("account", &g.account), ("kind", &g.kind), ("state", g.state.as_str())],
            g.count,
        );
    }
    let mut depth: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
    for g in outbox.iter() {
        let entry = depth.entry(&g.account).or_default();
        if matches!(g.state, ActionState::Pending | ActionState::InFlight | ActionState::Sending) {
            entry.0 += g.count;
        }
        if let Some(due) = g.oldest_due.filter(|_| g.state == ActionState::Pending) {
            entry.1 = entry.1.max((*now - due).num_seconds());
        }
    }
    out.family("tidings_outbox_depth", "gauge", "Actions waiting to run or running.");
    for (account, (waiting, _)) in &depth {
        out.sample("tidings_outbox_depth", &[("account", account)], *waiting);
    }
    out.family(
        "tidings_outbox_overdue_seconds",
        "gauge",
        "How long the longest-overdue pending action has been due; 0 when none is.",
    );
    for (account, (_, overdue)) in &depth {
        out.sample("tidings_outbox_overdue_seconds", &[("account", account)], (*overdue).max(0));
    }
    out.0
}

#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape(text));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
