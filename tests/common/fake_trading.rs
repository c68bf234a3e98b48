//! The trading half of the loopback fake venue: signed accounts, one-way positions,
//! MARKET / STOP_MARKET / TAKE_PROFIT_MARKET orders, the user data stream and fault
//! injection, as strict as AsterDEX so that a client's mistakes show up in tests.
//!
//! It runs inside [`FakeVenue`] (same server, port, clock and request-weight counter as
//! the public market data); this module holds the exchange state ([`Exchange`], a pure
//! synchronous core driven with the fake's time and a price snapshot), the signed routes,
//! the user-stream WebSocket session and the test hooks (`impl FakeVenue` below).
//!
//! Entry points for tests: [`FakeVenue::add_hmac_account`],
//! [`FakeVenue::add_wallet_account`], then the client's requests; the hooks
//! [`FakeVenue::positions`], [`FakeVenue::open_orders`], [`FakeVenue::orders`],
//! [`FakeVenue::order_count`], [`FakeVenue::balance`], [`FakeVenue::trades`],
//! [`FakeVenue::income`], [`FakeVenue::close_position_by_hand`],
//! [`FakeVenue::open_position_by_hand`], [`FakeVenue::place_order_by_hand`],
//! [`FakeVenue::charge_funding`], [`FakeVenue::set_taker_fee`],
//! [`FakeVenue::set_hedge_mode`], [`FakeVenue::drop_user_streams`],
//! [`FakeVenue::expire_listen_keys`], [`FakeVenue::refuse_user_streams`],
//! [`FakeVenue::user_stream_count`], [`FakeVenue::user_streams_opened`]; faults:
//! [`FakeVenue::inject`] with [`Fault`], [`FakeVenue::hold_order_replies`],
//! [`FakeVenue::accepted_while_held`] (in `fake_venue.rs`, next to the clock and
//! [`FakeVenue::set_clock_offset_ms`]).
//!
//! Signed routes (any of `/fapi/v1/`, `/fapi/v2/` signed with HMAC, or `/fapi/v3/` signed
//! by a wallet; the same handlers): `order` (POST/GET/DELETE), `allOpenOrders` (DELETE),
//! `openOrders`, `allOrders`, `userTrades`, `income`, `account`, `positionRisk`,
//! `balance` (GET), `leverage`, `marginType` (POST), `positionSide/dual` (GET/POST),
//! `listenKey` (POST/PUT/DELETE); WebSocket `GET /ws/{listenKey}`.
//!
//! Invariants:
//! - Every signed request is authenticated before anything else happens: HMAC requests
//!   need a known `X-MBX-APIKEY` (401 -2015), `signature` as the last parameter of the
//!   exact bytes sent (query string, form body, or query + body concatenated as Binance
//!   does) and the lowercase-hex HMAC-SHA256 of the bytes before `&signature=` (400
//!   -1022); wallet requests need `user`, `signer`, `nonce` (µs, within 5 s of the fake's
//!   clock) and a signature that recovers the signer registered for that user.
//!   `timestamp` is required and must satisfy `timestamp < serverTime + 1000` and
//!   `serverTime - timestamp <= recvWindow` (default 5000, at most 60000), else -1021.
//! - A bad request is answered with the venue's error JSON and HTTP status, never a
//!   panic; the hooks (test-side) panic on an unknown account, which is a test bug.
//! - Money, prices and quantities are `Decimal`, sent as strings as the venue does.
//! - One-way mode: one signed position per symbol (`positionSide` BOTH). A MARKET order
//!   fills at once, completely, at the symbol's current price (the walk or
//!   `set_price`), paying the taker fee (0.04 % unless set) on the notional.
//! - Conditional orders rest until the price crosses `stopPrice` (SELL TAKE_PROFIT_MARKET
//!   when price >= stop, SELL STOP_MARKET when price <= stop, mirrored for BUY); they are
//!   evaluated on every request, every 100 ms, on `set_price` and on each by-hand action.
//!   Closing a position never cancels the other protection order: orphans stay open,
//!   and a non-reduce-only orphan that triggers opens a new position, as on the venue.
//! - `newClientOrderId` is unique among OPEN orders only: a filled order's id can be
//!   sent again, so a client must query before it retries.
//! - Order ids, trade ids and income `tranId`s increase across all accounts.
//! - Wire details as Binance: positionRisk / ACCOUNT_UPDATE print `marginType` in
//!   lowercase (`cross`, `isolated`); an ACK reply to a MARKET order says NEW with
//!   nothing executed (it has filled); a triggered conditional order's events carry
//!   `o: MARKET` and `ot: <original type>`; a reduce-only MARKET larger than the
//!   position fills the position's size (FILLED, `executedQty < origQty`).
//!
//! Not modeled: LIMIT / STOP / TAKE_PROFIT / TRAILING_STOP_MARKET orders (refused -1116
//! with a note), `batchOrders`, hedge-mode trading (with hedge mode on every order is
//! refused -4061), partial fills, order-book depth and slippage (mark = last = fill
//! price; `workingType` is validated but both prices are the same), liquidation (a
//! `liquidationPrice` is reported with a simple one-position formula, 0.4 %
//! maintenance, but nothing is ever liquidated), leverage brackets beyond a small
//! table, isolated margin transfers (an isolated position's margin is
//! `|amount| * entry / leverage`), multi-assets mode, nonce replay, the intermediate
//! EXPIRED event Binance emits when a conditional order triggers, and listen-key
//! expiry other than [`FakeVenue::expire_listen_keys`] or 60 min without keepalive.

// Each test binary uses a different part of this support module.
#![allow(dead_code)]

use super::{listed_rules, symbol_rules, FakeVenue, Prices, Reply, Shared, SymbolRules};
use actix::{Actor, ActorContext, Addr, Handler, Message, StreamHandler};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use hmac::{Hmac, Mac};
use rand::distr::{Alphanumeric, SampleString};
use rust_decimal::prelude::Signed;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::str::FromStr;

/// Leverage of a symbol nobody has set one for.
const DEFAULT_LEVERAGE: u32 = 20;
/// Default taker fee, 0.04 %.
const DEFAULT_TAKER_FEE: Decimal = Decimal::from_parts(4, 0, 0, false, 4);
/// Maintenance margin rate used for the reported liquidation price (0.4 %).
const MAINT_RATE: Decimal = Decimal::from_parts(4, 0, 0, false, 3);
/// Default and largest `recvWindow`, ms.
const DEFAULT_RECV_WINDOW: i64 = 5_000;
const MAX_RECV_WINDOW: i64 = 60_000;
/// How far a wallet request's `nonce` may be from the server clock, µs.
const NONCE_TOLERANCE_US: i64 = 5_000_000;
/// A listen key lives this long after its last keepalive.
const LISTEN_KEY_TTL_MS: i64 = 60 * 60_000;
/// MAX_NUM_ALGO_ORDERS published in exchangeInfo (open conditional orders per symbol).
const MAX_ALGO_ORDERS: usize = 10;
/// MAX_NUM_ORDERS published in exchangeInfo.
const MAX_OPEN_ORDERS: usize = 200;

// ---------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------

/// A fake account, in the order the accounts were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FakeAccountId(pub usize);

/// A scripted misbehaviour for [`FakeVenue::inject`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 `-1003` with `Retry-After`; the request is not executed.
    RateLimited { retry_after_secs: u64 },
    /// 418 `-1003` with `Retry-After`, and every request (any path) answers 418 until the
    /// ban ends; the request is not executed.
    Banned { retry_after_secs: u64 },
    /// 500 `-1001`; the request is not executed.
    ServerError,
    /// The request IS executed (an order is placed and filled), the answer is a 503 with
    /// an HTML body: the outcome is unknown to the client.
    AcceptThen503,
    /// The request IS executed, the answer comes `secs` later (the client times out).
    AcceptThenStall { secs: u64 },
    /// The venue's error with that code, its message and HTTP status (e.g. -1021,
    /// -2019, -1111, -4164); the request is not executed.
    Code(i64),
}

/// Order side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
    fn parse(text: &str) -> Option<Side> {
        match text {
            "BUY" => Some(Side::Buy),
            "SELL" => Some(Side::Sell),
            _ => None,
        }
    }
    /// +1 for BUY, -1 for SELL: the sign of the position change.
    fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }
}

/// The order types the fake models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderType {
    Market,
    StopMarket,
    TakeProfitMarket,
}

impl OrderType {
    fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "MARKET",
            OrderType::StopMarket => "STOP_MARKET",
            OrderType::TakeProfitMarket => "TAKE_PROFIT_MARKET",
        }
    }
    fn is_conditional(self) -> bool {
        self != OrderType::Market
    }
}

/// Order status as the venue names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    New,
    Filled,
    Canceled,
    Expired,
}

impl OrderStatus {
    fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Canceled => "CANCELED",
            OrderStatus::Expired => "EXPIRED",
        }
    }
}

/// Cross or isolated margin for a symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarginType {
    Crossed,
    Isolated,
}

impl MarginType {
    /// How positionRisk / ACCOUNT_UPDATE print it (lowercase, as Binance does).
    fn wire(self) -> &'static str {
        match self {
            MarginType::Crossed => "cross",
            MarginType::Isolated => "isolated",
        }
    }
}

/// Which price a conditional order watches. The fake's mark and contract prices are
/// the same, so both behave alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkingType {
    MarkPrice,
    ContractPrice,
}

impl WorkingType {
    fn as_str(self) -> &'static str {
        match self {
            WorkingType::MarkPrice => "MARK_PRICE",
            WorkingType::ContractPrice => "CONTRACT_PRICE",
        }
    }
}

/// An order as the exchange website would show it.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeOrder {
    pub order_id: i64,
    pub symbol: &'static str,
    pub client_order_id: String,
    pub side: Side,
    pub order_type: OrderType,
    pub status: OrderStatus,
    /// Zero for a `closePosition` order.
    pub orig_qty: Decimal,
    pub executed_qty: Decimal,
    pub avg_price: Decimal,
    pub cum_quote: Decimal,
    /// Zero for a MARKET order.
    pub stop_price: Decimal,
    pub reduce_only: bool,
    pub close_position: bool,
    pub working_type: WorkingType,
    /// Placed at (fake server time, ms).
    pub time: i64,
    pub update_time: i64,
}

/// An open position (one-way mode) as the website shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct FakePosition {
    pub symbol: &'static str,
    /// Signed: positive long, negative short.
    pub amount: Decimal,
    pub entry_price: Decimal,
    pub mark_price: Decimal,
    pub unrealized_pnl: Decimal,
    pub leverage: u32,
    pub margin_type: MarginType,
    pub update_time: i64,
}

/// One fill.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeTrade {
    pub id: i64,
    pub order_id: i64,
    pub symbol: &'static str,
    pub side: Side,
    pub price: Decimal,
    pub qty: Decimal,
    pub quote_qty: Decimal,
    /// Paid, positive, in USDT.
    pub commission: Decimal,
    pub realized_pnl: Decimal,
    pub time: i64,
}

