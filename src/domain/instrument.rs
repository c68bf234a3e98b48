//! A symbol's trading rules (tick size, step size, quantity bounds, minimum notional)
//! and the rounding and checks every order goes through before it reaches a venue.
//!
//! Entry points: [`SymbolRules`] (built from the venue's `exchangeInfo` filters by the
//! exchange client, or by hand in tests), [`SymbolRules::round_price`],
//! [`SymbolRules::floor_quantity`], [`SymbolRules::check_order`], and
//! [`InstrumentRefusal`], the value a refused order comes back as.
//!
//! Invariants:
//! - Decimal only: no `f64` anywhere in this module.
//! - Prices live on the grid `min_price + k * tick_size`, quantities on
//!   `min_qty + k * step_size` (the venue's rule, not `pricePrecision` or
//!   `quantityPrecision`, which are display hints and must not be used for rounding).
//! - A missing, zero or negative tick or step means "no grid": values pass unchanged;
//!   nothing here divides by zero or panics, whatever the venue sent.
//! - Rounding never clamps into `[min, max]`: an out-of-range value is refused by
//!   [`SymbolRules::check_order`] with a reason, rather than silently resized.

use crate::domain::types::{Symbol, QUOTE};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The status a symbol has while it can be traded.
pub const STATUS_TRADING: &str = "TRADING";

/// The trading rules of one symbol, as published by the venue's `exchangeInfo`.
///
/// Every bound is optional: `None` means the venue did not publish that filter (or
/// published a zero, which the Binance family uses for "no limit").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolRules {
    /// The venue symbol (`BTCUSDT`).
    pub symbol: Symbol,
    /// Venue status (`TRADING`, `SETTLING`, `PENDING_TRADING`, ...).
    pub status: String,
    /// `PRICE_FILTER.tickSize`: prices are multiples of this above `min_price`.
    pub tick_size: Option<Decimal>,
    /// `PRICE_FILTER.minPrice`.
    pub min_price: Option<Decimal>,
    /// `PRICE_FILTER.maxPrice`.
    pub max_price: Option<Decimal>,
    /// `LOT_SIZE.stepSize`: quantities are multiples of this above `min_qty`.
    pub step_size: Option<Decimal>,
    /// `LOT_SIZE.minQty`.
    pub min_qty: Option<Decimal>,
    /// `LOT_SIZE.maxQty`.
    pub max_qty: Option<Decimal>,
    /// `MARKET_LOT_SIZE.stepSize` (market orders; falls back to `step_size`).
    pub market_step_size: Option<Decimal>,
    /// `MARKET_LOT_SIZE.minQty` (market orders; falls back to `min_qty`).
    pub market_min_qty: Option<Decimal>,
    /// `MARKET_LOT_SIZE.maxQty` (market orders; falls back to `max_qty`).
    pub market_max_qty: Option<Decimal>,
    /// `MIN_NOTIONAL.notional`: smallest `price * quantity` in the quote currency.
    pub min_notional: Option<Decimal>,
}

/// Why an order was refused by the symbol's rules, with the numbers involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The symbol is not in `TRADING` status.
    NotTrading {
        /// The venue's status.
        status: String,
    },
    /// Quantity is zero or negative.
    QuantityNotPositive {
        /// The quantity asked.
        qty: Decimal,
    },
    /// Price is zero or negative.
    PriceNotPositive {
        /// The price asked.
        price: Decimal,
    },
    /// Quantity below the lot size minimum.
    QuantityBelowMinimum {
        /// The quantity asked.
        qty: Decimal,
        /// The venue's minimum.
        min: Decimal,
    },
    /// Quantity above the lot size maximum.
    QuantityAboveMaximum {
        /// The quantity asked.
        qty: Decimal,
        /// The venue's maximum.
        max: Decimal,
    },
    /// Quantity not on the step grid (round it with `floor_quantity` first).
    QuantityOffStep {
        /// The quantity asked.
        qty: Decimal,
        /// The venue's step.
        step: Decimal,
    },
    /// Limit price below the price filter minimum.
    PriceBelowMinimum {
        /// The price asked.
        price: Decimal,
        /// The venue's minimum.
        min: Decimal,
    },
    /// Limit price above the price filter maximum.
    PriceAboveMaximum {
        /// The price asked.
        price: Decimal,
        /// The venue's maximum.
        max: Decimal,
    },
    /// Limit price not on the tick grid (round it with `round_price` first).
    PriceOffTick {
        /// The price asked.
        price: Decimal,
        /// The venue's tick.
        tick: Decimal,
    },
    /// `price * quantity` below the venue's minimum notional.
    NotionalBelowMinimum {
        /// `price * quantity`.
        notional: Decimal,
        /// The venue's minimum.
        min: Decimal,
    },
}

