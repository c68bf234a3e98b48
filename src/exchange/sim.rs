//! The paper venue as an exchange: the simulated account ([`PaperBook`]) behind the
//! same [`Exchange`] trait as AsterDEX, so a paper account runs through the very same
//! engine — orders, TP/SL, reconciliation, rows and events — as a live one.
//!
//! Entry points: [`SimExchange::restore`] (from the stored wallet, positions and
//! working orders), the [`Exchange`] methods, and what a real venue does on its own
//! when the market moves: [`SimExchange::on_price`] (TP/SL and liquidation at the mark),
//! [`SimExchange::on_funding`] (funding at each funding time). Those produce the same
//! user-data events the live stream delivers ([`SimExchange::take_events`]).
//!
//! Like the venue it stands for:
//! - MARKET orders fill at once at the last mark ± slippage (against the trader),
//!   rounded to the tick, with the taker fee; TP/SL are close-position triggers that
//!   rest until the mark crosses them (the book's rules: the stop-loss wins when one
//!   update crosses both; liquidation before either);
//! - a triggered TP/SL does **not** cancel its sibling — the engine must, as on
//!   AsterDEX; a liquidation is an `autoclose-` order of type `LIQUIDATION`;
//! - an order id is unique among working orders; refusals carry the venue's codes
//!   (-2019 margin, -2021 would trigger at once, -2022 reduce-only, -1121 no price);
//! - trades and income (realized PnL, commission, funding) are kept and listed like
//!   `userTrades` and `income`.
//!
//! Invariant: the wallet and positions are the book's; every change of the wallet sets
//! [`SimExchange::take_wallet_change`] so the engine persists it.

