//! Live execution overhead against the loopback fake AsterDEX: what the signed client
//! and reconciliation cost vibex per call, with the venue's own time shown beside it.
//! A small harness (`harness = false`) that prints tables; percentiles are
//! nearest-rank, times are wall clock on this machine.
//!
//! What it measures:
//! 1. **Order round trips** (HMAC and wallet signing, `VIBEX_BENCH_ORDERS` = 300
//!    iterations each after 20 warm-up ones, the four kinds interleaved):
//!    - `TradeClient::place_order` of a MARKET order (0.001 BTC, alternately BUY and
//!      SELL, filled at once) and `TradeClient::cancel_order` of a resting STOP_MARKET;
//!    - the same requests pre-signed outside the timing and sent with a bare `reqwest`
//!      client (HTTP + the fake's work, no vibex code): the client's overhead is the
//!      difference (signing, gate, parameter building, decoding);
//!    - a bare `GET /fapi/v1/time` (the loopback HTTP floor);
//!    - the fake's own handling time of each request kind (from its request log:
//!      parsing, signature check, the order book, the reply, without HTTP).
//! 2. **Reconciliation of 100 open positions**: the fake lists 100 extra perpetuals
//!    (`BENCH000USDT`..., [`FakeVenue::list_bench_symbols`]); one HMAC account holds a
//!    position in each (opened by hand, long or short) with a close-position TP and
//!    SL placed by the client (200 open orders). A local book of the same 100
//!    positions and 200 orders, 5 of the positions with another quantity, is compared
//!    with the venue (`VIBEX_BENCH_RUNS` = 50 runs): `TradeClient::snapshot()` (account,
//!    positionRisk and all open orders, concurrently), the pure `reconcile()`, and both.
//! 3. **The engine's reconciliation** on the same account, driven as the ExecutionActor
//!    drives it (`Core::run(Input::Reconcile)`): the whole per-cycle reconciliation of a
//!    live account (snapshot, findings, the 5 corrections recorded through the
//!    `Journal` to the store on a test PostgreSQL, then the fills and income polls:
//!    one `userTrades` call per symbol, 100 of them, and one `income`), each run on an
//!    engine restored from the same stored book so that every run makes the same 5
//!    corrections. Recording is queued (as in the daemon): the database writes run on the
//!    store's writer thread, not inside the timing.
//!
//! The client's per-URL request-weight gate is raised for the fake's URL (the bench
//! would otherwise spend most of its time waiting for the next minute: one
//! reconciliation of 100 symbols weighs ~580 of the default 2400/min).
//!
//! Run: `cargo bench --bench execution` (release build; a few seconds after it). Knobs:
//! `VIBEX_BENCH_ORDERS`, `VIBEX_BENCH_RUNS`. Part 3 needs the PostgreSQL server binaries
//! (as the tests do) and is skipped with the reason when they are missing. Without
//! `--bench` (e.g. `cargo test --benches`) it only prints how to run it.

#[path = "../tests/common/fake_venue.rs"]
mod fake_venue;
#[path = "../tests/common/loopback.rs"]
mod loopback;
#[allow(dead_code)]
#[path = "../tests/common/pg.rs"]
mod pg;

use actix::Actor;
use chrono::{DateTime, Utc};
use fake_venue::fake_trading::FakeAccountId;
use fake_venue::FakeVenue;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};
use uuid::Uuid;
use vibex::actors::event_bus::EventBus;
use vibex::actors::execution::journal::Journal;
use vibex::actors::execution::Core;
use vibex::db::models::{AccountRow, OrderRow, PositionRow};
use vibex::db::queries::{self, ExecutionBatch};
use vibex::domain::orders::{OrderStatus, OrderType};
use vibex::domain::types::{AccountId, PositionSide, Side, Symbol};
use vibex::engine::reconcile::{reconcile, Finding, LocalBook, LocalOrder, LocalPosition};
use vibex::engine::{
    Engine, EngineConfig, Input, Order, Origin, Outcome, Position, PositionStatus, StoredBook,
};
use vibex::exchange::aster::sign::{Credentials, WalletKey};
use vibex::exchange::aster::trade::TradeClient;
use vibex::exchange::aster::RetryPolicy;
use vibex::exchange::venue::{OrderKind, OrderRequest};
use vibex::secret::Secret;
use vibex::store::{StorageSettings, Store};

