//! Pure, synchronous trading logic: no actix, diesel or reqwest in here.

/// TA-Lib-compatible indicators (EMA, MACD, RSI, ATR, Bollinger).
pub mod indicators;
/// Symbol trading rules (tick size, step size, min notional) and rounding.
pub mod instrument;
/// The simulated futures account behind the paper venue.
pub mod paper;
/// Accounts, assets, symbols, sides, candles, cycle ids.
pub mod types;
