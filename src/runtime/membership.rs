//! A fleet member's rounds: every `fleet: heartbeat` the instance renews its own row and its
//! leases, stops the accounts whose lease another instance took over (it stalled past the
//! lease), then moves towards its fair share: gives up extra accounts (after their workers
//! stopped) and claims free or expired ones (recovering what their last owner left in flight
//! before starting them). Every instance runs the same rounds on the same tables; leases and
//! their epochs keep the outcome safe whatever the timing (see `store::postgres`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::fleet::Fleet;
use super::{Prepared, recover};
use crate::causes::error_chain;
use crate::config::Config;
use crate::store::{Member, share};

/// How often one round looks again after losing claims to another instance.
const MAX_PASSES: usize = 4;

/// Who this instance is: host, pid and start time (unique even when a pid is reused).
pub(super) fn member(config: &Config) -> Member {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let pid = std::process::id();
    let started = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
    Member { id: format!("{host}/{pid}/{started}"), host, pid, lease: config.fleet.lease }
}

/// The state kept between rounds.
pub(super) struct Membership {
    /// How long without a heartbeat reaching the store before every account stops: just under
    /// the lease (its last renewal runs out a lease after it), so the workers stop before
    /// another instance can claim their accounts.
    give_up_after: Duration,
    /// When a heartbeat last reached the store.
    last_beat: Instant,
    joined: bool,
}

impl Membership {
    pub(super) fn new(config: &Config) -> Membership {
        let give_up_after = config.fleet.lease.saturating_sub(config.fleet.heartbeat);
        Membership { give_up_after, last_beat: Instant::now(), joined: false }
    }

    /// One round; failures are logged and the next round tries again.
    pub(super) async fn round(&mut self, prepared: &Prepared, fleet: &mut Fleet) {
        let Some(pg) = &prepared.fleet else { return };
        if !self.joined {
            match pg.join().await {
                Ok(()) => {
                    self.joined = true;
                    tracing::info!("joined the fleet");
                }
                Err(error) => return tracing::warn!(error = %error_chain(&error), "cannot join the fleet yet"),
            }
        }
        match pg.heartbeat().await {
            Ok(lost) => {
                self.last_beat = Instant::now();
                for account in &lost {
                    tracing::warn!(%account, "the account's lease was taken over by another instance (this one stalled past it); stopping it");
                }
                stop(prepared, fleet, &lost).await;
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot renew the leases");
                if self.last_beat.elapsed() >= self.give_up_after {
                    // Others may claim the accounts any moment now; fencing would refuse our
                    // writes anyway, stopping the workers keeps them off the mailboxes too.
                    tracing::error!(after = ?self.give_up_after, "no heartbeat reached the store for almost a lease; stopping every account until one does");
                    pg.forget_leases();
                    fleet.stop_all().await;
                }
                return;
            }
        }
        // Instances that decide at the same moment pick the same free accounts by name; the
        // losers of those races look again at once rather than a heartbeat later.
        for _ in 0..MAX_PASSES {
            match self.rebalance(prepared, fleet).await {
                Some(0) | None => break,
                Some(_raced) => continue,
            }
        }
    }

    /// Moves towards this instance's fair share; how many claims another instance won (`None`:
    /// the fleet could not be read).
    async fn rebalance(&self, prepared: &Prepared, fleet: &mut Fleet) -> Option<usize> {
        let pg = prepared.fleet.as_ref()?;
        let (live, taken) = match pg.others().await {
            Ok(others) => others,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot read the fleet");
                return None;
            }
        };
        // Accounts without a password cannot run: never claim them.
        let accounts: BTreeSet<String> = prepared
            .config
            .accounts
            .iter()
            .filter(|a| prepared.secrets.passwords.contains_key(&a.name))
            .map(|a| a.name.clone())
            .collect();
        let mine: BTreeSet<String> = pg.held().unwrap_or_default().into_iter().collect();
        let moves = share::moves(&accounts, &mine, &taken, live);
        stop(prepared, fleet, &moves.release).await;
        for account in &moves.release {
            match pg.release(account).await {
                Ok(()) => tracing::info!(%account, live, "account given up to rebalance the fleet"),
                Err(error) => {
                    tracing::warn!(%account, error = %error_chain(&error), "cannot release the account's lease; it expires on its own")
                }
            }
        }
        let mut raced = 0;
        for name in &moves.claim {
            let epoch = match pg.claim(name).await {
                Ok(Some(epoch)) => epoch,
                Ok(None) => {
                    raced += 1;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(account = %name, error = %error_chain(&error), "cannot claim the account");
                    continue;
                }
            };
            if let Err(error) = recover(&prepared.store, Some(name)).await {
                tracing::warn!(account = %name, error = %error_chain(&error), "cannot recover the account's actions; giving it back");
                let _ = pg.release(name).await;
                continue;
            }
            // The last owner's watcher states are not this instance's.
            prepared.store.forget_watchers(name);
            if let Some(account) = prepared.config.accounts.iter().find(|a| &a.name == name) {
                fleet.start(prepared, account);
                tracing::info!(account = %name, epoch, live, "account claimed");
            }
        }
        Some(raced)
    }
}

/// Stops the workers of `accounts` (those running), all at once, and forgets their health.
async fn stop(prepared: &Prepared, fleet: &mut Fleet, accounts: &[String]) {
    fleet.stop_many(accounts).await;
    for account in accounts {
        prepared.health.forget_account(account);
    }
}
