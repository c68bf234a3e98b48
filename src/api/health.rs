//! `/health` without the request path touching the database: a probe thread with a
//! connection of its own runs `SELECT 1` every [`PROBE_EVERY`] and the handler reads the
//! last result.
//!
//! Entry points: [`HealthProbe::start`], [`HealthProbe::report`].
//! Invariants: the probe never takes a connection from the shared pool (a pool
//! exhausted by list readers or by the write path cannot make a healthy daemon look
//! dead, and a probe never waits behind them); the handler never blocks; the database is
//! "ok" only if the last successful probe is younger than [`STALE_AFTER`] (a probe stuck
//! on a hung server turns the answer to "unavailable" by itself). The probe's error text
//! goes to the log, never into the answer. The thread ends when the last handle is
//! dropped.

use diesel::r2d2::{ConnectionManager, ManageConnection};
use diesel::{PgConnection, RunQueryDsl};
use serde::Serialize;
use slog::{info, warn, Logger};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often the probe asks the database.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// A last success older than this makes the database "unavailable".
pub const STALE_AFTER: Duration = Duration::from_secs(3);

#[derive(Default)]
struct ProbeState {
    last_ok: Option<Instant>,
    last_latency: Option<Duration>,
    failing_since: Option<Instant>,
}

/// Handle on the probe; cheap to clone.
#[derive(Clone)]
pub struct HealthProbe {
    state: Arc<Mutex<ProbeState>>,
}

/// What `/health` answers.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// `ok`, `unavailable` or `starting` (no probe finished yet).
    pub database: &'static str,
    /// Age of the last successful probe, ms.
    pub checked_ms_ago: Option<u64>,
    /// Round trip of the last successful probe, ms.
    pub probe_ms: Option<f64>,
}

impl HealthReport {
    /// Whether the daemon should be considered healthy (HTTP 200).
    pub fn healthy(&self) -> bool {
        self.status == "ok"
    }
}

impl HealthProbe {
    /// Starts the probe thread with a connection of its own to `database_url` (the URL
    /// the pool uses; it is never logged).
    pub fn start(database_url: &str, log: &Logger) -> HealthProbe {
        let probe = HealthProbe {
            state: Arc::new(Mutex::new(ProbeState::default())),
        };
        let weak = Arc::downgrade(&probe.state);
        let manager = ConnectionManager::<PgConnection>::new(database_url);
        let log = log.new(slog::o!("component" => "health_probe"));
        let thread_log = log.clone();
        let spawned = std::thread::Builder::new()
            .name("vibex-health".into())
            .spawn(move || run(manager, weak, thread_log));
        if let Err(e) = spawned {
            // Without a probe /health answers "starting" (503): loud, not silent.
            slog::error!(log, "the health probe thread could not start"; "error" => e.to_string());
        }
        probe
    }

    /// The last probe's verdict.
    pub fn report(&self) -> HealthReport {
        let s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let age = s.last_ok.map(|t| t.elapsed());
        let fresh = age.is_some_and(|a| a <= STALE_AFTER);
        let database = match (fresh, s.last_ok, s.failing_since) {
            (true, _, _) => "ok",
            (false, None, None) => "starting",
            _ => "unavailable",
        };
        HealthReport {
            status: if fresh { "ok" } else { "degraded" },
            database,
            checked_ms_ago: age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            probe_ms: s.last_latency.map(|l| l.as_secs_f64() * 1000.0),
        }
    }
}

fn run(manager: ConnectionManager<PgConnection>, state: Weak<Mutex<ProbeState>>, log: Logger) {
    let mut conn = None;
    let mut was_ok = true;
    loop {
        let Some(shared) = state.upgrade() else {
            return;
        };
        let started = Instant::now();
        let outcome = probe_once(&manager, &mut conn);
        {
            let mut s = match shared.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            match &outcome {
                Ok(()) => {
                    s.last_ok = Some(Instant::now());
                    s.last_latency = Some(started.elapsed());
                    s.failing_since = None;
                }
                Err(_) => {
                    s.failing_since.get_or_insert_with(Instant::now);
                }
            }
        }
        drop(shared);
        match outcome {
            Ok(()) if !was_ok => {
                info!(log, "database reachable again");
                was_ok = true;
            }
            Err(e) if was_ok => {
                warn!(log, "database probe failed: /health answers degraded"; "error" => e);
                was_ok = false;
            }
            _ => {}
        }
        std::thread::sleep(PROBE_EVERY);
    }
}

fn probe_once(
    manager: &ConnectionManager<PgConnection>,
    conn: &mut Option<PgConnection>,
) -> Result<(), String> {
    if conn.is_none() {
        *conn = Some(manager.connect().map_err(|e| e.to_string())?);
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    match diesel::sql_query("SELECT 1").execute(c) {
        Ok(_) => Ok(()),
        Err(e) => {
            // Reconnect on the next probe.
            *conn = None;
            Err(e.to_string())
        }
    }
}
