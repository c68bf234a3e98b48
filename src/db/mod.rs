//! PostgreSQL storage (diesel + r2d2): schema, row types, queries, migrations, and the
//! embedded private cluster.
//!
//! Entry points: [`connect`] (pool), [`run_migrations`] (embedded `migrations/`),
//! [`queries`] (plain functions over `&mut PgConnection`), [`embedded::EmbeddedPostgres`].
//! Invariant: diesel is blocking; nothing here runs on an actor's event loop (the
//! store's writer and readers are plain threads, the API calls through `web::block`).

pub mod embedded;
pub mod mapping;
pub mod models;
pub mod queries;
pub mod schema;

use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pool of PostgreSQL connections.
pub type DbPool = Pool<ConnectionManager<PgConnection>>;
/// One connection checked out of the pool.
pub type DbConn = PooledConnection<ConnectionManager<PgConnection>>;

/// A storage failure. Messages never contain the connection URL (it holds a password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The pool could not be built or a connection could not be checked out.
    #[error("database connection failed: {0}")]
    Pool(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Builds a connection pool and checks that one connection can be made.
pub fn connect(url: &str, max_size: u32) -> Result<DbPool, DbError> {
    let manager = ConnectionManager::<PgConnection>::new(url);
    Pool::builder()
        .max_size(max_size)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .map_err(|e| DbError::Pool(scrub_url(&e.to_string(), url)))
}

/// Applies every pending migration; returns the versions applied now.
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    conn.run_pending_migrations(MIGRATIONS)
        .map(|v| v.iter().map(|m| m.to_string()).collect())
        .map_err(|e| DbError::Migration(e.to_string()))
}

/// Checks out a connection with a clear error.
pub fn conn(pool: &DbPool) -> Result<DbConn, DbError> {
    pool.get().map_err(|e| DbError::Pool(e.to_string()))
}

/// Removes a connection URL from an error text (libpq sometimes echoes it).
fn scrub_url(text: &str, url: &str) -> String {
    if url.is_empty() {
        text.to_string()
    } else {
        text.replace(url, "postgres://***")
    }
}

/// PostgreSQL cannot store NUL characters in `TEXT` or `JSONB` (`\u0000`): text that
/// comes from outside (a model's reply, a venue's error) is stored with each NUL
/// replaced by U+FFFD, so a stray NUL never makes a write fail.
pub mod pg_text {
    /// Replaces NUL characters in place.
    pub fn clean(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
        }
    }

    /// [`clean`] on an optional text.
    pub fn clean_opt(s: &mut Option<String>) {
        if let Some(s) = s.as_mut() {
            clean(s);
        }
    }

    /// [`clean`] on every string and key of a JSON value.
    pub fn clean_json(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => clean(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean_json),
            serde_json::Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    let old = std::mem::take(map);
                    for (mut k, mut val) in old {
                        clean(&mut k);
                        clean_json(&mut val);
                        map.insert(k, val);
                    }
                } else {
                    map.values_mut().for_each(clean_json);
                }
            }
            _ => {}
        }
    }

    /// [`clean_json`] on an optional value.
    pub fn clean_json_opt(v: &mut Option<serde_json::Value>) {
        if let Some(v) = v.as_mut() {
            clean_json(v);
        }
    }
}
