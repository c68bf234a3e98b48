//! A loopback fake of AsterDEX's futures API, speaking the real wire format, for tests
//! that must not touch the internet: the public market data here, the signed trading
//! API and the user data stream in the child module [`fake_trading`].
//!
//! Entry points: [`FakeVenue::start`] (an actix-web server on `127.0.0.1:0`, on its own
//! thread with its own `actix_rt::System`, so it works under any test runtime, sync or
//! async, plus a 100 ms tick thread for conditional orders), [`FakeVenue::base_url`],
//! [`FakeVenue::ws_base_url`], and the controls: [`FakeVenue::set_price`],
//! [`FakeVenue::clear_price_override`], [`FakeVenue::set_clock_offset_ms`],
//! [`FakeVenue::fail_next`], [`FakeVenue::set_down`], [`FakeVenue::rate_limit_next`],
//! [`FakeVenue::inject`], [`FakeVenue::hold_order_replies`], [`FakeVenue::requests`],
//! [`FakeVenue::request_log`] (each entry with the fake's own handling time); the
//! trading hooks are documented in [`fake_trading`].
//! Dropping the value stops the server (held or stalled replies are cut).
//!
//! Served (GET): `/fapi/v1/ping`, `/time`, `/exchangeInfo` (BTCUSDT, ETHUSDT, SOLUSDT
//! with real-shaped filters; `pricePrecision`/`quantityPrecision` deliberately differ
//! from tickSize/stepSize so a client that rounds with them is caught), `/klines`,
//! `/premiumIndex`, `/openInterest`, `/fundingRate`, `/ticker/price` (a benchmark can
//! list many more symbols for the whole process: [`FakeVenue::list_bench_symbols`]).
//! Unknown symbol: 400 `{"code":-1121,"msg":"Invalid symbol."}`; bad parameters: 400
//! with the venue's code, never a panic. Every response carries `X-MBX-USED-WEIGHT-1M`
//! (one counter for public and signed requests); order placements also
//! `X-MBX-ORDER-COUNT-1M`.
//!
//! Order of checks on every request: conditional orders are evaluated at the current
//! prices; then an IP ban in force (418), `set_down` (503), `rate_limit_next` (429),
//! `fail_next`, the first matching [`FakeVenue::inject`] fault; then the route. The
//! server clock (`/time`, `timestamp`/`nonce` checks, the walk's "now") is the wall
//! clock plus [`FakeVenue::set_clock_offset_ms`].
//!
//! How prices move (all derived from `tests/data/eurusd-1h.csv`, real EUR/USD bars):
//! - Each symbol walks the data **one row per wall-clock minute**: the minute
//!   `m = unix_ms / 60000` uses row `(m + offset) mod 10000` of a path that runs the
//!   5,000 rows forward and then backward (each bar mirrored), so the walk never jumps.
//!   Rows are scaled to the symbol's level (BTC ~60,000, ETH ~3,000, SOL ~150) and
//!   rounded to its tick; each symbol starts at a different offset.
//! - Candles of every interval (1m ... 1d) aggregate those minutes, aligned to UTC
//!   (Binance alignment), so they agree with each other: a 4h bar's close is the last
//!   1m close. The last candle is the one containing "now" and is still open.
//! - Inside the current minute the price moves **once per wall-clock second** along
//!   open -> first extreme -> second extreme -> close of the row, with a small
//!   alternating wiggle, never leaving the row's [low, high] and never repeating the
//!   previous second's price: two reads one second apart (within a minute) differ.
//! - The current price is the last candle's close, the ticker price and the mark price.
//!   [`FakeVenue::set_price`] pins it (rounded to the tick) until
//!   [`FakeVenue::clear_price_override`]: the open candle's close becomes the pinned
//!   price and its high/low stretch to include it; closed candles never change.
//! - Funding: the estimated rate follows the current row's return; settlements every
//!   8 h (00:00, 08:00, 16:00 UTC). Open interest wiggles around a per-symbol level.

// Each test binary uses a different part of this support module.
#![allow(dead_code)]

// The trading half lives in its own file but inside this module, so that everything
// that includes this file (the benches use `#[path]`) gets the whole venue.
#[path = "fake_trading.rs"]
pub mod fake_trading;

use super::loopback::LoopbackServer;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use fake_trading::{Exchange, Fault, TradingRequest};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The real EUR/USD hourly bars every symbol's prices are shaped after.
const DATA: &str = include_str!("../data/eurusd-1h.csv");

const MINUTE_MS: i64 = 60_000;
const FUNDING_PERIOD_MS: i64 = 8 * 60 * MINUTE_MS;
/// The request weight allowance declared in `exchangeInfo.rateLimits`.
const WEIGHT_LIMIT: u32 = 2400;
/// How many requests [`FakeVenue::request_log`] keeps (oldest dropped first).
const LOG_CAPACITY: usize = 100_000;

/// Intervals the fake serves, with their length in minutes.
const INTERVALS: [(&str, i64); 12] = [
    ("1m", 1),
    ("3m", 3),
    ("5m", 5),
    ("15m", 15),
    ("30m", 30),
    ("1h", 60),
    ("2h", 120),
    ("4h", 240),
    ("6h", 360),
    ("8h", 480),
    ("12h", 720),
    ("1d", 1440),
];

