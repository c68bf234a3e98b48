//! The signed AsterDEX client of one live account: account state, orders, the user
//! data stream's listen key.
//!
//! Entry points: [`TradeClient::new`] (with the account's [`Credentials`]), then
//! [`TradeClient::sync_time`] once, the setup calls ([`TradeClient::set_leverage`],
//! [`TradeClient::set_margin_type`], [`TradeClient::is_hedge_mode`]), orders
//! ([`TradeClient::place_order`], [`TradeClient::query_order`],
//! [`TradeClient::cancel_order`], [`TradeClient::cancel_all`]) and reads
//! ([`TradeClient::snapshot`], [`TradeClient::user_trades`], [`TradeClient::income`]).
//!
//! Invariants:
//! - Every request is signed with the server-time offset measured by `sync_time`, and a
//!   small `recvWindow`; a `-1021` (timestamp outside the window) resyncs the clock and
//!   retries once.
//! - Every request passes the base URL's shared gate (weight, 429, 418).
//! - Reads, cancels and settings are repeatable and retried with backoff.
//! - An order is never sent twice blindly. When its outcome is unknown (timeout, 5xx,
//!   a cut-off or unreadable answer) [`TradeClient::place_order`] first looks the order
//!   up by its client order id, and only sends it again (same id) when the venue says
//!   it does not exist. If even that cannot be settled, the caller gets
//!   [`VenueError::OutcomeUnknown`] and reconciliation settles it later.
//! - Errors and log lines carry endpoint paths, never query strings or signatures.

use crate::domain::types::Symbol;
use crate::exchange::error::VenueError;
use crate::exchange::venue::{
    OrderRequest, VenueBalance, VenueFuture, VenueIncome, VenueOrder, VenuePosition, VenueSnapshot,
    VenueTrade,
};
use chrono::{DateTime, Utc};
use reqwest::Method;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::gate::{weight_of, VenueGate};
use super::http::{log_retry, retry_wait, Request, Sent, VenueHttp};
use super::market::{RetryPolicy, TIME};
use super::sign::{Credentials, SignError};
use super::trade_wire::{
    AccountWire, DualSideWire, IncomeWire, ListenKeyWire, OrderWire, PositionRiskWire,
    UserTradeWire,
};
use super::wire::{decode_json, ServerTimeWire};

/// `POST/GET/DELETE /fapi/v1/order`.
pub const ORDER: &str = "/fapi/v1/order";
/// `DELETE /fapi/v1/allOpenOrders`.
pub const ALL_OPEN_ORDERS: &str = "/fapi/v1/allOpenOrders";
/// `GET /fapi/v1/openOrders`.
pub const OPEN_ORDERS: &str = "/fapi/v1/openOrders";
/// `POST /fapi/v1/leverage`.
pub const LEVERAGE: &str = "/fapi/v1/leverage";
/// `POST /fapi/v1/marginType`.
pub const MARGIN_TYPE: &str = "/fapi/v1/marginType";
/// `GET /fapi/v1/positionSide/dual`.
pub const POSITION_MODE: &str = "/fapi/v1/positionSide/dual";
/// `GET /fapi/v2/account`.
pub const ACCOUNT: &str = "/fapi/v2/account";
/// `GET /fapi/v2/positionRisk`.
pub const POSITION_RISK: &str = "/fapi/v2/positionRisk";
/// `GET /fapi/v1/userTrades`.
pub const USER_TRADES: &str = "/fapi/v1/userTrades";
/// `GET /fapi/v1/income`.
pub const INCOME: &str = "/fapi/v1/income";
/// `POST/PUT/DELETE /fapi/v1/listenKey`.
pub const LISTEN_KEY: &str = "/fapi/v1/listenKey";

/// Venue code: timestamp outside the recvWindow.
pub const CODE_TIMESTAMP: i64 = -1021;
/// Venue code: unknown order (query).
pub const CODE_NO_SUCH_ORDER: i64 = -2013;
/// Venue code: unknown order (cancel).
pub const CODE_CANCEL_REJECTED: i64 = -2011;
/// Venue code: margin type already what was asked.
pub const CODE_NO_NEED_TO_CHANGE_MARGIN: i64 = -4046;