/// An order the symbol's rules do not allow: a value to report (risk events, logs,
/// API), not a failure of the program. `Display` gives the sentence for a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentRefusal {
    /// The symbol whose rules refused the order.
    pub symbol: Symbol,
    /// Whether the order was checked against the market-order lot size.
    pub market: bool,
    /// What was wrong.
    pub reason: RefusalReason,
}

impl fmt::Display for InstrumentRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = &self.symbol;
        let kind = if self.market { "market" } else { "limit" };
        match &self.reason {
            RefusalReason::NotTrading { status } => {
                write!(f, "{symbol} is not trading (venue status {status})")
            }
            RefusalReason::QuantityNotPositive { qty } => write!(
                f,
                "quantity {} must be positive for {symbol}",
                qty.normalize()
            ),
            RefusalReason::PriceNotPositive { price } => {
                write!(
                    f,
                    "price {} must be positive for {symbol}",
                    price.normalize()
                )
            }
            RefusalReason::QuantityBelowMinimum { qty, min } => write!(
                f,
                "quantity {} is below the minimum {} for {kind} orders on {symbol}",
                qty.normalize(),
                min.normalize()
            ),
            RefusalReason::QuantityAboveMaximum { qty, max } => write!(
                f,
                "quantity {} is above the maximum {} for {kind} orders on {symbol}",
                qty.normalize(),
                max.normalize()
            ),
            RefusalReason::QuantityOffStep { qty, step } => write!(
                f,
                "quantity {} is not a multiple of the step {} for {symbol}",
                qty.normalize(),
                step.normalize()
            ),
            RefusalReason::PriceBelowMinimum { price, min } => write!(
                f,
                "price {} is below the minimum {} for {symbol}",
                price.normalize(),
                min.normalize()
            ),
            RefusalReason::PriceAboveMaximum { price, max } => write!(
                f,
                "price {} is above the maximum {} for {symbol}",
                price.normalize(),
                max.normalize()
            ),
            RefusalReason::PriceOffTick { price, tick } => write!(
                f,
                "price {} is not a multiple of the tick {} for {symbol}",
                price.normalize(),
                tick.normalize()
            ),
            RefusalReason::NotionalBelowMinimum { notional, min } => write!(
                f,
                "notional {:.2} {QUOTE} is below the minimum {} {QUOTE} for {symbol}",
                notional,
                min.normalize()
            ),
        }
    }
}

impl std::error::Error for InstrumentRefusal {}

/// `Some(v)` only for a strictly positive value: a zero or negative tick/step/bound is
/// treated as absent.
fn positive(value: Option<Decimal>) -> Option<Decimal> {
    value.filter(|v| v.is_sign_positive() && !v.is_zero())
}

/// `anchor + k * step` for the `k` chosen by `strategy` from `(value - anchor) / step`.
/// `step` must be positive (callers pass it through [`positive`]).
fn to_grid(value: Decimal, anchor: Decimal, step: Decimal, strategy: RoundingStrategy) -> Decimal {
    let steps = (value - anchor) / step;
    let k = steps.round_dp_with_strategy(0, strategy);
    (anchor + k * step).normalize()
}

/// True when `value` lies on the grid `anchor + k * step`.
fn on_grid(value: Decimal, anchor: Decimal, step: Decimal) -> bool {
    ((value - anchor) % step).is_zero()
}

impl SymbolRules {
    /// Rules with nothing known but the symbol and its status: every value passes.
    /// Fill in the fields that the venue publishes.
    pub fn new(symbol: Symbol, status: impl Into<String>) -> Self {
        SymbolRules {
            symbol,
            status: status.into(),
            tick_size: None,
            min_price: None,
            max_price: None,
            step_size: None,
            min_qty: None,
            max_qty: None,
            market_step_size: None,
            market_min_qty: None,
            market_max_qty: None,
            min_notional: None,
        }
    }