/// One listed perpetual: how its prices are made and what exchangeInfo says about it.
#[derive(Clone, Copy)]
struct Listing {
    symbol: &'static str,
    base: &'static str,
    /// Average price level the EUR/USD closes are scaled to.
    level: i64,
    /// Tick = 10^-price_scale.
    price_scale: u32,
    /// Step = 10^-qty_scale.
    qty_scale: u32,
    /// Multiplier from EUR/USD volume to this symbol's base volume per minute.
    volume_factor: &'static str,
    /// Open interest level (base units).
    open_interest: i64,
    /// Minutes the walk is shifted by, so symbols do not move in lockstep.
    offset: i64,
    /// PRICE_FILTER (minPrice, maxPrice, tickSize).
    price_filter: (&'static str, &'static str, &'static str),
    /// LOT_SIZE (minQty, maxQty, stepSize).
    lot_size: (&'static str, &'static str, &'static str),
    /// MARKET_LOT_SIZE (minQty, maxQty, stepSize).
    market_lot_size: (&'static str, &'static str, &'static str),
    /// MIN_NOTIONAL notional.
    min_notional: &'static str,
    price_precision: u32,
    quantity_precision: u32,
}

const LISTINGS: [Listing; 3] = [
    Listing {
        symbol: "BTCUSDT",
        base: "BTC",
        level: 60_000,
        price_scale: 1,
        qty_scale: 3,
        volume_factor: "0.02",
        open_interest: 8_000,
        offset: 0,
        price_filter: ("556.80", "4529764", "0.10"),
        lot_size: ("0.001", "1000", "0.001"),
        market_lot_size: ("0.001", "120", "0.001"),
        min_notional: "5",
        price_precision: 2,
        quantity_precision: 4,
    },
    Listing {
        symbol: "ETHUSDT",
        base: "ETH",
        level: 3_000,
        price_scale: 2,
        qty_scale: 3,
        volume_factor: "0.5",
        open_interest: 150_000,
        offset: 3_331,
        price_filter: ("39.86", "306177", "0.01"),
        lot_size: ("0.001", "10000", "0.001"),
        market_lot_size: ("0.001", "2000", "0.001"),
        min_notional: "5",
        price_precision: 3,
        quantity_precision: 2,
    },
    Listing {
        symbol: "SOLUSDT",
        base: "SOL",
        level: 150,
        price_scale: 2,
        qty_scale: 2,
        volume_factor: "10",
        open_interest: 2_500_000,
        offset: 6_661,
        price_filter: ("0.4200", "6857", "0.0100"),
        lot_size: ("0.01", "1000000", "0.01"),
        market_lot_size: ("0.01", "5000", "0.01"),
        min_notional: "5",
        price_precision: 4,
        quantity_precision: 0,
    },
];

/// How many `BENCHnnnUSDT` perpetuals this process lists besides the three above
/// ([`FakeVenue::list_bench_symbols`]; none unless a benchmark asks).
static BENCH_SYMBOLS: OnceLock<usize> = OnceLock::new();

/// Every listed perpetual: [`LISTINGS`], then the bench symbols (fixed for the process
/// at the first use).
fn listings() -> &'static [Listing] {
    static ALL: OnceLock<Vec<Listing>> = OnceLock::new();
    ALL.get_or_init(|| {
        let extra = BENCH_SYMBOLS.get().copied().unwrap_or(0);
        let mut all = LISTINGS.to_vec();
        all.extend((0..extra).map(|i| {
            let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
            // SOL's rules and price level, each on its own stretch of the walk.
            Listing {
                symbol: leak(format!("BENCH{i:03}USDT")),
                base: leak(format!("BENCH{i:03}")),
                offset: 97 * (i as i64 + 1),
                ..LISTINGS[2]
            }
        }));
        all
    })
}

/// The `filters[]` of a symbol: (minPrice, maxPrice, tickSize), LOT_SIZE and
/// MARKET_LOT_SIZE as (minQty, maxQty, stepSize), min notional.
fn filters(
    price: (&str, &str, &str),
    lot: (&str, &str, &str),
    market_lot: (&str, &str, &str),
    notional: &str,
) -> Value {
    json!([
        {"filterType": "PRICE_FILTER", "minPrice": price.0, "maxPrice": price.1, "tickSize": price.2},
        {"filterType": "LOT_SIZE", "stepSize": lot.2, "maxQty": lot.1, "minQty": lot.0},
        {"filterType": "MARKET_LOT_SIZE", "stepSize": market_lot.2, "maxQty": market_lot.1, "minQty": market_lot.0},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
        {"filterType": "MIN_NOTIONAL", "notional": notional},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"}
    ])
}

/// One minute of a symbol's walk, in integer units (price: ticks, volume: steps).
#[derive(Clone, Copy, Debug)]
struct Bar {
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i64,
}

/// A symbol's whole walk: the data forward, then backward with each bar mirrored.
struct Walk {
    listing: &'static Listing,
    bars: Vec<Bar>,
}

/// The aggregate of some minutes.
#[derive(Clone, Copy, Debug)]
struct Aggregate {
    open: i64,
    high: i64,
    low: i64,
    close: i64,
    volume: i64,
    /// Sum of volume * close, in units of 10^-(price_scale + qty_scale).
    quote: i128,
}

impl Aggregate {
    fn merge(self, later: Aggregate) -> Aggregate {
        Aggregate {
            open: self.open,
            high: self.high.max(later.high),
            low: self.low.min(later.low),
            close: later.close,
            volume: self.volume + later.volume,
            quote: self.quote + later.quote,
        }
    }
}

/// Reads the CSV (`<timestamp>,Open,High,Low,Close,Volume`) once per test binary.
fn walks() -> &'static [Walk] {
    static WALKS: OnceLock<Vec<Walk>> = OnceLock::new();
    WALKS.get_or_init(|| {
        let mut rows: Vec<[Decimal; 5]> = Vec::new();
        let mut reader = csv::Reader::from_reader(DATA.as_bytes());
        for (index, record) in reader.records().enumerate() {
            let record = record.unwrap_or_else(|e| panic!("eurusd-1h.csv row {index}: {e}"));
            let cell = |i: usize| {
                record
                    .get(i)
                    .and_then(|text| Decimal::from_str(text.trim()).ok())
                    .unwrap_or_else(|| panic!("eurusd-1h.csv row {index} column {i}"))
            };
            rows.push([cell(1), cell(2), cell(3), cell(4), cell(5)]);
        }
        assert!(rows.len() > 1, "eurusd-1h.csv has no data");
        let mean_close =
            rows.iter().map(|r| r[3]).sum::<Decimal>() / Decimal::from(rows.len() as u64);
        listings()
            .iter()
            .map(|listing| {
                let factor = Decimal::from(listing.level) / mean_close;
                let price_unit = Decimal::from(10i64.pow(listing.price_scale));
                let volume_factor = Decimal::from_str(listing.volume_factor)
                    .unwrap_or(Decimal::ONE)
                    * Decimal::from(10i64.pow(listing.qty_scale));
                let units = |x: Decimal| (x * factor * price_unit).round().to_i64().unwrap_or(0);
                let forward: Vec<Bar> = rows
                    .iter()
                    .map(|r| {
                        let low = units(r[2]);
                        // A flat bar gets one tick of range so the price always moves.
                        let high = units(r[1]).max(low + 1);
                        Bar {
                            open: units(r[0]).clamp(low, high),
                            high,
                            low,
                            close: units(r[3]).clamp(low, high),
                            volume: (r[4] * volume_factor).round().to_i64().unwrap_or(0),
                        }
                    })
                    .collect();
                let backward = forward.iter().rev().map(|b| Bar {
                    open: b.close,
                    close: b.open,
                    ..*b
                });
                let bars = forward.iter().copied().chain(backward).collect();
                Walk { listing, bars }
            })
            .collect()
    })
}

impl Walk {
    fn bar(&self, minute: i64) -> Bar {
        let len = self.bars.len() as i64;
        let index = (minute + self.listing.offset).rem_euclid(len) as usize;
        self.bars[index]
    }

