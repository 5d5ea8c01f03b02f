//! The daemon: `run(config, shutdown, reloads)` owns every long-lived task and stops them cleanly.
//!
//! `shutdown` is a future (as in mini-redis): `main` passes Ctrl-C/SIGTERM, tests pass a channel,
//! and nothing here decides on its own when to stop. Each account runs in its own tasks
//! ([`account::AccountWorker`]), so one failing account never takes the others down (it is
//! started again with backoff, so it resumes by itself once the cause, a full disk say, is
//! gone), and each has its own stop switch, so that SIGHUP (a config reload) restarts only the accounts whose
//! settings changed. Beside them a [`Reloader`] swaps in a new rule set when the rule, plugin
//! or data files change; the watchers read the set in force per batch, so a rule reload never
//! touches a connection.
//!
//! Layer: orchestration (see the map in lib.rs): it may use every layer below, and owns what is
//! state rather than setting: each account's [`crate::auth::Credentials`] and token cache.

pub mod account;
mod fleet;
mod limits;
mod membership;
mod private_files;
pub mod prune;

use std::collections::BTreeSet;
use std::fs::{File, TryLockError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::{Account, Config, Secrets};
use crate::exec::webhook::Webhooks;
use crate::health::{self, Health};
use crate::rules::reload::Reloader;
use crate::rules::{CurrentRules, RuleSet};
use crate::source::schedule::SweepLocks;
use crate::store::{ActionState, Store};
use account::{AccountWorker, Events};
use fleet::Fleet;

/// How long tasks get to reach a safe point after shutdown is asked for, before they are aborted.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// How often the daemon looks for accounts whose worker ended after a failure, to start them
/// again once their backoff has passed (see `Fleet::restart_ended`).
const SUPERVISE_INTERVAL: Duration = Duration::from_secs(1);

/// Errors that stop the daemon before or while it starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config's secrets or rules were not usable, or the store could not be opened.
    #[error("cannot start")]
    Start(#[source] Box<crate::Error>),
    /// Another daemon already runs with this store.
    #[error("cannot lock {path}: another tidings daemon is running with the same state file")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created.
    #[error("cannot create lock file {path}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A `--once` run failed.
    #[error("cannot finish the run")]
    Once(#[source] Box<crate::Error>),
    /// `--once` on a shared store: the fleet's daemons own its accounts through leases.
    #[error(
        "cannot run --once on the shared store {state}: a fleet's accounts are worked by its daemons, each holding \
         leases; run `tidings` (the daemon) instead"
    )]
    OnceShared {
        /// The store.
        state: crate::config::State,
    },
}

/// Everything start-up prepares, before any connection.
struct Prepared {
    config: Config,
    rules: CurrentRules,
    /// Swaps `rules` when the files change; none for `--once`, which ends before any edit.
    reloader: Option<Reloader>,
    secrets: Secrets,
    store: Store,
    /// The fleet side of a shared store (membership and leases); `None` on SQLite.
    fleet: Option<crate::store::Fleet>,
    /// The webhook client and endpoints, shared by every account's event lane.
    webhooks: Arc<Webhooks>,
    /// What the watchers report, for `/healthz` and `/metrics`.
    health: Health,
    /// The lock beside a SQLite store; a shared store's leases do that work.
    _lock: Option<File>,
}