/// One income row (`REALIZED_PNL`, `COMMISSION`, `FUNDING_FEE`).
#[derive(Clone, Debug, PartialEq)]
pub struct FakeIncome {
    pub tran_id: i64,
    pub symbol: &'static str,
    pub income_type: &'static str,
    /// Signed: what the wallet gained (negative for a fee).
    pub income: Decimal,
    pub time: i64,
    pub trade_id: Option<i64>,
}

/// A conditional or market order placed by hand on the website
/// ([`FakeVenue::place_order_by_hand`]).
#[derive(Clone, Debug)]
pub struct HandOrder {
    pub symbol: String,
    pub side: Side,
    pub order_type: OrderType,
    /// `None` with `close_position`.
    pub quantity: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub reduce_only: bool,
    pub close_position: bool,
}

// ---------------------------------------------------------------------------------
// Venue errors
// ---------------------------------------------------------------------------------

/// The venue's answer for an error code: HTTP status and message.
pub(super) fn code_reply(code: i64) -> Reply {
    let (status, msg) = match code {
        -1000 => (400, "An unknown error occured while processing the request."),
        -1001 => (
            500,
            "Internal error; unable to process your request. Please try again.",
        ),
        -1003 => (
            429,
            "Too many requests; please use the websocket for live updates to avoid polling the API.",
        ),
        -1021 => (400, "Timestamp for this request is outside of the recvWindow."),
        -1022 => (400, "Signature for this request is not valid."),
        -1101 => (400, "Duplicate values for a parameter detected."),
        -1111 => (400, "Precision is over the maximum defined for this asset."),
        -1116 => (400, "Invalid orderType."),
        -1117 => (400, "Invalid side."),
        -1121 => (400, "Invalid symbol."),
        -1125 => (400, "This listenKey does not exist."),
        -1131 => (400, "recvWindow must be less than 60000"),
        -2011 => (400, "Unknown order sent."),
        -2013 => (400, "Order does not exist."),
        -2014 => (401, "API-key format invalid."),
        -2015 => (401, "Invalid API-key, IP, or permissions for action."),
        -2019 => (400, "Margin is insufficient."),
        -2021 => (400, "Order would immediately trigger."),
        -2022 => (400, "ReduceOnly Order is rejected."),
        -2027 => (
            400,
            "Exceeded the maximum allowable position at current leverage.",
        ),
        -4003 => (400, "Quantity less than or equal to zero."),
        -4004 => (400, "Quantity less than min quantity."),
        -4005 => (400, "Quantity greater than max quantity."),
        -4013 => (400, "Price less than min price."),
        -4016 => (400, "Price greater than max price."),
        -4028 => (400, "Leverage is not valid."),
        -4045 => (400, "Reach max stop order limit."),
        -4046 => (400, "No need to change margin type."),
        -4047 => (
            400,
            "Margin type cannot be changed if there exists open orders.",
        ),
        -4048 => (
            400,
            "Margin type cannot be changed if there exists position.",
        ),
        -4059 => (400, "No need to change position side."),
        -4061 => (400, "Order's position side does not match user's setting."),
        -4067 => (
            400,
            "Position side cannot be changed if there exists open orders.",
        ),
        -4068 => (
            400,
            "Position side cannot be changed if there exists position.",
        ),
        -4116 => (400, "ClientOrderId is duplicated."),
        -4130 => (
            400,
            "An open stop or take profit order with GTE and closePosition in the direction is existing.",
        ),
        -4136 => (400, "Target strategy invalid for orderType MARKET,closePosition true"),
        -4137 => (400, "Quantity must be zero with closePosition equals true"),
        -4164 => (
            400,
            "Order's notional must be no smaller than 5.0 (unless you choose reduce only).",
        ),
        _ => (400, "An unknown error occured while processing the request."),
    };
    Reply::venue_error(status, code, msg)
}

fn not_required(param: &str) -> Reply {
    Reply::venue_error(
        400,
        -1106,
        &format!("Parameter '{param}' sent when not required."),
    )
}

fn illegal(param: &str, range: &str) -> Reply {
    Reply::venue_error(
        400,
        -1100,
        &format!("Illegal characters found in parameter '{param}'; legal range is '{range}'."),
    )
}

const DECIMAL_RANGE: &str = r"^([0-9]{1,20})(\.[0-9]{1,20})?$";
const INTEGER_RANGE: &str = "^[0-9]{1,20}$";
const CLIENT_ID_RANGE: &str = r"^[\.A-Z\:/a-z0-9_-]{1,36}$";

// ---------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------

/// The decoded parameters of a request, query first then body, in the order sent.
struct Params {
    list: Vec<(String, String)>,
}

impl Params {
    /// Decodes query and form body; a parameter sent twice is refused (-1101).
    fn parse(query: &str, body: &str) -> Result<Params, Reply> {
        let mut list: Vec<(String, String)> = Vec::new();
        for part in [query, body] {
            for (k, v) in url::form_urlencoded::parse(part.as_bytes()).into_owned() {
                if list.iter().any(|(known, _)| *known == k) {
                    return Err(code_reply(-1101));
                }
                list.push((k, v));
            }
        }
        Ok(Params { list })
    }

    fn from_pairs(pairs: &[(&str, String)]) -> Params {
        Params {
            list: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
        }
    }

    /// A non-empty value.
    fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn require(&self, name: &str) -> Result<&str, Reply> {
        self.get(name).ok_or_else(|| Reply::mandatory(name))
    }

    fn decimal(&self, name: &str) -> Result<Option<Decimal>, Reply> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return Err(illegal(name, DECIMAL_RANGE));
        }
        Decimal::from_str(text)
            .map(Some)
            .map_err(|_| illegal(name, DECIMAL_RANGE))
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, Reply> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        if text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(illegal(name, INTEGER_RANGE));
        }
        text.parse::<i64>()
            .map(Some)
            .map_err(|_| illegal(name, INTEGER_RANGE))
    }

    fn boolean(&self, name: &str) -> Result<bool, Reply> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Reply::bad_value(name)),
        }
    }

    /// `limit` between 1 and `max`, `default` when absent.
    fn limit(&self, default: usize, max: usize) -> Result<usize, Reply> {
        match self.integer("limit")? {
            None => Ok(default),
            Some(l) if l >= 1 && l as usize <= max => Ok(l as usize),
            Some(_) => Err(Reply::bad_value("limit")),
        }
    }

    fn symbol(&self) -> Result<Option<&'static SymbolRules>, Reply> {
        match self.get("symbol") {
            None => Ok(None),
            Some(s) => symbol_rules(s).map(Some).ok_or_else(|| code_reply(-1121)),
        }
    }

    fn required_symbol(&self) -> Result<&'static SymbolRules, Reply> {
        self.symbol()?.ok_or_else(|| Reply::mandatory("symbol"))
    }
}

// ---------------------------------------------------------------------------------
// Signatures and time
// ---------------------------------------------------------------------------------

/// Lowercase hex of HMAC-SHA256(secret, payload).
fn hmac_hex(secret: &str, payload: &str) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(payload.as_bytes());
    let bytes = mac.finalize().into_bytes();
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Splits the signed bytes from the signature: `signature` must be the last parameter
/// of the body (or of the query when the body is empty); the signed text is the query
/// string concatenated with the body (Binance's `totalParams`) up to `&signature=`.
fn split_signature<'a>(query: &'a str, body: &'a str) -> Option<(String, &'a str)> {
    let (head, last) = if body.is_empty() {
        ("", query)
    } else {
        (query, body)
    };
    let start = if last.starts_with("signature=") {
        0
    } else {
        last.rfind("&signature=")? + 1
    };
    let value = &last[start + "signature=".len()..];
    if value.contains('&') || value.is_empty() {
        return None;
    }
    let before = &last[..start.saturating_sub(1)];
    Some((format!("{head}{before}"), value))
}

/// `timestamp` and `recvWindow` against the server clock `now` (ms).
fn check_timestamp(params: &Params, now: i64) -> Result<(), Reply> {
    let timestamp = params
        .integer("timestamp")?
        .ok_or_else(|| Reply::mandatory("timestamp"))?;
    let window = params.integer("recvWindow")?.unwrap_or(DEFAULT_RECV_WINDOW);
    if window > MAX_RECV_WINDOW {
        return Err(code_reply(-1131));
    }
    if timestamp >= now + 1000 {
        return Err(Reply::venue_error(
            400,
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        ));
    }
    if now - timestamp > window {
        return Err(code_reply(-1021));
    }
    Ok(())
}

/// Wallet-signer verification: rebuilds the JSON from the business parameters (all but
/// `nonce`, `user`, `signer`, `signature`), hashes it with user, signer and nonce
/// (the crate's `sign` module: ABI-encode, keccak256), recovers the address that made
/// the EIP-191 signature, and compares it with `signer`.
fn verify_wallet_signature(
    params: &Params,
    user: &str,
    signer: &str,
    nonce: u64,
    signature: &str,
) -> Result<(), Reply> {
    use vibex::exchange::aster::sign::{recover_personal, wallet_hash, wallet_json, Address};
    let business: Vec<(String, String)> = params
        .list
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "nonce" | "user" | "signer" | "signature"))
        .cloned()
        .collect();
    let user = Address::from_str(user).map_err(|_| Reply::mandatory("user"))?;
    let signer = Address::from_str(signer).map_err(|_| Reply::mandatory("signer"))?;
    let hash = wallet_hash(&wallet_json(&business), &user, &signer, nonce);
    match recover_personal(&hash, signature) {
        Ok(recovered) if recovered == signer => Ok(()),
        _ => Err(code_reply(-1022)),
    }
}

// ---------------------------------------------------------------------------------
// Exchange state
// ---------------------------------------------------------------------------------

/// How an account signs.
enum Auth {
    Hmac {
        api_key: String,
        api_secret: String,
    },
    /// Addresses lowercased.
    Wallet {
        user: String,
        signer: String,
    },
}

#[derive(Clone, Copy)]
struct SymbolSettings {
    leverage: u32,
    margin_type: MarginType,
}

