//! AsterDEX public market data over REST (no key needed): server time, symbol rules,
//! klines, mark price and funding, open interest.
//!
//! Entry points: [`MarketClient::new`] with a [`RetryPolicy`], then its async methods
//! ([`MarketClient::server_time`], [`MarketClient::exchange_info`],
//! [`MarketClient::klines`], [`MarketClient::premium_index`],
//! [`MarketClient::open_interest`]); [`MarketClient::used_weight`] for rate limiting.
//!
//! Invariants:
//! - Every request has a timeout ([`RetryPolicy::timeout`]) and at most
//!   `1 + max_retries` attempts. Retries (exponential backoff, full jitter) happen only
//!   for transport errors, timeouts, 5xx and 429; a 429 waits the venue's
//!   `Retry-After` when it says one, and gives up at once with
//!   [`VenueError::RateLimited`] when that is longer than [`RetryPolicy::max_delay`].
//!   418 (banned) and other 4xx are returned at once.
//! - Errors name the endpoint path, never the full URL.
//! - Every response's `X-MBX-USED-WEIGHT-1M` is recorded (shared by clones).
//! - All requests here are public GETs, safe to repeat. Signed order requests must not
//!   reuse this retry loop blindly (a 503 there means "outcome unknown").

use crate::domain::instrument::SymbolRules;
use crate::domain::types::{Candle, Symbol};
use crate::exchange::error::VenueError;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::gate::{weight_of, VenueGate};
use super::http::{retrying, Request, VenueHttp};
use super::wire;

/// `GET /fapi/v1/ping`.
pub const PING: &str = "/fapi/v1/ping";
/// `GET /fapi/v1/time`.
pub const TIME: &str = "/fapi/v1/time";
/// `GET /fapi/v1/exchangeInfo`.
pub const EXCHANGE_INFO: &str = "/fapi/v1/exchangeInfo";
/// `GET /fapi/v1/klines`.
pub const KLINES: &str = "/fapi/v1/klines";
/// `GET /fapi/v1/premiumIndex`.
pub const PREMIUM_INDEX: &str = "/fapi/v1/premiumIndex";
/// `GET /fapi/v1/openInterest`.
pub const OPEN_INTEREST: &str = "/fapi/v1/openInterest";

pub use super::http::USED_WEIGHT_HEADER;

/// The largest `limit` the klines endpoint accepts.
pub const MAX_KLINES: u32 = 1500;

/// How hard to try before giving up on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Backoff ceiling before the first retry; doubles for each further retry.
    pub base_delay: Duration,
    /// Upper bound of any wait inside one call (backoff and honoured `Retry-After`).
    pub max_delay: Duration,
    /// Time limit of each attempt (connect, send, read the whole body).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, 200 ms base, 5 s cap, 10 s per attempt.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The longest wait before retry number `retry` (0 for the first retry):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        crate::backoff::ceiling(self.base_delay, self.max_delay, retry)
    }

    /// A random wait in `[0, backoff_ceiling(retry)]` ("full jitter").
    pub fn backoff(&self, retry: u32) -> Duration {
        crate::backoff::full_jitter(self.base_delay, self.max_delay, retry)
    }
}

/// One rate limit the venue declares in `exchangeInfo.rateLimits`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// `REQUEST_WEIGHT` or `ORDERS`.
    pub kind: String,
    /// `SECOND`, `MINUTE`, `DAY`.
    pub interval: String,
    /// Number of `interval`s in the window.
    pub interval_num: u32,
    /// Allowed amount per window.
    pub limit: u32,
}

/// A symbol entry of `exchangeInfo` that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedSymbol {
    /// The symbol name, or `symbols[i]` when even that was missing.
    pub symbol: String,
    /// What was wrong with it.
    pub reason: String,
}

/// The venue's listing: trading rules per symbol and declared rate limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExchangeInfo {
    /// The server clock when the listing was made, if sent.
    pub server_time: Option<DateTime<Utc>>,
    /// Rules per symbol.
    pub symbols: BTreeMap<Symbol, SymbolRules>,
    /// Declared rate limits.
    pub rate_limits: Vec<RateLimit>,
    /// Entries that could not be read (log them; the others are usable).
    pub skipped: Vec<SkippedSymbol>,
}

