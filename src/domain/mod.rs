//! Pure, synchronous trading logic: no actix, diesel or reqwest in here.

/// When an account's cycles happen: a stable offset within the interval per account.
pub mod cadence;
/// Decisions and the account view they are made on.
pub mod decision;
/// Circuit breaker and daily budget in front of model calls.
pub mod guard;
/// TA-Lib-compatible indicators (EMA, MACD, RSI, ATR, Bollinger).
pub mod indicators;
/// Symbol trading rules (tick size, step size, min notional) and rounding.
pub mod instrument;
/// Deterministic client order ids.
pub mod orders;
/// The simulated futures account behind the paper venue.
pub mod paper;
/// Builtin rule policies (`builtin/hold`, `builtin/ema-rsi`, `builtin/panic`).
pub mod policy;
/// Hard risk rules: approve, clamp or refuse, with a reason.
pub mod risk;
/// MarketSnapshot: one asset's 5m series, 4h context, funding and open interest.
pub mod snapshot;
/// Accounts, assets, symbols, sides, candles, cycle ids.
pub mod types;
