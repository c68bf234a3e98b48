//! Venues: what vibex needs from a futures exchange (the [`venue::Exchange`] trait and its
//! venue-neutral values), AsterDEX's clients, and the paper venue behind the same trait.

/// AsterDEX (Binance-compatible USDT-M futures) REST, signing and user data stream.
pub mod aster;
/// Venue errors (transport, timeouts, refusals, rate limits, bans, bad answers).
pub mod error;
/// The paper venue as an exchange behind the same trait (simulated account).
pub mod sim;
/// The Exchange trait and venue-neutral orders, positions, balances, trades, income and
/// user events.
pub mod venue;
