//! The durable, batched write path: every row the daemon stores, and every event that
//! announces one, goes through a [`Store`].
//!
//! Entry points: [`Store::open`] (replays a spool left by an earlier run),
//! [`Store::write`], [`Store::write_durable`], [`Store::settled`], [`Store::read`],
//! [`Store::health`], [`Store::close`].
//!
//! How it works: producers (actors) push [`Write`]s — rows plus the events that
//! announce them — into one bounded queue. One writer thread (a plain thread: diesel
//! blocks) takes everything queued, up to `storage.batch_rows` rows, and writes it as
//! one transaction of multi-row statements (group commit). When PostgreSQL is down or
//! slow the batch is appended to the spool under `<data_dir>/spool/` instead (fsync'd
//! per batch); while a spool exists every new batch goes there too, and the writer
//! replays it in order, in large transactions, as soon as PostgreSQL answers, then
//! deletes it.
//!
//! Invariants:
//! - **Order.** One queue, one writer: writes reach PostgreSQL in the order they were
//!   pushed (the place in the queue is taken at the call, see [`Store::write`]), so an
//!   account's writes stay in order and [`Store::settled`] is a barrier behind them.
//! - **Durable before announced.** A write's events are published (in enqueue order)
//!   only once its rows are durable: committed in PostgreSQL, or fsync'd in the spool.
//!   The trading diary's JSONL files are appended at the same moment.
//! - **Bounded.** At most `storage.queue_capacity` rows wait in memory; beyond that a
//!   producer's `write` waits (backpressure).
//! - **Exactly once.** Each batch has an id, and the transaction that writes it also
//!   records it in `store_marker` (one row per writer). A commit whose outcome is
//!   unknown, and a spool replayed again after a crash, are checked against the marker:
//!   no batch is written twice.
//! - **Nothing acknowledged is lost.** A write PostgreSQL refuses for its content is
//!   retried alone and, if still refused, kept in `<data_dir>/spool/rejected.jsonl`
//!   with the error (errors.log says so); never a log line as the rows' resting place.
//!   When the spool cannot be written either (disk full), nothing more is
//!   acknowledged: the writer holds the batch, retries every second, and producers
//!   wait on the full queue (`health().mode == stalled`).

mod queue;
mod readers;
mod spool;
mod tables;
mod writer;

use crate::actors::events::EventDraft;
use crate::actors::messages::Publish;
use crate::db::models::*;
use crate::db::queries::ExecutionBatch;
use crate::db::{pg_text, DbPool};
use actix::Recipient;
use chrono::{DateTime, Utc};
use diesel::{PgConnection, QueryResult};
use serde::{Deserialize, Serialize};
use slog::{error, info, warn, Logger};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub use crate::config::StorageSettings;
pub use queue::Queued;

/// Reader threads behind [`Store::read`].
const READER_THREADS: usize = 2;
/// How long `close` waits past its deadline for the writer's report.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// How many recent batch latencies [`Store::batch_latencies`] keeps.
const LATENCY_HISTORY: usize = 4096;

/// Rows to store and the events that announce them (published once the rows are
/// durable). A write with no rows is an announcement that must follow the writes
/// before it (a cycle's `cycle_completed`).
#[derive(Debug, Default)]
pub struct Write {
    /// The rows, stored in order.
    pub rows: Vec<Rows>,
    /// Published, in order, once the rows are durable.
    pub events: Vec<EventDraft>,
}

impl Write {
    /// Rows and their events.
    pub fn new(rows: Vec<Rows>, events: Vec<EventDraft>) -> Write {
        Write { rows, events }
    }

    /// Rows with no event.
    pub fn rows(rows: Vec<Rows>) -> Write {
        Write {
            rows,
            events: Vec::new(),
        }
    }

    /// Events that must follow the writes before them.
    pub fn events(events: Vec<EventDraft>) -> Write {
        Write {
            rows: Vec::new(),
            events,
        }
    }

    /// Rows in the write.
    pub fn row_count(&self) -> usize {
        self.rows.iter().map(Rows::count).sum()
    }

    /// PostgreSQL cannot store NUL characters: text from outside is cleaned first.
    fn clean(&mut self) {
        for rows in &mut self.rows {
            rows.clean();
        }
    }
}