use crate::domain::instrument::SymbolRules;
use crate::domain::orders::{OrderStatus, OrderType};
use crate::domain::paper::{FillReason, MarketOrder, PaperBook, PaperFill, PaperPosition};
use crate::domain::types::{PositionSide, Symbol};
use crate::exchange::error::VenueError;
use crate::exchange::venue::{
    Exchange, OrderKind, OrderRequest, UserEvent, VenueBalance, VenueFuture, VenueIncome,
    VenueOrder, VenuePosition, VenueSnapshot, VenueTrade,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Path named in the simulated venue's errors.
const ORDER_PATH: &str = "paper:/order";
/// How many trades and income records the venue remembers (older ones are in the
/// database already).
const HISTORY: usize = 2000;

/// The funding period a symbol is in, as last announced by the market data.
#[derive(Clone, Copy, Debug)]
struct FundingClock {
    next_at: DateTime<Utc>,
    rate: Decimal,
    booked: Option<DateTime<Utc>>,
}

struct SimState {
    book: PaperBook,
    orders: BTreeMap<String, VenueOrder>,
    trades: Vec<VenueTrade>,
    income: Vec<VenueIncome>,
    leverage: HashMap<Symbol, u32>,
    default_leverage: u32,
    funding: HashMap<Symbol, FundingClock>,
    events: Vec<UserEvent>,
    wallet_changed: bool,
    next_id: u64,
}

/// The simulated venue of one paper account. See the module docs.
pub struct SimExchange {
    state: Mutex<SimState>,
}

fn refused(code: i64, msg: impl Into<String>) -> VenueError {
    VenueError::Api {
        endpoint: ORDER_PATH.to_string(),
        status: 400,
        code,
        msg: msg.into(),
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T, VenueError>) -> VenueFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl SimState {
    /// Forgets the oldest finished orders beyond [`HISTORY`] (working ones are kept;
    /// the database has them all).
    fn prune_orders(&mut self) {
        if self.orders.len() <= HISTORY {
            return;
        }
        let mut finished: Vec<(DateTime<Utc>, String)> = self
            .orders
            .values()
            .filter(|o| !o.is_open())
            .map(|o| (o.update_time, o.client_order_id.clone()))
            .collect();
        finished.sort();
        let excess = self.orders.len() - HISTORY;
        for (_, id) in finished.into_iter().take(excess) {
            self.orders.remove(&id);
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn remember_trade(&mut self, trade: VenueTrade) {
        self.trades.push(trade);
        if self.trades.len() > HISTORY {
            self.trades.remove(0);
        }
    }

    fn book_income(&mut self, symbol: &Symbol, kind: &str, amount: Decimal, time: DateTime<Utc>) {
        if amount.is_zero() {
            return;
        }
        let tran_id = format!("paper-{}", self.id());
        self.income.push(VenueIncome {
            tran_id,
            symbol: Some(symbol.clone()),
            kind: kind.to_string(),
            amount,
            asset: "USDT".into(),
            time,
            trade_id: None,
        });
        if self.income.len() > HISTORY {
            self.income.remove(0);
        }
    }

    /// Books a fill of `order` (already in `orders`): trade, income, order FILLED, and
    /// the user-stream event for it.
    fn filled(&mut self, coid: &str, fill: &PaperFill) -> Option<VenueOrder> {
        let trade_id = self.id();
        let order = self.orders.get_mut(coid)?;
        order.status = OrderStatus::Filled;
        order.executed_qty = fill.quantity;
        order.avg_price = Some(fill.price);
        order.update_time = fill.ts;
        if order.orig_qty.is_zero() {
            order.orig_qty = fill.quantity;
        }
        let order = order.clone();
        let trade = VenueTrade {
            id: trade_id.to_string(),
            order_id: order.order_id.clone(),
            client_order_id: Some(order.client_order_id.clone()),
            symbol: fill.symbol.clone(),
            side: fill.side,
            price: fill.price,
            quantity: fill.quantity,
            commission: fill.fee + fill.liquidation_fee,
            commission_asset: "USDT".into(),
            realized_pnl: fill.realized_pnl,
            maker: false,
            time: fill.ts,
        };
        self.remember_trade(trade.clone());
        self.book_income(&fill.symbol, "REALIZED_PNL", fill.realized_pnl, fill.ts);
        self.book_income(&fill.symbol, "COMMISSION", -fill.fee, fill.ts);
        if !fill.liquidation_fee.is_zero() {
            self.book_income(
                &fill.symbol,
                "INSURANCE_CLEAR",
                -fill.liquidation_fee,
                fill.ts,
            );
        }
        self.wallet_changed = true;
        self.events.push(UserEvent::Order {
            order: Box::new(order.clone()),
            trade: Some(Box::new(trade)),
        });
        Some(order)
    }

    /// The TP/SL levels of the working triggers of `symbol`, for the book.
    fn protection_levels(&self, symbol: &Symbol) -> (Option<Decimal>, Option<Decimal>) {
        let level = |kind: OrderKind| {
            self.orders
                .values()
                .filter(|o| o.symbol == *symbol && o.is_open() && o.order_type == kind.order_type())
                .filter_map(|o| o.stop_price)
                .next_back()
        };
        (
            level(OrderKind::TakeProfitMarket),
            level(OrderKind::StopMarket),
        )
    }

    /// Hands the working triggers of `symbol` to the book (it fires them on prices).
    fn sync_protection(&mut self, symbol: &Symbol) -> Result<(), VenueError> {
        if self.book.position(symbol).is_none() {
            return Ok(());
        }
        let (tp, sl) = self.protection_levels(symbol);
        self.book
            .set_protection(symbol, tp, sl)
            .map_err(|r| refused(-2021, format!("Order would immediately trigger. ({r})")))
    }
}

impl SimExchange {
    /// The venue as the database left it: wallet, positions (with their TP/SL) and the
    /// working trigger orders.
    pub fn restore(
        settings: crate::domain::paper::PaperSettings,
        wallet: Decimal,
        positions: Vec<PaperPosition>,
        working: Vec<VenueOrder>,
        default_leverage: u32,
    ) -> Result<SimExchange, String> {
        let book = PaperBook::restore(wallet, positions, settings).map_err(|e| e.to_string())?;
        let orders = working
            .into_iter()
            .map(|o| (o.client_order_id.clone(), o))
            .collect();
        Ok(SimExchange {
            state: Mutex::new(SimState {
                book,
                orders,
                trades: Vec::new(),
                income: Vec::new(),
                leverage: HashMap::new(),
                default_leverage: default_leverage.max(1),
                funding: HashMap::new(),
                events: Vec::new(),
                wallet_changed: false,
                next_id: u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0) * 1000,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Events the venue produced on its own (fills of triggers, liquidations), in order.
    pub fn take_events(&self) -> Vec<UserEvent> {
        std::mem::take(&mut self.lock().events)
    }

    /// The wallet balance when it changed since the last call.
    pub fn take_wallet_change(&self) -> Option<Decimal> {
        let mut s = self.lock();
        if s.wallet_changed {
            s.wallet_changed = false;
            Some(s.book.wallet_balance())
        } else {
            None
        }
    }

    /// The symbols' tick sizes (fills are rounded to them).
    pub fn set_rules(&self, rules: &HashMap<Symbol, SymbolRules>) {
        let mut s = self.lock();
        for (symbol, r) in rules {
            if let Some(tick) = r.tick_size {
                s.book.set_tick_size(symbol, tick);
            }
        }
    }

    /// A new mark price: liquidation, then TP/SL, as the book rules. Fills become
    /// events ([`Self::take_events`]).
    pub fn on_price(&self, symbol: &Symbol, mark: Decimal, ts: DateTime<Utc>) {
        let mut s = self.lock();
        let fills = s.book.on_price(symbol, mark, ts);
        for fill in fills {
            let kind = match fill.reason {
                FillReason::TakeProfit => OrderType::TakeProfitMarket,
                FillReason::StopLoss => OrderType::StopMarket,
                FillReason::Liquidation => OrderType::Liquidation,
                _ => continue,
            };
            let trigger = s
                .orders
                .values()
                .filter(|o| o.symbol == *symbol && o.is_open() && o.order_type == kind)
                .map(|o| o.client_order_id.clone())
                .next();
            let coid = match trigger {
                Some(coid) => coid,
                None => {
                    // The venue's own order (a liquidation).
                    let id = s.id();
                    let coid = format!("autoclose-{id}");
                    s.orders.insert(
                        coid.clone(),
                        VenueOrder {
                            symbol: symbol.clone(),
                            order_id: id.to_string(),
                            client_order_id: coid.clone(),
                            side: fill.side,
                            order_type: kind.clone(),
                            status: OrderStatus::New,
                            orig_qty: fill.quantity,
                            executed_qty: Decimal::ZERO,
                            avg_price: None,
                            stop_price: None,
                            reduce_only: true,
                            close_position: true,
                            update_time: ts,
                        },
                    );
                    coid
                }
            };
            s.filled(&coid, &fill);
        }
    }

    /// Funding information from the market data. When the funding time the venue
    /// announced has passed, the position on `symbol` (if any) pays or receives that
    /// period's last announced rate on its notional at `mark` — once per period. The
    /// first update seen only starts the clock (no back-charging).
    pub fn on_funding(
        &self,
        symbol: &Symbol,
        rate: Decimal,
        next_funding_time: Option<DateTime<Utc>>,
        mark: Decimal,
        now: DateTime<Utc>,
    ) {
        let mut s = self.lock();
        let mut booked = None;
        if let Some(clock) = s.funding.get(symbol).copied() {
            let mut clock = clock;
            if now >= clock.next_at && clock.booked != Some(clock.next_at) {
                clock.booked = Some(clock.next_at);
                booked = s
                    .book
                    .apply_funding(symbol, clock.rate, mark, clock.next_at)
                    .ok()
                    .flatten();
            }
            if let Some(next) = next_funding_time {
                if next >= clock.next_at {
                    clock.next_at = next;
                    clock.rate = rate;
                }
            }
            s.funding.insert(symbol.clone(), clock);
        } else if let Some(next) = next_funding_time {
            s.funding.insert(
                symbol.clone(),
                FundingClock {
                    next_at: next,
                    rate,
                    booked: None,
                },
            );
        }
        if let Some(f) = booked {
            s.book_income(&f.symbol, "FUNDING_FEE", f.amount, f.ts);
            s.wallet_changed = true;
            let wallet = s.book.wallet_balance();
            s.events.push(UserEvent::Account {
                reason: "FUNDING_FEE".into(),
                wallet_balance: Some(wallet),
                positions: Vec::new(),
            });
        }
    }

    fn place(&self, req: &OrderRequest) -> Result<VenueOrder, VenueError> {
        let mut s = self.lock();
        s.prune_orders();
        if s.orders
            .get(&req.client_order_id)
            .is_some_and(|o| o.is_open())
        {
            return Err(refused(-4116, "ClientOrderId is duplicated."));
        }
        if let Some(existing) = s.orders.get(&req.client_order_id) {
            // Idempotent: the same id that already executed answers what it did.
            if existing.status == OrderStatus::Filled {
                return Ok(existing.clone());
            }
        }
        let now = Utc::now();
        let id = s.id();
        let order = VenueOrder {
            symbol: req.symbol.clone(),
            order_id: id.to_string(),
            client_order_id: req.client_order_id.clone(),
            side: req.side,
            order_type: req.kind.order_type(),
            status: OrderStatus::New,
            orig_qty: req.quantity.unwrap_or_default(),
            executed_qty: Decimal::ZERO,
            avg_price: None,
            stop_price: req.stop_price,
            reduce_only: req.reduce_only,
            close_position: req.close_position,
            update_time: now,
        };
        match req.kind {
            OrderKind::Market => {
                let Some(price) = s.book.last_price(&req.symbol) else {
                    return Err(refused(
                        -1121,
                        format!("no market price for {} yet", req.symbol),
                    ));
                };
                let leverage = s
                    .leverage
                    .get(&req.symbol)
                    .copied()
                    .unwrap_or(s.default_leverage);
                let fill = s
                    .book
                    .market_order(MarketOrder {
                        symbol: req.symbol.clone(),
                        side: req.side,
                        quantity: req.quantity.unwrap_or_default(),
                        leverage,
                        last_price: price,
                        reduce_only: req.reduce_only,
                        ts: now,
                    })
                    .map_err(|r| {
                        let code = match r {
                            crate::domain::paper::PaperRejection::InsufficientMargin { .. } => {
                                -2019
                            }
                            crate::domain::paper::PaperRejection::NothingToReduce { .. } => -2022,
                            _ => -1013,
                        };
                        refused(code, r.to_string())
                    })?;
                s.orders.insert(order.client_order_id.clone(), order);
                let done = s.filled(&req.client_order_id, &fill);
                // The entry's protection is re-applied to the (possibly new) position.
                let _ = s.sync_protection(&req.symbol);
                done.ok_or_else(|| refused(-1000, "order lost"))
            }
            OrderKind::TakeProfitMarket | OrderKind::StopMarket => {
                let Some(position) = s.book.position(&req.symbol).cloned() else {
                    return Err(refused(-2022, "ReduceOnly Order is rejected."));
                };
                if req.side != position.side.exit_side() {
                    return Err(refused(-2022, "ReduceOnly Order is rejected."));
                }
                let mark = s
                    .book
                    .last_price(&req.symbol)
                    .unwrap_or(position.entry_price);
                let stop = req.stop_price.unwrap_or_default();
                let crossed = match (req.kind, position.side) {
                    (OrderKind::TakeProfitMarket, PositionSide::Long)
                    | (OrderKind::StopMarket, PositionSide::Short) => mark >= stop,
                    _ => mark <= stop,
                };
                if crossed || stop <= Decimal::ZERO {
                    return Err(refused(-2021, "Order would immediately trigger."));
                }
                // One working trigger of each kind per position, like closePosition
                // orders on the venue.
                let kind = req.kind.order_type();
                let duplicate = s
                    .orders
                    .values()
                    .any(|o| o.symbol == req.symbol && o.is_open() && o.order_type == kind);
                if duplicate {
                    return Err(refused(
                        -4130,
                        "An open stop or take profit order with GTE and closePosition in the direction is existing.",
                    ));
                }
                s.orders
                    .insert(order.client_order_id.clone(), order.clone());
                if let Err(e) = s.sync_protection(&req.symbol) {
                    s.orders.remove(&order.client_order_id);
                    let _ = s.sync_protection(&req.symbol);
                    return Err(e);
                }
                Ok(order)
            }
        }
    }

    fn cancel(&self, symbol: &Symbol, coid: &str) -> Option<VenueOrder> {
        let mut s = self.lock();
        let order = s.orders.get_mut(coid)?;
        if !order.is_open() || order.symbol != *symbol {
            return None;
        }
        order.status = OrderStatus::Canceled;
        order.update_time = Utc::now();
        let order = order.clone();
        let _ = s.sync_protection(symbol);
        Some(order)
    }

    fn snapshot_now(&self) -> VenueSnapshot {
        let s = self.lock();
        let b = s.book.balance();
        let positions = s
            .book
            .positions()
            .map(|p| {
                let mark = s.book.last_price(&p.symbol).unwrap_or(p.entry_price);
                let sign = if p.side == PositionSide::Short {
                    Decimal::NEGATIVE_ONE
                } else {
                    Decimal::ONE
                };
                VenuePosition {
                    symbol: p.symbol.clone(),
                    amount: p.quantity * sign,
                    entry_price: p.entry_price,
                    mark_price: mark,
                    unrealized_pnl: p.unrealized_pnl(mark),
                    liquidation_price: s.book.liquidation_price(&p.symbol),
                    leverage: p.leverage,
                    margin_type: "isolated".into(),
                    isolated_margin: p.margin,
                }
            })
            .collect();
        VenueSnapshot {
            balance: VenueBalance {
                wallet_balance: b.wallet_balance,
                unrealized_pnl: b.unrealized_pnl,
                margin_balance: b.equity,
                available_balance: b.available,
                initial_margin: b.used_margin,
                maint_margin: b.maintenance_margin,
            },
            positions,
            open_orders: s.orders.values().filter(|o| o.is_open()).cloned().collect(),
        }
    }
}

impl Exchange for SimExchange {
    fn in_process(&self) -> bool {
        true
    }
    fn sync_time(&self) -> VenueFuture<'_, i64> {
        ready(Ok(0))
    }
    fn is_hedge_mode(&self) -> VenueFuture<'_, bool> {
        ready(Ok(false))
    }
    fn set_leverage<'a>(&'a self, symbol: &'a Symbol, leverage: u32) -> VenueFuture<'a, ()> {
        self.lock().leverage.insert(symbol.clone(), leverage.max(1));
        ready(Ok(()))
    }
    fn set_margin_type<'a>(&'a self, _: &'a Symbol, _: &'a str) -> VenueFuture<'a, ()> {
        ready(Ok(()))
    }
    fn place_order<'a>(&'a self, order: &'a OrderRequest) -> VenueFuture<'a, VenueOrder> {
        ready(self.place(order))
    }
    fn query_order<'a>(
        &'a self,
        _: &'a Symbol,
        client_order_id: &'a str,
    ) -> VenueFuture<'a, Option<VenueOrder>> {
        ready(Ok(self.lock().orders.get(client_order_id).cloned()))
    }
    fn cancel_order<'a>(
        &'a self,
        symbol: &'a Symbol,
        client_order_id: &'a str,
    ) -> VenueFuture<'a, Option<VenueOrder>> {
        ready(Ok(self.cancel(symbol, client_order_id)))
    }
    fn cancel_all<'a>(&'a self, symbol: &'a Symbol) -> VenueFuture<'a, ()> {
        let ids: Vec<String> = self
            .lock()
            .orders
            .values()
            .filter(|o| o.symbol == *symbol && o.is_open())
            .map(|o| o.client_order_id.clone())
            .collect();
        for id in ids {
            self.cancel(symbol, &id);
        }
        ready(Ok(()))
    }
    fn snapshot(&self) -> VenueFuture<'_, VenueSnapshot> {
        ready(Ok(self.snapshot_now()))
    }
    fn user_trades<'a>(
        &'a self,
        symbol: &'a Symbol,
        since: Option<DateTime<Utc>>,
    ) -> VenueFuture<'a, Vec<VenueTrade>> {
        let s = self.lock();
        let out = s
            .trades
            .iter()
            .filter(|t| t.symbol == *symbol && since.map_or(true, |since| t.time >= since))
            .cloned()
            .collect();
        ready(Ok(out))
    }
    fn income(&self, since: Option<DateTime<Utc>>) -> VenueFuture<'_, Vec<VenueIncome>> {
        let s = self.lock();
        let out = s
            .income
            .iter()
            .filter(|i| since.map_or(true, |since| i.time >= since))
            .cloned()
            .collect();
        ready(Ok(out))
    }
}

