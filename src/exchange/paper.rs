//! The paper venue as the ExecutionActor drives it: the simulated futures account
//! ([`PaperBook`]) plus the bookkeeping a real venue does for us — order ids and
//! lifecycles, resting TP/SL orders, position lifecycles — expressed as the rows that
//! are persisted ([`ExecutionBatch`]).
//!
//! Entry points: [`PaperVenue::restore`], [`PaperVenue::execute`],
//! [`PaperVenue::on_price`], [`PaperVenue::mark_to_market`], [`PaperVenue::view`].
//! Invariants: every change of money or position comes with the rows that record it,
//! and the paper wallet balance in the batch is the book's after the step, so a
//! restart from the database resumes exactly where the book was.

use crate::config::PaperConfig;
use crate::db::models::{
    DiaryEntryRow, EquitySnapshotRow, FillRow, NewOrderEvent, OrderRow, PositionRow,
};
use crate::db::queries::ExecutionBatch;
use crate::domain::decision::{AccountView, PositionView, TradeDecision};
use crate::domain::instrument::SymbolRules;
use crate::domain::orders::{ClientOrderId, OrderLeg};
use crate::domain::paper::{
    FillReason, MarketOrder, PaperBook, PaperFill, PaperFunding, PaperPosition, PaperSettings,
};
use crate::domain::types::{AccountId, CycleId, PositionSide, Side, Symbol, TradeAction};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;

/// Order types as the venue spells them.
pub const MARKET: &str = "MARKET";
/// Take-profit trigger order type.
pub const TAKE_PROFIT_MARKET: &str = "TAKE_PROFIT_MARKET";
/// Stop-loss trigger order type.
pub const STOP_MARKET: &str = "STOP_MARKET";

/// What the database stores about an open position beyond the book's numbers.
#[derive(Clone, Debug)]
struct PositionMeta {
    id: Uuid,
    opened_cycle: Option<Uuid>,
    exit_plan: String,
}

/// The paper venue of one account.
pub struct PaperVenue {
    account_id: AccountId,
    book: PaperBook,
    meta: HashMap<Symbol, PositionMeta>,
    protection: HashMap<Symbol, Vec<OrderRow>>,
    last_trades: HashMap<Symbol, DateTime<Utc>>,
    funding: HashMap<Symbol, FundingClock>,
}

/// The funding period a symbol is in, as last announced by the venue.
#[derive(Clone, Copy, Debug)]
struct FundingClock {
    next_at: DateTime<Utc>,
    rate: Decimal,
    booked: Option<DateTime<Utc>>,
}

/// What the database holds for an account (see `Recorder::LoadAccount`).
pub struct StoredPaperState<'a> {
    /// Paper wallet balance.
    pub wallet_balance: Decimal,
    /// Open position rows.
    pub positions: &'a [PositionRow],
    /// Working orders (resting TP/SL).
    pub working_orders: &'a [OrderRow],
    /// Last fill time per symbol.
    pub last_fills: &'a [(String, DateTime<Utc>)],
}

