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

/// Public market-data client and its retry policy.
pub mod market;
/// Request signing: HMAC (API key) and wallet-signer (EIP-191) modes, and their credentials.
pub mod sign;
/// Serde shapes of the venue's JSON and their translation into vibex values.
pub mod wire;

pub use market::{
    ExchangeInfo, MarketClient, OpenInterest, PremiumIndex, RateLimit, RetryPolicy, SkippedSymbol,
};
