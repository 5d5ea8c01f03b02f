//! An account's connection budget: which watched mailboxes get an IDLE connection of their own
//! and which are polled, so tidings never holds more IMAP connections than `connections:`.
//!
//! What counts: one connection per IDLE watcher, one for the executor (always held), one per
//! mailbox that per-message schedules sweep (sweeps of different mailboxes may run at once;
//! each holds a connection while it runs), and one shared by every polled mailbox. SMTP is not
//! IMAP and is not counted. The executor connects once it has work and keeps the connection. Pure: the runtime logs the split and `tidings check` prints it.

use std::fmt;
use std::time::Duration;

use super::account::{Account, Mailbox};
use super::schedule::{Run, Schedule};

/// How an account's watched mailboxes share its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// Mailboxes with a connection of their own, in IDLE (polled anyway if the server has no
    /// IDLE).
    pub idle: Vec<Mailbox>,
    /// Mailboxes visited one after another on one shared connection every poll interval.
    pub polled: Vec<Mailbox>,
    /// The account's `connections:`.
    pub budget: u32,
    /// Connections held beside the watchers: the executor and the sweeps.
    pub reserved: u32,
    /// How often the polled mailboxes are visited.
    pub poll_interval: Duration,
}

impl ConnectionPlan {
    /// Splits `mailboxes` (in written order: the first ones get IDLE) within `budget`
    /// connections, `sweeps` of them being held by schedules' sweeps.
    pub fn new(mailboxes: &[Mailbox], budget: u32, sweeps: u32, poll_interval: Duration) -> ConnectionPlan {
        let reserved = 1 + sweeps;
        let free = usize::try_from(budget.saturating_sub(reserved)).unwrap_or(usize::MAX);
        // All fit, or all but enough to leave one connection for the poller.
        let idle = if mailboxes.len() <= free { mailboxes.len() } else { free.saturating_sub(1) };
        ConnectionPlan {
            idle: mailboxes[..idle].to_vec(),
            polled: mailboxes[idle..].to_vec(),
            budget,
            reserved,
            poll_interval,
        }
    }

    /// The most IMAP connections the account holds at once under this plan.
    pub fn connections(&self) -> u32 {
        let watchers = self.idle.len() + usize::from(!self.polled.is_empty());
        self.reserved + u32::try_from(watchers).unwrap_or(u32::MAX)
    }

    /// Whether the plan needs more connections than the budget (a budget too small for the
    /// executor, the sweeps and one watcher): it is used anyway and the log says so.
    pub fn over_budget(&self) -> bool {
        self.connections() > self.budget
    }
}

/// How many connections `account`'s schedules may hold at once: one per mailbox swept per
/// message (schedules of one mailbox take turns; `run: once` reads no mailbox).
pub fn sweeps(account: &str, schedules: &[Schedule]) -> u32 {
    let mut mailboxes: Vec<&str> = schedules
        .iter()
        .filter(|s| s.account == account && s.run == Run::PerMessage)
        .map(|s| s.mailbox.as_str())
        .collect();
    mailboxes.sort_unstable();
    mailboxes.dedup();
    u32::try_from(mailboxes.len()).unwrap_or(u32::MAX)
}

/// What `tidings check` can say about `account`'s connections before any is opened: the split
/// of its configured mailboxes, or with `mailboxes: all` how many could have IDLE.
pub fn summary(account: &Account, schedules: &[Schedule]) -> String {
    let sweeps = sweeps(&account.name, schedules);
    if account.subscribed {
        let free = account.connections.saturating_sub(1 + sweeps);
        return format!(
            "every subscribed mailbox (listed when it starts): up to {free} with IDLE, any more polled every {} on \
             one connection ({} connections)",
            seconds(account.watch.poll_interval),
            account.connections
        );
    }
    ConnectionPlan::new(&account.mailboxes, account.connections, sweeps, account.watch.poll_interval).to_string()
}