impl PaperVenue {
    /// Rebuilds the venue from stored rows. Working orders whose position is gone are
    /// cancelled (returned in the batch).
    pub fn restore(
        account_id: AccountId,
        cfg: &PaperConfig,
        stored: StoredPaperState<'_>,
        now: DateTime<Utc>,
    ) -> Result<(PaperVenue, ExecutionBatch), String> {
        let settings = PaperSettings {
            fee_bps: cfg.fee_bps,
            maker_fee_bps: cfg.maker_fee_bps,
            slippage_bps: cfg.slippage_bps,
            maintenance_margin_rate: cfg.maintenance_margin_rate,
        };
        let mut positions = Vec::new();
        let mut meta = HashMap::new();
        for row in stored.positions {
            let side = match row.side.as_str() {
                "long" => PositionSide::Long,
                "short" => PositionSide::Short,
                other => return Err(format!("position {}: unknown side {other:?}", row.id)),
            };
            let leverage = u32::try_from(row.leverage)
                .map_err(|_| format!("position {}: leverage {}", row.id, row.leverage))?;
            let symbol = Symbol(row.symbol.clone());
            positions.push(PaperPosition {
                symbol: symbol.clone(),
                side,
                quantity: row.quantity,
                entry_price: row.entry_price,
                leverage,
                margin: row.margin,
                tp_price: row.tp_price,
                sl_price: row.sl_price,
                opened_at: row.opened_at,
                realized_pnl: row.realized_pnl,
            });
            meta.insert(
                symbol,
                PositionMeta {
                    id: row.id,
                    opened_cycle: row.opened_cycle_id,
                    exit_plan: row.exit_plan.clone(),
                },
            );
        }
        let book = PaperBook::restore(stored.wallet_balance, positions, settings)
            .map_err(|e| e.to_string())?;
        let mut batch = ExecutionBatch::default();
        let mut protection: HashMap<Symbol, Vec<OrderRow>> = HashMap::new();
        for order in stored.working_orders {
            let symbol = Symbol(order.symbol.clone());
            if meta.contains_key(&symbol) {
                protection.entry(symbol).or_default().push(order.clone());
            } else {
                let mut o = order.clone();
                set_status(
                    &mut batch,
                    &mut o,
                    "CANCELED",
                    now,
                    json!({"reason": "position no longer open"}),
                );
                batch.orders.push(o);
            }
        }
        let last_trades = stored
            .last_fills
            .iter()
            .map(|(s, t)| (Symbol(s.clone()), *t))
            .collect();
        Ok((
            PaperVenue {
                account_id,
                book,
                meta,
                protection,
                last_trades,
                funding: HashMap::new(),
            },
            batch,
        ))
    }

    /// Balance, positions and last trades as a policy and the risk rules see them.
    pub fn view(&self) -> (AccountView, HashMap<Symbol, DateTime<Utc>>) {
        let b = self.book.balance();
        let positions = self
            .book
            .positions()
            .map(|p| {
                let mark = self.book.last_price(&p.symbol).unwrap_or(p.entry_price);
                PositionView {
                    symbol: p.symbol.clone(),
                    side: p.side,
                    quantity: p.quantity,
                    entry_price: p.entry_price,
                    leverage: p.leverage,
                    unrealized_pnl: p.unrealized_pnl(mark),
                    tp_price: p.tp_price,
                    sl_price: p.sl_price,
                    exit_plan: self
                        .meta
                        .get(&p.symbol)
                        .map(|m| m.exit_plan.clone())
                        .unwrap_or_default(),
                    opened_at: p.opened_at,
                }
            })
            .collect();
        (
            AccountView {
                wallet_balance: b.wallet_balance,
                equity: b.equity,
                available: b.available,
                positions,
            },
            self.last_trades.clone(),
        )
    }

    /// Working orders (resting TP/SL), oldest first.
    pub fn open_orders(&self) -> Vec<OrderRow> {
        let mut out: Vec<OrderRow> = self.protection.values().flatten().cloned().collect();
        out.sort_by_key(|o| o.created_at);
        out
    }

