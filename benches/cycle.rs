//! Domain overhead of one trading cycle, without network, database, actors or LLM.
//!
//! What it measures (criterion, wall time per iteration):
//! - `indicators/eurusd_5000`: `IndicatorSeries::compute` (EMA20/50, MACD, RSI7/14,
//!   ATR3/14, Bollinger) over the 5,000 bars of `tests/data/eurusd-1h.csv`.
//! - `snapshot_build/{BTC,ETH}`: `MarketSnapshot::build` for one asset from 150 5m and
//!   150 4h candles (what a MarketDataHub does once per poll, per symbol).
//! - `decide_risk/2_assets`: `BuiltinPolicy::EmaRsi.decide` on two snapshots plus
//!   `risk::check` of each decision (what the DecisionActor computes per cycle).
//! - `execute/*`: the simulated exchange of a paper account (`SimExchange`, restored from
//!   an empty state) through its `Exchange` calls, as the engine drives it (the engine's
//!   own row and event building is in `benches/footprint.rs`' end-to-end figure):
//!   `open_buy` (mark-price tick + market buy + TP and SL trigger orders),
//!   `open_then_tp_hit` (open, then a tick above the take-profit closes it),
//!   `open_then_close_by_decision` (open, then a `sell 0` decision closes it),
//!   `tick_no_trigger` (one price tick on an open position that crosses nothing: the
//!   per-account cost of every hub poll).
//! - `cycle_no_io/*`: one whole cycle for an account trading BTC and ETH — build both
//!   snapshots, read the account view, decide, risk-check, tick + execute each approved
//!   decision, mark to market. `2_assets_entry` starts from a flat account (both assets
//!   are bought: the most expensive cycle); `2_assets_steady` runs on an account that
//!   already holds both longs (the policy holds: the common cycle).
//!
//! Not included (see `benches/footprint.rs` for the end-to-end figure): actor message
//! round trips, event serialisation and fan-out, logging, database writes, HTTP.
//!
//! Candles: the real EUR/USD bars of `tests/data/eurusd-1h.csv`, scaled to BTC (~60,000,
//! tick 0.1) and ETH (~3,000, tick 0.01) price levels; 5m candles are 150 consecutive
//! rows, 4h candles aggregate 4 rows each. The window is the latest one in which the
//! ema-rsi policy wants to go long on both assets, so decide, risk and execution take
//! their full path.
//!
//! Run: `cargo bench --bench cycle` (filter: `cargo bench --bench cycle -- snapshot`).
//! Quick smoke run without measuring: `cargo test --bench cycle`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;
use vibex::config::PaperConfig;
use vibex::domain::decision::{AccountView, DecisionContext, PositionView, TradeDecision};
use vibex::domain::indicators::IndicatorSeries;
use vibex::domain::instrument::{SymbolRules, STATUS_TRADING};
use vibex::domain::paper::PaperSettings;
use vibex::domain::policy::BuiltinPolicy;
use vibex::domain::risk::{self, RiskInput, RiskLimits, RiskVerdict};
use vibex::domain::snapshot::{MarketSnapshot, SnapshotInput};
use vibex::domain::types::{Asset, Candle, PositionSide, Symbol, TradeAction};
use vibex::exchange::sim::SimExchange;
use vibex::exchange::venue::{Exchange, OrderKind, OrderRequest};
use vibex::llm::parse::{ModelReply, ReplyParser};
use vibex::llm::schema::decisions_document;

/// Bars per timeframe the hubs fetch (5m and 4h).
const BARS: usize = 150;
/// Account leverage (the configuration default).
const LEVERAGE: u32 = 1;
const VENUE: &str = "http://127.0.0.1:1";

/// One row of the CSV: open, high, low, close, volume.
type Row = [Decimal; 5];

