//! The engine's state and its job machinery.
//!
//! A job is the work one input asks for (start, reconcile, execute, a venue event,
//! close-all). It is a queue of [`Step`]s run in order; a step may ask requests, and the
//! next step runs only once every request the current one asked (and the requests their
//! answers asked) has been answered. An answer's continuation ([`Then`]) may put steps at
//! the front of the queue — a nested call, e.g. "close this position" in the middle of
//! executing a decision. A job ends when its queue is empty and nothing is outstanding,
//! or at once when it fails.

use crate::domain::decision::{AccountView, TradeDecision};
use crate::domain::instrument::SymbolRules;
use crate::domain::orders::{OrderLeg, OrderStatus};
use crate::domain::types::{AccountId, CycleId, PositionSide, Symbol};
use crate::engine::io::*;
use crate::engine::model::*;
use crate::engine::reconcile::Finding;
use crate::exchange::venue::{VenueBalance, VenueOrder, VenueTrade};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use uuid::Uuid;

/// Every how many reconciliations every working order is read and income is polled.
pub const FULL_EVERY: u64 = 10;

/// How much a reconciliation reads (see `reconciling.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Depth {
    /// Every working order, then fills and income.
    Full,
    /// The traded symbols' working orders, then their fills (the user stream is down).
    Fills,
    /// The traded symbols' working orders (the user stream delivers fills).
    Light,
}
/// How many finished orders are kept for late fills (the database has them all).
const FINISHED_ORDERS: usize = 500;
/// How many trade and income ids are remembered for de-duplication in memory (the
/// database de-duplicates beyond that).
const SEEN: usize = 2000;
/// How far back the first poll of fills and income looks when nothing is stored.
const FIRST_LOOKBACK_HOURS: i64 = 24;

/// What does not change while the account runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The account.
    pub account_id: AccountId,
    /// Leverage set on every symbol.
    pub leverage: u32,
    /// `ISOLATED` or `CROSSED`.
    pub margin_type: String,
    /// The venue lives in this process (paper): it dies with vibex, so an order's row
    /// need not be on disk before it is sent.
    pub in_process: bool,
}

/// What the database holds for the account.
#[derive(Clone, Debug, Default)]
pub struct StoredBook {
    /// Open positions.
    pub positions: Vec<Position>,
    /// Orders working, pending or of unknown outcome.
    pub working_orders: Vec<Order>,
    /// Exit plans of those orders' decisions, by client order id.
    pub plans: HashMap<String, EntryPlan>,
    /// Last fill time per symbol.
    pub last_fills: Vec<(Symbol, DateTime<Utc>)>,
    /// Newest income record time.
    pub last_income: Option<DateTime<Utc>>,
}

/// The decision an Execute job carries through its steps.
#[derive(Clone, Debug)]
pub(crate) struct ExecuteCtx {
    pub cycle: CycleId,
    pub decision_id: Uuid,
    pub decision: TradeDecision,
    pub price: Decimal,
    pub rules: Option<SymbolRules>,
    pub target: PositionSide,
}

/// One step of a job.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    SyncClock,
    CheckMode {
        symbols: Vec<Symbol>,
    },
    Prepare {
        symbol: Symbol,
    },
    ReadVenue {
        cycle: Option<CycleId>,
    },
    Settle {
        symbol: Symbol,
        coid: String,
        cycle: Option<CycleId>,
        finding: Finding,
    },
    ApplyFinding {
        cycle: Option<CycleId>,
        finding: Finding,
    },
    PollFills {
        cycle: Option<CycleId>,
        depth: Depth,
    },
    ExecuteDecision(Box<ExecuteCtx>),
    OpenEntry(Box<ExecuteCtx>),
    Diary(Box<ExecuteCtx>),
    CancelProtection {
        symbol: Symbol,
        why: String,
    },
    SendExit {
        symbol: Symbol,
        cycle: CycleId,
        decision_id: Option<Uuid>,
        reason: CloseReason,
    },
    PlaceProtection {
        symbol: Symbol,
        side: PositionSide,
        plan: EntryPlan,
        cycle: CycleId,
        decision_id: Option<Uuid>,
        leg: OrderLeg,
    },
    CancelAllOf {
        symbol: Symbol,
        reason: String,
    },
    CloseEverything,
}

