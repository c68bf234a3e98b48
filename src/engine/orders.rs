//! Orders: executing a decision (close an opposite position, open the target one with
//! its TP/SL), closing a position, cancelling protection, close-all, and setting a
//! symbol's leverage and margin type — as steps of the engine's jobs.
//!
//! Invariants: an order's `PENDING_NEW` row is an intent of the effects that ask for it;
//! an entry is refused without sending when the symbol's rules say no; an entry that
//! would net against an opposite position that could not be closed is not sent; a TP/SL
//! level the mark already crossed (`-2021`) closes the position at market at once.

use crate::domain::orders::{ClientOrderId, OrderLeg, OrderStatus};
use crate::domain::types::{CycleId, PositionSide, Side, Symbol};
use crate::engine::core::{Engine, ExecuteCtx, Purpose, Step, Then};
use crate::engine::io::*;
use crate::engine::model::*;
use crate::exchange::error::VenueError;
use crate::exchange::venue::{OrderKind, OrderRequest, VenueOrder};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

/// Venue code: a trigger order would fire at once (its level is already crossed).
pub const CODE_WOULD_TRIGGER: i64 = -2021;

/// The engine's name for an answer of the wrong kind.
const ENGINE: &str = "engine";

/// The venue's order out of an answer to a placement or a lookup.
pub(crate) fn placed(result: Result<Reply, VenueError>) -> Result<VenueOrder, VenueError> {
    match result {
        Ok(Reply::Placed(o)) => Ok(o),
        Ok(other) => Err(VenueError::Decode {
            endpoint: ENGINE.into(),
            detail: format!("expected the placed order, got {other:?}"),
        }),
        Err(e) => Err(e),
    }
}

/// `Some(order)` / `None` (unknown to the venue) out of a query or cancel answer.
pub(crate) fn looked_up(
    result: Result<Reply, VenueError>,
) -> Result<Option<VenueOrder>, VenueError> {
    match result {
        Ok(Reply::Order(o)) => Ok(o),
        Ok(other) => Err(VenueError::Decode {
            endpoint: ENGINE.into(),
            detail: format!("expected an order or nothing, got {other:?}"),
        }),
        Err(e) => Err(e),
    }
}

impl Engine {
    /// The order vibex is about to send for `req`.
    fn order_for(
        &self,
        req: &OrderRequest,
        cycle: Option<CycleId>,
        decision_id: Option<Uuid>,
    ) -> Order {
        Order {
            id: self.new_id(),
            account_id: self.cfg.account_id.clone(),
            cycle_id: cycle,
            decision_id,
            client_order_id: req.client_order_id.clone(),
            venue_order_id: None,
            symbol: req.symbol.clone(),
            side: req.side,
            order_type: req.kind.order_type(),
            quantity: req.quantity,
            price: None,
            stop_price: req.stop_price,
            reduce_only: req.reduce_only,
            close_position: req.close_position,
            status: OrderStatus::PendingNew,
            filled_quantity: Decimal::ZERO,
            avg_fill_price: None,
            reject_reason: None,
            created_at: self.now,
            updated_at: self.now,
        }
    }

    /// Records the order's intent (durable before sending, for a remote venue) and asks
    /// for the placement.
    fn place(
        &mut self,
        job: JobId,
        req: OrderRequest,
        cycle: Option<CycleId>,
        decision_id: Option<Uuid>,
        purpose: Purpose,
        fx: &mut Effects,
    ) {
        let mut order = self.order_for(&req, cycle, decision_id);
        let mut intent = Changes::default();
        self.set_status(
            &mut intent,
            &mut order,
            OrderStatus::PendingNew,
            json!({"request": req}),
        );
        intent.orders.push(order.clone());
        if self.cfg.in_process {
            fx.changes.extend(intent);
        } else {
            fx.intents.extend(intent);
        }
        let coid = req.client_order_id.clone();
        self.orders.insert(coid.clone(), order);
        self.ask(job, Request::Place(req), Then::Placed { coid, purpose }, fx);
    }

    /// Records an order refused before sending (the symbol's rules).
    fn refuse(
        &self,
        req: &OrderRequest,
        cycle: CycleId,
        decision_id: Uuid,
        reason: &str,
        fx: &mut Effects,
    ) {
        let mut order = self.order_for(req, Some(cycle), Some(decision_id));
        self.reject(&mut fx.changes, &mut order, reason);
        fx.changes.orders.push(order);
    }

