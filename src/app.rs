//! Wiring: configuration -> logging -> database -> actix System -> Supervisor + HTTP
//! server -> signal -> graceful shutdown.
//!
//! Entry points: [`run`] (`vibex run`), [`migrate`] (`vibex migrate`). `run` first
//! raises the open-file soft limit to the hard limit (and logs both). Start: the
//! store opens and replays a spool left by an earlier run before any account starts
//! (trading resumes only on a complete database). Shutdown on SIGTERM/SIGINT: no new
//! cycles, cycles in flight finish, the store flushes what is queued (to PostgreSQL,
//! or to the spool) and says how many rows went where, the HTTP server stops, the
//! embedded database stops, logs flush — within 10 s: at most 5 s for cycles in
//! flight, 2 s for queued writes, 0.5 s for HTTP, 2 s for the embedded server.

use crate::actors::event_bus::EventBus;
use crate::actors::messages::Shutdown;
use crate::actors::supervisor::{StoredControls, Supervisor};
use crate::api::auth::{self, Gate, ServingPlan};
use crate::api::{self, ApiState};
use crate::config::LoadOptions;
use crate::config::{AccountConfig, Settings};
use crate::control::{Audit, ControlPlane};
use crate::db::{self, embedded::EmbeddedPostgres, models::AccountRow, queries, DbPool};
use crate::store::{Store, StoreError};
use crate::telemetry::{self, LogDomain, LogSettings, SecretMask, Telemetry};
use actix::prelude::*;
use actix_web::{web, App, HttpServer};
use slog::{error, info, warn, Logger};
use std::sync::Arc;
use std::time::Duration;

/// Time allowed for cycles in flight to finish at shutdown.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// Time allowed for the store to write what is queued (to PostgreSQL or the spool).
const FLUSH_DEADLINE: Duration = Duration::from_secs(2);

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Log directory not writable, port taken, ...
    #[error("{0}")]
    Io(String),
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// The embedded database could not start.
    #[error(transparent)]
    Embedded(#[from] db::embedded::EmbeddedPgError),
    /// The actor topology could not be built.
    #[error(transparent)]
    Topology(#[from] crate::actors::supervisor::TopologyError),
    /// The write path could not start (spool directory, start-up replay).
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Starts logging with every configured secret registered for masking.
pub fn init_logging(settings: &Settings) -> Result<(Telemetry, SecretMask), AppError> {
    let mask = SecretMask::new(settings.secret_values());
    let level = telemetry::parse_level(&settings.log_level).unwrap_or(slog::Level::Info);
    let tel = telemetry::init(&LogSettings::new(&settings.log_dir, level), mask.clone()).map_err(
        |e| {
            AppError::Io(format!(
                "cannot write logs to {}: {e} (set log_dir or VIBEX_LOG_DIR)",
                settings.log_dir.display()
            ))
        },
    )?;
    Ok((tel, mask))
}

/// The database URL: `DATABASE_URL`, or the embedded cluster under the data directory.
pub fn database(
    settings: &Settings,
    mask: &SecretMask,
    log: &Logger,
) -> Result<(Option<EmbeddedPostgres>, String), AppError> {
    if let Some(url) = &settings.database_url {
        return Ok((None, url.expose().to_string()));
    }
    let dir = settings.data_dir.join("postgres");
    info!(log, "no DATABASE_URL: starting the embedded PostgreSQL cluster";
        "dir" => dir.display().to_string());
    let pg = EmbeddedPostgres::start(&dir)?;
    mask.add([pg.password().to_string(), pg.url()]);
    log_cluster_place(&pg, log);
    info!(log, "embedded PostgreSQL is up"; "port" => pg.port(),
        "cluster" => pg.cluster_dir().display().to_string());
    let url = pg.url();
    Ok((Some(pg), url))
}

/// Says where the private cluster lives when it is not in the data directory (as root
/// with the data directory under a private home, the unprivileged server user cannot
/// reach it), and warns when that place may not last.
fn log_cluster_place(pg: &EmbeddedPostgres, log: &Logger) {
    let Some(r) = pg.relocation() else {
        return;
    };
    let cluster = r.cluster.display().to_string();
    let record = r.record.display().to_string();
    let blocked = r
        .blocked
        .as_ref()
        .map_or_else(|| "-".to_string(), |b| b.display().to_string());
    if r.reused {
        info!(log, "embedded PostgreSQL cluster: reusing the place recorded in the data directory";
            "cluster" => cluster.clone(), "record" => record, "blocked" => blocked);
    } else {
        info!(log, "the data directory is not reachable by the unprivileged PostgreSQL user; \
            the cluster is placed outside it and the place recorded";
            "cluster" => cluster.clone(), "record" => record, "blocked" => blocked);
    }
    if r.reused && pg.created() {
        warn!(log, "the recorded cluster was missing: a new, empty one was created in its place";
            "cluster" => cluster.clone());
    }
    if r.volatile {
        warn!(log, "the cluster is under the system temp directory, which a reboot or a cleaner \
            may empty; set data_dir (VIBEX_DATA_DIR) to a directory the postgres user can \
            traverse to keep the database";
            "cluster" => cluster);
    }
}

/// Raises the soft limit on open files to the hard limit: every socket, log file and
/// database connection counts against it, and the usual default soft limit (1,024) is
/// far below what the kernel allows. Logs the limits it found and what it set.
fn raise_open_file_limit(log: &Logger) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => info!(log, "open-file limit raised to the hard limit";
                "soft_was" => soft, "soft" => hard, "hard" => hard),
            Err(e) => warn!(log, "open-file limit could not be raised to the hard limit";
                "soft" => soft, "hard" => hard, "error" => e.to_string()),
        },
        Ok((soft, hard)) => info!(log, "open-file limit already at the hard limit";
            "soft" => soft, "hard" => hard),
        Err(e) => warn!(log, "open-file limit could not be read"; "error" => e.to_string()),
    }
}