/// Demonstration keys (Binance's documented HMAC example, AsterDEX's wallet example).
const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const USER: &str = "0x63DD5aCC6b1aa0f563956C0e534DD30B6dcF7C4e";
const SIGNER: &str = "0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0";
const SIGNER_KEY: &str = "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81bae1";

const RECV_WINDOW_MS: u64 = 5_000;
const WARM_UP: usize = 20;
/// Positions of the reconciliation account, and how many differ from the local book.
const POSITIONS: usize = 100;
const DIFFERENT: usize = 5;
const ACCOUNT: &str = "bench-live";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "execution: times the live client and reconciliation against the loopback \
             fake venue; run it with `cargo bench --bench execution`"
        );
        return;
    }
    let orders = knob("VIBEX_BENCH_ORDERS", 300);
    let runs = knob("VIBEX_BENCH_RUNS", 50);
    let symbols = FakeVenue::list_bench_symbols(POSITIONS);
    let system = actix::System::new();
    system.block_on(async move {
        order_round_trips(orders).await;
        reconciliation(&symbols, runs).await;
    });
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn hmac_credentials() -> Credentials {
    Credentials::Hmac {
        api_key: Secret::new(KEY),
        api_secret: Secret::new(SECRET),
    }
}

fn wallet_credentials() -> Credentials {
    Credentials::Wallet {
        user: USER.parse().expect("user address"),
        signer: SIGNER.parse().expect("signer address"),
        key: WalletKey::from_secret(&Secret::new(SIGNER_KEY)).expect("demo key"),
    }
}

/// A client of the fake whose gate does not hold the bench back.
fn client(venue: &FakeVenue, creds: Credentials) -> TradeClient {
    let client = TradeClient::new(
        venue.base_url(),
        creds,
        RECV_WINDOW_MS,
        RetryPolicy::default(),
    )
    .expect("loopback base URL");
    client.gate().set_weight_limit(100_000_000);
    client
}

// ---------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------

/// Samples of one measured operation.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Nearest-rank percentile `p` (0..=100).
    fn pct(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    fn mean(&self) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.iter().sum::<Duration>() / self.0.len() as u32
    }
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

async fn timed<T, F: Future<Output = T>>(samples: &mut Samples, f: F) -> T {
    let started = Instant::now();
    let out = f.await;
    samples.push(started.elapsed());
    out
}

// ---------------------------------------------------------------------------------
// 1. Order round trips
// ---------------------------------------------------------------------------------

fn market(side: Side, coid: String) -> OrderRequest {
    OrderRequest {
        symbol: Symbol("BTCUSDT".into()),
        side,
        kind: OrderKind::Market,
        quantity: Some(dec!(0.001)),
        stop_price: None,
        reduce_only: false,
        close_position: false,
        client_order_id: coid,
    }
}

/// A SELL STOP_MARKET far below the (pinned) price: it rests until cancelled.
fn resting_stop(coid: String) -> OrderRequest {
    OrderRequest {
        kind: OrderKind::StopMarket,
        stop_price: Some(dec!(30000)),
        ..market(Side::Sell, coid)
    }
}