fn load_rows() -> Vec<Row> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/eurusd-1h.csv");
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    reader
        .records()
        .enumerate()
        .map(|(i, record)| {
            let record = record.unwrap_or_else(|e| panic!("{path} row {i}: {e}"));
            let cell = |c: usize| {
                record
                    .get(c)
                    .and_then(|t| Decimal::from_str(t.trim()).ok())
                    .unwrap_or_else(|| panic!("{path} row {i} column {c}"))
            };
            [cell(1), cell(2), cell(3), cell(4), cell(5)]
        })
        .collect()
}

/// How one perpetual's prices are made from the EUR/USD rows.
struct Market {
    asset: &'static str,
    /// Average price level.
    level: i64,
    /// Decimal places of the tick.
    price_dp: u32,
    /// EUR/USD volume to base-asset volume.
    volume_factor: Decimal,
    /// Rows the series is shifted by, so the assets do not move in lockstep.
    offset: usize,
}

const MARKETS: [Market; 2] = [
    Market {
        asset: "BTC",
        level: 60_000,
        price_dp: 1,
        volume_factor: dec!(0.02),
        offset: 0,
    },
    Market {
        asset: "ETH",
        level: 3_000,
        price_dp: 2,
        volume_factor: dec!(0.5),
        offset: 1_700,
    },
];

/// The inputs of one snapshot: candles and the hub's other readings.
struct MarketData {
    symbol: Symbol,
    candles_5m: Vec<Candle>,
    candles_4h: Vec<Candle>,
    mark_price: Decimal,
    open_interest: Vec<Decimal>,
    rules: SymbolRules,
}

impl MarketData {
    fn input(&self, now: DateTime<Utc>) -> SnapshotInput<'_> {
        SnapshotInput {
            venue: VENUE,
            symbol: &self.symbol,
            candles_5m: &self.candles_5m,
            candles_4h: &self.candles_4h,
            mark_price: self.mark_price,
            funding_rate: dec!(0.0001),
            next_funding_time: Some(now + Duration::hours(3)),
            open_interest: &self.open_interest,
            now,
        }
    }

    fn build(&self, now: DateTime<Utc>) -> MarketSnapshot {
        MarketSnapshot::build(&self.input(now)).expect("snapshot")
    }
}

/// Candles of `market` for the window whose last 1h row is `end` (exclusive).
fn market_data(rows: &[Row], market: &Market, end: usize, now: DateTime<Utc>) -> MarketData {
    let mean_close = rows.iter().map(|r| r[3]).sum::<Decimal>() / Decimal::from(rows.len());
    let factor = Decimal::from(market.level) / mean_close;
    let px = |x: Decimal| (x * factor).round_dp(market.price_dp);
    let vol = |x: Decimal| (x * market.volume_factor).round_dp(3);
    let n = rows.len();
    // Wrap around the data so every offset has a full window.
    let row = |i: usize| &rows[(i + market.offset) % n];
    let bar = |open_time: DateTime<Utc>, secs: i64, group: &[&Row]| Candle {
        open_time,
        open: px(group[0][0]),
        high: group.iter().map(|r| px(r[1])).max().unwrap_or_default(),
        low: group.iter().map(|r| px(r[2])).min().unwrap_or_default(),
        close: px(group[group.len() - 1][3]),
        volume: group.iter().map(|r| vol(r[4])).sum(),
        close_time: open_time + Duration::seconds(secs) - Duration::milliseconds(1),
    };
    let aligned = |secs: i64| {
        let t = now.timestamp() - now.timestamp().rem_euclid(secs);
        Utc.timestamp_opt(t, 0).single().expect("time")
    };
    let start_5m = aligned(300) - Duration::seconds(300 * (BARS as i64 - 1));
    let candles_5m = (0..BARS)
        .map(|i| {
            let r = row(end + n - BARS + i);
            bar(start_5m + Duration::seconds(300 * i as i64), 300, &[r])
        })
        .collect::<Vec<_>>();
    let start_4h = aligned(14_400) - Duration::seconds(14_400 * (BARS as i64 - 1));
    let candles_4h = (0..BARS)
        .map(|i| {
            let first = end + n - 4 * (BARS - i);
            let group: Vec<&Row> = (first..first + 4).map(row).collect();
            bar(
                start_4h + Duration::seconds(14_400 * i as i64),
                14_400,
                &group,
            )
        })
        .collect();
    let symbol = Asset::new(market.asset).symbol();
    let mark_price = candles_5m.last().map(|c| c.close).unwrap_or_default();
    let tick = Decimal::new(1, market.price_dp);
    let rules = SymbolRules {
        tick_size: Some(tick),
        min_price: Some(tick),
        max_price: Some(Decimal::from(market.level * 100)),
        step_size: Some(dec!(0.001)),
        min_qty: Some(dec!(0.001)),
        max_qty: Some(dec!(10000)),
        market_step_size: Some(dec!(0.001)),
        market_min_qty: Some(dec!(0.001)),
        market_max_qty: Some(dec!(2000)),
        min_notional: Some(dec!(5)),
        ..SymbolRules::new(symbol.clone(), STATUS_TRADING)
    };
    MarketData {
        symbol,
        candles_5m,
        candles_4h,
        mark_price,
        open_interest: (0..20).map(|i| Decimal::from(8_000 + i * 7)).collect(),
        rules,
    }
}

