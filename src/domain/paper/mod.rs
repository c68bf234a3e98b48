//! The simulated USDT-M futures account behind the paper venue: a pure, synchronous
//! book of one wallet and its one-way-mode positions. No I/O and no clock: every call
//! brings its own prices and timestamp, so live trading, replay and tests drive it alike.
//!
//! # Entry points
//! - [`PaperBook::new`] / [`PaperBook::restore`]: a fresh account, or the persisted
//!   wallet balance and [`PaperPosition`]s after a restart (validated).
//! - [`PaperBook::set_tick_size`]: a symbol's price tick, so fills land on its grid.
//! - [`PaperBook::market_order`]: opens, increases, reduces, closes or flips a position
//!   like the venue's one-way mode; returns a [`PaperFill`] or a [`PaperRejection`].
//! - [`PaperBook::set_protection`] / [`PaperBook::close_position`]: TP/SL levels and an
//!   explicit close.
//! - [`PaperBook::on_price`] / [`PaperBook::on_candle`]: market data; liquidates
//!   positions whose liquidation price is reached, then closes those whose TP or SL is
//!   crossed.
//! - [`PaperBook::apply_funding`]: books one funding payment; returns a
//!   [`PaperFunding`].
//! - [`PaperBook::balance`], [`PaperBook::positions`], [`PaperBook::position`],
//!   [`PaperBook::wallet_balance`], [`PaperBook::liquidation_price`],
//!   [`PaperBook::maintenance_margin`]: reads.
//!
//! # Invariants
//! - At most one position per symbol; every position has `quantity > 0`,
//!   `entry_price > 0`, `leverage >= 1`, `margin >= 0`.
//! - `wallet_balance == starting balance − Σ fill.fee − Σ fill.liquidation_fee
//!   + Σ fill.realized_pnl + Σ funding.amount`, exactly: each amount is rounded once
//!   and then added without further rounding.
//! - A rejection moves no money and changes no position. (A valid `last_price` handed
//!   in with the call is still recorded: it is market information, not a trade.)
//! - `balance()` values: equity = wallet + Σ unrealized PnL at the last price each
//!   symbol was given; available = equity − Σ margin; maintenance margin = Σ mmr ×
//!   notional at those prices.
//! - After [`PaperBook::on_price`] / [`PaperBook::on_candle`] for a symbol, its
//!   position (if any) is on the safe side of its liquidation price (unless the
//!   liquidation overflowed: then nothing is booked and the position stays open).
//! - Nothing panics on outside numbers: arithmetic fed by prices and quantities is
//!   checked and overflow becomes [`PaperRejection::Overflow`].
//!
//! # Prices, fees and rounding
//! - Fill price = reference price × (1 + slippage_bps/10 000) for a BUY and
//!   × (1 − slippage_bps/10 000) for a SELL, then, when the symbol has a tick
//!   ([`PaperBook::set_tick_size`]), moved onto the tick grid up for a BUY and down for
//!   a SELL: always against the trader. A SELL that rounds to zero is refused.
//! - Fee = fill price × quantity × fee rate, charged to the wallet on every fill. Every
//!   fill the book makes is a market execution (market orders, closes, TP/SL, i.e.
//!   stop-market triggers, and liquidations), so it pays the taker rate `fee_bps`;
//!   `maker_fee_bps` is carried for resting orders, which the book does not have yet
//!   ([`Liquidity`], [`PaperSettings::fee_bps_for`]).
//! - Realized PnL = sign × (fill − entry) × closed quantity (sign +1 long, −1 short),
//!   before fees, credited to the wallet.
//! - Margin = notional / leverage (isolated initial margin); a reduce releases it pro
//!   rata; an increase re-expresses the position's margin at the order's leverage
//!   (one leverage per symbol, as on the venue) and adds added notional / leverage.
//! - Every booked amount (fill price, fee, clearance fee, realized PnL, funding,
//!   margin, average entry, liquidation price) is rounded to 8 decimal places, half
//!   away from zero. A tick finer than 8 places is honoured only up to those 8 places.
//!   Quantities are never rounded here; step rounding belongs to the instrument rules.
//!
//! # TP/SL
//! Checked only on [`PaperBook::on_price`] and [`PaperBook::on_candle`], after the
//! liquidation check. A triggered level closes the whole position at market: the
//! observed price with slippage against the trader (for a candle, the level itself, or
//! the open if the bar opened beyond it). A long's levels satisfy tp > entry > sl when
//! set, so one price cannot cross both; a candle (or any update spanning a range) can.
//! When both could have triggered in one update, the stop-loss wins: the book cannot
//! know which came first and assumes the worse. The protection disappears with the
//! position; increases and partial reduces keep it; a flip starts the new position
//! unprotected.
//!
//! # Funding
//! [`PaperBook::apply_funding`] books `quantity × mark × rate` (8 places) on an open
//! position: a long pays a positive rate and a short receives it; a negative rate is
//! the mirror. The book has no clock: the caller decides when a funding time is reached
//! and with which rate and mark, and calls it once per symbol and funding time; the
//! book only books. The payment moves the wallet, not the position's margin (a real
//! venue in isolated mode takes it from the position's margin, which moves the
//! liquidation price a little; ours stays put).
//!
//! # Maintenance margin and liquidation
//! Each position is an isolated-margin position with one maintenance-margin rate
//! `mmr` ([`PaperSettings::maintenance_margin_rate`]). Its maintenance margin at a mark
//! is mmr × mark × quantity; it is liquidated when margin + unrealized PnL falls to it,
//! i.e. at the liquidation price ([`PaperPosition::liquidation_price`], 8 places):
//! - long:  `(entry × q − margin) / (q × (1 − mmr))`, reached when price ≤ it;
//! - short: `(entry × q + margin) / (q × (1 + mmr))`, reached when price ≥ it;
//! - none when it would not be positive (a 1x long is never liquidated before zero).
//!
//! Every [`PaperBook::on_price`] / [`PaperBook::on_candle`] checks it before TP/SL (a
//! candle by its low for a long and its high for a short; a bar that also crossed a
//! TP/SL level is liquidated: the worse is assumed). The venue's liquidation engine then
//! takes the whole position over at the liquidation price, on the tick against the
//! trader, without slippage, even when the price gapped beyond it. The fill
//! ([`FillReason::Liquidation`]) carries the taker fee in `fee`, the PnL realized at
//! that price, and in `liquidation_fee` a clearance fee equal to the maintenance margin
//! left, mmr × fill price × quantity (8 places). Realized PnL + clearance fee is then
//! minus the position's margin (give or take the tick and the 8-place rounding): a liquidated position loses its
//! margin plus the taker fee, never more, and the other positions are not touched.
//!
//! Real venues differ: maintenance rates are tiered by notional bracket (with a
//! maintenance amount per bracket), and the engine closes at the bankruptcy price, the
//! insurance fund keeping what is left of the margin. Ours is one rate and one price,
//! which gives the same loss for the trader at the liquidation price. Like TP/SL,
//! liquidation is checked only on market data, not when an order is placed.
//!
//! # Persistence
//! The daemon stores [`PaperBook::wallet_balance`] and [`PaperBook::positions`] (serde:
//! decimals as strings, sides and reasons in lowercase) and rebuilds the book with
//! [`PaperBook::restore`]. Marks and ticks are not stored: a restored symbol is marked
//! at its entry until the first [`PaperBook::on_price`], which also fires any
//! liquidation or TP/SL crossed while the daemon was down; ticks are set again with
//! [`PaperBook::set_tick_size`].
//!
//! [`FillReason::Liquidation`]: crate::domain::paper::FillReason::Liquidation
//! [`Liquidity`]: crate::domain::paper::Liquidity
//! [`PaperBook::apply_funding`]: crate::domain::paper::PaperBook::apply_funding
//! [`PaperBook::balance`]: crate::domain::paper::PaperBook::balance
//! [`PaperBook::close_position`]: crate::domain::paper::PaperBook::close_position
//! [`PaperBook::liquidation_price`]: crate::domain::paper::PaperBook::liquidation_price
//! [`PaperBook::maintenance_margin`]: crate::domain::paper::PaperBook::maintenance_margin
//! [`PaperBook::market_order`]: crate::domain::paper::PaperBook::market_order
//! [`PaperBook::new`]: crate::domain::paper::PaperBook::new
//! [`PaperBook::on_candle`]: crate::domain::paper::PaperBook::on_candle
//! [`PaperBook::on_price`]: crate::domain::paper::PaperBook::on_price
//! [`PaperBook::position`]: crate::domain::paper::PaperBook::position
//! [`PaperBook::positions`]: crate::domain::paper::PaperBook::positions
//! [`PaperBook::restore`]: crate::domain::paper::PaperBook::restore
//! [`PaperBook::set_protection`]: crate::domain::paper::PaperBook::set_protection
//! [`PaperBook::set_tick_size`]: crate::domain::paper::PaperBook::set_tick_size
//! [`PaperBook::wallet_balance`]: crate::domain::paper::PaperBook::wallet_balance
//! [`PaperFill`]: crate::domain::paper::PaperFill
//! [`PaperFunding`]: crate::domain::paper::PaperFunding
//! [`PaperPosition::liquidation_price`]: crate::domain::paper::PaperPosition::liquidation_price
//! [`PaperPosition`]: crate::domain::paper::PaperPosition
//! [`PaperRejection::Overflow`]: crate::domain::paper::PaperRejection::Overflow
//! [`PaperRejection`]: crate::domain::paper::PaperRejection
//! [`PaperSettings::fee_bps_for`]: crate::domain::paper::PaperSettings::fee_bps_for
//! [`PaperSettings::maintenance_margin_rate`]: crate::domain::paper::PaperSettings::maintenance_margin_rate
//! [`PaperSettings`]: crate::domain::paper::PaperSettings

