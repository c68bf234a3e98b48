//! The simulated venue's fees, slippage and maintenance-margin rate.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};

/// Fees, slippage and maintenance margin of the simulated venue.
///
/// Expected to be validated by the configuration (`0 <= bps < 10_000`,
/// `0 <= maintenance_margin_rate < 1`); the book does not panic on other values: a fill
/// price that would not be positive is refused, and a liquidation price that cannot be
/// computed means "never liquidated".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperSettings {
    /// Taker fee in basis points of the fill notional (5 = 0.05 %). Every fill the book
    /// makes today takes liquidity: market orders, closes, TP/SL and liquidations.
    pub fee_bps: Decimal,
    /// Maker fee in basis points of the fill notional, for fills that rest on the book
    /// first (limit orders). The book has none yet; see [`Liquidity`].
    #[serde(default = "PaperSettings::default_maker_fee_bps")]
    pub maker_fee_bps: Decimal,
    /// Market-order slippage in basis points of the reference price.
    pub slippage_bps: Decimal,
    /// Maintenance margin as a fraction of the position's notional at the mark
    /// (0.005 = 0.5 %): below it the position is liquidated.
    #[serde(default = "PaperSettings::default_maintenance_margin_rate")]
    pub maintenance_margin_rate: Decimal,
}

impl PaperSettings {
    /// Maker fee when stored settings predate it: 2 bps.
    pub const DEFAULT_MAKER_FEE_BPS: Decimal = dec!(2);
    /// Maintenance-margin rate when stored settings predate it: 0.5 % of the notional.
    pub const DEFAULT_MAINTENANCE_MARGIN_RATE: Decimal = dec!(0.005);

    /// The fee rate, in basis points, of a fill with this `liquidity`.
    pub fn fee_bps_for(&self, liquidity: Liquidity) -> Decimal {
        match liquidity {
            Liquidity::Maker => self.maker_fee_bps,
            Liquidity::Taker => self.fee_bps,
        }
    }

    /// Serde default of [`Self::maker_fee_bps`].
    fn default_maker_fee_bps() -> Decimal {
        Self::DEFAULT_MAKER_FEE_BPS
    }

    /// Serde default of [`Self::maintenance_margin_rate`].
    fn default_maintenance_margin_rate() -> Decimal {
        Self::DEFAULT_MAINTENANCE_MARGIN_RATE
    }
}

/// Whether a fill added liquidity to the venue's order book (maker) or took it
/// (taker); it decides which fee applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    /// A resting (limit) order that someone else traded against.
    Maker,
    /// An order that executed on arrival against resting orders.
    Taker,
}

impl Liquidity {
    /// What a market execution is: always a taker. Market orders, explicit closes,
    /// TP/SL triggers (stop-market orders) and liquidations all execute this way, which
    /// is every fill the paper book makes today; maker fills need resting limit orders.
    pub const MARKET: Liquidity = Liquidity::Taker;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_stored_before_maker_fee_and_maintenance_margin_still_load() {
        let settings: PaperSettings =
            serde_json::from_str(r#"{"fee_bps": "5", "slippage_bps": "2"}"#).unwrap();
        assert_eq!(settings.fee_bps, dec!(5));
        assert_eq!(settings.maker_fee_bps, dec!(2));
        assert_eq!(settings.maintenance_margin_rate, dec!(0.005));
    }

    #[test]
    fn a_market_execution_pays_the_taker_fee() {
        let settings = PaperSettings {
            fee_bps: dec!(5),
            maker_fee_bps: dec!(2),
            slippage_bps: dec!(0),
            maintenance_margin_rate: dec!(0.005),
        };
        assert_eq!(settings.fee_bps_for(Liquidity::MARKET), dec!(5));
        assert_eq!(settings.fee_bps_for(Liquidity::Maker), dec!(2));
    }
}
