//! The running accounts, each with its own stop switch, so that a reload (SIGHUP) can stop,
//! start or restart one account while every other keeps its sessions; and the restart, with
//! backoff, of an account whose worker ended after a failure (a full disk, a store that could
//! not be reached), on either store: it resumes by itself once the cause is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Prepared, SHUTDOWN_DEADLINE, recover, worker};
use crate::causes::error_chain;
use crate::config::{Account, Config, Secret};
use crate::source::schedule::SweepLocks;
use crate::store::WatcherRecord;

/// The first wait before an ended account is started again; it doubles with each failure in a
/// row, up to [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
/// The longest wait; an account that ran this long before it ended starts from the first again.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);

/// How early a restart may be, so that a check landing just before its time does not wait a
/// whole round more.
const RESTART_SLACK: Duration = Duration::from_millis(100);

/// The wait before restart number `failures + 1` of failures in a row.
fn restart_delay(failures: u32) -> Duration {
    FIRST_RESTART_DELAY.saturating_mul(1 << failures.min(16)).min(MAX_RESTART_DELAY)
}

/// One running account and what it was started with.
struct Running {
    account: Account,
    /// Its schedules, as written (compared on reload; they hold no secret).
    schedules: String,
    password: Secret<String>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    started: Instant,
    /// Restarts after failures in a row before this run.
    failures: u32,
    /// When an ended worker is started again; `None` while it runs.
    retry_at: Option<Instant>,
}

/// Every running account, by name.
#[derive(Default)]
pub(super) struct Fleet {
    running: BTreeMap<String, Running>,
    locks: SweepLocks,
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: usize,
}

fn schedules_of(config: &Config, account: &str) -> String {
    format!("{:?}", config.schedules.iter().filter(|s| s.account == account).collect::<Vec<_>>())
}

impl Fleet {
    /// Starts every account of `prepared`'s config.
    pub(super) fn start_all(&mut self, prepared: &Prepared) {
        for account in &prepared.config.accounts {
            self.start(prepared, account);
        }
    }

    pub(super) fn start(&mut self, prepared: &Prepared, account: &Account) {
        let Some(worker) = worker(prepared, account, true, &self.locks) else { return };
        let Some(password) = prepared.secrets.passwords.get(&account.name).cloned() else { return };
        let (stop, stopping) = watch::channel(false);
        let running = Running {
            account: account.clone(),
            schedules: schedules_of(&prepared.config, &account.name),
            password,
            stop,
            task: tokio::spawn(worker.run(stopping)),
            started: Instant::now(),
            failures: 0,
            retry_at: None,
        };
        self.running.insert(account.name.clone(), running);
    }

    /// Stops one account at a safe point (aborting it after the shutdown deadline).
    pub(super) async fn stop(&mut self, name: &str) {
        self.stop_many(&[name.to_owned()]).await;
    }