    /// True while the venue lists the symbol as `TRADING`.
    pub fn is_trading(&self) -> bool {
        self.status == STATUS_TRADING
    }

    fn price_grid(&self) -> Option<(Decimal, Decimal)> {
        let tick = positive(self.tick_size)?;
        Some((self.min_price.unwrap_or(Decimal::ZERO), tick))
    }

    /// `(step, min, max)` of the lot size that applies: `MARKET_LOT_SIZE` for market
    /// orders where published, otherwise `LOT_SIZE`.
    fn lot(&self, market: bool) -> (Option<Decimal>, Option<Decimal>, Option<Decimal>) {
        if market {
            (
                positive(self.market_step_size).or(positive(self.step_size)),
                positive(self.market_min_qty).or(positive(self.min_qty)),
                positive(self.market_max_qty).or(positive(self.max_qty)),
            )
        } else {
            (
                positive(self.step_size),
                positive(self.min_qty),
                positive(self.max_qty),
            )
        }
    }

    /// The tick-grid price nearest to `price` (`min_price + k * tick_size`; a price
    /// exactly half-way rounds away from zero). Use it for reference prices and limit
    /// prices where either direction is fine; use [`Self::round_price_down`] /
    /// [`Self::round_price_up`] when the direction matters (a buy limit should not
    /// pay more, a trigger should not move past a level). Without a tick size the
    /// price is returned unchanged. Never clamps to `[min_price, max_price]`.
    pub fn round_price(&self, price: Decimal) -> Decimal {
        match self.price_grid() {
            Some((anchor, tick)) => {
                to_grid(price, anchor, tick, RoundingStrategy::MidpointAwayFromZero)
            }
            None => price,
        }
    }

    /// The largest tick-grid price not above `price`.
    pub fn round_price_down(&self, price: Decimal) -> Decimal {
        match self.price_grid() {
            Some((anchor, tick)) => {
                to_grid(price, anchor, tick, RoundingStrategy::ToNegativeInfinity)
            }
            None => price,
        }
    }

    /// The smallest tick-grid price not below `price`.
    pub fn round_price_up(&self, price: Decimal) -> Decimal {
        match self.price_grid() {
            Some((anchor, tick)) => {
                to_grid(price, anchor, tick, RoundingStrategy::ToPositiveInfinity)
            }
            None => price,
        }
    }

    /// The largest quantity on the step grid (`min_qty + k * step`) not above `qty`,
    /// using the market lot size for market orders. Returns zero when `qty` is below
    /// the minimum (nothing tradable), so a caller can test `is_zero()` and skip the
    /// order. Never rounds up, never clamps to the maximum ([`Self::check_order`]
    /// refuses that).
    pub fn floor_quantity(&self, qty: Decimal, market: bool) -> Decimal {
        if qty <= Decimal::ZERO {
            return Decimal::ZERO;
        }
        let (step, min, _) = self.lot(market);
        let anchor = min.unwrap_or(Decimal::ZERO);
        if qty < anchor {
            return Decimal::ZERO;
        }
        match step {
            Some(step) => to_grid(qty, anchor, step, RoundingStrategy::ToZero),
            None => qty,
        }
    }