    /// Executes one approved decision at `price` (the snapshot's last price).
    #[allow(clippy::too_many_arguments)]
    pub fn execute(
        &mut self,
        cycle: CycleId,
        decision_id: Uuid,
        d: &TradeDecision,
        price: Decimal,
        rules: Option<&SymbolRules>,
        leverage: u32,
        now: DateTime<Utc>,
    ) -> ExecutionBatch {
        let mut batch = ExecutionBatch::default();
        let target = match d.action {
            TradeAction::Hold => return batch,
            TradeAction::Buy => PositionSide::Long,
            TradeAction::Sell => PositionSide::Short,
        };
        let symbol = d.asset.symbol();
        let current = self.book.position(&symbol).cloned();
        let mut result = json!({});
        if let Some(p) = &current {
            if p.side == target {
                return batch;
            }
            result["exit"] = self.close(&mut batch, cycle, decision_id, d, p, price, now);
        }
        let mut entry_fill = None;
        let mut tp_oid = None;
        let mut sl_oid = None;
        if d.allocation_usd > Decimal::ZERO {
            let (fill, tp, sl, outcome) = self.open(
                &mut batch,
                cycle,
                decision_id,
                d,
                target,
                price,
                rules,
                leverage,
                now,
            );
            entry_fill = fill;
            tp_oid = tp;
            sl_oid = sl;
            result["entry"] = outcome;
        }
        batch.diary.push(DiaryEntryRow {
            id: Uuid::now_v7(),
            ts: now,
            account_id: self.account_id.to_string(),
            cycle_id: Some(cycle.0),
            asset: d.asset.to_string(),
            action: d.action.as_str().to_string(),
            allocation_usd: Some(d.allocation_usd),
            amount: entry_fill.as_ref().map(|f| f.quantity),
            entry_price: entry_fill.as_ref().map(|f| f.price),
            tp_price: d.tp_price,
            tp_oid,
            sl_price: d.sl_price,
            sl_oid,
            exit_plan: Some(d.exit_plan.clone()),
            rationale: Some(d.rationale.clone()),
            order_result: Some(result),
            opened_at: entry_fill.as_ref().map(|f| f.ts),
            filled: entry_fill.is_some(),
        });
        batch.paper_wallet = Some((self.account_id.to_string(), self.book.wallet_balance()));
        batch
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        batch: &mut ExecutionBatch,
        cycle: CycleId,
        decision_id: Uuid,
        d: &TradeDecision,
        target: PositionSide,
        price: Decimal,
        rules: Option<&SymbolRules>,
        leverage: u32,
        now: DateTime<Utc>,
    ) -> (
        Option<PaperFill>,
        Option<String>,
        Option<String>,
        serde_json::Value,
    ) {
        let symbol = d.asset.symbol();
        let side = target.entry_side();
        let raw_qty = if price > Decimal::ZERO {
            (d.allocation_usd / price).round_dp(12)
        } else {
            Decimal::ZERO
        };
        let qty = rules
            .map(|r| r.floor_quantity(raw_qty, true))
            .unwrap_or(raw_qty);
        let mut order = self.new_order(
            cycle,
            decision_id,
            d,
            OrderLeg::Entry,
            side,
            MARKET,
            Some(qty),
            None,
            false,
            now,
        );
        let refusal = match rules {
            None => Some(format!(
                "no trading rules for {symbol} from the venue yet; order not sent"
            )),
            Some(r) => r.check_order(qty, price, true).err().map(|e| e.to_string()),
        };
        if let Some(reason) = refusal {
            reject(batch, &mut order, &reason, now);
            batch.orders.push(order);
            return (
                None,
                None,
                None,
                json!({"status": "REJECTED", "reason": reason}),
            );
        }
        let fill = match self.book.market_order(MarketOrder {
            symbol: symbol.clone(),
            side,
            quantity: qty,
            leverage,
            last_price: price,
            reduce_only: false,
            ts: now,
        }) {
            Ok(f) => f,
            Err(rej) => {
                let reason = rej.to_string();
                reject(batch, &mut order, &reason, now);
                batch.orders.push(order);
                return (
                    None,
                    None,
                    None,
                    json!({"status": "REJECTED", "reason": reason}),
                );
            }
        };
        set_status(batch, &mut order, "NEW", now, json!({}));
        self.filled(batch, &mut order, &fill, Some(cycle.0));
        batch.orders.push(order);
        let meta = PositionMeta {
            id: Uuid::now_v7(),
            opened_cycle: Some(cycle.0),
            exit_plan: d.exit_plan.clone(),
        };
        self.meta.insert(symbol.clone(), meta);
        self.last_trades.insert(symbol.clone(), now);

        // Protection: reduce-only close-position triggers on the exit side.
        let round = |p: Decimal| rules.map(|r| r.round_price(p)).unwrap_or(p);
        let tp = d.tp_price.map(round);
        let sl = d.sl_price.map(round);
        let mut tp_oid = None;
        let mut sl_oid = None;
        let mut protection_note = serde_json::Value::Null;
        if tp.is_some() || sl.is_some() {
            let protect = self.book.set_protection(&symbol, tp, sl);
            let legs = [
                (OrderLeg::TakeProfit, TAKE_PROFIT_MARKET, tp),
                (OrderLeg::StopLoss, STOP_MARKET, sl),
            ];
            for (leg, kind, level) in legs {
                let Some(level) = level else { continue };
                let mut o = self.new_order(
                    cycle,
                    decision_id,
                    d,
                    leg,
                    target.exit_side(),
                    kind,
                    None,
                    Some(level),
                    true,
                    now,
                );
                match &protect {
                    Ok(()) => {
                        set_status(batch, &mut o, "NEW", now, json!({"stop_price": level}));
                        let oid = o.client_order_id.clone();
                        if leg == OrderLeg::TakeProfit {
                            tp_oid = Some(oid);
                        } else {
                            sl_oid = Some(oid);
                        }
                        self.protection
                            .entry(symbol.clone())
                            .or_default()
                            .push(o.clone());
                    }
                    Err(rej) => {
                        protection_note = json!(rej.to_string());
                        reject(batch, &mut o, &rej.to_string(), now);
                    }
                }
                batch.orders.push(o);
            }
        }
        if let Some(p) = self.book.position(&symbol).cloned() {
            let row = self.position_row(&p, "open", p.realized_pnl, None, now);
            batch.positions.push(row);
        }
        let outcome = json!({
            "status": "FILLED", "quantity": fill.quantity, "price": fill.price,
            "fee": fill.fee, "tp_price": tp, "sl_price": sl,
            "protection_error": protection_note,
        });
        (Some(fill), tp_oid, sl_oid, outcome)
    }