/// Rows of one kind, as the producers hand them over. Spooled as is (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Rows {
    /// What an execution step changed (orders, fills, positions, diary, income, ...).
    Execution(ExecutionBatch),
    /// A cycle's decisions.
    Decisions(Vec<DecisionRow>),
    /// One model interaction (prompt, answer, parse and risk outcome, usage).
    Interaction(LlmInteractionRow),
    /// An account's equity at the end of a cycle.
    Equity(EquitySnapshotRow),
    /// A market snapshot and the bars it was computed from.
    Snapshot {
        /// The snapshot.
        snapshot: MarketSnapshotRow,
        /// New or updated bars.
        candles: Vec<CandleRow>,
    },
    /// An account's run state.
    AccountStatus {
        /// The account.
        account_id: String,
        /// `active`, `stopping`, `stopped`, ...
        status: String,
    },
    /// A control-plane row (src/control): rare, written in the order given.
    Control(ControlRow),
}

/// The control plane's rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControlRow {
    /// An account added at runtime (or by a reload) is registered.
    Register(crate::db::models::AccountRow),
    /// The operator's wish for an account.
    Account(crate::db::models::AccountControlRow),
    /// A process-wide switch (the kill switch).
    Flag(crate::db::models::ControlFlagRow),
    /// An entry of the audit trail.
    Action(crate::db::models::ControlActionRow),
}

impl Rows {
    /// How many table rows this holds.
    pub fn count(&self) -> usize {
        match self {
            Rows::Execution(b) => {
                b.orders.len()
                    + b.order_events.len()
                    + b.fills.len()
                    + b.positions.len()
                    + b.diary.len()
                    + b.income.len()
                    + b.reconciliation.len()
                    + usize::from(b.paper_wallet.is_some())
            }
            Rows::Decisions(rows) => rows.len(),
            Rows::Interaction(_)
            | Rows::Equity(_)
            | Rows::AccountStatus { .. }
            | Rows::Control(_) => 1,
            Rows::Snapshot { candles, .. } => 1 + candles.len(),
        }
    }

    /// The diary entries among the rows (also appended to the JSONL diary files).
    fn diary(&self) -> &[DiaryEntryRow] {
        match self {
            Rows::Execution(b) => &b.diary,
            _ => &[],
        }
    }

    fn clean(&mut self) {
        match self {
            Rows::Execution(b) => {
                for d in &mut b.diary {
                    pg_text::clean_opt(&mut d.exit_plan);
                    pg_text::clean_opt(&mut d.rationale);
                    pg_text::clean_json_opt(&mut d.order_result);
                }
                for p in &mut b.positions {
                    pg_text::clean(&mut p.exit_plan);
                }
                for o in &mut b.orders {
                    pg_text::clean_opt(&mut o.reject_reason);
                }
                for r in &mut b.reconciliation {
                    pg_text::clean_json(&mut r.detail);
                }
                for i in &mut b.income {
                    pg_text::clean_json(&mut i.detail);
                }
            }
            Rows::Decisions(rows) => {
                for d in rows {
                    pg_text::clean(&mut d.exit_plan);
                    pg_text::clean(&mut d.rationale);
                    pg_text::clean_opt(&mut d.refusal_reason);
                    pg_text::clean_opt(&mut d.risk_note);
                }
            }
            Rows::Interaction(row) => {
                pg_text::clean_json(&mut row.request);
                pg_text::clean_opt(&mut row.response_body);
                pg_text::clean_json_opt(&mut row.parsed);
                pg_text::clean_json_opt(&mut row.outcome);
                pg_text::clean_opt(&mut row.error);
            }
            Rows::Snapshot { snapshot, .. } => pg_text::clean_json(&mut snapshot.data),
            Rows::Control(ControlRow::Action(a)) => {
                pg_text::clean(&mut a.key_name);
                pg_text::clean(&mut a.action);
                pg_text::clean_opt(&mut a.target);
                pg_text::clean_json_opt(&mut a.body);
                pg_text::clean_json(&mut a.result);
            }
            Rows::Equity(_) | Rows::AccountStatus { .. } | Rows::Control(_) => {}
        }
    }
}