/// Sends an already signed request with a bare HTTP client; panics unless it is a 200.
async fn send_raw(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    signed: &vibex::exchange::aster::sign::SignedRequest,
) {
    let in_body = method == reqwest::Method::POST;
    let url = if in_body {
        format!("{base}{}", signed.path)
    } else {
        format!("{base}{}?{}", signed.path, signed.encoded)
    };
    let mut req = http.request(method, url);
    if let Some(key) = &signed.api_key {
        req = req.header("X-MBX-APIKEY", key);
    }
    if in_body {
        req = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(signed.encoded.clone());
    }
    let resp = req.send().await.expect("the fake answers");
    let status = resp.status();
    let body = resp.bytes().await.expect("body");
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// The wire parameters `TradeClient` sends for `order` (what the bare client sends).
fn wire_params(order: &OrderRequest) -> Vec<(String, String)> {
    let mut p = vec![
        ("symbol".to_string(), order.symbol.to_string()),
        ("side".to_string(), order.side.as_str().to_string()),
        ("type".to_string(), order.kind.as_str().to_string()),
    ];
    if let Some(q) = order.quantity {
        p.push(("quantity".into(), q.normalize().to_string()));
    }
    if let Some(s) = order.stop_price {
        p.push(("stopPrice".into(), s.normalize().to_string()));
        p.push(("workingType".into(), "MARK_PRICE".into()));
    }
    p.push(("newClientOrderId".into(), order.client_order_id.clone()));
    p.push(("newOrderRespType".into(), "RESULT".into()));
    p
}

/// Signs `params` for `path` now, as the client would.
fn sign_now(
    creds: &Credentials,
    path: &str,
    params: &[(String, String)],
    offset_ms: i64,
    nonce: &mut u64,
) -> vibex::exchange::aster::sign::SignedRequest {
    let ts = Utc::now().timestamp_millis() + offset_ms;
    *nonce = (*nonce + 1).max(u64::try_from(ts).unwrap_or(0) * 1000);
    creds
        .sign(path, params, ts, RECV_WINDOW_MS, *nonce)
        .expect("sign")
}

#[derive(Default)]
struct RoundTrips {
    client_market: Samples,
    raw_market: Samples,
    client_cancel: Samples,
    raw_cancel: Samples,
}

async fn round_trips_of(
    venue: &FakeVenue,
    http: &reqwest::Client,
    mode: &str,
    creds: Credentials,
    n: usize,
    time_floor: &mut Samples,
) -> RoundTrips {
    let c = client(venue, creds.clone());
    let offset = c.sync_time().await.expect("server time");
    let btc = Symbol("BTCUSDT".into());
    let mut out = RoundTrips::default();
    let mut nonce = 0u64;
    let mut ignore = Samples::default();
    for i in 0..WARM_UP + n {
        let warm = i < WARM_UP;
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };

        // TradeClient::place_order, MARKET.
        let order = market(side, format!("vx-b-{mode}-m{i}"));
        let sink = if warm {
            &mut ignore
        } else {
            &mut out.client_market
        };
        let placed = timed(sink, c.place_order(&order)).await.expect("market");
        assert_eq!(placed.status, OrderStatus::Filled);

        // The same order, pre-signed, bare HTTP.
        let order = market(side.opposite(), format!("vx-b-{mode}-r{i}"));
        let signed = sign_now(
            &creds,
            "/fapi/v1/order",
            &wire_params(&order),
            offset,
            &mut nonce,
        );
        let sink = if warm {
            &mut ignore
        } else {
            &mut out.raw_market
        };
        timed(
            sink,
            send_raw(http, venue.base_url(), reqwest::Method::POST, &signed),
        )
        .await;

        // TradeClient::cancel_order of a resting stop.
        let coid = format!("vx-b-{mode}-s{i}");
        c.place_order(&resting_stop(coid.clone()))
            .await
            .expect("resting stop");
        let sink = if warm {
            &mut ignore
        } else {
            &mut out.client_cancel
        };
        let cancelled = timed(sink, c.cancel_order(&btc, &coid)).await;
        assert!(matches!(cancelled, Ok(Some(_))), "{cancelled:?}");

        // The same cancel, pre-signed, bare HTTP.
        let coid = format!("vx-b-{mode}-c{i}");
        c.place_order(&resting_stop(coid.clone()))
            .await
            .expect("resting stop");
        let params = vec![
            ("symbol".to_string(), "BTCUSDT".to_string()),
            ("origClientOrderId".to_string(), coid),
        ];
        let signed = sign_now(&creds, "/fapi/v1/order", &params, offset, &mut nonce);
        let sink = if warm {
            &mut ignore
        } else {
            &mut out.raw_cancel
        };
        timed(
            sink,
            send_raw(http, venue.base_url(), reqwest::Method::DELETE, &signed),
        )
        .await;

        // The HTTP floor.
        let sink = if warm { &mut ignore } else { &mut *time_floor };
        let url = format!("{}/fapi/v1/time", venue.base_url());
        timed(sink, async {
            let r = http.get(&url).send().await.expect("time");
            assert!(r.status().is_success());
            r.bytes().await.expect("body");
        })
        .await;
    }
    out
}