mod fill;
mod money;
mod position;
mod rejection;
#[cfg(test)]
mod scripted;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use fill::{CloseReason, FillReason, PaperBalance, PaperFill, PaperFunding};
pub use position::PaperPosition;
pub use rejection::{PaperError, PaperRejection};
pub use settings::{Liquidity, PaperSettings};

use crate::domain::types::{Candle, PositionSide, Side, Symbol};
use money::{add, div, from_bps, mul, round_amount, round_to_tick, sub};
use position::signed;

/// A market order for the paper venue, with the market price the caller last saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketOrder {
    /// The perpetual to trade.
    pub symbol: Symbol,
    /// BUY opens/increases a long or reduces a short; SELL the mirror.
    pub side: Side,
    /// Base-asset quantity, > 0.
    pub quantity: Decimal,
    /// Leverage (>= 1) for the margin of what the order opens; ignored for the part
    /// that reduces a position.
    pub leverage: u32,
    /// Last traded price, > 0: the reference for the fill and the new mark.
    pub last_price: Decimal,
    /// Only reduce an opposite position, capped at its size; never open or flip.
    pub reduce_only: bool,
    /// When the order executes.
    pub ts: DateTime<Utc>,
}

/// The simulated futures account: wallet, one-way-mode positions and the last price
/// seen per symbol. See the module docs for its rules and invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaperBook {
    settings: PaperSettings,
    wallet_balance: Decimal,
    positions: BTreeMap<Symbol, PaperPosition>,
    last_prices: BTreeMap<Symbol, Decimal>,
    tick_sizes: BTreeMap<Symbol, Decimal>,
}

