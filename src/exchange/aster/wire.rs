//! The venue's JSON as it comes over the wire, and its strict translation into vibex
//! values.
//!
//! Entry points: [`WireDecimal`] / [`WireMillis`] (field types), the `*Wire` structs
//! (one per response shape), and the translators [`exchange_info`], [`candles`],
//! [`symbol_rules`], used by [`super::market::MarketClient`].
//!
//! Invariants:
//! - Money is read from its text, never through `f64`: a field arrives as a JSON string
//!   (`"0.01634790"`, the documented form) or as a bare JSON number (which the Binance
//!   family sends in a few places); both are captured as raw JSON text
//!   (`serde_json::value::RawValue`) and parsed as a decimal, so no digit is lost.
//! - Unknown fields and unknown filter types are ignored; missing filters become `None`.
//! - Every translation error says where it was (symbol, row, cell, field) so a
//!   [`super::super::error::VenueError::Decode`] is actionable.

use crate::domain::instrument::SymbolRules;
use crate::domain::types::{Candle, Symbol};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::str::FromStr;

use super::market::{ExchangeInfo, RateLimit, SkippedSymbol};

/// Longest piece of venue text quoted back in an error message.
const QUOTE_LIMIT: usize = 120;

/// `text` cut to [`QUOTE_LIMIT`] characters (on a char boundary), for error messages.
pub fn snippet(text: &str) -> String {
    let mut out: String = text.chars().take(QUOTE_LIMIT).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Parses a JSON body into `T`, or says what was wrong with it (the error and the
/// start of the body; the caller names the endpoint).
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("{e} (body: {})", snippet(&String::from_utf8_lossy(body))))
}

/// Reads a decimal from raw JSON text: a string (`"12.50"`) or a number literal
/// (`12.50`, `1e-8`). The number's own digits are parsed, never an `f64`.
pub fn parse_decimal(raw: &str) -> Result<Decimal, String> {
    let text = unquote(raw)?;
    let text = text.trim();
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| format!("{} is not a decimal number", snippet(raw)))
}

/// Reads a whole number of milliseconds since the Unix epoch from raw JSON text (a
/// number or a numeric string) as a UTC time.
pub fn parse_millis(raw: &str) -> Result<DateTime<Utc>, String> {
    let text = unquote(raw)?;
    let millis = i64::from_str(text.trim())
        .map_err(|_| format!("{} is not a time in milliseconds", snippet(raw)))?;
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| format!("{millis} ms is outside the representable time range"))
}

/// The text of a raw JSON value: the content of a string, or the literal itself.
fn unquote(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|e| format!("bad string {}: {e}", snippet(raw)))
    } else if raw.starts_with(['{', '[']) || raw == "null" || raw == "true" || raw == "false" {
        Err(format!("expected a number, got {}", snippet(raw)))
    } else {
        Ok(raw.to_string())
    }
}

/// A decimal field: JSON string or JSON number, parsed from its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireDecimal(pub Decimal);

impl<'de> Deserialize<'de> for WireDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        parse_decimal(raw.get())
            .map(WireDecimal)
            .map_err(de::Error::custom)
    }
}

/// A millisecond timestamp field: JSON number or numeric string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireMillis(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for WireMillis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        parse_millis(raw.get())
            .map(WireMillis)
            .map_err(de::Error::custom)
    }
}

/// The venue's error body: `{"code":-1121,"msg":"Invalid symbol."}`.
#[derive(Clone, Debug, Deserialize)]
pub struct ErrorBodyWire {
    /// Venue error code (negative).
    pub code: i64,
    /// Venue error message.
    pub msg: String,
}

/// `GET /fapi/v1/time`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTimeWire {
    /// Server clock, ms since the epoch.
    pub server_time: WireMillis,
}

/// `GET /fapi/v1/exchangeInfo`, top level. Symbols, filters and rate limits are kept
/// raw so one odd entry is skipped instead of failing the whole listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfoWire {
    /// Server clock, when sent.
    #[serde(default)]
    pub server_time: Option<WireMillis>,
    /// `rateLimits[]`.
    #[serde(default)]
    pub rate_limits: Vec<Box<RawValue>>,
    /// `symbols[]`.
    pub symbols: Vec<Box<RawValue>>,
}

