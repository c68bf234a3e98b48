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

use crate::db::models::{OrderRow, PositionRow};
use crate::domain::instrument::SymbolRules;
use crate::domain::paper::{FillReason, MarketOrder, PaperBook, PaperFill, PaperPosition};
use crate::domain::types::{PositionSide, Side, Symbol};
use crate::exchange::aster::trade_wire::UserEvent;
use crate::exchange::error::VenueError;
use crate::exchange::venue::{
    Exchange, OrderKind, OrderRequest, VenueBalance, VenueFuture, VenueIncome, VenueOrder,
    VenuePosition, VenueSnapshot, VenueTrade,
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
        order.status = "FILLED".into();
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
                .filter(|o| o.symbol == *symbol && o.is_open() && o.order_type == kind.as_str())
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
                FillReason::TakeProfit => OrderKind::TakeProfitMarket.as_str(),
                FillReason::StopLoss => OrderKind::StopMarket.as_str(),
                FillReason::Liquidation => "LIQUIDATION",
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
                            order_type: kind.to_string(),
                            status: "NEW".into(),
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
        if s.orders
            .get(&req.client_order_id)
            .is_some_and(|o| o.is_open())
        {
            return Err(refused(-4116, "ClientOrderId is duplicated."));
        }
        if let Some(existing) = s.orders.get(&req.client_order_id) {
            // Idempotent: the same id that already executed answers what it did.
            if existing.status == "FILLED" {
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
            order_type: req.kind.as_str().to_string(),
            status: "NEW".into(),
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
                let kind = req.kind.as_str();
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
        order.status = "CANCELED".into();
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

/// A stored open position as the book holds it.
pub fn position_from_row(row: &PositionRow) -> Result<PaperPosition, String> {
    let side = match row.side.as_str() {
        "long" => PositionSide::Long,
        "short" => PositionSide::Short,
        other => return Err(format!("position {}: unknown side {other:?}", row.id)),
    };
    let leverage = u32::try_from(row.leverage)
        .map_err(|_| format!("position {}: leverage {}", row.id, row.leverage))?;
    Ok(PaperPosition {
        symbol: Symbol(row.symbol.clone()),
        side,
        quantity: row.quantity,
        entry_price: row.entry_price,
        leverage,
        margin: row.margin,
        tp_price: row.tp_price,
        sl_price: row.sl_price,
        opened_at: row.opened_at,
        realized_pnl: row.realized_pnl,
    })
}

/// A stored working order as the venue holds it.
pub fn order_from_row(row: &OrderRow) -> VenueOrder {
    VenueOrder {
        symbol: Symbol(row.symbol.clone()),
        order_id: row
            .venue_order_id
            .clone()
            .unwrap_or_else(|| row.id.simple().to_string()),
        client_order_id: row.client_order_id.clone(),
        side: if row.side == "SELL" {
            Side::Sell
        } else {
            Side::Buy
        },
        order_type: row.order_type.clone(),
        status: row.status.clone(),
        orig_qty: row.quantity.unwrap_or_default(),
        executed_qty: row.filled_quantity,
        avg_price: row.avg_fill_price,
        stop_price: row.stop_price,
        reduce_only: row.reduce_only,
        close_position: row.close_position,
        update_time: row.updated_at,
    }
}