/// A fully computed fill that has not touched the book yet: plans are checked first,
/// committed after, so a refusal halfway leaves nothing behind.
struct Execution {
    fill: PaperFill,
    wallet_after: Decimal,
}

/// The prices one market-data update spans (a single price has open = low = high).
#[derive(Clone, Copy, Debug)]
struct PriceSpan {
    open: Decimal,
    low: Decimal,
    high: Decimal,
}

impl PriceSpan {
    fn point(price: Decimal) -> Self {
        PriceSpan {
            open: price,
            low: price,
            high: price,
        }
    }
}

impl PaperBook {
    /// A fresh paper account holding `starting_balance` USDT and no positions.
    pub fn new(starting_balance: Decimal, settings: PaperSettings) -> Self {
        PaperBook {
            settings,
            wallet_balance: starting_balance,
            positions: BTreeMap::new(),
            last_prices: BTreeMap::new(),
            tick_sizes: BTreeMap::new(),
        }
    }

    /// Rebuilds the account from its persisted wallet balance and positions (after a
    /// restart). Refuses non-positive quantities or entry prices, leverage 0, negative
    /// margin, two positions on one symbol, and TP/SL levels `set_protection` would
    /// refuse. Until a price arrives for a symbol its mark is the entry price (zero
    /// unrealized PnL); feed current prices with [`Self::on_price`] right after.
    pub fn restore(
        wallet_balance: Decimal,
        positions: Vec<PaperPosition>,
        settings: PaperSettings,
    ) -> Result<Self, PaperError> {
        let mut book = PaperBook::new(wallet_balance, settings);
        for position in positions {
            let symbol = position.symbol.clone();
            if position.quantity <= Decimal::ZERO {
                return Err(PaperError::NonPositiveQuantity {
                    symbol,
                    quantity: position.quantity,
                });
            }
            if position.entry_price <= Decimal::ZERO {
                return Err(PaperError::NonPositiveEntryPrice {
                    symbol,
                    entry_price: position.entry_price,
                });
            }
            if position.leverage == 0 {
                return Err(PaperError::ZeroLeverage { symbol });
            }
            if position.margin < Decimal::ZERO {
                return Err(PaperError::NegativeMargin {
                    symbol,
                    margin: position.margin,
                });
            }
            if let Err(rejection) = validate_protection(
                position.side,
                position.entry_price,
                position.tp_price,
                position.sl_price,
            ) {
                return Err(PaperError::InvalidProtection { symbol, rejection });
            }
            if book.positions.contains_key(&symbol) {
                return Err(PaperError::DuplicatePosition { symbol });
            }
            book.last_prices
                .insert(symbol.clone(), position.entry_price);
            book.positions.insert(symbol, position);
        }
        Ok(book)
    }