    #[allow(clippy::too_many_arguments)]
    fn close(
        &mut self,
        batch: &mut ExecutionBatch,
        cycle: CycleId,
        decision_id: Uuid,
        d: &TradeDecision,
        p: &PaperPosition,
        price: Decimal,
        now: DateTime<Utc>,
    ) -> serde_json::Value {
        let mut order = self.new_order(
            cycle,
            decision_id,
            d,
            OrderLeg::Exit,
            p.side.exit_side(),
            MARKET,
            Some(p.quantity),
            None,
            true,
            now,
        );
        match self.book.market_order(MarketOrder {
            symbol: p.symbol.clone(),
            side: p.side.exit_side(),
            quantity: p.quantity,
            leverage: p.leverage,
            last_price: price,
            reduce_only: true,
            ts: now,
        }) {
            Ok(fill) => {
                set_status(batch, &mut order, "NEW", now, json!({}));
                self.filled(batch, &mut order, &fill, Some(cycle.0));
                batch.orders.push(order);
                self.closed(batch, p, &fill, now, "position closed by decision");
                self.last_trades.insert(p.symbol.clone(), now);
                json!({"status": "FILLED", "quantity": fill.quantity, "price": fill.price,
                       "fee": fill.fee, "realized_pnl": fill.realized_pnl})
            }
            Err(rej) => {
                let reason = rej.to_string();
                reject(batch, &mut order, &reason, now);
                batch.orders.push(order);
                json!({"status": "REJECTED", "reason": reason})
            }
        }
    }

    /// A new mark price: fires crossed TP/SL orders.
    pub fn on_price(
        &mut self,
        symbol: &Symbol,
        mark: Decimal,
        now: DateTime<Utc>,
    ) -> ExecutionBatch {
        let mut batch = ExecutionBatch::default();
        let before = self.book.position(symbol).cloned();
        let fills = self.book.on_price(symbol, mark, now);
        for fill in fills {
            let Some(p) = before.as_ref() else { continue };
            let kind = match fill.reason {
                FillReason::TakeProfit => TAKE_PROFIT_MARKET,
                FillReason::StopLoss => STOP_MARKET,
                FillReason::Liquidation => {
                    self.liquidated(&mut batch, p, &fill, mark, now);
                    continue;
                }
                _ => continue,
            };
            for mut o in self.protection.remove(symbol).unwrap_or_default() {
                if o.order_type == kind {
                    set_status(
                        &mut batch,
                        &mut o,
                        "TRIGGERED",
                        now,
                        json!({"mark_price": mark}),
                    );
                    // The fill belongs to the cycle that placed the protection order.
                    let cycle = o.cycle_id;
                    self.filled(&mut batch, &mut o, &fill, cycle);
                } else {
                    set_status(
                        &mut batch,
                        &mut o,
                        "CANCELED",
                        now,
                        json!({"reason": "position closed by the other protection order"}),
                    );
                }
                batch.orders.push(o);
            }
            let why = if kind == TAKE_PROFIT_MARKET {
                "take-profit hit"
            } else {
                "stop-loss hit"
            };
            self.closed(&mut batch, p, &fill, now, why);
            self.last_trades.insert(symbol.clone(), now);
            batch.paper_wallet = Some((self.account_id.to_string(), self.book.wallet_balance()));
        }
        batch
    }

