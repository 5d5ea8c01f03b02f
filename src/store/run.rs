//! Where an operation runs: on the SQLite store thread, or on a pooled PostgreSQL connection in
//! a task of its own. Either way a caller who stops waiting leaves the operation to complete,
//! committed or rolled back, never halfway.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::sql::{self, Db, Fence, Pending};
use super::{Backend, Error, Result, Store};

impl Store {
    /// Runs `op`, which reads, outside a transaction (each statement sees what is committed).
    pub(super) async fn read<T, F>(&self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Db) -> Pending<'a, T> + Send + 'static,
    {
        self.run(None, op).await
    }

    /// Runs `op` in one transaction fenced by `fence` (see `sql::Db::begin_write`): committed
    /// when it returns `Ok`, rolled back when it returns an error.
    pub(super) async fn write<T, F>(&self, fence: Fence, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Db) -> Pending<'a, T> + Send + 'static,
    {
        self.run(Some(fence), op).await
    }

    /// Queues `op`, a write fenced by `fence`, behind every write posted before and without
    /// waiting for it: on SQLite the store thread's queue, on PostgreSQL the store's writer task,
    /// which keeps the order. Its failure goes to `failed` (which logs it).
    pub(super) fn post<F, L>(&self, fence: Fence, op: F, failed: L)
    where
        F: for<'a> FnOnce(&'a Db) -> Pending<'a, ()> + Send + 'static,
        L: FnOnce(Error) + Send + 'static,
    {
        // The queue is gone only at shutdown, when there is no one to report to.
        match &self.backend {
            Backend::Sqlite(jobs) => {
                let _ = jobs.send(Box::new(move |db| {
                    if let Err(error) = sql::finish(on(db, Some(fence), op)) {
                        failed(error);
                    }
                }));
            }
            Backend::Postgres(pg) => {
                let fencing = pg.fencing();
                pg.writer.post(move |pool| async move {
                    let done = match pool.get().await {
                        Ok(client) => on(&Db::postgres(client, fencing), Some(fence), op).await,
                        Err(error) => Err(Error::Pool(error)),
                    };
                    if let Err(error) = done {
                        failed(error);
                    }
                });
            }
        }
    }

    /// Waits until every write posted before has run, so that a read after it sees them (on
    /// SQLite the store thread's queue does that by itself).
    pub(super) async fn flush_posted(&self) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.writer.flush().await;
        }
    }

    async fn run<T, F>(&self, fence: Option<Fence>, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Db) -> Pending<'a, T> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(jobs) => {
                let (reply_tx, reply_rx) = oneshot::channel();
                let job: super::sqlite::Job = Box::new(move |db| {
                    // The caller may have stopped waiting; the work is done either way.
                    let _ = reply_tx.send(sql::finish(on(db, fence, op)));
                });
                jobs.send(job).map_err(|_| Error::Stopped)?;
                reply_rx.await.map_err(|_| Error::Stopped)?
            }
            Backend::Postgres(pg) => {
                let db = Db::postgres(pg.client().await?, pg.fencing());
                let pg = Arc::clone(pg);
                let task = tokio::spawn(async move {
                    let done = on(&db, fence, op).await;
                    drop(pg);
                    done
                });
                task.await.map_err(|_| Error::Stopped)?
            }
        }
    }
}

async fn on<T, F>(db: &Db, fence: Option<Fence>, op: F) -> Result<T>
where
    F: for<'a> FnOnce(&'a Db) -> Pending<'a, T>,
{
    match fence {
        Some(fence) => sql::write(db, &fence, op).await,
        None => op(db).await,
    }
}