fn paper_config() -> PaperConfig {
    PaperConfig {
        starting_balance_usd: dec!(10000),
        fee_bps: dec!(5),
        maker_fee_bps: dec!(2),
        slippage_bps: dec!(2),
        maintenance_margin_rate: dec!(0.005),
    }
}

/// A simulated exchange restored from an empty state (a new paper account).
fn fresh_venue() -> SimExchange {
    let cfg = paper_config();
    SimExchange::restore(
        PaperSettings {
            fee_bps: cfg.fee_bps,
            maker_fee_bps: cfg.maker_fee_bps,
            slippage_bps: cfg.slippage_bps,
            maintenance_margin_rate: cfg.maintenance_margin_rate,
        },
        cfg.starting_balance_usd,
        Vec::new(),
        Vec::new(),
        LEVERAGE,
    )
    .expect("restore an empty paper account")
}

/// The simulated exchange answers at once: its futures are ready when made.
fn now<T>(f: vibex::exchange::venue::VenueFuture<'_, T>) -> T {
    use futures_util::FutureExt;
    match f.now_or_never() {
        Some(Ok(v)) => v,
        Some(Err(e)) => panic!("simulated exchange refused: {e}"),
        None => panic!("the simulated exchange never waits"),
    }
}

/// Balance and positions as the policy sees them.
fn view(venue: &SimExchange) -> (AccountView, HashMap<Symbol, DateTime<Utc>>) {
    let snap = now(venue.snapshot());
    let positions = snap
        .positions
        .iter()
        .map(|p| PositionView {
            symbol: p.symbol.clone(),
            side: p.side(),
            quantity: p.quantity(),
            entry_price: p.entry_price,
            leverage: p.leverage,
            unrealized_pnl: p.unrealized_pnl,
            tp_price: None,
            sl_price: None,
            exit_plan: String::new(),
            opened_at: Utc::now(),
        })
        .collect();
    (
        AccountView {
            wallet_balance: snap.balance.wallet_balance,
            equity: snap.balance.margin_balance,
            available: snap.balance.available_balance,
            positions,
        },
        HashMap::new(),
    )
}