/// Where a write became durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durable {
    /// Committed in PostgreSQL.
    Postgres,
    /// Appended and fsync'd to the spool (PostgreSQL down or slow); it reaches
    /// PostgreSQL when the spool is replayed.
    Spool,
}

/// Why the store could not do what was asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The store was closed (shutdown) or its writer is gone.
    #[error("the database writer is closed (shutdown)")]
    Closed,
    /// A file of the store could not be used.
    #[error("{what} ({}): {error}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: String,
    },
    /// PostgreSQL failed a read.
    #[error("database: {0}")]
    Database(String),
    /// PostgreSQL refused the rows for their content; they are kept in `path`.
    #[error("PostgreSQL refused the rows ({error}); they are kept in {}", path.display())]
    Rejected {
        /// The dead-letter file.
        path: PathBuf,
        /// What PostgreSQL said.
        error: String,
    },
    /// Neither PostgreSQL nor the spool could take the rows before shutdown (disk full).
    #[error("the rows could not be made durable before shutdown: {0}")]
    NotDurable(String),
}

/// What the writer is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreMode {
    /// Batches go straight to PostgreSQL.
    Online,
    /// PostgreSQL is unreachable: batches go to the spool.
    Spooling,
    /// PostgreSQL answers (or was slow): the spool is being replayed; new batches
    /// still go to the spool until the replay reaches its end.
    Replaying,
    /// Neither PostgreSQL nor the spool takes the current batch (disk full): nothing
    /// more is acknowledged and producers wait.
    Stalled,
    /// Closed (shutdown).
    Closed,
}

/// Counters and state of the write path (for `/status`, metrics and the outage rule).
#[derive(Clone, Debug, Serialize)]
pub struct StoreHealth {
    /// What the writer is doing.
    pub mode: StoreMode,
    /// Rows queued in memory (including writes waiting for room).
    pub queued_rows: usize,
    /// Writes queued in memory.
    pub queued_writes: usize,
    /// The queue's capacity in rows.
    pub queue_capacity: usize,
    /// The spool file (it exists only while batches are pending).
    pub spool_path: PathBuf,
    /// Batches in the spool not yet in PostgreSQL.
    pub spooled_batches_pending: usize,
    /// Rows in the spool not yet in PostgreSQL.
    pub spooled_rows_pending: u64,
    /// Since when PostgreSQL has been unreachable, if it is.
    pub outage_since: Option<DateTime<Utc>>,
    /// Rows committed in PostgreSQL since start (directly or by replay).
    pub rows_written: u64,
    /// Rows appended to the spool since start.
    pub rows_spooled: u64,
    /// Writes PostgreSQL refused for their content (kept in `rejected.jsonl`).
    pub writes_rejected: u64,
    /// Rows of those writes.
    pub rows_rejected: u64,
    /// Transactions committed since start.
    pub batches_committed: u64,
    /// Rows of the last committed transaction.
    pub last_batch_rows: usize,
    /// Duration of the last committed transaction, in milliseconds.
    pub last_batch_ms: f64,
    /// The last problem the writer met, if any.
    pub last_error: Option<String>,
}

/// What `close` did with what was queued.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ShutdownReport {
    /// Rows committed in PostgreSQL after the close request.
    pub flushed_to_postgres: u64,
    /// Rows appended to the spool after the close request.
    pub flushed_to_spool: u64,
    /// Rows in the spool not yet in PostgreSQL: replayed at the next start.
    pub spool_rows_pending: u64,
    /// The spool file, when rows are pending in it.
    pub spool_path: Option<PathBuf>,
    /// Rows that could be made durable nowhere before the deadline (disk full, or a
    /// database that hangs instead of failing).
    pub not_durable: u64,
    /// Rows committed in PostgreSQL over the whole run.
    pub run_rows_written: u64,
    /// Rows spooled over the whole run.
    pub run_rows_spooled: u64,
}

/// What the writer shares with the handles.
pub(crate) struct Shared {
    queue: queue::Queue,
    health: Mutex<Status>,
}