async fn order_round_trips(n: usize) {
    let venue = FakeVenue::start();
    venue.set_price("BTCUSDT", dec!(60000));
    venue.add_hmac_account(KEY, SECRET, dec!(1000000));
    venue.add_wallet_account(USER, SIGNER, dec!(1000000));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let mut floor = Samples::default();
    let hmac = round_trips_of(&venue, &http, "h", hmac_credentials(), n, &mut floor).await;
    let wallet = round_trips_of(&venue, &http, "w", wallet_credentials(), n, &mut floor).await;

    // The fake's own time per request kind (client and bare requests alike).
    let mut handled: BTreeMap<(String, String), Samples> = BTreeMap::new();
    for r in venue.request_log() {
        let version = if r.path.starts_with("/fapi/v3/") {
            "wallet"
        } else {
            "hmac"
        };
        let kind = match (r.method.as_str(), r.path.rsplit('/').next()) {
            ("POST", Some("order")) => "POST order",
            ("DELETE", Some("order")) => "DELETE order",
            ("GET", Some("time")) => "GET time",
            _ => continue,
        };
        let version = if kind == "GET time" { "-" } else { version };
        handled
            .entry((kind.to_string(), version.to_string()))
            .or_default()
            .push(r.handled_in);
    }
    let fake = |kind: &str, mode: &str| {
        handled
            .get(&(kind.to_string(), mode.to_string()))
            .map(|s| s.pct(50.0))
            .unwrap_or_default()
    };

    println!();
    println!(
        "1. order round trips against the loopback fake ({n} each after {WARM_UP} warm-up; µs)"
    );
    println!(
        "   {:<44} {:>7} {:>7} {:>7} {:>12}",
        "operation", "p50", "p99", "mean", "fake p50"
    );
    let row = |name: &str, s: &Samples, fake_p50: Duration| {
        println!(
            "   {:<44} {:>7} {:>7} {:>7} {:>12}",
            name,
            us(s.pct(50.0)),
            us(s.pct(99.0)),
            us(s.mean()),
            us(fake_p50)
        );
    };
    row(
        "bare GET /fapi/v1/time (HTTP floor)",
        &floor,
        fake("GET time", "-"),
    );
    for (mode, rt) in [("hmac", &hmac), ("wallet", &wallet)] {
        row(
            &format!("{mode}: TradeClient::place_order MARKET"),
            &rt.client_market,
            fake("POST order", mode),
        );
        row(
            &format!("{mode}: pre-signed POST order, bare HTTP"),
            &rt.raw_market,
            fake("POST order", mode),
        );
        row(
            &format!("{mode}: TradeClient::cancel_order"),
            &rt.client_cancel,
            fake("DELETE order", mode),
        );
        row(
            &format!("{mode}: pre-signed DELETE order, bare HTTP"),
            &rt.raw_cancel,
            fake("DELETE order", mode),
        );
    }
    println!("   client overhead (client p50 - bare p50):");
    for (mode, rt) in [("hmac", &hmac), ("wallet", &wallet)] {
        let over = |a: &Samples, b: &Samples| {
            let (a, b) = (a.pct(50.0).as_secs_f64(), b.pct(50.0).as_secs_f64());
            format!("{:.0}", (a - b) * 1e6)
        };
        println!(
            "     {mode:<7} place_order {:>6} µs   cancel_order {:>6} µs",
            over(&rt.client_market, &rt.raw_market),
            over(&rt.client_cancel, &rt.raw_cancel)
        );
    }
}

// ---------------------------------------------------------------------------------
// 2. and 3. Reconciliation of 100 positions
// ---------------------------------------------------------------------------------

/// One bench position as the venue holds it and as vibex recorded it.
struct Held {
    symbol: Symbol,
    side: PositionSide,
    quantity: Decimal,
    entry: Decimal,
    tp: Decimal,
    sl: Decimal,
    tp_id: String,
    sl_id: String,
}

