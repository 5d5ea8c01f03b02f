//! `alerts:`: telling a person when a watcher stays down (and when it is back), when a rule starts
//! failing (it failed on a message, after an hour without failing), and when actions are
//! dead-lettered (failed for good, or uncertain): what turns the verdict unhealthy or degraded.
//!
//! An alert is not sent from here: it is stored in the outbox as a webhook or a `send` action,
//! and the account's lanes deliver it like any other, with their retries. Each alert's key
//! names the event (which watcher and since when, which rule, how many failed), so storing it
//! twice stores it once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use super::Health;
use crate::config::{Alerts, Thresholds};
use crate::plan::{Action, Event, NewMessage};
use crate::store::{ActionState, FailingRule, NewAction, Store};

/// How often the board is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// One thing worth telling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// `watcher_down`, `watcher_up`, `rule_failing`, `actions_failed`.
    pub kind: &'static str,
    /// The account it concerns (the first account's lanes send alerts about no account).
    pub account: Option<String>,
    /// One line for a person.
    pub text: String,
    /// What makes this event unique (part of the idempotency key).
    pub event: String,
    /// Details for the webhook receiver.
    pub data: serde_json::Value,
}

/// Watches the board and stores alerts.
pub struct Alerter {
    /// Where alerts go.
    pub alerts: Alerts,
    /// When a watcher counts as down.
    pub thresholds: Thresholds,
    /// The board.
    pub health: Health,
    /// Where the alert actions are stored.
    pub store: Store,
    /// The account whose lanes send alerts about no account in particular.
    pub fallback_account: String,
}

