//! One account's workers, in the account's span: a watcher per mailbox within the account's
//! connection budget and one poller for the rest, the IMAP executor, the outbound dispatcher's
//! two lanes (mail; webhooks and commands), and the account's schedules.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::auth::Credentials;
use crate::causes::error_chain;
use crate::config::{Account, ConnectionPlan, Mailbox, Schedule, Secret};
use crate::exec::outbound::Outbound;
use crate::exec::webhook::Webhooks;
use crate::exec::{Executor, Wake};
use crate::health::Health;
use crate::imap::{self, Folder, Login, Session, Timeouts};
use crate::lifecycle::Mode;
use crate::rules::CurrentRules;
use crate::source::poll::MailboxPoller;
use crate::source::schedule::{Scheduler, SweepLocks};
use crate::source::watch::{self as watcher, MailboxWatcher};
use crate::store::Store;

/// What the event lanes of every account share: the webhook client and the commands.
#[derive(Clone)]
pub struct Events {
    /// Webhook endpoints with their secrets, and the HTTP client.
    pub webhooks: Arc<Webhooks>,
    /// The config's `commands:`.
    pub commands: Arc<std::collections::BTreeMap<String, crate::config::Command>>,
}

/// What an account worker needs.
pub struct AccountWorker {
    account: Arc<Account>,
    login: Login,
    /// The account's secrets and token cache, shared by all its connections.
    credentials: Credentials,
    timeouts: Timeouts,
    store: Store,
    rules: CurrentRules,
    events: Events,
    /// The account's schedules (none for `--once`) and the sweep locks all accounts share.
    schedules: Vec<Schedule>,
    locks: SweepLocks,
    /// Where the watchers report their connections.
    health: Health,
}

impl AccountWorker {
    /// A worker for `account`, logging in with `password` (or OAuth2, with a token cache this
    /// worker owns); its watchers read `rules` per batch.
    pub fn new(
        account: &Account,
        password: Secret<String>,
        store: Store,
        rules: CurrentRules,
        events: Events,
        health: Health,
    ) -> AccountWorker {
        let timeouts = Timeouts {
            command: account.watch.command_timeout,
            idle_refresh: account.watch.idle_interval,
            send_id: account.imap_id,
            ..Timeouts::default()
        };
        let credentials = Credentials::new(account, password);
        AccountWorker {
            login: Login::new(account, &credentials),
            credentials,
            account: Arc::new(account.clone()),
            timeouts,
            store,
            rules,
            events,
            schedules: Vec::new(),
            locks: SweepLocks::default(),
            health,
        }
    }

    /// The same worker, also running `schedules` (this account's), with `locks` shared by
    /// every account's scheduler.
    pub fn with_schedules(mut self, schedules: Vec<Schedule>, locks: SweepLocks) -> AccountWorker {
        self.schedules = schedules;
        self.locks = locks;
        self
    }

    fn watcher(&self, mailbox: &crate::config::Mailbox, wake: &Arc<Wake>) -> MailboxWatcher {
        MailboxWatcher::new(
            self.account.clone(),
            mailbox.clone(),
            self.login.clone(),
            self.timeouts,
            self.store.clone(),
            self.rules.clone(),
            wake.clone(),
        )
        .reporting_to(self.health.watcher(&self.account.name, &mailbox.name))
    }

    fn executor(&self, wake: &Arc<Wake>) -> Executor {
        Executor::new(self.account.clone(), self.login.clone(), self.timeouts, self.store.clone(), wake.mailbox.clone())
    }

    fn outbound(&self) -> Outbound {
        Outbound::new(
            self.account.clone(),
            &self.credentials,
            self.store.clone(),
            self.events.webhooks.clone(),
            self.events.commands.clone(),
        )
    }

    /// How the watched mailboxes share the account's connections, and the line that says so.
    fn connection_plan(&self, mailboxes: &[Mailbox]) -> ConnectionPlan {
        let sweeps = crate::config::budget::sweeps(&self.account.name, &self.schedules);
        let plan = ConnectionPlan::new(mailboxes, self.account.connections, sweeps, self.account.watch.poll_interval);
        let polled: Vec<&str> = plan.polled.iter().map(|m| m.name.as_str()).collect();
        if plan.over_budget() {
            tracing::warn!(idle = plan.idle.len(), polled = ?polled, connections = plan.connections(), budget = plan.budget, "watch plan: {plan}");
        } else {
            tracing::info!(idle = plan.idle.len(), polled = ?polled, connections = plan.connections(), budget = plan.budget, "watch plan: {plan}");
        }
        plan
    }

