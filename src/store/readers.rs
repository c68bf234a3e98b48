//! A few reader threads for [`super::Store::read`]: diesel is blocking, so reads run
//! here, never on an actor's event loop.
//!
//! Invariant: a fixed number of threads, whatever the number of accounts; they stop
//! when the last [`Readers`] handle is dropped.

use super::StoreError;
use crate::db::DbPool;
use diesel::{PgConnection, QueryResult};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&DbPool) + Send>;

/// The reader threads and the channel that feeds them.
pub(crate) struct Readers {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Readers {
    /// Starts `threads` reader threads over `pool`.
    pub(crate) fn start(pool: DbPool, threads: usize) -> Result<Readers, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (rx, pool) = (rx.clone(), pool.clone());
            std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(&pool),
                        Err(_) => break,
                    }
                })
                .map_err(|e| StoreError::Io {
                    what: "start a reader thread",
                    path: Default::default(),
                    error: e.to_string(),
                })?;
        }
        Ok(Readers {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `f` on a reader thread with a pooled connection.
    pub(crate) fn run<T, F>(&self, f: F) -> oneshot::Receiver<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |pool: &DbPool| {
            let result = match pool.get() {
                Ok(mut conn) => f(&mut conn).map_err(|e| StoreError::Database(e.to_string())),
                Err(e) => Err(StoreError::Database(format!(
                    "no database connection for a read: {e}"
                ))),
            };
            let _ = tx.send(result);
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send(job),
            Err(poisoned) => poisoned.into_inner().send(job),
        };
        // If the threads are gone the job (and its sender) is dropped: the receiver
        // then reports the store closed.
        drop(sent);
        rx
    }
}