    /// The price during second `second` (0..=59) of `minute`: along open -> first
    /// extreme -> second extreme -> close, plus an alternating wiggle, clamped to the
    /// bar and never equal to the previous second's price. Returns the prices of
    /// seconds 0..=second.
    fn seconds(&self, minute: i64, second: i64) -> Vec<i64> {
        let bar = self.bar(minute);
        let (first, second_extreme) = if bar.close >= bar.open {
            (bar.low, bar.high)
        } else {
            (bar.high, bar.low)
        };
        let knots = [bar.open, first, second_extreme, bar.close];
        let wiggle = ((bar.high - bar.low) / 40).max(1);
        let mut out = Vec::with_capacity(second as usize + 1);
        for s in 0..=second.clamp(0, 59) {
            let segment = (s / 20) as usize;
            let (a, b) = (knots[segment], knots[segment + 1]);
            let along = a + ((b - a) * (s % 20) + 10).div_euclid(20);
            let sign = if (minute + s) % 2 == 0 { 1 } else { -1 };
            let mut price = if s == 0 {
                bar.open
            } else {
                (along + sign * wiggle).clamp(bar.low, bar.high)
            };
            if let Some(&previous) = out.last() {
                if price == previous {
                    price = if price < bar.high {
                        price + 1
                    } else {
                        price - 1
                    };
                }
            }
            out.push(price);
        }
        out
    }

    /// Aggregate of the complete minutes `[from, to)` (`to > from`).
    fn minutes(&self, from: i64, to: i64) -> Aggregate {
        let first = self.bar(from);
        let mut agg = Aggregate {
            open: first.open,
            high: first.high,
            low: first.low,
            close: first.close,
            volume: 0,
            quote: 0,
        };
        for minute in from..to {
            let bar = self.bar(minute);
            agg.high = agg.high.max(bar.high);
            agg.low = agg.low.min(bar.low);
            agg.close = bar.close;
            agg.volume += bar.volume;
            agg.quote += i128::from(bar.volume) * i128::from(bar.close);
        }
        agg
    }

    /// The path price at `now_ms` (no override).
    fn price_at(&self, now_ms: i64) -> i64 {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let second = now_ms.rem_euclid(MINUTE_MS) / 1000;
        self.seconds(minute, second).last().copied().unwrap_or(0)
    }

    /// The candle `[start, start + len)` minutes as seen at `now_ms`: complete minutes
    /// plus the running minute when it falls inside; `pin` replaces the current price.
    fn candle(&self, start: i64, len: i64, now_ms: i64, pin: Option<i64>) -> Aggregate {
        let now_minute = now_ms.div_euclid(MINUTE_MS);
        let end = start + len;
        if now_minute >= end {
            return self.minutes(start, end);
        }
        let second = now_ms.rem_euclid(MINUTE_MS) / 1000;
        let path = self.seconds(now_minute, second);
        let bar = self.bar(now_minute);
        let close = pin.or(path.last().copied()).unwrap_or(bar.open);
        let done = (second + 1).min(60);
        let partial = Aggregate {
            open: bar.open,
            high: path.iter().copied().max().unwrap_or(bar.open).max(close),
            low: path.iter().copied().min().unwrap_or(bar.open).min(close),
            close,
            volume: bar.volume * done / 60,
            quote: i128::from(bar.volume * done / 60) * i128::from(close),
        };
        if now_minute > start {
            self.minutes(start, now_minute).merge(partial)
        } else {
            partial
        }
    }

    fn price_text(&self, units: i64) -> String {
        Decimal::new(units, self.listing.price_scale).to_string()
    }

    fn qty_text(&self, units: i64) -> String {
        Decimal::new(units, self.listing.qty_scale).to_string()
    }

    /// A price with 8 decimals, as the venue prints mark and index prices.
    fn price_8dp(&self, value: Decimal) -> String {
        let mut value = value.round_dp(8);
        value.rescale(8);
        value.to_string()
    }

    /// The funding rate the bar of `minute` implies: a tenth of its return plus the
    /// usual 0.01 %, within +-0.3 %.
    fn funding_rate(&self, minute: i64) -> String {
        let bar = self.bar(minute);
        let ret = Decimal::from(bar.close - bar.open) / Decimal::from(bar.open.max(1));
        let bound = Decimal::new(3, 3);
        let mut rate = (ret / Decimal::TEN + Decimal::new(1, 4))
            .clamp(-bound, bound)
            .round_dp(8);
        rate.rescale(8);
        rate.to_string()
    }
}

/// One request as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// `GET`, `POST`, ...
    pub method: String,
    /// `/fapi/v1/klines`.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Raw form body (empty for GET and for non-form bodies).
    body: String,
    /// HTTP status answered.
    status: u16,
    /// The fake's own work on it: from the request's arrival in the handler to its
    /// answer being ready (HTTP parsing and the response's serialization excluded).
    pub handled_in: Duration,
}