/// One entry of `exchangeInfo.symbols[]` (fields vibex uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolWire {
    /// `BTCUSDT`.
    pub symbol: String,
    /// `TRADING`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// `filters[]`, each kept raw until its `filterType` is known.
    #[serde(default)]
    pub filters: Vec<Box<RawValue>>,
}

/// Just the `filterType` of a filter.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterHeadWire {
    /// `PRICE_FILTER`, `LOT_SIZE`, ...
    pub filter_type: String,
}

/// `PRICE_FILTER`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceFilterWire {
    /// `minPrice`.
    #[serde(default)]
    pub min_price: Option<WireDecimal>,
    /// `maxPrice`.
    #[serde(default)]
    pub max_price: Option<WireDecimal>,
    /// `tickSize`.
    #[serde(default)]
    pub tick_size: Option<WireDecimal>,
}

/// `LOT_SIZE` and `MARKET_LOT_SIZE`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LotSizeWire {
    /// `minQty`.
    #[serde(default)]
    pub min_qty: Option<WireDecimal>,
    /// `maxQty`.
    #[serde(default)]
    pub max_qty: Option<WireDecimal>,
    /// `stepSize`.
    #[serde(default)]
    pub step_size: Option<WireDecimal>,
}

/// `MIN_NOTIONAL` (futures spell the field `notional`, spot `minNotional`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinNotionalWire {
    /// `notional`.
    #[serde(default)]
    pub notional: Option<WireDecimal>,
    /// `minNotional`.
    #[serde(default)]
    pub min_notional: Option<WireDecimal>,
}

/// One entry of `exchangeInfo.rateLimits[]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitWire {
    /// `REQUEST_WEIGHT`, `ORDERS`.
    pub rate_limit_type: String,
    /// `MINUTE`, `SECOND`.
    pub interval: String,
    /// How many `interval`s the window spans.
    pub interval_num: u32,
    /// Allowed amount in the window.
    pub limit: u32,
}

/// `GET /fapi/v1/premiumIndex?symbol=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PremiumIndexWire {
    /// `BTCUSDT`.
    pub symbol: String,
    /// Mark price (used for PnL and liquidation).
    pub mark_price: WireDecimal,
    /// Index price (spot composite).
    pub index_price: WireDecimal,
    /// Funding rate of the running period.
    pub last_funding_rate: WireDecimal,
    /// Next funding settlement.
    pub next_funding_time: WireMillis,
    /// Interest rate component, when sent.
    #[serde(default)]
    pub interest_rate: Option<WireDecimal>,
    /// Server time of the values.
    pub time: WireMillis,
}

/// `GET /fapi/v1/openInterest?symbol=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInterestWire {
    /// `BTCUSDT`.
    pub symbol: String,
    /// Open interest in base-asset units.
    pub open_interest: WireDecimal,
    /// Server time of the value.
    pub time: WireMillis,
}

/// A positive decimal or `None`: the Binance family publishes `"0"` for "no limit".
fn nonzero(value: Option<WireDecimal>) -> Option<Decimal> {
    value
        .map(|v| v.0)
        .filter(|v| v.is_sign_positive() && !v.is_zero())
}