/// What an order placement was for.
#[derive(Clone, Debug)]
pub(crate) enum Purpose {
    Entry {
        ctx: Box<ExecuteCtx>,
        plan: EntryPlan,
    },
    Exit {
        position: Box<Position>,
        reason: CloseReason,
    },
    Protection {
        symbol: Symbol,
        cycle: CycleId,
        leg: OrderLeg,
    },
}

/// What to do with the answer to a request.
#[derive(Clone, Debug)]
pub(crate) enum Then {
    Clock,
    Mode {
        symbols: Vec<Symbol>,
    },
    MarginType {
        symbol: Symbol,
    },
    Leverage {
        symbol: Symbol,
    },
    Snapshot {
        cycle: Option<CycleId>,
        depth: Depth,
    },
    Settled {
        symbol: Symbol,
        coid: String,
        cycle: Option<CycleId>,
        finding: Finding,
    },
    Cancelled {
        coid: String,
        why: String,
    },
    CancelledOrphan {
        coid: String,
    },
    CancelledAll {
        symbol: Symbol,
        reason: String,
    },
    Placed {
        coid: String,
        purpose: Purpose,
    },
    Trades,
    Income {
        cycle: Option<CycleId>,
    },
    /// The fills waiting for the stored order of `key`.
    Lookup {
        key: StoredOrderKey,
        trades: Vec<VenueTrade>,
    },
}

/// What a job gathers on its way.
#[derive(Debug, Default)]
pub(crate) struct Acc {
    /// Orders asked for (the cycle report).
    pub orders: usize,
    /// What the orders did (the diary's `order_result`).
    pub result: serde_json::Value,
    /// The entry's answer when it filled.
    pub entry: Option<VenueOrder>,
    pub tp_oid: Option<String>,
    pub sl_oid: Option<String>,
    /// Whether the exit of an opposite position filled completely.
    pub exit_complete: Option<bool>,
    /// Why leverage or margin type could not be set before an entry.
    pub prepare_error: Option<String>,
    /// Close-all failures.
    pub problems: Vec<String>,
    /// Orders this job already cancelled (a later finding about them is moot).
    pub cancelled: HashSet<String>,
}

#[derive(Debug)]
pub(crate) enum JobKind {
    Start,
    Reconcile,
    Execute,
    Venue,
    CloseAll,
}

#[derive(Debug)]
pub(crate) struct Job {
    pub kind: JobKind,
    pub steps: VecDeque<Step>,
    pub outstanding: usize,
    pub failed: Option<String>,
    pub acc: Acc,
}

struct Pending {
    job: JobId,
    then: Then,
}

/// The engine of one account. See the module docs of [`crate::engine`].
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    /// The time of the input being handled (the injected clock).
    pub(crate) now: DateTime<Utc>,
    pub(crate) positions: BTreeMap<Symbol, Position>,
    /// The last closed position per symbol (late realized PnL is added to it).
    pub(crate) closed: HashMap<Symbol, Position>,
    /// Orders working, pending or of unknown outcome, by client order id.
    pub(crate) orders: BTreeMap<String, Order>,
    /// Recently finished orders, by client order id (late fills belong to them).
    pub(crate) finished: HashMap<String, Order>,
    finished_order: VecDeque<String>,
    pub(crate) plans: HashMap<String, EntryPlan>,
    pub(crate) balance: VenueBalance,
    pub(crate) marks: HashMap<Symbol, Decimal>,
    pub(crate) liquidation: HashMap<Symbol, Decimal>,
    pub(crate) last_trades: HashMap<Symbol, DateTime<Utc>>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    pub(crate) fills_since: DateTime<Utc>,
    pub(crate) income_since: DateTime<Utc>,
    pub(crate) prepared: HashSet<Symbol>,
    pub(crate) rules: HashMap<Symbol, SymbolRules>,
    pub(crate) stream_up: bool,
    pub(crate) reconciles: u64,
    next_request: u64,
    next_job: u64,
    pending: HashMap<RequestId, Pending>,
    pub(crate) jobs: BTreeMap<JobId, Job>,
}

