//! Throughput of the write path (`src/store/`) against the embedded PostgreSQL: rows per
//! second and transaction latency p50/p99 of the writer thread, online and replaying a
//! spool. A small harness (`harness = false`) that prints a table.
//!
//! The workload is the daemon's per-cycle shape for `VIBEX_BENCH_ACCOUNTS` accounts
//! (default 1,000) trading 3 assets: per cycle, one write with the model interaction
//! and 3 decisions (and their 3 `decision` events), one with the equity row (and the
//! `balance` event), one with no rows (`cycle_completed`) — 5 rows in 3 writes.
//! `VIBEX_BENCH_CYCLES` cycles (default 20,000, i.e. 100,000 rows) are pushed as fast
//! as the queue takes them (each producer waits while the queue is full, as the actors
//! do), round-robin over the accounts.
//!
//! 1. **online**: a store over PostgreSQL; from the first push until `settled`.
//! 2. **spooling**: the same workload with PostgreSQL unreachable (a pool to a closed
//!    port): every batch appended to the spool and fsync'd.
//! 3. **replaying**: a store over PostgreSQL opened on that spool; from open until
//!    `settled` (the whole spool in PostgreSQL).
//!
//! Latencies are those of the writer's transactions (`Store::batch_latencies`), with
//! their rows per transaction. Run: `cargo bench --bench store` (release build; under a
//! minute). Requires the PostgreSQL server binaries (as the tests do). Without `--bench`
//! (e.g. `cargo test --benches`) it only prints how to run it.

#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;
// Shared with the daemon benchmarks; this one uses only `free_port` and `percentile`.
#[allow(unused_imports)]
#[path = "support/mod.rs"]
mod support;

use actix::prelude::*;
use chrono::{Duration as ChronoDuration, Utc};
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::PgConnection;
use rust_decimal::Decimal;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vibex::actors::events::{Channel, EventDraft};
use vibex::actors::messages::Publish;
use vibex::db::models::{AccountRow, DecisionRow, EquitySnapshotRow, LlmInteractionRow};
use vibex::db::{queries, DbPool};
use vibex::domain::types::AccountId;
use vibex::store::{Rows, StorageSettings, Store, Write};