/// Translates one raw `exchangeInfo.symbols[]` entry into [`SymbolRules`]. Unknown
/// filter types are ignored; a malformed known filter is an error for this symbol.
pub fn symbol_rules(raw: &RawValue) -> Result<SymbolRules, String> {
    let wire: SymbolWire =
        serde_json::from_str(raw.get()).map_err(|e| format!("symbol entry: {e}"))?;
    let mut rules = SymbolRules::new(
        Symbol(wire.symbol.clone()),
        wire.status.unwrap_or_else(|| "UNKNOWN".to_string()),
    );
    for (index, filter) in wire.filters.iter().enumerate() {
        let Ok(head) = serde_json::from_str::<FilterHeadWire>(filter.get()) else {
            continue; // no filterType: nothing we could apply
        };
        let context = |e: serde_json::Error| format!("filter {index} ({}): {e}", head.filter_type);
        match head.filter_type.as_str() {
            "PRICE_FILTER" => {
                let f: PriceFilterWire = serde_json::from_str(filter.get()).map_err(context)?;
                rules.min_price = nonzero(f.min_price);
                rules.max_price = nonzero(f.max_price);
                rules.tick_size = nonzero(f.tick_size);
            }
            "LOT_SIZE" => {
                let f: LotSizeWire = serde_json::from_str(filter.get()).map_err(context)?;
                rules.min_qty = nonzero(f.min_qty);
                rules.max_qty = nonzero(f.max_qty);
                rules.step_size = nonzero(f.step_size);
            }
            "MARKET_LOT_SIZE" => {
                let f: LotSizeWire = serde_json::from_str(filter.get()).map_err(context)?;
                rules.market_min_qty = nonzero(f.min_qty);
                rules.market_max_qty = nonzero(f.max_qty);
                rules.market_step_size = nonzero(f.step_size);
            }
            "MIN_NOTIONAL" | "NOTIONAL" => {
                let f: MinNotionalWire = serde_json::from_str(filter.get()).map_err(context)?;
                rules.min_notional = nonzero(f.notional.or(f.min_notional));
            }
            _ => {}
        }
    }
    Ok(rules)
}

/// Translates an `exchangeInfo` body. Symbols that cannot be read are listed in
/// [`ExchangeInfo::skipped`] with the reason instead of failing the whole listing;
/// unreadable rate limit entries are dropped.
pub fn exchange_info(body: &[u8]) -> Result<ExchangeInfo, String> {
    let wire: ExchangeInfoWire = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut symbols = BTreeMap::new();
    let mut skipped = Vec::new();
    for (index, raw) in wire.symbols.iter().enumerate() {
        match symbol_rules(raw) {
            Ok(rules) => {
                symbols.insert(rules.symbol.clone(), rules);
            }
            Err(reason) => {
                let name = serde_json::from_str::<FilterlessSymbol>(raw.get())
                    .map(|s| s.symbol)
                    .unwrap_or_else(|_| format!("symbols[{index}]"));
                skipped.push(SkippedSymbol {
                    symbol: name,
                    reason,
                });
            }
        }
    }
    let rate_limits = wire
        .rate_limits
        .iter()
        .filter_map(|raw| serde_json::from_str::<RateLimitWire>(raw.get()).ok())
        .map(|r| RateLimit {
            kind: r.rate_limit_type,
            interval: r.interval,
            interval_num: r.interval_num,
            limit: r.limit,
        })
        .collect();
    Ok(ExchangeInfo {
        server_time: wire.server_time.map(|t| t.0),
        symbols,
        rate_limits,
        skipped,
    })
}

/// Just the name of a symbol entry, to report a skipped one.
#[derive(Deserialize)]
struct FilterlessSymbol {
    symbol: String,
}

/// Names of the kline cells vibex reads, by position.
const KLINE_CELLS: [&str; 7] = [
    "openTime",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "closeTime",
];

/// Translates one kline row (`[openTime, "open", "high", "low", "close", "volume",
/// closeTime, ...]`) into a [`Candle`]. Extra cells are ignored; missing or malformed
/// cells and impossible bars (high below low, a price outside `[low, high]`,
/// negative volume, close before open) are errors naming the cell.
pub fn candle_from_row(row: &RawValue) -> Result<Candle, String> {
    let cells: Vec<Box<RawValue>> = serde_json::from_str(row.get())
        .map_err(|_| format!("expected an array, got {}", snippet(row.get())))?;
    if cells.len() < KLINE_CELLS.len() {
        return Err(format!(
            "expected at least {} cells, got {}",
            KLINE_CELLS.len(),
            cells.len()
        ));
    }
    let cell = |i: usize| -> Result<&str, String> {
        cells
            .get(i)
            .map(|c| c.get())
            .ok_or_else(|| format!("cell {i} is missing"))
    };
    let name = |i: usize| KLINE_CELLS.get(i).copied().unwrap_or("?");
    let time =
        |i: usize| parse_millis(cell(i)?).map_err(|e| format!("cell {i} ({}): {e}", name(i)));
    let dec =
        |i: usize| parse_decimal(cell(i)?).map_err(|e| format!("cell {i} ({}): {e}", name(i)));
    let candle = Candle {
        open_time: time(0)?,
        open: dec(1)?,
        high: dec(2)?,
        low: dec(3)?,
        close: dec(4)?,
        volume: dec(5)?,
        close_time: time(6)?,
    };
    if candle.high < candle.low {
        return Err(format!("high {} is below low {}", candle.high, candle.low));
    }
    for (label, price) in [("open", candle.open), ("close", candle.close)] {
        if price < candle.low || price > candle.high {
            return Err(format!(
                "{label} {price} is outside [low {}, high {}]",
                candle.low, candle.high
            ));
        }
    }
    if candle.volume.is_sign_negative() && !candle.volume.is_zero() {
        return Err(format!("volume {} is negative", candle.volume));
    }
    if candle.close_time < candle.open_time {
        return Err("closeTime is before openTime".to_string());
    }
    Ok(candle)
}