/// Executes one approved decision as the engine would: close an opposite position,
/// then a market entry with its TP and SL triggers. Returns the orders placed.
fn execute(
    venue: &SimExchange,
    decision: &TradeDecision,
    snap: &MarketSnapshot,
    rules: &SymbolRules,
) -> usize {
    venue.on_price(&snap.symbol, snap.mark_price, Utc::now());
    let _ = venue.take_events();
    let mut placed = 0;
    let id = |leg: &str| format!("vx-{leg}-{}", Uuid::now_v7().simple());
    let held = now(venue.snapshot())
        .positions
        .into_iter()
        .find(|p| p.symbol == snap.symbol);
    if let Some(p) = held {
        let side = p.side();
        let target = match decision.action {
            TradeAction::Buy => PositionSide::Long,
            _ => PositionSide::Short,
        };
        if side == target || decision.action == TradeAction::Hold {
            return 0;
        }
        now(venue.cancel_all(&snap.symbol));
        now(venue.place_order(&OrderRequest {
            symbol: snap.symbol.clone(),
            side: side.exit_side(),
            kind: OrderKind::Market,
            quantity: Some(p.quantity()),
            stop_price: None,
            reduce_only: true,
            close_position: false,
            client_order_id: id("ex"),
        }));
        placed += 1;
    }
    if decision.action != TradeAction::Buy || decision.allocation_usd.is_zero() {
        return placed;
    }
    let qty = rules.floor_quantity(
        (decision.allocation_usd / snap.last_price).round_dp(12),
        true,
    );
    now(venue.place_order(&OrderRequest {
        symbol: snap.symbol.clone(),
        side: PositionSide::Long.entry_side(),
        kind: OrderKind::Market,
        quantity: Some(qty),
        stop_price: None,
        reduce_only: false,
        close_position: false,
        client_order_id: id("en"),
    }));
    placed += 1;
    let legs = [
        (OrderKind::TakeProfitMarket, decision.tp_price, "tp"),
        (OrderKind::StopMarket, decision.sl_price, "sl"),
    ];
    for (kind, level, leg) in legs {
        let Some(level) = level else { continue };
        now(venue.place_order(&OrderRequest {
            symbol: snap.symbol.clone(),
            side: PositionSide::Long.exit_side(),
            kind,
            quantity: None,
            stop_price: Some(rules.round_price(level)),
            reduce_only: true,
            close_position: true,
            client_order_id: id(leg),
        }));
        placed += 1;
    }
    placed
}

fn limits() -> RiskLimits {
    RiskLimits {
        leverage: LEVERAGE,
        hysteresis_cycles: 2,
        ..RiskLimits::default()
    }
}

/// The decisions of the ema-rsi policy, checked by the risk rules: what the
/// DecisionActor hands to execution.
fn decide_and_check(
    snapshots: &[Arc<MarketSnapshot>],
    account: &AccountView,
    last_trades: &HashMap<Symbol, DateTime<Utc>>,
    limits: &RiskLimits,
    now: DateTime<Utc>,
) -> Vec<(Uuid, TradeDecision, Arc<MarketSnapshot>)> {
    let ctx = DecisionContext {
        now,
        snapshots: snapshots.to_vec(),
        account: account.clone(),
        leverage: LEVERAGE,
        max_position_usd: None,
    };
    // As the DecisionActor does: the policy's decisions go through the same parser and
    // validation as a model's reply, then the risk rules.
    let decided = BuiltinPolicy::EmaRsi.decide(&ctx);
    let body = decisions_document(&decided).to_string();
    let assets: Vec<_> = snapshots.iter().map(|s| s.asset.clone()).collect();
    let prices = snapshots
        .iter()
        .map(|s| (s.asset.clone(), s.last_price))
        .collect();
    // The actor compiles its schema once; so does the benchmark (same assets throughout).
    static PARSER: std::sync::OnceLock<ReplyParser> = std::sync::OnceLock::new();
    let parser = PARSER.get_or_init(|| ReplyParser::new(&assets));
    let parsed = parser.parse(
        &ModelReply {
            content: Some(&body),
            tool_arguments: None,
            finish_reason: Some("stop"),
        },
        &prices,
    );
    let mut approved = Vec::new();
    for snap in snapshots {
        let Some(decision) = parsed
            .decisions
            .iter()
            .find(|d| d.asset == snap.asset)
            .map(|d| &d.decision)
        else {
            continue;
        };
        let verdict = risk::check(
            decision,
            limits,
            &RiskInput {
                price: snap.last_price,
                available: account.available,
                position: account.position(&snap.symbol).map(|p| p.side),
                last_trade_at: last_trades.get(&snap.symbol).copied(),
                now,
                equity: account.equity,
                day_start_equity: Some(account.equity),
                reversal_streak: 0,
                exit_plan: None,
                database_unreachable_for: None,
            },
        );
        if let RiskVerdict::Approved { decision, .. } = verdict {
            approved.push((Uuid::now_v7(), decision, Arc::clone(snap)));
        }
    }
    approved
}