/// Receives the published events and drops them (the EventBus's place).
struct Sink;

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Publish> for Sink {
    type Result = ();
    fn handle(&mut self, _: Publish, _: &mut Self::Context) {}
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "store: measures the write path against the embedded PostgreSQL; run it with \
             `cargo bench --bench store`"
        );
        return;
    }
    let accounts = knob("VIBEX_BENCH_ACCOUNTS", 1_000);
    let cycles = knob("VIBEX_BENCH_CYCLES", 20_000);
    let db = pg::test_db();
    let pool = vibex::db::connect(&db.url, 8).expect("pool");
    {
        let mut conn = pool.get().expect("connection");
        vibex::db::run_migrations(&mut conn).expect("migrations");
        for i in 0..accounts {
            queries::upsert_account(&mut conn, &account_row(&id(i))).expect("account");
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let system = System::new();
    system.block_on(async move {
        println!(
            "store: {cycles} cycles of {accounts} accounts (5 rows in 3 writes each; \
             batch_rows {}, queue_capacity {})",
            StorageSettings::default().batch_rows,
            StorageSettings::default().queue_capacity
        );
        println!(
            "   {:<10} {:>9} {:>10} {:>8} {:>10} {:>9} {:>9}",
            "phase", "rows", "rows/s", "txns", "rows/txn", "p50 ms", "p99 ms"
        );
        let online = tempfile::tempdir().expect("temp dir");
        let store = open(pool.clone(), online.path());
        let started = Instant::now();
        push(&store, accounts, cycles).await;
        store.settled().await.expect("settled");
        report("online", &store, started.elapsed());
        store.close(Duration::from_secs(10)).await;

        let store = open(unreachable(), dir.path());
        let started = Instant::now();
        push(&store, accounts, cycles).await;
        let spooled = store.close(Duration::from_secs(60)).await;
        let took = started.elapsed();
        println!(
            "   {:<10} {:>9} {:>10.0} {:>8} {:>10} {:>9} {:>9}",
            "spooling",
            spooled.run_rows_spooled,
            spooled.run_rows_spooled as f64 / took.as_secs_f64(),
            "-",
            "-",
            "-",
            "-"
        );

        let started = Instant::now();
        let store = open(pool.clone(), dir.path());
        store.settled().await.expect("settled");
        report("replaying", &store, started.elapsed());
        store.close(Duration::from_secs(10)).await;
    });
}

fn id(i: usize) -> String {
    format!("bench-{i:05}")
}

fn open(pool: DbPool, dir: &Path) -> Store {
    let log = slog::Logger::root(slog::Discard, slog::o!());
    Store::open(
        pool,
        dir,
        StorageSettings::default(),
        Sink.start().recipient(),
        &log,
    )
    .expect("store")
}

/// A pool whose server never answers: everything goes to the spool.
fn unreachable() -> DbPool {
    let port = support::free_port();
    Pool::builder()
        .max_size(2)
        .connection_timeout(Duration::from_millis(200))
        .build_unchecked(ConnectionManager::<PgConnection>::new(format!(
            "postgres://vibex:none@127.0.0.1:{port}/vibex"
        )))
}

async fn push(store: &Store, accounts: usize, cycles: usize) {
    let base = Utc::now();
    for c in 0..cycles {
        let account = id(c % accounts);
        let ts = base + ChronoDuration::milliseconds(c as i64);
        let cycle = Uuid::now_v7();
        let interaction = LlmInteractionRow {
            id: Uuid::now_v7(),
            ts,
            account_id: account.clone(),
            cycle_id: cycle,
            model: "builtin/ema-rsi".into(),
            request: json!({"policy": "builtin/ema-rsi"}),
            response_body: Some(r#"{"trade_decisions":[]}"#.into()),
            parsed: Some(json!({"decisions": []})),
            outcome: Some(json!({"decisions": []})),
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: Some(Decimal::ZERO),
            latency_ms: Some(0),
            http_status: None,
            error: None,
        };
        let decisions: Vec<DecisionRow> = ["BTC", "ETH", "SOL"]
            .iter()
            .map(|asset| DecisionRow {
                id: Uuid::now_v7(),
                ts,
                account_id: account.clone(),
                cycle_id: cycle,
                asset: (*asset).into(),
                symbol: format!("{asset}USDT"),
                action: "hold".into(),
                allocation_usd: Decimal::ZERO,
                tp_price: None,
                sl_price: None,
                exit_plan: String::new(),
                rationale: "price below EMA20".into(),
                source: "builtin/ema-rsi".into(),
                outcome: "hold".into(),
                refusal_reason: None,
                risk_note: None,
                snapshot_id: None,
                llm_interaction_id: Some(interaction.id),
            })
            .collect();
        let event = |kind: &'static str| {
            EventDraft::account(
                Channel::TradingEvents,
                kind,
                &AccountId::new(account.clone()),
                None,
                json!({}),
            )
        };
        let decided = Write::new(
            vec![Rows::Interaction(interaction), Rows::Decisions(decisions)],
            vec![event("decision"), event("decision"), event("decision")],
        );
        let equity = Write::new(
            vec![Rows::Equity(EquitySnapshotRow {
                ts,
                account_id: account.clone(),
                cycle_id: Some(cycle),
                wallet_balance: Decimal::from(10_000),
                unrealized_pnl: Decimal::ZERO,
                equity: Decimal::from(10_000),
                used_margin: Decimal::ZERO,
                available: Decimal::from(10_000),
            })],
            vec![event("balance")],
        );
        store.write(decided).await.expect("queued");
        store.write(equity).await.expect("queued");
        store
            .write(Write::events(vec![event("cycle_completed")]))
            .await
            .expect("queued");
    }
}

fn report(phase: &str, store: &Store, took: Duration) {
    let h = store.health();
    let batches = store.batch_latencies();
    let mut ms: Vec<f64> = batches
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let rows_per_txn = if batches.is_empty() {
        0.0
    } else {
        batches.iter().map(|(r, _)| *r as f64).sum::<f64>() / batches.len() as f64
    };
    println!(
        "   {:<10} {:>9} {:>10.0} {:>8} {:>10.0} {:>9.1} {:>9.1}",
        phase,
        h.rows_written,
        h.rows_written as f64 / took.as_secs_f64(),
        h.batches_committed,
        rows_per_txn,
        support::percentile(&ms, 50.0),
        support::percentile(&ms, 99.0)
    );
}

fn account_row(id: &str) -> AccountRow {
    let now = Utc::now();
    AccountRow {
        id: id.into(),
        mode: "paper".into(),
        venue_base_url: "http://127.0.0.1:1".into(),
        llm_model: "builtin/ema-rsi".into(),
        assets: vec!["BTC".into(), "ETH".into(), "SOL".into()],
        interval_label: "60s".into(),
        leverage: 1,
        status: "registered".into(),
        paper_starting_balance: Decimal::from(10_000),
        paper_wallet_balance: Decimal::from(10_000),
        config: json!({}),
        created_at: now,
        updated_at: now,
    }
}
