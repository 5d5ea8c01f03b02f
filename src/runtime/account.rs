//! One account's workers: a watcher per mailbox and one executor, in the account's span.

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::{Account, Secret};
use crate::exec::Executor;
use crate::imap::{Login, Timeouts};
use crate::rules::CurrentRules;
use crate::source::watch::MailboxWatcher;
use crate::store::Store;

/// What an account worker needs.
pub struct AccountWorker {
    account: Arc<Account>,
    login: Login,
    timeouts: Timeouts,
    store: Store,
    rules: CurrentRules,
}

impl AccountWorker {
    /// A worker for `account`, logging in with `password`; its watchers read `rules` per batch.
    pub fn new(account: &Account, password: Secret<String>, store: Store, rules: CurrentRules) -> AccountWorker {
        let timeouts = Timeouts {
            command: account.watch.command_timeout,
            idle_refresh: account.watch.idle_interval,
            ..Timeouts::default()
        };
        AccountWorker {
            login: Login::new(account, password),
            account: Arc::new(account.clone()),
            timeouts,
            store,
            rules,
        }
    }

    fn watcher(&self, mailbox: &crate::config::Mailbox, wake: &Arc<Notify>) -> MailboxWatcher {
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

    fn executor(&self, wake: &Arc<Notify>) -> Executor {
        Executor::new(self.account.clone(), self.login.clone(), self.timeouts, self.store.clone(), wake.clone())
    }

    /// Runs the watchers and the executor until `shutdown`. A failing task is logged; the others
    /// (and other accounts) go on.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let span = crate::telemetry::account_span(&self.account.name);
        let wake = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        for mailbox in &self.account.mailboxes {
            let watcher = self.watcher(mailbox, &wake);
            let shutdown = shutdown.clone();
            tasks
                .spawn(async move { watcher.run(shutdown).await.map_err(crate::Error::from) }.instrument(span.clone()));
        }
        let executor = self.executor(&wake);
        tasks.spawn(async move { executor.run(shutdown).await.map_err(crate::Error::from) }.instrument(span.clone()));
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
        let wake = Arc::new(Notify::new());
        async {
            for mailbox in &self.account.mailboxes {
                self.watcher(mailbox, &wake).run_once().await?;
            }
            self.executor(&wake).run_once().await?;
            Ok(())
        }
        .instrument(span)
        .await
    }
}
