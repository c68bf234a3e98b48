//! The live venue of one account: decisions become signed AsterDEX orders, the venue's
//! answers, user-data events and reconciliation become the rows and events vibex
//! records. The venue is authoritative: vibex's book is corrected to it.
//!
//! Entry points: [`LiveVenue::restore`] (from the stored rows), [`LiveVenue::start`]
//! (clock, position mode, leverage and margin type, first reconciliation),
//! [`LiveVenue::execute`] (one approved decision), [`LiveVenue::reconcile`] (every
//! cycle), [`LiveVenue::on_user_event`] (the user data stream), [`LiveVenue::close_all`]
//! (cancel everything and flatten), and the reads [`LiveVenue::view`],
//! [`LiveVenue::open_orders`], [`LiveVenue::equity`].
//!
//! Invariants:
//! - An order's row (status `PENDING_NEW`, with its deterministic client order id) is
//!   written to the database *before* the order is sent. After a crash at any point the
//!   restarted daemon knows the id and looks it up instead of placing it again; a new
//!   cycle derives new ids, and a position that already exists is never entered twice.
//!   (A venue in this process — [`Exchange::in_process`] — is not waited for.)
//! - Nothing is sent that the symbol's rules refuse (step, tick, min notional, max
//!   quantity): the refusal is recorded as a `REJECTED` order that never left.
//! - When a position closes, its remaining TP/SL orders are cancelled.
//! - A fill is recorded once, whether it arrives by the user stream or by polling
//!   (keyed by the venue's trade id).
//! - Every correction reconciliation makes is a `reconciliation_events` row, a log line
//!   and an event.

use crate::actors::journal::Journal;
use crate::db::models::NewOrderEvent;
use crate::db::models::{
    DiaryEntryRow, EquitySnapshotRow, FillRow, IncomeRow, OrderRow, PositionRow, ReconciliationRow,
};
use crate::db::queries::ExecutionBatch;
use crate::domain::decision::{AccountView, PositionView, TradeDecision};
use crate::domain::instrument::SymbolRules;
use crate::domain::orders::{ClientOrderId, OrderLeg};
use crate::domain::types::{AccountId, CycleId, PositionSide, Side, Symbol, TradeAction};
use crate::exchange::aster::trade_wire::UserEvent;
use crate::exchange::error::VenueError;
use crate::exchange::reconcile::{reconcile, Finding, LocalBook, LocalOrder, LocalPosition};
use crate::exchange::venue::{
    is_open_status, Exchange, OrderKind, OrderRequest, VenueBalance, VenueOrder, VenuePosition,
    VenueTrade,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use slog::{info, warn, Logger};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use uuid::Uuid;

/// Status of an order row written before the order is sent.
pub const PENDING_NEW: &str = "PENDING_NEW";
/// Status of an order whose outcome could not be settled yet.
pub const UNKNOWN: &str = "UNKNOWN";
/// Venue code: a trigger order would fire at once (its level is already crossed).
pub const CODE_WOULD_TRIGGER: i64 = -2021;
/// The venue's order type of a liquidation (client order id `autoclose-...`).
pub const LIQUIDATION: &str = "LIQUIDATION";
/// Every how many reconciliations a live account with its user stream up reads every
/// open order and polls fills and income.
pub const FULL_EVERY: u64 = 10;
/// How many finished orders are kept for late fills.
const FINISHED_ORDERS: usize = 500;
/// How many trade ids are remembered for de-duplication in memory (the database
/// de-duplicates beyond that).
const SEEN_TRADES: usize = 2000;
/// How far back the first poll of fills and income looks when nothing is stored.
const FIRST_LOOKBACK_HOURS: i64 = 24;

/// The exit plan of an entry order, kept until its position exists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntryPlan {
    /// Take-profit level.
    pub tp_price: Option<Decimal>,
    /// Stop-loss level.
    pub sl_price: Option<Decimal>,
    /// The plan in words.
    pub exit_plan: String,
}

/// What the database holds for a live account (see `actors::account::load_account`).
pub struct StoredLiveState<'a> {
    /// Open position rows.
    pub positions: &'a [PositionRow],
    /// Orders still working, pending or of unknown outcome.
    pub working_orders: &'a [OrderRow],
    /// Exit plans of those orders (by client order id), from their decisions.
    pub plans: HashMap<String, EntryPlan>,
    /// Last fill time per symbol.
    pub last_fills: &'a [(String, DateTime<Utc>)],
    /// Newest income record time.
    pub last_income: Option<DateTime<Utc>>,
}

/// The live venue of one account. See the module docs.
pub struct LiveVenue {
    account_id: AccountId,
    client: Arc<dyn Exchange>,
    leverage: u32,
    margin_type: String,
    positions: BTreeMap<Symbol, PositionRow>,
    /// The last closed row per symbol, to add late realized PnL to.
    closed: HashMap<Symbol, PositionRow>,
    /// Orders tracked by client order id: working, pending, unknown.
    orders: BTreeMap<String, OrderRow>,
    /// Recently finished orders (late fills are attributed to them), oldest first out.
    finished: BTreeMap<String, OrderRow>,
    finished_order: VecDeque<String>,
    plans: HashMap<String, EntryPlan>,
    balance: VenueBalance,
    marks: HashMap<Symbol, Decimal>,
    liquidation: HashMap<Symbol, Decimal>,
    last_trades: HashMap<Symbol, DateTime<Utc>>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    fills_since: DateTime<Utc>,
    income_since: DateTime<Utc>,
    prepared: HashSet<Symbol>,
    rules: HashMap<Symbol, SymbolRules>,
    stream_up: bool,
    reconciles: u64,
    log: Logger,
}

fn position_side(text: &str) -> PositionSide {
    if text == "short" {
        PositionSide::Short
    } else {
        PositionSide::Long
    }
}

