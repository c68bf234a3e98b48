//! Reconciliation as steps: read the venue, compare ([`crate::engine::reconcile`]),
//! correct vibex's book to the venue's, then poll fills and income.
//!
//! Order of work, and why:
//! 1. Orders vibex thinks are working that the venue no longer lists are looked up
//!    first: a filled take-profit or stop-loss explains a position the venue no longer
//!    holds (it closes with that reason, and its sibling is cancelled at once); a lost
//!    entry explains a position vibex would otherwise adopt.
//! 2. The other findings, each skipped when step 1 made it moot (a position already
//!    closed, an orphan already cancelled).
//! 3. Fills since the last ones (unless the user stream delivers them), and income (a
//!    full reconciliation only).
//!
//! How deep a reconciliation reads ([`Depth`]): everything at start and every
//! [`FULL_EVERY`]th time; otherwise the working orders of the symbols vibex trades or
//! holds, plus their fills while the user stream is down (it is the only other way
//! fills arrive). That keeps a live account's request weight per cycle small even
//! while its stream is down.

use crate::domain::orders::{OrderStatus, OrderType};
use crate::domain::types::{CycleId, PositionSide, Side, Symbol};
use crate::engine::core::{Depth, Engine, Step, Then, FULL_EVERY};
use crate::engine::io::*;
use crate::engine::model::*;
use crate::engine::orders::{looked_up, protection_steps};
use crate::engine::reconcile::{reconcile, Finding, LocalBook, LocalOrder, LocalPosition};
use crate::exchange::error::VenueError;
use crate::exchange::venue::{VenueIncome, VenuePosition};
use rust_decimal::Decimal;
use serde_json::json;

impl Engine {
    fn local_book(&self) -> LocalBook {
        LocalBook {
            positions: self
                .positions
                .values()
                .map(|p| LocalPosition {
                    symbol: p.symbol.clone(),
                    side: p.side,
                    quantity: p.quantity,
                    entry_price: p.entry_price,
                    tp_price: p.tp_price,
                    sl_price: p.sl_price,
                    adopted: p.origin == Origin::Adopted,
                })
                .collect(),
            open_orders: self
                .orders
                .values()
                .map(|o| LocalOrder {
                    symbol: o.symbol.clone(),
                    client_order_id: o.client_order_id.clone(),
                    order_type: o.order_type.clone(),
                })
                .collect(),
        }
    }

    /// Reads the venue, as deep as [`Depth`] says (see the module docs).
    pub(crate) fn read_venue(&mut self, job: JobId, cycle: Option<CycleId>, fx: &mut Effects) {
        let depth = if self.reconciles % FULL_EVERY == 0 {
            Depth::Full
        } else if self.stream_up {
            Depth::Light
        } else {
            Depth::Fills
        };
        self.reconciles += 1;
        let request = if depth == Depth::Full {
            Request::Snapshot
        } else {
            let mut symbols: Vec<Symbol> = self.rules.keys().cloned().collect();
            for s in self
                .positions
                .keys()
                .cloned()
                .chain(self.orders.values().map(|o| o.symbol.clone()))
            {
                if !symbols.contains(&s) {
                    symbols.push(s);
                }
            }
            symbols.sort();
            Request::SnapshotOf(symbols)
        };
        self.ask(job, request, Then::Snapshot { cycle, depth }, fx);
    }

    pub(crate) fn on_snapshot(
        &mut self,
        job: JobId,
        cycle: Option<CycleId>,
        depth: Depth,
        result: Result<Reply, VenueError>,
    ) {
        let snap = match result {
            Ok(Reply::Snapshot(s)) => s,
            Ok(other) => {
                let why = crate::engine::core::unexpected("the venue snapshot", &other);
                self.fail(job, why);
                return;
            }
            Err(e) => {
                let why = if self.is_start(job) {
                    format!("first reconciliation failed: {e}")
                } else {
                    e.to_string()
                };
                self.fail(job, why);
                return;
            }
        };
        self.balance = snap.balance.clone();
        for p in &snap.positions {
            if p.mark_price > Decimal::ZERO {
                self.marks.insert(p.symbol.clone(), p.mark_price);
            }
            match p.liquidation_price {
                Some(l) => self.liquidation.insert(p.symbol.clone(), l),
                None => self.liquidation.remove(&p.symbol),
            };
        }
        let findings = reconcile(&self.local_book(), &snap);
        let mut settle = Vec::new();
        let mut rest = Vec::new();
        for f in findings {
            match f {
                Finding::OrderNotWorking {
                    ref symbol,
                    ref client_order_id,
                } => settle.push(Step::Settle {
                    symbol: symbol.clone(),
                    coid: client_order_id.clone(),
                    cycle,
                    finding: f.clone(),
                }),
                other => rest.push(Step::ApplyFinding {
                    cycle,
                    finding: other,
                }),
            }
        }
        let mut steps = settle;
        steps.extend(rest);
        if depth != Depth::Light {
            steps.push(Step::PollFills { cycle, depth });
        }
        self.next(job, steps);
    }