impl ExchangeInfo {
    /// The rules of `symbol`, if listed.
    pub fn rules(&self, symbol: &Symbol) -> Option<&SymbolRules> {
        self.symbols.get(symbol)
    }

    /// The request-weight allowance per minute (`REQUEST_WEIGHT`, 1 `MINUTE`), if
    /// declared.
    pub fn request_weight_per_minute(&self) -> Option<u32> {
        self.rate_limits
            .iter()
            .find(|r| r.kind == "REQUEST_WEIGHT" && r.interval == "MINUTE" && r.interval_num == 1)
            .map(|r| r.limit)
    }
}

/// Mark price, index price and funding of one perpetual (`premiumIndex`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PremiumIndex {
    /// The symbol.
    pub symbol: Symbol,
    /// Mark price: what PnL, margin and liquidation use.
    pub mark_price: Decimal,
    /// Index price: the spot composite.
    pub index_price: Decimal,
    /// Funding rate of the running period (0.0001 = 0.01 %).
    pub last_funding_rate: Decimal,
    /// When the running funding period settles.
    pub next_funding_time: DateTime<Utc>,
    /// Interest rate component, when sent.
    pub interest_rate: Option<Decimal>,
    /// Server time of these values.
    pub time: DateTime<Utc>,
}

/// Open interest of one perpetual.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenInterest {
    /// The symbol.
    pub symbol: Symbol,
    /// Open contracts in base-asset units.
    pub open_interest: Decimal,
    /// Server time of the value.
    pub time: DateTime<Utc>,
}

/// Client of the venue's public market-data endpoints. Cheap to clone; clones share
/// the connection pool, and every client of one base URL shares its [`VenueGate`].
#[derive(Clone, Debug)]
pub struct MarketClient {
    http: VenueHttp,
    policy: RetryPolicy,
    log: slog::Logger,
}

impl MarketClient {
    /// A client for the venue at `base_url` (`https://fapi.asterdex.com`, or a loopback
    /// fake in tests). Fails with [`VenueError::InvalidUrl`] when the URL is not an
    /// absolute http(s) URL without query, fragment or credentials.
    pub fn new(base_url: &str, policy: RetryPolicy) -> Result<MarketClient, VenueError> {
        Ok(MarketClient {
            http: VenueHttp::new(base_url, policy.timeout)?,
            policy,
            log: slog::Logger::root(slog::Discard, slog::o!()),
        })
    }

    /// The same client logging retries to `log` (warnings with endpoint, attempt,
    /// wait and error). Without it nothing is logged.
    pub fn with_logger(mut self, log: slog::Logger) -> Self {
        self.log = log;
        self
    }

    /// The base URL requests go to (no trailing slash).
    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    /// The request gate shared by every client of this base URL.
    pub fn gate(&self) -> &Arc<VenueGate> {
        self.http.gate()
    }

    /// The retry policy in force.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Request weight this IP has used in the current minute, as last reported by the
    /// venue (`X-MBX-USED-WEIGHT-1M`); 0 before the first answer.
    pub fn used_weight(&self) -> u32 {
        self.http.gate().status().used_weight
    }

    /// Checks that the venue answers (`GET /fapi/v1/ping`).
    pub async fn ping(&self) -> Result<(), VenueError> {
        self.get_bytes(PING, &[]).await.map(|_| ())
    }

    /// The venue's clock (`GET /fapi/v1/time`), to measure the local clock offset for
    /// signed requests.
    pub async fn server_time(&self) -> Result<DateTime<Utc>, VenueError> {
        let wire: wire::ServerTimeWire = self.get_json(TIME, &[]).await?;
        Ok(wire.server_time.0)
    }

    /// Trading rules of every listed symbol (`GET /fapi/v1/exchangeInfo`).
    pub async fn exchange_info(&self) -> Result<ExchangeInfo, VenueError> {
        let body = self.get_bytes(EXCHANGE_INFO, &[]).await?;
        wire::exchange_info(&body).map_err(|detail| VenueError::Decode {
            endpoint: EXCHANGE_INFO.to_string(),
            detail,
        })
    }