/// Start-up order matters: rules compile and secrets resolve before the store is touched and
/// long before any connection, so a mistake fails fast and changes nothing.
async fn prepare(config: Config, reload: bool) -> Result<Prepared, Error> {
    let start = |e: crate::rules::Error| Error::Start(Box::new(e.into()));
    let (rules, reloader) = if reload {
        let (reloader, rules) = Reloader::start(&config).map_err(start)?;
        (rules, Some(reloader))
    } else {
        (CurrentRules::fixed(Arc::new(RuleSet::compile(&config).map_err(start)?)), None)
    };
    // A missing CA file or rules directory is the config's line, not a failed login later.
    let live = rules.get().live.len();
    config.check_files(true, Some(live)).map_err(|e| Error::Start(Box::new(e.into())))?;
    let secrets = config.resolve_secrets().map_err(|e| Error::Start(Box::new(e.into())))?;
    let webhooks = Arc::new(Webhooks::new(&config, &secrets).map_err(|e| Error::Start(Box::new(e.into())))?);
    let lock = config.state.file().map(lock).transpose()?;
    // A daemon on a shared store is a fleet member; `--once` never gets here with one.
    let member = (reload && lock.is_none()).then(|| membership::member(&config));
    let (store, fleet) = Store::open_at(&config.state, member).await.map_err(|e| Error::Start(Box::new(e.into())))?;
    if fleet.is_none() {
        // A fleet member recovers each account when it takes the account's lease.
        recover(&store, None).await.map_err(|e| Error::Start(Box::new(e.into())))?;
    }
    private_files::warn_if_open(&config);
    // The states a previous daemon left are stale; this one reports its own.
    store.clear_watchers().await.map_err(|e| Error::Start(Box::new(e.into())))?;
    let health = Health::new(Some(store.clone()));
    Ok(Prepared { config, rules, reloader, secrets, store, fleet, webhooks, health, _lock: lock })
}

/// Actions claimed by a process that died may or may not have happened. The store already put
/// mail that had not begun its SMTP transaction back to pending (nothing left the machine), and
/// made everything else uncertain. Flag stores, moves, archives and deletes by UID are safe to
/// repeat (a second store changes nothing; a UID that already moved is no longer there to
/// move), and webhooks, commands and copies to the Sent folder are delivered at least once
/// (receivers deduplicate by the idempotency key), so all of those are requeued. Anything
/// else stays `uncertain` for a person to settle with `tidings outbox`: repeating a copy or a
/// sent mail would do it twice.
///
/// Every uncertain action of a safe kind is requeued, not only those found in flight now: a
/// start killed between marking them uncertain and requeueing them would otherwise leave them
/// stuck, their messages never moved.
///
/// `account`: only that account's actions (a fleet member taking it over); `None`: all.
async fn recover(store: &Store, account: Option<&str>) -> Result<(), crate::store::Error> {
    let recovered = match account {
        Some(account) => store.recover_in_flight_of(account).await?,
        None => store.recover_in_flight().await?,
    };
    for action in recovered {
        if action.state == ActionState::Pending {
            tracing::info!(id = %action.id, kind = %action.kind, account = %action.account, "mail was claimed but not being sent at the last stop; requeued");
        } else if crate::plan::MAIL_KINDS.contains(&action.kind.as_str()) {
            tracing::warn!(id = %action.id, kind = %action.kind, account = %action.account, "mail was being sent at the last stop and may have gone out; marked uncertain, not resent (see tidings outbox)");
        } else if !safe_to_repeat(&action.kind) {
            tracing::warn!(id = %action.id, kind = %action.kind, account = %action.account, "action was in flight at the last stop; marked uncertain");
        }
    }
    for action in store.list_outbox(Some(ActionState::Uncertain), usize::MAX).await? {
        if safe_to_repeat(&action.kind) && account.is_none_or(|a| a == action.account) {
            store.requeue_uncertain(action.id).await?;
            tracing::info!(id = %action.id, kind = %action.kind, "action was in flight at the last stop; safe to repeat, requeued");
        }
    }
    Ok(())
}

/// Whether running an action of `kind` twice is harmless or expected (at least once); never
/// for mail, which is sent at most once.
fn safe_to_repeat(kind: &str) -> bool {
    matches!(kind, "add_flags" | "remove_flags" | "move" | "archive" | "delete" | "webhook" | "command" | "save_sent")
}

