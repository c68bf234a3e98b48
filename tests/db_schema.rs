//! The migrations build the whole schema on a real PostgreSQL, and the diesel schema
//! matches it (every table is read through diesel); the live-execution migration reverts
//! cleanly; live fills and income events reported twice are stored once; the new lists
//! filter as the API needs, and the HTTP API serves them (`/orders/{id}`, `/income`,
//! `/reconciliation`) from a real server.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use rust_decimal_macros::dec;
use uuid::Uuid;
use vibex::db::queries::{self, ExecutionBatch, ListFilter};
use vibex::db::{self, models::*, schema::*};

#[test]
fn migrations_build_every_table_and_diesel_reads_them() {
    let tdb = common::pg::test_db();
    let pool = db::connect(&tdb.url, 2).unwrap();
    let mut conn = pool.get().unwrap();
    let applied = db::run_migrations(&mut conn).unwrap();
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().join("up.sql").is_file()))
        .count();
    assert_eq!(
        applied.len(),
        shipped,
        "every migration applies on a fresh database: {applied:?}"
    );
    // Running again applies nothing.
    assert!(db::run_migrations(&mut conn).unwrap().is_empty());
    // Filled by the database when the row is written, unknown to diesel's schema.
    assert!(columns(&mut conn, "equity_snapshots").contains(&"recorded_at".to_string()));

    accounts::table
        .select(AccountRow::as_select())
        .load(&mut conn)
        .unwrap();
    account_controls::table
        .select(AccountControlRow::as_select())
        .load(&mut conn)
        .unwrap();
    control_flags::table
        .select(ControlFlagRow::as_select())
        .load(&mut conn)
        .unwrap();
    control_actions::table
        .select(ControlActionRow::as_select())
        .load(&mut conn)
        .unwrap();
    candles::table
        .select(CandleRow::as_select())
        .load(&mut conn)
        .unwrap();
    market_snapshots::table
        .select(MarketSnapshotRow::as_select())
        .load(&mut conn)
        .unwrap();
    llm_interactions::table
        .select(LlmInteractionRow::as_select())
        .load(&mut conn)
        .unwrap();
    decisions::table
        .select(DecisionRow::as_select())
        .load(&mut conn)
        .unwrap();
    orders::table
        .select(OrderRow::as_select())
        .load(&mut conn)
        .unwrap();
    order_events::table
        .select(OrderEventRow::as_select())
        .load(&mut conn)
        .unwrap();
    fills::table
        .select(FillRow::as_select())
        .load(&mut conn)
        .unwrap();
    positions::table
        .select(PositionRow::as_select())
        .load(&mut conn)
        .unwrap();
    equity_snapshots::table
        .select(EquitySnapshotRow::as_select())
        .load(&mut conn)
        .unwrap();
    diary_entries::table
        .select(DiaryEntryRow::as_select())
        .load(&mut conn)
        .unwrap();
    reconciliation_events::table
        .select(ReconciliationRow::as_select())
        .load(&mut conn)
        .unwrap();
    income_events::table
        .select(IncomeRow::as_select())
        .load(&mut conn)
        .unwrap();
    store_marker::table
        .select((
            store_marker::writer_id,
            store_marker::batch_id,
            store_marker::writes,
            store_marker::updated_at,
        ))
        .load::<(String, i64, i32, DateTime<Utc>)>(&mut conn)
        .unwrap();
    equity_snapshots::table
        .select(equity_snapshots::recorded_at)
        .load::<DateTime<Utc>>(&mut conn)
        .unwrap();
}

#[test]
fn an_equity_row_records_when_it_reached_the_database() {
    let (_tdb, mut conn) = migrated();
    let ts = Utc::now() - Duration::seconds(30);
    queries::insert_equity(
        &mut conn,
        &EquitySnapshotRow {
            ts,
            account_id: "a1".into(),
            cycle_id: None,
            wallet_balance: dec!(1),
            unrealized_pnl: dec!(0),
            equity: dec!(1),
            used_margin: dec!(0),
            available: dec!(1),
        },
    )
    .unwrap();
    let recorded: DateTime<Utc> = equity_snapshots::table
        .select(equity_snapshots::recorded_at)
        .first(&mut conn)
        .unwrap();
    let lag = recorded - ts;
    assert!(
        lag >= Duration::seconds(30) && lag < Duration::seconds(600),
        "write lag recorded_at - ts is measurable: {lag}"
    );
}