/// Scripted behaviour and bookkeeping, shared between the test and the server thread.
#[derive(Default)]
struct Control {
    /// Pinned prices in ticks, by symbol.
    pins: HashMap<&'static str, i64>,
    down: bool,
    fail_remaining: u32,
    fail_status: u16,
    rate_limited_remaining: u32,
    rate_limit_retry_after: u64,
    /// Faults scripted with [`FakeVenue::inject`], first match wins.
    faults: Vec<InjectedFault>,
    /// Server time (ms) until which every request answers 418.
    banned_until: Option<i64>,
    weight_minute: i64,
    weight_used: u32,
    counts: HashMap<String, usize>,
    log: VecDeque<LoggedRequest>,
}

/// A fault scripted for requests whose path starts with `prefix` (version segment
/// ignored), and optionally only for one method.
struct InjectedFault {
    method: Option<String>,
    prefix: String,
    fault: Fault,
    remaining: u32,
}

/// `/fapi/v2/account` -> `/fapi/v*/account`, so a fault set on one version catches the
/// same endpoint under the others (HMAC v1/v2, wallet v3).
fn unversioned(path: &str) -> String {
    match path.strip_prefix("/fapi/v") {
        Some(rest) => match rest.split_once('/') {
            Some((v, tail)) if v.bytes().all(|b| b.is_ascii_digit()) => {
                format!("/fapi/v*/{tail}")
            }
            _ => path.to_string(),
        },
        None => path.to_string(),
    }
}

/// Current prices by symbol (mark = last = fill price in the fake).
type Prices = HashMap<&'static str, Decimal>;

/// Everything the server thread, the tick thread and the test share. Lock order: never
/// take `control` while holding `trading` (the exchange gets a price snapshot instead).
struct Shared {
    control: Mutex<Control>,
    trading: Mutex<Exchange>,
    clock_offset_ms: AtomicI64,
    /// True while order replies are held ([`FakeVenue::hold_order_replies`]).
    hold: watch::Sender<bool>,
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        // A test that panicked while holding the lock must not break the others.
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exchange state of the trading half.
    fn trading(&self) -> MutexGuard<'_, Exchange> {
        self.trading.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fake's server clock: wall clock plus [`FakeVenue::set_clock_offset_ms`].
    fn now(&self) -> i64 {
        now_ms() + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// Every symbol's current price at `now` (pinned or from the walk).
    fn prices(&self, now: i64) -> Prices {
        let pins = self.control().pins.clone();
        walks()
            .iter()
            .map(|w| {
                let units = pins
                    .get(w.listing.symbol)
                    .copied()
                    .unwrap_or_else(|| w.price_at(now));
                (w.listing.symbol, Decimal::new(units, w.listing.price_scale))
            })
            .collect()
    }

    /// Fires the conditional orders the current prices have crossed.
    fn run_triggers(&self) {
        let now = self.now();
        let prices = self.prices(now);
        self.trading().tick(now, &prices);
    }
}

/// A symbol's trading filters as exchangeInfo publishes them, parsed, for the
/// trading half's order checks.
struct SymbolRules {
    pub symbol: &'static str,
    pub price_scale: u32,
    pub qty_scale: u32,
    pub min_price: Decimal,
    pub max_price: Decimal,
    pub tick_size: Decimal,
    /// MARKET_LOT_SIZE: every modeled order executes as a market order.
    pub min_qty: Decimal,
    pub max_qty: Decimal,
    pub step_size: Decimal,
    pub min_notional: Decimal,
}

/// The rules of every listed symbol, in listing order.
fn listed_rules() -> &'static [SymbolRules] {
    static RULES: OnceLock<Vec<SymbolRules>> = OnceLock::new();
    RULES.get_or_init(|| {
        let d = |text: &str| {
            Decimal::from_str(text).unwrap_or_else(|e| panic!("listing filter {text}: {e}"))
        };
        listings()
            .iter()
            .map(|l| SymbolRules {
                symbol: l.symbol,
                price_scale: l.price_scale,
                qty_scale: l.qty_scale,
                min_price: d(l.price_filter.0),
                max_price: d(l.price_filter.1),
                tick_size: d(l.price_filter.2),
                min_qty: d(l.market_lot_size.0),
                max_qty: d(l.market_lot_size.1),
                step_size: d(l.market_lot_size.2),
                min_notional: d(l.min_notional),
            })
            .collect()
    })
}

/// The rules of a listed symbol.
fn symbol_rules(symbol: &str) -> Option<&'static SymbolRules> {
    listed_rules().iter().find(|r| r.symbol == symbol)
}

