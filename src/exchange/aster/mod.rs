//! AsterDEX USDT-M futures over REST (Binance-compatible API).
//!
//! Entry points: [`MarketClient`] (public market data: server time, symbol rules,
//! klines, premium index and funding, open interest) built with a [`RetryPolicy`].
//! Errors are [`crate::exchange::error::VenueError`].
//!
//! Layout: `market` holds the client, its retry loop and the values it returns; `wire`
//! holds the JSON shapes as the venue sends them and their strict translation (money
//! parsed from text, never through `f64`).
//!
//! Invariants: no request without a timeout; no panic on anything the venue sends; no
//! full URL (with query) in an error or a log line.

/// The per-base-URL request gate (weight, 429 cool-down, 418 ban).
pub mod gate;
/// One HTTP exchange with the venue (gate, timeout, error classification).
pub mod http;
/// Public market-data client and its retry policy.
pub mod market;
/// Shapes of the signed endpoints and the user data stream.
pub mod trade_wire;
/// Serde shapes of the venue's JSON and their translation into vibex values.
pub mod wire;

pub use market::{
    ExchangeInfo, MarketClient, OpenInterest, PremiumIndex, RateLimit, RetryPolicy, SkippedSymbol,
};