impl Default for SymbolSettings {
    fn default() -> Self {
        SymbolSettings {
            leverage: DEFAULT_LEVERAGE,
            margin_type: MarginType::Crossed,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Position {
    amount: Decimal,
    entry: Decimal,
    /// Accumulated realized PnL (ACCOUNT_UPDATE `cr`).
    realized: Decimal,
    update_time: i64,
}

struct ListenKey {
    key: String,
    expires_at: i64,
}

struct Account {
    id: FakeAccountId,
    auth: Auth,
    wallet: Decimal,
    hedge_mode: bool,
    settings: HashMap<&'static str, SymbolSettings>,
    positions: HashMap<&'static str, Position>,
    orders: Vec<FakeOrder>,
    trades: Vec<FakeTrade>,
    income: Vec<FakeIncome>,
    listen_key: Option<ListenKey>,
    /// User-stream WebSockets upgraded so far ([`FakeVenue::user_streams_opened`]).
    streams_opened: usize,
    order_minute: i64,
    orders_in_minute: u32,
}

impl Account {
    fn settings(&self, symbol: &str) -> SymbolSettings {
        self.settings.get(symbol).copied().unwrap_or_default()
    }

    fn position(&self, symbol: &str) -> Position {
        self.positions.get(symbol).copied().unwrap_or_default()
    }

    fn open_orders(&self) -> impl Iterator<Item = &FakeOrder> {
        self.orders.iter().filter(|o| o.status == OrderStatus::New)
    }

    /// Margin held by an isolated position.
    fn isolated_margin(&self, symbol: &str) -> Decimal {
        let s = self.settings(symbol);
        let p = self.position(symbol);
        if s.margin_type == MarginType::Isolated && !p.amount.is_zero() {
            (p.amount.abs() * p.entry / Decimal::from(s.leverage)).round_dp(8)
        } else {
            Decimal::ZERO
        }
    }

    /// Wallet balance minus the isolated margins.
    fn cross_wallet(&self) -> Decimal {
        let isolated: Decimal = self.positions.keys().map(|s| self.isolated_margin(s)).sum();
        self.wallet - isolated
    }

    fn totals(&self, prices: &Prices) -> Totals {
        let mut t = Totals {
            cross_wallet: self.cross_wallet(),
            ..Totals::default()
        };
        for (symbol, p) in &self.positions {
            if p.amount.is_zero() {
                continue;
            }
            let s = self.settings(symbol);
            let mark = prices.get(symbol).copied().unwrap_or(p.entry);
            let up = p.amount * (mark - p.entry);
            let im = p.amount.abs() * mark / Decimal::from(s.leverage);
            t.unrealized += up;
            t.initial_margin += im;
            t.maint_margin += p.amount.abs() * mark * MAINT_RATE;
            if s.margin_type == MarginType::Crossed {
                t.cross_unrealized += up;
                t.cross_initial += im;
            }
        }
        t.available = t.cross_wallet + t.cross_unrealized - t.cross_initial;
        t
    }

    /// Can `qty` on `side` be filled at `price`? The part that opens or grows a position
    /// needs its initial margin plus the fee out of the available balance (what closing
    /// the other part releases counts).
    fn margin_check(
        &self,
        symbol: &'static str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        prices: &Prices,
    ) -> Result<(), i64> {
        let p = self.position(symbol);
        let s = self.settings(symbol);
        let lev = Decimal::from(s.leverage);
        let closing = if p.amount.is_zero() || p.amount.signum() == side.sign() {
            Decimal::ZERO
        } else {
            qty.min(p.amount.abs())
        };
        let opening = qty - closing;
        if opening.is_zero() {
            return Ok(());
        }
        let new_amount = p.amount + side.sign() * qty;
        if new_amount.abs() * price > max_notional(s.leverage) {
            return Err(-2027);
        }
        let released = match s.margin_type {
            MarginType::Crossed => closing * price / lev,
            MarginType::Isolated => {
                closing * p.entry / lev + closing * (price - p.entry) * p.amount.signum()
            }
        };
        let available = self.totals(prices).available + released;
        let need = opening * price / lev + qty * price * fee;
        if need > available {
            Err(-2019)
        } else {
            Ok(())
        }
    }

    fn liquidation_price(&self, symbol: &str, rules: &SymbolRules) -> Decimal {
        let p = self.position(symbol);
        if p.amount.is_zero() {
            return Decimal::ZERO;
        }
        let q = p.amount.abs();
        let wb = match self.settings(symbol).margin_type {
            MarginType::Crossed => self.cross_wallet(),
            MarginType::Isolated => self.isolated_margin(symbol),
        };
        let lp = if p.amount.is_sign_positive() {
            (q * p.entry - wb) / (q * (Decimal::ONE - MAINT_RATE))
        } else {
            (wb + q * p.entry) / (q * (Decimal::ONE + MAINT_RATE))
        };
        lp.max(Decimal::ZERO).round_dp(rules.price_scale)
    }

    /// Counts an order request in this minute; the value for `X-MBX-ORDER-COUNT-1M`.
    fn count_order(&mut self, now: i64) -> u32 {
        let minute = now.div_euclid(60_000);
        if self.order_minute != minute {
            self.order_minute = minute;
            self.orders_in_minute = 0;
        }
        self.orders_in_minute += 1;
        self.orders_in_minute
    }
}

#[derive(Default)]
struct Totals {
    cross_wallet: Decimal,
    unrealized: Decimal,
    cross_unrealized: Decimal,
    initial_margin: Decimal,
    cross_initial: Decimal,
    maint_margin: Decimal,
    available: Decimal,
}

/// The largest position notional allowed at a leverage (a small bracket table).
fn max_notional(leverage: u32) -> Decimal {
    Decimal::from(match leverage {
        0..=10 => 100_000_000u64,
        11..=20 => 25_000_000,
        21..=50 => 5_000_000,
        51..=100 => 1_000_000,
        _ => 250_000,
    })
}

/// A user-stream WebSocket and whose events it carries.
struct Subscriber {
    account: FakeAccountId,
    listen_key: String,
    addr: Addr<UserStreamSession>,
}

/// A signed request as the server received it.
pub(super) struct TradingRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// The form body (empty unless the content type is form-urlencoded).
    pub body: &'a str,
    pub api_key: Option<&'a str>,
}

/// What the trading side answers, plus what the HTTP layer needs to know.
pub(super) struct TradingAnswer {
    pub reply: Reply,
    /// For `X-MBX-ORDER-COUNT-1M` on order placements.
    pub order_count: Option<u32>,
    /// An order was accepted (its reply may be held).
    pub order_accepted: bool,
}

/// The signed endpoints, whatever the version segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Order,
    AllOpenOrders,
    OpenOrders,
    AllOrders,
    UserTrades,
    Income,
    Account,
    PositionRisk,
    Balance,
    Leverage,
    MarginType,
    PositionSideDual,
    ListenKey,
}

impl Endpoint {
    fn methods(self) -> &'static [&'static str] {
        match self {
            Endpoint::Order => &["GET", "POST", "DELETE"],
            Endpoint::AllOpenOrders => &["DELETE"],
            Endpoint::OpenOrders
            | Endpoint::AllOrders
            | Endpoint::UserTrades
            | Endpoint::Income
            | Endpoint::Account
            | Endpoint::PositionRisk
            | Endpoint::Balance => &["GET"],
            Endpoint::Leverage | Endpoint::MarginType => &["POST"],
            Endpoint::PositionSideDual => &["GET", "POST"],
            Endpoint::ListenKey => &["POST", "PUT", "DELETE"],
        }
    }
}

/// `/fapi/v{1,2,3}/<name>` → (version, endpoint).
fn endpoint(path: &str) -> Option<(u8, Endpoint)> {
    let rest = path.strip_prefix("/fapi/v")?;
    let (version, name) = rest.split_once('/')?;
    let version = match version {
        "1" => 1,
        "2" => 2,
        "3" => 3,
        _ => return None,
    };
    let ep = match name {
        "order" => Endpoint::Order,
        "allOpenOrders" => Endpoint::AllOpenOrders,
        "openOrders" => Endpoint::OpenOrders,
        "allOrders" => Endpoint::AllOrders,
        "userTrades" => Endpoint::UserTrades,
        "income" => Endpoint::Income,
        "account" => Endpoint::Account,
        "positionRisk" => Endpoint::PositionRisk,
        "balance" => Endpoint::Balance,
        "leverage" => Endpoint::Leverage,
        "marginType" => Endpoint::MarginType,
        "positionSide/dual" => Endpoint::PositionSideDual,
        "listenKey" => Endpoint::ListenKey,
        _ => return None,
    };
    Some((version, ep))
}

/// True for the paths this module answers.
pub(super) fn is_trading_path(path: &str) -> bool {
    endpoint(path).is_some()
}

/// Request weight of a signed endpoint (Binance's numbers).
pub(super) fn trading_weight(method: &str, path: &str, has_symbol: bool) -> u32 {
    match endpoint(path) {
        Some((_, Endpoint::OpenOrders)) if !has_symbol => 40,
        Some((_, Endpoint::AllOrders | Endpoint::UserTrades)) => 5,
        Some((_, Endpoint::Account | Endpoint::PositionRisk | Endpoint::Balance)) => 5,
        Some((_, Endpoint::Income)) => 30,
        Some((_, Endpoint::PositionSideDual)) if method == "GET" => 30,
        _ => 1,
    }
}

/// A venue-side order request, validated.
struct OrderRequest {
    rules: &'static SymbolRules,
    side: Side,
    kind: OrderType,
    quantity: Decimal,
    stop_price: Decimal,
    reduce_only: bool,
    close_position: bool,
    working_type: WorkingType,
    client_order_id: Option<String>,
    result: bool,
}

/// The fake exchange: accounts, orders, positions, user streams. Driven by the HTTP
/// layer and the hooks with the fake's time and a price snapshot; never blocks.
pub(super) struct Exchange {
    accounts: Vec<Account>,
    next_order_id: i64,
    next_trade_id: i64,
    next_tran_id: i64,
    taker_fee: Decimal,
    subscribers: Vec<Subscriber>,
    /// Order replies are being held ([`FakeVenue::hold_order_replies`]).
    pub holding: bool,
    pub accepted_while_held: usize,
    /// User-stream upgrades are refused ([`FakeVenue::refuse_user_streams`]).
    refusing_streams: bool,
    /// Upgrades refused so far.
    streams_refused: usize,
}

impl Default for Exchange {
    fn default() -> Self {
        Exchange {
            accounts: Vec::new(),
            next_order_id: 8_389_765_000,
            next_trade_id: 512_000_000,
            next_tran_id: 9_689_000_000,
            taker_fee: DEFAULT_TAKER_FEE,
            subscribers: Vec::new(),
            holding: false,
            accepted_while_held: 0,
            refusing_streams: false,
            streams_refused: 0,
        }
    }
}

impl Exchange {
    fn account(&self, id: FakeAccountId) -> &Account {
        self.accounts
            .get(id.0)
            .unwrap_or_else(|| panic!("the fake venue has no account {id:?}"))
    }

    fn account_mut(&mut self, id: FakeAccountId) -> &mut Account {
        self.accounts
            .get_mut(id.0)
            .unwrap_or_else(|| panic!("the fake venue has no account {id:?}"))
    }