    /// Records a liquidation: the venue's own close order, its fill (taker fee plus the
    /// clearance fee), the position closed and its protection cancelled.
    fn liquidated(
        &mut self,
        batch: &mut ExecutionBatch,
        p: &PaperPosition,
        fill: &PaperFill,
        mark: Decimal,
        now: DateTime<Utc>,
    ) {
        let mut order = OrderRow {
            id: Uuid::now_v7(),
            account_id: self.account_id.to_string(),
            cycle_id: self.meta.get(&p.symbol).and_then(|m| m.opened_cycle),
            decision_id: None,
            client_order_id: format!("paper-liquidation-{}", Uuid::now_v7().simple()),
            venue_order_id: None,
            symbol: p.symbol.to_string(),
            side: fill.side.as_str().to_string(),
            order_type: "LIQUIDATION".into(),
            quantity: Some(fill.quantity),
            price: None,
            stop_price: None,
            reduce_only: true,
            close_position: true,
            status: "NEW".into(),
            filled_quantity: Decimal::ZERO,
            avg_fill_price: None,
            reject_reason: None,
            created_at: now,
            updated_at: now,
        };
        set_status(
            batch,
            &mut order,
            "NEW",
            now,
            json!({"mark_price": mark, "liquidation_fee": fill.liquidation_fee}),
        );
        let cycle = order.cycle_id;
        self.filled(batch, &mut order, fill, cycle);
        batch.orders.push(order);
        self.closed(batch, p, fill, now, "liquidated");
        self.last_trades.insert(p.symbol.clone(), now);
        batch.paper_wallet = Some((self.account_id.to_string(), self.book.wallet_balance()));
    }