    /// The venue answered a placement: record it, then continue with its purpose.
    pub(crate) fn on_placed(
        &mut self,
        job: JobId,
        coid: &str,
        purpose: Purpose,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        let outcome = placed(result);
        let Some(mut order) = self.orders.remove(coid) else {
            fx.notices.push(Notice::warning(
                "the answer to an order vibex no longer tracks was ignored",
                vec![("client_order_id", coid.to_string())],
            ));
            return;
        };
        match &outcome {
            Ok(o) => self.absorb(&mut fx.changes, &mut order, o),
            Err(e @ VenueError::OutcomeUnknown { .. }) => self.set_status(
                &mut fx.changes,
                &mut order,
                OrderStatus::Unknown,
                json!({"error": e.to_string()}),
            ),
            Err(e) => self.reject(&mut fx.changes, &mut order, &e.to_string()),
        }
        fx.changes.orders.push(order.clone());
        self.file_order(order);
        match purpose {
            Purpose::Entry { ctx, plan } => self.entry_answered(job, ctx, plan, outcome, fx),
            Purpose::Exit { position, reason } => {
                self.exit_answered(job, &position, reason, outcome, fx)
            }
            Purpose::Protection { symbol, cycle, leg } => {
                self.protection_answered(job, symbol, cycle, leg, outcome, fx)
            }
        }
    }

    // ---- executing a decision -------------------------------------------------------

    /// Close an opposite position first; then the entry; then the diary entry.
    pub(crate) fn execute_decision(&mut self, job: JobId, ctx: Box<ExecuteCtx>) {
        let symbol = ctx.decision.asset.symbol();
        let mut steps = Vec::new();
        if let Some(p) = self.positions.get(&symbol) {
            if p.side == ctx.target {
                // No pyramiding: the decision keeps the position as it is.
                return;
            }
            if let Some(acc) = self.acc(job) {
                acc.orders += 1;
            }
            steps.push(Step::CancelProtection {
                symbol: symbol.clone(),
                why: CloseReason::Decision.describe().to_string(),
            });
            steps.push(Step::SendExit {
                symbol: symbol.clone(),
                cycle: ctx.cycle,
                decision_id: Some(ctx.decision_id),
                reason: CloseReason::Decision,
            });
        }
        if ctx.decision.allocation_usd > Decimal::ZERO {
            if let Some(acc) = self.acc(job) {
                acc.orders += 1;
            }
            steps.push(Step::Prepare {
                symbol: symbol.clone(),
            });
            steps.push(Step::OpenEntry(ctx.clone()));
        }
        steps.push(Step::Diary(ctx));
        self.next(job, steps);
    }

    /// Sends the entry of the target position (or records why it is not sent).
    pub(crate) fn open_entry(&mut self, job: JobId, ctx: Box<ExecuteCtx>, fx: &mut Effects) {
        let symbol = ctx.decision.asset.symbol();
        let raw_qty = if ctx.price > Decimal::ZERO {
            (ctx.decision.allocation_usd / ctx.price).round_dp(12)
        } else {
            Decimal::ZERO
        };
        let qty = ctx
            .rules
            .as_ref()
            .map(|r| r.floor_quantity(raw_qty, true))
            .unwrap_or(raw_qty);
        let req = OrderRequest {
            symbol: symbol.clone(),
            side: ctx.target.entry_side(),
            kind: OrderKind::Market,
            quantity: Some(qty),
            stop_price: None,
            reduce_only: false,
            close_position: false,
            client_order_id: ClientOrderId::derive(
                &self.cfg.account_id,
                ctx.cycle,
                &ctx.decision.asset,
                OrderLeg::Entry,
            )
            .to_string(),
        };
        let (exit_complete, prepare_error) = self
            .acc(job)
            .map(|a| (a.exit_complete, a.prepare_error.clone()))
            .unwrap_or_default();
        let refusal = if exit_complete == Some(false)
            || self
                .positions
                .get(&symbol)
                .is_some_and(|p| p.side != ctx.target)
        {
            Some("the opposite position could not be closed; entry not sent".to_string())
        } else if let Some(e) = prepare_error {
            Some(format!(
                "could not set leverage/margin type: {e}; order not sent"
            ))
        } else {
            match &ctx.rules {
                None => Some(format!(
                    "no trading rules for {symbol} from the venue yet; order not sent"
                )),
                Some(r) => r
                    .check_order(qty, ctx.price, true)
                    .err()
                    .map(|e| e.to_string()),
            }
        };
        if let Some(reason) = refusal {
            self.refuse(&req, ctx.cycle, ctx.decision_id, &reason, fx);
            if let Some(acc) = self.acc(job) {
                acc.result["entry"] = json!({"status": "REJECTED", "reason": reason});
            }
            return;
        }
        let round = |p: Decimal| ctx.rules.as_ref().map(|r| r.round_price(p)).unwrap_or(p);
        let plan = EntryPlan {
            tp_price: ctx.decision.tp_price.map(round),
            sl_price: ctx.decision.sl_price.map(round),
            exit_plan: ctx.decision.exit_plan.clone(),
        };
        self.plans.insert(req.client_order_id.clone(), plan.clone());
        let (cycle, decision_id) = (ctx.cycle, ctx.decision_id);
        self.place(
            job,
            req,
            Some(cycle),
            Some(decision_id),
            Purpose::Entry { ctx, plan },
            fx,
        );
    }

