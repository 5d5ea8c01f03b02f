//! The running accounts, each with its own stop switch, so that a reload (SIGHUP) can stop,
//! start or restart one account while every other keeps its sessions.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Prepared, SHUTDOWN_DEADLINE, worker};
use crate::config::{Account, Config, Secret};
use crate::source::schedule::SweepLocks;

/// One running account and what it was started with.
struct Running {
    account: Account,
    /// Its schedules, as written (compared on reload; they hold no secret).
    schedules: String,
    password: Secret<String>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
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

    /// Starts afresh every account among `held` whose worker ended by itself (on a shared store
    /// a failed task ends the account, see `AccountWorker::run`); returns their names.
    pub(super) fn restart_ended(&mut self, prepared: &Prepared, held: &BTreeSet<String>) -> Vec<String> {
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(name, running)| running.task.is_finished() && held.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &ended {
            self.running.remove(name);
            if let Some(account) = prepared.config.accounts.iter().find(|a| &a.name == name) {
                self.start(prepared, account);
            }
        }
        ended
    }

    /// Applies `prepared`'s (new) accounts: starts the added ones, stops the removed ones,
    /// restarts those whose settings, schedules or password changed, and leaves the rest
    /// running untouched.
    pub(super) async fn apply(&mut self, prepared: &Prepared) -> Changes {
        let mut changes = Changes::default();
        // A fleet member runs only the accounts it holds leases on; its next round claims
        // added ones and releases removed ones (see `membership`).
        let held: Option<BTreeSet<String>> =
            prepared.store.fleet().and_then(|pg| pg.held()).map(|held| held.into_iter().collect());
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