    /// Executes a market order in one-way mode, as the venue would:
    /// no position or same side → entry/increase (needs margin + fee ≤ available);
    /// opposite side → reduce/close, and flip into the opposite side with the remainder
    /// (reduce-only orders are capped at the position instead and never open anything).
    /// Records `last_price` as the symbol's mark whenever it is valid.
    pub fn market_order(&mut self, order: MarketOrder) -> Result<PaperFill, PaperRejection> {
        let MarketOrder {
            symbol,
            side,
            quantity,
            leverage,
            last_price,
            reduce_only,
            ts,
        } = order;
        if quantity <= Decimal::ZERO {
            return Err(PaperRejection::NonPositiveQuantity { quantity });
        }
        check_price(last_price)?;
        if leverage == 0 {
            return Err(PaperRejection::ZeroLeverage);
        }
        self.last_prices.insert(symbol.clone(), last_price);
        let price = self.fill_price(&symbol, side, last_price)?;

        let execution = match self.positions.get(&symbol) {
            None if reduce_only => return Err(PaperRejection::NothingToReduce { symbol }),
            None => self.plan_entry(symbol, side, quantity, price, leverage, ts)?,
            Some(position) if position.side.entry_side() == side => {
                if reduce_only {
                    return Err(PaperRejection::NothingToReduce { symbol });
                }
                self.plan_increase(position, quantity, price, leverage, ts)?
            }
            Some(position) => {
                let quantity = if reduce_only {
                    quantity.min(position.quantity)
                } else {
                    quantity
                };
                self.plan_exit(position, quantity, price, leverage, ts, FillReason::Close)?
            }
        };
        Ok(self.commit(execution))
    }

    /// Sets (or, with `None`, clears) the take-profit and stop-loss of the open position
    /// on `symbol`. Both are replaced together. A long needs tp > entry > sl > 0, a
    /// short sl > entry > tp > 0; anything else is refused and nothing changes.
    pub fn set_protection(
        &mut self,
        symbol: &Symbol,
        tp: Option<Decimal>,
        sl: Option<Decimal>,
    ) -> Result<(), PaperRejection> {
        let Some(position) = self.positions.get_mut(symbol) else {
            return Err(PaperRejection::NoPosition {
                symbol: symbol.clone(),
            });
        };
        validate_protection(position.side, position.entry_price, tp, sl)?;
        position.tp_price = tp;
        position.sl_price = sl;
        Ok(())
    }

    /// Closes the whole position on `symbol` at market (`last_price` with slippage
    /// against the trader), charging the fee and realizing the PnL. `reason` is what the
    /// fill reports. Records `last_price` as the mark.
    pub fn close_position(
        &mut self,
        symbol: &Symbol,
        last_price: Decimal,
        ts: DateTime<Utc>,
        reason: CloseReason,
    ) -> Result<PaperFill, PaperRejection> {
        check_price(last_price)?;
        self.last_prices.insert(symbol.clone(), last_price);
        let Some(position) = self.positions.get(symbol) else {
            return Err(PaperRejection::NoPosition {
                symbol: symbol.clone(),
            });
        };
        let price = self.fill_price(symbol, position.side.exit_side(), last_price)?;
        let execution = self.plan_exit(
            position,
            position.quantity,
            price,
            position.leverage,
            ts,
            reason.into(),
        )?;
        Ok(self.commit(execution))
    }

    /// A new market price for `symbol`: becomes its mark, and closes the position
    /// - if the price reached its liquidation price (long: price ≤ liq; short: ≥ liq),
    ///   at that liquidation price with the clearance fee; this is checked first;
    /// - else if its stop-loss or take-profit is crossed (long: price ≤ sl or ≥ tp;
    ///   short mirrored), at `price` with slippage against the trader.
    ///
    /// Returns the fills (none or one). A non-positive price is ignored. Should a close
    /// be impossible to compute (an overflowing price), the position stays open and
    /// nothing is returned.
    pub fn on_price(
        &mut self,
        symbol: &Symbol,
        price: Decimal,
        ts: DateTime<Utc>,
    ) -> Vec<PaperFill> {
        if price <= Decimal::ZERO {
            return Vec::new();
        }
        self.last_prices.insert(symbol.clone(), price);
        self.apply_triggers(symbol, PriceSpan::point(price), ts)
    }

    /// A candle (bar) for `symbol`, for replay and kline feeds: its close becomes the
    /// mark, and the position is closed if the bar's range reached its liquidation
    /// price (long: low ≤ liq; short: high ≥ liq), else if it crossed its SL or TP.
    /// A liquidation happens at the liquidation price; a TP/SL close at the level (or
    /// at the open, if the bar opened beyond it), with slippage against the trader.
    /// The order inside the bar is unknown, so the book assumes the worse: liquidation
    /// wins over both levels, and the stop-loss over the take-profit. Bars whose prices
    /// are not positive or not ordered (low ≤ open, close ≤ high) are ignored.
    pub fn on_candle(
        &mut self,
        symbol: &Symbol,
        candle: &Candle,
        ts: DateTime<Utc>,
    ) -> Vec<PaperFill> {
        let ordered = candle.low > Decimal::ZERO
            && candle.low <= candle.open.min(candle.close)
            && candle.high >= candle.open.max(candle.close);
        if !ordered {
            return Vec::new();
        }
        self.last_prices.insert(symbol.clone(), candle.close);
        let span = PriceSpan {
            open: candle.open,
            low: candle.low,
            high: candle.high,
        };
        self.apply_triggers(symbol, span, ts)
    }