    /// The mailboxes to watch: as configured, or with `mailboxes: all` the subscribed ones,
    /// listed now on a short-lived connection, retried with backoff until it works or
    /// `shutdown` (then `None`).
    async fn mailboxes(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Vec<Mailbox>> {
        if !self.account.subscribed {
            return Some(self.account.mailboxes.clone());
        }
        let mut backoff = imap::retry::Backoff::default();
        loop {
            match self.subscribed().await {
                Ok(mailboxes) => return Some(mailboxes),
                Err(error) => {
                    let delay = backoff.delay_for(&error);
                    tracing::error!(error = %error_chain(&error), retry_in = ?delay, "cannot list the subscribed mailboxes");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return None,
                    }
                }
            }
        }
    }

    /// The subscribed mailboxes that can hold new mail (see [`watchable`]).
    async fn subscribed(&self) -> Result<Vec<Mailbox>, imap::Error> {
        let mut session = Session::connect(&self.login, self.timeouts).await?;
        let folders = session.subscribed().await?;
        if let Err(e) = session.logout().await {
            tracing::debug!(error = %e, "logout failed; the connection is dropped anyway");
        }
        let (watched, skipped): (Vec<Folder>, Vec<Folder>) = folders.into_iter().partition(watchable);
        let skipped: Vec<&str> = skipped.iter().map(|f| f.name.as_str()).collect();
        tracing::info!(found = watched.len(), skipped = ?skipped, "mailboxes: all: the subscribed mailboxes listed");
        Ok(watched.into_iter().map(|f| Mailbox { name: f.name, backfill: self.account.backfill }).collect())
    }

    /// Runs the watchers and the executor until `shutdown`. A failed task (a store write that
    /// failed on a full disk, a store that could not be reached, a lease taken over) is logged and
    /// ends the whole account, whose other tasks stop at safe points; other accounts go on. The
    /// daemon starts it afresh with backoff (a fleet member only while it still holds the
    /// account), so it resumes by itself once the cause is gone (see `Fleet::restart_ended`).
    pub async fn run(self, mut outer: watch::Receiver<bool>) {
        let span = crate::telemetry::account_span(&self.account.name);
        let wake = Arc::new(Wake::default());
        let mut tasks = JoinSet::new();
        let (stop_all, shutdown) = watch::channel(*outer.borrow());
        let mut stopping = *outer.borrow();
        let Some(mailboxes) = self.mailboxes(&mut outer).instrument(span.clone()).await else { return };
        let plan = span.in_scope(|| self.connection_plan(&mailboxes));
        for mailbox in &plan.idle {
            let watcher = self.watcher(mailbox, &wake);
            let shutdown = shutdown.clone();
            tasks.spawn(
                async move { watcher.run(Mode::Daemon(shutdown)).await.map_err(crate::Error::from) }
                    .instrument(span.clone()),
            );
        }
        if !plan.polled.is_empty() {
            let watchers = plan.polled.iter().map(|m| self.watcher(m, &wake)).collect();
            let poller = MailboxPoller::new(watchers, self.login.clone(), self.timeouts, plan.poll_interval);
            let shutdown = shutdown.clone();
            tasks.spawn(async move { poller.run(shutdown).await.map_err(crate::Error::from) }.instrument(span.clone()));
        }
        let executor = self.executor(&wake);
        let stop = shutdown.clone();
        tasks.spawn(
            async move { executor.run(Mode::Daemon(stop)).await.map_err(crate::Error::from) }.instrument(span.clone()),
        );
        if !self.schedules.is_empty() {
            let scheduler = Scheduler::new(
                self.account.clone(),
                self.schedules.clone(),
                self.login.clone(),
                self.timeouts,
                self.store.clone(),
                self.rules.clone(),
                wake.clone(),
                self.locks.clone(),
            );
            let stop = shutdown.clone();
            tasks.spawn(
                async move {
                    scheduler.run(stop).await;
                    Ok(())
                }
                .instrument(span.clone()),
            );
        }
        let (mail, events) = (self.outbound(), self.outbound());
        let (stop, notify) = (shutdown.clone(), wake.mail.clone());
        tasks.spawn(
            async move { mail.run_mail(notify, Mode::Daemon(stop)).await.map_err(crate::Error::from) }
                .instrument(span.clone()),
        );
        let notify = wake.events.clone();
        tasks.spawn(
            async move { events.run_events(notify, shutdown).await.map_err(crate::Error::from) }
                .instrument(span.clone()),
        );
        loop {
            let joined = tokio::select! {
                joined = tasks.join_next() => joined,
                changed = outer.changed(), if !stopping => {
                    stopping = changed.is_err() || *outer.borrow();
                    if stopping {
                        let _ = stop_all.send(true);
                    }
                    continue;
                }
            };
            let failed = match joined {
                None => break,
                Some(Ok(Ok(()))) => None,
                Some(Ok(Err(error))) => {
                    let error = crate::causes::error_chain(&error);
                    span.in_scope(|| tracing::error!(%error, "account task stopped"));
                    Some(error)
                }
                Some(Err(panic)) => {
                    span.in_scope(|| tracing::error!(%panic, "account task panicked"));
                    Some(format!("a task panicked: {panic}"))
                }
            };
            if let Some(error) = failed.filter(|_| !stopping) {
                span.in_scope(|| {
                    tracing::warn!("stopping the account's other tasks; it is started again after a pause")
                });
                self.down_with_the_account(&error);
                stopping = true;
                let _ = stop_all.send(true);
            }
        }
    }

