//! Venue clients.

/// AsterDEX (Binance-compatible USDT-M futures) REST.
pub mod aster;
/// The paper venue: simulated account plus order and position bookkeeping.
pub mod paper;
