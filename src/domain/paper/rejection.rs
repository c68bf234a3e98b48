//! Why the paper book refused an order or a restored state. Refusals are values the
//! caller logs and reports; nothing in the book panics on bad input.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::format_usdt;
use crate::domain::types::{PositionSide, Symbol};

/// An order or protection change the book refused. A refusal moves no money and changes
/// no position (a valid `last_price` passed with the call is still recorded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaperRejection {
    /// The order quantity was zero or negative.
    #[error("quantity must be positive, got {quantity}")]
    NonPositiveQuantity {
        /// The quantity asked for.
        quantity: Decimal,
    },
    /// The price (given, or the fill price after slippage) was zero or negative.
    #[error("price must be positive, got {price}")]
    NonPositivePrice {
        /// The offending price.
        price: Decimal,
    },
    /// Leverage 0 was asked for; leverage starts at 1.
    #[error("leverage must be at least 1")]
    ZeroLeverage,
    /// Opening or increasing would need more than the available balance.
    #[error(
        "insufficient margin: {} USDT required, {} available",
        format_usdt(.required),
        format_usdt(.available)
    )]
    InsufficientMargin {
        /// Initial margin the order adds plus its fee, USDT.
        required: Decimal,
        /// Wallet + unrealized PnL - used margin, USDT, at the last known prices.
        available: Decimal,
    },
    /// A reduce-only order found no opposite position to reduce.
    #[error("reduce-only order on {symbol} has no position to reduce")]
    NothingToReduce {
        /// The symbol of the order.
        symbol: Symbol,
    },
    /// The symbol has no open position (closing it or setting its protection).
    #[error("no open position on {symbol}")]
    NoPosition {
        /// The symbol asked about.
        symbol: Symbol,
    },
    /// The take-profit price is on the losing side of the entry (or not positive).
    #[error(
        "take-profit {take_profit} is invalid for a {} position entered at {entry_price}",
        .side.as_str()
    )]
    InvalidTakeProfit {
        /// Direction of the position.
        side: PositionSide,
        /// Its average entry price.
        entry_price: Decimal,
        /// The refused take-profit price.
        take_profit: Decimal,
    },
    /// The stop-loss price is on the winning side of the entry (or not positive).
    #[error(
        "stop-loss {stop_loss} is invalid for a {} position entered at {entry_price}",
        .side.as_str()
    )]
    InvalidStopLoss {
        /// Direction of the position.
        side: PositionSide,
        /// Its average entry price.
        entry_price: Decimal,
        /// The refused stop-loss price.
        stop_loss: Decimal,
    },
    /// An amount exceeded what `Decimal` can hold (absurd price or quantity).
    #[error("amount out of range")]
    Overflow,
}

/// A persisted state [`super::PaperBook::restore`] refused to load.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaperError {
    /// A position with a zero or negative quantity.
    #[error("{symbol}: position quantity must be positive, got {quantity}")]
    NonPositiveQuantity {
        /// The position's symbol.
        symbol: Symbol,
        /// The stored quantity.
        quantity: Decimal,
    },
    /// A position with a zero or negative entry price.
    #[error("{symbol}: entry price must be positive, got {entry_price}")]
    NonPositiveEntryPrice {
        /// The position's symbol.
        symbol: Symbol,
        /// The stored entry price.
        entry_price: Decimal,
    },
    /// A position with leverage 0.
    #[error("{symbol}: leverage must be at least 1")]
    ZeroLeverage {
        /// The position's symbol.
        symbol: Symbol,
    },
    /// A position with negative margin.
    #[error("{symbol}: margin must not be negative, got {margin}")]
    NegativeMargin {
        /// The position's symbol.
        symbol: Symbol,
        /// The stored margin.
        margin: Decimal,
    },
    /// Two positions on one symbol (one-way mode allows one).
    #[error("{symbol}: more than one position")]
    DuplicatePosition {
        /// The repeated symbol.
        symbol: Symbol,
    },
    /// Stored TP/SL levels that `set_protection` would refuse.
    #[error("{symbol}: {rejection}")]
    InvalidProtection {
        /// The position's symbol.
        symbol: Symbol,
        /// What `set_protection` says about the levels.
        rejection: PaperRejection,
    },
}
