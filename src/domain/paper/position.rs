//! One open paper position and its mark-to-market arithmetic.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::{mul, round_amount, sub};
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

    /// The mark at which the position's equity (isolated margin + unrealized PnL)
    /// falls to the maintenance margin `mmr × mark × quantity`, rounded to 8 places:
    ///
    /// - long:  `(entry × quantity − margin) / (quantity × (1 − mmr))`
    /// - short: `(entry × quantity + margin) / (quantity × (1 + mmr))`
    ///
    /// A long is liquidated at or below it, a short at or above it. `None` when it
    /// cannot be computed (overflow, `1 ∓ mmr <= 0`) or is not positive: a 1x long,
    /// whose margin is its whole entry notional, is never liquidated before zero.
    pub fn liquidation_price(&self, mmr: Decimal) -> Option<Decimal> {
        let entry_notional = self.entry_price.checked_mul(self.quantity)?;
        let (equity_at_zero, factor) = match self.side {
            PositionSide::Long => (
                entry_notional.checked_sub(self.margin)?,
                Decimal::ONE.checked_sub(mmr)?,
            ),
            PositionSide::Short => (
                entry_notional.checked_add(self.margin)?,
                Decimal::ONE.checked_add(mmr)?,
            ),
        };
        if factor <= Decimal::ZERO {
            return None;
        }
        let price = round_amount(equity_at_zero.checked_div(self.quantity.checked_mul(factor)?)?);
        (price > Decimal::ZERO).then_some(price)
    }

    /// Maintenance margin at `mark`: `mmr × mark × quantity`, 8 places (saturating on
    /// absurd marks, like [`Self::notional`]).
    pub fn maintenance_margin(&self, mark: Decimal, mmr: Decimal) -> Decimal {
        round_amount(self.notional(mark).saturating_mul(mmr))
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
    fn liquidation_price_is_where_equity_meets_the_maintenance_margin() {
        // Long 0.2 at 60000, margin 2400 (5x), mmr 0.005:
        //   (60000 × 0.2 − 2400) / (0.2 × 0.995) = 9600 / 0.199 = 48241.206030150…
        //   → 48241.20603015
        //   check: 2400 + (48241.20603015 − 60000) × 0.2 = 48.24120603
        //          ≈ 0.005 × 48241.20603015 × 0.2 = 48.24120603
        let long = position(PositionSide::Long);
        assert_eq!(
            long.liquidation_price(dec!(0.005)),
            Some(dec!(48241.20603015))
        );
        // Short 0.2 at 60000, margin 2400:
        //   (12000 + 2400) / (0.2 × 1.005) = 14400 / 0.201 = 71641.791044776…
        //   → 71641.79104478
        let short = position(PositionSide::Short);
        assert_eq!(
            short.liquidation_price(dec!(0.005)),
            Some(dec!(71641.79104478))
        );
        // Without a maintenance margin, a long goes at entry − margin / quantity.
        assert_eq!(long.liquidation_price(dec!(0)), Some(dec!(48000)));
        // Maintenance margin at 61000: 0.005 × 61000 × 0.2 = 61.
        assert_eq!(long.maintenance_margin(dec!(61000), dec!(0.005)), dec!(61));
    }

    #[test]
    fn a_1x_long_has_no_liquidation_price_and_absurd_inputs_have_none() {
        // 1x: margin = 12000 = entry notional, so the numerator is 0.
        let one_x = PaperPosition {
            leverage: 1,
            margin: dec!(12000),
            ..position(PositionSide::Long)
        };
        assert_eq!(one_x.liquidation_price(dec!(0.005)), None);
        // A 1x short is liquidated: (12000 + 12000) / 0.201 = 119402.985074626…
        //   → 119402.98507463
        let one_x_short = PaperPosition {
            side: PositionSide::Short,
            ..one_x.clone()
        };
        assert_eq!(
            one_x_short.liquidation_price(dec!(0.005)),
            Some(dec!(119402.98507463))
        );
        // A maintenance rate of 100 % or more: no long liquidation price.
        let long = position(PositionSide::Long);
        assert_eq!(long.liquidation_price(dec!(1)), None);
        assert_eq!(long.liquidation_price(dec!(1.5)), None);
        // Overflow: no price rather than a panic.
        let huge = PaperPosition {
            entry_price: Decimal::MAX,
            quantity: dec!(2),
            ..position(PositionSide::Short)
        };
        assert_eq!(huge.liquidation_price(dec!(0.005)), None);
        assert_eq!(huge.liquidation_price(Decimal::MAX), None);
    }

    #[test]
    fn serializes_with_lowercase_side_and_decimal_strings() {
        let json = serde_json::to_value(position(PositionSide::Short)).unwrap();
        assert_eq!(json["side"], "short");
        assert_eq!(json["entry_price"], "60000");
    }
}