/// How long to let a venue settle an order whose answer was lost before looking it up.
const SETTLE_BEFORE_LOOKUP: Duration = Duration::from_millis(300);

/// The clock shared by clones: offset to the server and the last wallet nonce.
#[derive(Debug, Default)]
struct Clock {
    offset_ms: AtomicI64,
    synced: AtomicBool,
    last_nonce: AtomicU64,
    /// One first sync at a time (parallel reads of a fresh client share it).
    first_sync: tokio::sync::Mutex<()>,
}

impl Clock {
    fn timestamp_ms(&self) -> i64 {
        Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Microseconds, strictly increasing across calls.
    fn nonce_us(&self, timestamp_ms: i64) -> u64 {
        let candidate = u64::try_from(timestamp_ms)
            .unwrap_or(0)
            .saturating_mul(1000);
        let mut last = self.last_nonce.load(Ordering::Relaxed);
        loop {
            let next = candidate.max(last + 1);
            match self.last_nonce.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// How a signed request may be repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Reads, cancels, settings: retried with backoff.
    Safe,
    /// An order: never resent here; an unknown outcome is reported as such.
    Never,
}

/// The signed client of one account. Cheap to clone; clones share the connection
/// pool, the clock offset and the gate.
#[derive(Clone, Debug)]
pub struct TradeClient {
    http: VenueHttp,
    creds: Arc<Credentials>,
    recv_window_ms: u64,
    policy: RetryPolicy,
    clock: Arc<Clock>,
    log: slog::Logger,
}

fn sign_failed(path: &str, e: SignError) -> VenueError {
    VenueError::Decode {
        endpoint: path.to_string(),
        detail: format!("could not sign the request: {e}"),
    }
}

fn decode_err(endpoint: &str, detail: String) -> VenueError {
    VenueError::Decode {
        endpoint: endpoint.to_string(),
        detail,
    }
}

/// A decimal as the venue wants it in a parameter: plain digits, no exponent, no
/// trailing zeros.
pub fn param_decimal(value: rust_decimal::Decimal) -> String {
    value.normalize().to_string()
}

fn pairs(params: &[(&str, String)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

impl TradeClient {
    /// A client for `base_url` signing with `creds`. `recv_window_ms` is how long a
    /// signed request stays valid (keep it small: 5000 or less).
    pub fn new(
        base_url: &str,
        creds: Credentials,
        recv_window_ms: u64,
        policy: RetryPolicy,
    ) -> Result<TradeClient, VenueError> {
        Ok(TradeClient {
            http: VenueHttp::new(base_url, policy.timeout)?,
            creds: Arc::new(creds),
            recv_window_ms,
            policy,
            clock: Arc::new(Clock::default()),
            log: slog::Logger::root(slog::Discard, slog::o!()),
        })
    }

    /// The same client logging retries and recoveries to `log`.
    pub fn with_logger(mut self, log: slog::Logger) -> Self {
        self.log = log;
        self
    }

    /// The shared gate of the base URL.
    pub fn gate(&self) -> &Arc<VenueGate> {
        self.http.gate()
    }

    /// The base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    /// `hmac` or `wallet`.
    pub fn signing_mode(&self) -> &'static str {
        self.creds.mode()
    }

    /// Server time minus local time, in ms, as last measured (0 before `sync_time`).
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock.offset_ms.load(Ordering::Relaxed)
    }

    /// Measures the offset of the venue's clock (`GET /fapi/v1/time`), taking the
    /// middle of the round trip as the moment the server read its clock. Returns it.
    pub async fn sync_time(&self) -> Result<i64, VenueError> {
        let before = Utc::now().timestamp_millis();
        let body = self
            .repeat(TIME, || {
                self.http.send(Request {
                    method: Method::GET,
                    path: TIME,
                    encoded: "",
                    api_key: None,
                    weight: 1,
                    max_wait: self.policy.max_delay,
                })
            })
            .await?;
        let after = Utc::now().timestamp_millis();
        let wire: ServerTimeWire = decode_json(&body).map_err(|d| decode_err(TIME, d))?;
        let offset = wire.server_time.0.timestamp_millis() - (before + after) / 2;
        self.clock.offset_ms.store(offset, Ordering::Relaxed);
        self.clock.synced.store(true, Ordering::Relaxed);
        // Nonces follow the venue's clock: after it moved back, nonces made with the old
        // offset would stay ahead of it (and outside its 5 s window) for good.
        self.clock.last_nonce.store(0, Ordering::Relaxed);
        Ok(offset)
    }

    /// Retries a repeatable request by the policy.
    async fn repeat<F, Fut>(&self, endpoint: &str, attempt: F) -> Result<Vec<u8>, VenueError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, (VenueError, Sent)>>,
    {
        super::http::retrying(&self.policy, &self.log, endpoint, attempt).await
    }

    /// One signed call: sign with a fresh timestamp, send through the gate, resync
    /// once on -1021; retry repeatable calls; report an order's unknown outcome.
    async fn signed(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        repeat: Repeat,
        client_order_id: Option<&str>,
    ) -> Result<Vec<u8>, VenueError> {
        if !self.clock.synced.load(Ordering::Relaxed) {
            let _first = self.clock.first_sync.lock().await;
            if !self.clock.synced.load(Ordering::Relaxed) {
                self.sync_time().await?;
            }
        }
        let business = pairs(params);
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let weight = weight_of(path, &borrowed);
        let mut resynced = false;
        let mut retry = 0;
        loop {
            let ts = self.clock.timestamp_ms();
            let nonce = self.clock.nonce_us(ts);
            let req = self
                .creds
                .sign(path, &business, ts, self.recv_window_ms, nonce)
                .map_err(|e| sign_failed(path, e))?;
            let result = self
                .http
                .send(Request {
                    method: method.clone(),
                    path: &req.path,
                    encoded: &req.encoded,
                    api_key: req.api_key.as_deref(),
                    weight,
                    max_wait: self.policy.max_delay,
                })
                .await;
            let (err, sent) = match result {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            if err.venue_code() == Some(CODE_TIMESTAMP) && !resynced {
                resynced = true;
                let offset = self.sync_time().await?;
                slog::warn!(self.log, "venue clock drift: resynced and retrying once";
                    "endpoint" => path, "offset_ms" => offset);
                continue;
            }
            match repeat {
                Repeat::Never => {
                    let unknown = sent == Sent::Maybe
                        && matches!(
                            err,
                            VenueError::Timeout { .. }
                                | VenueError::Transport { .. }
                                | VenueError::Http { status: 500.., .. }
                        );
                    if unknown {
                        return Err(VenueError::OutcomeUnknown {
                            endpoint: path.to_string(),
                            client_order_id: client_order_id.unwrap_or("?").to_string(),
                            detail: err.to_string(),
                        });
                    }
                    return Err(err);
                }
                Repeat::Safe => {
                    let Some(wait) = retry_wait(&self.policy, &err, retry) else {
                        return Err(err);
                    };
                    retry += 1;
                    log_retry(&self.log, path, retry, &self.policy, wait, &err);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// True when the account is in hedge (dual-side) position mode, which vibex does
    /// not trade (`GET /fapi/v1/positionSide/dual`).
    pub async fn is_hedge_mode(&self) -> Result<bool, VenueError> {
        let body = self
            .signed(Method::GET, POSITION_MODE, &[], Repeat::Safe, None)
            .await?;
        let wire: DualSideWire = decode_json(&body).map_err(|d| decode_err(POSITION_MODE, d))?;
        Ok(wire.dual_side_position)
    }

    /// Sets the leverage of `symbol` (`POST /fapi/v1/leverage`).
    pub async fn set_leverage(&self, symbol: &Symbol, leverage: u32) -> Result<(), VenueError> {
        self.signed(
            Method::POST,
            LEVERAGE,
            &[
                ("symbol", symbol.to_string()),
                ("leverage", leverage.to_string()),
            ],
            Repeat::Safe,
            None,
        )
        .await
        .map(|_| ())
    }

    /// Sets the margin type of `symbol` (`ISOLATED` or `CROSSED`); "no need to change"
    /// counts as success (`POST /fapi/v1/marginType`).
    pub async fn set_margin_type(
        &self,
        symbol: &Symbol,
        margin_type: &str,
    ) -> Result<(), VenueError> {
        match self
            .signed(
                Method::POST,
                MARGIN_TYPE,
                &[
                    ("symbol", symbol.to_string()),
                    ("marginType", margin_type.to_string()),
                ],
                Repeat::Safe,
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.venue_code() == Some(CODE_NO_NEED_TO_CHANGE_MARGIN) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn order_params(order: &OrderRequest) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("symbol", order.symbol.to_string()),
            ("side", order.side.as_str().to_string()),
            ("type", order.kind.as_str().to_string()),
        ];
        if let Some(q) = order.quantity {
            p.push(("quantity", param_decimal(q)));
        }
        if let Some(s) = order.stop_price {
            p.push(("stopPrice", param_decimal(s)));
            p.push(("workingType", "MARK_PRICE".to_string()));
        }
        if order.close_position {
            p.push(("closePosition", "true".to_string()));
        } else if order.reduce_only {
            p.push(("reduceOnly", "true".to_string()));
        }
        p.push(("newClientOrderId", order.client_order_id.clone()));
        p.push(("newOrderRespType", "RESULT".to_string()));
        p
    }

    /// Places `order` (`POST /fapi/v1/order`). On an unknown outcome the order is
    /// looked up by its client order id; it is sent again (same id) only when the
    /// venue says it does not exist. See the module invariants.
    pub async fn place_order(&self, order: &OrderRequest) -> Result<VenueOrder, VenueError> {
        let params = Self::order_params(order);
        let coid = order.client_order_id.as_str();
        let mut sends = 0;
        loop {
            sends += 1;
            let outcome = self
                .signed(Method::POST, ORDER, &params, Repeat::Never, Some(coid))
                .await
                .and_then(|body| {
                    decode_json::<OrderWire>(&body)
                        .and_then(OrderWire::into_order)
                        .map_err(|detail| VenueError::OutcomeUnknown {
                            endpoint: ORDER.to_string(),
                            client_order_id: coid.to_string(),
                            detail: format!("unreadable answer: {detail}"),
                        })
                });
            let unknown = match outcome {
                Err(e @ VenueError::OutcomeUnknown { .. }) => e,
                other => return other,
            };
            slog::warn!(self.log, "order outcome unknown; looking it up by client order id";
                "client_order_id" => coid, "symbol" => %order.symbol, "error" => %unknown);
            tokio::time::sleep(SETTLE_BEFORE_LOOKUP).await;
            match self.query_order(&order.symbol, coid).await {
                Ok(Some(found)) => {
                    slog::info!(self.log, "order found on the venue after an unknown outcome";
                        "client_order_id" => coid, "status" => found.status.as_str());
                    return Ok(found);
                }
                Ok(None) if sends < 2 => {
                    slog::warn!(self.log, "order not on the venue after an unknown outcome; sending it again";
                        "client_order_id" => coid);
                }
                Ok(None) => return Err(unknown),
                Err(e) => {
                    slog::warn!(self.log, "order lookup failed; outcome stays unknown";
                        "client_order_id" => coid, "error" => %e);
                    return Err(unknown);
                }
            }
        }
    }

    /// The order with `client_order_id`, `None` when the venue does not know it
    /// (`GET /fapi/v1/order`).
    pub async fn query_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Option<VenueOrder>, VenueError> {
        self.order_by_id(Method::GET, symbol, client_order_id, &[CODE_NO_SUCH_ORDER])
            .await
    }

    /// Cancels the order with `client_order_id`; `None` when the venue does not know
    /// it or it is no longer open (`DELETE /fapi/v1/order`).
    pub async fn cancel_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Option<VenueOrder>, VenueError> {
        let gone = [CODE_NO_SUCH_ORDER, CODE_CANCEL_REJECTED];
        self.order_by_id(Method::DELETE, symbol, client_order_id, &gone)
            .await
    }

    /// `GET` or `DELETE /fapi/v1/order` by client order id; the venue codes in `gone`
    /// mean "no such (open) order" and answer `None`.
    async fn order_by_id(
        &self,
        method: Method,
        symbol: &Symbol,
        client_order_id: &str,
        gone: &[i64],
    ) -> Result<Option<VenueOrder>, VenueError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("origClientOrderId", client_order_id.to_string()),
        ];
        match self
            .signed(method, ORDER, &params, Repeat::Safe, None)
            .await
        {
            Ok(body) => decode_json::<OrderWire>(&body)
                .and_then(OrderWire::into_order)
                .map(Some)
                .map_err(|d| decode_err(ORDER, d)),
            Err(e) if e.venue_code().is_some_and(|c| gone.contains(&c)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Cancels every open order of `symbol` (`DELETE /fapi/v1/allOpenOrders`).
    pub async fn cancel_all(&self, symbol: &Symbol) -> Result<(), VenueError> {
        self.signed(
            Method::DELETE,
            ALL_OPEN_ORDERS,
            &[("symbol", symbol.to_string())],
            Repeat::Safe,
            None,
        )
        .await
        .map(|_| ())
    }

    /// Working orders, of one symbol or all (`GET /fapi/v1/openOrders`).
    pub async fn open_orders(
        &self,
        symbol: Option<&Symbol>,
    ) -> Result<Vec<VenueOrder>, VenueError> {
        let params: Vec<(&str, String)> = symbol
            .map(|s| vec![("symbol", s.to_string())])
            .unwrap_or_default();
        let body = self
            .signed(Method::GET, OPEN_ORDERS, &params, Repeat::Safe, None)
            .await?;
        let wire: Vec<OrderWire> = decode_json(&body).map_err(|d| decode_err(OPEN_ORDERS, d))?;
        wire.into_iter()
            .map(OrderWire::into_order)
            .collect::<Result<_, _>>()
            .map_err(|d| decode_err(OPEN_ORDERS, d))
    }

    /// Open positions (`GET /fapi/v2/positionRisk`; flat symbols left out). Refuses an
    /// account in hedge mode.
    pub async fn positions(&self) -> Result<Vec<VenuePosition>, VenueError> {
        let body = self
            .signed(Method::GET, POSITION_RISK, &[], Repeat::Safe, None)
            .await?;
        let wire: Vec<PositionRiskWire> =
            decode_json(&body).map_err(|d| decode_err(POSITION_RISK, d))?;
        let mut out = Vec::new();
        for p in wire {
            if let Some(p) = p
                .into_position()
                .map_err(|d| decode_err(POSITION_RISK, d))?
            {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Account totals (`GET /fapi/v2/account`).
    pub async fn balance(&self) -> Result<VenueBalance, VenueError> {
        let body = self
            .signed(Method::GET, ACCOUNT, &[], Repeat::Safe, None)
            .await?;
        let wire: AccountWire = decode_json(&body).map_err(|d| decode_err(ACCOUNT, d))?;
        Ok(wire.into_balance())
    }

    /// Balance, positions and open orders, read concurrently.
    pub async fn snapshot(&self) -> Result<VenueSnapshot, VenueError> {
        let (balance, positions, open_orders) =
            futures_util::try_join!(self.balance(), self.positions(), self.open_orders(None))?;
        Ok(VenueSnapshot {
            balance,
            positions,
            open_orders,
        })
    }

    /// Balance, positions (all symbols) and the open orders of `symbols` only, read
    /// concurrently: one request weight per symbol instead of 40 for every symbol.
    pub async fn snapshot_of(&self, symbols: &[Symbol]) -> Result<VenueSnapshot, VenueError> {
        let orders =
            futures_util::future::try_join_all(symbols.iter().map(|s| self.open_orders(Some(s))));
        let (balance, positions, open_orders) =
            futures_util::try_join!(self.balance(), self.positions(), orders)?;
        Ok(VenueSnapshot {
            balance,
            positions,
            open_orders: open_orders.into_iter().flatten().collect(),
        })
    }

    /// Fills of `symbol` since `start` (`GET /fapi/v1/userTrades`), oldest first.
    pub async fn user_trades(
        &self,
        symbol: &Symbol,
        start: Option<DateTime<Utc>>,
    ) -> Result<Vec<VenueTrade>, VenueError> {
        let mut params = vec![("symbol", symbol.to_string())];
        if let Some(start) = start {
            params.push(("startTime", start.timestamp_millis().to_string()));
        }
        let body = self
            .signed(Method::GET, USER_TRADES, &params, Repeat::Safe, None)
            .await?;
        let wire: Vec<UserTradeWire> =
            decode_json(&body).map_err(|d| decode_err(USER_TRADES, d))?;
        wire.into_iter()
            .map(UserTradeWire::into_trade)
            .collect::<Result<_, _>>()
            .map_err(|d| decode_err(USER_TRADES, d))
    }

    /// Income records since `start` (`GET /fapi/v1/income`), oldest first.
    pub async fn income(
        &self,
        start: Option<DateTime<Utc>>,
    ) -> Result<Vec<VenueIncome>, VenueError> {
        let mut params = vec![("limit", "1000".to_string())];
        if let Some(start) = start {
            params.push(("startTime", start.timestamp_millis().to_string()));
        }
        let body = self
            .signed(Method::GET, INCOME, &params, Repeat::Safe, None)
            .await?;
        let wire: Vec<IncomeWire> = decode_json(&body).map_err(|d| decode_err(INCOME, d))?;
        Ok(wire.into_iter().map(IncomeWire::into_income).collect())
    }

    /// Sends a listen-key request: key-only for HMAC accounts, signed for wallet ones.
    async fn listen_key_call(
        &self,
        method: Method,
        key: Option<&str>,
    ) -> Result<Vec<u8>, VenueError> {
        let params: Vec<(&str, String)> = key
            .map(|k| vec![("listenKey", k.to_string())])
            .unwrap_or_default();
        match self.creds.as_ref() {
            Credentials::Hmac { api_key, .. } => {
                let encoded = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                self.repeat(LISTEN_KEY, || {
                    self.http.send(Request {
                        method: method.clone(),
                        path: LISTEN_KEY,
                        encoded: &encoded,
                        api_key: Some(api_key.expose()),
                        weight: 1,
                        max_wait: self.policy.max_delay,
                    })
                })
                .await
            }
            Credentials::Wallet { .. } => {
                self.signed(method, LISTEN_KEY, &params, Repeat::Safe, None)
                    .await
            }
        }
    }

    /// Opens a user data stream and returns its listen key (`POST /fapi/v1/listenKey`).
    pub async fn new_listen_key(&self) -> Result<String, VenueError> {
        let body = self.listen_key_call(Method::POST, None).await?;
        let wire: ListenKeyWire = decode_json(&body).map_err(|d| decode_err(LISTEN_KEY, d))?;
        Ok(wire.listen_key)
    }

    /// Extends the listen key's life by 60 minutes (`PUT /fapi/v1/listenKey`).
    pub async fn keepalive_listen_key(&self, key: &str) -> Result<(), VenueError> {
        self.listen_key_call(Method::PUT, Some(key))
            .await
            .map(|_| ())
    }

    /// Closes the user data stream (`DELETE /fapi/v1/listenKey`).
    pub async fn close_listen_key(&self, key: &str) -> Result<(), VenueError> {
        self.listen_key_call(Method::DELETE, Some(key))
            .await
            .map(|_| ())
    }
}

impl crate::exchange::venue::Exchange for TradeClient {
    fn sync_time(&self) -> VenueFuture<'_, i64> {
        Box::pin(TradeClient::sync_time(self))
    }
    fn is_hedge_mode(&self) -> VenueFuture<'_, bool> {
        Box::pin(TradeClient::is_hedge_mode(self))
    }
    fn set_leverage<'a>(&'a self, symbol: &'a Symbol, leverage: u32) -> VenueFuture<'a, ()> {
        Box::pin(TradeClient::set_leverage(self, symbol, leverage))
    }
    fn set_margin_type<'a>(
        &'a self,
        symbol: &'a Symbol,
        margin_type: &'a str,
    ) -> VenueFuture<'a, ()> {
        Box::pin(TradeClient::set_margin_type(self, symbol, margin_type))
    }
    fn place_order<'a>(&'a self, order: &'a OrderRequest) -> VenueFuture<'a, VenueOrder> {
        Box::pin(TradeClient::place_order(self, order))
    }
    fn query_order<'a>(
        &'a self,
        symbol: &'a Symbol,
        client_order_id: &'a str,
    ) -> VenueFuture<'a, Option<VenueOrder>> {
        Box::pin(TradeClient::query_order(self, symbol, client_order_id))
    }
    fn cancel_order<'a>(
        &'a self,
        symbol: &'a Symbol,
        client_order_id: &'a str,
    ) -> VenueFuture<'a, Option<VenueOrder>> {
        Box::pin(TradeClient::cancel_order(self, symbol, client_order_id))
    }
    fn cancel_all<'a>(&'a self, symbol: &'a Symbol) -> VenueFuture<'a, ()> {
        Box::pin(TradeClient::cancel_all(self, symbol))
    }
    fn snapshot(&self) -> VenueFuture<'_, VenueSnapshot> {
        Box::pin(TradeClient::snapshot(self))
    }
    fn snapshot_of<'a>(&'a self, symbols: &'a [Symbol]) -> VenueFuture<'a, VenueSnapshot> {
        Box::pin(TradeClient::snapshot_of(self, symbols))
    }
    fn user_trades<'a>(
        &'a self,
        symbol: &'a Symbol,
        since: Option<DateTime<Utc>>,
    ) -> VenueFuture<'a, Vec<VenueTrade>> {
        Box::pin(TradeClient::user_trades(self, symbol, since))
    }
    fn income(&self, since: Option<DateTime<Utc>>) -> VenueFuture<'_, Vec<VenueIncome>> {
        Box::pin(TradeClient::income(self, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::Side;
    use crate::exchange::venue::OrderKind;
    use rust_decimal::Decimal;

    #[test]
    fn nonces_strictly_increase() {
        let clock = Clock::default();
        let a = clock.nonce_us(1_700_000_000_000);
        let b = clock.nonce_us(1_700_000_000_000);
        let c = clock.nonce_us(1_699_999_999_000);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a, 1_700_000_000_000_000);
    }

    #[test]
    fn protection_orders_close_the_position_at_the_mark() {
        let tp = OrderRequest {
            symbol: Symbol("BTCUSDT".into()),
            side: Side::Sell,
            kind: OrderKind::TakeProfitMarket,
            quantity: None,
            stop_price: Some(Decimal::new(6500000, 2)),
            reduce_only: true,
            close_position: true,
            client_order_id: "vx-t-0011223344556677".into(),
        };
        let p = TradeClient::order_params(&tp);
        let get = |k: &str| p.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("type"), Some("TAKE_PROFIT_MARKET"));
        assert_eq!(get("stopPrice"), Some("65000"));
        assert_eq!(get("workingType"), Some("MARK_PRICE"));
        assert_eq!(get("closePosition"), Some("true"));
        assert_eq!(get("reduceOnly"), None, "closePosition excludes reduceOnly");
        assert_eq!(get("quantity"), None);
        assert_eq!(get("newClientOrderId"), Some("vx-t-0011223344556677"));
    }
}
