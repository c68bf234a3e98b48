//! Venue clients.

/// AsterDEX (Binance-compatible USDT-M futures) REST.
pub mod aster;
/// Venue errors (transport, timeouts, refusals, rate limits, bans, bad answers).
pub mod error;
/// The paper venue: simulated account plus order and position bookkeeping.
pub mod paper;
/// Reconciliation rules: vibex's book against the venue's (venue authoritative).
pub mod reconcile;
/// Venue-neutral orders, positions, balances, trades and income.
pub mod venue;
