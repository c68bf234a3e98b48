//! Cores of the CLI subcommands: plain functions from input to output, so that
//! `main.rs` only parses flags, opens files and prints, and the logic is testable
//! without a process.
//!
//! Entry points: [`indicators_json`] (`vibex indicators --csv FILE`), [`new_key`]
//! (`vibex keys new`).

/// `vibex indicators --csv FILE`: TA-Lib indicators over an OHLCV CSV, as one JSON object.
pub mod indicators;
/// `vibex keys new`: a fresh API key and its configuration entry (the key's hash).
pub mod keys;

pub use indicators::{indicators_json, IndicatorsCsvError};
pub use keys::{new_key, NewKey};
