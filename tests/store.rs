//! The durable write path (`src/store/`) against a real PostgreSQL: many writes become
//! few transactions; each account's writes and the events announcing them keep their
//! order; an event goes out only once its rows are committed; while PostgreSQL is down
//! writes are spooled (and acknowledged as such) and replayed in order when it is back;
//! a torn spool tail is dropped; a write PostgreSQL refuses goes to `rejected.jsonl`
//! while the rest is written; a spool replayed again after a crash writes nothing
//! twice; a spool that cannot be written stalls the writer instead of losing rows.

mod common;

use actix::prelude::*;
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use common::pg::StoppableCluster;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vibex::actors::events::{Channel, EventDraft};
use vibex::actors::messages::Publish;
use vibex::db::models::*;
use vibex::db::queries::{self, ExecutionBatch};
use vibex::db::schema::*;
use vibex::db::{self, DbPool};
use vibex::domain::types::AccountId;
use vibex::store::{Durable, Rows, StorageSettings, Store, StoreError, StoreMode, Write};

const ACCOUNTS: [&str; 3] = ["a1", "a2", "a3"];

/// An event the store published, and whether its equity row was in PostgreSQL when
/// the event arrived (when the collector has a pool to look).
#[derive(Clone, Debug)]
struct Seen {
    kind: &'static str,
    account: String,
    data: serde_json::Value,
    row_visible: Option<bool>,
}

/// Stands in for the EventBus: records what the store publishes.
struct Collector {
    seen: Arc<Mutex<Vec<Seen>>>,
    pool: Option<DbPool>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Publish> for Collector {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Self::Context) {
        let draft = msg.0;
        let account = draft
            .account_id
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let row_visible = match (&self.pool, draft.data["ts"].as_str()) {
            (Some(pool), Some(ts)) => {
                let ts: DateTime<Utc> = ts.parse().expect("event ts");
                let mut conn = pool.get().expect("connection");
                let n: i64 = equity_snapshots::table
                    .filter(equity_snapshots::account_id.eq(&account))
                    .filter(equity_snapshots::ts.eq(ts))
                    .count()
                    .get_result(&mut conn)
                    .expect("count");
                Some(n == 1)
            }
            _ => None,
        };
        self.seen.lock().unwrap().push(Seen {
            kind: draft.kind,
            account,
            data: draft.data,
            row_visible,
        });
    }
}

fn collector(pool: Option<DbPool>) -> (Recipient<Publish>, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = Collector {
        seen: seen.clone(),
        pool,
    }
    .start();
    (addr.recipient(), seen)
}

/// Migrates the database behind `url` and registers the accounts.
fn prepare(url: &str) -> DbPool {
    let pool = db::connect(url, 6).unwrap();
    let mut conn = pool.get().unwrap();
    db::run_migrations(&mut conn).unwrap();
    for id in ACCOUNTS {
        queries::upsert_account(&mut conn, &common::pg::paper_account_row(id)).unwrap();
    }
    pool
}

fn migrated() -> (common::pg::TestDb, DbPool) {
    let tdb = common::pg::test_db();
    let pool = prepare(&tdb.url);
    (tdb, pool)
}

/// A pool whose server never answers (nothing listens on the port).
fn unreachable_pool() -> DbPool {
    let port = common::process::free_port();
    let manager = diesel::r2d2::ConnectionManager::<PgConnection>::new(format!(
        "postgres://vibex:none@127.0.0.1:{port}/vibex"
    ));
    diesel::r2d2::Pool::builder()
        .max_size(2)
        .connection_timeout(Duration::from_secs(1))
        .build_unchecked(manager)
}

fn log() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

fn open(pool: DbPool, dir: &Path, settings: StorageSettings, events: Recipient<Publish>) -> Store {
    Store::open(pool, dir, settings, events, &log()).expect("store opens")
}

fn at(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + ChronoDuration::milliseconds(n)
}

fn equity(account: &str, ts: DateTime<Utc>) -> EquitySnapshotRow {
    EquitySnapshotRow {
        ts,
        account_id: account.into(),
        cycle_id: None,
        wallet_balance: Decimal::from(10_000),
        unrealized_pnl: Decimal::ZERO,
        equity: Decimal::from(10_000),
        used_margin: Decimal::ZERO,
        available: Decimal::from(10_000),
    }
}