/// The worker of `account`, when its password resolved; `scheduled`: with the account's
/// schedules (the daemon), or without (`--once`, which has no clock to run them on).
fn worker(prepared: &Prepared, account: &Account, scheduled: bool, locks: &SweepLocks) -> Option<AccountWorker> {
    let password = prepared.secrets.passwords.get(&account.name)?.clone();
    let events = Events { webhooks: prepared.webhooks.clone(), commands: Arc::new(prepared.config.commands.clone()) };
    let (store, rules, health) = (prepared.store.clone(), prepared.rules.clone(), prepared.health.clone());
    let worker = AccountWorker::new(account, password, store, rules, events, health);
    let schedules = prepared.config.schedules.iter().filter(|s| scheduled && s.account == account.name);
    Some(worker.with_schedules(schedules.cloned().collect(), locks.clone()))
}

/// Runs every account until `shutdown` resolves, then stops them at safe points. Each message
/// on `reloads` (SIGHUP) reads the config file again and applies its accounts (see [`reload`]).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
) -> Result<(), Error> {
    limits::raise_open_files(&config);
    let mut prepared = prepare(config, true).await?;
    let (stop, stopping) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(http) = &prepared.config.http {
        let server = health::http::Server {
            health: prepared.health.clone(),
            store: prepared.store.clone(),
            thresholds: prepared.config.health,
        };
        let listener = health::http::Listener::bind(http.listen, server)
            .await
            .map_err(|e| Error::Start(Box::new(crate::Error::Http(e))))?;
        tracing::info!(listen = %listener.local_addr().unwrap_or(http.listen), "serving /healthz and /metrics");
        tasks.spawn(listener.run(stopping.clone()));
    }
    if let (Some(alerts), Some(first)) = (&prepared.config.alerts, prepared.config.accounts.first()) {
        let alerter = health::alerts::Alerter {
            alerts: alerts.clone(),
            thresholds: prepared.config.health,
            health: prepared.health.clone(),
            store: prepared.store.clone(),
            fallback_account: first.name.clone(),
        };
        tasks.spawn(alerter.run(stopping.clone()));
    }
    let pruner = prune::Pruner { store: prepared.store.clone(), retention: prepared.config.retention };
    tasks.spawn(pruner.run(stopping.clone()));
    let mut fleet = Fleet::default();
    let mut membership = prepared.fleet.is_some().then(|| membership::Membership::new(&prepared.config));
    if membership.is_none() {
        fleet.start_all(&prepared);
    }
    let mut heartbeat = tokio::time::interval(prepared.config.fleet.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut supervise = tokio::time::interval(SUPERVISE_INTERVAL);
    supervise.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if let Some(reloader) = prepared.reloader.take() {
        tasks.spawn(reloader.run(stopping.clone()));
    }
    tracing::info!(
        accounts = prepared.config.accounts.len(),
        rules = prepared.rules.get().live.len(),
        schedules = prepared.config.schedules.len(),
        state = %prepared.config.state,
        fleet = membership.is_some(),
        "tidings started"
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = reloads.recv() => reload(&mut prepared, &mut fleet).await,
            _ = heartbeat.tick(), if membership.is_some() => {
                if let Some(membership) = membership.as_mut() {
                    membership.round(&prepared, &mut fleet).await;
                }
            }
            _ = supervise.tick() => {
                // A fleet member restarts only the accounts it still holds.
                let held: Option<BTreeSet<String>> =
                    prepared.fleet.as_ref().map(|pg| pg.held().unwrap_or_default().into_iter().collect());
                fleet.restart_ended(&prepared, held.as_ref()).await;
            }
        }
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    fleet.stop_all().await;
    if let Some(pg) = &prepared.fleet {
        // Others take the accounts over at once instead of after the lease runs out.
        match pg.leave().await {
            Ok(()) => tracing::info!("left the fleet; leases released"),
            Err(error) => {
                tracing::warn!(error = %crate::causes::error_chain(&error), "cannot leave the fleet cleanly; its leases expire on their own")
            }
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_DEADLINE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "tasks did not stop in time; aborting them");
        tasks.abort_all();
    }
    Ok(())
}

/// SIGHUP: reads the config file again and applies its accounts and schedules: added accounts
/// start, removed ones stop, changed ones (settings, schedules, password) restart, and every
/// other account keeps its sessions. A config that does not load, or whose secrets do not
/// resolve, changes nothing. Settings shared by every account (state, rules, plugins, webhooks,
/// commands, limits, http, health, alerts, fleet, retention) are applied by a restart only; a reload says
/// which of them changed. A fleet member starts only the accounts it holds; its next round
/// claims added accounts and gives up removed ones.
async fn reload(prepared: &mut Prepared, fleet: &mut Fleet) {
    let path = prepared.config.path.clone();
    tracing::info!(config = %path.display(), "SIGHUP: reloading the config");
    let new = match Config::load(&path) {
        Ok(new) => new,
        Err(error) => {
            tracing::error!("cannot reload the config; the running one stays in force: {error}");
            return;
        }
    };
    if let Err(error) = new.check_files(true, None) {
        tracing::error!("cannot reload the config; the running one stays in force: {error}");
        return;
    }
    let secrets = match new.resolve_secrets() {
        Ok(secrets) => secrets,
        Err(error) => {
            let error = crate::causes::error_chain(&error);
            tracing::error!(%error, "cannot reload the config; the running one stays in force");
            return;
        }
    };
    let fixed = needs_restart(&prepared.config, &new);
    if !fixed.is_empty() {
        tracing::warn!(settings = ?fixed, "these settings changed but apply only after a restart; the accounts are reloaded");
    }
    prepared.config.accounts = new.accounts;
    prepared.config.schedules = new.schedules;
    prepared.secrets.passwords = secrets.passwords;
    let changes = fleet.apply(prepared).await;
    tracing::info!(
        added = ?changes.added,
        removed = ?changes.removed,
        changed = ?changes.changed,
        unchanged = changes.unchanged,
        "config reloaded"
    );
}

/// The shared settings that differ between `old` and `new`, by config key.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let debug = |v: &dyn std::fmt::Debug| format!("{v:?}");
    [
        ("state", old.state == new.state),
        ("rules", old.rules_dir == new.rules_dir),
        ("plugins", old.plugins_dir == new.plugins_dir),
        ("webhooks", debug(&old.webhooks) == debug(&new.webhooks)),
        ("commands", debug(&old.commands) == debug(&new.commands)),
        ("limits", old.limits == new.limits),
        ("http", old.http == new.http),
        ("health", old.health == new.health),
        ("alerts", old.alerts == new.alerts),
        ("fleet", old.fleet == new.fleet),
        ("retention", old.retention == new.retention),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(key, _)| key)
    .collect()
}