impl Engine {
    /// The engine as the database left the account, at `now`.
    pub fn restore(cfg: EngineConfig, stored: StoredBook, now: DateTime<Utc>) -> Engine {
        let first = now - ChronoDuration::hours(FIRST_LOOKBACK_HOURS);
        let fills_since = stored
            .last_fills
            .iter()
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(first);
        Engine {
            cfg,
            now,
            positions: stored
                .positions
                .into_iter()
                .map(|p| (p.symbol.clone(), p))
                .collect(),
            closed: HashMap::new(),
            orders: stored
                .working_orders
                .into_iter()
                .map(|o| (o.client_order_id.clone(), o))
                .collect(),
            finished: HashMap::new(),
            finished_order: VecDeque::new(),
            plans: stored.plans,
            balance: VenueBalance::default(),
            marks: HashMap::new(),
            liquidation: HashMap::new(),
            last_trades: stored.last_fills.into_iter().collect(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            fills_since,
            income_since: stored.last_income.unwrap_or(first),
            prepared: HashSet::new(),
            rules: HashMap::new(),
            stream_up: false,
            reconciles: 0,
            next_request: 0,
            next_job: 0,
            pending: HashMap::new(),
            jobs: BTreeMap::new(),
        }
    }

    // ---- plain updates and reads ----------------------------------------------------

    /// The symbols' trading rules as the market-data hubs last read them (orders the
    /// engine places on its own are rounded with them).
    pub fn set_rules(&mut self, rules: &HashMap<Symbol, SymbolRules>) {
        for (symbol, r) in rules {
            self.rules.insert(symbol.clone(), r.clone());
        }
    }

    /// A new mark price: positions are valued at it.
    pub fn on_mark(&mut self, symbol: &Symbol, mark: Decimal) {
        if mark > Decimal::ZERO {
            self.marks.insert(symbol.clone(), mark);
        }
    }

    /// Whether the user data stream is delivering (most reconciliations are light then).
    pub fn set_stream_up(&mut self, up: bool) {
        self.stream_up = up;
    }

    /// The account.
    pub fn account_id(&self) -> &AccountId {
        &self.cfg.account_id
    }

    /// True while a job waits for answers.
    pub fn busy(&self) -> bool {
        !self.jobs.is_empty()
    }

    fn mark_of(&self, p: &Position) -> Decimal {
        self.marks
            .get(&p.symbol)
            .copied()
            .or(p.mark_price)
            .unwrap_or(p.entry_price)
    }

    /// Balance and positions as the policy and risk rules see them, and the last trade
    /// time per symbol.
    pub fn view(&self) -> (AccountView, HashMap<Symbol, DateTime<Utc>>) {
        let positions: Vec<_> = self
            .positions
            .values()
            .map(|p| p.view(self.mark_of(p)))
            .collect();
        let unrealized: Decimal = positions.iter().map(|p| p.unrealized_pnl).sum();
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

    /// Open positions.
    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.positions.values()
    }

    /// Working orders, oldest first.
    pub fn open_orders(&self) -> Vec<Order> {
        let mut out: Vec<Order> = self
            .orders
            .values()
            .filter(|o| o.status.is_working())
            .cloned()
            .collect();
        out.sort_by_key(|o| o.created_at);
        out
    }

    /// The open positions revalued at their marks, and the equity snapshot of `cycle`.
    pub fn equity(
        &mut self,
        cycle: CycleId,
        now: DateTime<Utc>,
    ) -> (Vec<Position>, EquitySnapshot) {
        let (view, _) = self.view();
        let mut revalued = Vec::new();
        for p in self.positions.values_mut() {
            if let Some(mark) = self.marks.get(&p.symbol) {
                p.mark_price = Some(*mark);
                p.unrealized_pnl = p.unrealized_at(*mark);
            }
            p.liquidation_price = self.liquidation.get(&p.symbol).copied();
            p.updated_at = now;
            revalued.push(p.clone());
        }
        let used: Decimal = self.positions.values().map(|p| p.margin).sum();
        let snapshot = EquitySnapshot {
            ts: now,
            account_id: self.cfg.account_id.clone(),
            cycle_id: Some(cycle),
            wallet_balance: view.wallet_balance,
            unrealized_pnl: view.equity - view.wallet_balance,
            equity: view.equity,
            used_margin: used,
            available: view.available,
        };
        (revalued, snapshot)
    }

    /// The balance as JSON (the `balance` event).
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

    // ---- the job machinery ----------------------------------------------------------

    /// Handles one input at `now`. See [`crate::engine::io`] for the protocol.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) -> Effects {
        self.now = now;
        let mut fx = Effects::default();
        let job = match input {
            Input::Answer { id, result } => {
                let Some(p) = self.pending.remove(&id) else {
                    fx.notices.push(Notice::warning(
                        "an answer to a request the engine is not waiting for was ignored",
                        vec![("request", id.0.to_string())],
                    ));
                    return fx;
                };
                if let Some(j) = self.jobs.get_mut(&p.job) {
                    j.outstanding = j.outstanding.saturating_sub(1);
                }
                self.answer(p.job, p.then, result, &mut fx);
                p.job
            }
            Input::Start { symbols } => self.begin(
                JobKind::Start,
                vec![Step::SyncClock, Step::CheckMode { symbols }],
            ),
            Input::Reconcile { cycle } => {
                self.begin(JobKind::Reconcile, vec![Step::ReadVenue { cycle }])
            }
            Input::Execute {
                cycle,
                decision_id,
                decision,
                price,
                rules,
            } => {
                let target = match decision.action {
                    crate::domain::types::TradeAction::Buy => PositionSide::Long,
                    crate::domain::types::TradeAction::Sell => PositionSide::Short,
                    crate::domain::types::TradeAction::Hold => {
                        let job = self.begin(JobKind::Execute, vec![]);
                        self.advance(job, &mut fx);
                        fx.job = Some(job);
                        return fx;
                    }
                };
                let ctx = ExecuteCtx {
                    cycle,
                    decision_id,
                    decision,
                    price,
                    rules,
                    target,
                };
                self.begin(JobKind::Execute, vec![Step::ExecuteDecision(Box::new(ctx))])
            }
            Input::Venue(event) => {
                let job = self.begin(JobKind::Venue, vec![]);
                self.on_venue_event(job, event, &mut fx);
                job
            }
            Input::CloseAll { reason } => {
                let job = self.begin(JobKind::CloseAll, vec![]);
                self.begin_close_all(job, &reason);
                job
            }
        };
        self.advance(job, &mut fx);
        fx.job = Some(job);
        fx
    }

