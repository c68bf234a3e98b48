//! The API's own database connections for reads, separate from the write path's pool.
//!
//! Entry points: [`ReadPool::new`], [`ReadPool::load_here`] (short pages, on the HTTP
//! worker), [`ReadPool::run`] (everything else, on the blocking pool).
//!
//! Short pages: each HTTP worker keeps one asynchronous connection of its own
//! (diesel-async), made when first needed and shared, pipelined, by every request the
//! worker serves; the worker goes on serving other requests while PostgreSQL answers, so
//! a list costs no hand-off between threads. A read that does not finish within
//! [`HERE_WAIT`] or fails drops the worker's connection; one that fails on a connection
//! that served earlier reads is tried once on a new one.
//!
//! Blocking reads: at most `size` run at once (a permit per read, waited for at most
//! [`PERMIT_WAIT`], then a `503 busy`), and each holds a connection of its own, so no
//! read ever waits for a connection once it has its permit, and list readers can never
//! take connections from the write path. A connection is not pinged before use (that
//! was one more round trip to PostgreSQL per request): a read that fails drops its
//! connection, and the next read makes a new one. Prepared statements stay cached on the
//! connections between requests. The threads that run these reads (the HTTP workers'
//! blocking threads) run at nice [`READ_THREAD_NICE`]: a burst of large lists takes the
//! CPU the daemon does not need, never the CPU of the HTTP workers (`/health`) or of the
//! trading actors.
//!
//! Either way the database's error text goes to the log only.

use crate::api::error::ApiError;
use actix_web::web;
use diesel::r2d2::{ConnectionManager, ManageConnection};
use diesel::PgConnection;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use slog::Logger;
use std::cell::RefCell;
use std::rc::Rc;
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

/// Largest page read on the HTTP worker itself (see [`ReadPool::load_here`]).
pub const HERE_MAX_ROWS: i64 = 200;

/// Longest wait for PostgreSQL's answer to a read on an HTTP worker, connection included.
pub const HERE_WAIT: Duration = Duration::from_secs(5);

thread_local! {
    /// This HTTP worker's own connection for short reads (pipelined: every request the
    /// worker serves shares it).
    static HERE: RefCell<Option<Rc<AsyncPgConnection>>> = const { RefCell::new(None) };
}

/// Connections and permits of the API's reads; cheap to clone.
#[derive(Clone)]
pub struct ReadPool {
    url: Arc<str>,
    manager: Arc<ConnectionManager<PgConnection>>,
    idle: Arc<Mutex<Vec<PgConnection>>>,
    permits: Arc<Semaphore>,
    log: Logger,
}

impl ReadPool {
    /// A pool of at most `size` connections to `database_url`, made when first needed.
    pub fn new(database_url: &str, size: usize, log: &Logger) -> ReadPool {
        ReadPool {
            url: Arc::from(database_url),
            manager: Arc::new(ConnectionManager::new(database_url)),
            idle: Arc::new(Mutex::new(Vec::with_capacity(size))),
            permits: Arc::new(Semaphore::new(size.max(1))),
            log: log.new(slog::o!("component" => "api_reads")),
        }
    }

    /// Loads the query `build` makes on this HTTP worker's own connection, without
    /// leaving the worker's thread: the worker serves other requests while PostgreSQL
    /// answers, and every request of the worker shares the connection (pipelined). A
    /// failure on a connection that served earlier reads (PostgreSQL restarted since)
    /// is tried once more on a new one. A failure, or no answer within [`HERE_WAIT`],
    /// is a 503 "database unavailable" (the detail is logged) and drops the connection.
    pub async fn load_here<Q, U>(&self, build: impl Fn() -> Q) -> Result<Vec<U>, ApiError>
    where
        Q: for<'c> diesel_async::methods::LoadQuery<'static, &'c AsyncPgConnection, U> + 'static,
        U: Send + 'static,
    {
        let attempts = async {
            let cached = HERE.with(|c| c.borrow().clone());
            let reused = cached.is_some();
            let conn = match cached {
                Some(c) => c,
                None => self.connect_here().await?,
            };
            match load_on(&conn, build()).await {
                Ok(rows) => Ok(rows),
                Err(e) if !reused => Err(e),
                Err(_) => {
                    let conn = self.connect_here().await?;
                    load_on(&conn, build()).await
                }
            }
        };
        let outcome = tokio::time::timeout(HERE_WAIT, attempts)
            .await
            .unwrap_or_else(|_| {
                HERE.with(|h| h.borrow_mut().take());
                Err(format!("no answer within {} s", HERE_WAIT.as_secs()))
            });
        outcome.map_err(|detail| {
            slog::warn!(self.log, "API read failed"; "error" => detail);
            ApiError::unavailable("database unavailable")
        })
    }

    /// A new connection for this worker's reads, kept for the next ones.
    async fn connect_here(&self) -> Result<Rc<AsyncPgConnection>, String> {
        let c = Rc::new(
            AsyncPgConnection::establish(&self.url)
                .await
                .map_err(|e| format!("no database connection: {e}"))?,
        );
        HERE.with(|h| *h.borrow_mut() = Some(c.clone()));
        Ok(c)
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

/// Loads `q` on `conn`; a failure drops `conn` from this worker.
async fn load_on<Q, U>(conn: &Rc<AsyncPgConnection>, q: Q) -> Result<Vec<U>, String>
where
    Q: for<'c> diesel_async::methods::LoadQuery<'static, &'c AsyncPgConnection, U> + 'static,
    U: Send + 'static,
{
    let mut shared: &AsyncPgConnection = conn;
    diesel_async::RunQueryDsl::load(q, &mut shared)
        .await
        .map_err(|e| {
            forget_here(conn);
            format!("query failed: {e}")
        })
}

/// Drops this worker's connection if it is still `conn`.
fn forget_here(conn: &Rc<AsyncPgConnection>) {
    HERE.with(|h| {
        let mut h = h.borrow_mut();
        if h.as_ref().is_some_and(|c| Rc::ptr_eq(c, conn)) {
            *h = None;
        }
    });
}
