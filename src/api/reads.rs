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
//! connections between requests. The database's error text goes to the log only.

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