/// "12 mailboxes: 10 with IDLE, 2 polled every 60s: Lists/a, Lists/b (13 of 15 connections)".
/// Not "watching": tests and people wait for a watcher's own "watching" line.
impl fmt::Display for ConnectionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.idle.len() + self.polled.len();
        write!(f, "{total} mailbox{}: {} with IDLE", if total == 1 { "" } else { "es" }, self.idle.len())?;
        if !self.polled.is_empty() {
            let names: Vec<&str> = self.polled.iter().map(|m| m.name.as_str()).collect();
            write!(f, ", {} polled every {}: {}", self.polled.len(), seconds(self.poll_interval), names.join(", "))?;
        }
        write!(f, " ({} of {} connections", self.connections(), self.budget)?;
        if self.over_budget() {
            write!(f, ": over the budget, which leaves nothing for the watchers beside the executor and sweeps")?;
        }
        write!(f, ")")
    }
}

/// `60s`, `5m`, `1h`: a duration as the config writes it.
pub fn seconds(d: Duration) -> String {
    match d.as_secs() {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        // 60s as the example in docs/providers.md says it; 300s as 5m.
        s if s > 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s > 0 => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backfill;

    fn boxes(n: usize) -> Vec<Mailbox> {
        (0..n).map(|i| Mailbox { name: format!("m{i}"), backfill: Backfill::None }).collect()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn check_says_how_the_configured_mailboxes_are_watched() {
        let yaml = "accounts:\n  a:\n    provider: gmail\n    username: u@gmail.com\n    password_env: P\n    \
                    connections: 4\n    mailboxes: [INBOX, A, B, C]\n  b:\n    provider: gmail\n    \
                    username: u@gmail.com\n    password_env: P\n    mailboxes: all\n    poll_interval: 5m\n";
        let config = crate::config::Config::from_yaml(yaml, std::path::Path::new("/t.yaml")).unwrap();
        assert_eq!(
            summary(&config.accounts[0], &[]),
            "4 mailboxes: 2 with IDLE, 2 polled every 60s: B, C (4 of 4 connections)"
        );
        assert_eq!(
            summary(&config.accounts[1], &[]),
            "every subscribed mailbox (listed when it starts): up to 14 with IDLE, any more polled every 5m on one \
             connection (15 connections)"
        );
    }

    #[test]
    fn mailboxes_within_the_budget_all_idle() {
        let plan = ConnectionPlan::new(&boxes(14), 15, 0, MINUTE);
        assert_eq!((plan.idle.len(), plan.polled.len(), plan.connections()), (14, 0, 15));
        assert_eq!(plan.to_string(), "14 mailboxes: 14 with IDLE (15 of 15 connections)");
    }

    #[test]
    fn beyond_the_budget_the_rest_share_one_polled_connection() {
        // Gmail's 15: the executor, one sweep, 11 IDLE and the poller.
        let plan = ConnectionPlan::new(&boxes(14), 15, 1, MINUTE);
        assert_eq!((plan.idle.len(), plan.polled.len(), plan.connections()), (12, 2, 15));
        assert_eq!(plan.idle[0].name, "m0", "the mailboxes written first keep IDLE");
        assert_eq!(plan.to_string(), "14 mailboxes: 12 with IDLE, 2 polled every 60s: m12, m13 (15 of 15 connections)");
        for n in 1..40 {
            for budget in 2..20 {
                let plan = ConnectionPlan::new(&boxes(n), budget, 0, MINUTE);
                assert!(!plan.over_budget(), "{n} mailboxes in {budget}: {plan}");
                assert_eq!(plan.idle.len() + plan.polled.len(), n);
            }
        }
    }

    #[test]
    fn a_budget_too_small_for_the_sweeps_is_said_to_be_over() {
        let plan = ConnectionPlan::new(&boxes(3), 2, 1, Duration::from_secs(300));
        assert_eq!((plan.idle.len(), plan.polled.len(), plan.connections()), (0, 3, 3));
        assert!(plan.over_budget());
        assert!(plan.to_string().starts_with("3 mailboxes: 0 with IDLE, 3 polled every 5m: m0, m1, m2"));
        assert!(plan.to_string().contains("3 of 2 connections: over the budget"), "{plan}");
    }
}