    /// Funding information from the market data. When the funding time the venue
    /// announced has passed, the position on `symbol` (if any) pays or receives that
    /// period's last announced rate on its notional at `mark` — once per period; the
    /// venue settles at the funding time, vibex books it on the first price update
    /// after it. The first update seen only starts the clock (no back-charging).
    pub fn on_funding(
        &mut self,
        symbol: &Symbol,
        rate: Decimal,
        next_funding_time: Option<DateTime<Utc>>,
        mark: Decimal,
        now: DateTime<Utc>,
    ) -> Option<PaperFunding> {
        let mut booked = None;
        if let Some(clock) = self.funding.get_mut(symbol) {
            if now >= clock.next_at && clock.booked != Some(clock.next_at) {
                clock.booked = Some(clock.next_at);
                booked = self
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
        } else if let Some(next) = next_funding_time {
            self.funding.insert(
                symbol.clone(),
                FundingClock {
                    next_at: next,
                    rate,
                    booked: None,
                },
            );
        }
        booked
    }

    /// The wallet balance (deposits − fees + realized PnL ± funding).
    pub fn wallet_balance(&self) -> Decimal {
        self.book.wallet_balance()
    }

    /// Closes every position at its last price and cancels every resting order (the
    /// "close all" of the kill switch and the API).
    pub fn close_all(&mut self, why: &str, now: DateTime<Utc>) -> ExecutionBatch {
        let mut batch = ExecutionBatch::default();
        let positions: Vec<PaperPosition> = self.book.positions().cloned().collect();
        for p in positions {
            let price = self.book.last_price(&p.symbol).unwrap_or(p.entry_price);
            let cycle = CycleId::new();
            let mut order = OrderRow {
                id: Uuid::now_v7(),
                account_id: self.account_id.to_string(),
                cycle_id: Some(cycle.0),
                decision_id: None,
                client_order_id: ClientOrderId::derive(
                    &self.account_id,
                    cycle,
                    &p.symbol.asset(),
                    OrderLeg::Exit,
                )
                .to_string(),
                venue_order_id: None,
                symbol: p.symbol.to_string(),
                side: p.side.exit_side().as_str().to_string(),
                order_type: MARKET.into(),
                quantity: Some(p.quantity),
                price: None,
                stop_price: None,
                reduce_only: true,
                close_position: false,
                status: "NEW".into(),
                filled_quantity: Decimal::ZERO,
                avg_fill_price: None,
                reject_reason: None,
                created_at: now,
                updated_at: now,
            };
            match self.book.close_position(
                &p.symbol,
                price,
                now,
                crate::domain::paper::CloseReason::Close,
            ) {
                Ok(fill) => {
                    set_status(&mut batch, &mut order, "NEW", now, json!({"reason": why}));
                    self.filled(&mut batch, &mut order, &fill, Some(cycle.0));
                    batch.orders.push(order);
                    self.closed(&mut batch, &p, &fill, now, why);
                    self.last_trades.insert(p.symbol.clone(), now);
                }
                Err(rej) => {
                    reject(&mut batch, &mut order, &rej.to_string(), now);
                    batch.orders.push(order);
                }
            }
        }
        for (_, orders) in std::mem::take(&mut self.protection) {
            for mut o in orders {
                set_status(&mut batch, &mut o, "CANCELED", now, json!({"reason": why}));
                batch.orders.push(o);
            }
        }
        batch.paper_wallet = Some((self.account_id.to_string(), self.book.wallet_balance()));
        batch
    }

    /// The tick size of `symbol`, for rounding fills (from the venue's rules).
    pub fn set_tick_size(&mut self, symbol: &Symbol, tick: Decimal) {
        self.book.set_tick_size(symbol, tick);
    }

    /// The liquidation price of the position on `symbol`, if it has one.
    pub fn liquidation_price(&self, symbol: &Symbol) -> Option<Decimal> {
        self.book.liquidation_price(symbol)
    }

    /// End of a cycle: open positions revalued at their last price, and the equity row.
    pub fn mark_to_market(
        &self,
        cycle: CycleId,
        now: DateTime<Utc>,
    ) -> (ExecutionBatch, EquitySnapshotRow) {
        let mut batch = ExecutionBatch::default();
        for p in self.book.positions() {
            batch
                .positions
                .push(self.position_row(p, "open", p.realized_pnl, None, now));
        }
        let b = self.book.balance();
        let equity = EquitySnapshotRow {
            ts: now,
            account_id: self.account_id.to_string(),
            cycle_id: Some(cycle.0),
            wallet_balance: b.wallet_balance,
            unrealized_pnl: b.unrealized_pnl,
            equity: b.equity,
            used_margin: b.used_margin,
            available: b.available,
        };
        (batch, equity)
    }

    /// The book's balance as JSON (for `balance` events).
    pub fn balance_json(&self) -> serde_json::Value {
        serde_json::to_value(self.book.balance()).unwrap_or_default()
    }

    #[allow(clippy::too_many_arguments)]
    fn new_order(
        &self,
        cycle: CycleId,
        decision_id: Uuid,
        d: &TradeDecision,
        leg: OrderLeg,
        side: Side,
        kind: &str,
        quantity: Option<Decimal>,
        stop_price: Option<Decimal>,
        reduce_only: bool,
        now: DateTime<Utc>,
    ) -> OrderRow {
        let coid = ClientOrderId::derive(&self.account_id, cycle, &d.asset, leg);
        OrderRow {
            id: Uuid::now_v7(),
            account_id: self.account_id.to_string(),
            cycle_id: Some(cycle.0),
            decision_id: Some(decision_id),
            client_order_id: coid.to_string(),
            venue_order_id: None,
            symbol: d.asset.symbol().to_string(),
            side: side.as_str().to_string(),
            order_type: kind.to_string(),
            quantity,
            price: None,
            stop_price,
            reduce_only,
            close_position: stop_price.is_some(),
            status: "NEW".into(),
            filled_quantity: Decimal::ZERO,
            avg_fill_price: None,
            reject_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn filled(
        &self,
        batch: &mut ExecutionBatch,
        order: &mut OrderRow,
        fill: &PaperFill,
        cycle: Option<Uuid>,
    ) {
        order.filled_quantity = fill.quantity;
        order.avg_fill_price = Some(fill.price);
        if order.quantity.is_none() {
            order.quantity = Some(fill.quantity);
        }
        order.venue_order_id = Some(format!("paper-{}", order.id.simple()));
        set_status(
            batch,
            order,
            "FILLED",
            fill.ts,
            json!({"quantity": fill.quantity, "price": fill.price, "fee": fill.fee}),
        );
        batch.fills.push(FillRow {
            id: Uuid::now_v7(),
            ts: fill.ts,
            account_id: self.account_id.to_string(),
            cycle_id: cycle,
            order_id: Some(order.id),
            client_order_id: order.client_order_id.clone(),
            symbol: fill.symbol.to_string(),
            side: fill.side.as_str().to_string(),
            quantity: fill.quantity,
            price: fill.price,
            // A liquidation's clearance fee is a fee the position paid.
            fee: fill.fee + fill.liquidation_fee,
            realized_pnl: fill.realized_pnl,
            reason: serde_json::to_value(fill.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            venue_trade_id: None,
        });
    }

    /// Records a closed position and cancels its remaining protection.
    fn closed(
        &mut self,
        batch: &mut ExecutionBatch,
        p: &PaperPosition,
        fill: &PaperFill,
        now: DateTime<Utc>,
        why: &str,
    ) {
        for mut o in self.protection.remove(&p.symbol).unwrap_or_default() {
            set_status(batch, &mut o, "CANCELED", now, json!({"reason": why}));
            batch.orders.push(o);
        }
        let mut row = self.position_row(
            p,
            "closed",
            p.realized_pnl + fill.realized_pnl,
            Some(now),
            now,
        );
        row.mark_price = Some(fill.price);
        row.unrealized_pnl = Decimal::ZERO;
        batch.positions.push(row);
        self.meta.remove(&p.symbol);
    }

    fn position_row(
        &self,
        p: &PaperPosition,
        status: &str,
        realized: Decimal,
        closed_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> PositionRow {
        let meta = self.meta.get(&p.symbol).cloned().unwrap_or(PositionMeta {
            id: Uuid::now_v7(),
            opened_cycle: None,
            exit_plan: String::new(),
        });
        let mark = self.book.last_price(&p.symbol);
        PositionRow {
            id: meta.id,
            account_id: self.account_id.to_string(),
            symbol: p.symbol.to_string(),
            side: p.side.as_str().to_string(),
            quantity: p.quantity,
            entry_price: p.entry_price,
            leverage: i32::try_from(p.leverage).unwrap_or(i32::MAX),
            margin: p.margin,
            tp_price: p.tp_price,
            sl_price: p.sl_price,
            exit_plan: meta.exit_plan,
            mark_price: mark,
            unrealized_pnl: mark.map(|m| p.unrealized_pnl(m)).unwrap_or_default(),
            realized_pnl: realized,
            status: status.to_string(),
            opened_at: p.opened_at,
            closed_at,
            opened_cycle_id: meta.opened_cycle,
            updated_at: now,
            liquidation_price: None,
            origin: PositionRow::ORIGIN_VIBEX.to_string(),
        }
    }
}

/// Sets an order's status and records the step in its lifecycle.
pub(crate) fn set_status(
    batch: &mut ExecutionBatch,
    order: &mut OrderRow,
    status: &str,
    now: DateTime<Utc>,
    detail: serde_json::Value,
) {
    order.status = status.to_string();
    order.updated_at = now;
    batch.order_events.push(NewOrderEvent {
        ts: now,
        order_id: order.id,
        account_id: order.account_id.clone(),
        cycle_id: order.cycle_id,
        status: status.to_string(),
        detail,
    });
}

/// Marks an order refused (with the reason) and records the step.
pub(crate) fn reject(
    batch: &mut ExecutionBatch,
    order: &mut OrderRow,
    reason: &str,
    now: DateTime<Utc>,
) {
    order.reject_reason = Some(reason.to_string());
    set_status(batch, order, "REJECTED", now, json!({"reason": reason}));
}
