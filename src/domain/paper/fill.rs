//! What the paper book reports: fills (with why they happened) and the balance.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::PaperPosition;
use crate::domain::types::{PositionSide, Side, Symbol};

/// Why a fill happened; tells the journal and the UI what the trade did to the position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillReason {
    /// Opened a position where there was none.
    Entry,
    /// Added to a position on the same side.
    Increase,
    /// Closed part of a position.
    Reduce,
    /// Closed a whole position (by order or `close_position`).
    Close,
    /// Closed a position and opened the opposite one with the remainder.
    Flip,
    /// Closed a whole position because the take-profit price was reached.
    TakeProfit,
    /// Closed a whole position because the stop-loss price was reached.
    StopLoss,
    /// Closed a whole position because the mark reached its liquidation price: the
    /// venue's liquidation engine, not the trader, closed it (see
    /// [`PaperFill::liquidation_fee`]).
    Liquidation,
}

/// Why a caller closes a whole position with [`super::PaperBook::close_position`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    /// A decision or an operator closed it.
    Close,
    /// The caller saw the take-profit level reached.
    TakeProfit,
    /// The caller saw the stop-loss level reached.
    StopLoss,
}

impl From<CloseReason> for FillReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Close => FillReason::Close,
            CloseReason::TakeProfit => FillReason::TakeProfit,
            CloseReason::StopLoss => FillReason::StopLoss,
        }
    }
}

/// One simulated execution: the audit record of every change to the paper account
/// except funding ([`PaperFunding`]).
///
/// Wallet effect: `wallet += realized_pnl - fee - liquidation_fee`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperFill {
    /// The perpetual traded.
    pub symbol: Symbol,
    /// Order side executed.
    pub side: Side,
    /// Quantity executed (after a reduce-only cap), base asset.
    pub quantity: Decimal,
    /// Fill price, 8 places: the reference price moved against the trader by the
    /// slippage and then onto the symbol's tick against the trader; for a liquidation,
    /// the liquidation price on the tick (no slippage).
    pub price: Decimal,
    /// Trading fee charged to the wallet, `price * quantity * fee_bps / 10_000` (the
    /// taker fee: every paper fill is a market execution), 8 places.
    pub fee: Decimal,
    /// Liquidation clearance fee charged to the wallet on top of `fee`: the maintenance
    /// margin left in the position, `price * quantity * maintenance_margin_rate`, 8
    /// places. Zero for every fill but [`FillReason::Liquidation`] (and in journals
    /// written before liquidations existed).
    #[serde(default)]
    pub liquidation_fee: Decimal,
    /// PnL realized by the closed part, before fees, 8 places; zero for entries.
    pub realized_pnl: Decimal,
    /// What the fill did to the position.
    pub reason: FillReason,
    /// The position on this symbol after the fill; `None` when flat.
    pub position_after: Option<PaperPosition>,
    /// When it happened (the time passed in by the caller).
    pub ts: DateTime<Utc>,
}

/// One funding payment booked on an open position: the audit record of the only
/// wallet change that is not a fill.
///
/// Wallet effect: `wallet += amount`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperFunding {
    /// The perpetual whose funding was settled.
    pub symbol: Symbol,
    /// Direction of the position that paid or received.
    pub side: PositionSide,
    /// Position size at the funding time, base asset.
    pub quantity: Decimal,
    /// Mark price the payment was computed at (given by the caller).
    pub mark: Decimal,
    /// Funding rate of the interval (0.0001 = 0.01 %); positive: longs pay shorts.
    pub rate: Decimal,
    /// Signed amount booked to the wallet, `∓ quantity × mark × rate` rounded once to 8
    /// places: positive is credited (a short at a positive rate), negative is debited.
    pub amount: Decimal,
    /// The funding time (passed in by the caller).
    pub ts: DateTime<Utc>,
}

/// The account's money at the last known prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperBalance {
    /// Deposits - fees + realized PnL + funding, USDT.
    pub wallet_balance: Decimal,
    /// Sum of open positions' unrealized PnL at their last prices, USDT.
    pub unrealized_pnl: Decimal,
    /// `wallet_balance + unrealized_pnl`.
    pub equity: Decimal,
    /// Sum of open positions' initial margin.
    pub used_margin: Decimal,
    /// Sum of open positions' maintenance margin at their last prices
    /// (`maintenance_margin_rate × notional`, 8 places each): when a position's margin
    /// plus unrealized PnL falls to its share, it is liquidated.
    #[serde(default)]
    pub maintenance_margin: Decimal,
    /// `equity - used_margin`: what a new order's margin and fee may use.
    pub available: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_serialize_in_lowercase() {
        let names: Vec<String> = [
            FillReason::Entry,
            FillReason::TakeProfit,
            FillReason::StopLoss,
            FillReason::Liquidation,
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "\"entry\"",
                "\"takeprofit\"",
                "\"stoploss\"",
                "\"liquidation\""
            ]
        );
        assert_eq!(
            FillReason::from(CloseReason::StopLoss),
            FillReason::StopLoss
        );
    }
}
