//! Venue clients.

/// AsterDEX (Binance-compatible USDT-M futures) REST.
pub mod aster;