    fn add_account(&mut self, auth: Auth, balance: Decimal) -> FakeAccountId {
        let id = FakeAccountId(self.accounts.len());
        self.accounts.push(Account {
            id,
            auth,
            wallet: balance,
            hedge_mode: false,
            settings: HashMap::new(),
            positions: HashMap::new(),
            orders: Vec::new(),
            trades: Vec::new(),
            income: Vec::new(),
            listen_key: None,
            streams_opened: 0,
            order_minute: 0,
            orders_in_minute: 0,
        });
        id
    }

    // ----- authentication -----

    fn by_api_key(&self, api_key: Option<&str>) -> Result<usize, Reply> {
        let key = api_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| code_reply(-2014))?;
        self.accounts
            .iter()
            .position(|a| matches!(&a.auth, Auth::Hmac { api_key, .. } if api_key == key))
            .ok_or_else(|| code_reply(-2015))
    }

    fn authenticate_hmac(
        &self,
        req: &TradingRequest,
        params: &Params,
        now: i64,
    ) -> Result<usize, Reply> {
        let index = self.by_api_key(req.api_key)?;
        let Auth::Hmac { api_secret, .. } = &self.accounts[index].auth else {
            return Err(code_reply(-2015));
        };
        params.require("signature")?;
        check_timestamp(params, now)?;
        let (signed, signature) =
            split_signature(req.query, req.body).ok_or_else(|| code_reply(-1022))?;
        match hmac_hex(api_secret, &signed) {
            Some(expected) if expected == signature => Ok(index),
            _ => Err(code_reply(-1022)),
        }
    }

    fn authenticate_wallet(&self, params: &Params, now: i64) -> Result<usize, Reply> {
        let user = params.require("user")?;
        let signer = params.require("signer")?;
        params.require("nonce")?;
        let signature = params.require("signature")?;
        let index = self
            .accounts
            .iter()
            .position(
                |a| matches!(&a.auth, Auth::Wallet { user: u, .. } if u.eq_ignore_ascii_case(user)),
            )
            .ok_or_else(|| code_reply(-2015))?;
        let Auth::Wallet {
            signer: registered, ..
        } = &self.accounts[index].auth
        else {
            return Err(code_reply(-2015));
        };
        if !registered.eq_ignore_ascii_case(signer) {
            return Err(code_reply(-1022));
        }
        let nonce: u64 = match params.integer("nonce")? {
            Some(n) if n >= 0 => n as u64,
            _ => return Err(illegal("nonce", INTEGER_RANGE)),
        };
        let server_us = i128::from(now) * 1000;
        if (i128::from(nonce) - server_us).abs() > i128::from(NONCE_TOLERANCE_US) {
            return Err(code_reply(-1021));
        }
        check_timestamp(params, now)?;
        verify_wallet_signature(params, user, signer, nonce, signature)?;
        Ok(index)
    }

    // ----- the signed routes -----

    /// Answers one signed request at server time `now` with prices `prices`.
    pub(super) fn handle(
        &mut self,
        req: &TradingRequest,
        now: i64,
        prices: &Prices,
    ) -> TradingAnswer {
        let mut answer = TradingAnswer {
            reply: Reply::ok(json!({})),
            order_count: None,
            order_accepted: false,
        };
        answer.reply = match self.route(req, now, prices, &mut answer) {
            Ok(reply) | Err(reply) => reply,
        };
        answer
    }

    fn route(
        &mut self,
        req: &TradingRequest,
        now: i64,
        prices: &Prices,
        answer: &mut TradingAnswer,
    ) -> Result<Reply, Reply> {
        let (version, ep) = endpoint(req.path).ok_or_else(|| {
            Reply::venue_error(404, -1000, &format!("Path {} not found.", req.path))
        })?;
        if !ep.methods().contains(&req.method) {
            return Err(Reply::venue_error(
                405,
                -1000,
                &format!("Method {} is not allowed on {}.", req.method, req.path),
            ));
        }
        let params = Params::parse(req.query, req.body)?;
        let ai = if version == 3 {
            self.authenticate_wallet(&params, now)?
        } else if ep == Endpoint::ListenKey {
            self.by_api_key(req.api_key)?
        } else {
            self.authenticate_hmac(req, &params, now)?
        };
        let id = self.accounts[ai].id;
        match (ep, req.method) {
            (Endpoint::Order, "POST") => {
                answer.order_count = Some(self.accounts[ai].count_order(now));
                let request = parse_order(&params)?;
                let result = request.result;
                let (ack, index) = self.place(id, request, now, prices, "x-")?;
                answer.order_accepted = true;
                if self.holding {
                    self.accepted_while_held += 1;
                }
                let order = if result {
                    &self.accounts[ai].orders[index]
                } else {
                    &ack
                };
                Ok(Reply::ok(order_json(order, false)))
            }
            (Endpoint::Order, "GET") => {
                let index = self.find_order(ai, &params)?;
                Ok(Reply::ok(order_json(
                    &self.accounts[ai].orders[index],
                    true,
                )))
            }
            (Endpoint::Order, _) => {
                let index = self.find_order(ai, &params)?;
                if self.accounts[ai].orders[index].status != OrderStatus::New {
                    return Err(code_reply(-2011));
                }
                self.cancel(id, index, now);
                Ok(Reply::ok(order_json(
                    &self.accounts[ai].orders[index],
                    false,
                )))
            }
            (Endpoint::AllOpenOrders, _) => {
                let rules = params.required_symbol()?;
                let open: Vec<usize> = (0..self.accounts[ai].orders.len())
                    .filter(|&i| {
                        let o = &self.accounts[ai].orders[i];
                        o.status == OrderStatus::New && o.symbol == rules.symbol
                    })
                    .collect();
                for index in open {
                    self.cancel(id, index, now);
                }
                Ok(Reply::ok(json!({
                    "code": 200,
                    "msg": "The operation of cancel all open order is done."
                })))
            }
            (Endpoint::OpenOrders, _) => {
                let symbol = params.symbol()?.map(|r| r.symbol);
                let list: Vec<Value> = self.accounts[ai]
                    .open_orders()
                    .filter(|o| symbol.map_or(true, |s| o.symbol == s))
                    .map(|o| order_json(o, true))
                    .collect();
                Ok(Reply::ok(Value::Array(list)))
            }
            (Endpoint::AllOrders, _) => {
                let rules = params.required_symbol()?;
                let from_id = params.integer("orderId")?;
                let start = params.integer("startTime")?;
                let end = params.integer("endTime")?;
                let limit = params.limit(500, 1000)?;
                let list: Vec<Value> = self.accounts[ai]
                    .orders
                    .iter()
                    .filter(|o| o.symbol == rules.symbol)
                    .filter(|o| from_id.map_or(true, |f| o.order_id >= f))
                    .filter(|o| start.map_or(true, |s| o.time >= s))
                    .filter(|o| end.map_or(true, |e| o.time <= e))
                    .take(limit)
                    .map(|o| order_json(o, true))
                    .collect();
                Ok(Reply::ok(Value::Array(list)))
            }
            (Endpoint::UserTrades, _) => {
                let rules = params.required_symbol()?;
                let from_id = params.integer("fromId")?;
                let start = params.integer("startTime")?;
                let end = params.integer("endTime")?;
                let limit = params.limit(500, 1000)?;
                let list: Vec<Value> = self.accounts[ai]
                    .trades
                    .iter()
                    .filter(|t| t.symbol == rules.symbol)
                    .filter(|t| from_id.map_or(true, |f| t.id >= f))
                    .filter(|t| start.map_or(true, |s| t.time >= s))
                    .filter(|t| end.map_or(true, |e| t.time <= e))
                    .take(limit)
                    .map(trade_json)
                    .collect();
                Ok(Reply::ok(Value::Array(list)))
            }
            (Endpoint::Income, _) => {
                let symbol = params.symbol()?.map(|r| r.symbol);
                let kind = params.get("incomeType");
                let start = params.integer("startTime")?;
                let end = params.integer("endTime")?;
                let limit = params.limit(100, 1000)?;
                let list: Vec<Value> = self.accounts[ai]
                    .income
                    .iter()
                    .filter(|i| symbol.map_or(true, |s| i.symbol == s))
                    .filter(|i| kind.map_or(true, |k| i.income_type == k))
                    .filter(|i| start.map_or(true, |s| i.time >= s))
                    .filter(|i| end.map_or(true, |e| i.time <= e))
                    .take(limit)
                    .map(income_json)
                    .collect();
                Ok(Reply::ok(Value::Array(list)))
            }
            (Endpoint::Account, _) => Ok(Reply::ok(account_json(&self.accounts[ai], now, prices))),
            (Endpoint::Balance, _) => Ok(Reply::ok(balance_json(&self.accounts[ai], now, prices))),
            (Endpoint::PositionRisk, _) => {
                let symbol = params.symbol()?.map(|r| r.symbol);
                let list: Vec<Value> = listed_rules()
                    .iter()
                    .filter(|r| symbol.map_or(true, |s| r.symbol == s))
                    .map(|r| position_risk_json(&self.accounts[ai], r, prices))
                    .collect();
                Ok(Reply::ok(Value::Array(list)))
            }
            (Endpoint::Leverage, _) => {
                let rules = params.required_symbol()?;
                let leverage = params
                    .integer("leverage")?
                    .ok_or_else(|| Reply::mandatory("leverage"))?;
                if !(1..=125).contains(&leverage) {
                    return Err(code_reply(-4028));
                }
                let leverage = leverage as u32;
                let account = &mut self.accounts[ai];
                let position = account.position(rules.symbol);
                if position.amount.abs() * position.entry > max_notional(leverage) {
                    return Err(code_reply(-2027));
                }
                account.settings.entry(rules.symbol).or_default().leverage = leverage;
                Ok(Reply::ok(json!({
                    "leverage": leverage,
                    "maxNotionalValue": max_notional(leverage).to_string(),
                    "symbol": rules.symbol,
                })))
            }
            (Endpoint::MarginType, _) => {
                let rules = params.required_symbol()?;
                let wanted = match params.require("marginType")? {
                    "CROSSED" => MarginType::Crossed,
                    "ISOLATED" => MarginType::Isolated,
                    _ => return Err(Reply::bad_value("marginType")),
                };
                let account = &mut self.accounts[ai];
                if account.settings(rules.symbol).margin_type == wanted {
                    return Err(code_reply(-4046));
                }
                if !account.position(rules.symbol).amount.is_zero() {
                    return Err(code_reply(-4048));
                }
                if account.open_orders().any(|o| o.symbol == rules.symbol) {
                    return Err(code_reply(-4047));
                }
                account
                    .settings
                    .entry(rules.symbol)
                    .or_default()
                    .margin_type = wanted;
                Ok(Reply::ok(json!({"code": 200, "msg": "success"})))
            }
            (Endpoint::PositionSideDual, "GET") => Ok(Reply::ok(json!({
                "dualSidePosition": self.accounts[ai].hedge_mode
            }))),
            (Endpoint::PositionSideDual, _) => {
                let wanted = match params.require("dualSidePosition")? {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Reply::bad_value("dualSidePosition")),
                };
                let account = &mut self.accounts[ai];
                if account.hedge_mode == wanted {
                    return Err(code_reply(-4059));
                }
                if account.positions.values().any(|p| !p.amount.is_zero()) {
                    return Err(code_reply(-4068));
                }
                if account.open_orders().next().is_some() {
                    return Err(code_reply(-4067));
                }
                account.hedge_mode = wanted;
                Ok(Reply::ok(json!({"code": 200, "msg": "success"})))
            }
            (Endpoint::ListenKey, "POST") => {
                let account = &mut self.accounts[ai];
                let key = match &mut account.listen_key {
                    Some(k) if k.expires_at > now => {
                        k.expires_at = now + LISTEN_KEY_TTL_MS;
                        k.key.clone()
                    }
                    _ => {
                        let key = Alphanumeric.sample_string(&mut rand::rng(), 64);
                        account.listen_key = Some(ListenKey {
                            key: key.clone(),
                            expires_at: now + LISTEN_KEY_TTL_MS,
                        });
                        key
                    }
                };
                Ok(Reply::ok(json!({"listenKey": key})))
            }
            (Endpoint::ListenKey, "PUT") => match &mut self.accounts[ai].listen_key {
                Some(k) if k.expires_at > now => {
                    k.expires_at = now + LISTEN_KEY_TTL_MS;
                    Ok(Reply::ok(json!({"listenKey": k.key})))
                }
                _ => Err(code_reply(-1125)),
            },
            (Endpoint::ListenKey, _) => {
                if let Some(k) = self.accounts[ai].listen_key.take() {
                    self.hang_up(|s| s.listen_key == k.key);
                }
                Ok(Reply::ok(json!({})))
            }
        }
    }

    /// The order named by `orderId` or `origClientOrderId` (the latest with that id) of
    /// `symbol`.
    fn find_order(&self, ai: usize, params: &Params) -> Result<usize, Reply> {
        let rules = params.required_symbol()?;
        let by_id = params.integer("orderId")?;
        let by_client = params.get("origClientOrderId");
        if by_id.is_none() && by_client.is_none() {
            return Err(Reply::venue_error(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            ));
        }
        self.accounts[ai]
            .orders
            .iter()
            .rposition(|o| {
                o.symbol == rules.symbol
                    && by_id.map_or(true, |id| o.order_id == id)
                    && by_client.map_or(true, |c| o.client_order_id == c)
            })
            .ok_or_else(|| code_reply(-2013))
    }

    // ----- orders -----

    /// Validates and accepts an order for account `id`; a MARKET order fills at once.
    /// Returns the order as it was on acceptance (status NEW, for an ACK reply) and its
    /// index. `id_prefix` starts generated client order ids (`x-` API, `web_` by hand).
    fn place(
        &mut self,
        id: FakeAccountId,
        req: OrderRequest,
        now: i64,
        prices: &Prices,
        id_prefix: &str,
    ) -> Result<(FakeOrder, usize), Reply> {
        let fee = self.taker_fee;
        let account = self.account(id);
        let symbol = req.rules.symbol;
        let mark = prices.get(symbol).copied().unwrap_or(Decimal::ZERO);
        if account.hedge_mode {
            return Err(code_reply(-4061));
        }
        if let Some(cid) = &req.client_order_id {
            if account.open_orders().any(|o| &o.client_order_id == cid) {
                return Err(code_reply(-4116));
            }
        }
        check_quantity(req.rules, req.quantity, req.close_position)?;
        if req.kind.is_conditional() {
            check_stop_price(req.rules, req.stop_price)?;
            if would_trigger(req.kind, req.side, req.stop_price, mark) {
                return Err(code_reply(-2021));
            }
            if req.close_position
                && account.open_orders().any(|o| {
                    o.symbol == symbol
                        && o.close_position
                        && o.side == req.side
                        && o.order_type == req.kind
                })
            {
                return Err(code_reply(-4130));
            }
            let algo = account
                .open_orders()
                .filter(|o| o.symbol == symbol && o.order_type.is_conditional())
                .count();
            if algo >= MAX_ALGO_ORDERS {
                return Err(code_reply(-4045));
            }
        }
        if account.open_orders().count() >= MAX_OPEN_ORDERS {
            return Err(Reply::venue_error(
                400,
                -4025,
                "Reach max open order limit.",
            ));
        }
        let position = account.position(symbol);
        let reducing = !position.amount.is_zero() && position.amount.signum() != req.side.sign();
        if req.reduce_only && !reducing {
            return Err(code_reply(-2022));
        }
        let reference = if req.kind.is_conditional() {
            req.stop_price
        } else {
            mark
        };
        if !req.reduce_only
            && !req.close_position
            && req.quantity * reference < req.rules.min_notional
        {
            return Err(Reply::venue_error(
                400,
                -4164,
                &format!(
                    "Order's notional must be no smaller than {} (unless you choose reduce only).",
                    one_decimal(req.rules.min_notional)
                ),
            ));
        }
        let fill_qty = if req.reduce_only {
            req.quantity.min(position.amount.abs())
        } else {
            req.quantity
        };
        if req.kind == OrderType::Market {
            account
                .margin_check(symbol, req.side, fill_qty, mark, fee, prices)
                .map_err(code_reply)?;
        }

        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let client_order_id = req
            .client_order_id
            .unwrap_or_else(|| format!("{id_prefix}{}", to_base36(order_id)));
        let order = FakeOrder {
            order_id,
            symbol,
            client_order_id,
            side: req.side,
            order_type: req.kind,
            status: OrderStatus::New,
            orig_qty: req.quantity,
            executed_qty: Decimal::ZERO,
            avg_price: Decimal::ZERO,
            cum_quote: Decimal::ZERO,
            stop_price: if req.kind.is_conditional() {
                req.stop_price
            } else {
                Decimal::ZERO
            },
            reduce_only: req.reduce_only,
            close_position: req.close_position,
            working_type: req.working_type,
            time: now,
            update_time: now,
        };
        let account = self.account_mut(id);
        account.orders.push(order.clone());
        let index = account.orders.len() - 1;
        self.emit(id, order_update(&order, "NEW", None, now));
        if req.kind == OrderType::Market {
            self.fill(id, index, fill_qty, mark, now, OrderType::Market);
        }
        Ok((order, index))
    }

    fn cancel(&mut self, id: FakeAccountId, index: usize, now: i64) {
        let account = self.account_mut(id);
        let order = &mut account.orders[index];
        order.status = OrderStatus::Canceled;
        order.update_time = now;
        let event = order_update(order, "CANCELED", None, now);
        self.emit(id, event);
    }

    fn expire(&mut self, id: FakeAccountId, index: usize, now: i64) {
        let account = self.account_mut(id);
        let order = &mut account.orders[index];
        order.status = OrderStatus::Expired;
        order.update_time = now;
        let event = order_update(order, "EXPIRED", None, now);
        self.emit(id, event);
    }

    /// Fills `qty` of order `index` at `price`: position, wallet, fee, realized PnL,
    /// trade and income rows, then ACCOUNT_UPDATE and ORDER_TRADE_UPDATE.
    /// `shown_type` is the type the fill event carries (MARKET once a stop triggered).
    fn fill(
        &mut self,
        id: FakeAccountId,
        index: usize,
        qty: Decimal,
        price: Decimal,
        now: i64,
        shown_type: OrderType,
    ) {
        let fee_rate = self.taker_fee;
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        let tran_base = self.next_tran_id;
        self.next_tran_id += 2;
        let account = self.account_mut(id);
        let (symbol, side, order_id) = {
            let o = &account.orders[index];
            (o.symbol, o.side, o.order_id)
        };
        let position = account.positions.entry(symbol).or_default();
        let old = position.amount;
        let change = side.sign() * qty;
        let closing = if old.is_zero() || old.signum() == change.signum() {
            Decimal::ZERO
        } else {
            qty.min(old.abs())
        };
        let realized = (closing * (price - position.entry) * old.signum()).round_dp(8);
        let new_amount = old + change;
        position.entry = if new_amount.is_zero() {
            Decimal::ZERO
        } else if closing.is_zero() {
            ((old.abs() * position.entry + qty * price) / new_amount.abs()).round_dp(8)
        } else if new_amount.signum() != old.signum() {
            price
        } else {
            position.entry
        };
        position.amount = new_amount;
        position.realized += realized;
        position.update_time = now;
        let quote = qty * price;
        let commission = (quote * fee_rate).round_dp(8);
        account.wallet += realized - commission;
        let order = &mut account.orders[index];
        order.executed_qty += qty;
        order.cum_quote += quote;
        order.avg_price = (order.cum_quote / order.executed_qty).round_dp(8);
        order.status = OrderStatus::Filled;
        order.update_time = now;
        let trade = FakeTrade {
            id: trade_id,
            order_id,
            symbol,
            side,
            price,
            qty,
            quote_qty: quote,
            commission,
            realized_pnl: realized,
            time: now,
        };
        account.trades.push(trade.clone());
        if !closing.is_zero() {
            account.income.push(FakeIncome {
                tran_id: tran_base,
                symbol,
                income_type: "REALIZED_PNL",
                income: realized,
                time: now,
                trade_id: Some(trade_id),
            });
        }
        if !commission.is_zero() {
            account.income.push(FakeIncome {
                tran_id: tran_base + 1,
                symbol,
                income_type: "COMMISSION",
                income: -commission,
                time: now,
                trade_id: Some(trade_id),
            });
        }
        let mut shown = account.orders[index].clone();
        shown.order_type = shown_type;
        let account_event = account_update(account, "ORDER", &[symbol], now, price);
        let original = account.orders[index].order_type;
        let mut trade_event = order_update(&shown, "TRADE", Some(&trade), now);
        trade_event["o"]["ot"] = json!(original.as_str());
        self.emit(id, account_event);
        self.emit(id, trade_event);
    }

    /// Triggers the conditional orders the prices have crossed, oldest first.
    pub(super) fn evaluate_triggers(&mut self, now: i64, prices: &Prices) {
        for ai in 0..self.accounts.len() {
            let id = self.accounts[ai].id;
            let due: Vec<usize> = self.accounts[ai]
                .orders
                .iter()
                .enumerate()
                .filter(|(_, o)| o.status == OrderStatus::New && o.order_type.is_conditional())
                .filter(|(_, o)| {
                    prices.get(o.symbol).is_some_and(|&mark| {
                        would_trigger(o.order_type, o.side, o.stop_price, mark)
                    })
                })
                .map(|(i, _)| i)
                .collect();
            for index in due {
                self.trigger(id, index, now, prices);
            }
        }
    }

    /// A conditional order whose stop was crossed: fills as a market order, or expires
    /// when it may only reduce and there is nothing (left) to reduce, or when the margin
    /// is short.
    fn trigger(&mut self, id: FakeAccountId, index: usize, now: i64, prices: &Prices) {
        let fee = self.taker_fee;
        let account = self.account(id);
        let order = &account.orders[index];
        if order.status != OrderStatus::New {
            return;
        }
        let Some(&mark) = prices.get(order.symbol) else {
            return;
        };
        let position = account.position(order.symbol);
        let reducing = !position.amount.is_zero() && position.amount.signum() != order.side.sign();
        let qty = if order.close_position {
            if reducing {
                position.amount.abs()
            } else {
                Decimal::ZERO
            }
        } else if order.reduce_only {
            if reducing {
                order.orig_qty.min(position.amount.abs())
            } else {
                Decimal::ZERO
            }
        } else {
            order.orig_qty
        };
        if qty.is_zero()
            || account
                .margin_check(order.symbol, order.side, qty, mark, fee, prices)
                .is_err()
        {
            self.expire(id, index, now);
            return;
        }
        let mut shown = order.clone();
        shown.order_type = OrderType::Market;
        let mut event = order_update(&shown, "NEW", None, now);
        event["o"]["ot"] = json!(order.order_type.as_str());
        self.emit(id, event);
        self.fill(id, index, qty, mark, now, OrderType::Market);
    }

    /// Funding for every open position in `symbol`: longs pay `rate` of their notional
    /// at the current price when it is positive, shorts receive it.
    pub(super) fn charge_funding(
        &mut self,
        symbol: &'static str,
        rate: Decimal,
        now: i64,
        price: Decimal,
    ) {
        for ai in 0..self.accounts.len() {
            let position = self.accounts[ai].position(symbol);
            if position.amount.is_zero() {
                continue;
            }
            let tran_id = self.next_tran_id;
            self.next_tran_id += 1;
            let amount = (-position.amount * price * rate).round_dp(8);
            let account = &mut self.accounts[ai];
            account.wallet += amount;
            account.income.push(FakeIncome {
                tran_id,
                symbol,
                income_type: "FUNDING_FEE",
                income: amount,
                time: now,
                trade_id: None,
            });
            let id = account.id;
            let event = account_update(account, "FUNDING_FEE", &[symbol], now, price);
            self.emit(id, event);
        }
    }

    // ----- user streams -----

    /// The account a valid listen key belongs to.
    fn account_for_key(&self, key: &str, now: i64) -> Option<FakeAccountId> {
        self.accounts
            .iter()
            .find(|a| {
                a.listen_key
                    .as_ref()
                    .is_some_and(|k| k.key == key && k.expires_at > now)
            })
            .map(|a| a.id)
    }

    fn emit(&mut self, account: FakeAccountId, event: Value) {
        self.subscribers.retain(|s| s.addr.connected());
        let text = event.to_string();
        for s in self.subscribers.iter().filter(|s| s.account == account) {
            s.addr.do_send(Push(text.clone()));
        }
    }

    /// Closes the sockets `which` selects.
    fn hang_up(&mut self, which: impl Fn(&Subscriber) -> bool) {
        self.subscribers.retain(|s| {
            if which(s) {
                s.addr.do_send(HangUp);
                false
            } else {
                true
            }
        });
    }

    /// Sends `listenKeyExpired` on, and closes, the streams of every key that is past
    /// its time (`force`: every key), and forgets those keys.
    fn expire_keys(&mut self, now: i64, force: bool) {
        let mut expired: Vec<String> = Vec::new();
        for account in &mut self.accounts {
            if account
                .listen_key
                .as_ref()
                .is_some_and(|k| force || k.expires_at <= now)
            {
                if let Some(k) = account.listen_key.take() {
                    expired.push(k.key);
                }
            }
        }
        for key in expired {
            let event = json!({"e": "listenKeyExpired", "E": now, "listenKey": key}).to_string();
            for s in self.subscribers.iter().filter(|s| s.listen_key == key) {
                s.addr.do_send(Push(event.clone()));
            }
            self.hang_up(|s| s.listen_key == key);
        }
    }

    /// The background tick: triggers and listen-key expiry.
    pub(super) fn tick(&mut self, now: i64, prices: &Prices) {
        self.evaluate_triggers(now, prices);
        self.expire_keys(now, false);
    }
}