    /// The last `limit` bars of `symbol` at `interval` (`1m`, `5m`, `4h`, ...), oldest
    /// first; the last bar is still open (`GET /fapi/v1/klines`). The venue refuses a
    /// `limit` above [`MAX_KLINES`] or an unknown interval ([`VenueError::Api`]).
    pub async fn klines(
        &self,
        symbol: &Symbol,
        interval: &str,
        limit: u32,
    ) -> Result<Vec<Candle>, VenueError> {
        let limit = limit.to_string();
        let query = [
            ("symbol", symbol.as_str()),
            ("interval", interval),
            ("limit", limit.as_str()),
        ];
        let body = self.get_bytes(KLINES, &query).await?;
        wire::candles(&body).map_err(|detail| VenueError::Decode {
            endpoint: KLINES.to_string(),
            detail: format!("{symbol} {interval}: {detail}"),
        })
    }

    /// Mark price, index price and funding of `symbol` (`GET /fapi/v1/premiumIndex`).
    pub async fn premium_index(&self, symbol: &Symbol) -> Result<PremiumIndex, VenueError> {
        let wire: wire::PremiumIndexWire = self
            .get_json(PREMIUM_INDEX, &[("symbol", symbol.as_str())])
            .await
            .map_err(|e| with_symbol(e, symbol))?;
        Ok(PremiumIndex {
            symbol: Symbol(wire.symbol),
            mark_price: wire.mark_price.0,
            index_price: wire.index_price.0,
            last_funding_rate: wire.last_funding_rate.0,
            next_funding_time: wire.next_funding_time.0,
            interest_rate: wire.interest_rate.map(|r| r.0),
            time: wire.time.0,
        })
    }

    /// Open interest of `symbol` (`GET /fapi/v1/openInterest`).
    pub async fn open_interest(&self, symbol: &Symbol) -> Result<OpenInterest, VenueError> {
        let wire: wire::OpenInterestWire = self
            .get_json(OPEN_INTEREST, &[("symbol", symbol.as_str())])
            .await
            .map_err(|e| with_symbol(e, symbol))?;
        Ok(OpenInterest {
            symbol: Symbol(wire.symbol),
            open_interest: wire.open_interest.0,
            time: wire.time.0,
        })
    }

    /// GET with retries, then JSON into `T`.
    async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        query: &[(&str, &str)],
    ) -> Result<T, VenueError> {
        let body = self.get_bytes(endpoint, query).await?;
        wire::decode_json(&body).map_err(|detail| VenueError::Decode {
            endpoint: endpoint.to_string(),
            detail,
        })
    }

    /// GET with the retry policy; returns the body of the first 2xx answer.
    async fn get_bytes(
        &self,
        endpoint: &'static str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, VenueError> {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let weight = weight_of(endpoint, query);
        retrying(&self.policy, &self.log, endpoint, || {
            self.http.send(Request {
                method: reqwest::Method::GET,
                path: endpoint,
                encoded: &encoded,
                api_key: None,
                weight,
                max_wait: self.policy.max_delay,
            })
        })
        .await
    }
}

/// Adds the symbol to a decode error's detail (the endpoint alone does not say which).
fn with_symbol(err: VenueError, symbol: &Symbol) -> VenueError {
    match err {
        VenueError::Decode { endpoint, detail } => VenueError::Decode {
            endpoint,
            detail: format!("{symbol}: {detail}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff_ceiling(0), Duration::from_millis(200));
        assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(400));
        assert_eq!(policy.backoff_ceiling(4), Duration::from_millis(3200));
        assert_eq!(policy.backoff_ceiling(5), Duration::from_secs(5));
        assert_eq!(policy.backoff_ceiling(40), Duration::from_secs(5));
        for retry in 0..10 {
            assert!(policy.backoff(retry) <= policy.backoff_ceiling(retry));
        }
    }
}