/// Everything that happens in one cycle of an account, minus I/O and actors.
fn cycle(venue: &SimExchange, markets: &[MarketData], limits: &RiskLimits) -> usize {
    let now_ = Utc::now();
    let snapshots: Vec<Arc<MarketSnapshot>> =
        markets.iter().map(|m| Arc::new(m.build(now_))).collect();
    let (account, last_trades) = view(venue);
    let approved = decide_and_check(&snapshots, &account, &last_trades, limits, now_);
    let mut orders = 0;
    for (_, decision, snap) in &approved {
        let Some(m) = markets.iter().find(|m| m.symbol == snap.symbol) else {
            continue;
        };
        orders += execute(venue, decision, snap, &m.rules);
    }
    black_box(now(venue.snapshot()));
    orders
}

/// The latest window in which the policy buys both assets on a flat account.
fn pick_window(rows: &[Row], now: DateTime<Utc>) -> (usize, Vec<MarketData>) {
    let venue = fresh_venue();
    let (account, last_trades) = view(&venue);
    let step = 7;
    let mut end = rows.len();
    while end > 4 * BARS + step {
        let markets: Vec<MarketData> = MARKETS
            .iter()
            .map(|m| market_data(rows, m, end, now))
            .collect();
        let snaps: Vec<Arc<MarketSnapshot>> =
            markets.iter().map(|m| Arc::new(m.build(now))).collect();
        let approved = decide_and_check(&snaps, &account, &last_trades, &limits(), now);
        if approved.len() == MARKETS.len()
            && approved
                .iter()
                .all(|(_, d, _)| d.action == TradeAction::Buy && d.tp_price.is_some())
        {
            return (end, markets);
        }
        end -= step;
    }
    panic!("no window of the EUR/USD data makes the ema-rsi policy buy both assets");
}

struct Fixture {
    rows: Vec<Row>,
    markets: Vec<MarketData>,
    snapshots: Vec<Arc<MarketSnapshot>>,
}

fn fixture() -> Fixture {
    let rows = load_rows();
    let now = Utc::now();
    let (end, markets) = pick_window(&rows, now);
    let snapshots: Vec<Arc<MarketSnapshot>> =
        markets.iter().map(|m| Arc::new(m.build(now))).collect();
    for s in &snapshots {
        eprintln!(
            "cycle bench: {} window ends at row {end}: last {} EMA20(5m) {:.1} RSI14(5m) {:.1} ATR14(5m) {:.2}",
            s.symbol,
            s.last_price,
            s.current.ema20.unwrap_or(f64::NAN),
            s.current.rsi14.unwrap_or(f64::NAN),
            s.current.atr14.unwrap_or(f64::NAN),
        );
    }
    Fixture {
        rows,
        markets,
        snapshots,
    }
}

