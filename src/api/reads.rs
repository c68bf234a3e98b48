//! The API's own database connections for reads: a few connections, each used by one
//! request at a time, separate from the pool of the write path.
//!
//! Entry points: [`ReadPool::new`], [`ReadPool::run`].
//! Invariants: at most `size` reads run at once (a permit per read, waited for at most
//! [`PERMIT_WAIT`], then a `503 busy`), and each holds a connection of its own, so no
//! read ever waits for a connection once it has its permit, and list readers can never
//! take connections from the write path. A connection is not pinged before use (that
//! was one more round trip to PostgreSQL per request): a read that fails drops its
//! connection, and the next read makes a new one. Prepared statements stay cached on the
//! connections between requests. The database's error text goes to the log only. The
//! threads that run reads (the HTTP workers' blocking threads) run at nice
//! [`READ_THREAD_NICE`]: a burst of large lists takes the CPU the daemon does not need,
//! never the CPU of the HTTP workers (`/health`) or of the trading actors.

use crate::api::error::ApiError;
use actix_web::web;
use diesel::r2d2::{ConnectionManager, ManageConnection};
use diesel::PgConnection;
use slog::Logger;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Longest wait for a read permit before a request is refused as `busy` (503 with
/// `Retry-After`).
pub const PERMIT_WAIT: Duration = Duration::from_secs(2);

/// The nice value of the threads that run API reads (0 is the daemon's own; 19 the
/// lowest priority). Linux applies a nice value to one thread.
pub const READ_THREAD_NICE: i32 = 10;

thread_local! {
    static NICED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lowers the calling thread's CPU priority to [`READ_THREAD_NICE`], once per thread.
/// A failure (not Linux, or a policy that forbids it) leaves the priority as it was.
fn yield_cpu_to_the_rest_of_the_daemon() {
    NICED.with(|done| {
        if done.get() {
            return;
        }
        done.set(true);
        // SAFETY: gettid and setpriority take no pointers; on Linux, PRIO_PROCESS with a
        // thread id changes that one thread's nice value.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid);
            if let Ok(tid) = libc::id_t::try_from(tid) {
                libc::setpriority(libc::PRIO_PROCESS, tid, READ_THREAD_NICE);
            }
        }
    });
}

/// Connections and permits of the API's reads; cheap to clone.
#[derive(Clone)]
pub struct ReadPool {
    manager: Arc<ConnectionManager<PgConnection>>,
    idle: Arc<Mutex<Vec<PgConnection>>>,
    permits: Arc<Semaphore>,
    log: Logger,
}

impl ReadPool {
    /// A pool of at most `size` connections to `database_url`, made when first needed.
    pub fn new(database_url: &str, size: usize, log: &Logger) -> ReadPool {
        ReadPool {
            manager: Arc::new(ConnectionManager::new(database_url)),
            idle: Arc::new(Mutex::new(Vec::with_capacity(size))),
            permits: Arc::new(Semaphore::new(size.max(1))),
            log: log.new(slog::o!("component" => "api_reads")),
        }
    }

    /// Runs `f` on a connection of its own on the blocking thread pool. A failure is a
    /// 503 "database unavailable" (the detail is logged); no free permit within
    /// [`PERMIT_WAIT`] is a 503 `busy`.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
    {
        let _permit = tokio::time::timeout(PERMIT_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::busy())?
            .map_err(|_| ApiError::busy())?;
        let manager = self.manager.clone();
        let idle = self.idle.clone();
        let outcome = web::block(move || {
            yield_cpu_to_the_rest_of_the_daemon();
            let taken = idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            let mut conn = match taken {
                Some(c) => c,
                None => manager
                    .connect()
                    .map_err(|e| format!("no database connection: {e}"))?,
            };
            let result = f(&mut conn).map_err(|e| format!("query failed: {e}"));
            if result.is_ok() {
                if let Ok(mut v) = idle.lock() {
                    v.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| format!("database task failed: {e}"))
        .and_then(|r| r);
        outcome.map_err(|detail| {
            slog::warn!(self.log, "API read failed"; "error" => detail);
            ApiError::unavailable("database unavailable")
        })
    }
}