/// A migrated database with the accounts `a1` and `a2`.
fn migrated() -> (common::pg::TestDb, db::DbConn) {
    let tdb = common::pg::test_db();
    let pool = db::connect(&tdb.url, 2).unwrap();
    let mut conn = pool.get().unwrap();
    db::run_migrations(&mut conn).unwrap();
    for id in ["a1", "a2"] {
        queries::upsert_account(&mut conn, &account(id)).unwrap();
    }
    (tdb, conn)
}

fn account(id: &str) -> AccountRow {
    let now = Utc::now();
    AccountRow {
        id: id.into(),
        mode: "live".into(),
        venue_base_url: "https://fapi.asterdex.com".into(),
        llm_model: "builtin/hold".into(),
        assets: vec!["BTC".into()],
        interval_label: "5m".into(),
        leverage: 2,
        status: "registered".into(),
        paper_starting_balance: dec!(10000),
        paper_wallet_balance: dec!(10000),
        config: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    }
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, minute, 0).unwrap()
}

fn fill(account: &str, venue_trade_id: Option<&str>, ts: DateTime<Utc>) -> FillRow {
    FillRow {
        id: Uuid::now_v7(),
        ts,
        account_id: account.into(),
        cycle_id: None,
        order_id: None,
        client_order_id: "vx-1".into(),
        symbol: "BTCUSDT".into(),
        side: "BUY".into(),
        quantity: dec!(0.010),
        price: dec!(60012.5),
        fee: dec!(0.24),
        realized_pnl: dec!(0),
        reason: "entry".into(),
        venue_trade_id: venue_trade_id.map(str::to_string),
    }
}

fn income(
    account: &str,
    kind: &str,
    symbol: Option<&str>,
    tran_id: Option<&str>,
    ts: DateTime<Utc>,
) -> IncomeRow {
    IncomeRow {
        id: Uuid::now_v7(),
        ts,
        account_id: account.into(),
        cycle_id: None,
        symbol: symbol.map(str::to_string),
        kind: kind.into(),
        amount: dec!(-0.1234),
        asset: "USDT".into(),
        venue_tran_id: tran_id.map(str::to_string),
        detail: serde_json::json!({"info": "test"}),
    }
}

fn reconciliation(account: &str, kind: &str, symbol: &str, ts: DateTime<Utc>) -> ReconciliationRow {
    ReconciliationRow {
        id: Uuid::now_v7(),
        ts,
        account_id: account.into(),
        cycle_id: None,
        kind: kind.into(),
        symbol: Some(symbol.into()),
        detail: serde_json::json!({"local": "0.01", "venue": "0.02"}),
    }
}

fn filter() -> ListFilter {
    ListFilter {
        limit: 100,
        ..ListFilter::default()
    }
}

fn columns(conn: &mut PgConnection, table: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
    }
    diesel::sql_query(
        "SELECT column_name::text AS column_name FROM information_schema.columns \
         WHERE table_name = $1 ORDER BY ordinal_position",
    )
    .bind::<diesel::sql_types::Text, _>(table)
    .load::<Column>(conn)
    .unwrap()
    .into_iter()
    .map(|c| c.column_name)
    .collect()
}

#[test]
fn the_live_execution_and_store_migrations_revert_and_apply_again() {
    let (_tdb, mut conn) = migrated();
    assert!(columns(&mut conn, "positions").contains(&"origin".to_string()));
    assert!(!columns(&mut conn, "income_events").is_empty());
    assert!(!columns(&mut conn, "store_marker").is_empty());

    // Revert the later migrations, then the live execution one.
    let mut reverted = Vec::new();
    while !reverted
        .last()
        .is_some_and(|r: &String| r.ends_with("000003"))
    {
        assert!(
            reverted.len() < 50,
            "never reached the live execution migration: {reverted:?}"
        );
        reverted.push(
            conn.revert_last_migration(db::MIGRATIONS)
                .unwrap()
                .to_string(),
        );
    }
    assert!(
        columns(&mut conn, "store_marker").is_empty(),
        "table dropped"
    );
    assert!(!columns(&mut conn, "equity_snapshots").contains(&"recorded_at".to_string()));
    let positions = columns(&mut conn, "positions");
    assert!(!positions.contains(&"origin".to_string()), "{positions:?}");
    assert!(!positions.contains(&"liquidation_price".to_string()));
    assert!(!columns(&mut conn, "fills").contains(&"venue_trade_id".to_string()));
    assert!(
        columns(&mut conn, "income_events").is_empty(),
        "table dropped"
    );

    let applied = db::run_migrations(&mut conn).unwrap();
    assert_eq!(applied.len(), reverted.len(), "{applied:?}");
    income_events::table
        .select(IncomeRow::as_select())
        .load(&mut conn)
        .unwrap();
}