fn bench_indicators(c: &mut Criterion, f: &Fixture) {
    let f64s = |i: usize| -> Vec<f64> {
        f.rows
            .iter()
            .map(|r| r[i].to_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let (high, low, close) = (f64s(1), f64s(2), f64s(3));
    let mut g = c.benchmark_group("indicators");
    g.throughput(Throughput::Elements(close.len() as u64));
    g.bench_function("eurusd_5000", |b| {
        b.iter(|| IndicatorSeries::compute(black_box(&high), black_box(&low), black_box(&close)))
    });
    g.finish();
}

fn bench_snapshot(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("snapshot_build");
    for m in &f.markets {
        let now = Utc::now();
        g.bench_function(m.symbol.asset().as_str(), |b| {
            b.iter(|| MarketSnapshot::build(black_box(&m.input(now))))
        });
    }
    g.finish();
}

fn bench_decide_risk(c: &mut Criterion, f: &Fixture) {
    let venue = fresh_venue();
    let (account, last_trades) = view(&venue);
    let limits = limits();
    let now = Utc::now();
    c.bench_function("decide_risk/2_assets", |b| {
        b.iter(|| {
            decide_and_check(
                black_box(&f.snapshots),
                black_box(&account),
                &last_trades,
                &limits,
                now,
            )
        })
    });
}

fn bench_execute(c: &mut Criterion, f: &Fixture) {
    let snap = &f.snapshots[0];
    let rules = &f.markets[0].rules;
    let venue = fresh_venue();
    let (account, last_trades) = view(&venue);
    let approved = decide_and_check(
        std::slice::from_ref(snap),
        &account,
        &last_trades,
        &limits(),
        Utc::now(),
    );
    let buy = approved[0].1.clone();
    let tp = buy.tp_price.expect("tp");
    let close = TradeDecision {
        action: TradeAction::Sell,
        allocation_usd: Decimal::ZERO,
        tp_price: None,
        sl_price: None,
        ..buy.clone()
    };
    let open = |venue: &SimExchange| execute(venue, &buy, snap, rules);

    // The paths below are the ones measured (checked once, outside the timing).
    let check = fresh_venue();
    assert_eq!(open(&check), 3, "the buy and its TP and SL");
    assert_eq!(check.take_events().len(), 1, "the entry's fill");
    check.on_price(&snap.symbol, tp + Decimal::ONE, Utc::now());
    assert_eq!(check.take_events().len(), 1, "the take-profit fires");
    let check = fresh_venue();
    open(&check);
    assert_eq!(execute(&check, &close, snap, rules), 1, "the close");
    assert!(now(check.snapshot()).positions.is_empty());

    let mut g = c.benchmark_group("execute");
    g.bench_function("open_buy", |b| {
        b.iter_batched(
            fresh_venue,
            |venue| {
                let out = open(&venue);
                (venue, out)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("open_then_tp_hit", |b| {
        b.iter_batched(
            fresh_venue,
            |venue| {
                let opened = open(&venue);
                venue.on_price(&snap.symbol, tp + Decimal::ONE, Utc::now());
                let hit = venue.take_events();
                (venue, opened, hit)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("open_then_close_by_decision", |b| {
        b.iter_batched(
            fresh_venue,
            |venue| {
                let opened = open(&venue);
                let closed = execute(&venue, &close, snap, rules);
                (venue, opened, closed)
            },
            BatchSize::SmallInput,
        )
    });
    let holding = fresh_venue();
    open(&holding);
    let mut price = snap.mark_price;
    let wiggle = Decimal::new(1, 1);
    g.bench_function("tick_no_trigger", |b| {
        b.iter(|| {
            // Alternate between two prices inside the TP/SL band.
            price = if price == snap.mark_price {
                snap.mark_price + wiggle
            } else {
                snap.mark_price
            };
            holding.on_price(&snap.symbol, black_box(price), Utc::now());
        })
    });
    g.finish();
}

fn bench_cycle(c: &mut Criterion, f: &Fixture) {
    let limits = limits();
    let mut g = c.benchmark_group("cycle_no_io");
    g.bench_function("2_assets_entry", |b| {
        b.iter_batched(
            fresh_venue,
            |venue| {
                let orders = cycle(&venue, &f.markets, &limits);
                (venue, orders)
            },
            BatchSize::SmallInput,
        )
    });
    let steady = fresh_venue();
    cycle(&steady, &f.markets, &limits);
    assert_eq!(
        view(&steady).0.positions.len(),
        2,
        "the entry cycle opens both longs"
    );
    g.bench_function("2_assets_steady", |b| {
        b.iter(|| cycle(&steady, &f.markets, &limits))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    bench_indicators(c, &f);
    bench_snapshot(c, &f);
    bench_decide_risk(c, &f);
    bench_execute(c, &f);
    bench_cycle(c, &f);
}

criterion_group!(cycle_benches, benches);
criterion_main!(cycle_benches);