/// Would a conditional order trigger at `mark`?
fn would_trigger(kind: OrderType, side: Side, stop: Decimal, mark: Decimal) -> bool {
    match (kind, side) {
        (OrderType::StopMarket, Side::Sell) | (OrderType::TakeProfitMarket, Side::Buy) => {
            mark <= stop
        }
        (OrderType::StopMarket, Side::Buy) | (OrderType::TakeProfitMarket, Side::Sell) => {
            mark >= stop
        }
        (OrderType::Market, _) => false,
    }
}

/// Quantity against MARKET_LOT_SIZE (all modeled orders execute as market orders).
fn check_quantity(rules: &SymbolRules, qty: Decimal, close_position: bool) -> Result<(), Reply> {
    if close_position {
        return Ok(());
    }
    if qty <= Decimal::ZERO {
        return Err(code_reply(-4003));
    }
    if !((qty - rules.min_qty) % rules.step_size).is_zero() {
        return Err(code_reply(-1111));
    }
    if qty < rules.min_qty {
        return Err(code_reply(-4004));
    }
    if qty > rules.max_qty {
        return Err(code_reply(-4005));
    }
    Ok(())
}

/// `stopPrice` against PRICE_FILTER.
fn check_stop_price(rules: &SymbolRules, stop: Decimal) -> Result<(), Reply> {
    if !((stop - rules.min_price) % rules.tick_size).is_zero() {
        return Err(code_reply(-1111));
    }
    if stop < rules.min_price {
        return Err(code_reply(-4013));
    }
    if stop > rules.max_price {
        return Err(code_reply(-4016));
    }
    Ok(())
}