    fn begin(&mut self, kind: JobKind, steps: Vec<Step>) -> JobId {
        self.next_job += 1;
        let id = JobId(self.next_job);
        self.jobs.insert(
            id,
            Job {
                kind,
                steps: steps.into(),
                outstanding: 0,
                failed: None,
                acc: Acc {
                    result: json!({}),
                    ..Acc::default()
                },
            },
        );
        id
    }

    /// Runs the job's next steps until one waits for answers, or the job is over.
    fn advance(&mut self, job: JobId, fx: &mut Effects) {
        loop {
            let Some(j) = self.jobs.get_mut(&job) else {
                return;
            };
            if j.failed.is_some() {
                self.finish(job, fx);
                return;
            }
            if j.outstanding > 0 {
                return;
            }
            match j.steps.pop_front() {
                Some(step) => self.run(job, step, fx),
                None => {
                    self.finish(job, fx);
                    return;
                }
            }
        }
    }

    /// Ends a job: its outcome goes into `fx.done`; requests of it still outstanding
    /// will not be asked for (their answers are ignored).
    fn finish(&mut self, job: JobId, fx: &mut Effects) {
        let Some(j) = self.jobs.remove(&job) else {
            return;
        };
        self.pending.retain(|_, p| p.job != job);
        fx.done = Some(match j.kind {
            JobKind::Start => Outcome::Started(j.failed.map_or(Ok(()), Err)),
            JobKind::Reconcile => Outcome::Reconciled(j.failed.map_or(Ok(()), Err)),
            JobKind::Execute => Outcome::Executed {
                orders: j.acc.orders,
            },
            JobKind::Venue => Outcome::Applied,
            JobKind::CloseAll => {
                let mut problems = j.acc.problems;
                if let Some(f) = j.failed {
                    problems.push(f);
                }
                Outcome::ClosedAll { problems }
            }
        });
    }