/// `--once`: processes what is pending in every account, carries out every resulting action,
/// and returns. Accounts run one after another; the first failure ends the run. Schedules do not
/// run: a pass has no clock to fire them on, and running each at every pass would fire them at
/// whatever times cron calls `--once`.
pub async fn run_once(config: Config) -> Result<(), Error> {
    if config.state.file().is_none() {
        return Err(Error::OnceShared { state: config.state });
    }
    let prepared = prepare(config, false).await?;
    let locks = SweepLocks::default();
    for account in &prepared.config.accounts {
        if let Some(worker) = worker(&prepared, account, false, &locks) {
            worker.run_once().await.map_err(|e| Error::Once(Box::new(e)))?;
        }
    }
    // Cron runs of `--once` are the only runs such a store gets: it is pruned by them.
    let pruner = prune::Pruner { store: prepared.store.clone(), retention: prepared.config.retention };
    let (_running, mut never) = watch::channel(false);
    pruner.pass(&mut never).await;
    Ok(())
}

/// The daemon's lock file beside the state file (`tidings status` looks at it too).
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes an exclusive lock beside the state file for the daemon's lifetime: two daemons on one
/// store would both watch the same mailboxes and both run the same actions. The OS drops the
/// lock when the process dies, so a crash never leaves a stale lock behind.
fn lock(state: &Path) -> Result<File, Error> {
    let path = lock_path(state);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::LockFile { path: path.clone(), source })?;
    }
    // Owner-only like the store beside it (see `private_files`).
    let file = std::os::unix::fs::OpenOptionsExt::mode(File::options().write(true).create(true).truncate(true), 0o600)
        .open(&path)
        .map_err(|source| Error::LockFile { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(TryLockError::Error(source)) => Err(Error::LockFile { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Checkpoint, NewAction};

    /// A start killed after marking the in-flight actions uncertain but before requeueing them:
    /// the next start still requeues the safe ones.
    #[tokio::test]
    async fn safe_actions_left_uncertain_by_a_killed_start_are_requeued() {
        let store = Store::open_in_memory().await.unwrap();
        let checkpoint = Checkpoint { account: "a".into(), mailbox: "INBOX".into(), uidvalidity: 1, last_uid: 7 };
        let action = |key: &str, kind: &str| {
            NewAction::new(key, "a", kind, serde_json::json!({ "mailbox": "X" })).for_message("INBOX", 1, 7)
        };
        let actions = vec![action("k1", "add_flags"), action("k2", "copy"), action("k3", "move")];
        store.commit_plan(&checkpoint, actions).await.unwrap();
        assert_eq!(store.claim_due(chrono::Utc::now(), 10).await.unwrap().len(), 3);
        // The killed start: everything in flight became uncertain, nothing was requeued yet.
        assert_eq!(store.recover_in_flight().await.unwrap().len(), 3);
        recover(&store, None).await.unwrap();
        let counts = store.outbox_counts().await.unwrap();
        assert_eq!((counts.pending, counts.uncertain), (2, 1), "{counts:?}");
        let uncertain = store.list_outbox(Some(ActionState::Uncertain), 10).await.unwrap();
        assert_eq!(uncertain[0].kind, "copy", "a copy is never repeated on a guess");
    }

    /// A crash with events, a Sent copy and mail in every stage: events and the copy are
    /// delivered again (at least once), mail not yet sending is sent, mail sending never again.
    #[tokio::test]
    async fn a_crash_requeues_events_and_unsent_mail_but_never_mail_that_was_sending() {
        use crate::store::{OncePer, SendGate, SendStart};
        let store = Store::open_in_memory().await.unwrap();
        let now = chrono::Utc::now();
        let kinds = ["webhook", "command", "save_sent", "reply", "forward", "send"];
        let actions = kinds.iter().map(|kind| NewAction::new(*kind, "a", *kind, serde_json::json!({}))).collect();
        store.commit_schedule_plan("test", now, actions).await.unwrap();
        // Due when stored, by the store's clock, which is a little after `now`.
        let claimed = store.claim_due(chrono::Utc::now(), 10).await.unwrap();
        assert_eq!(claimed.len(), kinds.len());
        let reply = claimed.iter().find(|a| a.kind == "reply").unwrap().id;
        let once_per = Some(OncePer { handle: "h".into(), sender: "s@x.org".into(), days: 7 });
        let start = SendStart {
            account: "a".into(),
            kind: "reply".into(),
            once_per,
            daily_limit: 5,
            forward_rate: None,
            recipient: "s@x.org".into(),
            now,
        };
        assert_eq!(store.begin_send(reply, start).await.unwrap(), SendGate::Go);
        // The crash: nothing was recorded; the next start recovers.
        recover(&store, None).await.unwrap();
        let pending = store.list_outbox(Some(ActionState::Pending), 10).await.unwrap();
        let mut requeued: Vec<&str> = pending.iter().map(|a| a.kind.as_str()).collect();
        requeued.sort_unstable();
        assert_eq!(requeued, ["command", "forward", "save_sent", "send", "webhook"]);
        let uncertain = store.list_outbox(Some(ActionState::Uncertain), 10).await.unwrap();
        assert_eq!((uncertain.len(), uncertain[0].id), (1, reply), "the reply that was sending stays uncertain");
        recover(&store, None).await.unwrap();
        assert_eq!(store.outbox_counts().await.unwrap().uncertain, 1, "a second start does not resend it either");
    }
}