/// Opens one position per bench symbol by hand, and its TP and SL through the client.
async fn open_book(
    venue: &FakeVenue,
    account: FakeAccountId,
    c: &TradeClient,
    symbols: &[&str],
) -> Vec<Held> {
    let mut held = Vec::new();
    for (i, name) in symbols.iter().enumerate() {
        let side = if i % 2 == 0 {
            PositionSide::Long
        } else {
            PositionSide::Short
        };
        let quantity = dec!(10);
        let mark = venue.current_price(name);
        let signed = match side {
            PositionSide::Long => quantity,
            PositionSide::Short => -quantity,
        };
        let opened = venue.open_position_by_hand(account, name, signed, mark);
        // Far from the mark: the walk never reaches them during the bench.
        let (tp, sl) = match side {
            PositionSide::Long => (mark * dec!(1.5), mark * dec!(0.5)),
            PositionSide::Short => (mark * dec!(0.5), mark * dec!(1.5)),
        };
        let (tp, sl) = (tp.round_dp(2), sl.round_dp(2));
        let h = Held {
            symbol: Symbol(name.to_string()),
            side,
            quantity,
            entry: opened.avg_price,
            tp,
            sl,
            tp_id: format!("vx-b-{i:03}-tp"),
            sl_id: format!("vx-b-{i:03}-sl"),
        };
        for (kind, stop, coid) in [
            (OrderKind::TakeProfitMarket, tp, &h.tp_id),
            (OrderKind::StopMarket, sl, &h.sl_id),
        ] {
            let order = OrderRequest {
                symbol: h.symbol.clone(),
                side: side.exit_side(),
                kind,
                quantity: None,
                stop_price: Some(stop),
                reduce_only: true,
                close_position: true,
                client_order_id: coid.clone(),
            };
            c.place_order(&order).await.expect("protection order");
        }
        held.push(h);
    }
    held
}

/// vibex's quantity of position `i`: the venue's, except for the first `DIFFERENT`.
fn local_quantity(i: usize, h: &Held) -> Decimal {
    if i < DIFFERENT {
        h.quantity - Decimal::ONE
    } else {
        h.quantity
    }
}

fn local_book(held: &[Held]) -> LocalBook {
    LocalBook {
        positions: held
            .iter()
            .enumerate()
            .map(|(i, h)| LocalPosition {
                symbol: h.symbol.clone(),
                side: h.side,
                quantity: local_quantity(i, h),
                entry_price: h.entry,
                tp_price: Some(h.tp),
                sl_price: Some(h.sl),
                adopted: false,
            })
            .collect(),
        open_orders: held
            .iter()
            .flat_map(|h| {
                [
                    (h.tp_id.clone(), OrderKind::TakeProfitMarket),
                    (h.sl_id.clone(), OrderKind::StopMarket),
                ]
                .map(|(coid, kind)| LocalOrder {
                    symbol: h.symbol.clone(),
                    client_order_id: coid,
                    order_type: kind.order_type(),
                })
            })
            .collect(),
    }
}