    /// Books one funding payment on the open position of `symbol`: `quantity × mark ×
    /// rate`, rounded once to 8 places, which a long pays and a short receives when
    /// `rate > 0` (the mirror when `rate < 0`). The payment moves the wallet only: the
    /// position's margin, and so its liquidation price, stay as they are.
    ///
    /// The book only books: the caller decides when a funding time is reached and
    /// which rate and mark apply (the venue's `lastFundingRate` and mark price at that
    /// time), and calls this once per funding time. `mark` does not become the
    /// symbol's mark (market data goes through [`Self::on_price`]).
    ///
    /// `Ok(None)` without an open position on `symbol`. Refuses a non-positive `mark`,
    /// and an amount beyond `Decimal` ([`PaperRejection::Overflow`]); a refusal books
    /// nothing.
    pub fn apply_funding(
        &mut self,
        symbol: &Symbol,
        rate: Decimal,
        mark: Decimal,
        ts: DateTime<Utc>,
    ) -> Result<Option<PaperFunding>, PaperRejection> {
        check_price(mark)?;
        let Some(position) = self.positions.get(symbol) else {
            return Ok(None);
        };
        let payment = mul(mul(position.quantity, mark)?, rate)?;
        // What a long pays is what a short receives (rounding is symmetric about zero).
        let amount = round_amount(-signed(position.side, payment));
        let wallet_after = add(self.wallet_balance, amount)?;
        let funding = PaperFunding {
            symbol: symbol.clone(),
            side: position.side,
            quantity: position.quantity,
            mark,
            rate,
            amount,
            ts,
        };
        self.wallet_balance = wallet_after;
        Ok(Some(funding))
    }

    /// Wallet, unrealized PnL, equity, used and maintenance margin and available
    /// balance at the last price each symbol was given (saturating rather than
    /// panicking on absurd marks).
    pub fn balance(&self) -> PaperBalance {
        let mmr = self.settings.maintenance_margin_rate;
        let mut unrealized_pnl = Decimal::ZERO;
        let mut used_margin = Decimal::ZERO;
        let mut maintenance_margin = Decimal::ZERO;
        for position in self.positions.values() {
            let mark = self.mark(position);
            unrealized_pnl = unrealized_pnl.saturating_add(position.unrealized_pnl(mark));
            used_margin = used_margin.saturating_add(position.margin);
            maintenance_margin =
                maintenance_margin.saturating_add(position.maintenance_margin(mark, mmr));
        }
        let equity = self.wallet_balance.saturating_add(unrealized_pnl);
        PaperBalance {
            wallet_balance: self.wallet_balance,
            unrealized_pnl,
            equity,
            used_margin,
            maintenance_margin,
            available: equity.saturating_sub(used_margin),
        }
    }

    /// The mark at which the position on `symbol` is liquidated
    /// ([`PaperPosition::liquidation_price`] at the settings' maintenance-margin rate);
    /// `None` without a position or when it is never liquidated (e.g. a 1x long).
    pub fn liquidation_price(&self, symbol: &Symbol) -> Option<Decimal> {
        self.positions
            .get(symbol)?
            .liquidation_price(self.settings.maintenance_margin_rate)
    }

    /// The maintenance margin of the position on `symbol` at its current mark:
    /// `maintenance_margin_rate × mark × quantity`, 8 places; `None` without a position.
    pub fn maintenance_margin(&self, symbol: &Symbol) -> Option<Decimal> {
        let position = self.positions.get(symbol)?;
        Some(
            position.maintenance_margin(self.mark(position), self.settings.maintenance_margin_rate),
        )
    }

    /// Open positions, ordered by symbol (what the daemon persists).
    pub fn positions(&self) -> impl Iterator<Item = &PaperPosition> {
        self.positions.values()
    }

    /// The open position on `symbol`, if any.
    pub fn position(&self, symbol: &Symbol) -> Option<&PaperPosition> {
        self.positions.get(symbol)
    }

    /// Deposits − fees + realized PnL + funding, USDT (what the daemon persists).
    pub fn wallet_balance(&self) -> Decimal {
        self.wallet_balance
    }

    /// The last price the book was given for `symbol` (its mark).
    pub fn last_price(&self, symbol: &Symbol) -> Option<Decimal> {
        self.last_prices.get(symbol).copied()
    }