    /// Looks up an order vibex thought was working (or never heard back about).
    pub(crate) fn settle(
        &mut self,
        job: JobId,
        symbol: Symbol,
        coid: String,
        cycle: Option<CycleId>,
        finding: Finding,
        fx: &mut Effects,
    ) {
        if !self.orders.contains_key(&coid) {
            return;
        }
        self.ask(
            job,
            Request::Query {
                symbol: symbol.clone(),
                client_order_id: coid.clone(),
            },
            Then::Settled {
                symbol,
                coid,
                cycle,
                finding,
            },
            fx,
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_settled(
        &mut self,
        job: JobId,
        symbol: Symbol,
        coid: String,
        cycle: Option<CycleId>,
        finding: Finding,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        let Some(mut order) = self.orders.get(&coid).cloned() else {
            return;
        };
        match looked_up(result) {
            Ok(Some(o)) => {
                self.absorb(&mut fx.changes, &mut order, &o);
                self.record(
                    &mut fx.changes,
                    cycle,
                    &finding,
                    json!({"venue_status": o.status.as_str()}),
                );
                fx.changes.orders.push(order.clone());
                self.file_order(order.clone());
                if o.status != OrderStatus::Filled {
                    if o.status.is_final() {
                        self.plans.remove(&coid);
                    }
                    return;
                }
                let held = self.positions.get(&symbol).map(|p| (p.side, p.quantity));
                let is_entry = order.order_type == OrderType::Market && !order.reduce_only;
                match CloseReason::of_closing_order(&order.order_type) {
                    // A TP/SL (or the venue's liquidation) filled: the position is closed
                    // with that reason and the other protection cancelled now.
                    Some(reason) if held.is_some() && order.close_position => {
                        self.close_local(job, &symbol, o.avg_price, reason, fx);
                    }
                    // An entry whose answer was lost: its position is vibex's.
                    _ if is_entry && held.is_none() => {
                        if let Some(plan) = self.plans.get(&coid).cloned() {
                            let side = if o.side == Side::Buy {
                                PositionSide::Long
                            } else {
                                PositionSide::Short
                            };
                            self.opened(&o, order.cycle_id, &plan, fx);
                            let fresh = self.new_cycle();
                            let steps =
                                protection_steps(&symbol, side, &plan, fresh, order.decision_id);
                            self.next(job, steps);
                        }
                    }
                    // An exit whose answer was lost: vibex closed the position.
                    _ if order.reduce_only
                        && held.is_some_and(|(_, quantity)| o.executed_qty >= quantity) =>
                    {
                        self.close_local(job, &symbol, o.avg_price, CloseReason::Decision, fx);
                    }
                    _ => {}
                }
            }
            Ok(None) => {
                let why = if matches!(order.status, OrderStatus::PendingNew | OrderStatus::Unknown)
                {
                    "the venue never received this order"
                } else {
                    "the venue no longer knows this order"
                };
                self.reject(&mut fx.changes, &mut order, why);
                self.plans.remove(&coid);
                self.record(
                    &mut fx.changes,
                    cycle,
                    &finding,
                    json!({"status": order.status.as_str()}),
                );
                fx.changes.orders.push(order.clone());
                self.file_order(order);
            }
            Err(e) => fx.notices.push(Notice::warning(
                "could not look an order up; will retry next cycle",
                vec![("client_order_id", coid), ("error", e.to_string())],
            )),
        }
    }

    /// Acts on one finding, unless an earlier step made it moot.
    pub(crate) fn apply_finding(
        &mut self,
        job: JobId,
        cycle: Option<CycleId>,
        f: Finding,
        fx: &mut Effects,
    ) {
        match &f {
            Finding::OrderNotWorking { .. } => {}
            Finding::PositionChanged {
                symbol,
                venue_quantity,
                venue_entry,
                ..
            } => {
                let Some(p) = self.positions.get_mut(symbol) else {
                    return;
                };
                p.quantity = *venue_quantity;
                p.entry_price = *venue_entry;
                p.updated_at = self.now;
                fx.changes.positions.push(p.clone());
                self.record(&mut fx.changes, cycle, &f, json!({}));
            }
            Finding::PositionClosedOnVenue { symbol, side, .. } => {
                // Moot when a lookup above already closed it (its TP or SL filled).
                if self.positions.get(symbol).map(|p| p.side) != Some(*side) {
                    return;
                }
                self.record(&mut fx.changes, cycle, &f, json!({}));
                let mark = self.marks.get(symbol).copied();
                self.close_local(job, symbol, mark, CloseReason::ClosedOnVenue, fx);
            }
            Finding::PositionAdopted { position } => {
                // A lost entry found above is vibex's, not adopted.
                if !self.positions.contains_key(&position.symbol) {
                    self.adopt(position, cycle, &f, fx);
                }
            }
            Finding::OrphanOrder { order } => {
                let coid = &order.client_order_id;
                let done_already = self.acc(job).is_some_and(|a| a.cancelled.contains(coid))
                    || self.finished.get(coid).is_some_and(|o| o.status.is_final());
                if done_already {
                    return;
                }
                self.record(&mut fx.changes, cycle, &f, json!({}));
                if self.orders.contains_key(coid) {
                    self.cancel_one(job, &order.symbol, coid, "orphaned: no position", fx);
                } else {
                    self.ask(
                        job,
                        Request::Cancel {
                            symbol: order.symbol.clone(),
                            client_order_id: coid.clone(),
                        },
                        Then::CancelledOrphan { coid: coid.clone() },
                        fx,
                    );
                }
            }
            Finding::OrderAdopted { order } => {
                if self.orders.contains_key(&order.client_order_id) {
                    return;
                }
                self.record(&mut fx.changes, cycle, &f, json!({}));
                let adopted = Order {
                    id: self.new_id(),
                    account_id: self.cfg.account_id.clone(),
                    cycle_id: None,
                    decision_id: None,
                    client_order_id: order.client_order_id.clone(),
                    venue_order_id: Some(order.order_id.clone()),
                    symbol: order.symbol.clone(),
                    side: order.side,
                    order_type: order.order_type.clone(),
                    quantity: Some(order.orig_qty).filter(|q| !q.is_zero()),
                    price: None,
                    stop_price: order.stop_price,
                    reduce_only: order.reduce_only,
                    close_position: order.close_position,
                    status: order.status,
                    filled_quantity: order.executed_qty,
                    avg_fill_price: order.avg_price,
                    reject_reason: None,
                    created_at: self.now,
                    updated_at: self.now,
                };
                fx.changes.orders.push(adopted.clone());
                self.file_order(adopted);
            }
            Finding::ProtectionMissing {
                symbol,
                side,
                leg,
                stop_price,
            } => {
                if self.positions.get(symbol).map(|p| p.side) != Some(*side) {
                    return;
                }
                self.record(&mut fx.changes, cycle, &f, json!({}));
                let plan = EntryPlan {
                    tp_price: (*leg == crate::exchange::venue::OrderKind::TakeProfitMarket)
                        .then_some(*stop_price),
                    sl_price: (*leg == crate::exchange::venue::OrderKind::StopMarket)
                        .then_some(*stop_price),
                    exit_plan: String::new(),
                };
                // Fresh ids: this cycle may place its own TP/SL after an entry.
                let fresh = self.new_cycle();
                self.next(job, protection_steps(symbol, *side, &plan, fresh, None));
            }
        }
    }

    /// Cancels one tracked order.
    fn cancel_one(&mut self, job: JobId, symbol: &Symbol, coid: &str, why: &str, fx: &mut Effects) {
        self.ask(
            job,
            Request::Cancel {
                symbol: symbol.clone(),
                client_order_id: coid.to_string(),
            },
            Then::Cancelled {
                coid: coid.to_string(),
                why: why.to_string(),
            },
            fx,
        );
    }

    /// A venue position vibex does not hold: adopt it (reported, never closed).
    fn adopt(&mut self, p: &VenuePosition, cycle: Option<CycleId>, f: &Finding, fx: &mut Effects) {
        let leverage = p.leverage.max(1);
        let position = Position {
            id: self.new_id(),
            account_id: self.cfg.account_id.clone(),
            symbol: p.symbol.clone(),
            side: p.side(),
            quantity: p.quantity(),
            entry_price: p.entry_price,
            leverage,
            margin: if p.isolated_margin > Decimal::ZERO {
                p.isolated_margin
            } else {
                (p.quantity() * p.entry_price / Decimal::from(leverage)).round_dp(8)
            },
            tp_price: None,
            sl_price: None,
            exit_plan: "adopted from the venue: vibex did not open this position".into(),
            mark_price: Some(p.mark_price).filter(|m| *m > Decimal::ZERO),
            unrealized_pnl: p.unrealized_pnl,
            realized_pnl: Decimal::ZERO,
            status: PositionStatus::Open,
            opened_at: self.now,
            closed_at: None,
            close_reason: None,
            opened_cycle_id: None,
            updated_at: self.now,
            liquidation_price: p.liquidation_price,
            origin: Origin::Adopted,
        };
        self.positions.insert(p.symbol.clone(), position.clone());
        self.record(&mut fx.changes, cycle, f, json!({}));
        fx.changes.positions.push(position);
    }

    /// Asks for the fills of every symbol vibex trades, holds or has orders on since the
    /// last ones it holds; and, in a full reconciliation, the income.
    pub(crate) fn poll_fills(
        &mut self,
        job: JobId,
        cycle: Option<CycleId>,
        depth: Depth,
        fx: &mut Effects,
    ) {
        let mut symbols: Vec<Symbol> = self.positions.keys().cloned().collect();
        for s in self
            .closed
            .keys()
            .chain(self.last_trades.keys())
            .chain(self.orders.values().map(|o| &o.symbol))
            .chain(self.finished.values().map(|o| &o.symbol))
        {
            if !symbols.contains(s) {
                symbols.push(s.clone());
            }
        }
        symbols.sort();
        let since = self.fills_since;
        for symbol in symbols {
            self.ask(job, Request::UserTrades { symbol, since }, Then::Trades, fx);
        }
        if depth == Depth::Full {
            let since = self.income_since;
            self.ask(job, Request::Income { since }, Then::Income { cycle }, fx);
        }
    }

    pub(crate) fn on_trades(
        &mut self,
        job: JobId,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        let trades = match result {
            Ok(Reply::Trades(t)) => t,
            Ok(other) => {
                let why = crate::engine::core::unexpected("the fills", &other);
                self.fail(job, why);
                return;
            }
            Err(e) => {
                self.fail(job, e.to_string());
                return;
            }
        };
        for t in trades {
            self.on_trade(job, t, fx);
        }
    }

    pub(crate) fn on_income(
        &mut self,
        job: JobId,
        cycle: Option<CycleId>,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        let income: Vec<VenueIncome> = match result {
            Ok(Reply::Income(i)) => i,
            Ok(other) => {
                let why = crate::engine::core::unexpected("the income", &other);
                self.fail(job, why);
                return;
            }
            Err(e) => {
                self.fail(job, e.to_string());
                return;
            }
        };
        for i in income {
            if i.time > self.income_since {
                self.income_since = i.time;
            }
            // The venue's startTime is inclusive: the newest record comes back again.
            if !self.remember(format!("income:{}:{}", i.kind, i.tran_id)) {
                continue;
            }
            fx.changes.income.push(Income {
                id: self.new_id(),
                ts: i.time,
                account_id: self.cfg.account_id.clone(),
                cycle_id: cycle,
                symbol: i.symbol.clone(),
                kind: IncomeKind::from_venue(&i.kind),
                amount: i.amount,
                asset: i.asset.clone(),
                venue_tran_id: Some(i.tran_id.clone()),
                detail: json!({"venue_kind": i.kind, "trade_id": i.trade_id}),
            });
        }
    }
}