#[test]
fn positions_default_to_vibex_origin_and_refuse_unknown_origins() {
    let (_tdb, mut conn) = migrated();
    diesel::sql_query(
        "INSERT INTO positions (id, account_id, symbol, side, quantity, entry_price, leverage, \
         margin, status, opened_at, updated_at) VALUES (gen_random_uuid(), 'a1', 'BTCUSDT', \
         'long', 0.01, 60000, 2, 300, 'closed', now(), now())",
    )
    .execute(&mut conn)
    .unwrap();
    let stored = queries::list_positions(&mut conn, &filter()).unwrap();
    assert_eq!(stored[0].origin, PositionRow::ORIGIN_VIBEX);
    assert_eq!(stored[0].liquidation_price, None);

    let mut adopted = stored[0].clone();
    adopted.id = Uuid::now_v7();
    adopted.symbol = "ETHUSDT".into();
    adopted.status = "open".into();
    adopted.origin = PositionRow::ORIGIN_ADOPTED.into();
    adopted.liquidation_price = Some(dec!(41234.5));
    let batch = ExecutionBatch {
        positions: vec![adopted.clone()],
        ..ExecutionBatch::default()
    };
    queries::record_execution(&mut conn, &batch).unwrap();
    let open = queries::open_positions(&mut conn, "a1").unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].origin, "adopted");
    assert_eq!(open[0].liquidation_price, Some(dec!(41234.5)));

    adopted.id = Uuid::now_v7();
    adopted.symbol = "SOLUSDT".into();
    adopted.origin = "manual".into();
    let batch = ExecutionBatch {
        positions: vec![adopted],
        ..ExecutionBatch::default()
    };
    assert!(queries::record_execution(&mut conn, &batch).is_err());
}

#[test]
fn a_live_fill_reported_twice_is_stored_once() {
    let (_tdb, mut conn) = migrated();
    // The stream and the poll in one batch, and paper fills without a venue id.
    let batch = ExecutionBatch {
        fills: vec![
            fill("a1", Some("t-1001"), at(1)),
            fill("a1", Some("t-1001"), at(1)),
            fill("a1", None, at(2)),
            fill("a1", None, at(2)),
        ],
        ..ExecutionBatch::default()
    };
    assert!(!batch.is_empty());
    queries::record_execution(&mut conn, &batch).unwrap();
    // Later, the poll reports it again (with another local time), plus a new trade.
    let inserted = queries::insert_fills(
        &mut conn,
        &[
            fill("a1", Some("t-1001"), at(3)),
            fill("a1", Some("t-1002"), at(3)),
        ],
    )
    .unwrap();
    assert_eq!(inserted, 1, "only the new trade");
    // The same venue id on another account is another trade.
    assert_eq!(
        queries::insert_fills(&mut conn, &[fill("a2", Some("t-1001"), at(4))]).unwrap(),
        1
    );

    let a1 = queries::list_fills(
        &mut conn,
        &ListFilter {
            account_id: Some("a1".into()),
            ..filter()
        },
    )
    .unwrap();
    let ids: Vec<_> = a1.iter().map(|f| f.venue_trade_id.as_deref()).collect();
    assert_eq!(
        ids,
        [Some("t-1002"), None, None, Some("t-1001")],
        "newest first"
    );
    assert_eq!(a1[3].ts, at(1), "the first report is kept");
    assert_eq!(a1[3].price, dec!(60012.5));
}