    /// Sets the price tick of `symbol` (the venue's `PRICE_FILTER.tickSize`): from now
    /// on its fill prices are rounded to multiples of `tick` against the trader. A tick
    /// `<= 0` is ignored (the previous tick, if any, stays). Ticks are not persisted:
    /// set them again after [`Self::restore`].
    pub fn set_tick_size(&mut self, symbol: &Symbol, tick: Decimal) {
        if tick > Decimal::ZERO {
            self.tick_sizes.insert(symbol.clone(), tick);
        }
    }

    /// The price tick of `symbol`, if one was set.
    pub fn tick_size(&self, symbol: &Symbol) -> Option<Decimal> {
        self.tick_sizes.get(symbol).copied()
    }

    /// The fees, slippage and maintenance-margin rate in force.
    pub fn settings(&self) -> PaperSettings {
        self.settings
    }

    // ---- planning: compute everything, touch nothing ----

    /// Opens a position where there is none.
    fn plan_entry(
        &self,
        symbol: Symbol,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        leverage: u32,
        ts: DateTime<Utc>,
    ) -> Result<Execution, PaperRejection> {
        let fee = self.fee(price, quantity)?;
        let opened = open_position(symbol, side, quantity, price, leverage, ts)?;
        self.require(
            add(opened.margin, fee)?,
            self.available(self.wallet_balance, None)?,
        )?;
        self.execution(PaperFill {
            symbol: opened.symbol.clone(),
            side,
            quantity,
            price,
            fee,
            liquidation_fee: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
            reason: FillReason::Entry,
            position_after: Some(opened),
            ts,
        })
    }

    /// Adds to a position on the same side: weighted-average entry, margin at the
    /// order's leverage.
    fn plan_increase(
        &self,
        position: &PaperPosition,
        quantity: Decimal,
        price: Decimal,
        leverage: u32,
        ts: DateTime<Utc>,
    ) -> Result<Execution, PaperRejection> {
        let added_notional = mul(price, quantity)?;
        let fee = self.fee(price, quantity)?;
        let quantity_after = add(position.quantity, quantity)?;
        let entry_notional = add(
            mul(position.entry_price, position.quantity)?,
            added_notional,
        )?;
        let entry_after = round_amount(div(entry_notional, quantity_after)?);
        // The current margin re-expressed at the order's leverage, plus the new part:
        // with an unchanged leverage this is exactly margin + added notional / leverage.
        let margin_base = add(
            mul(position.margin, Decimal::from(position.leverage))?,
            added_notional,
        )?;
        let margin_after = round_amount(div(margin_base, Decimal::from(leverage))?);
        let margin_added = sub(margin_after, position.margin)?.max(Decimal::ZERO);
        self.require(
            add(margin_added, fee)?,
            self.available(self.wallet_balance, None)?,
        )?;
        let increased = PaperPosition {
            quantity: quantity_after,
            entry_price: entry_after,
            leverage,
            margin: margin_after,
            ..position.clone()
        };
        self.execution(PaperFill {
            symbol: position.symbol.clone(),
            side: position.side.entry_side(),
            quantity,
            price,
            fee,
            liquidation_fee: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
            reason: FillReason::Increase,
            position_after: Some(increased),
            ts,
        })
    }

    /// Trades `quantity` against `position`: reduces it, closes it (reported as
    /// `close_reason`), or closes it and opens the remainder on the other side.
    fn plan_exit(
        &self,
        position: &PaperPosition,
        quantity: Decimal,
        price: Decimal,
        leverage: u32,
        ts: DateTime<Utc>,
        close_reason: FillReason,
    ) -> Result<Execution, PaperRejection> {
        let side = position.side.exit_side();
        let closed = quantity.min(position.quantity);
        let remainder = sub(quantity, closed)?;
        let fee = self.fee(price, quantity)?;
        let realized_pnl = round_amount(signed(
            position.side,
            mul(sub(price, position.entry_price)?, closed)?,
        ));

        let (reason, position_after) = if remainder > Decimal::ZERO {
            let opened = open_position(
                position.symbol.clone(),
                side,
                remainder,
                price,
                leverage,
                ts,
            )?;
            // Margin for the new side comes from what is left once the old position is
            // closed: its margin released, its PnL realized.
            let wallet_after_close = add(self.wallet_balance, realized_pnl)?;
            let available = self.available(wallet_after_close, Some(&position.symbol))?;
            self.require(add(opened.margin, fee)?, available)?;
            (FillReason::Flip, Some(opened))
        } else if closed == position.quantity {
            (close_reason, None)
        } else {
            let released = round_amount(div(mul(position.margin, closed)?, position.quantity)?);
            let reduced = PaperPosition {
                quantity: sub(position.quantity, closed)?,
                margin: sub(position.margin, released)?,
                realized_pnl: add(position.realized_pnl, realized_pnl)?,
                ..position.clone()
            };
            (FillReason::Reduce, Some(reduced))
        };
        self.execution(PaperFill {
            symbol: position.symbol.clone(),
            side,
            quantity,
            price,
            fee,
            liquidation_fee: Decimal::ZERO,
            realized_pnl,
            reason,
            position_after,
            ts,
        })
    }

