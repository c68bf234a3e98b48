//! The writer thread: takes the queue in order, writes each batch to PostgreSQL (or the
//! spool), publishes the events of what became durable, and replays the spool.
//!
//! Entry points: [`Writer::open`] (checks a spool left by an earlier run), [`Writer::run`].
//!
//! One loop, one thread:
//! 1. take what is queued (up to `batch_rows` rows) as one batch with the next id;
//! 2. make it durable: straight to PostgreSQL while there is no spool; to the spool
//!    while one exists, PostgreSQL is unreachable, a commit was slower than
//!    `slow_commit`, or the queue is past three quarters of its capacity;
//! 3. replay the oldest spooled batches (large transactions) when PostgreSQL may
//!    answer, for a slice of time, so that new batches keep being appended meanwhile;
//!    when the replay reaches the end, the spool is deleted and writes go straight to
//!    PostgreSQL again;
//! 4. answer the barriers (`settled`) whose batches are all in PostgreSQL.
//!
//! Failure handling of one transaction ([`Writer::write_entries`]): after an error the
//! marker is read on a fresh connection. Unreachable: the batch goes to the spool
//! (if it had committed after all, the replay finds it in the marker and skips it).
//! Reachable and the marker has it: it committed. Otherwise the writes are retried as
//! halves, down to single writes; a single write that is still refused goes to the
//! dead-letter file and the marker moves past it.

use super::queue::{CloseRequest, Item, PendingWrite};
use super::spool::{self, Rejected, Spool};
use super::tables::{self, Entry, Marker};
use super::{Durable, Rows, Shared, ShutdownReport, StoreError, StoreMode, LATENCY_HISTORY};
use crate::actors::events::EventDraft;
use crate::actors::messages::Publish;
use crate::config::StorageSettings;
use crate::db::{DbConn, DbPool};
use actix::Recipient;
use chrono::{DateTime, Utc};
use serde::Serialize;
use slog::{error, info, warn, Logger};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Pause between attempts while PostgreSQL is unreachable or the disk is full.
const RETRY: Duration = Duration::from_secs(1);
/// Longest wait for a connection before PostgreSQL counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time given to the replay per loop before the queue is looked at again.
const REPLAY_SLICE: Duration = Duration::from_millis(250);
/// A replay transaction holds up to this many times `batch_rows` rows.
const REPLAY_FACTOR: usize = 4;
/// How often progress is logged while a spool exists.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// File (in the spool directory) holding this data directory's writer id.
const WRITER_ID_FILE: &str = "writer-id";

/// This data directory's writer id (created once): the key of its `store_marker` row.
pub(crate) fn writer_id(dir: &Path) -> Result<String, StoreError> {
    let path = dir.join(WRITER_ID_FILE);
    let io = |what, e: std::io::Error| StoreError::Io {
        what,
        path: path.clone(),
        error: e.to_string(),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read the writer id", e)),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let mut f = std::fs::File::create(&path).map_err(|e| io("write the writer id", e))?;
    f.write_all(id.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write the writer id", e))?;
    Ok(id)
}

/// One write of a batch not yet acknowledged.
struct HeldWrite {
    rows: Vec<Rows>,
    events: Vec<EventDraft>,
    durable: Option<oneshot::Sender<Result<Durable, StoreError>>>,
}

/// A batch taken from the queue and not yet durable.
struct Held {
    id: i64,
    first: u32,
    writes: Vec<HeldWrite>,
}

impl Held {
    fn entries(&self) -> Vec<Entry<'_>> {
        self.writes
            .iter()
            .enumerate()
            .map(|(k, w)| Entry {
                batch: self.id,
                index: self.first + k as u32,
                rows: &w.rows,
            })
            .collect()
    }

    /// Table rows in the batch (an event-only write has none).
    fn rows(&self) -> usize {
        self.writes
            .iter()
            .flat_map(|w| w.rows.iter())
            .map(Rows::count)
            .sum()
    }
}

/// A batch as spooled, borrowed from a [`Held`] (same JSON as `spool::SpoolBatch`).
#[derive(Serialize)]
struct SpoolBatchRef<'a> {
    id: i64,
    first: u32,
    writes: Vec<&'a [Rows]>,
}