fn event(kind: &'static str, account: &str, data: serde_json::Value) -> EventDraft {
    EventDraft::account(
        Channel::TradingEvents,
        kind,
        &AccountId::new(account),
        None,
        data,
    )
}

/// Write `n` of `account`: its equity row at `at(n)` and a `step` event saying so.
fn step(account: &str, n: i64) -> Write {
    Write::new(
        vec![Rows::Equity(equity(account, at(n)))],
        vec![event("step", account, json!({"n": n, "ts": at(n)}))],
    )
}

fn equity_rows(pool: &DbPool, account: &str) -> i64 {
    equity_snapshots::table
        .filter(equity_snapshots::account_id.eq(account))
        .count()
        .get_result(&mut pool.get().unwrap())
        .unwrap()
}

fn settings() -> StorageSettings {
    StorageSettings {
        queue_capacity: 20_000,
        batch_rows: 5_000,
        ..StorageSettings::default()
    }
}

/// Waits for `what` to hold, or fails saying what it waited for.
async fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn settled(store: &Store, within: Duration) {
    tokio::time::timeout(within, store.settled())
        .await
        .unwrap_or_else(|_| panic!("the store did not settle within {within:?}"))
        .expect("settled");
}

/// Holds an exclusive lock on `equity_snapshots` until dropped (the writer's next
/// transaction waits on it): everything pushed meanwhile piles up in the queue.
struct TableLock(db::DbConn);

impl TableLock {
    fn take(pool: &DbPool) -> TableLock {
        let mut conn = pool.get().unwrap();
        diesel::sql_query("BEGIN").execute(&mut conn).unwrap();
        diesel::sql_query("LOCK TABLE equity_snapshots IN ACCESS EXCLUSIVE MODE")
            .execute(&mut conn)
            .unwrap();
        TableLock(conn)
    }

    fn release(mut self) {
        diesel::sql_query("COMMIT").execute(&mut self.0).unwrap();
    }
}