/// Checks what the configuration file alone cannot: the prompt templates of every LLM
/// account load and its model endpoint is usable. `vibex config check` and `vibex run`
/// both call it, so they refuse the same configurations.
pub fn preflight(settings: &Settings) -> Result<(), Vec<String>> {
    let problems: Vec<String> = settings
        .accounts
        .iter()
        .filter(|a| crate::domain::policy::BuiltinPolicy::from_model(&a.llm_model).is_none())
        .filter_map(|a| {
            crate::actors::decision::ModelEngine::new(a, &settings.llm)
                .err()
                .map(|e| format!("account {:?}: {e}", a.id.as_str()))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `vibex migrate`: applies pending migrations and reports them.
pub fn migrate(settings: &Settings) -> Result<Vec<String>, AppError> {
    let (tel, mask) = init_logging(settings)?;
    let log = telemetry::domain_logger(&tel.root, LogDomain::App);
    let (_pg, url) = database(settings, &mask, &log)?;
    let pool = db::connect(&url, 2)?;
    let mut conn = db::conn(&pool)?;
    let applied = db::run_migrations(&mut conn)?;
    info!(log, "migrations applied"; "count" => applied.len());
    Ok(applied)
}

fn account_row(cfg: &AccountConfig) -> AccountRow {
    crate::control::account_row(cfg)
}

/// What earlier runs stored for the control plane: control rows, the accounts added
/// over the API (validated again, their `${VAR}` references resolved from this run's
/// environment; one that no longer validates is left out with an error naming the
/// field), the kill switch.
fn stored_controls(
    conn: &mut diesel::PgConnection,
    mask: &SecretMask,
    log: &Logger,
) -> Result<StoredControls, AppError> {
    let accounts = queries::account_controls(conn).map_err(db::DbError::from)?;
    let kill_switch = queries::control_flag(conn, "kill_switch").map_err(db::DbError::from)?;
    let env: std::collections::HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut added = Vec::new();
    for row in accounts.iter().filter(|r| r.origin == "api") {
        let Some(definition) = &row.definition else {
            continue;
        };
        match crate::config::account_from_definition(definition, &env) {
            Ok(cfg) => {
                mask.add(crate::control::account_secrets(&cfg));
                added.push(cfg);
            }
            Err(e) => error!(log, "an account added over the API cannot start: its stored \
                definition no longer validates (set the variables it names, or remove it)";
                "account_id" => row.account_id.clone(), "problems" => e.0),
        }
    }
    Ok(StoredControls {
        accounts,
        added,
        kill_switch,
    })
}

/// Says loudly, once per live account, that it sends real orders: a `warn!` in the
/// app log and one line on stderr (seen even when `log_level` hides warnings), naming
/// the account, the venue and the signing mode — never a credential.
fn warn_live_accounts(settings: &Settings, log: &Logger) {
    for cfg in &settings.accounts {
        let Some(banner) = cfg.live_banner() else {
            continue;
        };
        warn!(log, "live account: real orders will be sent";
            "account_id" => cfg.id.to_string(),
            "venue" => cfg.asterdex.base_url.clone(),
            "ws_url" => cfg.asterdex.ws_url.clone(),
            "signing" => cfg.asterdex.signing.map_or("none", |s| s.as_str()),
            "margin_type" => cfg.asterdex.margin_type.as_str());
        eprintln!("WARNING: {banner}");
    }
}

/// `vibex run`: the daemon, until SIGTERM/SIGINT (no reload: see [`run_reloadable`]).
pub fn run(settings: Settings) -> Result<(), AppError> {
    run_reloadable(settings, None)
}

/// `vibex run` with the options the configuration was loaded with: `SIGHUP` and
/// `POST /config/reload` re-read the accounts file through them.
pub fn run_reloadable(settings: Settings, reload: Option<LoadOptions>) -> Result<(), AppError> {
    let (tel, mask) = init_logging(&settings)?;
    let app_log = telemetry::domain_logger(&tel.root, LogDomain::App);
    info!(app_log, "vibex starting"; "version" => env!("CARGO_PKG_VERSION"),
        "accounts" => settings.accounts.len());
    warn_live_accounts(&settings, &app_log);
    raise_open_file_limit(&app_log);
    let result = run_with_logs(settings, reload, &tel.root, &mask);
    if let Err(e) = &result {
        error!(app_log, "vibex stopped with an error"; "error" => e.to_string());
    } else {
        info!(app_log, "vibex stopped");
    }
    drop(tel);
    result
}

fn run_with_logs(
    settings: Settings,
    reload: Option<LoadOptions>,
    root: &Logger,
    mask: &SecretMask,
) -> Result<(), AppError> {
    let app_log = telemetry::domain_logger(root, LogDomain::App);
    let (pg, url) = database(&settings, mask, &app_log)?;
    let pool = db::connect(&url, 16)?;
    let stored = {
        let mut conn = db::conn(&pool)?;
        let applied = db::run_migrations(&mut conn)?;
        if !applied.is_empty() {
            info!(app_log, "migrations applied"; "versions" => applied.join(","));
        }
        // One transaction: thousands of accounts register in one commit.
        diesel::Connection::transaction(&mut *conn, |conn| {
            for cfg in &settings.accounts {
                queries::upsert_account(conn, &account_row(cfg))?;
            }
            diesel::QueryResult::Ok(())
        })
        .map_err(db::DbError::from)?;
        stored_controls(&mut conn, mask, &app_log)?
    };
    let system = actix::System::new();
    let plane = (reload, mask.clone());
    let result = system.block_on(serve(settings, stored, plane, (pool, url), root.clone()));
    drop(pg);
    result
}

async fn serve(
    settings: Settings,
    stored: StoredControls,
    (reload, mask): (Option<LoadOptions>, SecretMask),
    (pool, database_url): (DbPool, String),
    root: Logger,
) -> Result<(), AppError> {
    let app_log = telemetry::domain_logger(&root, LogDomain::App);
    let trading_log = telemetry::domain_logger(&root, LogDomain::Trading);
    let market_log = telemetry::domain_logger(&root, LogDomain::MarketData);
    let llm_log = telemetry::domain_logger(&root, LogDomain::Llm);

    let bus = EventBus::new(app_log.clone()).start();
    let store = Store::open(
        pool.clone(),
        &settings.data_dir,
        settings.storage.clone(),
        bus.clone().recipient(),
        &app_log,
    )?;
    let pending = store.health();
    if pending.spooled_batches_pending > 0 {
        info!(app_log, "replaying the spool of the previous run before any account starts";
            "rows" => pending.spooled_rows_pending,
            "spool" => pending.spool_path.display().to_string());
    }
    store.settled().await?;
    let supervisor = Supervisor::build_with(
        &settings,
        stored,
        bus.clone(),
        store.clone(),
        &trading_log,
        &market_log,
        &llm_log,
    )?;
    let directory = supervisor.directory();
    let supervisor = supervisor.start();
    let plan = ServingPlan::decide(&settings.api);
    let gate = Arc::new(Gate::new(&settings.api, plan.exposure, &app_log));
    let control = ControlPlane {
        audit: Audit::new(store.clone(), &trading_log),
        load_options: reload,
        mask,
        log: trading_log.clone(),
        keys: Some(Arc::new(auth::GateKeys {
            gate: gate.clone(),
            bus: bus.clone(),
        })),
    };

    // `/health` probes with a connection of its own; reads have theirs (see api::health,
    // api::reads): neither waits behind the write path's pool.
    let health = api::health::HealthProbe::start(&database_url, &app_log);
    let reads = api::reads::ReadPool::new(&database_url, API_READ_CONNECTIONS, &app_log);
    drop(database_url);
    let state = ApiState {
        reads,
        pool,
        store: store.clone(),
        supervisor: supervisor.clone(),
        bus,
        accounts: directory,
        control: control.clone(),
        ws_ping_interval: settings.api.ws_ping_interval,
        ws_client_timeout: settings.api.ws_client_timeout,
        log: app_log.clone(),
        health,
        log_dir: settings.log_dir.clone(),
    };
    info!(app_log, "API access"; "policy" => plan.summary.clone(), "host" => plan.host.clone(),
        "configured_host" => settings.api.host.clone(),
        "cors_origins" => settings.api.cors_origins.join(","),
        "rate_per_key" => format!("{}/s burst {}", settings.api.rate_limit.per_key.per_second,
            settings.api.rate_limit.per_key.burst),
        "rate_per_ip" => format!("{}/s burst {}", settings.api.rate_limit.per_ip.per_second,
            settings.api.rate_limit.per_ip.burst));
    if let Some(warning) = &plan.warning {
        warn!(app_log, "{}", warning);
        eprintln!("WARNING: {warning}");
    }
    let sweeper = gate.clone();
    actix_rt::spawn(async move {
        let mut every = tokio::time::interval(auth::SWEEP_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            sweeper.sweep();
        }
    });
    let api_settings = settings.api.clone();
    let server = HttpServer::new(move || {
        let gate = gate.clone();
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::JsonConfig::default().limit(auth::MAX_BODY_BYTES))
            .app_data(web::PayloadConfig::new(auth::MAX_BODY_BYTES))
            // Innermost first: the request screen (methods, parameters, sizes; see
            // api::params), the gate (keys, scope, buckets, WebSocket origins), then
            // CORS (answers preflights before the gate asks for a key), then the layer
            // that turns the refusals of CORS and the body limits into JSON.
            .wrap(actix_web::middleware::from_fn(api::params::screen))
            .wrap(actix_web::middleware::from_fn(move |req, next| {
                gate.clone().middleware(req, next)
            }))
            .wrap(actix_web::middleware::Condition::new(
                auth::cors_enabled(&api_settings),
                auth::cors(&api_settings),
            ))
            .wrap(actix_web::middleware::from_fn(auth::json_refusals))
            .configure(api::configure)
            .default_service(web::route().to(api::not_found))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(1)
    .bind((plan.host.as_str(), settings.api.port))
    .map_err(|e| {
        AppError::Io(format!(
            "cannot listen on {}:{}: {e} (set API_HOST / API_PORT)",
            plan.host, settings.api.port
        ))
    })?;
    for addr in server.addrs() {
        info!(app_log, "listening"; "address" => format!("http://{addr}"));
        println!("vibex listening on http://{addr}");
    }
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);

    wait_for_signal(&app_log, &control, &supervisor).await;
    info!(
        app_log,
        "shutting down: no new cycles; finishing work in flight"
    );
    if supervisor
        .send(Shutdown {
            deadline: DRAIN_DEADLINE,
        })
        .await
        .is_err()
    {
        warn!(app_log, "supervisor was already gone at shutdown");
    }
    let report = store.close(FLUSH_DEADLINE).await;
    info!(app_log, "shutdown: queued writes flushed";
        "to_postgres_rows" => report.flushed_to_postgres,
        "to_spool_rows" => report.flushed_to_spool,
        "spool_rows_pending" => report.spool_rows_pending,
        "spool" => report.spool_path.as_ref().map(|p| p.display().to_string()),
        "run_rows_written" => report.run_rows_written,
        "run_rows_spooled" => report.run_rows_spooled);
    if report.spool_rows_pending > 0 {
        warn!(app_log, "rows wait in the spool: the next start replays them before trading";
            "rows" => report.spool_rows_pending);
    }
    if report.not_durable > 0 {
        error!(app_log, "shutdown: rows could be made durable nowhere (see errors.log)";
            "rows" => report.not_durable);
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), handle.stop(true)).await;
    actix::System::current().stop();
    Ok(())
}

/// API reads in flight at once, each on a connection of the API's own: a few CPU-bound
/// list encodings at a time finish no later than many would on a machine of a few
/// cores, while the threads that answer `/health` keep their share of the CPU.
const API_READ_CONNECTIONS: usize = 4;

/// Waits for SIGTERM or SIGINT; meanwhile each SIGHUP re-reads the accounts file (one
/// reload at a time, audited like `POST /config/reload`).
async fn wait_for_signal(log: &Logger, control: &ControlPlane, supervisor: &Addr<Supervisor>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            error!(
                log,
                "cannot install signal handlers; stop with SIGKILL only"
            );
            std::future::pending::<()>().await;
            return;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!(log, "SIGTERM received"); return; }
            _ = int.recv() => { info!(log, "SIGINT received"); return; }
            _ = hup.recv() => {
                info!(log, "SIGHUP received: reloading the accounts file");
                let result = crate::control::reload_accounts(control, supervisor, "SIGHUP").await;
                let (status, body) = match &result {
                    Ok(diff) => (200, diff.clone()),
                    Err(e) => (crate::api::control::status_of(e), serde_json::json!({"error": e.to_string()})),
                };
                if let Err(e) = &result {
                    error!(log, "reload refused; nothing changed"; "error" => e.to_string());
                }
                control.audit.record(crate::control::AuditEntry {
                    key_name: "SIGHUP".into(),
                    ip: None,
                    action: "config.reload".into(),
                    target: None,
                    body: None,
                    status,
                    result: body,
                }).await;
            }
        }
    }
}