/// What became of the entries handed to [`Writer::write_entries`].
#[derive(Default)]
struct Outcome {
    /// Entries handled, from the first: committed or set aside.
    handled: usize,
    /// Entries set aside: (batch, index, dead-letter file, error).
    rejected: Vec<(i64, u32, PathBuf, String)>,
    /// PostgreSQL stopped answering before the rest could be written.
    unreachable: Option<String>,
    /// The dead-letter file could not be written (disk full): stop here.
    stalled: Option<String>,
}

/// The connection to PostgreSQL, checked out lazily and dropped on any error.
struct Db {
    pool: DbPool,
    conn: Option<DbConn>,
    writer: String,
}

impl Db {
    fn conn(&mut self) -> Result<&mut DbConn, String> {
        if self.conn.is_none() {
            let conn = self
                .pool
                .get_timeout(CONNECT_TIMEOUT)
                .map_err(|e| format!("no connection to PostgreSQL: {e}"))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| "no connection to PostgreSQL".to_string())
    }

    fn apply(&mut self, entries: &[Entry<'_>]) -> Result<Duration, String> {
        let writer = self.writer.clone();
        let conn = self.conn()?;
        let started = Instant::now();
        match tables::apply(conn, &writer, entries) {
            Ok(()) => Ok(started.elapsed()),
            Err(e) => {
                self.conn = None;
                Err(e.to_string())
            }
        }
    }

    /// The marker, read on a (fresh, after an error) connection: also tells whether
    /// PostgreSQL answers at all.
    fn marker(&mut self) -> Result<Marker, String> {
        let writer = self.writer.clone();
        let conn = self.conn()?;
        match tables::read_marker(conn, &writer) {
            Ok(m) => Ok(m.unwrap_or(Marker {
                batch: i64::MIN,
                writes: 0,
            })),
            Err(e) => {
                self.conn = None;
                Err(e.to_string())
            }
        }
    }

    fn mark(&mut self, m: Marker) -> Result<(), String> {
        let writer = self.writer.clone();
        let conn = self.conn()?;
        tables::mark(conn, &writer, m).map_err(|e| {
            self.conn = None;
            e.to_string()
        })
    }
}

/// The writer thread's state. See the module docs.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    db: Db,
    spool_dir: PathBuf,
    diary_dir: PathBuf,
    spool: Option<Spool>,
    settings: StorageSettings,
    events: Recipient<Publish>,
    log: Logger,
    next_batch: i64,
    last_assigned: i64,
    committed_through: i64,
    barriers: Vec<(i64, oneshot::Sender<Result<(), StoreError>>)>,
    held: Option<Held>,
    stalled: Option<(Instant, String)>,
    next_db_try: Instant,
    outage_since: Option<DateTime<Utc>>,
    prefer_spool: bool,
    closing: Option<CloseRequest>,
    at_close: (u64, u64),
    not_durable: u64,
    replay_started: Option<(Instant, u64)>,
    last_progress: Instant,
    rows_written: u64,
    rows_spooled: u64,
    writes_rejected: u64,
    rows_rejected: u64,
    batches_committed: u64,
    last_batch: (usize, Duration),
    last_error: Option<String>,
}