#[actix_rt::test]
async fn two_thousand_writes_are_committed_in_at_most_two_transactions() {
    let (_tdb, pool) = migrated();
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = collector(None);
    let store = open(pool.clone(), dir.path(), settings(), events);
    let lock = TableLock::take(&pool);
    for n in 0..2000 {
        let account = ACCOUNTS[n as usize % 3];
        let w = Write::rows(vec![
            Rows::Equity(equity(account, at(n))),
            Rows::AccountStatus {
                account_id: account.into(),
                status: format!("s{n}"),
            },
        ]);
        // Queued in call order; this test does not wait for room (there is room).
        drop(store.write(w));
    }
    lock.release();
    settled(&store, Duration::from_secs(60)).await;

    for account in ACCOUNTS {
        assert!(equity_rows(&pool, account) >= 666);
    }
    let total: i64 = equity_snapshots::table
        .count()
        .get_result(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(total, 2000, "every write is stored");
    let h = store.health();
    assert_eq!(h.rows_written, 4000);
    assert!(
        h.batches_committed <= 2,
        "group commit: 2,000 writes queued behind one transaction are written together, \
         not one transaction each ({} transactions)",
        h.batches_committed
    );
    assert_eq!(h.mode, StoreMode::Online);
    store.close(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn each_accounts_writes_and_their_events_keep_their_order() {
    let (_tdb, pool) = migrated();
    let dir = tempfile::tempdir().unwrap();
    let (events, seen) = collector(None);
    let store = open(pool.clone(), dir.path(), settings(), events);
    let order = |account: &str, n: i64| OrderRow {
        id: uuid::Uuid::now_v7(),
        account_id: account.into(),
        cycle_id: None,
        decision_id: None,
        client_order_id: format!("vx-{account}-1"),
        venue_order_id: (n < 3).then(|| format!("venue-{account}")),
        symbol: "BTCUSDT".into(),
        side: "BUY".into(),
        order_type: "MARKET".into(),
        quantity: Some(Decimal::from(300)),
        price: None,
        stop_price: None,
        reduce_only: false,
        close_position: false,
        status: if n < 297 {
            "PARTIALLY_FILLED"
        } else {
            "FILLED"
        }
        .into(),
        filled_quantity: Decimal::from(n),
        avg_fill_price: None,
        reject_reason: None,
        created_at: at(0),
        updated_at: at(n),
    };
    let write = |n: i64| {
        let account = ACCOUNTS[n as usize % 3];
        Write::new(
            vec![
                Rows::AccountStatus {
                    account_id: account.into(),
                    status: format!("s{n}"),
                },
                Rows::Execution(ExecutionBatch {
                    orders: vec![order(account, n)],
                    ..Default::default()
                }),
            ],
            vec![event("step", account, json!({"n": n}))],
        )
    };
    // Some writes land in one transaction (queued behind a lock), others one by one.
    let lock = TableLock::take(&pool);
    drop(store.write(Write::rows(vec![Rows::Equity(equity("a1", at(-1)))])));
    for n in 0..150 {
        drop(store.write(write(n)));
    }
    lock.release();
    for n in 150..300 {
        store.write(write(n)).await.unwrap();
        if n % 10 == 0 {
            settled(&store, Duration::from_secs(30)).await;
        }
    }
    settled(&store, Duration::from_secs(30)).await;

    let mut conn = pool.get().unwrap();
    for (k, account) in ACCOUNTS.iter().enumerate() {
        let last = 297 + k as i64;
        let status: String = accounts::table
            .find(account)
            .select(accounts::status)
            .first(&mut conn)
            .unwrap();
        assert_eq!(status, format!("s{last}"), "{account}: its last write wins");
        let orders: Vec<OrderRow> = orders::table
            .filter(orders::account_id.eq(account))
            .select(OrderRow::as_select())
            .load(&mut conn)
            .unwrap();
        assert_eq!(orders.len(), 1, "one row per client order id");
        assert_eq!(orders[0].filled_quantity, Decimal::from(last));
        assert_eq!(orders[0].status, "FILLED");
        assert_eq!(
            orders[0].venue_order_id.as_deref(),
            Some(format!("venue-{account}").as_str()),
            "a later state without the venue id keeps it"
        );
    }
    wait_until("300 step events", Duration::from_secs(10), || {
        seen.lock().unwrap().len() == 300
    })
    .await;
    let ns: Vec<i64> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.data["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ns,
        (0..300).collect::<Vec<_>>(),
        "published in enqueue order"
    );
    store.close(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn an_event_goes_out_only_once_its_rows_are_committed() {
    let (_tdb, pool) = migrated();
    let dir = tempfile::tempdir().unwrap();
    let (events, seen) = collector(Some(pool.clone()));
    let store = open(pool.clone(), dir.path(), settings(), events);
    // While the rows cannot be committed, nothing is announced.
    let lock = TableLock::take(&pool);
    for n in 0..50 {
        drop(store.write(step(ACCOUNTS[n as usize % 3], n)));
    }
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "events published while their rows wait on a lock"
    );
    lock.release();
    for n in 50..200 {
        drop(store.write(step(ACCOUNTS[n as usize % 3], n)));
    }
    wait_until("200 step events", Duration::from_secs(30), || {
        seen.lock().unwrap().len() == 200
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.kind == "step"));
    let missing: Vec<_> = seen
        .iter()
        .filter(|s| s.row_visible != Some(true))
        .map(|s| s.data["n"].clone())
        .collect();
    assert!(
        missing.is_empty(),
        "announced before committed: {missing:?}"
    );
    store.close(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn writes_are_spooled_while_postgres_is_down_and_replayed_in_order_when_it_returns() {
    let mut cluster = StoppableCluster::new();
    let url = cluster.create_db("outage");
    let pool = prepare(&url);
    let dir = tempfile::tempdir().unwrap();
    let (events, seen) = collector(None);
    let store = open(pool.clone(), dir.path(), settings(), events);
    assert_eq!(
        store.write_durable(step("a1", 0)).await.unwrap(),
        Durable::Postgres
    );

    cluster.stop();
    for n in 1..=30 {
        let account = ACCOUNTS[n as usize % 3];
        let status = Rows::AccountStatus {
            account_id: account.into(),
            status: format!("s{n}"),
        };
        let mut w = step(account, n);
        w.rows.push(status);
        let durable = store.write_durable(w).await.unwrap();
        assert_eq!(durable, Durable::Spool, "write {n} during the outage");
    }
    let h = store.health();
    assert_eq!(h.mode, StoreMode::Spooling);
    assert!(h.outage_since.is_some());
    assert!(store.outage().is_some(), "the outage rule can see it");
    assert_eq!(h.spooled_rows_pending, 60);
    assert!(h.spool_path.exists(), "{}", h.spool_path.display());
    wait_until(
        "31 events (durable in the spool)",
        Duration::from_secs(10),
        || seen.lock().unwrap().len() == 31,
    )
    .await;

    cluster.start();
    settled(&store, Duration::from_secs(60)).await;
    let mut conn = pool.get().unwrap();
    let stored: Vec<DateTime<Utc>> = equity_snapshots::table
        .select(equity_snapshots::ts)
        .order(equity_snapshots::ts.asc())
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        stored,
        (0..=30).map(at).collect::<Vec<_>>(),
        "each row once"
    );
    for (k, account) in ACCOUNTS.iter().enumerate() {
        // Writes 1..=30 go to ACCOUNTS[n % 3]: a1's last is 30, a2's 28, a3's 29.
        let last = 30 - (3 - k as i64) % 3;
        let status: String = accounts::table
            .find(account)
            .select(accounts::status)
            .first(&mut conn)
            .unwrap();
        assert_eq!(status, format!("s{last}"), "{account}: replayed in order");
    }
    // Everything is in PostgreSQL; the spool's deletion follows.
    wait_until("the store back online", Duration::from_secs(10), || {
        store.health().mode == StoreMode::Online
    })
    .await;
    let h = store.health();
    assert!(h.outage_since.is_none());
    assert_eq!(h.spooled_rows_pending, 0);
    assert!(!h.spool_path.exists(), "the replayed spool is deleted");
    assert!(!store.rejected_path().exists());
    // Straight to PostgreSQL again.
    assert_eq!(
        store.write_durable(step("a2", 31)).await.unwrap(),
        Durable::Postgres
    );
    let report = store.close(Duration::from_secs(5)).await;
    assert_eq!(report.spool_rows_pending, 0);
    assert_eq!(report.run_rows_spooled, 60);
}

/// Spools `n` writes (2 rows each: an equity row and an order event) through a store
/// whose database never answers, then closes it; returns the spool file.
async fn spool_without_database(dir: &Path, n: i64) -> std::path::PathBuf {
    let (events, _) = collector(None);
    let store = open(unreachable_pool(), dir, settings(), events);
    for i in 0..n {
        let mut w = step(ACCOUNTS[i as usize % 3], i);
        w.rows.push(Rows::Execution(ExecutionBatch {
            order_events: vec![NewOrderEvent {
                ts: at(i),
                order_id: uuid::Uuid::now_v7(),
                account_id: ACCOUNTS[i as usize % 3].into(),
                cycle_id: None,
                status: "NEW".into(),
                detail: json!({"n": i}),
            }],
            ..Default::default()
        }));
        assert_eq!(store.write_durable(w).await.unwrap(), Durable::Spool);
    }
    let report = store.close(Duration::from_secs(5)).await;
    assert_eq!(report.spool_rows_pending, 2 * n as u64);
    assert_eq!(report.flushed_to_postgres, 0);
    report
        .spool_path
        .expect("the spool is left for the next start")
}

fn count_rows(pool: &DbPool) -> (i64, i64) {
    let mut conn = pool.get().unwrap();
    let equity: i64 = equity_snapshots::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    let events: i64 = order_events::table.count().get_result(&mut conn).unwrap();
    (equity, events)
}

#[actix_rt::test]
async fn a_torn_spool_tail_is_dropped_and_every_whole_batch_is_replayed() {
    let (_tdb, pool) = migrated();
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_without_database(dir.path(), 3).await;
    // A crash in the middle of a fourth append: a frame header and a few bytes.
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&spool)
            .unwrap();
        f.write_all(&[0xE8, 0x03, 0, 0, 1, 2, 3, 4, 5, 6, 7])
            .unwrap();
    }
    let (events, _) = collector(None);
    let store = open(pool.clone(), dir.path(), settings(), events);
    settled(&store, Duration::from_secs(30)).await;
    assert_eq!(count_rows(&pool), (3, 3));
    assert!(!spool.exists(), "replayed and deleted");
    assert!(!store.rejected_path().exists());
    let damaged = std::fs::read_dir(spool.parent().unwrap())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("damaged"));
    assert!(!damaged, "a torn tail is not damage");
    store.close(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn a_spool_replayed_again_after_a_crash_writes_nothing_twice() {
    let (_tdb, pool) = migrated();
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_without_database(dir.path(), 12).await;
    // The crash: the replay committed, but the spool was not deleted.
    let copy = std::fs::read(&spool).unwrap();
    let (events, _) = collector(None);
    let store = open(pool.clone(), dir.path(), settings(), events);
    settled(&store, Duration::from_secs(30)).await;
    store.close(Duration::from_secs(5)).await;
    assert_eq!(count_rows(&pool), (12, 12));
    assert!(!spool.exists());

    std::fs::write(&spool, &copy).unwrap();
    let (events, _) = collector(None);
    let store = open(pool.clone(), dir.path(), settings(), events);
    settled(&store, Duration::from_secs(30)).await;
    assert_eq!(
        count_rows(&pool),
        (12, 12),
        "order events have no unique key: a second write would show"
    );
    assert_eq!(store.health().rows_written, 0, "every batch was skipped");
    assert!(!spool.exists());
    assert!(!store.rejected_path().exists());
    store.close(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn a_write_postgres_refuses_goes_to_the_dead_letter_file_and_the_rest_is_written() {
    let (_tdb, pool) = migrated();
    let dir = tempfile::tempdir().unwrap();
    let (events, seen) = collector(None);
    let store = open(pool.clone(), dir.path(), settings(), events);
    let lock = TableLock::take(&pool);
    let before = store.write_durable(step("a1", 1));
    // No such account: the foreign key refuses it, whatever the retries.
    let poisoned = store.write_durable(step("ghost", 2));
    let after = store.write_durable(step("a2", 3));
    lock.release();
    assert_eq!(before.await.unwrap(), Durable::Postgres);
    match poisoned.await {
        Err(StoreError::Rejected { path, error }) => {
            assert_eq!(path, store.rejected_path());
            assert!(error.contains("foreign key"), "{error}");
        }
        other => panic!("expected the write to be rejected, got {other:?}"),
    }
    assert_eq!(after.await.unwrap(), Durable::Postgres);
    assert_eq!(equity_rows(&pool, "a1"), 1);
    assert_eq!(equity_rows(&pool, "a2"), 1);
    let text = std::fs::read_to_string(store.rejected_path()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["rows"][0]["Equity"]["account_id"], "ghost");
    assert!(lines[0]["error"].as_str().unwrap().contains("foreign key"));
    let h = store.health();
    assert_eq!((h.writes_rejected, h.rows_rejected), (1, 1));
    wait_until(
        "the two stored writes' events",
        Duration::from_secs(10),
        || seen.lock().unwrap().len() == 2,
    )
    .await;
    let accounts: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.account.clone())
        .collect();
    assert_eq!(accounts, ["a1", "a2"], "a refused write is not announced");
    store.close(Duration::from_secs(5)).await;
}

#[actix_rt::test]
async fn when_the_spool_cannot_be_written_nothing_is_acknowledged_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let (events, seen) = collector(None);
    let store = open(unreachable_pool(), dir.path(), settings(), events);
    // A disk that is always full, where the spool will be created.
    let spool = store.health().spool_path;
    std::os::unix::fs::symlink("/dev/full", &spool).unwrap();
    let mut durable = Box::pin(store.write_durable(step("a1", 1)));
    wait_until("the writer to stall", Duration::from_secs(20), || {
        store.health().mode == StoreMode::Stalled
    })
    .await;
    assert!(
        futures_util::poll!(&mut durable).is_pending(),
        "nothing acknowledged while nothing can hold the rows"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing announced either");
    assert!(store.health().last_error.is_some());
    // Space again.
    std::fs::remove_file(&spool).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), durable)
        .await
        .expect("acknowledged once the spool takes it");
    assert_eq!(result.unwrap(), Durable::Spool);
    let report = store.close(Duration::from_secs(5)).await;
    assert_eq!(report.spool_rows_pending, 1);
}