/// Translates a klines body (an array of rows, oldest first). Errors name the row
/// index; rows must be in increasing `openTime` order.
pub fn candles(body: &[u8]) -> Result<Vec<Candle>, String> {
    let rows: Vec<Box<RawValue>> =
        serde_json::from_slice(body).map_err(|e| format!("expected an array of rows: {e}"))?;
    let mut out: Vec<Candle> = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let candle = candle_from_row(row).map_err(|e| format!("row {index}: {e}"))?;
        if let Some(previous) = out.last() {
            if candle.open_time <= previous.open_time {
                return Err(format!(
                    "row {index}: openTime {} is not after the previous row's {}",
                    candle.open_time, previous.open_time
                ));
            }
        }
        out.push(candle);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn decimals_are_read_from_text_strings_or_numbers() {
        assert_eq!(parse_decimal(r#""0.01634790""#).unwrap(), dec!(0.01634790));
        assert_eq!(parse_decimal("0.1").unwrap(), dec!(0.1));
        // 17 significant digits: an f64 would not keep them.
        assert_eq!(
            parse_decimal("12345678.123456789").unwrap(),
            dec!(12345678.123456789)
        );
        assert_eq!(parse_decimal("1e-8").unwrap(), dec!(0.00000001));
        assert_eq!(parse_decimal("42").unwrap(), dec!(42));
        assert!(parse_decimal(r#""""#).is_err());
        assert!(parse_decimal(r#""abc""#).is_err());
        assert!(parse_decimal("null").is_err());
        assert!(parse_decimal("[1]").is_err());
    }

    #[test]
    fn times_are_whole_milliseconds() {
        let t = parse_millis("1589437530011").unwrap();
        assert_eq!(t.timestamp_millis(), 1_589_437_530_011);
        assert_eq!(
            parse_millis(r#""1589437530011""#)
                .unwrap()
                .timestamp_millis(),
            1_589_437_530_011
        );
        assert!(parse_millis("1.5").is_err());
        assert!(parse_millis(r#""soon""#).is_err());
    }

    const EXCHANGE_INFO: &str = r#"{
      "timezone": "UTC",
      "serverTime": 1717000000000,
      "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "BROKEN"}
      ],
      "exchangeFilters": [],
      "symbols": [
        {
          "symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL",
          "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
          "pricePrecision": 2, "quantityPrecision": 4,
          "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
            {"filterType": "SOMETHING_NEW", "notional": {"nested": true}}
          ]
        },
        {"symbol": "NOFILTERUSDT", "status": "PENDING_TRADING"},
        {"symbol": "BADUSDT", "status": "TRADING",
         "filters": [{"filterType": "LOT_SIZE", "stepSize": "one", "minQty": "1", "maxQty": "9"}]},
        {"status": "TRADING"}
      ]
    }"#;

    #[test]
    fn exchange_info_keeps_filters_and_skips_what_it_cannot_read() {
        let info = exchange_info(EXCHANGE_INFO.as_bytes()).unwrap();
        let btc = info.symbols.get(&Symbol("BTCUSDT".into())).unwrap();
        assert_eq!(btc.status, "TRADING");
        assert_eq!(btc.tick_size, Some(dec!(0.1)));
        assert_eq!(btc.min_price, Some(dec!(556.8)));
        assert_eq!(btc.step_size, Some(dec!(0.001)));
        assert_eq!(btc.min_qty, Some(dec!(0.001)));
        assert_eq!(btc.max_qty, Some(dec!(1000)));
        assert_eq!(btc.market_max_qty, Some(dec!(120)));
        assert_eq!(btc.min_notional, Some(dec!(5)));

        let bare = info.symbols.get(&Symbol("NOFILTERUSDT".into())).unwrap();
        assert_eq!(bare.tick_size, None);
        assert_eq!(bare.min_notional, None);
        assert!(!bare.is_trading());

        assert_eq!(info.skipped.len(), 2);
        assert_eq!(info.skipped[0].symbol, "BADUSDT");
        assert!(
            info.skipped[0].reason.contains("LOT_SIZE"),
            "{:?}",
            info.skipped
        );
        assert_eq!(info.skipped[1].symbol, "symbols[3]");

        assert_eq!(info.rate_limits.len(), 2);
        assert_eq!(info.request_weight_per_minute(), Some(2400));
        assert_eq!(
            info.server_time.map(|t| t.timestamp_millis()),
            Some(1_717_000_000_000)
        );
    }

    #[test]
    fn kline_rows_become_candles() {
        let body = br#"[
          [1717000000000, "67890.1", "67950.0", "67800.5", "67900.0", "123.456", 1717000299999, "8381234.56", 1523, "60.1", "4080000.1", "0"],
          [1717000300000, "67900.0", "67920.0", "67880.0", "67910.2", "10", 1717000599999, "679102", 100, "5", "339551", "0"]
        ]"#;
        let candles = candles(body).unwrap();
        assert_eq!(candles.len(), 2);
        assert_eq!(candles[0].open, dec!(67890.1));
        assert_eq!(candles[0].volume, dec!(123.456));
        assert_eq!(candles[0].open_time.timestamp_millis(), 1_717_000_000_000);
        assert_eq!(candles[0].close_time.timestamp_millis(), 1_717_000_299_999);
        assert_eq!(candles[1].close, dec!(67910.2));
    }

    #[test]
    fn a_bad_kline_cell_is_named_with_its_row() {
        let body = br#"[
          [1717000000000, "67890.1", "67950.0", "67800.5", "67900.0", "123.456", 1717000299999],
          [1717000300000, "67900.0", "NaN?", "67880.0", "67910.2", "10", 1717000599999]
        ]"#;
        let err = candles(body).unwrap_err();
        assert!(err.starts_with("row 1: cell 2 (high):"), "{err}");

        let short = br#"[[1717000000000, "1", "1", "1"]]"#;
        assert!(candles(short).unwrap_err().contains("at least 7 cells"));

        let inverted = br#"[[1717000000000, "1", "1", "2", "1", "0", 1717000299999]]"#;
        assert!(candles(inverted).unwrap_err().contains("below low"));

        let not_rows = br#"{"code": 0}"#;
        assert!(candles(not_rows).is_err());
    }

    #[test]
    fn premium_index_reads_strings_and_numbers() {
        let body = r#"{"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":11781.80495970,
            "estimatedSettlePrice":"11781.16138815","lastFundingRate":"0.00038246",
            "interestRate":"0.00010000","nextFundingTime":1597392000000,"time":1597370495002}"#;
        let wire: PremiumIndexWire = serde_json::from_str(body).unwrap();
        assert_eq!(wire.mark_price.0, dec!(11793.63104562));
        assert_eq!(wire.index_price.0, dec!(11781.80495970));
        assert_eq!(wire.last_funding_rate.0, dec!(0.00038246));
        assert_eq!(
            wire.next_funding_time.0.timestamp_millis(),
            1_597_392_000_000
        );
    }

    #[test]
    fn unknown_filter_shapes_do_not_matter() {
        let entry = raw(
            r#"{"symbol":"XUSDT","status":"TRADING","filters":[{"filterType":"NEW","tickSize":[1]},{"noType":1}]}"#,
        );
        let rules = symbol_rules(&entry).unwrap();
        assert_eq!(rules.tick_size, None);
    }
}