impl Writer {
    /// The writer over `pool` with its spool in `spool_dir`; a spool left by an earlier
    /// run is checked (torn tail dropped) and queued for replay.
    pub(crate) fn open(
        shared: Arc<Shared>,
        pool: DbPool,
        spool_dir: PathBuf,
        writer: String,
        settings: StorageSettings,
        events: Recipient<Publish>,
        log: Logger,
    ) -> Result<Writer, StoreError> {
        let spool_path = Spool::path_in(&spool_dir);
        let mut spool = match Spool::open(&spool_dir) {
            Ok(Some((spool, report))) => {
                if report.torn_bytes > 0 {
                    warn!(log, "the spool ended in a batch cut short (a crash while it was \
                        being written; it was never acknowledged): dropped";
                        "spool" => spool_path.display().to_string(), "bytes" => report.torn_bytes);
                }
                if let Some(aside) = &report.damaged {
                    error!(log, "the spool is damaged: the batches from the damage on cannot \
                        be read and were copied aside; the spool is replayed up to it";
                        "spool" => spool_path.display().to_string(),
                        "copied_to" => aside.display().to_string());
                }
                Some(spool)
            }
            Ok(None) => None,
            Err(e) => {
                return Err(StoreError::Io {
                    what: "open the spool",
                    path: spool_path,
                    error: e.to_string(),
                })
            }
        };
        if spool.as_ref().is_some_and(Spool::is_drained) {
            if let Some(empty) = spool.take() {
                let _ = empty.remove();
            }
        }
        let mut db = Db {
            pool,
            conn: None,
            writer,
        };
        let marker = db.marker().ok();
        let now = Utc::now().timestamp_micros();
        // Ids keep growing across runs: past the marker, the spool, and the clock (a
        // run with no database at start still numbers after every earlier run).
        let next_batch = [
            Some(now),
            marker.map(|m| m.batch.saturating_add(1)),
            spool.as_ref().and_then(Spool::last_batch_id).map(|b| b + 1),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
        let (last_assigned, committed_through) = match &spool {
            Some(s) => {
                info!(log, "a spool left by an earlier run holds batches not yet in \
                    PostgreSQL: replaying it before trading starts";
                    "spool" => spool_path.display().to_string(),
                    "batches" => s.pending_batches(), "rows" => s.pending_rows());
                (
                    s.last_batch_id().unwrap_or(next_batch - 1),
                    s.first_batch_id().unwrap_or(next_batch) - 1,
                )
            }
            None => (next_batch - 1, next_batch - 1),
        };
        let diary_dir = spool_dir
            .parent()
            .map(|p| p.join("diary"))
            .unwrap_or_else(|| PathBuf::from("diary"));
        Ok(Writer {
            shared,
            db,
            spool_dir,
            diary_dir,
            spool,
            settings,
            events,
            log,
            next_batch,
            last_assigned,
            committed_through,
            barriers: Vec::new(),
            held: None,
            stalled: None,
            next_db_try: Instant::now(),
            outage_since: None,
            prefer_spool: false,
            closing: None,
            at_close: (0, 0),
            not_durable: 0,
            replay_started: None,
            last_progress: Instant::now(),
            rows_written: 0,
            rows_spooled: 0,
            writes_rejected: 0,
            rows_rejected: 0,
            batches_committed: 0,
            last_batch: (0, Duration::ZERO),
            last_error: None,
        })
    }

    /// The loop; returns when closed and flushed.
    pub(crate) fn run(mut self) {
        loop {
            if self.held.is_none() {
                let wait = self.idle_wait();
                let items = self.shared.queue.take(self.settings.batch_rows, wait);
                self.accept(items);
            }
            if let Some(held) = self.held.take() {
                self.dispose(held);
            }
            self.replay();
            self.answer_barriers();
            self.log_progress();
            self.publish_status();
            if self.closing.is_some() && self.deadline_passed() {
                if let Some(held) = self.held.take() {
                    self.give_up(held);
                }
            }
            if self.done() {
                break;
            }
            if self.held.is_some() {
                std::thread::sleep(RETRY);
            }
        }
        self.finish();
    }

    fn idle_wait(&self) -> Duration {
        if self.closing.is_some() {
            return Duration::ZERO;
        }
        if self.spool.is_some() {
            return self
                .next_db_try
                .saturating_duration_since(Instant::now())
                .min(RETRY);
        }
        RETRY
    }

    fn deadline_passed(&self) -> bool {
        self.closing
            .as_ref()
            .is_some_and(|c| Instant::now() >= c.deadline)
    }

    fn accept(&mut self, items: Vec<Item>) {
        let mut writes = Vec::new();
        let mut barriers = Vec::new();
        for item in items {
            match item {
                Item::Write(PendingWrite { write, durable, .. }) => writes.push(HeldWrite {
                    rows: write.rows,
                    events: write.events,
                    durable,
                }),
                Item::Barrier(tx) => barriers.push(tx),
                Item::Close(request) => {
                    self.at_close = (self.rows_written, self.rows_spooled);
                    self.closing = Some(request);
                }
            }
        }
        if !writes.is_empty() {
            let id = self.next_batch;
            self.next_batch += 1;
            self.last_assigned = id;
            self.held = Some(Held {
                id,
                first: 0,
                writes,
            });
        }
        for tx in barriers {
            self.barriers.push((self.last_assigned, tx));
        }
    }

    /// Makes `held` durable (PostgreSQL or spool), or keeps it held (disk full).
    fn dispose(&mut self, mut held: Held) {
        let (queued, _) = self.shared.queue.depth();
        let high_water = queued > self.shared.queue.capacity() / 4 * 3;
        let direct = self.spool.is_none()
            && !self.prefer_spool
            && !high_water
            && !self.deadline_passed()
            && Instant::now() >= self.next_db_try;
        if direct {
            let out = {
                let entries = held.entries();
                self.write_entries(&entries)
            };
            let rest = held.writes.split_off(out.handled.min(held.writes.len()));
            let done = std::mem::replace(&mut held.writes, rest);
            let first = held.first;
            held.first += done.len() as u32;
            self.acknowledge(done, held.id, first, Durable::Postgres, &out.rejected);
            if held.writes.is_empty() {
                self.committed_through = held.id;
                return;
            }
            if let Some(why) = out.stalled {
                self.stall(held, why);
                return;
            }
            if let Some(why) = out.unreachable {
                self.enter_outage(&why);
            }
        } else if high_water && self.spool.is_none() && !self.prefer_spool {
            warn!(self.log, "the write queue is past its high-water mark: spooling until \
                PostgreSQL catches up"; "queued_rows" => queued);
            self.prefer_spool = true;
        }
        self.spool_held(held);
    }

    fn spool_held(&mut self, held: Held) {
        let rows = held.rows();
        let appended = self.append(&held);
        match appended {
            Ok(()) => {
                if let Some((_, why)) = self.stalled.take() {
                    info!(self.log, "the spool takes batches again"; "after" => why);
                }
                self.rows_spooled += rows as u64;
                let (id, first) = (held.id, held.first);
                self.acknowledge(held.writes, id, first, Durable::Spool, &[]);
            }
            Err(e) => self.stall(held, e),
        }
    }

    fn append(&mut self, held: &Held) -> Result<(), String> {
        if self.spool.is_none() {
            let spool = Spool::create(&self.spool_dir).map_err(|e| {
                format!(
                    "cannot create the spool {}: {e}",
                    Spool::path_in(&self.spool_dir).display()
                )
            })?;
            warn!(self.log, "writes go to the spool until PostgreSQL takes them again";
                "spool" => spool.path().display().to_string());
            self.spool = Some(spool);
        }
        let batch = SpoolBatchRef {
            id: held.id,
            first: held.first,
            writes: held.writes.iter().map(|w| w.rows.as_slice()).collect(),
        };
        let rows = u32::try_from(held.rows()).unwrap_or(u32::MAX);
        match self.spool.as_mut() {
            Some(spool) => spool
                .append(held.id, rows, &batch)
                .map_err(|e| format!("cannot append to the spool {}: {e}", spool.path().display())),
            None => Err("no spool".into()),
        }
    }

    /// Nothing could take the batch: keep it, retry every second; producers wait on
    /// the full queue meanwhile.
    fn stall(&mut self, held: Held, why: String) {
        if self.stalled.is_none() {
            error!(self.log, "neither PostgreSQL nor the spool takes the current batch \
                (is the disk full?): nothing more is acknowledged, producers wait; \
                retrying every second"; "error" => &why, "rows" => held.rows());
            self.stalled = Some((Instant::now(), why.clone()));
        }
        self.last_error = Some(why);
        self.held = Some(held);
    }

    /// At the close deadline a held batch that nothing took is reported, not hidden.
    fn give_up(&mut self, held: Held) {
        let rows = held.rows();
        let why = self
            .stalled
            .as_ref()
            .map(|(_, w)| w.clone())
            .unwrap_or_else(|| "shutdown deadline".into());
        error!(self.log, "shutdown: rows could be made durable nowhere (neither PostgreSQL \
            nor the spool took them)"; "rows" => rows, "error" => &why);
        self.not_durable += rows as u64;
        for w in held.writes {
            if let Some(tx) = w.durable {
                let _ = tx.send(Err(StoreError::NotDurable(why.clone())));
            }
        }
    }

    fn enter_outage(&mut self, why: &str) {
        self.db.conn = None;
        self.next_db_try = Instant::now() + RETRY;
        self.last_error = Some(why.to_string());
        if self.outage_since.is_none() {
            self.outage_since = Some(Utc::now());
            error!(self.log, "PostgreSQL is unreachable: writes go to the spool until it \
                answers"; "error" => why,
                "spool" => Spool::path_in(&self.spool_dir).display().to_string());
        }
    }

    /// Publishes the events of writes that became durable, in order, appends their
    /// diary lines, and answers `write_durable`.
    fn acknowledge(
        &mut self,
        writes: Vec<HeldWrite>,
        batch: i64,
        first: u32,
        durable: Durable,
        rejected: &[(i64, u32, PathBuf, String)],
    ) {
        // Whoever is told "durable" then sees it in the health counters too.
        self.publish_status();
        for (k, w) in writes.into_iter().enumerate() {
            let index = first + k as u32;
            let refused = rejected
                .iter()
                .find(|(b, i, _, _)| *b == batch && *i == index);
            if let Some((_, _, path, error)) = refused {
                // Not in the database: not announced either.
                if let Some(tx) = w.durable {
                    let _ = tx.send(Err(StoreError::Rejected {
                        path: path.clone(),
                        error: error.clone(),
                    }));
                }
                continue;
            }
            for rows in &w.rows {
                self.append_diary(rows);
            }
            for event in w.events {
                self.events.do_send(Publish(event));
            }
            if let Some(tx) = w.durable {
                let _ = tx.send(Ok(durable));
            }
        }
    }

    fn append_diary(&self, rows: &Rows) {
        for row in rows.diary() {
            let path = self.diary_dir.join(format!("{}.jsonl", row.account_id));
            let result = std::fs::create_dir_all(&self.diary_dir).and_then(|_| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
                line.push(b'\n');
                f.write_all(&line)
            });
            if let Err(e) = result {
                error!(self.log, "could not append to the diary file (the entry is in the \
                    database)"; "path" => path.display().to_string(), "error" => e.to_string());
            }
        }
    }