/// An answer before it becomes an HTTP response.
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            retry_after: None,
        }
    }
    fn venue_error(status: u16, code: i64, msg: &str) -> Reply {
        Reply {
            status,
            body: json!({"code": code, "msg": msg}),
            retry_after: None,
        }
    }
    fn invalid_symbol() -> Reply {
        Reply::venue_error(400, -1121, "Invalid symbol.")
    }
    fn mandatory(param: &str) -> Reply {
        Reply::venue_error(
            400,
            -1102,
            &format!("Mandatory parameter '{param}' was not sent, was empty/null, or malformed."),
        )
    }
    fn bad_value(param: &str) -> Reply {
        Reply::venue_error(
            400,
            -1130,
            &format!("Data sent for parameter '{param}' is not valid."),
        )
    }
    /// The error body the venue sends with `status` when something is wrong its side.
    fn scripted(status: u16) -> Reply {
        const TOO_MANY: &str = "Too many requests; please use the websocket for live updates \
                                to avoid polling the API.";
        const BANNED: &str = "Way too many requests; IP banned for 120 seconds.";
        const INTERNAL: &str = "Internal error; unable to process your request. Please try again.";
        const UNKNOWN: &str = "An unknown error occured while processing the request.";
        match status {
            429 => Reply::venue_error(429, -1003, TOO_MANY),
            418 => Reply {
                retry_after: Some(120),
                ..Reply::venue_error(418, -1003, BANNED)
            },
            s if s >= 500 => Reply::venue_error(s, -1001, INTERNAL),
            s => Reply::venue_error(s, -1000, UNKNOWN),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn walk(symbol: &str) -> Option<&'static Walk> {
    walks().iter().find(|w| w.listing.symbol == symbol)
}

/// Request weight of an endpoint, as the Binance family counts it.
fn weight(path: &str, params: &HashMap<String, String>) -> u32 {
    match path {
        "/fapi/v1/klines" => match params.get("limit").and_then(|l| l.parse::<u32>().ok()) {
            Some(l) if l < 100 => 1,
            Some(l) if l < 500 => 2,
            Some(l) if l > 1000 => 10,
            _ => 5,
        },
        "/fapi/v1/ticker/price" if !params.contains_key("symbol") => 2,
        "/fapi/v1/premiumIndex" if !params.contains_key("symbol") => 10,
        _ => 1,
    }
}

/// Latest time parameter accepted (year 9999), so time arithmetic cannot overflow.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Parses an optional time parameter (ms, `^[0-9]{1,20}$`); `Err` is the venue's answer.
fn optional_time(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Reply> {
    match params.get(name) {
        None => Ok(None),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .filter(|t| *t <= MAX_TIME_MS)
            .map(Some)
            .ok_or_else(|| {
                let msg = format!(
                    "Illegal characters found in parameter '{name}'; \
                     legal range is '^[0-9]{{1,20}}$'."
                );
                Reply::venue_error(400, -1100, &msg)
            }),
    }
}

/// The symbol parameter: `Ok(None)` when absent, `Err` for an unknown one.
fn symbol_param(params: &HashMap<String, String>) -> Result<Option<&'static Walk>, Reply> {
    match params.get("symbol") {
        None => Ok(None),
        Some(name) => walk(name).map(Some).ok_or_else(Reply::invalid_symbol),
    }
}

fn required_symbol(params: &HashMap<String, String>) -> Result<&'static Walk, Reply> {
    symbol_param(params)?.ok_or_else(|| Reply::mandatory("symbol"))
}

/// The routes, answered from the walk at `now`.
fn route(
    method: &str,
    path: &str,
    params: &HashMap<String, String>,
    now: i64,
    pins: &HashMap<&'static str, i64>,
) -> Result<Reply, Reply> {
    let known = [
        "/fapi/v1/ping",
        "/fapi/v1/time",
        "/fapi/v1/exchangeInfo",
        "/fapi/v1/klines",
        "/fapi/v1/premiumIndex",
        "/fapi/v1/openInterest",
        "/fapi/v1/fundingRate",
        "/fapi/v1/ticker/price",
    ];
    if !known.contains(&path) {
        return Err(Reply::venue_error(
            404,
            -1000,
            &format!("Path {path} not found."),
        ));
    }
    if method != "GET" {
        return Err(Reply::venue_error(
            405,
            -1000,
            &format!("Method {method} is not allowed on {path}."),
        ));
    }
    let pin = |w: &Walk| pins.get(w.listing.symbol).copied();
    let price = |w: &Walk| pin(w).unwrap_or_else(|| w.price_at(now));
    match path {
        "/fapi/v1/ping" => Ok(Reply::ok(json!({}))),
        "/fapi/v1/time" => Ok(Reply::ok(json!({"serverTime": now}))),
        "/fapi/v1/exchangeInfo" => Ok(Reply::ok(exchange_info(now))),
        "/fapi/v1/klines" => klines(params, now, pins),
        "/fapi/v1/premiumIndex" => {
            let entry = |w: &Walk| {
                let mark = Decimal::new(price(w), w.listing.price_scale);
                let index = mark * Decimal::new(9998, 4);
                let minute = now.div_euclid(MINUTE_MS);
                json!({
                    "symbol": w.listing.symbol,
                    "markPrice": w.price_8dp(mark),
                    "indexPrice": w.price_8dp(index),
                    "estimatedSettlePrice": w.price_8dp(index),
                    "lastFundingRate": w.funding_rate(minute),
                    "interestRate": "0.00010000",
                    "nextFundingTime": (now.div_euclid(FUNDING_PERIOD_MS) + 1) * FUNDING_PERIOD_MS,
                    "time": now,
                })
            };
            match symbol_param(params)? {
                Some(w) => Ok(Reply::ok(entry(w))),
                None => Ok(Reply::ok(Value::Array(walks().iter().map(entry).collect()))),
            }
        }
        "/fapi/v1/openInterest" => {
            let w = required_symbol(params)?;
            let bar = w.bar(now.div_euclid(MINUTE_MS));
            let level = w.listing.open_interest * 10i64.pow(w.listing.qty_scale);
            let units = level + level * ((bar.volume % 1001) - 500) / 10_000;
            Ok(Reply::ok(json!({
                "symbol": w.listing.symbol,
                "openInterest": w.qty_text(units),
                "time": now,
            })))
        }
        "/fapi/v1/fundingRate" => funding_history(params, now),
        "/fapi/v1/ticker/price" => {
            let entry = |w: &Walk| {
                let price = w.price_text(price(w));
                json!({"symbol": w.listing.symbol, "price": price, "time": now})
            };
            match symbol_param(params)? {
                Some(w) => Ok(Reply::ok(entry(w))),
                None => Ok(Reply::ok(Value::Array(walks().iter().map(entry).collect()))),
            }
        }
        _ => Err(Reply::venue_error(
            404,
            -1000,
            &format!("Path {path} not found."),
        )),
    }
}

