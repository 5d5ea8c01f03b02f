//! One account's workers, in the account's span: a watcher per mailbox, the IMAP executor, the
//! outbound dispatcher's two lanes (mail; webhooks and commands), and the account's schedules.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::{Account, Schedule, Secret};
use crate::exec::outbound::Outbound;
use crate::exec::webhook::Webhooks;
use crate::exec::{Executor, Wake};
use crate::imap::{Login, Timeouts};
use crate::rules::CurrentRules;
use crate::source::schedule::{Scheduler, SweepLocks};
use crate::source::watch::MailboxWatcher;
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
    password: Secret<String>,
    timeouts: Timeouts,
    store: Store,
    rules: CurrentRules,
    events: Events,
    /// The account's schedules (none for `--once`) and the sweep locks all accounts share.
    schedules: Vec<Schedule>,
    locks: SweepLocks,
}

impl AccountWorker {
    /// A worker for `account`, logging in with `password`; its watchers read `rules` per batch.
    pub fn new(
        account: &Account,
        password: Secret<String>,
        store: Store,
        rules: CurrentRules,
        events: Events,
    ) -> AccountWorker {
        let timeouts = Timeouts {
            command: account.watch.command_timeout,
            idle_refresh: account.watch.idle_interval,
            ..Timeouts::default()
        };
        AccountWorker {
            login: Login::new(account, password.clone()),
            password,
            account: Arc::new(account.clone()),
            timeouts,
            store,
            rules,
            events,
            schedules: Vec::new(),
            locks: SweepLocks::default(),
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
    }

    fn executor(&self, wake: &Arc<Wake>) -> Executor {
        Executor::new(self.account.clone(), self.login.clone(), self.timeouts, self.store.clone(), wake.mailbox.clone())
    }

    fn outbound(&self) -> Outbound {
        Outbound::new(
            self.account.clone(),
            self.password.clone(),
            self.store.clone(),
            self.events.webhooks.clone(),
            self.events.commands.clone(),
        )
    }

    /// Runs the watchers and the executor until `shutdown`. A failing task is logged; the others
    /// (and other accounts) go on.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let span = crate::telemetry::account_span(&self.account.name);
        let wake = Arc::new(Wake::default());
        let mut tasks = JoinSet::new();
        for mailbox in &self.account.mailboxes {
            let watcher = self.watcher(mailbox, &wake);
            let shutdown = shutdown.clone();
            tasks
                .spawn(async move { watcher.run(shutdown).await.map_err(crate::Error::from) }.instrument(span.clone()));
        }
        let executor = self.executor(&wake);
        let stop = shutdown.clone();
        tasks.spawn(async move { executor.run(stop).await.map_err(crate::Error::from) }.instrument(span.clone()));
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
            async move { mail.run_mail(notify, stop).await.map_err(crate::Error::from) }.instrument(span.clone()),
        );
        let notify = wake.events.clone();
        tasks.spawn(
            async move { events.run_events(notify, shutdown).await.map_err(crate::Error::from) }
                .instrument(span.clone()),
        );
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    span.in_scope(|| tracing::error!(error = %crate::exec::error_chain(&error), "account task stopped"))
                }
                Err(panic) => span.in_scope(|| tracing::error!(%panic, "account task panicked")),
            }
        }
    }

    /// `--once`: one pass per mailbox, then every resulting action, then return. The first
    /// error ends it.
    pub async fn run_once(self) -> Result<(), crate::Error> {
        let span = crate::telemetry::account_span(&self.account.name);
        let wake = Arc::new(Wake::default());
        async {
            for mailbox in &self.account.mailboxes {
                self.watcher(mailbox, &wake).run_once().await?;
            }
            // Mail and events first: a Sent copy is an IMAP action the mail lane adds.
            self.outbound().run_mail_once().await?;
            self.outbound().run_events_once().await?;
            self.executor(&wake).run_once().await?;
            Ok(())
        }
        .instrument(span)
        .await
    }
}