/// The writer's part of [`StoreHealth`].
#[derive(Clone, Debug)]
pub(crate) struct Status {
    mode: StoreMode,
    spooled_batches_pending: usize,
    spooled_rows_pending: u64,
    outage_since: Option<DateTime<Utc>>,
    rows_written: u64,
    rows_spooled: u64,
    writes_rejected: u64,
    rows_rejected: u64,
    batches_committed: u64,
    last_batch_rows: usize,
    last_batch_ms: f64,
    last_error: Option<String>,
    latencies: std::collections::VecDeque<(usize, Duration)>,
}

impl Shared {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Handle {
    shared: Arc<Shared>,
    readers: readers::Readers,
    spool_dir: PathBuf,
    settings: StorageSettings,
    log: Logger,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The last handle is gone without `close`: the writer flushes what is queued
        // (briefly) and stops.
        self.shared.queue.close(queue::CloseRequest {
            deadline: Instant::now() + Duration::from_secs(2),
            reply: None,
        });
    }
}

/// The write path's handle: cheap to clone, shared by every producer. See the module
/// docs.
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
}

impl Store {
    /// Opens the store over `pool`, with its spool in `<data_dir>/spool/`, publishing
    /// events to `events` (the EventBus). A spool left by an earlier run (a crash, a
    /// SIGKILL during an outage) is checked and queued for replay first: await
    /// [`Store::settled`] before anything reads, so that it starts from a complete
    /// database.
    pub fn open(
        pool: DbPool,
        data_dir: &Path,
        settings: StorageSettings,
        events: Recipient<Publish>,
        log: &Logger,
    ) -> Result<Store, StoreError> {
        let log = log.new(slog::o!("component" => "store"));
        let spool_dir = data_dir.join("spool");
        std::fs::create_dir_all(&spool_dir).map_err(|e| StoreError::Io {
            what: "create the spool directory",
            path: spool_dir.clone(),
            error: e.to_string(),
        })?;
        let writer_id = writer::writer_id(&spool_dir)?;
        let shared = Arc::new(Shared {
            queue: queue::Queue::new(settings.queue_capacity),
            health: Mutex::new(Status {
                mode: StoreMode::Online,
                spooled_batches_pending: 0,
                spooled_rows_pending: 0,
                outage_since: None,
                rows_written: 0,
                rows_spooled: 0,
                writes_rejected: 0,
                rows_rejected: 0,
                batches_committed: 0,
                last_batch_rows: 0,
                last_batch_ms: 0.0,
                last_error: None,
                latencies: Default::default(),
            }),
        });
        let readers = readers::Readers::start(pool.clone(), READER_THREADS)?;
        let w = writer::Writer::open(
            shared.clone(),
            pool,
            spool_dir.clone(),
            writer_id,
            settings.clone(),
            events,
            log.clone(),
        )?;
        // A spool left by an earlier run shows in the health before the thread runs.
        w.publish_status();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || w.run())
            .map_err(|e| StoreError::Io {
                what: "start the writer thread",
                path: spool_dir.clone(),
                error: e.to_string(),
            })?;
        info!(log, "store open"; "spool" => spool_dir.display().to_string());
        Ok(Store {
            handle: Arc::new(Handle {
                shared,
                readers,
                spool_dir,
                settings,
                log,
            }),
        })
    }

    /// The settings it runs with (the outage rule reads `halt_entries_after`).
    pub fn settings(&self) -> &StorageSettings {
        &self.handle.settings
    }

    fn push(
        &self,
        mut write: Write,
        durable: Option<oneshot::Sender<Result<Durable, StoreError>>>,
    ) -> Queued {
        write.clean();
        let rows = write.row_count().max(1);
        self.handle.shared.queue.push(
            queue::Item::Write(queue::PendingWrite { write, durable }),
            // An event-only write still takes a place in the queue.
            rows,
        )
    }

    /// Queues `w`. The place in the queue is taken now, at the call: writes are stored
    /// in the order of the calls, whoever polls the returned future (dropping it still
    /// stores the write). The future resolves once the write is in the queue, at once
    /// unless the queue is full (then it waits for room: backpressure).
    pub fn write(&self, w: Write) -> Queued {
        self.push(w, None)
    }

    /// Queues `w` (in call order, like [`Store::write`]) and resolves once its rows are
    /// durable: committed in PostgreSQL, or fsync'd in the spool. An order's intent
    /// awaits this before the order is sent.
    pub fn write_durable(&self, w: Write) -> impl Future<Output = Result<Durable, StoreError>> {
        let (tx, rx) = oneshot::channel();
        let queued = self.push(w, Some(tx));
        async move {
            queued.await?;
            rx.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// Resolves once everything queued before this call is committed in PostgreSQL (a
    /// spool, if any, replayed past it): what a restarting account awaits before it
    /// reads its state. Waits as long as PostgreSQL is unreachable.
    pub fn settled(&self) -> impl Future<Output = Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        let queued = self.handle.shared.queue.push(queue::Item::Barrier(tx), 0);
        async move {
            queued.await?;
            rx.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// [`Store::settled`], then runs `f` on one of a few reader threads (never on the
    /// caller's event loop): a read that sees every write queued before the call.
    pub fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> QueryResult<T> + Send + 'static,
    {
        let settled = self.settled();
        let handle = self.handle.clone();
        async move {
            settled.await?;
            handle
                .readers
                .run(f)
                .await
                .unwrap_or(Err(StoreError::Closed))
        }
    }

    /// The write path's state and counters.
    pub fn health(&self) -> StoreHealth {
        let (queued_rows, queued_writes) = self.handle.shared.queue.depth();
        let s = self.handle.shared.status().clone();
        StoreHealth {
            mode: s.mode,
            queued_rows,
            queued_writes,
            queue_capacity: self.handle.shared.queue.capacity(),
            spool_path: spool::Spool::path_in(&self.handle.spool_dir),
            spooled_batches_pending: s.spooled_batches_pending,
            spooled_rows_pending: s.spooled_rows_pending,
            outage_since: s.outage_since,
            rows_written: s.rows_written,
            rows_spooled: s.rows_spooled,
            writes_rejected: s.writes_rejected,
            rows_rejected: s.rows_rejected,
            batches_committed: s.batches_committed,
            last_batch_rows: s.last_batch_rows,
            last_batch_ms: s.last_batch_ms,
            last_error: s.last_error,
        }
    }

    /// How long PostgreSQL has been unreachable, if it is (the outage risk rule).
    pub fn outage(&self) -> Option<Duration> {
        let since = self.handle.shared.status().outage_since?;
        (Utc::now() - since).to_std().ok()
    }

    /// Rows and duration of the most recent committed transactions, oldest first (for
    /// percentiles in benchmarks and metrics).
    pub fn batch_latencies(&self) -> Vec<(usize, Duration)> {
        self.handle
            .shared
            .status()
            .latencies
            .iter()
            .copied()
            .collect()
    }

    /// The dead-letter file of writes PostgreSQL refused.
    pub fn rejected_path(&self) -> PathBuf {
        self.handle.spool_dir.join(spool::REJECTED_FILE)
    }

    /// Flushes what is queued — to PostgreSQL, or to the spool when it is down or the
    /// deadline has passed — and stops the writer; says how many rows went where.
    /// Writes after this are refused.
    pub async fn close(&self, deadline: Duration) -> ShutdownReport {
        let (tx, rx) = oneshot::channel();
        if !self.handle.shared.queue.close(queue::CloseRequest {
            deadline: Instant::now() + deadline,
            reply: Some(tx),
        }) {
            return ShutdownReport::default();
        }
        // The writer answers by the deadline unless a database call hangs (a server
        // that neither answers nor refuses); give it a little more, then report.
        if let Ok(Ok(report)) = tokio::time::timeout(deadline + CLOSE_GRACE, rx).await {
            return report;
        }
        let (queued_rows, _) = self.handle.shared.queue.depth();
        let health = self.health();
        if queued_rows > 0 {
            error!(self.handle.log, "the database writer did not finish by the shutdown \
                deadline (a database call hangs): rows still queued are not durable";
                "queued_rows" => queued_rows);
        } else {
            warn!(self.handle.log, "the database writer was still busy at the shutdown \
                deadline; nothing queued was left";
                "spool_rows_pending" => health.spooled_rows_pending);
        }
        ShutdownReport {
            not_durable: queued_rows as u64,
            spool_rows_pending: health.spooled_rows_pending,
            spool_path: (health.spooled_rows_pending > 0).then_some(health.spool_path),
            run_rows_written: health.rows_written,
            run_rows_spooled: health.rows_spooled,
            ..Default::default()
        }
    }
}
