//! Venue clients.

/// AsterDEX (Binance-compatible USDT-M futures) REST.
pub mod aster;
/// Venue errors (transport, timeouts, refusals, rate limits, bans, bad answers).
pub mod error;
/// The live AsterDEX venue of one account (orders, user stream, reconciliation).
pub mod live;
/// Reconciliation rules: vibex's book against the venue's (venue authoritative).
pub mod reconcile;
/// The paper venue as an exchange behind the same trait (simulated account).
pub mod sim;
/// Venue-neutral orders, positions, balances, trades and income.
pub mod venue;