    /// Stops every account at a safe point, all at once, aborting what is left at the deadline.
    pub(super) async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        self.stop_many(&names).await;
    }

    /// Stops the accounts `names` (those running) at a safe point, all at once: a fleet member
    /// giving up several accounts must be done well within its lease, not one deadline each.
    pub(super) async fn stop_many(&mut self, names: &[String]) {
        let mut stopping: Vec<(String, Running)> =
            names.iter().filter_map(|name| Some((name.clone(), self.running.remove(name)?))).collect();
        for (_, running) in &stopping {
            let _ = running.stop.send(true);
        }
        let all = async {
            for (_, running) in &mut stopping {
                let _ = (&mut running.task).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_DEADLINE, all).await.is_err() {
            let late: Vec<&str> =
                stopping.iter().filter(|(_, r)| !r.task.is_finished()).map(|(n, _)| n.as_str()).collect();
            tracing::warn!(accounts = ?late, deadline = ?SHUTDOWN_DEADLINE, "accounts did not stop in time; aborting them");
            stopping.iter().for_each(|(_, r)| r.task.abort());
        }
    }

    /// Starts afresh the accounts whose worker ended by itself (a failed task ends the whole
    /// account, see `AccountWorker::run`), among `held` on a shared store (`None`: all), each
    /// once its backoff has passed: 1 s after the first failure, doubling up to a minute while
    /// it keeps failing. Before it starts, the store must take its writes again ([`ready`]);
    /// until it does (a disk still full), the account waits on, its watchers shown down.
    pub(super) async fn restart_ended(&mut self, prepared: &Prepared, held: Option<&BTreeSet<String>>) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (name, running) in &mut self.running {
            if !running.task.is_finished() || held.is_some_and(|held| !held.contains(name)) {
                continue;
            }
            let retry_at = *running.retry_at.get_or_insert_with(|| {
                if running.started.elapsed() >= MAX_RESTART_DELAY {
                    running.failures = 0;
                }
                let delay = restart_delay(running.failures);
                tracing::warn!(account = %name, retry_in = ?delay, "the account's worker ended after a failure; starting it afresh after a pause");
                now + delay
            });
            // A tick a hair early is on time: else every wait would last a tick longer.
            if retry_at.saturating_duration_since(now) <= RESTART_SLACK {
                due.push(name.clone());
            }
        }
        for name in due {
            let Some(account) = prepared.config.accounts.iter().find(|a| a.name == name).cloned() else { continue };
            let Some(failures) = self.running.get(&name).map(|r| r.failures + 1) else { continue };
            if let Err(error) = ready(prepared, &name).await {
                let delay = restart_delay(failures);
                tracing::warn!(account = %name, error = %error_chain(&error), retry_in = ?delay, "the store still refuses the account's writes; it stays stopped");
                if let Some(running) = self.running.get_mut(&name) {
                    (running.failures, running.retry_at) = (failures, Some(Instant::now() + delay));
                }
                continue;
            }
            self.running.remove(&name);
            self.start(prepared, &account);
            if let Some(running) = self.running.get_mut(&name) {
                running.failures = failures;
            }
            tracing::warn!(account = %name, failures, "the account's worker had ended after a failure; started afresh");
        }
    }

    /// Applies `prepared`'s (new) accounts: starts the added ones, stops the removed ones,
    /// restarts those whose settings, schedules or password changed, and leaves the rest
    /// running untouched.
    pub(super) async fn apply(&mut self, prepared: &Prepared) -> Changes {
        let mut changes = Changes::default();
        // A fleet member runs only the accounts it holds leases on; its next round claims
        // added ones and releases removed ones (see `membership`).
        let held: Option<BTreeSet<String>> =
            prepared.fleet.as_ref().and_then(|pg| pg.held()).map(|held| held.into_iter().collect());
        let wanted: BTreeMap<&str, &Account> = prepared
            .config
            .accounts
            .iter()
            .filter(|a| held.as_ref().is_none_or(|held| held.contains(&a.name)))
            .map(|a| (a.name.as_str(), a))
            .collect();
        let gone: Vec<String> = self.running.keys().filter(|n| !wanted.contains_key(n.as_str())).cloned().collect();
        for name in gone {
            self.stop(&name).await;
            prepared.health.forget_account(&name);
            changes.removed.push(name);
        }
        for (name, account) in wanted {
            let password = prepared.secrets.passwords.get(name);
            let same = self.running.get(name).is_some_and(|r| {
                r.account == *account
                    && r.schedules == schedules_of(&prepared.config, name)
                    && Some(&r.password) == password
            });
            if same {
                changes.unchanged += 1;
                continue;
            }
            if self.running.contains_key(name) {
                self.stop(name).await;
                // Its new watchers report afresh; a mailbox it no longer watches must not linger.
                prepared.health.forget_account(name);
                changes.changed.push(name.to_owned());
            } else {
                changes.added.push(name.to_owned());
            }
            self.start(prepared, account);
        }
        changes
    }
}

/// Whether the ended account `name` may start again: its watchers that are down (the one that
/// failed on a store write among them) have their state written, and what its workers left in
/// flight is recovered as at start-up. Both are writes, so an error means the store still
/// refuses them; starting now would only have a new watcher report itself up before failing
/// again, so that health would show the account up between failures instead of down since the
/// first one.
async fn ready(prepared: &Prepared, name: &str) -> Result<(), crate::store::Error> {
    for ((account, mailbox), state) in prepared.health.watchers() {
        if account != name || state.conn.is_up() {
            continue;
        }
        let record = WatcherRecord {
            account,
            mailbox,
            state: state.conn.as_str().to_owned(),
            since: state.since,
            last_error: state.last_error,
            reconnects: state.reconnects,
            updated_at: chrono::Utc::now(),
        };
        prepared.store.record_watcher(record).await?;
    }
    recover(&prepared.store, Some(name)).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_restart_delay_doubles_from_a_second_up_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|n| super::restart_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(super::restart_delay(u32::MAX), Duration::from_secs(60));
    }
}