/// Parses `POST /order` parameters into a request, refusing what the venue refuses.
fn parse_order(params: &Params) -> Result<OrderRequest, Reply> {
    let rules = params.required_symbol()?;
    let side = Side::parse(params.require("side")?).ok_or_else(|| code_reply(-1117))?;
    let type_text = params.require("type")?;
    let kind = match type_text {
        "MARKET" => OrderType::Market,
        "STOP_MARKET" => OrderType::StopMarket,
        "TAKE_PROFIT_MARKET" => OrderType::TakeProfitMarket,
        "LIMIT" | "STOP" | "TAKE_PROFIT" | "TRAILING_STOP_MARKET" => {
            return Err(Reply::venue_error(
                400,
                -1116,
                &format!("Invalid orderType. (the fake venue does not model {type_text})"),
            ))
        }
        _ => return Err(code_reply(-1116)),
    };
    match params.get("positionSide") {
        None | Some("BOTH") => {}
        Some("LONG" | "SHORT") => return Err(code_reply(-4061)),
        Some(_) => return Err(Reply::bad_value("positionSide")),
    }
    let reduce_only = params.boolean("reduceOnly")?;
    let close_position = params.boolean("closePosition")?;
    let quantity = params.decimal("quantity")?;
    if params.get("price").is_some() {
        return Err(not_required("price"));
    }
    let stop_price = params.decimal("stopPrice")?;
    let stop_price = match (kind, stop_price) {
        (OrderType::Market, Some(_)) => return Err(not_required("stopPrice")),
        (OrderType::Market, None) => Decimal::ZERO,
        (_, Some(p)) => p,
        (_, None) => return Err(Reply::mandatory("stopPrice")),
    };
    if close_position {
        if kind == OrderType::Market {
            return Err(code_reply(-4136));
        }
        if quantity.is_some_and(|q| !q.is_zero()) {
            return Err(code_reply(-4137));
        }
        if params.get("reduceOnly").is_some() {
            return Err(not_required("reduceOnly"));
        }
    }
    let quantity = match quantity {
        Some(q) => q,
        None if close_position => Decimal::ZERO,
        None => return Err(Reply::mandatory("quantity")),
    };
    let quantity = if close_position {
        Decimal::ZERO
    } else {
        quantity
    };
    let working_type = match params.get("workingType") {
        None | Some("CONTRACT_PRICE") => WorkingType::ContractPrice,
        Some("MARK_PRICE") => WorkingType::MarkPrice,
        Some(_) => return Err(Reply::bad_value("workingType")),
    };
    let result = match params.get("newOrderRespType") {
        None | Some("ACK") => false,
        Some("RESULT") => true,
        Some(_) => return Err(Reply::bad_value("newOrderRespType")),
    };
    let client_order_id = match params.get("newClientOrderId") {
        None => None,
        Some(c) => {
            let legal = (1..=36).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:/_-".contains(&b));
            if !legal {
                return Err(illegal("newClientOrderId", CLIENT_ID_RANGE));
            }
            Some(c.to_string())
        }
    };
    Ok(OrderRequest {
        rules,
        side,
        kind,
        quantity,
        stop_price,
        reduce_only,
        close_position,
        working_type,
        client_order_id,
        result,
    })
}

// ---------------------------------------------------------------------------------
// Wire views
// ---------------------------------------------------------------------------------

fn rules_of(symbol: &str) -> (u32, u32) {
    symbol_rules(symbol).map_or((8, 8), |r| (r.price_scale, r.qty_scale))
}

/// `value` printed with exactly `scale` decimals.
fn fixed(value: Decimal, scale: u32) -> String {
    let mut v = value.round_dp(scale);
    v.rescale(scale);
    v.to_string()
}

/// Money as the venue prints balances: 8 decimals.
fn money(value: Decimal) -> String {
    fixed(value, 8)
}

/// A price that may have more decimals than the tick (entry, average): all its digits
/// up to 8, at least the tick's.
fn wide_price(value: Decimal, price_scale: u32) -> String {
    let v = value.round_dp(8).normalize();
    if v.scale() < price_scale {
        fixed(v, price_scale)
    } else {
        v.to_string()
    }
}

/// "5" -> "5.0", as the venue writes the minimum notional in -4164.
fn one_decimal(value: Decimal) -> String {
    let v = value.normalize();
    if v.scale() == 0 {
        fixed(v, 1)
    } else {
        v.to_string()
    }
}