impl LiveVenue {
    /// Rebuilds the venue's local book from stored rows.
    pub fn restore(
        account_id: AccountId,
        client: Arc<dyn Exchange>,
        leverage: u32,
        margin_type: &str,
        stored: StoredLiveState<'_>,
        now: DateTime<Utc>,
        log: Logger,
    ) -> LiveVenue {
        let first = now - ChronoDuration::hours(FIRST_LOOKBACK_HOURS);
        let fills_since = stored
            .last_fills
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(first);
        LiveVenue {
            account_id,
            client,
            leverage,
            margin_type: margin_type.to_string(),
            positions: stored
                .positions
                .iter()
                .map(|p| (Symbol(p.symbol.clone()), p.clone()))
                .collect(),
            closed: HashMap::new(),
            orders: stored
                .working_orders
                .iter()
                .map(|o| (o.client_order_id.clone(), o.clone()))
                .collect(),
            finished: BTreeMap::new(),
            finished_order: VecDeque::new(),
            plans: stored.plans,
            balance: VenueBalance::default(),
            marks: HashMap::new(),
            liquidation: HashMap::new(),
            last_trades: stored
                .last_fills
                .iter()
                .map(|(s, t)| (Symbol(s.clone()), *t))
                .collect(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            fills_since,
            income_since: stored.last_income.unwrap_or(first),
            prepared: HashSet::new(),
            rules: HashMap::new(),
            stream_up: false,
            reconciles: 0,
            log,
        }
    }

    /// Measures the clock, refuses hedge mode, sets leverage and margin type of
    /// `symbols`, and reconciles. An error here means the account cannot trade (the
    /// message says why and what to do).
    pub async fn start(&mut self, symbols: &[Symbol], journal: &mut Journal) -> Result<(), String> {
        let offset = self
            .client
            .sync_time()
            .await
            .map_err(|e| format!("cannot read the venue clock: {e}"))?;
        info!(self.log, "venue clock measured"; "offset_ms" => offset);
        if self
            .client
            .is_hedge_mode()
            .await
            .map_err(|e| format!("cannot read the position mode: {e}"))?
        {
            return Err(
                "the AsterDEX account is in hedge (dual-side) position mode; vibex trades \
                        one-way mode: switch the account to one-way mode on AsterDEX and restart"
                    .into(),
            );
        }
        for symbol in symbols {
            if let Err(e) = self.prepare(symbol).await {
                warn!(self.log, "could not set leverage or margin type; will retry before the first order";
                    "symbol" => %symbol, "error" => %e);
            }
        }
        self.reconcile(None, journal)
            .await
            .map_err(|e| format!("first reconciliation failed: {e}"))
    }

    /// Leverage and margin type of `symbol`, once.
    async fn prepare(&mut self, symbol: &Symbol) -> Result<(), VenueError> {
        if self.prepared.contains(symbol) {
            return Ok(());
        }
        self.client
            .set_margin_type(symbol, &self.margin_type)
            .await?;
        self.client.set_leverage(symbol, self.leverage).await?;
        self.prepared.insert(symbol.clone());
        Ok(())
    }

    /// The symbols' trading rules, as the market-data hubs last read them (for the
    /// rounding of orders reconciliation places).
    pub fn set_rules(&mut self, rules: &HashMap<Symbol, SymbolRules>) {
        for (symbol, r) in rules {
            self.rules.insert(symbol.clone(), r.clone());
        }
    }

    /// A new mark price (from the market-data hub): revalues the position.
    pub fn on_mark(&mut self, symbol: &Symbol, mark: Decimal) {
        if mark > Decimal::ZERO {
            self.marks.insert(symbol.clone(), mark);
        }
    }

    fn unrealized(p: &PositionRow, mark: Decimal) -> Decimal {
        let sign = if p.side == "short" {
            Decimal::NEGATIVE_ONE
        } else {
            Decimal::ONE
        };
        ((mark - p.entry_price) * p.quantity * sign).round_dp(8)
    }

    /// Balance and positions as the policy and risk rules see them.
    pub fn view(&self) -> (AccountView, HashMap<Symbol, DateTime<Utc>>) {
        let mut unrealized = Decimal::ZERO;
        let positions: Vec<PositionView> = self
            .positions
            .values()
            .map(|p| {
                let symbol = Symbol(p.symbol.clone());
                let mark = self
                    .marks
                    .get(&symbol)
                    .copied()
                    .or(p.mark_price)
                    .unwrap_or(p.entry_price);
                let upnl = Self::unrealized(p, mark);
                unrealized += upnl;
                PositionView {
                    symbol,
                    side: position_side(&p.side),
                    quantity: p.quantity,
                    entry_price: p.entry_price,
                    leverage: u32::try_from(p.leverage).unwrap_or(1),
                    unrealized_pnl: upnl,
                    tp_price: p.tp_price,
                    sl_price: p.sl_price,
                    exit_plan: p.exit_plan.clone(),
                    opened_at: p.opened_at,
                }
            })
            .collect();
        let equity = self.balance.wallet_balance + unrealized;
        let used: Decimal = self.positions.values().map(|p| p.margin).sum();
        (
            AccountView {
                wallet_balance: self.balance.wallet_balance,
                equity,
                available: self.balance.available_balance.min(equity - used),
                positions,
            },
            self.last_trades.clone(),
        )
    }

    /// Working protection orders, oldest first.
    pub fn open_orders(&self) -> Vec<OrderRow> {
        let mut out: Vec<OrderRow> = self
            .orders
            .values()
            .filter(|o| is_open_status(&o.status))
            .cloned()
            .collect();
        out.sort_by_key(|o| o.created_at);
        out
    }

    /// The equity row of a cycle, and the revalued open positions.
    pub fn equity(
        &mut self,
        cycle: CycleId,
        now: DateTime<Utc>,
    ) -> (ExecutionBatch, EquitySnapshotRow) {
        let (view, _) = self.view();
        let mut batch = ExecutionBatch::default();
        for p in self.positions.values_mut() {
            let symbol = Symbol(p.symbol.clone());
            if let Some(mark) = self.marks.get(&symbol) {
                p.mark_price = Some(*mark);
                p.unrealized_pnl = Self::unrealized(p, *mark);
            }
            p.liquidation_price = self.liquidation.get(&symbol).copied();
            p.updated_at = now;
            batch.positions.push(p.clone());
        }
        let used: Decimal = self.positions.values().map(|p| p.margin).sum();
        let row = EquitySnapshotRow {
            ts: now,
            account_id: self.account_id.to_string(),
            cycle_id: Some(cycle.0),
            wallet_balance: view.wallet_balance,
            unrealized_pnl: view.equity - view.wallet_balance,
            equity: view.equity,
            used_margin: used,
            available: view.available,
        };
        (batch, row)
    }

    /// The balance as JSON (for `balance` events).
    pub fn balance_json(&self) -> serde_json::Value {
        let (view, _) = self.view();
        json!({
            "wallet_balance": view.wallet_balance,
            "unrealized_pnl": view.equity - view.wallet_balance,
            "equity": view.equity,
            "available": view.available,
            "margin_balance": self.balance.margin_balance,
            "maint_margin": self.balance.maint_margin,
        })
    }

    // ---- orders ---------------------------------------------------------------------

    fn order_row(
        &self,
        cycle: Option<CycleId>,
        decision_id: Option<Uuid>,
        req: &OrderRequest,
        now: DateTime<Utc>,
    ) -> OrderRow {
        OrderRow {
            id: Uuid::now_v7(),
            account_id: self.account_id.to_string(),
            cycle_id: cycle.map(|c| c.0),
            decision_id,
            client_order_id: req.client_order_id.clone(),
            venue_order_id: None,
            symbol: req.symbol.to_string(),
            side: req.side.as_str().to_string(),
            order_type: req.kind.as_str().to_string(),
            quantity: req.quantity,
            price: None,
            stop_price: req.stop_price,
            reduce_only: req.reduce_only,
            close_position: req.close_position,
            status: PENDING_NEW.into(),
            filled_quantity: Decimal::ZERO,
            avg_fill_price: None,
            reject_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies the venue's view of an order to its row; records the status change.
    fn absorb(batch: &mut ExecutionBatch, row: &mut OrderRow, o: &VenueOrder) {
        row.venue_order_id = Some(o.order_id.clone());
        row.filled_quantity = o.executed_qty;
        row.avg_fill_price = o.avg_price.or(row.avg_fill_price);
        if row.quantity.is_none() && o.orig_qty > Decimal::ZERO {
            row.quantity = Some(o.orig_qty);
        }
        if row.status != o.status {
            set_status(
                batch,
                row,
                &o.status,
                o.update_time,
                json!({"venue_order_id": o.order_id, "executed_qty": o.executed_qty,
                       "avg_price": o.avg_price}),
            );
        }
    }

    /// Records the order's intent durably, sends it, records the answer. Returns the
    /// venue's order when it was placed (whatever its fill state).
    async fn send(
        &mut self,
        req: OrderRequest,
        cycle: Option<CycleId>,
        decision_id: Option<Uuid>,
        journal: &mut Journal,
    ) -> Result<VenueOrder, String> {
        let now = Utc::now();
        let mut row = self.order_row(cycle, decision_id, &req, now);
        let mut intent = ExecutionBatch::default();
        set_status(
            &mut intent,
            &mut row,
            PENDING_NEW,
            now,
            json!({"request": req}),
        );
        intent.orders.push(row.clone());
        if !self.client.in_process() {
            journal.commit_durable(intent, cycle).await?;
        } else {
            journal.commit(intent, cycle);
        }
        self.orders.insert(row.client_order_id.clone(), row.clone());

        let result = self.client.place_order(&req).await;
        let mut batch = ExecutionBatch::default();
        let outcome = match result {
            Ok(o) => {
                Self::absorb(&mut batch, &mut row, &o);
                Ok(o)
            }
            Err(e @ VenueError::OutcomeUnknown { .. }) => {
                set_status(
                    &mut batch,
                    &mut row,
                    UNKNOWN,
                    Utc::now(),
                    json!({"error": e.to_string()}),
                );
                Err(e.to_string())
            }
            Err(e) => {
                reject(&mut batch, &mut row, &e.to_string(), Utc::now());
                Err(e.to_string())
            }
        };
        if is_open_status(&row.status) || row.status == UNKNOWN {
            self.orders.insert(row.client_order_id.clone(), row.clone());
        } else {
            self.orders.remove(&row.client_order_id);
            self.finish(row.clone());
        }
        batch.orders.push(row);
        journal.commit(batch, cycle);
        outcome
    }

    /// Records an order refused before sending (rules of the symbol).
    fn refuse(
        &self,
        req: &OrderRequest,
        cycle: CycleId,
        decision_id: Uuid,
        reason: &str,
        journal: &mut Journal,
    ) {
        let now = Utc::now();
        let mut row = self.order_row(Some(cycle), Some(decision_id), req, now);
        let mut batch = ExecutionBatch::default();
        reject(&mut batch, &mut row, reason, now);
        batch.orders.push(row);
        journal.commit(batch, Some(cycle));
    }

    /// Cancels the tracked protection orders of `symbol`.
    async fn cancel_protection(&mut self, symbol: &Symbol, why: &str, journal: &mut Journal) {
        let ids: Vec<String> = self
            .orders
            .values()
            .filter(|o| o.symbol == symbol.as_str() && (o.close_position || o.reduce_only))
            .filter(|o| is_open_status(&o.status))
            .map(|o| o.client_order_id.clone())
            .collect();
        for coid in ids {
            self.cancel_tracked(symbol, &coid, why, journal).await;
        }
    }

    async fn cancel_tracked(
        &mut self,
        symbol: &Symbol,
        coid: &str,
        why: &str,
        journal: &mut Journal,
    ) {
        let mut batch = ExecutionBatch::default();
        match self.client.cancel_order(symbol, coid).await {
            Ok(answer) => {
                if let Some(mut row) = self.orders.remove(coid) {
                    match answer {
                        Some(o) => Self::absorb(&mut batch, &mut row, &o),
                        None => set_status(
                            &mut batch,
                            &mut row,
                            "CANCELED",
                            Utc::now(),
                            json!({"reason": why, "note": "no longer open on the venue"}),
                        ),
                    }
                    if let Some(ev) = batch.order_events.last_mut() {
                        ev.detail["reason"] = json!(why);
                    }
                    batch.orders.push(row);
                }
            }
            Err(e) => {
                warn!(self.log, "could not cancel an order; reconciliation will retry";
                    "client_order_id" => coid, "error" => %e);
            }
        }
        journal.commit(batch, None);
    }

    /// Executes one approved decision: close an opposite position, open the target one
    /// with its TP/SL. Returns how many orders it asked for (the cycle report).
    #[allow(clippy::too_many_arguments)]
    pub async fn execute(
        &mut self,
        cycle: CycleId,
        decision_id: Uuid,
        d: &TradeDecision,
        price: Decimal,
        rules: Option<&SymbolRules>,
        journal: &mut Journal,
    ) -> usize {
        let target = match d.action {
            TradeAction::Hold => return 0,
            TradeAction::Buy => PositionSide::Long,
            TradeAction::Sell => PositionSide::Short,
        };
        let symbol = d.asset.symbol();
        let mut orders = 0;
        let mut result = json!({});
        if let Some(p) = self.positions.get(&symbol).cloned() {
            if position_side(&p.side) == target {
                return 0;
            }
            orders += 1;
            result["exit"] = self
                .close_position(
                    &p,
                    cycle,
                    Some(decision_id),
                    "position closed by decision",
                    journal,
                )
                .await;
        }
        let mut entry: Option<VenueOrder> = None;
        let mut tp_oid = None;
        let mut sl_oid = None;
        if d.allocation_usd > Decimal::ZERO {
            orders += 1;
            let (e, tp, sl, outcome) = self
                .open(cycle, decision_id, d, target, price, rules, journal)
                .await;
            entry = e;
            tp_oid = tp;
            sl_oid = sl;
            result["entry"] = outcome;
        }
        let now = Utc::now();
        let mut batch = ExecutionBatch::default();
        batch.diary.push(DiaryEntryRow {
            id: Uuid::now_v7(),
            ts: now,
            account_id: self.account_id.to_string(),
            cycle_id: Some(cycle.0),
            asset: d.asset.to_string(),
            action: d.action.as_str().to_string(),
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
        journal.commit(batch, Some(cycle));
        orders
    }

    #[allow(clippy::too_many_arguments)]
    async fn open(
        &mut self,
        cycle: CycleId,
        decision_id: Uuid,
        d: &TradeDecision,
        target: PositionSide,
        price: Decimal,
        rules: Option<&SymbolRules>,
        journal: &mut Journal,
    ) -> (
        Option<VenueOrder>,
        Option<String>,
        Option<String>,
        serde_json::Value,
    ) {
        let symbol = d.asset.symbol();
        let raw_qty = if price > Decimal::ZERO {
            (d.allocation_usd / price).round_dp(12)
        } else {
            Decimal::ZERO
        };
        let qty = rules
            .map(|r| r.floor_quantity(raw_qty, true))
            .unwrap_or(raw_qty);
        let coid = ClientOrderId::derive(&self.account_id, cycle, &d.asset, OrderLeg::Entry);
        let req = OrderRequest {
            symbol: symbol.clone(),
            side: target.entry_side(),
            kind: OrderKind::Market,
            quantity: Some(qty),
            stop_price: None,
            reduce_only: false,
            close_position: false,
            client_order_id: coid.to_string(),
        };
        let refusal = match rules {
            None => Some(format!(
                "no trading rules for {symbol} from the venue yet; order not sent"
            )),
            Some(r) => r.check_order(qty, price, true).err().map(|e| e.to_string()),
        };
        if let Some(reason) = refusal {
            self.refuse(&req, cycle, decision_id, &reason, journal);
            return (
                None,
                None,
                None,
                json!({"status": "REJECTED", "reason": reason}),
            );
        }
        if let Err(e) = self.prepare(&symbol).await {
            let reason = format!("could not set leverage/margin type: {e}; order not sent");
            self.refuse(&req, cycle, decision_id, &reason, journal);
            return (
                None,
                None,
                None,
                json!({"status": "REJECTED", "reason": reason}),
            );
        }
        let round = |p: Decimal| rules.map(|r| r.round_price(p)).unwrap_or(p);
        let plan = EntryPlan {
            tp_price: d.tp_price.map(round),
            sl_price: d.sl_price.map(round),
            exit_plan: d.exit_plan.clone(),
        };
        self.plans.insert(req.client_order_id.clone(), plan.clone());
        let placed = match self
            .send(req, Some(cycle), Some(decision_id), journal)
            .await
        {
            Ok(o) => o,
            Err(reason) => {
                return (
                    None,
                    None,
                    None,
                    json!({"status": "NOT_FILLED", "reason": reason}),
                );
            }
        };
        if placed.executed_qty <= Decimal::ZERO {
            return (
                None,
                None,
                None,
                json!({"status": placed.status, "note": "the entry did not fill at once; reconciliation follows it"}),
            );
        }
        self.opened(&placed, Some(cycle), &plan, journal);
        let (tp_oid, sl_oid, note) = self
            .protect(&symbol, target, &plan, cycle, Some(decision_id), journal)
            .await;
        let outcome = json!({
            "status": placed.status, "quantity": placed.executed_qty, "price": placed.avg_price,
            "tp_price": plan.tp_price, "sl_price": plan.sl_price, "protection_error": note,
        });
        (Some(placed), tp_oid, sl_oid, outcome)
    }

    /// Records the position an entry opened (from the venue's answer).
    fn opened(
        &mut self,
        o: &VenueOrder,
        cycle: Option<CycleId>,
        plan: &EntryPlan,
        journal: &mut Journal,
    ) {
        let now = Utc::now();
        let price = o.avg_price.unwrap_or_default();
        let leverage = Decimal::from(self.leverage.max(1));
        let side = if o.side == Side::Buy {
            PositionSide::Long
        } else {
            PositionSide::Short
        };
        let row = PositionRow {
            id: Uuid::now_v7(),
            account_id: self.account_id.to_string(),
            symbol: o.symbol.to_string(),
            side: side.as_str().to_string(),
            quantity: o.executed_qty,
            entry_price: price,
            leverage: i32::try_from(self.leverage).unwrap_or(1),
            margin: (o.executed_qty * price / leverage).round_dp(8),
            tp_price: plan.tp_price,
            sl_price: plan.sl_price,
            exit_plan: plan.exit_plan.clone(),
            mark_price: Some(price),
            unrealized_pnl: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
            status: "open".into(),
            opened_at: o.update_time,
            closed_at: None,
            opened_cycle_id: cycle.map(|c| c.0),
            updated_at: now,
            liquidation_price: None,
            origin: "vibex".into(),
        };
        self.positions.insert(o.symbol.clone(), row.clone());
        self.last_trades.insert(o.symbol.clone(), now);
        self.plans.remove(&o.client_order_id);
        let batch = ExecutionBatch {
            positions: vec![row],
            ..Default::default()
        };
        journal.commit(batch, cycle);
    }

    /// Places the TP/SL of a position (close-position triggers at the mark price).
    async fn protect(
        &mut self,
        symbol: &Symbol,
        side: PositionSide,
        plan: &EntryPlan,
        cycle: CycleId,
        decision_id: Option<Uuid>,
        journal: &mut Journal,
    ) -> (Option<String>, Option<String>, serde_json::Value) {
        let asset = symbol.asset();
        let mut tp_oid = None;
        let mut sl_oid = None;
        let mut note = serde_json::Value::Null;
        let legs = [
            (
                OrderLeg::TakeProfit,
                OrderKind::TakeProfitMarket,
                plan.tp_price,
            ),
            (OrderLeg::StopLoss, OrderKind::StopMarket, plan.sl_price),
        ];
        for (leg, kind, level) in legs {
            let Some(level) = level else { continue };
            let level = self
                .rules
                .get(symbol)
                .map(|r| r.round_price(level))
                .unwrap_or(level);
            let coid = ClientOrderId::derive(&self.account_id, cycle, &asset, leg).to_string();
            let req = OrderRequest {
                symbol: symbol.clone(),
                side: side.exit_side(),
                kind,
                quantity: None,
                stop_price: Some(level),
                reduce_only: true,
                close_position: true,
                client_order_id: coid.clone(),
            };
            match self.send(req, Some(cycle), decision_id, journal).await {
                Ok(_) => {
                    if leg == OrderLeg::TakeProfit {
                        tp_oid = Some(coid);
                    } else {
                        sl_oid = Some(coid);
                    }
                }
                Err(reason) => {
                    note = json!(reason);
                    if reason.contains(&format!("code {CODE_WOULD_TRIGGER}")) {
                        // The level is already crossed: do what the trigger would have.
                        if let Some(p) = self.positions.get(symbol).cloned() {
                            let why = format!("{} level already crossed", kind.as_str());
                            // Fresh ids: this cycle may already have used its exit id.
                            self.close_position(&p, CycleId::new(), decision_id, &why, journal)
                                .await;
                        }
                        break;
                    }
                }
            }
        }
        (tp_oid, sl_oid, note)
    }

    /// Closes `p` at market (reduce-only) and cancels its protection.
    async fn close_position(
        &mut self,
        p: &PositionRow,
        cycle: CycleId,
        decision_id: Option<Uuid>,
        why: &str,
        journal: &mut Journal,
    ) -> serde_json::Value {
        let symbol = Symbol(p.symbol.clone());
        self.cancel_protection(&symbol, why, journal).await;
        let asset = symbol.asset();
        let req = OrderRequest {
            symbol: symbol.clone(),
            side: position_side(&p.side).exit_side(),
            kind: OrderKind::Market,
            quantity: Some(p.quantity),
            stop_price: None,
            reduce_only: true,
            close_position: false,
            client_order_id: ClientOrderId::derive(&self.account_id, cycle, &asset, OrderLeg::Exit)
                .to_string(),
        };
        match self.send(req, Some(cycle), decision_id, journal).await {
            Ok(o) if o.executed_qty > Decimal::ZERO && o.executed_qty < p.quantity => {
                // The venue filled less than the position: it stays open, smaller.
                if let Some(row) = self.positions.get_mut(&symbol) {
                    row.quantity = p.quantity - o.executed_qty;
                    row.updated_at = Utc::now();
                    let row = row.clone();
                    journal.commit(
                        ExecutionBatch {
                            positions: vec![row],
                            ..Default::default()
                        },
                        Some(cycle),
                    );
                }
                json!({"status": o.status, "quantity": o.executed_qty, "price": o.avg_price,
                       "remaining": p.quantity - o.executed_qty})
            }
            Ok(o) if o.executed_qty > Decimal::ZERO => {
                self.closed_local(&symbol, o.avg_price, why, journal);
                json!({"status": o.status, "quantity": o.executed_qty, "price": o.avg_price})
            }
            Ok(o) => json!({"status": o.status}),
            Err(reason) => json!({"status": "NOT_FILLED", "reason": reason}),
        }
    }

    /// Records the local position on `symbol` closed (idempotent).
    fn closed_local(
        &mut self,
        symbol: &Symbol,
        price: Option<Decimal>,
        why: &str,
        journal: &mut Journal,
    ) {
        let Some(mut row) = self.positions.remove(symbol) else {
            return;
        };
        let now = Utc::now();
        row.status = "closed".into();
        row.closed_at = Some(now);
        row.updated_at = now;
        if let Some(price) = price {
            row.mark_price = Some(price);
        }
        row.unrealized_pnl = Decimal::ZERO;
        self.last_trades.insert(symbol.clone(), now);
        self.closed.insert(symbol.clone(), row.clone());
        info!(self.log, "position closed"; "symbol" => %symbol, "reason" => why);
        journal.commit(
            ExecutionBatch {
                positions: vec![row],
                ..Default::default()
            },
            None,
        );
    }

    /// Cancels every open order and closes every position ("close all": the kill
    /// switch and the API call it). Returns what could not be done.
    pub async fn close_all(&mut self, why: &str, journal: &mut Journal) -> Vec<String> {
        let mut problems = Vec::new();
        let cycle = CycleId::new();
        let mut symbols: Vec<Symbol> = self.positions.keys().cloned().collect();
        for o in self.orders.values() {
            let s = Symbol(o.symbol.clone());
            if !symbols.contains(&s) {
                symbols.push(s);
            }
        }
        for symbol in &symbols {
            if let Err(e) = self.client.cancel_all(symbol).await {
                problems.push(format!("{symbol}: cancel all: {e}"));
            } else {
                let mut batch = ExecutionBatch::default();
                let ids: Vec<String> = self
                    .orders
                    .values()
                    .filter(|o| o.symbol == symbol.as_str() && is_open_status(&o.status))
                    .map(|o| o.client_order_id.clone())
                    .collect();
                for id in ids {
                    if let Some(mut row) = self.orders.remove(&id) {
                        set_status(
                            &mut batch,
                            &mut row,
                            "CANCELED",
                            Utc::now(),
                            json!({"reason": why}),
                        );
                        batch.orders.push(row);
                    }
                }
                journal.commit(batch, Some(cycle));
            }
        }
        let positions: Vec<PositionRow> = self.positions.values().cloned().collect();
        for p in positions {
            let out = self.close_position(&p, cycle, None, why, journal).await;
            if out["status"] == "NOT_FILLED" {
                problems.push(format!("{}: close: {}", p.symbol, out["reason"]));
            }
        }
        problems
    }

    // ---- events and reconciliation --------------------------------------------------

    /// Keeps a finished order for late fills (bounded).
    fn finish(&mut self, row: OrderRow) {
        let coid = row.client_order_id.clone();
        if self.finished.insert(coid.clone(), row).is_none() {
            self.finished_order.push_back(coid);
        }
        while self.finished_order.len() > FINISHED_ORDERS {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    /// True the first time `key` (a trade or an income record) is seen.
    fn remember(&mut self, key: String) -> bool {
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.seen_order.push_back(key);
        while self.seen_order.len() > SEEN_TRADES {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// A fill row for a venue trade, attributing it to its order and position.
    fn fill(&mut self, t: &VenueTrade, order: Option<&OrderRow>, batch: &mut ExecutionBatch) {
        if !self.remember(format!("trade:{}:{}", t.symbol, t.id)) {
            return;
        }
        let reason = match order.map(|o| o.order_type.as_str()) {
            Some("TAKE_PROFIT_MARKET") => "take_profit",
            Some("STOP_MARKET") => "stop_loss",
            Some(_) if order.is_some_and(|o| o.reduce_only) => "close",
            Some(_) => "entry",
            None if t
                .client_order_id
                .as_deref()
                .is_some_and(|c| c.starts_with("autoclose-")) =>
            {
                "liquidation"
            }
            None => "external",
        };
        batch.fills.push(FillRow {
            id: Uuid::now_v7(),
            ts: t.time,
            account_id: self.account_id.to_string(),
            cycle_id: order.and_then(|o| o.cycle_id),
            order_id: order.map(|o| o.id),
            client_order_id: order
                .map(|o| o.client_order_id.clone())
                .or_else(|| t.client_order_id.clone())
                .unwrap_or_else(|| format!("venue-{}", t.order_id)),
            symbol: t.symbol.to_string(),
            side: t.side.as_str().to_string(),
            quantity: t.quantity,
            price: t.price,
            fee: t.commission,
            realized_pnl: t.realized_pnl,
            reason: reason.into(),
            venue_trade_id: Some(t.id.clone()),
        });
        if t.time > self.fills_since {
            self.fills_since = t.time;
        }
        self.last_trades.insert(t.symbol.clone(), t.time);
        if !t.realized_pnl.is_zero() {
            let row = match self.positions.get_mut(&t.symbol) {
                Some(open) => Some(open),
                None => self.closed.get_mut(&t.symbol),
            };
            if let Some(row) = row {
                row.realized_pnl += t.realized_pnl;
                row.updated_at = Utc::now();
                batch.positions.push(row.clone());
            }
        }
    }

    /// One message of the user data stream.
    pub async fn on_user_event(&mut self, event: UserEvent, journal: &mut Journal) {
        match event {
            UserEvent::Order { order, trade } => {
                let mut batch = ExecutionBatch::default();
                let coid = order.client_order_id.clone();
                // A finished order (its answer came first) still owns its late fills.
                let mut row = self
                    .orders
                    .remove(&coid)
                    .or_else(|| self.finished.get(&coid).cloned());
                if let Some(r) = row.as_mut() {
                    if r.status != order.status || r.venue_order_id.is_none() {
                        Self::absorb(&mut batch, r, &order);
                        batch.orders.push(r.clone());
                    }
                }
                if let Some(t) = trade.as_deref() {
                    self.fill(t, row.as_ref(), &mut batch);
                }
                if let Some(r) = row {
                    if order.is_open() {
                        self.orders.insert(coid.clone(), r);
                    } else {
                        self.finish(r);
                    }
                }
                journal.commit(batch, None);
                let trigger = OrderKind::parse(&order.order_type).is_some_and(|k| k.is_trigger());
                let liquidation = order.order_type == LIQUIDATION;
                if order.status == "FILLED" && (liquidation || (trigger && order.close_position)) {
                    let why = if liquidation {
                        "liquidated by the venue"
                    } else if order.order_type == OrderKind::TakeProfitMarket.as_str() {
                        "take-profit hit"
                    } else {
                        "stop-loss hit"
                    };
                    self.closed_local(&order.symbol, order.avg_price, why, journal);
                    self.cancel_protection(&order.symbol, why, journal).await;
                } else if order.status == "FILLED" && !self.positions.contains_key(&order.symbol) {
                    if let Some(plan) = self.plans.get(&order.client_order_id).cloned() {
                        // An entry whose answer was lost: its fill arrived here.
                        self.opened(&order, None, &plan, journal);
                    }
                }
            }
            UserEvent::Account {
                reason,
                wallet_balance,
                positions,
            } => {
                // Balances are taken at once. Position changes the venue made on its own
                // (a close by hand, a liquidation) are corrected by the next
                // reconciliation, so that every such correction is recorded as one;
                // fills of vibex's own orders arrive as ORDER_TRADE_UPDATE.
                if let Some(w) = wallet_balance {
                    self.balance.wallet_balance = w;
                }
                for (symbol, amount, _) in &positions {
                    if let Some(mark) = self.marks.get(symbol) {
                        slog::debug!(self.log, "position update from the venue";
                            "symbol" => %symbol, "amount" => %amount, "mark" => %mark,
                            "reason" => &reason);
                    }
                }
                journal.publish(
                    crate::actors::events::Channel::Positions,
                    "balance",
                    None,
                    None,
                    self.balance_json(),
                );
            }
            UserEvent::MarginCall => {
                warn!(self.log, "margin call from the venue");
            }
            UserEvent::ListenKeyExpired | UserEvent::Other(_) => {}
        }
    }

    fn local_book(&self) -> LocalBook {
        LocalBook {
            positions: self
                .positions
                .values()
                .map(|p| LocalPosition {
                    symbol: Symbol(p.symbol.clone()),
                    side: position_side(&p.side),
                    quantity: p.quantity,
                    entry_price: p.entry_price,
                    tp_price: p.tp_price,
                    sl_price: p.sl_price,
                    adopted: p.origin == "adopted",
                })
                .collect(),
            open_orders: self
                .orders
                .values()
                .map(|o| LocalOrder {
                    symbol: Symbol(o.symbol.clone()),
                    client_order_id: o.client_order_id.clone(),
                    order_type: o.order_type.clone(),
                })
                .collect(),
        }
    }

    fn record(
        &self,
        batch: &mut ExecutionBatch,
        cycle: Option<CycleId>,
        finding: &Finding,
        extra: serde_json::Value,
    ) {
        let mut detail = serde_json::to_value(finding).unwrap_or_default();
        if let (Some(d), Some(e)) = (detail.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        batch.reconciliation.push(ReconciliationRow {
            id: Uuid::now_v7(),
            ts: Utc::now(),
            account_id: self.account_id.to_string(),
            cycle_id: cycle.map(|c| c.0),
            kind: finding.kind().to_string(),
            symbol: Some(finding.symbol().to_string()),
            detail,
        });
    }

    /// Whether the user data stream is delivering (live accounts). While it is, most
    /// reconciliations are light (see [`Self::reconcile`]).
    pub fn set_stream_up(&mut self, up: bool) {
        self.stream_up = up;
    }

    /// Reads the venue's state and corrects vibex's to it; then polls fills and income.
    ///
    /// A full reconciliation reads every open order and polls fills and income: at
    /// start, every [`FULL_EVERY`]th time, and always while the user data stream is
    /// down (a paper venue never has one, so it is always full — and free). In between,
    /// with the stream delivering fills as they happen, only the open orders of the
    /// symbols vibex trades or holds are read: about 12 request weight instead of
    /// ~95 per cycle and account.
    pub async fn reconcile(
        &mut self,
        cycle: Option<CycleId>,
        journal: &mut Journal,
    ) -> Result<(), VenueError> {
        let full = !self.stream_up || self.reconciles % FULL_EVERY == 0;
        self.reconciles += 1;
        let snap = if full {
            self.client.snapshot().await?
        } else {
            let mut symbols: Vec<Symbol> = self.rules.keys().cloned().collect();
            for s in self
                .positions
                .keys()
                .cloned()
                .chain(self.orders.values().map(|o| Symbol(o.symbol.clone())))
            {
                if !symbols.contains(&s) {
                    symbols.push(s);
                }
            }
            symbols.sort();
            self.client.snapshot_of(&symbols).await?
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
        slog::debug!(self.log, "reconciled with the venue";
            "venue_positions" => snap.positions.len(), "venue_open_orders" => snap.open_orders.len(),
            "local_positions" => self.positions.len(), "local_orders" => self.orders.len(),
            "findings" => findings.len());
        // Look up orders first: a lost entry may explain an "unknown" position.
        for f in &findings {
            if let Finding::OrderNotWorking {
                symbol,
                client_order_id,
            } = f
            {
                self.settle_order(symbol, client_order_id, cycle, f, journal)
                    .await;
            }
        }
        for f in &findings {
            match f {
                Finding::OrderNotWorking { .. } => {}
                Finding::PositionChanged {
                    symbol,
                    venue_quantity,
                    venue_entry,
                    ..
                } => {
                    let mut batch = ExecutionBatch::default();
                    if let Some(row) = self.positions.get_mut(symbol) {
                        row.quantity = *venue_quantity;
                        row.entry_price = *venue_entry;
                        row.updated_at = Utc::now();
                        batch.positions.push(row.clone());
                    }
                    self.record(&mut batch, cycle, f, json!({}));
                    journal.commit(batch, cycle);
                }
                Finding::PositionClosedOnVenue { symbol, .. } => {
                    let mut batch = ExecutionBatch::default();
                    self.record(&mut batch, cycle, f, json!({}));
                    journal.commit(batch, cycle);
                    let mark = self.marks.get(symbol).copied();
                    self.closed_local(symbol, mark, "closed on the venue", journal);
                }
                // A lost entry found by its client order id above is ours, not adopted.
                Finding::PositionAdopted { position }
                    if !self.positions.contains_key(&position.symbol) =>
                {
                    self.adopt(position, cycle, f, journal);
                }
                Finding::PositionAdopted { .. } => {}
                Finding::OrphanOrder { order } => {
                    let mut batch = ExecutionBatch::default();
                    self.record(&mut batch, cycle, f, json!({}));
                    journal.commit(batch, cycle);
                    if self.orders.contains_key(&order.client_order_id) {
                        self.cancel_tracked(
                            &order.symbol,
                            &order.client_order_id,
                            "orphaned: no position",
                            journal,
                        )
                        .await;
                    } else if let Err(e) = self
                        .client
                        .cancel_order(&order.symbol, &order.client_order_id)
                        .await
                    {
                        warn!(self.log, "could not cancel an orphaned order";
                            "client_order_id" => &order.client_order_id, "error" => %e);
                    }
                }
                Finding::OrderAdopted { order } => {
                    let mut batch = ExecutionBatch::default();
                    self.record(&mut batch, cycle, f, json!({}));
                    let now = Utc::now();
                    let row = OrderRow {
                        id: Uuid::now_v7(),
                        account_id: self.account_id.to_string(),
                        cycle_id: None,
                        decision_id: None,
                        client_order_id: order.client_order_id.clone(),
                        venue_order_id: Some(order.order_id.clone()),
                        symbol: order.symbol.to_string(),
                        side: order.side.as_str().to_string(),
                        order_type: order.order_type.clone(),
                        quantity: Some(order.orig_qty).filter(|q| !q.is_zero()),
                        price: None,
                        stop_price: order.stop_price,
                        reduce_only: order.reduce_only,
                        close_position: order.close_position,
                        status: order.status.clone(),
                        filled_quantity: order.executed_qty,
                        avg_fill_price: order.avg_price,
                        reject_reason: None,
                        created_at: now,
                        updated_at: now,
                    };
                    self.orders.insert(row.client_order_id.clone(), row.clone());
                    batch.orders.push(row);
                    journal.commit(batch, cycle);
                }
                Finding::ProtectionMissing {
                    symbol,
                    side,
                    leg,
                    stop_price,
                } => {
                    let mut batch = ExecutionBatch::default();
                    self.record(&mut batch, cycle, f, json!({}));
                    journal.commit(batch, cycle);
                    let plan = EntryPlan {
                        tp_price: (*leg == OrderKind::TakeProfitMarket).then_some(*stop_price),
                        sl_price: (*leg == OrderKind::StopMarket).then_some(*stop_price),
                        exit_plan: String::new(),
                    };
                    // Fresh ids: this cycle may place its own TP/SL after an entry.
                    self.protect(symbol, *side, &plan, CycleId::new(), None, journal)
                        .await;
                }
            }
        }
        if full {
            self.poll_fills_and_income(cycle, journal).await?;
        }
        Ok(())
    }

    /// Looks up an order vibex thought was working (or never heard back about).
    async fn settle_order(
        &mut self,
        symbol: &Symbol,
        coid: &str,
        cycle: Option<CycleId>,
        finding: &Finding,
        journal: &mut Journal,
    ) {
        let Some(mut row) = self.orders.remove(coid) else {
            return;
        };
        let mut batch = ExecutionBatch::default();
        match self.client.query_order(symbol, coid).await {
            Ok(Some(o)) => {
                Self::absorb(&mut batch, &mut row, &o);
                if o.is_open() {
                    self.orders.insert(coid.to_string(), row.clone());
                }
                if o.status == "FILLED" && !self.positions.contains_key(symbol) {
                    if let Some(plan) = self.plans.get(coid).cloned() {
                        batch.orders.push(row.clone());
                        self.record(
                            &mut batch,
                            cycle,
                            finding,
                            json!({"venue_status": o.status}),
                        );
                        journal.commit(batch, cycle);
                        self.opened(&o, row.cycle_id.map(CycleId), &plan, journal);
                        return;
                    }
                }
            }
            Ok(None) => {
                let why = if row.status == PENDING_NEW || row.status == UNKNOWN {
                    "the venue never received this order"
                } else {
                    "the venue no longer knows this order"
                };
                reject(&mut batch, &mut row, why, Utc::now());
                self.plans.remove(coid);
            }
            Err(e) => {
                warn!(self.log, "could not look an order up; will retry next cycle";
                    "client_order_id" => coid, "error" => %e);
                self.orders.insert(coid.to_string(), row);
                return;
            }
        }
        self.record(&mut batch, cycle, finding, json!({"status": row.status}));
        batch.orders.push(row);
        journal.commit(batch, cycle);
    }

    /// A venue position vibex does not hold: adopt it (reported, never closed).
    fn adopt(
        &mut self,
        p: &VenuePosition,
        cycle: Option<CycleId>,
        f: &Finding,
        journal: &mut Journal,
    ) {
        let now = Utc::now();
        let leverage = Decimal::from(p.leverage.max(1));
        let row = PositionRow {
            id: Uuid::now_v7(),
            account_id: self.account_id.to_string(),
            symbol: p.symbol.to_string(),
            side: p.side().as_str().to_string(),
            quantity: p.quantity(),
            entry_price: p.entry_price,
            leverage: i32::try_from(p.leverage).unwrap_or(1),
            margin: if p.isolated_margin > Decimal::ZERO {
                p.isolated_margin
            } else {
                (p.quantity() * p.entry_price / leverage).round_dp(8)
            },
            tp_price: None,
            sl_price: None,
            exit_plan: "adopted from the venue: vibex did not open this position".into(),
            mark_price: Some(p.mark_price).filter(|m| *m > Decimal::ZERO),
            unrealized_pnl: p.unrealized_pnl,
            realized_pnl: Decimal::ZERO,
            status: "open".into(),
            opened_at: now,
            closed_at: None,
            opened_cycle_id: None,
            updated_at: now,
            liquidation_price: p.liquidation_price,
            origin: "adopted".into(),
        };
        self.positions.insert(p.symbol.clone(), row.clone());
        let mut batch = ExecutionBatch::default();
        self.record(&mut batch, cycle, f, json!({}));
        batch.positions.push(row);
        journal.commit(batch, cycle);
    }

    /// Fills and income the venue booked since the last poll, each recorded once.
    async fn poll_fills_and_income(
        &mut self,
        cycle: Option<CycleId>,
        journal: &mut Journal,
    ) -> Result<(), VenueError> {
        let mut symbols: Vec<Symbol> = self.positions.keys().cloned().collect();
        for s in self.closed.keys().chain(self.last_trades.keys()) {
            if !symbols.contains(s) {
                symbols.push(s.clone());
            }
        }
        for o in self.orders.values() {
            let s = Symbol(o.symbol.clone());
            if !symbols.contains(&s) {
                symbols.push(s);
            }
        }
        let since = self.fills_since;
        let mut batch = ExecutionBatch::default();
        for symbol in symbols {
            let trades = self.client.user_trades(&symbol, Some(since)).await?;
            for t in trades {
                let order = self
                    .orders
                    .values()
                    .chain(self.finished.values())
                    .find(|o| o.venue_order_id.as_deref() == Some(t.order_id.as_str()))
                    .cloned();
                self.fill(&t, order.as_ref(), &mut batch);
            }
        }
        let income = self.client.income(Some(self.income_since)).await?;
        for i in income {
            if i.time > self.income_since {
                self.income_since = i.time;
            }
            // The venue's startTime is inclusive: the newest record comes back again.
            if !self.remember(format!("income:{}:{}", i.kind, i.tran_id)) {
                continue;
            }
            batch.income.push(IncomeRow {
                id: Uuid::now_v7(),
                ts: i.time,
                account_id: self.account_id.to_string(),
                cycle_id: cycle.map(|c| c.0),
                symbol: i.symbol.map(|s| s.to_string()),
                kind: match i.kind.as_str() {
                    "REALIZED_PNL" | "FUNDING_FEE" | "COMMISSION" | "TRANSFER" => i.kind.clone(),
                    "INSURANCE_CLEAR" => "LIQUIDATION_FEE".into(),
                    _ => "OTHER".into(),
                },
                amount: i.amount,
                asset: i.asset,
                venue_tran_id: Some(i.tran_id),
                detail: json!({"venue_kind": i.kind, "trade_id": i.trade_id}),
            });
        }
        journal.commit(batch, cycle);
        Ok(())
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