async fn reconciliation(symbols: &[&'static str], runs: usize) {
    let venue = FakeVenue::start();
    let account = venue.add_hmac_account(KEY, SECRET, dec!(10000000));
    let c = client(&venue, hmac_credentials());
    c.sync_time().await.expect("server time");
    let held = open_book(&venue, account, &c, symbols).await;
    let book = local_book(&held);
    let setup_done = Utc::now();

    // What the comparison must find, checked once outside the timing.
    let snap = c.snapshot().await.expect("snapshot");
    assert_eq!(snap.positions.len(), POSITIONS, "venue positions");
    assert_eq!(snap.open_orders.len(), 2 * POSITIONS, "venue open orders");
    let findings = reconcile(&book, &snap);
    assert_eq!(findings.len(), DIFFERENT, "{findings:?}");
    assert!(findings
        .iter()
        .all(|f| matches!(f, Finding::PositionChanged { .. })));

    let (mut snapshot_t, mut pure_t, mut both_t) =
        (Samples::default(), Samples::default(), Samples::default());
    for i in 0..WARM_UP.min(5) + runs {
        let started = Instant::now();
        let snap = c.snapshot().await.expect("snapshot");
        let fetched = started.elapsed();
        let findings = reconcile(&book, &snap);
        let total = started.elapsed();
        assert_eq!(findings.len(), DIFFERENT);
        if i >= WARM_UP.min(5) {
            snapshot_t.push(fetched);
            pure_t.push(total - fetched);
            both_t.push(total);
        }
    }

    println!();
    println!(
        "2. reconciliation of {POSITIONS} positions, {} open orders, {DIFFERENT} differences \
         ({runs} runs; ms)",
        2 * POSITIONS
    );
    println!("   {:<44} {:>7} {:>7} {:>7}", "step", "p50", "p99", "mean");
    let row = |name: &str, s: &Samples| {
        println!(
            "   {:<44} {:>7} {:>7} {:>7}",
            name,
            ms(s.pct(50.0)),
            ms(s.pct(99.0)),
            ms(s.mean())
        );
    };
    row("TradeClient::snapshot (3 GETs, concurrent)", &snapshot_t);
    row("reconcile() (pure)", &pure_t);
    row("snapshot + reconcile", &both_t);
    let fake_reads: Vec<(&str, Samples)> = ["account", "positionRisk", "openOrders"]
        .iter()
        .map(|name| {
            let mut s = Samples::default();
            for r in venue.request_log() {
                if r.method == "GET" && r.path.ends_with(&format!("/{name}")) {
                    s.push(r.handled_in);
                }
            }
            (*name, s)
        })
        .collect();
    for (name, s) in &fake_reads {
        row(&format!("  fake's own time: GET {name}"), s);
    }

    live_reconcile(&venue, &c, &held, setup_done, runs).await;
}

/// The book as the database would hold it for the bench positions and their orders.
fn stored_book(held: &[Held], now: DateTime<Utc>) -> (Vec<Position>, Vec<Order>) {
    let account = AccountId::new(ACCOUNT);
    let positions = held
        .iter()
        .enumerate()
        .map(|(i, h)| Position {
            id: Uuid::now_v7(),
            account_id: account.clone(),
            symbol: h.symbol.clone(),
            side: h.side,
            quantity: local_quantity(i, h),
            entry_price: h.entry,
            leverage: 20,
            margin: (h.quantity * h.entry / dec!(20)).round_dp(8),
            tp_price: Some(h.tp),
            sl_price: Some(h.sl),
            exit_plan: "bench".into(),
            mark_price: None,
            unrealized_pnl: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
            status: PositionStatus::Open,
            opened_at: now,
            closed_at: None,
            close_reason: None,
            opened_cycle_id: None,
            updated_at: now,
            liquidation_price: None,
            origin: Origin::Vibex,
        })
        .collect();
    let orders = held
        .iter()
        .flat_map(|h| {
            [
                (&h.tp_id, OrderType::TakeProfitMarket, h.tp),
                (&h.sl_id, OrderType::StopMarket, h.sl),
            ]
            .map(|(coid, order_type, stop)| Order {
                id: Uuid::now_v7(),
                account_id: account.clone(),
                cycle_id: None,
                decision_id: None,
                client_order_id: coid.clone(),
                venue_order_id: None,
                symbol: h.symbol.clone(),
                side: h.side.exit_side(),
                order_type,
                quantity: None,
                price: None,
                stop_price: Some(stop),
                reduce_only: true,
                close_position: true,
                status: OrderStatus::New,
                filled_quantity: Decimal::ZERO,
                avg_fill_price: None,
                reject_reason: None,
                created_at: now,
                updated_at: now,
            })
        })
        .collect();
    (positions, orders)
}

async fn live_reconcile(
    venue: &FakeVenue,
    c: &TradeClient,
    held: &[Held],
    setup_done: DateTime<Utc>,
    runs: usize,
) {
    println!();
    println!("3. The engine's reconciliation of the same account ({runs} runs; ms)");
    let db = match std::panic::catch_unwind(pg::test_db) {
        Ok(db) => db,
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            println!("   skipped: no test PostgreSQL ({why})");
            return;
        }
    };
    let pool = vibex::db::connect(&db.url, 2).expect("pool");
    let (positions, orders) = stored_book(held, setup_done);
    {
        let mut conn = pool.get().expect("connection");
        vibex::db::run_migrations(&mut conn).expect("migrations");
        queries::upsert_account(&mut conn, &account_row()).expect("account row");
        let batch = ExecutionBatch {
            positions: positions.iter().map(PositionRow::from).collect(),
            orders: orders.iter().map(OrderRow::from).collect(),
            ..ExecutionBatch::default()
        };
        queries::record_execution(&mut conn, &batch).expect("stored rows");
    }
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = EventBus::new(log.clone()).start();
    let store = Store::open(
        pool.clone(),
        dir.path(),
        StorageSettings::default(),
        bus.recipient(),
        &log,
    )
    .expect("store");
    let account_id = AccountId::new(ACCOUNT);
    // Steady state: the last fills and income are the ones at setup.
    let last_fills: Vec<(Symbol, DateTime<Utc>)> = held
        .iter()
        .map(|h| (h.symbol.clone(), setup_done))
        .collect();

    let requests_before = venue.request_log().len();
    let mut samples = Samples::default();
    let warm = WARM_UP.min(5);
    for i in 0..warm + runs {
        let engine = Engine::restore(
            EngineConfig {
                account_id: account_id.clone(),
                leverage: 20,
                margin_type: "CROSSED".into(),
                in_process: false,
            },
            StoredBook {
                positions: positions.clone(),
                working_orders: orders.clone(),
                plans: HashMap::new(),
                last_fills: last_fills.clone(),
                last_income: Some(setup_done),
            },
            Utc::now(),
        );
        let journal = Journal::new(
            account_id.clone(),
            store.clone(),
            log.clone(),
            vec![],
            vec![],
        );
        let mut core = Core::new(
            engine,
            journal,
            std::sync::Arc::new(c.clone()),
            None,
            store.clone(),
            log.clone(),
        );
        let started = Instant::now();
        let outcome = core.run(Input::Reconcile { cycle: None }, None).await;
        let elapsed = started.elapsed();
        assert_eq!(outcome, Outcome::Reconciled(Ok(())), "reconciliation");
        if i >= warm {
            samples.push(elapsed);
        }
        if i == 0 {
            // The corrections were made: the book now agrees with the venue.
            let (view, _) = core.engine.view();
            assert_eq!(view.positions.len(), POSITIONS);
            for h in held {
                let p = view.position(&h.symbol).expect("position kept");
                assert_eq!(p.quantity, h.quantity, "{}", h.symbol);
            }
        }
    }
    let requests = (venue.request_log().len() - requests_before) / (warm + runs);
    store.settled().await.expect("store settled");
    let recorded = {
        use diesel::{QueryDsl, RunQueryDsl};
        let mut conn = pool.get().expect("connection");
        vibex::db::schema::reconciliation_events::table
            .count()
            .get_result::<i64>(&mut conn)
            .expect("count")
    };
    println!("   {:<44} {:>7} {:>7} {:>7}", "step", "p50", "p99", "mean");
    println!(
        "   {:<44} {:>7} {:>7} {:>7}",
        "Core::run(Input::Reconcile)",
        ms(samples.pct(50.0)),
        ms(samples.pct(99.0)),
        ms(samples.mean())
    );
    println!(
        "   {requests} requests per run (snapshot 3, userTrades {POSITIONS}, income 1); \
         {recorded} reconciliation rows recorded ({DIFFERENT} per run)"
    );
}

fn account_row() -> AccountRow {
    let now = Utc::now();
    AccountRow {
        id: ACCOUNT.into(),
        mode: "live".into(),
        venue_base_url: "http://127.0.0.1".into(),
        llm_model: "builtin/hold".into(),
        assets: vec![],
        interval_label: "5m".into(),
        leverage: 20,
        status: "registered".into(),
        paper_starting_balance: Decimal::ZERO,
        paper_wallet_balance: Decimal::ZERO,
        config: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    }
}