fn exchange_info(now: i64) -> Value {
    let symbols: Vec<Value> = listings()
        .iter()
        .map(|l| {
            json!({
                "symbol": l.symbol,
                "pair": l.symbol,
                "contractType": "PERPETUAL",
                "deliveryDate": 4_133_404_800_000i64,
                "onboardDate": 1_569_398_400_000i64,
                "status": "TRADING",
                "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000",
                "baseAsset": l.base,
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
                "pricePrecision": l.price_precision,
                "quantityPrecision": l.quantity_precision,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "settlePlan": 0,
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "filters": filters(l.price_filter, l.lot_size, l.market_lot_size, l.min_notional),
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            })
        })
        .collect();
    json!({
        "timezone": "UTC",
        "serverTime": now,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": WEIGHT_LIMIT},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": "USDT", "marginAvailable": true, "autoAssetExchange": "-10000"}
        ],
        "symbols": symbols,
    })
}

/// `GET /fapi/v1/klines?symbol&interval[&limit][&startTime][&endTime]`.
fn klines(
    params: &HashMap<String, String>,
    now: i64,
    pins: &HashMap<&'static str, i64>,
) -> Result<Reply, Reply> {
    let w = required_symbol(params)?;
    let interval = params
        .get("interval")
        .ok_or_else(|| Reply::mandatory("interval"))?;
    let minutes = INTERVALS
        .iter()
        .find(|(name, _)| name == interval)
        .map(|(_, m)| *m)
        .ok_or_else(|| Reply::venue_error(400, -1120, "Invalid interval."))?;
    let limit = match params.get("limit") {
        None => 500,
        Some(text) => match text.parse::<i64>() {
            Ok(l) if (1..=1500).contains(&l) => l,
            _ => return Err(Reply::bad_value("limit")),
        },
    };
    let start = optional_time(params, "startTime")?;
    let end = optional_time(params, "endTime")?;
    let span = minutes * MINUTE_MS;
    let current = now.div_euclid(span);
    let last_wanted = end.map_or(current, |e| e.min(now).div_euclid(span));
    let (first, last) = match start {
        Some(s) => {
            let first = s.div_euclid(span);
            (first, last_wanted.min(first + limit - 1))
        }
        None => (last_wanted - limit + 1, last_wanted),
    };
    let pin = pins.get(w.listing.symbol).copied();
    let rows: Vec<Value> = (first..=last)
        .map(|index| {
            let open_ms = index * span;
            let a = w.candle(
                open_ms / MINUTE_MS,
                minutes,
                now,
                pin.filter(|_| index == current),
            );
            let quote = Decimal::try_from_i128_with_scale(
                a.quote,
                w.listing.price_scale + w.listing.qty_scale,
            )
            .unwrap_or(Decimal::ZERO);
            let half_quote =
                (quote / Decimal::TWO).round_dp(w.listing.price_scale + w.listing.qty_scale);
            json!([
                open_ms,
                w.price_text(a.open),
                w.price_text(a.high),
                w.price_text(a.low),
                w.price_text(a.close),
                w.qty_text(a.volume),
                open_ms + span - 1,
                quote.to_string(),
                a.volume / 7 + minutes,
                w.qty_text(a.volume / 2),
                half_quote.to_string(),
                "0"
            ])
        })
        .collect();
    Ok(Reply::ok(Value::Array(rows)))
}

/// `GET /fapi/v1/fundingRate[?symbol][&limit]`: settled rates, oldest first.
fn funding_history(params: &HashMap<String, String>, now: i64) -> Result<Reply, Reply> {
    let chosen: Vec<&Walk> = match symbol_param(params)? {
        Some(w) => vec![w],
        None => walks().iter().collect(),
    };
    let limit = match params.get("limit") {
        None => 100,
        Some(text) => match text.parse::<i64>() {
            Ok(l) if (1..=1000).contains(&l) => l,
            _ => return Err(Reply::bad_value("limit")),
        },
    };
    let last_settled = now.div_euclid(FUNDING_PERIOD_MS);
    let mut entries: Vec<(i64, Value)> = Vec::new();
    for w in chosen {
        for k in (last_settled - limit + 1)..=last_settled {
            let at = k * FUNDING_PERIOD_MS;
            let minute = at / MINUTE_MS;
            let mark = Decimal::new(w.bar(minute).open, w.listing.price_scale);
            entries.push((
                at,
                json!({
                    "symbol": w.listing.symbol,
                    "fundingTime": at,
                    "fundingRate": w.funding_rate(minute - 1),
                    "markPrice": w.price_8dp(mark),
                }),
            ));
        }
    }
    entries.sort_by_key(|(at, _)| *at);
    let skip = entries.len().saturating_sub(limit as usize);
    Ok(Reply::ok(Value::Array(
        entries.into_iter().skip(skip).map(|(_, v)| v).collect(),
    )))
}

/// An answer ready to be sent, and how long to wait before sending it.
struct Prepared {
    status: u16,
    body: String,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    delay: Delay,
}

enum Delay {
    None,
    /// [`Fault::AcceptThenStall`].
    Stall(u64),
    /// An accepted order while [`FakeVenue::hold_order_replies`] is on.
    Held,
}

/// What an injected fault does after the request ran.
enum After {
    Reply503,
    Stall(u64),
}