#[test]
fn a_venue_income_event_reported_twice_is_stored_once() {
    let (_tdb, mut conn) = migrated();
    // Each report has its own row ids, as it would coming from the venue.
    let batch = || ExecutionBatch {
        income: vec![
            income("a1", "FUNDING_FEE", Some("BTCUSDT"), Some("9001"), at(1)),
            income("a1", "FUNDING_FEE", Some("BTCUSDT"), Some("9001"), at(1)),
            // One venue transaction can carry several kinds (a trade: PnL and commission).
            income("a1", "COMMISSION", Some("BTCUSDT"), Some("9001"), at(1)),
            income("a1", "TRANSFER", None, None, at(2)),
        ],
        ..ExecutionBatch::default()
    };
    queries::record_execution(&mut conn, &batch()).unwrap();
    queries::record_execution(&mut conn, &batch()).unwrap();
    let stored = queries::list_income(&mut conn, &filter()).unwrap();
    let mut kinds: Vec<_> = stored.iter().map(|i| i.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["COMMISSION", "FUNDING_FEE", "TRANSFER", "TRANSFER"],
        "events without a venue id are never deduplicated"
    );
    assert_eq!(stored[0].amount, dec!(-0.1234));
    assert_eq!(stored[0].asset, "USDT");

    let bad = income("a1", "AIRDROP", None, Some("1"), at(3));
    assert!(
        queries::insert_income(&mut conn, &[bad]).is_err(),
        "kind is checked"
    );
}

#[test]
fn income_and_reconciliation_lists_filter_by_account_symbol_kind_and_time() {
    let (_tdb, mut conn) = migrated();
    let batch = ExecutionBatch {
        income: vec![
            income("a1", "FUNDING_FEE", Some("BTCUSDT"), Some("1"), at(1)),
            income("a1", "REALIZED_PNL", Some("ETHUSDT"), Some("2"), at(2)),
            income("a1", "FUNDING_FEE", Some("ETHUSDT"), Some("3"), at(3)),
            income("a2", "FUNDING_FEE", Some("BTCUSDT"), Some("1"), at(4)),
        ],
        reconciliation: vec![
            reconciliation("a1", "position_adopted", "BTCUSDT", at(1)),
            reconciliation("a1", "position_quantity", "ETHUSDT", at(2)),
            reconciliation("a2", "position_adopted", "BTCUSDT", at(3)),
        ],
        ..ExecutionBatch::default()
    };
    assert!(!batch.is_empty());
    assert!(ExecutionBatch::default().is_empty());
    queries::record_execution(&mut conn, &batch).unwrap();

    let tran_ids = |f: ListFilter, conn: &mut PgConnection| -> Vec<String> {
        queries::list_income(conn, &f)
            .unwrap()
            .into_iter()
            .map(|i| format!("{}:{}", i.account_id, i.venue_tran_id.unwrap_or_default()))
            .collect()
    };
    assert_eq!(
        tran_ids(filter(), &mut conn),
        ["a2:1", "a1:3", "a1:2", "a1:1"],
        "newest first"
    );
    let a1 = || ListFilter {
        account_id: Some("a1".into()),
        ..filter()
    };
    assert_eq!(
        tran_ids(
            ListFilter {
                kind: Some("FUNDING_FEE".into()),
                ..a1()
            },
            &mut conn
        ),
        ["a1:3", "a1:1"]
    );
    assert_eq!(
        tran_ids(
            ListFilter {
                symbol: Some("ETHUSDT".into()),
                ..a1()
            },
            &mut conn
        ),
        ["a1:3", "a1:2"]
    );
    assert_eq!(
        tran_ids(
            ListFilter {
                since: Some(at(2)),
                until: Some(at(3)),
                ..a1()
            },
            &mut conn
        ),
        ["a1:2"],
        "since inclusive, until exclusive"
    );
    assert_eq!(
        tran_ids(ListFilter { limit: 1, ..a1() }, &mut conn),
        ["a1:3"]
    );

    let kinds = |f: ListFilter, conn: &mut PgConnection| -> Vec<String> {
        queries::list_reconciliation(conn, &f)
            .unwrap()
            .into_iter()
            .map(|r| format!("{}:{}", r.account_id, r.kind))
            .collect()
    };
    assert_eq!(
        kinds(filter(), &mut conn),
        [
            "a2:position_adopted",
            "a1:position_quantity",
            "a1:position_adopted"
        ]
    );
    assert_eq!(
        kinds(
            ListFilter {
                kind: Some("position_adopted".into()),
                ..a1()
            },
            &mut conn
        ),
        ["a1:position_adopted"]
    );
    assert_eq!(
        kinds(
            ListFilter {
                symbol: Some("ETHUSDT".into()),
                since: Some(at(1) + Duration::seconds(1)),
                ..filter()
            },
            &mut conn
        ),
        ["a1:position_quantity"]
    );
}

