//! `http:` and `alerts:`: how tidings shows its health and whom it tells when something is wrong.

use std::net::SocketAddr;
use std::time::Duration;

use super::diagnostics::{self, Fields, Problems};
use super::tree::Node;

/// How long a watcher may be down or failing before it counts as unhealthy, by default.
pub const DEFAULT_UNHEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long a pending action may be overdue before the outbox counts as backing up.
pub const DEFAULT_OUTBOX_OVERDUE: Duration = Duration::from_secs(300);

/// The health thresholds, shared by `/healthz`, `tidings status` and the alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// A watcher disconnected or failing at least this long is unhealthy.
    pub unhealthy_after: Duration,
    /// A pending action overdue at least this long means the outbox is backing up.
    pub outbox_overdue: Duration,
    /// Whether `/healthz` answers 503 when degraded (rules failing now, dead letters), not only
    /// when unhealthy. Off by default: an orchestrator restarts on 503, and a restart mends
    /// neither a rule that fails on some mail nor a dead-lettered action.
    pub degraded_is_unhealthy: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            unhealthy_after: DEFAULT_UNHEALTHY_AFTER,
            outbox_overdue: DEFAULT_OUTBOX_OVERDUE,
            degraded_is_unhealthy: false,
        }
    }
}

/// The optional HTTP listener: `/healthz` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    /// Where to listen, e.g. 127.0.0.1:9898.
    pub listen: SocketAddr,
}

/// Where alerts go. At least one of `webhook` and `mail` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alerts {
    /// A `webhooks:` endpoint name.
    pub webhook: Option<String>,
    /// Mail: the account whose SMTP server sends it, and the recipients.
    pub mail: Option<AlertMail>,
}

/// Alert mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertMail {
    /// The account that sends it.
    pub account: String,
    /// The recipients.
    pub to: Vec<String>,
}

const HTTP_KEYS: &[&str] = &["listen"];
const HEALTH_KEYS: &[&str] = &["unhealthy_after", "outbox_overdue", "degraded_is_unhealthy"];
const ALERT_KEYS: &[&str] = &["webhook", "mail"];
const MAIL_KEYS: &[&str] = &["account", "to"];

/// Reads `http:`.
pub(super) fn http(node: &Node, problems: &mut Problems) -> Option<Http> {
    let fields = Fields::read(node, "http", HTTP_KEYS, problems)?;
    let Some(n) = fields.get("listen") else {
        problems.hint(node.pos, "http: `listen` is missing", "e.g. `http: { listen: \"127.0.0.1:9898\" }`");
        return None;
    };
    let text = diagnostics::string(n, "http: listen", problems)?;
    match text.parse::<SocketAddr>() {
        Ok(listen) => Some(Http { listen }),
        Err(_) => {
            problems.hint(
                n.pos,
                format!("http: listen `{text}` is not an address and port"),
                "write an IP address and a port, e.g. `127.0.0.1:9898` (`0.0.0.0:9898` for every interface)",
            );
            None
        }
    }
}

/// Reads `health:`.
pub(super) fn thresholds(node: &Node, problems: &mut Problems) -> Option<Thresholds> {
    let fields = Fields::read(node, "health", HEALTH_KEYS, problems)?;
    let mut thresholds = Thresholds::default();
    if let Some(n) = fields.get("unhealthy_after") {
        thresholds.unhealthy_after = positive(n, "health: unhealthy_after", problems)?;
    }
    if let Some(n) = fields.get("outbox_overdue") {
        thresholds.outbox_overdue = positive(n, "health: outbox_overdue", problems)?;
    }
    if let Some(n) = fields.get("degraded_is_unhealthy") {
        thresholds.degraded_is_unhealthy = diagnostics::boolean(n, "health: degraded_is_unhealthy", problems)?;
    }
    Some(thresholds)
}

fn positive(node: &Node, what: &str, problems: &mut Problems) -> Option<Duration> {
    let duration = diagnostics::duration(node, what, problems)?;
    if duration.is_zero() {
        problems.error(node.pos, format!("{what} must be longer than zero"));
        return None;
    }
    Some(duration)
}

/// Reads `alerts:`; `webhooks` and `accounts` are the names it may refer to.
pub(super) fn alerts(node: &Node, webhooks: &[&str], accounts: &[&str], problems: &mut Problems) -> Option<Alerts> {
    let fields = Fields::read(node, "alerts", ALERT_KEYS, problems)?;
    let webhook = match fields.get("webhook") {
        Some(n) => {
            let name = diagnostics::string(n, "alerts: webhook", problems)?;
            if !webhooks.contains(&name.as_str()) {
                problems.hint(
                    n.pos,
                    format!("alerts: webhook `{name}` is not defined"),
                    "name one of the endpoints under `webhooks:`",
                );
                return None;
            }
            Some(name)
        }
        None => None,
    };
    let mail = match fields.get("mail") {
        Some(n) => Some(mail(n, accounts, problems)?),
        None => None,
    };
    if webhook.is_none() && mail.is_none() {
        problems.hint(
            node.pos,
            "alerts: nowhere to send them",
            "add `webhook: <endpoint>` or `mail: { account: <name>, to: [...] }`",
        );
        return None;
    }
    Some(Alerts { webhook, mail })
}

fn mail(node: &Node, accounts: &[&str], problems: &mut Problems) -> Option<AlertMail> {
    let fields = Fields::read(node, "alerts: mail", MAIL_KEYS, problems)?;
    let (Some(account), Some(to)) = (fields.get("account"), fields.get("to")) else {
        problems.hint(
            node.pos,
            "alerts: mail needs `account` and `to`",
            "e.g. `mail: { account: work, to: [me@example.com] }`",
        );
        return None;
    };
    let name = diagnostics::string(account, "alerts: mail: account", problems)?;
    if !accounts.contains(&name.as_str()) {
        problems.hint(
            account.pos,
            format!("alerts: mail: account `{name}` is not defined"),
            "name one of the accounts under `accounts:`",
        );
        return None;
    }
    let to: Vec<String> = diagnostics::strings(to, "alerts: mail: to", problems)?.into_iter().map(|(s, _)| s).collect();
    if to.is_empty() {
        problems.error(node.pos, "alerts: mail: `to` names nobody");
        return None;
    }
    Some(AlertMail { account: name, to })
}