/// Every request: ban, scripted and injected failures first, then the route (public or
/// signed); weight, log and headers after. Runs under the locks, never waits.
fn answer(shared: &Shared, req: &HttpRequest, raw_body: &[u8]) -> Prepared {
    let started = Instant::now();
    let now = shared.now();
    let path = req.path().to_string();
    let query = req.query_string().to_string();
    let method = req.method().as_str().to_string();
    let form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = if form {
        String::from_utf8_lossy(raw_body).into_owned()
    } else {
        String::new()
    };
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .chain(url::form_urlencoded::parse(body.as_bytes()).into_owned())
        .collect();
    // Conditional orders see every price the clients could have seen.
    let prices = shared.prices(now);
    shared.trading().evaluate_triggers(now, &prices);

    let (scripted, after) = {
        let mut c = shared.control();
        let mut after = None;
        let scripted = if let Some(until) = c.banned_until.filter(|until| *until > now) {
            Some(banned(now, until))
        } else if c.down {
            Some(Reply::scripted(503))
        } else if c.rate_limited_remaining > 0 {
            c.rate_limited_remaining -= 1;
            Some(Reply {
                retry_after: Some(c.rate_limit_retry_after),
                ..Reply::scripted(429)
            })
        } else if c.fail_remaining > 0 {
            c.fail_remaining -= 1;
            Some(Reply::scripted(c.fail_status))
        } else {
            let target = unversioned(&path);
            let hit = c.faults.iter_mut().find(|f| {
                f.remaining > 0
                    && target.starts_with(&f.prefix)
                    && f.method.as_ref().map_or(true, |m| *m == method)
            });
            match hit.map(|f| {
                f.remaining -= 1;
                f.fault
            }) {
                None => None,
                Some(Fault::RateLimited { retry_after_secs }) => Some(Reply {
                    retry_after: Some(retry_after_secs),
                    ..Reply::scripted(429)
                }),
                Some(Fault::Banned { retry_after_secs }) => {
                    let until = now + (retry_after_secs as i64) * 1000;
                    c.banned_until = Some(until);
                    Some(banned(now, until))
                }
                Some(Fault::ServerError) => Some(Reply::scripted(500)),
                Some(Fault::Code(code)) => Some(fake_trading::code_reply(code)),
                Some(Fault::AcceptThen503) => {
                    after = Some(After::Reply503);
                    None
                }
                Some(Fault::AcceptThenStall { secs }) => {
                    after = Some(After::Stall(secs));
                    None
                }
            }
        };
        c.faults.retain(|f| f.remaining > 0);
        (scripted, after)
    };

    let mut order_count = None;
    let mut accepted = false;
    let reply = match scripted {
        Some(reply) => reply,
        None if fake_trading::is_trading_path(&path) => {
            let api_key = req
                .headers()
                .get("X-MBX-APIKEY")
                .and_then(|v| v.to_str().ok());
            let request = TradingRequest {
                method: &method,
                path: &path,
                query: &query,
                body: &body,
                api_key,
            };
            let answer = shared.trading().handle(&request, now, &prices);
            order_count = answer.order_count;
            accepted = answer.order_accepted;
            answer.reply
        }
        None => {
            let pins = shared.control().pins.clone();
            route(&method, &path, &params, now, &pins).unwrap_or_else(|e| e)
        }
    };

    let used = {
        let mut c = shared.control();
        let minute = now.div_euclid(MINUTE_MS);
        if c.weight_minute != minute {
            c.weight_minute = minute;
            c.weight_used = 0;
        }
        let cost = if fake_trading::is_trading_path(&path) {
            fake_trading::trading_weight(&method, &path, params.contains_key("symbol"))
        } else {
            weight(&path, &params)
        };
        c.weight_used = c.weight_used.saturating_add(cost);
        *c.counts.entry(path.clone()).or_insert(0) += 1;
        if c.log.len() >= LOG_CAPACITY {
            c.log.pop_front();
        }
        c.log.push_back(LoggedRequest {
            at: DateTime::from_timestamp_millis(now).unwrap_or_default(),
            method,
            path,
            query,
            body,
            status: match after {
                Some(After::Reply503) => 503,
                _ => reply.status,
            },
            handled_in: started.elapsed(),
        });
        c.weight_used
    };

    let mut headers = vec![("X-MBX-USED-WEIGHT-1M", used.to_string())];
    if let Some(count) = order_count {
        headers.push(("X-MBX-ORDER-COUNT-1M", count.to_string()));
    }
    if let Some(after) = reply.retry_after {
        headers.push(("Retry-After", after.to_string()));
    }
    let held = accepted && *shared.hold.borrow();
    match after {
        Some(After::Reply503) => Prepared {
            status: 503,
            body: "<html><head><title>503 Service Temporarily Unavailable</title></head>\
                   <body><center><h1>503 Service Temporarily Unavailable</h1></center>\
                   </body></html>"
                .to_string(),
            content_type: "text/html",
            headers: vec![("X-MBX-USED-WEIGHT-1M", used.to_string())],
            delay: if held { Delay::Held } else { Delay::None },
        },
        other => Prepared {
            status: reply.status,
            body: reply.body.to_string(),
            content_type: "application/json",
            headers,
            delay: match other {
                _ if held => Delay::Held,
                Some(After::Stall(secs)) => Delay::Stall(secs),
                _ => Delay::None,
            },
        },
    }
}