/// What was already told, so each event is told once.
#[derive(Debug, Default)]
pub struct Told {
    down: BTreeSet<(String, String)>,
    /// The rules failing now that were told about: each is told again only once it stopped
    /// failing for [`super::FAILING_NOW`] and starts again.
    failing: BTreeSet<String>,
    /// Failed and uncertain actions per account and state, as last seen.
    dead: BTreeMap<(String, &'static str), u64>,
    /// The first look only takes the dead letters already there as known.
    primed: bool,
}

impl Alerter {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut told = Told::default();
        loop {
            let now = Utc::now();
            let read = async {
                let dead = self.store.outbox_groups_in(&[ActionState::Failed, ActionState::Uncertain]).await?;
                Ok::<_, crate::store::Error>((dead, self.store.rule_failures_since(now - super::FAILING_NOW).await?))
            };
            match read.await {
                Ok((outbox, failing)) => {
                    let dead: Vec<_> = outbox
                        .iter()
                        .filter(|g| matches!(g.state, ActionState::Failed | ActionState::Uncertain))
                        .map(|g| (g.account.clone(), g.state, g.count))
                        .collect();
                    for alert in check(&self.health, &self.thresholds, &failing, &dead, &mut told, now) {
                        self.store_alert(&alert).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %crate::causes::error_chain(&error), "cannot read the store to look for alerts")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(next_look(&self.health, &self.thresholds, &told, Utc::now())) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn store_alert(&self, alert: &Alert) {
        tracing::warn!(alert = alert.kind, "{}", alert.text);
        let account = alert.account.clone().unwrap_or_else(|| self.fallback_account.clone());
        let mut actions = Vec::new();
        if let Some(endpoint) = &self.alerts.webhook {
            let event = Event::new(endpoint.clone(), alert.data.clone());
            actions.push(action(&alert.event, "webhook", &account, &Action::Webhook(event)));
        }
        if let Some(mail) = &self.alerts.mail {
            let message = NewMessage {
                to: mail.to.clone(),
                cc: Vec::new(),
                subject: format!("tidings: {}", alert.text),
                body: format!("{}\n\n`tidings status` on the machine running tidings shows more.\n", alert.text),
                html: None,
                from: None,
                at: None,
            };
            actions.push(action(&alert.event, "mail", &mail.account, &Action::Send(message)));
        }
        if let Err(error) = self.store.commit_alerts(actions).await {
            tracing::error!(error = %crate::causes::error_chain(&error), alert = alert.kind, "cannot store an alert; it is not sent");
        }
    }
}

/// When to look again: at the latest after [`CHECK_EVERY`], and right when a watcher that is
/// down now reaches the threshold, so that an outage just over it is not missed between looks.
fn next_look(health: &Health, thresholds: &Thresholds, told: &Told, now: DateTime<Utc>) -> Duration {
    let threshold = chrono::Duration::from_std(thresholds.unhealthy_after).unwrap_or(chrono::Duration::MAX);
    health
        .watchers()
        .into_iter()
        .filter(|(key, state)| !state.conn.is_up() && !told.down.contains(key))
        .filter_map(|(_, state)| (state.since + threshold - now).to_std().ok())
        .map(|until| until + Duration::from_millis(10))
        .fold(CHECK_EVERY, Duration::min)
}

/// A rule started failing: the alert names it, the message it failed on and why.
fn rule_failing(f: &FailingRule, now: DateTime<Utc>) -> Alert {
    let (rule, at) = (&f.rule, f.last_at.to_rfc3339());
    let error = crate::causes::one_line(&f.last_error, 200);
    let id = f.message_id.as_deref().map_or_else(|| format!("uid {}", f.uid), |id| format!("<{id}>"));
    Alert {
        kind: "rule_failing",
        account: Some(f.account.clone()),
        text: format!("rule {rule} is failing: on {}/{} {id}: {error}", f.account, f.mailbox),
        event: format!("failing:{rule}:{}", now.timestamp_millis()),
        data: json!({
            "alert": "rule_failing", "rule": rule, "failures": f.failures, "error": f.last_error,
            "account": f.account, "mailbox": f.mailbox, "uid": f.uid, "message_id": f.message_id, "at": at,
        }),
    }
}

fn action(event: &str, by: &str, account: &str, action: &Action) -> NewAction {
    // Serialising a plain enum of strings cannot fail; `Null` would be refused by the store.
    let payload = serde_json::to_value(action).unwrap_or(serde_json::Value::Null);
    NewAction::new(format!("alert:{by}:{event}"), account, action.kind(), payload).by_rule("(alerts)")
}

/// What is new to tell, given the board, the rules failing now and the dead letters (account,
/// state, count) now; `told` remembers what was told.
pub fn check(
    health: &Health,
    thresholds: &Thresholds,
    failing: &[FailingRule],
    dead: &[(String, ActionState, u64)],
    told: &mut Told,
    now: DateTime<Utc>,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for ((account, mailbox), state) in health.watchers() {
        let key = (account.clone(), mailbox.clone());
        let down_for = (now - state.since).to_std().unwrap_or_default();
        let since = state.since.to_rfc3339();
        let shown = state.since.format("%Y-%m-%d %H:%M:%S UTC");
        if !state.conn.is_up() && down_for >= thresholds.unhealthy_after && told.down.insert(key.clone()) {
            let why = state.last_error.as_deref().unwrap_or("no answer yet");
            alerts.push(Alert {
                kind: "watcher_down",
                text: format!("watcher {account}/{mailbox} is down since {shown}: {why}"),
                event: format!("down:{account}/{mailbox}:{}", state.since.timestamp_millis()),
                data: json!({ "alert": "watcher_down", "account": account, "mailbox": mailbox, "since": since, "error": why }),
                account: Some(account),
            });
        } else if state.conn.is_up() && told.down.remove(&key) {
            alerts.push(Alert {
                kind: "watcher_up",
                text: format!("watcher {account}/{mailbox} is watching again since {shown}"),
                event: format!("up:{account}/{mailbox}:{}", state.since.timestamp_millis()),
                data: json!({ "alert": "watcher_up", "account": account, "mailbox": mailbox, "since": since }),
                account: Some(account),
            });
        }
    }
    told.failing.retain(|rule| failing.iter().any(|f| &f.rule == rule));
    for f in failing {
        // Like dead letters, the rules already failing at the first look were told by the run
        // before (or are in `tidings status`).
        if told.failing.insert(f.rule.clone()) && told.primed {
            alerts.push(rule_failing(f, now));
        }
    }
    for (account, state, count) in dead {
        let seen = told.dead.insert((account.clone(), state.as_str()), *count).unwrap_or(0);
        if told.primed && *count > seen {
            let new = count - seen;
            let what = if *state == ActionState::Failed { "failed for good" } else { "uncertain (may have run)" };
            alerts.push(Alert {
                kind: "actions_failed",
                text: format!("{new} action(s) of account {account} {what}; see `tidings outbox`"),
                event: format!("dead:{account}:{state}:{count}"),
                data: json!({ "alert": "actions_failed", "account": account, "state": state.as_str(), "new": new, "total": count }),
                account: Some(account.clone()),
            });
        }
    }
    told.primed = true;
    alerts
}
