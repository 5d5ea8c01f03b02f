//! The PostgreSQL store's fire-and-forget writes (watcher states), run one at a time, in the
//! order they were posted, by one task: the order SQLite's store thread gives its queue for free.
//! A pooled connection per call would race them, and an older state could land last.

use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

/// A posted write: given the pool, the future that makes it (it logs its own failure).
type Job = Box<dyn FnOnce(Pool) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The queue of posted writes.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the task that runs the posted writes on connections of `pool`, on the current
    /// runtime; it ends when the store (this sender) is dropped.
    pub(super) fn start(pool: Pool) -> Writer {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = queue.recv().await {
                job(pool.clone()).await;
            }
        });
        Writer { jobs }
    }

    /// Queues `write` behind every write posted before, without waiting for it.
    pub(crate) fn post<F, W>(&self, write: W)
    where
        W: FnOnce(Pool) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        // The task is gone only when the runtime shuts down: there is no one to report to then.
        let _ = self.jobs.send(Box::new(move |pool| Box::pin(write(pool))));
    }

    /// Waits until every write posted before has run, so that a read after it sees them (as a
    /// read queued behind them on SQLite's store thread does).
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        self.post(move |_| async move {
            let _ = done.send(());
        });
        // An error: the task is gone (the runtime is shutting down), nothing is left to wait for.
        let _ = wait.await;
    }
}
