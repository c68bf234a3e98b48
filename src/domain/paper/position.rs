//! One open paper position and its mark-to-market arithmetic.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::{mul, sub};
use super::PaperRejection;
use crate::domain::types::{PositionSide, Symbol};

/// An open position of the paper account, as persisted and as reported in fills.
///
/// Invariants kept by [`super::PaperBook`]: `quantity > 0`, `entry_price > 0`,
/// `leverage >= 1`, `margin >= 0`; `margin` is the isolated initial margin,
/// `entry notional / leverage` rounded to 8 places.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperPosition {
    /// The perpetual held.
    pub symbol: Symbol,
    /// Long or short.
    pub side: PositionSide,
    /// Size in base asset, always positive.
    pub quantity: Decimal,
    /// Quantity-weighted average fill price of the entries, 8 places.
    pub entry_price: Decimal,
    /// Leverage the margin was computed with (the last entry's leverage).
    pub leverage: u32,
    /// Isolated initial margin locked by the position, USDT.
    pub margin: Decimal,
    /// Take-profit trigger price, if set.
    pub tp_price: Option<Decimal>,
    /// Stop-loss trigger price, if set.
    pub sl_price: Option<Decimal>,
    /// When the position was opened (the entry or flip fill).
    pub opened_at: DateTime<Utc>,
    /// PnL already realized by partial closes of this position, before fees, USDT.
    pub realized_pnl: Decimal,
}

impl PaperPosition {
    /// Profit or loss if the position were closed at `mark` without fees or slippage:
    /// `sign * (mark - entry) * quantity`. Saturates instead of overflowing on absurd
    /// marks, so a report never panics.
    pub fn unrealized_pnl(&self, mark: Decimal) -> Decimal {
        let per_unit = mark.saturating_sub(self.entry_price);
        signed(self.side, per_unit.saturating_mul(self.quantity))
    }

    /// Size in USDT at `mark`: `mark * quantity` (saturating).
    pub fn notional(&self, mark: Decimal) -> Decimal {
        mark.saturating_mul(self.quantity)
    }

    /// [`Self::unrealized_pnl`] for the booking paths, where overflow must refuse the
    /// operation rather than saturate.
    pub(super) fn checked_unrealized_pnl(&self, mark: Decimal) -> Result<Decimal, PaperRejection> {
        Ok(signed(
            self.side,
            mul(sub(mark, self.entry_price)?, self.quantity)?,
        ))
    }
}

/// `amount` from a long's point of view turned into `side`'s: negated for a short.
/// (Negation cannot overflow, unlike `*`.)
pub(super) fn signed(side: PositionSide, amount: Decimal) -> Decimal {
    match side {
        PositionSide::Long => amount,
        PositionSide::Short => -amount,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn position(side: PositionSide) -> PaperPosition {
        PaperPosition {
            symbol: Symbol("BTCUSDT".into()),
            side,
            quantity: dec!(0.2),
            entry_price: dec!(60000),
            leverage: 5,
            margin: dec!(2400),
            tp_price: None,
            sl_price: None,
            opened_at: DateTime::UNIX_EPOCH,
            realized_pnl: Decimal::ZERO,
        }
    }

    #[test]
    fn long_gains_and_short_loses_when_the_price_rises() {
        assert_eq!(
            position(PositionSide::Long).unrealized_pnl(dec!(61000)),
            dec!(200)
        );
        assert_eq!(
            position(PositionSide::Short).unrealized_pnl(dec!(61000)),
            dec!(-200)
        );
        assert_eq!(
            position(PositionSide::Short).notional(dec!(61000)),
            dec!(12200)
        );
    }

    #[test]
    fn absurd_marks_saturate_or_refuse() {
        let long = PaperPosition {
            quantity: dec!(2),
            ..position(PositionSide::Long)
        };
        assert_eq!(long.notional(Decimal::MAX), Decimal::MAX);
        assert!(long.unrealized_pnl(Decimal::MAX) > Decimal::ZERO);
        assert_eq!(
            long.checked_unrealized_pnl(Decimal::MIN),
            Err(PaperRejection::Overflow)
        );
    }

    #[test]
    fn serializes_with_lowercase_side_and_decimal_strings() {
        let json = serde_json::to_value(position(PositionSide::Short)).unwrap();
        assert_eq!(json["side"], "short");
        assert_eq!(json["entry_price"], "60000");
    }
}