#[cfg(test)]
mod tests {
    //! A scripted sequence through the `Exchange` trait, every number computed by hand
    //! (settings: taker fee 5 bps, slippage 2 bps, maintenance margin 0.5 %, leverage
    //! 5, BTC tick 0.1, wallet 10 000).
    use super::*;
    use crate::domain::types::Side;
    use futures_util::FutureExt;
    use rust_decimal_macros::dec;

    fn now<T>(f: VenueFuture<'_, T>) -> Result<T, VenueError> {
        f.now_or_never()
            .expect("the simulated exchange answers at once")
    }

    fn btc() -> Symbol {
        Symbol("BTCUSDT".into())
    }

    fn venue() -> SimExchange {
        let sim = SimExchange::restore(
            crate::domain::paper::PaperSettings {
                fee_bps: dec!(5),
                maker_fee_bps: dec!(2),
                slippage_bps: dec!(2),
                maintenance_margin_rate: dec!(0.005),
            },
            dec!(10000),
            Vec::new(),
            Vec::new(),
            5,
        )
        .unwrap();
        let mut rules = SymbolRules::new(btc(), "TRADING");
        rules.tick_size = Some(dec!(0.1));
        sim.set_rules(&HashMap::from([(btc(), rules)]));
        sim
    }

    fn order(
        side: Side,
        kind: OrderKind,
        qty: Option<Decimal>,
        stop: Option<Decimal>,
        id: &str,
    ) -> OrderRequest {
        OrderRequest {
            symbol: btc(),
            side,
            kind,
            quantity: qty,
            stop_price: stop,
            reduce_only: kind != OrderKind::Market,
            close_position: kind != OrderKind::Market,
            client_order_id: id.into(),
        }
    }

