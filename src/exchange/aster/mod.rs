//! AsterDEX USDT-M futures over REST (Binance-compatible API).
//!
//! Entry points: [`MarketClient`] (public market data: server time, symbol rules,
//! klines, premium index and funding, open interest) built with a [`RetryPolicy`];
//! [`trade::TradeClient`] (a live account's signed requests, with
//! [`sign::Credentials`]); [`user_stream::run`] (its user data stream). Errors are
//! [`crate::exchange::error::VenueError`].
//!
//! Layout: `gate` is the per-IP limiter every client of a base URL shares; `http` is
//! one request through it; `market` and `trade` are the public and signed clients;
//! `wire` and `trade_wire` hold the JSON shapes as the venue sends them and their
//! strict translation (money parsed from text, never through `f64`).
//!
//! Invariants: no request without a timeout; no panic on anything the venue sends; no
//! full URL (with query) in an error or a log line.

/// The per-base-URL request gate (weight, 429 cool-down, 418 ban).
pub mod gate;
/// One HTTP exchange with the venue (gate, timeout, error classification).
pub mod http;
/// Public market-data client and its retry policy.
pub mod market;
/// Request signing: HMAC (API key) and wallet-signer (EIP-191) modes, and their credentials.
pub mod sign;
/// The signed client of a live account: orders, account state, listen keys.
pub mod trade;
/// Shapes of the signed endpoints and the user data stream.
pub mod trade_wire;
/// The user data stream (listen key, WebSocket, keepalive, reconnection).
pub mod user_stream;
/// Serde shapes of the venue's JSON and their translation into vibex values.
pub mod wire;

pub use market::{
    ExchangeInfo, MarketClient, OpenInterest, PremiumIndex, RateLimit, RetryPolicy, SkippedSymbol,
};