    /// Pairs a planned fill with the wallet balance it leaves:
    /// `wallet - fee - liquidation_fee + realized`.
    fn execution(&self, fill: PaperFill) -> Result<Execution, PaperRejection> {
        let charged = sub(self.wallet_balance, add(fill.fee, fill.liquidation_fee)?)?;
        let wallet_after = add(charged, fill.realized_pnl)?;
        Ok(Execution { fill, wallet_after })
    }

    // ---- committing ----

    /// Applies a planned fill: the only place money and positions change.
    fn commit(&mut self, execution: Execution) -> PaperFill {
        let Execution { fill, wallet_after } = execution;
        self.wallet_balance = wallet_after;
        match &fill.position_after {
            Some(position) => {
                self.positions.insert(fill.symbol.clone(), position.clone());
            }
            None => {
                self.positions.remove(&fill.symbol);
            }
        }
        fill
    }

    /// Closes the position on `symbol` if `span` crossed its liquidation price (first),
    /// its SL or its TP.
    fn apply_triggers(
        &mut self,
        symbol: &Symbol,
        span: PriceSpan,
        ts: DateTime<Utc>,
    ) -> Vec<PaperFill> {
        let Some(position) = self.positions.get(symbol) else {
            return Vec::new();
        };
        let mmr = self.settings.maintenance_margin_rate;
        let Some((reason, trigger_price)) = trigger(position, span, mmr) else {
            return Vec::new();
        };
        let planned = if reason == FillReason::Liquidation {
            self.plan_liquidation(position, trigger_price, ts)
        } else {
            self.fill_price(symbol, position.side.exit_side(), trigger_price)
                .and_then(|price| {
                    self.plan_exit(
                        position,
                        position.quantity,
                        price,
                        position.leverage,
                        ts,
                        reason,
                    )
                })
        };
        match planned {
            Ok(execution) => vec![self.commit(execution)],
            Err(_) => Vec::new(),
        }
    }

    /// The venue's liquidation engine takes the whole position over at
    /// `liquidation_price` (on the tick, against the trader; no slippage): taker fee and
    /// realized PnL as for any close, plus the clearance fee, the maintenance margin
    /// left at the fill price.
    fn plan_liquidation(
        &self,
        position: &PaperPosition,
        liquidation_price: Decimal,
        ts: DateTime<Utc>,
    ) -> Result<Execution, PaperRejection> {
        let price = self.on_tick(
            &position.symbol,
            position.side.exit_side(),
            liquidation_price,
        )?;
        let Execution { mut fill, .. } = self.plan_exit(
            position,
            position.quantity,
            price,
            position.leverage,
            ts,
            FillReason::Liquidation,
        )?;
        let notional = mul(price, position.quantity)?;
        fill.liquidation_fee = round_amount(mul(notional, self.settings.maintenance_margin_rate)?);
        self.execution(fill)
    }

    // ---- helpers ----

    /// The reference price moved against the trader by the slippage, then onto the
    /// symbol's tick against the trader (when a tick is known), 8 places.
    fn fill_price(
        &self,
        symbol: &Symbol,
        side: Side,
        reference: Decimal,
    ) -> Result<Decimal, PaperRejection> {
        let slippage = from_bps(self.settings.slippage_bps)?;
        let factor = match side {
            Side::Buy => add(Decimal::ONE, slippage)?,
            Side::Sell => sub(Decimal::ONE, slippage)?,
        };
        self.on_tick(symbol, side, mul(reference, factor)?)
    }

    /// `price` on the symbol's tick grid, rounded against the trader (BUY up, SELL
    /// down), then to 8 places; just the 8 places without a tick. Refuses a result
    /// that is not positive (a SELL below one tick rounds down to zero).
    fn on_tick(
        &self,
        symbol: &Symbol,
        side: Side,
        price: Decimal,
    ) -> Result<Decimal, PaperRejection> {
        let price = match self.tick_sizes.get(symbol) {
            Some(&tick) if price > Decimal::ZERO => round_to_tick(price, tick, side)?,
            _ => price,
        };
        let price = round_amount(price);
        check_price(price)?;
        Ok(price)
    }

    /// Fee of a market (taker) fill, 8 places.
    fn fee(&self, price: Decimal, quantity: Decimal) -> Result<Decimal, PaperRejection> {
        let rate = from_bps(self.settings.fee_bps_for(Liquidity::MARKET))?;
        Ok(round_amount(mul(mul(price, quantity)?, rate)?))
    }