#[test]
fn an_order_is_found_with_its_lifecycle_by_id_or_client_order_id() {
    let (_tdb, mut conn) = migrated();
    let order = OrderRow {
        id: Uuid::now_v7(),
        account_id: "a1".into(),
        cycle_id: None,
        decision_id: None,
        client_order_id: "vx-a1-0001".into(),
        venue_order_id: Some("123456".into()),
        symbol: "BTCUSDT".into(),
        side: "BUY".into(),
        order_type: "MARKET".into(),
        quantity: Some(dec!(0.01)),
        price: None,
        stop_price: None,
        reduce_only: false,
        close_position: false,
        status: "FILLED".into(),
        filled_quantity: dec!(0.01),
        avg_fill_price: Some(dec!(60000)),
        reject_reason: None,
        created_at: at(1),
        updated_at: at(2),
    };
    let event = |status: &str, ts| NewOrderEvent {
        ts,
        order_id: order.id,
        account_id: "a1".into(),
        cycle_id: None,
        status: status.into(),
        detail: serde_json::json!({}),
    };
    let batch = ExecutionBatch {
        orders: vec![order.clone()],
        order_events: vec![event("FILLED", at(2)), event("NEW", at(1))],
        ..ExecutionBatch::default()
    };
    queries::record_execution(&mut conn, &batch).unwrap();

    for key in [order.id.to_string(), "vx-a1-0001".to_string()] {
        let (found, events) = queries::order_with_events(&mut conn, &key)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} not found"));
        assert_eq!(found.id, order.id);
        let statuses: Vec<_> = events.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(statuses, ["NEW", "FILLED"], "oldest first");
    }
    assert!(queries::order_with_events(&mut conn, "vx-unknown")
        .unwrap()
        .is_none());
    assert!(
        queries::order_with_events(&mut conn, &Uuid::now_v7().to_string())
            .unwrap()
            .is_none()
    );
}

/// A real HTTP server with the API routes over `url`, for the configured accounts `a1`
/// and `a2` (no account actor runs: these routes only read the database).
async fn api_server(url: &str, dir: &std::path::Path) -> String {
    use actix::prelude::*;
    use vibex::actors::{event_bus::EventBus, supervisor::Supervisor};
    use vibex::store::{StorageSettings, Store};
    let yaml = dir.join("accounts.yaml");
    let empty = dir.join("empty");
    std::fs::write(&empty, "").unwrap();
    std::fs::write(
        &yaml,
        "accounts:\n  - {id: a1, llm_model: builtin/hold, assets: [BTC], interval: 5m}\n  \
         - {id: a2, llm_model: builtin/hold, assets: [ETH], interval: 5m}\n",
    )
    .unwrap();
    let settings = vibex::config::load_with_env(
        &vibex::config::LoadOptions {
            config_file: Some(empty.clone()),
            accounts_file: Some(yaml),
            dotenv_file: Some(empty),
        },
        &Default::default(),
    )
    .unwrap();
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let pool = db::connect(url, 4).unwrap();
    let bus = EventBus::new(log.clone()).start();
    let store = Store::open(
        pool.clone(),
        dir,
        StorageSettings::default(),
        bus.clone().recipient(),
        &log,
    )
    .unwrap();
    let mut idle = settings.clone();
    idle.accounts.clear();
    let supervisor = Supervisor::build(&idle, bus.clone(), store.clone(), &log, &log, &log)
        .unwrap()
        .start();
    let state = vibex::api::ApiState {
        health: vibex::api::health::HealthProbe::start(url, &log),
        reads: vibex::api::reads::ReadPool::new(url, 2, &log),
        log_dir: dir.join("logs"),
        pool,
        store: store.clone(),
        supervisor,
        bus,
        control: vibex::control::ControlPlane {
            audit: vibex::control::Audit::new(store.clone(), &log),
            load_options: None,
            mask: Default::default(),
            log: log.clone(),
            keys: None,
        },
        accounts: vibex::control::AccountDirectory::new(settings.accounts),
        ws_ping_interval: std::time::Duration::from_secs(30),
        ws_client_timeout: std::time::Duration::from_secs(75),
        log,
    };
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(state.clone()))
            // No key configured: every caller may read everything.
            .wrap(actix_web::middleware::from_fn(
                vibex::api::access::open_gate,
            ))
            .configure(vibex::api::configure)
            .default_service(actix_web::web::route().to(vibex::api::not_found))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    actix_rt::spawn(server.run());
    base
}

async fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
    let mut resp = awc::Client::default()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body:?}"));
    (resp.status().as_u16(), json)
}