/// The 418 every request gets while the IP is banned.
fn banned(now: i64, until: i64) -> Reply {
    Reply {
        retry_after: Some(((until - now) as u64).div_ceil(1000)),
        ..Reply::venue_error(
            418,
            -1003,
            &format!("Way too many requests; IP banned until {until}. Please use the websocket for live updates to avoid bans."),
        )
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let prepared = answer(&shared, &req, &body);
    match prepared.delay {
        Delay::None => {}
        Delay::Stall(secs) => actix_rt::time::sleep(Duration::from_secs(secs)).await,
        Delay::Held => {
            let mut held = shared.hold.subscribe();
            while *held.borrow_and_update() {
                if held.changed().await.is_err() {
                    break;
                }
            }
        }
    }
    let status = actix_web::http::StatusCode::from_u16(prepared.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for header in prepared.headers {
        response.insert_header(header);
    }
    response
        .content_type(prepared.content_type)
        .body(prepared.body)
}

/// A running fake venue. Stops when dropped.
pub struct FakeVenue {
    base_url: String,
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl FakeVenue {
    /// Starts the fake on `127.0.0.1` with a free port, on its own thread and actix
    /// System, and returns once it accepts connections; a second thread evaluates
    /// conditional orders and listen-key expiry every 100 ms. Panics (test setup) if it
    /// cannot bind.
    pub fn start() -> FakeVenue {
        walks(); // read the data before the first request, not during it
        listed_rules();
        let shared = Arc::new(Shared {
            control: Mutex::new(Control::default()),
            trading: Mutex::new(Exchange::default()),
            clock_offset_ms: AtomicI64::new(0),
            hold: watch::Sender::new(false),
        });
        let app_shared = Arc::clone(&shared);
        let server = LoopbackServer::start("fake-venue", move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::from(Arc::clone(&app_shared)))
                .route("/ws/{listen_key}", web::get().to(fake_trading::user_stream))
                .default_service(web::to(handle));
        });
        let ticking: Weak<Shared> = Arc::downgrade(&shared);
        let _ = std::thread::Builder::new()
            .name("fake-venue-tick".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                match ticking.upgrade() {
                    Some(shared) => shared.run_triggers(),
                    None => break,
                }
            });
        FakeVenue {
            base_url: format!("http://{}", server.addr),
            shared,
            server,
        }
    }

    /// The state shared with the server (for the trading hooks).
    fn shared(&self) -> &Shared {
        &self.shared
    }

    /// `ws://127.0.0.1:PORT/ws`: the user data stream is `{ws_base_url}/{listenKey}`.
    pub fn ws_base_url(&self) -> String {
        format!("ws://{}/ws", self.server.addr)
    }

    /// Shifts the fake's server clock by `offset_ms` (what `/fapi/v1/time` returns, what
    /// `timestamp` and `nonce` are checked against, and the price walk's "now").
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.shared
            .clock_offset_ms
            .store(offset_ms, Ordering::Relaxed);
    }

    /// The fake's server time, ms.
    pub fn server_time_ms(&self) -> i64 {
        self.shared.now()
    }

    /// The next `times` requests whose path starts with `path` answer with `fault`. The
    /// version segment is ignored (`/fapi/v1/order` also catches `/fapi/v3/order`);
    /// `"POST /fapi/v1/order"` limits it to one method. Faults are consumed in the
    /// order they were injected.
    pub fn inject(&self, path: &str, fault: Fault, times: u32) {
        let (method, prefix) = match path.split_once(' ') {
            Some((m, p)) => (Some(m.to_ascii_uppercase()), p),
            None => (None, path),
        };
        self.shared.control().faults.push(InjectedFault {
            method,
            prefix: unversioned(prefix),
            fault,
            remaining: times,
        });
    }

    /// While `hold`, accepted orders are executed but their HTTP replies wait until
    /// `hold_order_replies(false)` (or the fake stops).
    pub fn hold_order_replies(&self, hold: bool) {
        self.shared.trading().holding = hold;
        self.shared.hold.send_replace(hold);
    }

    /// Orders accepted (executed) while replies were held.
    pub fn accepted_while_held(&self) -> usize {
        self.shared.trading().accepted_while_held
    }

    /// `http://127.0.0.1:PORT`, to give to a client as its base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The symbols listed (`BTCUSDT`, `ETHUSDT`, `SOLUSDT`, then any bench symbols).
    pub fn symbols(&self) -> Vec<&'static str> {
        listings().iter().map(|l| l.symbol).collect()
    }

    /// Lists `n` more perpetuals in this process, `BENCH000USDT`, `BENCH001USDT`, ...
    /// (SOL's filters and price level, each on its own stretch of the walk), for
    /// benchmarks that need many positions: one-way mode holds one per symbol. Call it
    /// before the first [`FakeVenue::start`] of the process; returns the names. Panics
    /// when called too late or twice with different counts (a test bug).
    pub fn list_bench_symbols(n: usize) -> Vec<&'static str> {
        let set = *BENCH_SYMBOLS.get_or_init(|| n);
        assert_eq!(set, n, "bench symbols were already listed ({set})");
        let all = listings();
        assert_eq!(
            all.len(),
            LISTINGS.len() + n,
            "list_bench_symbols must come before the first FakeVenue::start"
        );
        all[LISTINGS.len()..].iter().map(|l| l.symbol).collect()
    }

    fn listed(symbol: &str) -> &'static Walk {
        walk(symbol).unwrap_or_else(|| panic!("the fake venue does not list {symbol}"))
    }

    /// Pins the current price of `symbol` (rounded to its tick): the open candle's
    /// close, the ticker and the mark price, until [`Self::clear_price_override`].
    /// Use it to trigger take-profit and stop-loss levels: the conditional orders it
    /// crosses fire before it returns. Panics on an unlisted symbol.
    pub fn set_price(&self, symbol: &str, price: Decimal) {
        let w = Self::listed(symbol);
        let units = (price * Decimal::from(10i64.pow(w.listing.price_scale)))
            .round()
            .to_i64()
            .unwrap_or_else(|| panic!("price {price} is out of range"));
        self.shared.control().pins.insert(w.listing.symbol, units);
        self.shared.run_triggers();
    }

    /// Lets `symbol` follow its walk again (conditional orders see the new price on the
    /// next request or 100 ms tick).
    pub fn clear_price_override(&self, symbol: &str) {
        self.shared.control().pins.remove(symbol);
    }

    /// The current price of `symbol` as the venue would report it now (pinned or from
    /// the walk). Panics on an unlisted symbol.
    pub fn current_price(&self, symbol: &str) -> Decimal {
        let w = Self::listed(symbol);
        let units = self
            .shared
            .control()
            .pins
            .get(w.listing.symbol)
            .copied()
            .unwrap_or_else(|| w.price_at(self.shared.now()));
        Decimal::new(units, w.listing.price_scale)
    }

    /// The next `n` requests (any path) answer `status` with the venue's error body
    /// for it (`-1001 Internal error` for 5xx).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut c = self.shared.control();
        c.fail_remaining = n;
        c.fail_status = status;
    }

    /// While `down`, every request answers 503.
    pub fn set_down(&self, down: bool) {
        self.shared.control().down = down;
    }

    /// The next `n` requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n: u32, retry_after_secs: u64) {
        let mut c = self.shared.control();
        c.rate_limited_remaining = n;
        c.rate_limit_retry_after = retry_after_secs;
    }

    /// How many requests reached `path` (`/fapi/v1/klines`), whatever the answer.
    pub fn requests(&self, path: &str) -> usize {
        self.shared.control().counts.get(path).copied().unwrap_or(0)
    }

    /// Every request so far (up to the last 100,000), oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.control().log.iter().cloned().collect()
    }

    /// Forgets the request log and the per-path counters.
    pub fn clear_request_log(&self) {
        let mut c = self.shared.control();
        c.log.clear();
        c.counts.clear();
    }
}