    /// The account's watchers still shown up are shown down with `error` (a failed watcher
    /// already says why): until the account is started again none of them watches, and the
    /// restart waits until these states can be written (see `Fleet::restart_ended`).
    fn down_with_the_account(&self, error: &str) {
        for ((account, mailbox), state) in self.health.watchers() {
            if account == self.account.name && state.conn.is_up() {
                self.health.watcher(&account, &mailbox).failed(&format!("stopped with the account: {error}"));
            }
        }
    }

    /// `--once`: one pass per mailbox, then every resulting action, then return. The first
    /// error ends it.
    pub async fn run_once(self) -> Result<(), crate::Error> {
        let span = crate::telemetry::account_span(&self.account.name);
        let wake = Arc::new(Wake::default());
        async {
            let mailboxes = match self.account.subscribed {
                true => self.subscribed().await.map_err(|source| watcher::Error::Imap {
                    account: self.account.name.clone(),
                    mailbox: "(all subscribed)".into(),
                    source,
                })?,
                false => self.account.mailboxes.clone(),
            };
            // The executor runs beside the pass, so moving a backlog overlaps fetching it; it
            // finishes what remains once every plan is stored and mail and events are out.
            let (all_stored, stored) = tokio::sync::watch::channel(false);
            let sources = async {
                let passed = async {
                    // One watcher at a time (plus the executor): the budget is not at stake.
                    for mailbox in &mailboxes {
                        self.watcher(mailbox, &wake).run(Mode::Once).await?;
                    }
                    // Before the executor finishes: a Sent copy is an IMAP action the mail lane adds.
                    self.outbound().run_mail(wake.mail.clone(), Mode::Once).await?;
                    self.outbound().run_events_once().await?;
                    Ok::<(), crate::Error>(())
                }
                .await;
                // Also after a failure: the executor carries out what was stored, then ends.
                let _ = all_stored.send(true);
                passed
            };
            let (sourced, executed) = tokio::join!(sources, self.executor(&wake).beside(stored).run(Mode::Once));
            sourced?;
            executed?;
            Ok(())
        }
        .instrument(span)
        .await
    }
}

/// Whether a subscribed mailbox is watched under `mailboxes: all`: not one that cannot be
/// selected, and not a special-use folder. Sent, Drafts, Trash and Junk hold no new mail to
/// act on; Archive and Gmail's All Mail receive what the rules move there, so watching them
/// would run the rules again on every message they just moved (and All Mail holds all of it).
fn watchable(folder: &Folder) -> bool {
    const SKIPPED: &[&str] =
        &["\\Noselect", "\\NonExistent", "\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged"];
    !SKIPPED.iter().any(|a| folder.has_attribute(a))
}

#[cfg(test)]
mod tests {
    use crate::imap::Folder;

    #[test]
    fn special_use_and_unselectable_folders_are_not_watched() {
        let folder = |name: &str, attributes: &[&str]| Folder {
            name: name.into(),
            server_name: name.into(),
            attributes: attributes.iter().map(|a| a.to_string()).collect(),
        };
        assert!(super::watchable(&folder("INBOX", &["\\HasNoChildren"])));
        assert!(super::watchable(&folder("Lists/rust", &[])));
        for (name, attribute) in
            [("Sent", "\\Sent"), ("[Gmail]/All Mail", "\\All"), ("Archive", "\\archive"), ("Lists", "\\Noselect")]
        {
            assert!(!super::watchable(&folder(name, &[attribute])), "{name}");
        }
    }
}