    /// Fails the job with `why`: nothing more of it runs.
    pub(crate) fn fail(&mut self, job: JobId, why: String) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.failed = Some(why);
            j.steps.clear();
        }
    }

    /// Asks for a request; its answer continues with `then`.
    pub(crate) fn ask(&mut self, job: JobId, request: Request, then: Then, fx: &mut Effects) {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.pending.insert(id, Pending { job, then });
        if let Some(j) = self.jobs.get_mut(&job) {
            j.outstanding += 1;
        }
        fx.requests.push((id, request));
    }

    /// Adds `trade` to the lookup already asked for `key`, if there is one.
    pub(crate) fn join_lookup(&mut self, key: &StoredOrderKey, trade: &VenueTrade) -> bool {
        for p in self.pending.values_mut() {
            if let Then::Lookup { key: k, trades } = &mut p.then {
                if k == key {
                    trades.push(trade.clone());
                    return true;
                }
            }
        }
        false
    }

    /// Puts `steps` at the front of the job's queue, in this order (they run next).
    pub(crate) fn next(&mut self, job: JobId, steps: Vec<Step>) {
        if let Some(j) = self.jobs.get_mut(&job) {
            for step in steps.into_iter().rev() {
                j.steps.push_front(step);
            }
        }
    }

    /// Puts `steps` at the end of the job's queue.
    pub(crate) fn later(&mut self, job: JobId, steps: Vec<Step>) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.steps.extend(steps);
        }
    }

    /// True for the start-up job (its failures say what start-up could not do).
    pub(crate) fn is_start(&self, job: JobId) -> bool {
        matches!(self.jobs.get(&job).map(|j| &j.kind), Some(JobKind::Start))
    }

    /// The job's accumulators.
    pub(crate) fn acc(&mut self, job: JobId) -> Option<&mut Acc> {
        self.jobs.get_mut(&job).map(|j| &mut j.acc)
    }

    fn run(&mut self, job: JobId, step: Step, fx: &mut Effects) {
        match step {
            Step::SyncClock => self.ask(job, Request::SyncTime, Then::Clock, fx),
            Step::CheckMode { symbols } => {
                self.ask(job, Request::IsHedgeMode, Then::Mode { symbols }, fx)
            }
            Step::Prepare { symbol } => self.prepare(job, symbol, fx),
            Step::ReadVenue { cycle } => self.read_venue(job, cycle, fx),
            Step::Settle {
                symbol,
                coid,
                cycle,
                finding,
            } => self.settle(job, symbol, coid, cycle, finding, fx),
            Step::ApplyFinding { cycle, finding } => self.apply_finding(job, cycle, finding, fx),
            Step::PollFills { cycle, depth } => self.poll_fills(job, cycle, depth, fx),
            Step::ExecuteDecision(ctx) => self.execute_decision(job, ctx),
            Step::OpenEntry(ctx) => self.open_entry(job, ctx, fx),
            Step::Diary(ctx) => self.diary(job, &ctx, fx),
            Step::CancelProtection { symbol, why } => {
                self.cancel_protection(job, &symbol, &why, fx)
            }
            Step::SendExit {
                symbol,
                cycle,
                decision_id,
                reason,
            } => self.send_exit(job, &symbol, cycle, decision_id, reason, fx),
            Step::PlaceProtection {
                symbol,
                side,
                plan,
                cycle,
                decision_id,
                leg,
            } => self.place_protection(job, symbol, side, plan, cycle, decision_id, leg, fx),
            Step::CancelAllOf { symbol, reason } => {
                self.ask(
                    job,
                    Request::CancelAll {
                        symbol: symbol.clone(),
                    },
                    Then::CancelledAll { symbol, reason },
                    fx,
                );
            }
            Step::CloseEverything => self.close_everything(job),
        }
    }

    fn answer(
        &mut self,
        job: JobId,
        then: Then,
        result: Result<Reply, crate::exchange::error::VenueError>,
        fx: &mut Effects,
    ) {
        match then {
            Then::Clock => match result {
                Ok(Reply::ClockOffset(offset)) => fx.notices.push(Notice::info(
                    "venue clock measured",
                    vec![("offset_ms", offset.to_string())],
                )),
                Ok(other) => self.fail(job, unexpected("the venue clock", &other)),
                Err(e) => self.fail(job, format!("cannot read the venue clock: {e}")),
            },
            Then::Mode { symbols } => match result {
                Ok(Reply::HedgeMode(true)) => self.fail(
                    job,
                    "the AsterDEX account is in hedge (dual-side) position mode; vibex trades \
                     one-way mode: switch the account to one-way mode on AsterDEX and restart"
                        .into(),
                ),
                Ok(Reply::HedgeMode(false)) => {
                    let mut steps: Vec<Step> = symbols
                        .into_iter()
                        .map(|symbol| Step::Prepare { symbol })
                        .collect();
                    steps.push(Step::ReadVenue { cycle: None });
                    self.later(job, steps);
                }
                Ok(other) => self.fail(job, unexpected("the position mode", &other)),
                Err(e) => self.fail(job, format!("cannot read the position mode: {e}")),
            },
            Then::MarginType { symbol } => self.margin_type_set(job, symbol, result, fx),
            Then::Leverage { symbol } => self.leverage_set(job, symbol, result, fx),
            Then::Snapshot { cycle, depth } => self.on_snapshot(job, cycle, depth, result),
            Then::Settled {
                symbol,
                coid,
                cycle,
                finding,
            } => self.on_settled(job, symbol, coid, cycle, finding, result, fx),
            Then::Cancelled { coid, why } => self.on_cancelled(job, &coid, &why, result, fx),
            Then::CancelledOrphan { coid } => {
                if let Err(e) = result {
                    fx.notices.push(Notice::warning(
                        "could not cancel an orphaned order",
                        vec![("client_order_id", coid), ("error", e.to_string())],
                    ));
                }
            }
            Then::CancelledAll { symbol, reason } => {
                self.on_cancelled_all(job, &symbol, &reason, result, fx)
            }
            Then::Placed { coid, purpose } => self.on_placed(job, &coid, purpose, result, fx),
            Then::Trades => self.on_trades(job, result, fx),
            Then::Income { cycle } => self.on_income(job, cycle, result, fx),
            Then::Lookup { trades, .. } => self.on_lookup(trades, result, fx),
        }
    }

    // ---- shared bookkeeping ---------------------------------------------------------

    /// A fresh id, ordered by the engine's clock.
    pub(crate) fn new_id(&self) -> Uuid {
        let secs = u64::try_from(self.now.timestamp()).unwrap_or(0);
        let ts =
            uuid::Timestamp::from_unix(uuid::NoContext, secs, self.now.timestamp_subsec_nanos());
        Uuid::new_v7(ts)
    }

    /// A fresh cycle id (orders the engine places on its own take fresh ids).
    pub(crate) fn new_cycle(&self) -> CycleId {
        CycleId(self.new_id())
    }

    /// Keeps a finished order for late fills (bounded).
    pub(crate) fn finish_order(&mut self, order: Order) {
        let coid = order.client_order_id.clone();
        if self.finished.insert(coid.clone(), order).is_none() {
            self.finished_order.push_back(coid);
        }
        while self.finished_order.len() > FINISHED_ORDERS {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
    }

    /// Files `order` where its status says: among the working orders, or the finished.
    pub(crate) fn file_order(&mut self, order: Order) {
        let coid = order.client_order_id.clone();
        if order.status.is_final() {
            self.orders.remove(&coid);
            self.finish_order(order);
        } else {
            self.finished.remove(&coid);
            self.orders.insert(coid, order);
        }
    }

    /// True the first time `key` (a trade or an income record) is seen.
    pub(crate) fn remember(&mut self, key: String) -> bool {
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.seen_order.push_back(key);
        while self.seen_order.len() > SEEN {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// True when the trade was recorded already (no side effect).
    pub(crate) fn seen_trade(&self, t: &VenueTrade) -> bool {
        self.seen.contains(&trade_key(t))
    }

    /// Sets an order's status and records the step.
    pub(crate) fn set_status(
        &self,
        changes: &mut Changes,
        order: &mut Order,
        status: OrderStatus,
        detail: serde_json::Value,
    ) {
        order.status = status;
        order.updated_at = self.now;
        changes.order_events.push(OrderEvent {
            ts: self.now,
            order_id: order.id,
            account_id: order.account_id.clone(),
            cycle_id: order.cycle_id,
            status,
            detail,
        });
    }

    /// Marks an order refused (with the reason) and records the step.
    pub(crate) fn reject(&self, changes: &mut Changes, order: &mut Order, reason: &str) {
        order.reject_reason = Some(reason.to_string());
        self.set_status(
            changes,
            order,
            OrderStatus::Rejected,
            json!({"reason": reason}),
        );
    }

    /// Applies the venue's view of an order to vibex's; records a status change.
    pub(crate) fn absorb(&self, changes: &mut Changes, order: &mut Order, o: &VenueOrder) {
        order.venue_order_id = Some(o.order_id.clone());
        order.filled_quantity = o.executed_qty;
        order.avg_fill_price = o.avg_price.or(order.avg_fill_price);
        if order.quantity.is_none() && o.orig_qty > Decimal::ZERO {
            order.quantity = Some(o.orig_qty);
        }
        order.updated_at = self.now;
        if order.status != o.status {
            order.status = o.status;
            changes.order_events.push(OrderEvent {
                ts: o.update_time,
                order_id: order.id,
                account_id: order.account_id.clone(),
                cycle_id: order.cycle_id,
                status: o.status,
                detail: json!({"venue_order_id": o.order_id, "executed_qty": o.executed_qty,
                               "avg_price": o.avg_price}),
            });
        }
    }

    /// A reconciliation event for `finding`.
    pub(crate) fn record(
        &self,
        changes: &mut Changes,
        cycle: Option<CycleId>,
        finding: &Finding,
        extra: serde_json::Value,
    ) {
        changes.reconciliation.push(ReconciliationEvent {
            id: self.new_id(),
            ts: self.now,
            account_id: self.cfg.account_id.clone(),
            cycle_id: cycle,
            finding: finding.clone(),
            extra,
        });
    }

    /// Records the position on `symbol` closed (idempotent) and asks for its remaining
    /// protection to be cancelled next (the venue does not cancel a TP when the SL
    /// fires, nor either when the position closes another way) — except when the
    /// position is found closed by reconciliation, whose orphan rule cancels (and
    /// records) what was left behind.
    pub(crate) fn close_local(
        &mut self,
        job: JobId,
        symbol: &Symbol,
        price: Option<Decimal>,
        reason: CloseReason,
        fx: &mut Effects,
    ) {
        let Some(mut p) = self.positions.remove(symbol) else {
            return;
        };
        p.status = PositionStatus::Closed;
        p.closed_at = Some(self.now);
        p.close_reason = Some(reason);
        p.updated_at = self.now;
        if let Some(price) = price {
            p.mark_price = Some(price);
        }
        p.unrealized_pnl = Decimal::ZERO;
        self.last_trades.insert(symbol.clone(), self.now);
        self.closed.insert(symbol.clone(), p.clone());
        fx.notices.push(Notice::info(
            "position closed",
            vec![
                ("symbol", symbol.to_string()),
                ("reason", reason.as_str().to_string()),
            ],
        ));
        fx.changes.positions.push(p);
        if reason != CloseReason::ClosedOnVenue && self.has_protection(symbol) {
            self.next(
                job,
                vec![Step::CancelProtection {
                    symbol: symbol.clone(),
                    why: reason.describe().to_string(),
                }],
            );
        }
    }

    /// True when `symbol` has a working protective order.
    pub(crate) fn has_protection(&self, symbol: &Symbol) -> bool {
        self.orders
            .values()
            .any(|o| o.symbol == *symbol && o.is_protective() && o.status.is_working())
    }
}

/// The de-duplication key of a trade.
pub(crate) fn trade_key(t: &VenueTrade) -> String {
    format!("trade:{}:{}", t.symbol, t.id)
}

/// An error for an answer of the wrong kind (a bug of the caller, said plainly).
pub(crate) fn unexpected(what: &str, reply: &Reply) -> String {
    format!("{what}: unexpected answer {reply:?}")
}