    /// `wallet` + unrealized PnL − margin of every position except `skip`'s.
    fn available(&self, wallet: Decimal, skip: Option<&Symbol>) -> Result<Decimal, PaperRejection> {
        let mut available = wallet;
        for position in self.positions.values() {
            if Some(&position.symbol) == skip {
                continue;
            }
            available = add(
                available,
                position.checked_unrealized_pnl(self.mark(position))?,
            )?;
            available = sub(available, position.margin)?;
        }
        Ok(available)
    }

    /// Refuses when `required` exceeds `available`.
    fn require(&self, required: Decimal, available: Decimal) -> Result<(), PaperRejection> {
        if required > available {
            return Err(PaperRejection::InsufficientMargin {
                required,
                available,
            });
        }
        Ok(())
    }

    /// The mark of a position: its symbol's last price, else its entry.
    fn mark(&self, position: &PaperPosition) -> Decimal {
        self.last_prices
            .get(&position.symbol)
            .copied()
            .unwrap_or(position.entry_price)
    }
}

/// A fresh position from one fill, margin = notional / leverage.
fn open_position(
    symbol: Symbol,
    side: Side,
    quantity: Decimal,
    price: Decimal,
    leverage: u32,
    ts: DateTime<Utc>,
) -> Result<PaperPosition, PaperRejection> {
    let margin = round_amount(div(mul(price, quantity)?, Decimal::from(leverage))?);
    Ok(PaperPosition {
        symbol,
        side: match side {
            Side::Buy => PositionSide::Long,
            Side::Sell => PositionSide::Short,
        },
        quantity,
        entry_price: price,
        leverage,
        margin,
        tp_price: None,
        sl_price: None,
        opened_at: ts,
        realized_pnl: Decimal::ZERO,
    })
}

/// Refuses a non-positive price.
fn check_price(price: Decimal) -> Result<(), PaperRejection> {
    if price <= Decimal::ZERO {
        return Err(PaperRejection::NonPositivePrice { price });
    }
    Ok(())
}

/// TP/SL must sit on the right side of the entry: long tp > entry > sl > 0, short
/// sl > entry > tp > 0.
fn validate_protection(
    side: PositionSide,
    entry_price: Decimal,
    tp: Option<Decimal>,
    sl: Option<Decimal>,
) -> Result<(), PaperRejection> {
    if let Some(take_profit) = tp {
        let valid = match side {
            PositionSide::Long => take_profit > entry_price,
            PositionSide::Short => take_profit < entry_price && take_profit > Decimal::ZERO,
        };
        if !valid {
            return Err(PaperRejection::InvalidTakeProfit {
                side,
                entry_price,
                take_profit,
            });
        }
    }
    if let Some(stop_loss) = sl {
        let valid = match side {
            PositionSide::Long => stop_loss < entry_price && stop_loss > Decimal::ZERO,
            PositionSide::Short => stop_loss > entry_price,
        };
        if !valid {
            return Err(PaperRejection::InvalidStopLoss {
                side,
                entry_price,
                stop_loss,
            });
        }
    }
    Ok(())
}

/// Whether `span` reached `position`'s liquidation price at `mmr` (long: low ≤ it;
/// short: high ≥ it), and the price.
fn liquidation(
    position: &PaperPosition,
    span: PriceSpan,
    mmr: Decimal,
) -> Option<(FillReason, Decimal)> {
    let liquidation_price = position.liquidation_price(mmr)?;
    let reached = match position.side {
        PositionSide::Long => span.low <= liquidation_price,
        PositionSide::Short => span.high >= liquidation_price,
    };
    reached.then_some((FillReason::Liquidation, liquidation_price))
}

/// What `span` triggered on `position`, and at which price. Liquidation is checked
/// first and happens at the liquidation price whatever the span did (the venue's
/// engine takes over there); then the stop-loss, so it wins over the take-profit when
/// the span crossed both. A level triggers at itself, or at the open when the update
/// opened beyond it (a gap); for a single price that is the price.
fn trigger(
    position: &PaperPosition,
    span: PriceSpan,
    mmr: Decimal,
) -> Option<(FillReason, Decimal)> {
    if let Some(liquidated) = liquidation(position, span, mmr) {
        return Some(liquidated);
    }
    match position.side {
        PositionSide::Long => {
            if let Some(sl) = position.sl_price.filter(|sl| span.low <= *sl) {
                return Some((FillReason::StopLoss, span.open.min(sl)));
            }
            if let Some(tp) = position.tp_price.filter(|tp| span.high >= *tp) {
                return Some((FillReason::TakeProfit, span.open.max(tp)));
            }
        }
        PositionSide::Short => {
            if let Some(sl) = position.sl_price.filter(|sl| span.high >= *sl) {
                return Some((FillReason::StopLoss, span.open.max(sl)));
            }
            if let Some(tp) = position.tp_price.filter(|tp| span.low <= *tp) {
                return Some((FillReason::TakeProfit, span.open.min(tp)));
            }
        }
    }
    None
}