    fn wallet(sim: &SimExchange) -> Decimal {
        now(sim.snapshot()).unwrap().balance.wallet_balance
    }

    #[test]
    fn scripted_fills_fees_funding_and_liquidation_equal_the_hand_computation() {
        let sim = venue();
        let t0 = Utc::now();
        sim.on_price(&btc(), dec!(50000), t0);

        // Entry: 50 000 × 1.0002 = 50 010 (on the tick); fee 50 010 × 0.1 × 0.0005 = 2.5005.
        let entry = now(sim.place_order(&order(
            Side::Buy,
            OrderKind::Market,
            Some(dec!(0.1)),
            None,
            "vx-en-1",
        )))
        .unwrap();
        assert_eq!(entry.status, OrderStatus::Filled);
        assert_eq!(entry.avg_price, Some(dec!(50010.0)));
        assert_eq!(wallet(&sim), dec!(9997.4995));
        // Margin 5 001 / 5 = 1 000.2.
        assert_eq!(
            now(sim.snapshot()).unwrap().positions[0].isolated_margin,
            dec!(1000.2)
        );
        // The same id again answers the same order: nothing executes twice.
        let again = now(sim.place_order(&order(
            Side::Buy,
            OrderKind::Market,
            Some(dec!(0.1)),
            None,
            "vx-en-1",
        )))
        .unwrap();
        assert_eq!(again, entry);
        assert_eq!(wallet(&sim), dec!(9997.4995));

        // Protection on the exit side; a TP already crossed is refused (-2021).
        now(sim.place_order(&order(
            Side::Sell,
            OrderKind::TakeProfitMarket,
            None,
            Some(dec!(51000)),
            "vx-tp-1",
        )))
        .unwrap();
        now(sim.place_order(&order(
            Side::Sell,
            OrderKind::StopMarket,
            None,
            Some(dec!(49000)),
            "vx-sl-1",
        )))
        .unwrap();
        let crossed = now(sim.place_order(&order(
            Side::Sell,
            OrderKind::StopMarket,
            None,
            Some(dec!(50500)),
            "vx-sl-2",
        )));
        assert!(crossed.is_err());

        // Funding: the first announcement only starts the clock; at the funding time the
        // long pays 0.1 × 50 500 × 0.0001 = 0.505.
        let t1 = t0 + chrono::Duration::hours(1);
        sim.on_funding(&btc(), dec!(0.0001), Some(t1), dec!(50500), t0);
        assert_eq!(wallet(&sim), dec!(9997.4995));
        sim.on_funding(
            &btc(),
            dec!(0.0002),
            Some(t1 + chrono::Duration::hours(8)),
            dec!(50500),
            t1,
        );
        assert_eq!(wallet(&sim), dec!(9996.9945));
        sim.on_funding(
            &btc(),
            dec!(0.0002),
            Some(t1 + chrono::Duration::hours(8)),
            dec!(50500),
            t1,
        );
        assert_eq!(wallet(&sim), dec!(9996.9945), "once per period");

        // TP at the mark 51 000: 51 000 × 0.9998 = 50 989.8; PnL (50 989.8 − 50 010) × 0.1
        // = 97.98; fee 50 989.8 × 0.1 × 0.0005 = 2.54949.
        let _ = sim.take_events();
        sim.on_price(&btc(), dec!(51000), t1);
        let events = sim.take_events();
        assert_eq!(events.len(), 1);
        let UserEvent::Order {
            order: tp,
            trade: Some(trade),
        } = &events[0]
        else {
            panic!("a fill event: {events:?}")
        };
        assert_eq!(tp.client_order_id, "vx-tp-1");
        assert_eq!(trade.price, dec!(50989.8));
        assert_eq!(trade.realized_pnl, dec!(97.98));
        assert_eq!(trade.commission, dec!(2.54949));
        assert_eq!(wallet(&sim), dec!(10092.42501));
        // Like the venue, the stop-loss is still working: cancelling it is the engine's job.
        let open = now(sim.snapshot()).unwrap().open_orders;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].client_order_id, "vx-sl-1");
        assert!(now(sim.cancel_order(&btc(), "vx-sl-1")).unwrap().is_some());
        assert!(now(sim.cancel_order(&btc(), "vx-sl-1")).unwrap().is_none());

        // A short: 51 000 × 0.9998 = 50 989.8, fee 2.54949, margin 5 098.98 / 5 = 1 019.796.
        now(sim.place_order(&order(
            Side::Sell,
            OrderKind::Market,
            Some(dec!(0.1)),
            None,
            "vx-en-2",
        )))
        .unwrap();
        assert_eq!(wallet(&sim), dec!(10089.87552));
        // Liquidation price (5 098.98 + 1 019.796) / (0.1 × 1.005) = 60 883.343..., filled
        // on the tick against the trader: 60 883.4. PnL (50 989.8 − 60 883.4) × 0.1 =
        // −989.36; fee 60 883.4 × 0.1 × 0.0005 = 3.04417; clearance fee 0.005 × 6 088.34
        // = 30.4417. Wallet 10 089.87552 − 989.36 − 3.04417 − 30.4417 = 9 067.02965.
        let snap = now(sim.snapshot()).unwrap();
        let liq = snap.positions[0].liquidation_price.unwrap();
        assert!(liq > dec!(60883.34) && liq < dec!(60883.35), "{liq}");
        let _ = sim.take_events();
        sim.on_price(&btc(), dec!(61000), t1);
        let events = sim.take_events();
        let UserEvent::Order {
            order: liquidation,
            trade: Some(trade),
        } = &events[0]
        else {
            panic!("a liquidation fill: {events:?}")
        };
        assert_eq!(liquidation.order_type, OrderType::Liquidation);
        assert!(liquidation.client_order_id.starts_with("autoclose-"));
        assert_eq!(trade.price, dec!(60883.4));
        assert_eq!(trade.realized_pnl, dec!(-989.36));
        assert_eq!(trade.commission, dec!(33.48587));
        assert_eq!(wallet(&sim), dec!(9067.02965));
        assert!(now(sim.snapshot()).unwrap().positions.is_empty());

        // Income lists every amount that moved the wallet, and they add up exactly.
        let income = now(sim.income(None)).unwrap();
        let total: Decimal = income.iter().map(|i| i.amount).sum();
        assert_eq!(dec!(10000) + total, dec!(9067.02965));
        let kinds: Vec<&str> = income.iter().map(|i| i.kind.as_str()).collect();
        for kind in [
            "COMMISSION",
            "FUNDING_FEE",
            "REALIZED_PNL",
            "INSURANCE_CLEAR",
        ] {
            assert!(kinds.contains(&kind), "{kinds:?}");
        }
        assert_eq!(now(sim.user_trades(&btc(), None)).unwrap().len(), 4);
    }
}