    fn entry_answered(
        &mut self,
        job: JobId,
        ctx: Box<ExecuteCtx>,
        plan: EntryPlan,
        outcome: Result<VenueOrder, VenueError>,
        fx: &mut Effects,
    ) {
        let result = match outcome {
            Err(e) => json!({"status": "NOT_FILLED", "reason": e.to_string()}),
            Ok(o) if o.executed_qty <= Decimal::ZERO => json!({
                "status": o.status.as_str(),
                "note": "the entry did not fill at once; reconciliation follows it"
            }),
            Ok(o) => {
                self.opened(&o, Some(ctx.cycle), &plan, fx);
                if let Some(acc) = self.acc(job) {
                    acc.entry = Some(o.clone());
                }
                self.next(
                    job,
                    protection_steps(
                        &o.symbol,
                        ctx.target,
                        &plan,
                        ctx.cycle,
                        Some(ctx.decision_id),
                    ),
                );
                json!({
                    "status": o.status.as_str(), "quantity": o.executed_qty, "price": o.avg_price,
                    "tp_price": plan.tp_price, "sl_price": plan.sl_price,
                })
            }
        };
        if let Some(acc) = self.acc(job) {
            acc.result["entry"] = result;
        }
    }

    /// Records the position an entry opened (from the venue's answer).
    pub(crate) fn opened(
        &mut self,
        o: &VenueOrder,
        cycle: Option<CycleId>,
        plan: &EntryPlan,
        fx: &mut Effects,
    ) {
        let price = o.avg_price.unwrap_or_default();
        let leverage = self.cfg.leverage.max(1);
        let side = if o.side == Side::Buy {
            PositionSide::Long
        } else {
            PositionSide::Short
        };
        let p = Position {
            id: self.new_id(),
            account_id: self.cfg.account_id.clone(),
            symbol: o.symbol.clone(),
            side,
            quantity: o.executed_qty,
            entry_price: price,
            leverage,
            margin: (o.executed_qty * price / Decimal::from(leverage)).round_dp(8),
            tp_price: plan.tp_price,
            sl_price: plan.sl_price,
            exit_plan: plan.exit_plan.clone(),
            mark_price: Some(price),
            unrealized_pnl: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
            status: PositionStatus::Open,
            opened_at: o.update_time,
            closed_at: None,
            close_reason: None,
            opened_cycle_id: cycle,
            updated_at: self.now,
            liquidation_price: None,
            origin: Origin::Vibex,
        };
        self.positions.insert(o.symbol.clone(), p.clone());
        self.last_trades.insert(o.symbol.clone(), self.now);
        self.plans.remove(&o.client_order_id);
        fx.changes.positions.push(p);
    }