fn to_base36(mut n: i64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The Binance order object (`time` only where the venue includes it: queries).
fn order_json(o: &FakeOrder, with_time: bool) -> Value {
    let (ps, qs) = rules_of(o.symbol);
    let mut v = json!({
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status.as_str(),
        "clientOrderId": o.client_order_id,
        "price": "0",
        "avgPrice": if o.executed_qty.is_zero() { fixed(Decimal::ZERO, 5) } else { wide_price(o.avg_price, ps) },
        "origQty": fixed(o.orig_qty, qs),
        "executedQty": fixed(o.executed_qty, qs),
        "cumQty": fixed(o.executed_qty, qs),
        "cumQuote": fixed(o.cum_quote, ps + qs),
        "timeInForce": if o.close_position { "GTE_GTC" } else { "GTC" },
        "type": o.order_type.as_str(),
        "origType": o.order_type.as_str(),
        "reduceOnly": o.reduce_only,
        "closePosition": o.close_position,
        "side": o.side.as_str(),
        "positionSide": "BOTH",
        "stopPrice": if o.order_type.is_conditional() { fixed(o.stop_price, ps) } else { "0".to_string() },
        "workingType": o.working_type.as_str(),
        "priceProtect": false,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "updateTime": o.update_time,
    });
    if with_time {
        v["time"] = json!(o.time);
    }
    v
}

fn trade_json(t: &FakeTrade) -> Value {
    let (ps, qs) = rules_of(t.symbol);
    json!({
        "symbol": t.symbol,
        "id": t.id,
        "orderId": t.order_id,
        "side": t.side.as_str(),
        "price": fixed(t.price, ps),
        "qty": fixed(t.qty, qs),
        "realizedPnl": money(t.realized_pnl),
        "marginAsset": "USDT",
        "quoteQty": fixed(t.quote_qty, ps + qs),
        "commission": money(t.commission),
        "commissionAsset": "USDT",
        "time": t.time,
        "positionSide": "BOTH",
        "buyer": t.side == Side::Buy,
        "maker": false,
    })
}

fn income_json(i: &FakeIncome) -> Value {
    json!({
        "symbol": i.symbol,
        "incomeType": i.income_type,
        "income": money(i.income),
        "asset": "USDT",
        "info": i.income_type,
        "time": i.time,
        "tranId": i.tran_id,
        "tradeId": i.trade_id.map(|t| t.to_string()).unwrap_or_default(),
    })
}

/// `ORDER_TRADE_UPDATE` for an order, with the fill when there is one.
fn order_update(o: &FakeOrder, execution: &str, fill: Option<&FakeTrade>, now: i64) -> Value {
    let (ps, qs) = rules_of(o.symbol);
    let zero_price = fixed(Decimal::ZERO, ps);
    json!({
        "e": "ORDER_TRADE_UPDATE",
        "E": now,
        "T": now,
        "o": {
            "s": o.symbol,
            "c": o.client_order_id,
            "S": o.side.as_str(),
            "o": o.order_type.as_str(),
            "f": if o.close_position { "GTE_GTC" } else { "GTC" },
            "q": fixed(o.orig_qty, qs),
            "p": "0",
            "ap": if o.executed_qty.is_zero() { zero_price.clone() } else { wide_price(o.avg_price, ps) },
            "sp": fixed(o.stop_price, ps),
            "x": execution,
            "X": o.status.as_str(),
            "i": o.order_id,
            "l": fixed(fill.map_or(Decimal::ZERO, |t| t.qty), qs),
            "z": fixed(o.executed_qty, qs),
            "L": fill.map_or(zero_price.clone(), |t| fixed(t.price, ps)),
            "n": money(fill.map_or(Decimal::ZERO, |t| t.commission)),
            "N": "USDT",
            "T": now,
            "t": fill.map_or(0, |t| t.id),
            "b": "0",
            "a": "0",
            "m": false,
            "R": o.reduce_only,
            "wt": o.working_type.as_str(),
            "ot": o.order_type.as_str(),
            "ps": "BOTH",
            "cp": o.close_position,
            "rp": money(fill.map_or(Decimal::ZERO, |t| t.realized_pnl)),
            "pP": false,
            "si": 0,
            "ss": 0,
        }
    })
}

/// `ACCOUNT_UPDATE` with the wallet and the positions of `symbols` at `price`.
fn account_update(
    account: &Account,
    reason: &str,
    symbols: &[&'static str],
    now: i64,
    price: Decimal,
) -> Value {
    let positions: Vec<Value> = symbols
        .iter()
        .map(|&symbol| {
            let p = account.position(symbol);
            let s = account.settings(symbol);
            let (ps, qs) = rules_of(symbol);
            json!({
                "s": symbol,
                "pa": fixed(p.amount, qs),
                "ep": wide_price(p.entry, ps),
                "bep": wide_price(p.entry, ps),
                "cr": money(p.realized),
                "up": money(p.amount * (price - p.entry)),
                "mt": s.margin_type.wire(),
                "iw": money(account.isolated_margin(symbol)),
                "ps": "BOTH",
            })
        })
        .collect();
    json!({
        "e": "ACCOUNT_UPDATE",
        "E": now,
        "T": now,
        "a": {
            "m": reason,
            "B": [{
                "a": "USDT",
                "wb": money(account.wallet),
                "cw": money(account.cross_wallet()),
                "bc": "0",
            }],
            "P": positions,
        }
    })
}

fn position_risk_json(account: &Account, rules: &SymbolRules, prices: &Prices) -> Value {
    let symbol = rules.symbol;
    let p = account.position(symbol);
    let s = account.settings(symbol);
    let mark = prices.get(symbol).copied().unwrap_or(Decimal::ZERO);
    let up = p.amount * (mark - p.entry);
    let isolated = account.isolated_margin(symbol);
    json!({
        "symbol": symbol,
        "positionAmt": fixed(p.amount, rules.qty_scale),
        "entryPrice": wide_price(p.entry, rules.price_scale),
        "breakEvenPrice": wide_price(p.entry, rules.price_scale),
        "markPrice": fixed(mark, 8),
        "unRealizedProfit": money(up),
        "liquidationPrice": wide_price(account.liquidation_price(symbol, rules), rules.price_scale),
        "leverage": s.leverage.to_string(),
        "maxNotionalValue": max_notional(s.leverage).to_string(),
        "marginType": s.margin_type.wire(),
        "isolatedMargin": money(if isolated.is_zero() { Decimal::ZERO } else { isolated + up }),
        "isAutoAddMargin": "false",
        "positionSide": "BOTH",
        "notional": money(p.amount * mark),
        "isolatedWallet": money(isolated),
        "updateTime": p.update_time,
    })
}

fn account_json(account: &Account, now: i64, prices: &Prices) -> Value {
    let t = account.totals(prices);
    let margin_balance = account.wallet + t.unrealized;
    let max_withdraw = t.available.max(Decimal::ZERO).min(account.wallet);
    let positions: Vec<Value> = listed_rules()
        .iter()
        .map(|r| {
            let p = account.position(r.symbol);
            let s = account.settings(r.symbol);
            let mark = prices.get(r.symbol).copied().unwrap_or(Decimal::ZERO);
            let im = p.amount.abs() * mark / Decimal::from(s.leverage);
            json!({
                "symbol": r.symbol,
                "initialMargin": money(im),
                "maintMargin": money(p.amount.abs() * mark * MAINT_RATE),
                "unrealizedProfit": money(p.amount * (mark - p.entry)),
                "positionInitialMargin": money(im),
                "openOrderInitialMargin": "0",
                "leverage": s.leverage.to_string(),
                "isolated": s.margin_type == MarginType::Isolated,
                "entryPrice": wide_price(p.entry, r.price_scale),
                "breakEvenPrice": wide_price(p.entry, r.price_scale),
                "maxNotional": max_notional(s.leverage).to_string(),
                "bidNotional": "0",
                "askNotional": "0",
                "positionSide": "BOTH",
                "positionAmt": fixed(p.amount, r.qty_scale),
                "notional": money(p.amount * mark),
                "isolatedWallet": money(account.isolated_margin(r.symbol)),
                "updateTime": p.update_time,
            })
        })
        .collect();
    json!({
        "feeTier": 0,
        "canTrade": true,
        "canDeposit": true,
        "canWithdraw": true,
        "updateTime": 0,
        "multiAssetsMargin": false,
        "totalInitialMargin": money(t.initial_margin),
        "totalMaintMargin": money(t.maint_margin),
        "totalWalletBalance": money(account.wallet),
        "totalUnrealizedProfit": money(t.unrealized),
        "totalMarginBalance": money(margin_balance),
        "totalPositionInitialMargin": money(t.initial_margin),
        "totalOpenOrderInitialMargin": money(Decimal::ZERO),
        "totalCrossWalletBalance": money(t.cross_wallet),
        "totalCrossUnPnl": money(t.cross_unrealized),
        "availableBalance": money(t.available),
        "maxWithdrawAmount": money(max_withdraw),
        "assets": [{
            "asset": "USDT",
            "walletBalance": money(account.wallet),
            "unrealizedProfit": money(t.unrealized),
            "marginBalance": money(margin_balance),
            "maintMargin": money(t.maint_margin),
            "initialMargin": money(t.initial_margin),
            "positionInitialMargin": money(t.initial_margin),
            "openOrderInitialMargin": money(Decimal::ZERO),
            "crossWalletBalance": money(t.cross_wallet),
            "crossUnPnl": money(t.cross_unrealized),
            "availableBalance": money(t.available),
            "maxWithdrawAmount": money(max_withdraw),
            "marginAvailable": true,
            "updateTime": now,
        }],
        "positions": positions,
    })
}

fn balance_json(account: &Account, now: i64, prices: &Prices) -> Value {
    let t = account.totals(prices);
    json!([{
        "accountAlias": "FzSgXqAuSgTi",
        "asset": "USDT",
        "balance": money(account.wallet),
        "crossWalletBalance": money(t.cross_wallet),
        "crossUnPnl": money(t.cross_unrealized),
        "availableBalance": money(t.available),
        "maxWithdrawAmount": money(t.available.max(Decimal::ZERO).min(account.wallet)),
        "marginAvailable": true,
        "updateTime": now,
    }])
}

// ---------------------------------------------------------------------------------
// User data stream WebSocket
// ---------------------------------------------------------------------------------

/// One user-stream WebSocket connection: forwards the account's events as text frames.
pub(super) struct UserStreamSession;

/// An event to send, already serialized.
#[derive(Message)]
#[rtype(result = "()")]
struct Push(String);

/// Close the socket (the venue dropped it or the key expired).
#[derive(Message)]
#[rtype(result = "()")]
struct HangUp;

impl Actor for UserStreamSession {
    type Context = ws::WebsocketContext<Self>;
}

impl Handler<Push> for UserStreamSession {
    type Result = ();
    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        ctx.text(msg.0);
    }
}

impl Handler<HangUp> for UserStreamSession {
    type Result = ();
    fn handle(&mut self, _: HangUp, ctx: &mut Self::Context) {
        ctx.close(Some(ws::CloseCode::Away.into()));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for UserStreamSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}

/// `GET /ws/{listenKey}`: upgrades when the key is valid, else 400 -1125.
pub(super) async fn user_stream(
    req: HttpRequest,
    key: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let key = key.into_inner();
    let now = shared.now();
    {
        let mut exchange = shared.trading();
        if exchange.refusing_streams {
            // The stream's host is unreachable from the client's point of view: the
            // listen key works, the WebSocket does not.
            exchange.streams_refused += 1;
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    let Some(account) = shared.trading().account_for_key(&key, now) else {
        let reply = code_reply(-1125);
        return HttpResponse::BadRequest()
            .content_type("application/json")
            .body(reply.body.to_string());
    };
    match ws::WsResponseBuilder::new(UserStreamSession, &req, payload).start_with_addr() {
        Ok((addr, response)) => {
            let mut exchange = shared.trading();
            exchange.account_mut(account).streams_opened += 1;
            exchange.subscribers.push(Subscriber {
                account,
                listen_key: key,
                addr,
            });
            response
        }
        Err(e) => e.error_response(),
    }
}

// ---------------------------------------------------------------------------------
// Test hooks
// ---------------------------------------------------------------------------------

impl FakeVenue {
    /// Registers an account that signs with HMAC (`X-MBX-APIKEY` + secret) and holds
    /// `balance` USDT.
    pub fn add_hmac_account(
        &self,
        api_key: &str,
        api_secret: &str,
        balance: Decimal,
    ) -> FakeAccountId {
        self.shared().trading().add_account(
            Auth::Hmac {
                api_key: api_key.to_string(),
                api_secret: api_secret.to_string(),
            },
            balance,
        )
    }

    /// Registers an account of main wallet `user` that signs with API wallet `signer`
    /// (both `0x` addresses, any case) and holds `balance` USDT.
    pub fn add_wallet_account(&self, user: &str, signer: &str, balance: Decimal) -> FakeAccountId {
        self.shared().trading().add_account(
            Auth::Wallet {
                user: user.to_ascii_lowercase(),
                signer: signer.to_ascii_lowercase(),
            },
            balance,
        )
    }

    /// Sets the taker fee rate for every account (default 0.0004).
    pub fn set_taker_fee(&self, rate: Decimal) {
        self.shared().trading().taker_fee = rate;
    }

    /// Puts an account in hedge mode (`dualSidePosition` true) or back in one-way mode,
    /// as a user could on the website. In hedge mode every order is refused -4061.
    pub fn set_hedge_mode(&self, account: FakeAccountId, on: bool) {
        self.shared().trading().account_mut(account).hedge_mode = on;
    }

    /// Settles funding at `rate` on every open `symbol` position at the current price
    /// (FUNDING_FEE income, wallet change, ACCOUNT_UPDATE `m: FUNDING_FEE`).
    pub fn charge_funding(&self, symbol: &str, rate: Decimal) {
        let symbol = Self::listed_symbol(symbol);
        let now = self.shared().now();
        let price = self.current_price(symbol);
        self.shared()
            .trading()
            .charge_funding(symbol, rate, now, price);
    }

    /// The account's open positions (non-zero amounts), by symbol.
    pub fn positions(&self, account: FakeAccountId) -> Vec<FakePosition> {
        let shared = self.shared();
        let now = shared.now();
        let prices = shared.prices(now);
        let exchange = shared.trading();
        let a = exchange.account(account);
        let mut out: Vec<FakePosition> = a
            .positions
            .iter()
            .filter(|(_, p)| !p.amount.is_zero())
            .map(|(&symbol, p)| {
                let mark = prices.get(symbol).copied().unwrap_or(p.entry);
                let s = a.settings(symbol);
                FakePosition {
                    symbol,
                    amount: p.amount,
                    entry_price: p.entry,
                    mark_price: mark,
                    unrealized_pnl: p.amount * (mark - p.entry),
                    leverage: s.leverage,
                    margin_type: s.margin_type,
                    update_time: p.update_time,
                }
            })
            .collect();
        out.sort_by_key(|p| p.symbol);
        out
    }

    /// The account's open orders, oldest first.
    pub fn open_orders(&self, account: FakeAccountId) -> Vec<FakeOrder> {
        self.shared()
            .trading()
            .account(account)
            .open_orders()
            .cloned()
            .collect()
    }

    /// Every order of the account (any status), oldest first.
    pub fn orders(&self, account: FakeAccountId) -> Vec<FakeOrder> {
        self.shared().trading().account(account).orders.clone()
    }

    /// How many orders (any status) have a client order id starting with `prefix`:
    /// "no duplicate order" is `order_count(acct, id) == 1`.
    pub fn order_count(&self, account: FakeAccountId, client_order_id_prefix: &str) -> usize {
        self.shared()
            .trading()
            .account(account)
            .orders
            .iter()
            .filter(|o| o.client_order_id.starts_with(client_order_id_prefix))
            .count()
    }

    /// The wallet balance (USDT): deposits + realized PnL - fees + funding.
    pub fn balance(&self, account: FakeAccountId) -> Decimal {
        self.shared().trading().account(account).wallet
    }

    /// Every fill of the account, oldest first.
    pub fn trades(&self, account: FakeAccountId) -> Vec<FakeTrade> {
        self.shared().trading().account(account).trades.clone()
    }

    /// Every income row of the account, oldest first.
    pub fn income(&self, account: FakeAccountId) -> Vec<FakeIncome> {
        self.shared().trading().account(account).income.clone()
    }

    /// Market-closes the account's `symbol` position at the current price, as a user on
    /// the website would (a `web_` order; the client's TP/SL orders stay open). Returns
    /// the closing order, or `None` when there was no position.
    pub fn close_position_by_hand(
        &self,
        account: FakeAccountId,
        symbol: &str,
    ) -> Option<FakeOrder> {
        let symbol = Self::listed_symbol(symbol);
        let amount = self
            .shared()
            .trading()
            .account(account)
            .position(symbol)
            .amount;
        if amount.is_zero() {
            return None;
        }
        let side = if amount.is_sign_positive() {
            Side::Sell
        } else {
            Side::Buy
        };
        self.place_order_by_hand(
            account,
            HandOrder {
                symbol: symbol.to_string(),
                side,
                order_type: OrderType::Market,
                quantity: Some(amount.abs()),
                stop_price: None,
                reduce_only: true,
                close_position: false,
            },
        )
        .ok()
    }

    /// Opens (or adds to) a position the client never opened: a `web_` MARKET order of
    /// `amount` (signed: positive buys) filled at `price`, whatever the market. No
    /// margin or filter checks: the user did it, the venue allowed it.
    pub fn open_position_by_hand(
        &self,
        account: FakeAccountId,
        symbol: &str,
        amount: Decimal,
        price: Decimal,
    ) -> FakeOrder {
        let symbol = Self::listed_symbol(symbol);
        assert!(
            !amount.is_zero(),
            "open_position_by_hand needs a non-zero amount"
        );
        let shared = self.shared();
        let now = shared.now();
        let mut exchange = shared.trading();
        let order_id = exchange.next_order_id;
        exchange.next_order_id += 1;
        let order = FakeOrder {
            order_id,
            symbol,
            client_order_id: format!("web_{}", to_base36(order_id)),
            side: if amount.is_sign_positive() {
                Side::Buy
            } else {
                Side::Sell
            },
            order_type: OrderType::Market,
            status: OrderStatus::New,
            orig_qty: amount.abs(),
            executed_qty: Decimal::ZERO,
            avg_price: Decimal::ZERO,
            cum_quote: Decimal::ZERO,
            stop_price: Decimal::ZERO,
            reduce_only: false,
            close_position: false,
            working_type: WorkingType::ContractPrice,
            time: now,
            update_time: now,
        };
        let a = exchange.account_mut(account);
        a.orders.push(order.clone());
        let index = a.orders.len() - 1;
        exchange.emit(account, order_update(&order, "NEW", None, now));
        exchange.fill(account, index, amount.abs(), price, now, OrderType::Market);
        let filled = exchange.account(account).orders[index].clone();
        drop(exchange);
        self.shared().run_triggers();
        filled
    }

    /// Places an order by hand (a `web_` client order id) with the venue's checks, as
    /// the website would: `Err((code, msg))` when the venue refuses it.
    pub fn place_order_by_hand(
        &self,
        account: FakeAccountId,
        order: HandOrder,
    ) -> Result<FakeOrder, (i64, String)> {
        let shared = self.shared();
        let now = shared.now();
        let prices = shared.prices(now);
        let mut pairs: Vec<(&str, String)> = vec![
            ("symbol", order.symbol.clone()),
            ("side", order.side.as_str().to_string()),
            ("type", order.order_type.as_str().to_string()),
        ];
        if let Some(q) = order.quantity {
            pairs.push(("quantity", q.to_string()));
        }
        if let Some(p) = order.stop_price {
            pairs.push(("stopPrice", p.to_string()));
        }
        if order.reduce_only {
            pairs.push(("reduceOnly", "true".to_string()));
        }
        if order.close_position {
            pairs.push(("closePosition", "true".to_string()));
        }
        let refused = |r: Reply| {
            (
                r.body["code"].as_i64().unwrap_or(0),
                r.body["msg"].as_str().unwrap_or_default().to_string(),
            )
        };
        let request = parse_order(&Params::from_pairs(&pairs)).map_err(refused)?;
        let mut exchange = shared.trading();
        let (_, index) = exchange
            .place(account, request, now, &prices, "web_")
            .map_err(refused)?;
        let placed = exchange.account(account).orders[index].clone();
        drop(exchange);
        shared.run_triggers();
        Ok(placed)
    }

    /// Closes every user-stream WebSocket (listen keys stay valid): a client must
    /// notice and reconnect.
    pub fn drop_user_streams(&self) {
        self.shared().trading().hang_up(|_| true);
    }

    /// While `refuse` holds, every user-stream WebSocket is closed and new ones are
    /// refused (503), listen keys keep working: the client learns of fills and order
    /// changes only by polling (reconciliation).
    pub fn refuse_user_streams(&self, refuse: bool) {
        let mut exchange = self.shared().trading();
        exchange.refusing_streams = refuse;
        if refuse {
            exchange.hang_up(|_| true);
        }
    }

    /// How many user-stream upgrades were refused.
    pub fn user_streams_refused(&self) -> usize {
        self.shared().trading().streams_refused
    }

    /// Expires every listen key: each stream gets `listenKeyExpired` and is closed; the
    /// client must create a new key.
    pub fn expire_listen_keys(&self) {
        let now = self.shared().now();
        self.shared().trading().expire_keys(now, true);
    }

    /// Open user-stream WebSockets of the account.
    pub fn user_stream_count(&self, account: FakeAccountId) -> usize {
        let mut exchange = self.shared().trading();
        exchange.subscribers.retain(|s| s.addr.connected());
        exchange
            .subscribers
            .iter()
            .filter(|s| s.account == account)
            .count()
    }

    /// User-stream WebSockets of the account upgraded so far, closed ones included:
    /// with [`FakeVenue::user_stream_count`] it tells one connection from the next.
    pub fn user_streams_opened(&self, account: FakeAccountId) -> usize {
        self.shared().trading().account(account).streams_opened
    }

    fn listed_symbol(symbol: &str) -> &'static str {
        symbol_rules(symbol)
            .map(|r| r.symbol)
            .unwrap_or_else(|| panic!("the fake venue does not list {symbol}"))
    }
}