    /// Writes `entries` in one transaction if it can; see the module docs for what
    /// happens when it cannot.
    fn write_entries(&mut self, entries: &[Entry<'_>]) -> Outcome {
        let mut out = Outcome::default();
        let Some(last) = entries.last() else {
            return out;
        };
        match self.db.apply(entries) {
            Ok(took) => {
                self.committed(entries, took);
                out.handled = entries.len();
                return out;
            }
            Err(e) => {
                warn!(self.log, "a write transaction failed; checking whether it committed";
                    "error" => &e, "writes" => entries.len());
                self.last_error = Some(e);
            }
        }
        match self.db.marker() {
            Err(e) => {
                out.unreachable = Some(e);
                return out;
            }
            Ok(m) if m.covers(last) => {
                self.committed(entries, Duration::ZERO);
                out.handled = entries.len();
                return out;
            }
            Ok(_) => {}
        }
        self.split(entries, &mut out);
        out
    }

    /// Retries `entries` as one transaction, then as halves, down to single writes; a
    /// single write still refused goes to the dead-letter file. False when it had to
    /// stop (unreachable, or the dead-letter file cannot be written).
    fn split(&mut self, entries: &[Entry<'_>], out: &mut Outcome) -> bool {
        let Some(last) = entries.last() else {
            return true;
        };
        let error = match self.db.apply(entries) {
            Ok(took) => {
                self.committed(entries, took);
                out.handled += entries.len();
                return true;
            }
            Err(e) => e,
        };
        match self.db.marker() {
            Err(e) => {
                out.unreachable = Some(e);
                return false;
            }
            Ok(m) if m.covers(last) => {
                self.committed(entries, Duration::ZERO);
                out.handled += entries.len();
                return true;
            }
            Ok(_) => {}
        }
        match entries {
            [one] => self.dead_letter(one, &error, out),
            _ => {
                let (a, b) = entries.split_at(entries.len() / 2);
                self.split(a, out) && self.split(b, out)
            }
        }
    }

    fn dead_letter(&mut self, e: &Entry<'_>, error: &str, out: &mut Outcome) -> bool {
        let entry = Rejected {
            at: Utc::now(),
            batch_id: e.batch,
            write_index: e.index,
            error,
            rows: e.rows,
        };
        match spool::reject(&self.spool_dir, &entry) {
            Ok(path) => {
                let rows: usize = e.rows.iter().map(Rows::count).sum();
                error!(self.log, "PostgreSQL refused a write for its content; its rows are \
                    kept in the dead-letter file"; "path" => path.display().to_string(),
                    "error" => error, "batch_id" => e.batch, "write_index" => e.index,
                    "rows" => rows);
                if let Err(why) = self.db.mark(Marker::after(e)) {
                    // A replay of this batch would find it refused again and set it
                    // aside again: a duplicate line in the file, never a lost row.
                    warn!(self.log, "could not move the marker past a refused write";
                        "error" => why);
                }
                self.writes_rejected += 1;
                self.rows_rejected += rows as u64;
                self.last_error = Some(error.to_string());
                out.rejected
                    .push((e.batch, e.index, path, error.to_string()));
                out.handled += 1;
                true
            }
            Err(io) => {
                out.stalled = Some(format!(
                    "PostgreSQL refused a write ({error}) and the dead-letter file {} cannot be \
                     written: {io}",
                    self.spool_dir.join(spool::REJECTED_FILE).display()
                ));
                false
            }
        }
    }

    fn committed(&mut self, entries: &[Entry<'_>], took: Duration) {
        let rows: usize = entries
            .iter()
            .flat_map(|e| e.rows.iter())
            .map(Rows::count)
            .sum();
        self.rows_written += rows as u64;
        self.batches_committed += 1;
        self.last_batch = (rows, took);
        {
            let mut status = self.shared.status();
            if status.latencies.len() >= LATENCY_HISTORY {
                status.latencies.pop_front();
            }
            status.latencies.push_back((rows, took));
        }
        if let Some(since) = self.outage_since.take() {
            info!(self.log, "PostgreSQL answers again";
                "outage_s" => (Utc::now() - since).num_milliseconds() as f64 / 1000.0);
        }
        if took > self.settings.slow_commit && !self.prefer_spool && self.spool.is_none() {
            warn!(self.log, "PostgreSQL is slow: the following batches go to the spool \
                until it catches up"; "commit_ms" => took.as_millis() as u64, "rows" => rows);
            self.prefer_spool = true;
        }
    }

    /// Replays the oldest spooled batches for a slice of time (or until the queue has
    /// something); deletes the spool when it is all in PostgreSQL.
    fn replay(&mut self) {
        if self.spool.is_none() || Instant::now() < self.next_db_try || self.deadline_passed() {
            return;
        }
        let slice_end = Instant::now() + REPLAY_SLICE;
        loop {
            if self.deadline_passed() {
                return;
            }
            let (drained, frames) = match self.spool.as_ref() {
                None => return,
                Some(s) if s.is_drained() => (true, Vec::new()),
                Some(s) => (
                    false,
                    s.front(self.settings.batch_rows.saturating_mul(REPLAY_FACTOR)),
                ),
            };
            if drained {
                if self.held.is_none() {
                    self.finish_replay();
                }
                return;
            }
            let marker = match self.db.marker() {
                Ok(m) => m,
                Err(e) => {
                    self.enter_outage(&e);
                    return;
                }
            };
            if self.replay_started.is_none() {
                let (batches, rows) = self
                    .spool
                    .as_ref()
                    .map(|s| (s.pending_batches(), s.pending_rows()))
                    .unwrap_or_default();
                info!(self.log, "replaying the spool into PostgreSQL";
                    "batches" => batches, "rows" => rows);
                self.replay_started = Some((Instant::now(), 0));
            }
            let mut batches = Vec::with_capacity(frames.len());
            for (frame, parsed) in &frames {
                match parsed {
                    Ok(b) => batches.push(b),
                    Err(why) => match spool::reject_raw(&self.spool_dir, frame.batch_id, why) {
                        Ok(path) => {
                            error!(self.log, "a spooled batch cannot be read back; its raw \
                                text is kept in the dead-letter file";
                                "path" => path.display().to_string(), "error" => why);
                            self.rows_rejected += u64::from(frame.rows);
                        }
                        Err(e) => {
                            self.last_error =
                                Some(format!("cannot write the dead-letter file: {e}"));
                            self.next_db_try = Instant::now() + RETRY;
                            return;
                        }
                    },
                }
            }
            let entries: Vec<Entry<'_>> = batches
                .iter()
                .flat_map(|b| {
                    b.writes.iter().enumerate().map(|(k, rows)| Entry {
                        batch: b.id,
                        index: b.first + k as u32,
                        rows,
                    })
                })
                .filter(|e| !marker.covers(e))
                .collect();
            let out = self.write_entries(&entries);
            if out.handled < entries.len() {
                if let Some(why) = out.unreachable {
                    self.enter_outage(&why);
                } else {
                    // The dead-letter file cannot be written: try again later (the
                    // marker skips what is already in).
                    self.last_error = out.stalled;
                    self.next_db_try = Instant::now() + RETRY;
                }
                return;
            }
            let rows: u64 = frames.iter().map(|(f, _)| u64::from(f.rows)).sum();
            if let Some((_, done)) = self.replay_started.as_mut() {
                *done += rows;
            }
            if let Some((last, _)) = frames.last() {
                self.committed_through = last.batch_id;
            }
            if let Some(s) = self.spool.as_mut() {
                s.pop_front(frames.len());
            }
            // The last frame: the replay ends (and says so) before the barriers it
            // releases — a start-up waits on one — are answered.
            let drained = self.spool.as_ref().is_some_and(|s| s.is_drained());
            if drained && self.held.is_none() {
                self.finish_replay();
                return;
            }
            self.answer_barriers();
            if Instant::now() >= slice_end || !self.shared.queue.is_empty() {
                return;
            }
        }
    }

    fn finish_replay(&mut self) {
        let Some(spool) = self.spool.take() else {
            return;
        };
        let path = spool.path().display().to_string();
        if let Err(e) = spool.remove() {
            // Everything in it is in PostgreSQL (the marker says so): a later start
            // that finds it replays nothing twice.
            error!(self.log, "could not delete the replayed spool"; "spool" => &path,
                "error" => e.to_string());
        }
        let (started, rows) = self.replay_started.take().unwrap_or((Instant::now(), 0));
        info!(self.log, "replay finished: the spool is in PostgreSQL; writes go straight to \
            it again"; "rows" => rows, "seconds" => started.elapsed().as_secs_f64(),
            "spool" => path);
        self.prefer_spool = false;
        self.committed_through = self.committed_through.max(self.last_assigned);
        self.answer_barriers();
    }

    fn answer_barriers(&mut self) {
        let through = self.committed_through;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.barriers)
            .into_iter()
            .partition(|(threshold, _)| *threshold <= through);
        self.barriers = waiting;
        if !ready.is_empty() {
            self.publish_status();
        }
        for (_, tx) in ready {
            let _ = tx.send(Ok(()));
        }
    }

    fn log_progress(&mut self) {
        let Some(spool) = &self.spool else {
            return;
        };
        if self.last_progress.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last_progress = Instant::now();
        info!(self.log, "spool pending"; "batches" => spool.pending_batches(),
            "rows" => spool.pending_rows(),
            "database_unreachable_since" => self.outage_since.map(|t| t.to_rfc3339()));
    }

    fn mode(&self) -> StoreMode {
        if self.stalled.is_some() && self.held.is_some() {
            StoreMode::Stalled
        } else if self.spool.is_some() {
            if self.outage_since.is_some() {
                StoreMode::Spooling
            } else {
                StoreMode::Replaying
            }
        } else {
            StoreMode::Online
        }
    }

    /// Copies the writer's state into what [`super::Store::health`] reads.
    pub(crate) fn publish_status(&self) {
        let mut s = self.shared.status();
        s.mode = self.mode();
        s.spooled_batches_pending = self.spool.as_ref().map_or(0, Spool::pending_batches);
        s.spooled_rows_pending = self.spool.as_ref().map_or(0, Spool::pending_rows);
        s.outage_since = self.outage_since;
        s.rows_written = self.rows_written;
        s.rows_spooled = self.rows_spooled;
        s.writes_rejected = self.writes_rejected;
        s.rows_rejected = self.rows_rejected;
        s.batches_committed = self.batches_committed;
        s.last_batch_rows = self.last_batch.0;
        s.last_batch_ms = self.last_batch.1.as_secs_f64() * 1000.0;
        s.last_error.clone_from(&self.last_error);
    }

    fn done(&self) -> bool {
        self.closing.is_some()
            && self.held.is_none()
            && self.shared.queue.is_empty()
            && (self.spool.is_none() || self.deadline_passed() || Instant::now() < self.next_db_try)
    }

    fn finish(mut self) {
        for (_, tx) in self.barriers.drain(..) {
            let _ = tx.send(Err(StoreError::Closed));
        }
        let pending = self.spool.as_ref().map_or(0, Spool::pending_rows);
        let report = ShutdownReport {
            flushed_to_postgres: self.rows_written - self.at_close.0,
            flushed_to_spool: self.rows_spooled - self.at_close.1,
            spool_rows_pending: pending,
            spool_path: self.spool.as_ref().map(|s| s.path().to_path_buf()),
            not_durable: self.not_durable,
            run_rows_written: self.rows_written,
            run_rows_spooled: self.rows_spooled,
        };
        slog::debug!(self.log, "database writer closed";
            "flushed_to_postgres_rows" => report.flushed_to_postgres,
            "flushed_to_spool_rows" => report.flushed_to_spool,
            "spool_rows_pending" => report.spool_rows_pending,
            "spool" => report.spool_path.as_ref().map(|p| p.display().to_string()),
            "not_durable_rows" => report.not_durable,
            "run_rows_written" => report.run_rows_written,
            "run_rows_spooled" => report.run_rows_spooled);
        self.publish_status();
        self.shared.status().mode = StoreMode::Closed;
        if let Some(reply) = self.closing.take().and_then(|c| c.reply) {
            let _ = reply.send(report);
        }
    }
}