    /// The diary entry of an executed decision.
    pub(crate) fn diary(&mut self, job: JobId, ctx: &ExecuteCtx, fx: &mut Effects) {
        let Some(acc) = self.acc(job) else { return };
        let entry = acc.entry.clone();
        let (tp_oid, sl_oid, result) = (acc.tp_oid.clone(), acc.sl_oid.clone(), acc.result.clone());
        let d = &ctx.decision;
        fx.changes.diary.push(DiaryEntry {
            id: self.new_id(),
            ts: self.now,
            account_id: self.cfg.account_id.clone(),
            cycle_id: Some(ctx.cycle),
            asset: d.asset.clone(),
            action: d.action,
            allocation_usd: Some(d.allocation_usd),
            amount: entry.as_ref().map(|o| o.executed_qty),
            entry_price: entry.as_ref().and_then(|o| o.avg_price),
            tp_price: d.tp_price,
            tp_oid,
            sl_price: d.sl_price,
            sl_oid,
            exit_plan: Some(d.exit_plan.clone()),
            rationale: Some(d.rationale.clone()),
            order_result: Some(result),
            opened_at: entry.as_ref().map(|o| o.update_time),
            filled: entry.is_some(),
        });
    }

    // ---- protection -----------------------------------------------------------------

    /// Places one TP/SL leg (close-position trigger at the mark price).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn place_protection(
        &mut self,
        job: JobId,
        symbol: Symbol,
        side: PositionSide,
        plan: EntryPlan,
        cycle: CycleId,
        decision_id: Option<Uuid>,
        leg: OrderLeg,
        fx: &mut Effects,
    ) {
        if !self.positions.contains_key(&symbol) {
            // The position closed meanwhile (a crossed level): nothing to protect.
            return;
        }
        let (kind, level) = match leg {
            OrderLeg::TakeProfit => (OrderKind::TakeProfitMarket, plan.tp_price),
            _ => (OrderKind::StopMarket, plan.sl_price),
        };
        let Some(level) = level else { return };
        let level = self
            .rules
            .get(&symbol)
            .map(|r| r.round_price(level))
            .unwrap_or(level);
        let req = OrderRequest {
            symbol: symbol.clone(),
            side: side.exit_side(),
            kind,
            quantity: None,
            stop_price: Some(level),
            reduce_only: true,
            close_position: true,
            client_order_id: ClientOrderId::derive(
                &self.cfg.account_id,
                cycle,
                &symbol.asset(),
                leg,
            )
            .to_string(),
        };
        let purpose = Purpose::Protection { symbol, cycle, leg };
        self.place(job, req, Some(cycle), decision_id, purpose, fx);
    }

    fn protection_answered(
        &mut self,
        job: JobId,
        symbol: Symbol,
        cycle: CycleId,
        leg: OrderLeg,
        outcome: Result<VenueOrder, VenueError>,
        fx: &mut Effects,
    ) {
        let coid =
            ClientOrderId::derive(&self.cfg.account_id, cycle, &symbol.asset(), leg).to_string();
        match outcome {
            Ok(_) => {
                if let Some(acc) = self.acc(job) {
                    if leg == OrderLeg::TakeProfit {
                        acc.tp_oid = Some(coid);
                    } else {
                        acc.sl_oid = Some(coid);
                    }
                }
            }
            Err(e) => {
                if let Some(acc) = self.acc(job) {
                    if let Some(entry) = acc.result.get_mut("entry") {
                        entry["protection_error"] = json!(e.to_string());
                    }
                }
                if e.venue_code() == Some(CODE_WOULD_TRIGGER) {
                    // The level is already crossed: do what the trigger would have done.
                    // Fresh ids: this cycle may already have used its exit id.
                    if self.positions.contains_key(&symbol) {
                        let fresh = self.new_cycle();
                        if let Some(j) = self.jobs.get_mut(&job) {
                            // The other leg is moot: the position closes now.
                            j.steps.retain(|s| !matches!(s, Step::PlaceProtection { symbol: s, .. } if *s == symbol));
                        }
                        self.next(
                            job,
                            vec![
                                Step::CancelProtection {
                                    symbol: symbol.clone(),
                                    why: CloseReason::LevelCrossed.describe().to_string(),
                                },
                                Step::SendExit {
                                    symbol,
                                    cycle: fresh,
                                    decision_id: None,
                                    reason: CloseReason::LevelCrossed,
                                },
                            ],
                        );
                    }
                } else {
                    fx.notices.push(Notice::warning(
                        "a protection order was refused; reconciliation places it again",
                        vec![("client_order_id", coid), ("error", e.to_string())],
                    ));
                }
            }
        }
    }

    /// Asks for every working protective order of `symbol` to be cancelled.
    pub(crate) fn cancel_protection(
        &mut self,
        job: JobId,
        symbol: &Symbol,
        why: &str,
        fx: &mut Effects,
    ) {
        let ids: Vec<String> = self
            .orders
            .values()
            .filter(|o| o.symbol == *symbol && o.is_protective() && o.status.is_working())
            .map(|o| o.client_order_id.clone())
            .collect();
        for coid in ids {
            self.ask(
                job,
                Request::Cancel {
                    symbol: symbol.clone(),
                    client_order_id: coid.clone(),
                },
                Then::Cancelled {
                    coid,
                    why: why.to_string(),
                },
                fx,
            );
        }
    }

    pub(crate) fn on_cancelled(
        &mut self,
        job: JobId,
        coid: &str,
        why: &str,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        match looked_up(result) {
            Ok(answer) => {
                let Some(mut order) = self.orders.remove(coid) else {
                    return;
                };
                let before = fx.changes.order_events.len();
                match answer {
                    Some(o) => self.absorb(&mut fx.changes, &mut order, &o),
                    None => self.set_status(
                        &mut fx.changes,
                        &mut order,
                        OrderStatus::Canceled,
                        json!({"note": "no longer open on the venue"}),
                    ),
                }
                if fx.changes.order_events.len() > before {
                    if let Some(ev) = fx.changes.order_events.last_mut() {
                        ev.detail["reason"] = json!(why);
                    }
                }
                if let Some(acc) = self.acc(job) {
                    acc.cancelled.insert(coid.to_string());
                }
                fx.changes.orders.push(order.clone());
                self.file_order(order);
            }
            Err(e) => fx.notices.push(Notice::warning(
                "could not cancel an order; reconciliation will retry",
                vec![
                    ("client_order_id", coid.to_string()),
                    ("error", e.to_string()),
                ],
            )),
        }
    }

    // ---- closing ---------------------------------------------------------------------

    /// Sends the reduce-only market order that closes the position on `symbol`.
    pub(crate) fn send_exit(
        &mut self,
        job: JobId,
        symbol: &Symbol,
        cycle: CycleId,
        decision_id: Option<Uuid>,
        reason: CloseReason,
        fx: &mut Effects,
    ) {
        let Some(p) = self.positions.get(symbol).cloned() else {
            // Closed meanwhile (a trigger fired): nothing to close.
            if let Some(acc) = self.acc(job) {
                acc.exit_complete = Some(true);
            }
            return;
        };
        let req = OrderRequest {
            symbol: symbol.clone(),
            side: p.side.exit_side(),
            kind: OrderKind::Market,
            quantity: Some(p.quantity),
            stop_price: None,
            reduce_only: true,
            close_position: false,
            client_order_id: ClientOrderId::derive(
                &self.cfg.account_id,
                cycle,
                &symbol.asset(),
                OrderLeg::Exit,
            )
            .to_string(),
        };
        let purpose = Purpose::Exit {
            position: Box::new(p),
            reason,
        };
        self.place(job, req, Some(cycle), decision_id, purpose, fx);
    }

    fn exit_answered(
        &mut self,
        job: JobId,
        p: &Position,
        reason: CloseReason,
        outcome: Result<VenueOrder, VenueError>,
        fx: &mut Effects,
    ) {
        let (result, complete) = match outcome {
            Ok(o) if o.executed_qty > Decimal::ZERO && o.executed_qty < p.quantity => {
                // The venue filled less than the position: it stays open, smaller.
                if let Some(row) = self.positions.get_mut(&p.symbol) {
                    row.quantity = p.quantity - o.executed_qty;
                    row.updated_at = self.now;
                    fx.changes.positions.push(row.clone());
                }
                (
                    json!({"status": o.status.as_str(), "quantity": o.executed_qty,
                           "price": o.avg_price, "remaining": p.quantity - o.executed_qty}),
                    false,
                )
            }
            Ok(o) if o.executed_qty > Decimal::ZERO => {
                self.close_local(job, &p.symbol, o.avg_price, reason, fx);
                (
                    json!({"status": o.status.as_str(), "quantity": o.executed_qty, "price": o.avg_price}),
                    true,
                )
            }
            Ok(o) => (json!({"status": o.status.as_str()}), false),
            Err(e) => (
                json!({"status": "NOT_FILLED", "reason": e.to_string()}),
                false,
            ),
        };
        if !complete && reason == CloseReason::CloseAll {
            let why = result["reason"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| result.to_string());
            if let Some(acc) = self.acc(job) {
                acc.problems.push(format!("{}: close: {why}", p.symbol));
            }
        }
        if let Some(acc) = self.acc(job) {
            acc.exit_complete = Some(complete);
            acc.result["exit"] = result;
        }
    }

    /// Close-all: cancel every working order, then close every position.
    pub(crate) fn begin_close_all(&mut self, job: JobId, reason: &str) {
        let mut symbols: Vec<Symbol> = self.positions.keys().cloned().collect();
        for o in self.orders.values() {
            if !symbols.contains(&o.symbol) {
                symbols.push(o.symbol.clone());
            }
        }
        let mut steps: Vec<Step> = symbols
            .into_iter()
            .map(|symbol| Step::CancelAllOf {
                symbol,
                reason: reason.to_string(),
            })
            .collect();
        steps.push(Step::CloseEverything);
        self.later(job, steps);
    }

    pub(crate) fn on_cancelled_all(
        &mut self,
        job: JobId,
        symbol: &Symbol,
        reason: &str,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        if let Err(e) = result {
            if let Some(acc) = self.acc(job) {
                acc.problems.push(format!("{symbol}: cancel all: {e}"));
            }
            return;
        }
        let ids: Vec<String> = self
            .orders
            .values()
            .filter(|o| o.symbol == *symbol && o.status.is_working())
            .map(|o| o.client_order_id.clone())
            .collect();
        for id in ids {
            if let Some(mut order) = self.orders.remove(&id) {
                self.set_status(
                    &mut fx.changes,
                    &mut order,
                    OrderStatus::Canceled,
                    json!({"reason": reason}),
                );
                fx.changes.orders.push(order.clone());
                self.file_order(order);
            }
        }
    }

    pub(crate) fn close_everything(&mut self, job: JobId) {
        let cycle = self.new_cycle();
        let steps: Vec<Step> = self
            .positions
            .keys()
            .map(|symbol| Step::SendExit {
                symbol: symbol.clone(),
                cycle,
                decision_id: None,
                reason: CloseReason::CloseAll,
            })
            .collect();
        self.next(job, steps);
    }

    // ---- leverage and margin type ---------------------------------------------------

    /// Sets the symbol's margin type, then its leverage (once per symbol).
    pub(crate) fn prepare(&mut self, job: JobId, symbol: Symbol, fx: &mut Effects) {
        if self.prepared.contains(&symbol) {
            return;
        }
        let margin_type = self.cfg.margin_type.clone();
        self.ask(
            job,
            Request::SetMarginType {
                symbol: symbol.clone(),
                margin_type,
            },
            Then::MarginType { symbol },
            fx,
        );
    }

    pub(crate) fn margin_type_set(
        &mut self,
        job: JobId,
        symbol: Symbol,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        match result {
            Ok(_) => {
                let leverage = self.cfg.leverage;
                self.ask(
                    job,
                    Request::SetLeverage {
                        symbol: symbol.clone(),
                        leverage,
                    },
                    Then::Leverage { symbol },
                    fx,
                );
            }
            Err(e) => self.not_prepared(job, &symbol, e, fx),
        }
    }

    pub(crate) fn leverage_set(
        &mut self,
        job: JobId,
        symbol: Symbol,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        match result {
            Ok(_) => {
                self.prepared.insert(symbol);
            }
            Err(e) => self.not_prepared(job, &symbol, e, fx),
        }
    }

    fn not_prepared(&mut self, job: JobId, symbol: &Symbol, e: VenueError, fx: &mut Effects) {
        fx.notices.push(Notice::warning(
            "could not set leverage or margin type; will retry before the next order",
            vec![("symbol", symbol.to_string()), ("error", e.to_string())],
        ));
        if let Some(acc) = self.acc(job) {
            acc.prepare_error = Some(e.to_string());
        }
    }
}

/// The steps that place a position's TP then its SL.
pub(crate) fn protection_steps(
    symbol: &Symbol,
    side: PositionSide,
    plan: &EntryPlan,
    cycle: CycleId,
    decision_id: Option<Uuid>,
) -> Vec<Step> {
    [OrderLeg::TakeProfit, OrderLeg::StopLoss]
        .into_iter()
        .map(|leg| Step::PlaceProtection {
            symbol: symbol.clone(),
            side,
            plan: plan.clone(),
            cycle,
            decision_id,
            leg,
        })
        .collect()
}