#[actix_rt::test]
async fn the_api_serves_order_lifecycles_income_and_reconciliation() {
    let (tdb, mut conn) = migrated();
    let order_id = Uuid::now_v7();
    let order = OrderRow {
        id: order_id,
        account_id: "a1".into(),
        cycle_id: None,
        decision_id: None,
        client_order_id: "vx-a1-0042".into(),
        venue_order_id: Some("778899".into()),
        symbol: "BTCUSDT".into(),
        side: "SELL".into(),
        order_type: "STOP_MARKET".into(),
        quantity: Some(dec!(0.01)),
        price: None,
        stop_price: Some(dec!(58000)),
        reduce_only: true,
        close_position: false,
        status: "NEW".into(),
        filled_quantity: dec!(0),
        avg_fill_price: None,
        reject_reason: None,
        created_at: at(1),
        updated_at: at(1),
    };
    let batch = ExecutionBatch {
        orders: vec![order],
        order_events: vec![NewOrderEvent {
            ts: at(1),
            order_id,
            account_id: "a1".into(),
            cycle_id: None,
            status: "NEW".into(),
            detail: serde_json::json!({"stop_price": "58000"}),
        }],
        income: vec![
            income("a1", "FUNDING_FEE", Some("BTCUSDT"), Some("1"), at(1)),
            income("a1", "COMMISSION", Some("BTCUSDT"), Some("2"), at(2)),
            income("a2", "FUNDING_FEE", Some("ETHUSDT"), Some("3"), at(3)),
        ],
        reconciliation: vec![
            reconciliation("a1", "position_adopted", "BTCUSDT", at(1)),
            reconciliation("a2", "order_missing", "ETHUSDT", at(2)),
        ],
        ..ExecutionBatch::default()
    };
    queries::record_execution(&mut conn, &batch).unwrap();
    diesel::sql_query(
        "INSERT INTO positions (id, account_id, symbol, side, quantity, entry_price, leverage, \
         margin, liquidation_price, status, opened_at, updated_at) VALUES (gen_random_uuid(), \
         'a1', 'BTCUSDT', 'long', 0.01, 60000, 2, 300, 45000.5, 'open', now(), now())",
    )
    .execute(&mut conn)
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let base = api_server(&tdb.url, tmp.path()).await;

    let (status, body) = get(&base, "/positions?account_id=a1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["origin"], "vibex");
    assert_eq!(body["items"][0]["liquidation_price"], "45000.5");

    for key in [order_id.to_string(), "vx-a1-0042".to_string()] {
        let (status, body) = get(&base, &format!("/orders/{key}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], order_id.to_string());
        assert_eq!(body["client_order_id"], "vx-a1-0042");
        assert_eq!(body["events"][0]["status"], "NEW");
        assert_eq!(body["events"].as_array().unwrap().len(), 1);
    }
    let (status, body) = get(&base, "/orders/vx-nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"vx-nope\""),
        "{body}"
    );

    let (status, body) = get(&base, "/income?account_id=a1&kind=funding_fee").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1);
    assert_eq!(body["items"][0]["kind"], "FUNDING_FEE");
    assert_eq!(body["items"][0]["amount"], "-0.1234");
    let (_, body) = get(&base, "/income?symbol=BTC&limit=1").await;
    assert_eq!(
        body["items"][0]["venue_tran_id"], "2",
        "newest first: {body}"
    );
    let (_, body) = get(&base, "/income?since=2026-11-26T12:02:00Z").await;
    assert_eq!(body["count"], 2, "{body}");
    let (status, body) = get(&base, "/income?kind=AIRDROP").await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("REALIZED_PNL, FUNDING_FEE, COMMISSION, LIQUIDATION_FEE, TRANSFER, OTHER")
            && message.contains("AIRDROP"),
        "{message}"
    );
    let (status, body) = get(&base, "/income?account_id=ghost").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "account_not_found");

    let (status, body) = get(&base, "/reconciliation?account_id=a2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1);
    assert_eq!(body["items"][0]["kind"], "order_missing");
    let (_, body) = get(&base, "/reconciliation?kind=position_adopted").await;
    assert_eq!(body["items"][0]["account_id"], "a1", "{body}");
    assert_eq!(body["count"], 1);
    let (status, body) = get(&base, "/reconciliation?kind=drop%20table").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(&base, "/reconciliation?account_id=ghost").await;
    assert_eq!(status, 404);
}