    /// Whether an order of `qty` at `price` is allowed by the symbol's rules: status,
    /// positive values, lot size bounds and step (market lot size for market orders),
    /// price bounds and tick (limit orders only; for a market order `price` is the
    /// reference price used for the notional), minimum notional. The first rule broken
    /// is reported.
    pub fn check_order(
        &self,
        qty: Decimal,
        price: Decimal,
        market: bool,
    ) -> Result<(), InstrumentRefusal> {
        let refuse = |reason| {
            Err(InstrumentRefusal {
                symbol: self.symbol.clone(),
                market,
                reason,
            })
        };
        if !self.is_trading() {
            return refuse(RefusalReason::NotTrading {
                status: self.status.clone(),
            });
        }
        if qty <= Decimal::ZERO {
            return refuse(RefusalReason::QuantityNotPositive { qty });
        }
        if price <= Decimal::ZERO {
            return refuse(RefusalReason::PriceNotPositive { price });
        }
        let (step, min_qty, max_qty) = self.lot(market);
        if let Some(min) = min_qty {
            if qty < min {
                return refuse(RefusalReason::QuantityBelowMinimum { qty, min });
            }
        }
        if let Some(max) = max_qty {
            if qty > max {
                return refuse(RefusalReason::QuantityAboveMaximum { qty, max });
            }
        }
        if let Some(step) = step {
            if !on_grid(qty, min_qty.unwrap_or(Decimal::ZERO), step) {
                return refuse(RefusalReason::QuantityOffStep { qty, step });
            }
        }
        if !market {
            if let Some(min) = positive(self.min_price) {
                if price < min {
                    return refuse(RefusalReason::PriceBelowMinimum { price, min });
                }
            }
            if let Some(max) = positive(self.max_price) {
                if price > max {
                    return refuse(RefusalReason::PriceAboveMaximum { price, max });
                }
            }
            if let Some((anchor, tick)) = self.price_grid() {
                if !on_grid(price, anchor, tick) {
                    return refuse(RefusalReason::PriceOffTick { price, tick });
                }
            }
        }
        if let Some(min) = positive(self.min_notional) {
            let notional = qty * price;
            if notional < min {
                return refuse(RefusalReason::NotionalBelowMinimum { notional, min });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// BTCUSDT as AsterDEX publishes it.
    fn btc() -> SymbolRules {
        SymbolRules {
            tick_size: Some(dec!(0.10)),
            min_price: Some(dec!(556.80)),
            max_price: Some(dec!(4529764)),
            step_size: Some(dec!(0.001)),
            min_qty: Some(dec!(0.001)),
            max_qty: Some(dec!(1000)),
            market_step_size: Some(dec!(0.001)),
            market_min_qty: Some(dec!(0.001)),
            market_max_qty: Some(dec!(120)),
            min_notional: Some(dec!(5)),
            ..SymbolRules::new(Symbol("BTCUSDT".into()), STATUS_TRADING)
        }
    }

    #[test]
    fn prices_round_to_the_nearest_tick() {
        let r = btc();
        assert_eq!(r.round_price(dec!(60000.1)), dec!(60000.1));
        assert_eq!(r.round_price(dec!(60000.04)), dec!(60000.0));
        assert_eq!(r.round_price(dec!(60000.05)), dec!(60000.1));
        assert_eq!(r.round_price(dec!(60000.149999)), dec!(60000.1));
        assert_eq!(r.round_price_down(dec!(60000.19)), dec!(60000.1));
        assert_eq!(r.round_price_up(dec!(60000.11)), dec!(60000.2));
        assert_eq!(r.round_price_up(dec!(60000.1)), dec!(60000.1));
        assert_eq!(r.round_price_down(dec!(60000.1)), dec!(60000.1));
    }

    #[test]
    fn the_price_grid_starts_at_min_price() {
        let r = SymbolRules {
            tick_size: Some(dec!(0.1)),
            min_price: Some(dec!(0.05)),
            ..SymbolRules::new(Symbol("ODDUSDT".into()), STATUS_TRADING)
        };
        assert_eq!(r.round_price(dec!(1.0)), dec!(1.05));
        assert_eq!(r.round_price_down(dec!(1.0)), dec!(0.95));
        assert!(r.check_order(dec!(100), dec!(1.05), false).is_ok());
        assert!(r.check_order(dec!(100), dec!(1.0), false).is_err());
    }

    #[test]
    fn quantities_floor_to_the_step() {
        let r = btc();
        assert_eq!(r.floor_quantity(dec!(0.0123456), false), dec!(0.012));
        assert_eq!(r.floor_quantity(dec!(0.012), false), dec!(0.012));
        assert_eq!(r.floor_quantity(dec!(0.001), true), dec!(0.001));
        assert_eq!(r.floor_quantity(dec!(0.00099), false), Decimal::ZERO);
        assert_eq!(r.floor_quantity(dec!(0.0000001), true), Decimal::ZERO);
        assert_eq!(r.floor_quantity(Decimal::ZERO, true), Decimal::ZERO);
        assert_eq!(r.floor_quantity(dec!(-1), true), Decimal::ZERO);
        assert_eq!(r.floor_quantity(dec!(5000.12345), false), dec!(5000.123));
    }

    #[test]
    fn market_orders_use_the_market_lot_size() {
        let r = SymbolRules {
            market_step_size: Some(dec!(0.01)),
            ..btc()
        };
        assert_eq!(r.floor_quantity(dec!(0.0199), true), dec!(0.011));
        assert_eq!(r.floor_quantity(dec!(0.0199), false), dec!(0.019));
        let refusal = r.check_order(dec!(150), dec!(60000), true).unwrap_err();
        assert_eq!(
            refusal.reason,
            RefusalReason::QuantityAboveMaximum {
                qty: dec!(150),
                max: dec!(120)
            }
        );
        assert!(r.check_order(dec!(150), dec!(60000), false).is_ok());
    }

    #[test]
    fn zero_or_missing_steps_are_no_grid_not_a_panic() {
        let r = SymbolRules {
            tick_size: Some(Decimal::ZERO),
            step_size: Some(Decimal::ZERO),
            min_qty: Some(Decimal::ZERO),
            market_step_size: Some(dec!(-0.1)),
            ..SymbolRules::new(Symbol("ZEROUSDT".into()), STATUS_TRADING)
        };
        assert_eq!(r.round_price(dec!(1.23456)), dec!(1.23456));
        assert_eq!(r.round_price_up(dec!(1.23456)), dec!(1.23456));
        assert_eq!(r.floor_quantity(dec!(0.123), true), dec!(0.123));
        assert!(r.check_order(dec!(0.123), dec!(1.23456), false).is_ok());
    }

    #[test]
    fn tiny_notional_is_refused_with_a_sentence() {
        let refusal = btc()
            .check_order(dec!(0.001), dec!(3200), true)
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "notional 3.20 USDT is below the minimum 5 USDT for BTCUSDT"
        );
        assert!(btc().check_order(dec!(0.001), dec!(5000), true).is_ok());
        assert!(btc().check_order(dec!(0.001), dec!(4999.9), true).is_err());
    }

    #[test]
    fn checks_cover_bounds_step_and_tick() {
        let r = btc();
        let reason = |q, p, m| r.check_order(q, p, m).unwrap_err().reason;
        assert_eq!(
            reason(dec!(0.0005), dec!(60000), true),
            RefusalReason::QuantityBelowMinimum {
                qty: dec!(0.0005),
                min: dec!(0.001)
            }
        );
        assert_eq!(
            reason(dec!(0.0015), dec!(60000), false),
            RefusalReason::QuantityOffStep {
                qty: dec!(0.0015),
                step: dec!(0.001)
            }
        );
        assert_eq!(
            reason(dec!(0.01), dec!(60000.05), false),
            RefusalReason::PriceOffTick {
                price: dec!(60000.05),
                tick: dec!(0.10)
            }
        );
        // A market order's price is only a reference for the notional.
        assert!(r.check_order(dec!(0.01), dec!(60000.05), true).is_ok());
        assert_eq!(
            reason(dec!(0.01), dec!(100), false),
            RefusalReason::PriceBelowMinimum {
                price: dec!(100),
                min: dec!(556.80)
            }
        );
        assert_eq!(
            reason(Decimal::ZERO, dec!(60000), true),
            RefusalReason::QuantityNotPositive { qty: Decimal::ZERO }
        );
        let halted = SymbolRules {
            status: "SETTLING".into(),
            ..btc()
        };
        assert_eq!(
            halted
                .check_order(dec!(0.01), dec!(60000), true)
                .unwrap_err()
                .to_string(),
            "BTCUSDT is not trading (venue status SETTLING)"
        );
    }

    #[test]
    fn floored_and_rounded_values_pass_the_check() {
        let r = btc();
        let qty = r.floor_quantity(dec!(0.0123456789), true);
        let price = r.round_price(dec!(61234.5678));
        assert_eq!(price, dec!(61234.6));
        assert!(r.check_order(qty, price, false).is_ok());
    }
}
