//! A loopback fake of AsterDEX's public futures endpoints, speaking the real wire
//! format, for tests that must not touch the internet.
//!
//! Entry points: [`FakeVenue::start`] (an actix-web server on `127.0.0.1:0`, on its own
//! thread with its own `actix_rt::System`, so it works under any test runtime, sync or
//! async), [`FakeVenue::base_url`], and the controls: [`FakeVenue::set_price`],
//! [`FakeVenue::clear_price_override`], [`FakeVenue::fail_next`],
//! [`FakeVenue::set_down`], [`FakeVenue::rate_limit_next`], [`FakeVenue::requests`],
//! [`FakeVenue::request_log`]. Dropping the value stops the server.
//!
//! Served (GET): `/fapi/v1/ping`, `/time`, `/exchangeInfo` (BTCUSDT, ETHUSDT, SOLUSDT
//! with real-shaped filters; `pricePrecision`/`quantityPrecision` deliberately differ
//! from tickSize/stepSize so a client that rounds with them is caught), `/klines`,
//! `/premiumIndex`, `/openInterest`, `/fundingRate`, `/ticker/price`. Unknown symbol:
//! 400 `{"code":-1121,"msg":"Invalid symbol."}`; bad parameters: 400 with the venue's
//! code, never a panic. Every response carries `X-MBX-USED-WEIGHT-1M`.
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

use super::loopback::LoopbackServer;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

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
        LISTINGS
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
    /// HTTP status answered.
    pub status: u16,
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
    weight_minute: i64,
    weight_used: u32,
    counts: HashMap<String, usize>,
    log: VecDeque<LoggedRequest>,
}

struct Shared {
    control: Mutex<Control>,
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        // A test that panicked while holding the lock must not break the others.
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    let symbols: Vec<Value> = LISTINGS
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

/// Every request: scripted failures first, then the route; weight and log after.
fn answer(shared: &Shared, req: &HttpRequest) -> HttpResponse {
    let now = now_ms();
    let path = req.path().to_string();
    let query = req.query_string().to_string();
    let method = req.method().as_str().to_string();
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();

    let (scripted, pins) = {
        let mut c = shared.control();
        let scripted = if c.down {
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
            None
        };
        (scripted, c.pins.clone())
    };
    let reply = scripted
        .unwrap_or_else(|| route(&method, &path, &params, now, &pins).unwrap_or_else(|e| e));

    let used = {
        let mut c = shared.control();
        let minute = now.div_euclid(MINUTE_MS);
        if c.weight_minute != minute {
            c.weight_minute = minute;
            c.weight_used = 0;
        }
        c.weight_used = c.weight_used.saturating_add(weight(&path, &params));
        *c.counts.entry(path.clone()).or_insert(0) += 1;
        if c.log.len() >= LOG_CAPACITY {
            c.log.pop_front();
        }
        c.log.push_back(LoggedRequest {
            at: DateTime::from_timestamp_millis(now).unwrap_or_default(),
            method,
            path,
            query,
            status: reply.status,
        });
        c.weight_used
    };

    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header(("X-MBX-USED-WEIGHT-1M", used.to_string()));
    if let Some(after) = reply.retry_after {
        response.insert_header(("Retry-After", after.to_string()));
    }
    response
        .content_type("application/json")
        .body(reply.body.to_string())
}

async fn handle(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    answer(&shared, &req)
}

/// A running fake venue. Stops when dropped.
pub struct FakeVenue {
    base_url: String,
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl FakeVenue {
    /// Starts the fake on `127.0.0.1` with a free port, on its own thread and actix
    /// System, and returns once it accepts connections. Panics (test setup) if it
    /// cannot bind.
    pub fn start() -> FakeVenue {
        walks(); // read the data before the first request, not during it
        let shared = Arc::new(Shared {
            control: Mutex::new(Control::default()),
        });
        let app_shared = Arc::clone(&shared);
        let server = LoopbackServer::start("fake-venue", move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::from(Arc::clone(&app_shared)))
                .default_service(web::to(handle));
        });
        FakeVenue {
            base_url: format!("http://{}", server.addr),
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, to give to a client as its base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The symbols listed (`BTCUSDT`, `ETHUSDT`, `SOLUSDT`).
    pub fn symbols(&self) -> Vec<&'static str> {
        LISTINGS.iter().map(|l| l.symbol).collect()
    }

    fn listed(symbol: &str) -> &'static Walk {
        walk(symbol).unwrap_or_else(|| panic!("the fake venue does not list {symbol}"))
    }

    /// Pins the current price of `symbol` (rounded to its tick): the open candle's
    /// close, the ticker and the mark price, until [`Self::clear_price_override`].
    /// Use it to trigger take-profit and stop-loss levels. Panics on an unlisted symbol.
    pub fn set_price(&self, symbol: &str, price: Decimal) {
        let w = Self::listed(symbol);
        let units = (price * Decimal::from(10i64.pow(w.listing.price_scale)))
            .round()
            .to_i64()
            .unwrap_or_else(|| panic!("price {price} is out of range"));
        self.shared.control().pins.insert(w.listing.symbol, units);
    }

    /// Lets `symbol` follow its walk again.
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
            .unwrap_or_else(|| w.price_at(now_ms()));
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
