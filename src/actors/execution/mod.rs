//! ExecutionActor: the one place an account's orders, positions and balance change,
//! and the only place the execution engine's I/O happens. It owns the account's
//! [`Engine`] (values in, values out) and performs what the engine asks for: it records
//! the changes ([`journal::Journal`]), makes order intents durable before sending them,
//! calls the venue through the [`Exchange`] trait — AsterDEX for `mode: live`, the
//! simulated exchange ([`SimExchange`]) for paper — and hands every answer back.
//!
//! The engine lives behind an async mutex ([`Core`]) so that jobs (whose venue calls
//! await the network for a live account) run one at a time, in the order the messages
//! arrived: start-up, price ticks (a paper venue's TP/SL, liquidation and funding fire
//! on every tick, not only at cycle time), the cycle's reconciliation
//! (`GetExecutionView` with a cycle), execution, close-all, and a live account's user
//! data stream, which runs as a future of this actor and stops with it.
//!
//! Invariant (paper): every change of the simulated wallet is persisted with the rows
//! of the step, so a restart resumes the same balance and positions.

pub mod journal;

use crate::actors::account::StoredAccount;
use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::messages::*;
use crate::actors::tree::{Tree, TreeGuard};
use crate::config::{AccountConfig, TradingMode};
use crate::db::mapping::{read_all, RowError};
use crate::db::models::{EquitySnapshotRow, PositionRow};
use crate::db::queries::{self, ExecutionBatch};
use crate::domain::paper::PaperSettings;
use crate::domain::types::{utc_midnight, CycleId, Symbol};
use crate::engine::{
    Effects, Engine, EngineConfig, Input, Order, Outcome, Position, Reply, Request, StoredBook,
};
use crate::exchange::aster::market::RetryPolicy;
use crate::exchange::aster::sign::Credentials;
use crate::exchange::aster::trade::TradeClient;
use crate::exchange::aster::user_stream::{self, StreamSignal};
use crate::exchange::error::VenueError;
use crate::exchange::sim::SimExchange;
use crate::exchange::venue::Exchange;
use crate::store::{Rows, Store, Write};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use journal::Journal;
use rust_decimal::Decimal;
use serde_json::json;
use slog::{error, info, warn, Logger};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// The account's engine, its venue and its journal, used by one job at a time.
pub struct Core {
    /// The engine.
    pub engine: Engine,
    /// Where its changes go.
    pub journal: Journal,
    /// The venue.
    venue: Arc<dyn Exchange>,
    /// The simulated exchange of a paper account (its market-driven events).
    pub sim: Option<Arc<SimExchange>>,
    /// Why the last reconciliation failed, while it does.
    pub venue_error: Option<String>,
    store: Store,
    log: Logger,
}

impl Core {
    /// The engine of an account over its venue, recording through `journal`; `sim` is
    /// the paper venue when the account is paper (its own events are applied too).
    pub fn new(
        engine: Engine,
        journal: Journal,
        venue: Arc<dyn Exchange>,
        sim: Option<Arc<SimExchange>>,
        store: Store,
        log: Logger,
    ) -> Core {
        Core {
            engine,
            journal,
            venue,
            sim,
            venue_error: None,
            store,
            log,
        }
    }

    /// Runs one input through the engine until its job is over: records the changes,
    /// makes intents durable before their requests are sent, performs the requests in
    /// order and hands each answer back; returns once its writes are queued in the
    /// store (waiting while the store's queue is full: backpressure).
    pub async fn run(&mut self, input: Input, cycle: Option<CycleId>) -> Outcome {
        let outcome = self.drive(input, cycle).await;
        self.journal.flushed().await;
        outcome
    }

    async fn drive(&mut self, input: Input, cycle: Option<CycleId>) -> Outcome {
        let mut queue: VecDeque<(crate::engine::RequestId, Request)> = VecDeque::new();
        let mut unsendable: HashSet<crate::engine::RequestId> = HashSet::new();
        let mut fx = self.engine.handle(input, Utc::now());
        loop {
            if !self.apply(&mut fx, cycle).await {
                // The intents could not be made durable: their orders are not sent.
                for (id, request) in &fx.requests {
                    if matches!(request, Request::Place(_)) {
                        unsendable.insert(*id);
                    }
                }
            }
            queue.extend(fx.requests.drain(..));
            if let Some(outcome) = fx.done.take() {
                return outcome;
            }
            let Some((id, request)) = queue.pop_front() else {
                error!(self.log, "the engine waits for nothing; job abandoned");
                return Outcome::Applied;
            };
            let result = if unsendable.remove(&id) {
                Err(VenueError::Transport {
                    endpoint: "order".into(),
                    detail: "its row could not be written to the database; not sent".into(),
                })
            } else {
                self.perform(request).await
            };
            fx = self.engine.handle(Input::Answer { id, result }, Utc::now());
        }
    }

    /// Records `fx`'s changes, logs its notices, announces a balance change, and makes
    /// its intents durable; false when they could not be.
    async fn apply(&mut self, fx: &mut Effects, cycle: Option<CycleId>) -> bool {
        self.journal.notices(&fx.notices, cycle);
        self.journal.record(&fx.changes, cycle);
        if fx.balance_changed {
            self.journal.publish(
                Channel::Positions,
                "balance",
                None,
                self.engine.balance_json(),
            );
        }
        self.journal
            .record_durable(&fx.intents, cycle)
            .await
            .is_ok()
    }

    /// Performs one request of the engine: a venue call, or a lookup in the store.
    async fn perform(&self, request: Request) -> Result<Reply, VenueError> {
        let v = &self.venue;
        match request {
            Request::SyncTime => v.sync_time().await.map(Reply::ClockOffset),
            Request::IsHedgeMode => v.is_hedge_mode().await.map(Reply::HedgeMode),
            Request::SetMarginType {
                symbol,
                margin_type,
            } => v
                .set_margin_type(&symbol, &margin_type)
                .await
                .map(|_| Reply::Done),
            Request::SetLeverage { symbol, leverage } => {
                v.set_leverage(&symbol, leverage).await.map(|_| Reply::Done)
            }
            Request::Place(order) => v.place_order(&order).await.map(Reply::Placed),
            Request::Query {
                symbol,
                client_order_id,
            } => v
                .query_order(&symbol, &client_order_id)
                .await
                .map(Reply::Order),
            Request::Cancel {
                symbol,
                client_order_id,
            } => v
                .cancel_order(&symbol, &client_order_id)
                .await
                .map(Reply::Order),
            Request::CancelAll { symbol } => v.cancel_all(&symbol).await.map(|_| Reply::Done),
            Request::Snapshot => v.snapshot().await.map(Reply::Snapshot),
            Request::SnapshotOf(symbols) => v.snapshot_of(&symbols).await.map(Reply::Snapshot),
            Request::UserTrades { symbol, since } => {
                v.user_trades(&symbol, Some(since)).await.map(Reply::Trades)
            }
            Request::Income { since } => v.income(Some(since)).await.map(Reply::Income),
            Request::StoredOrder(key) => {
                let account = self.engine.account_id().to_string();
                let row = self
                    .store
                    .read(move |conn| queries::find_order(conn, &account, &key))
                    .await
                    .map_err(|e| store_error(e.to_string()))?;
                let order = row
                    .as_ref()
                    .map(Order::try_from)
                    .transpose()
                    .map_err(|e| store_error(e.to_string()))?;
                Ok(Reply::StoredOrder(order))
            }
        }
    }

    /// Applies what the simulated exchange did on its own (trigger fills, liquidations,
    /// funding) and persists its wallet when it changed.
    async fn settle(&mut self) {
        let Some(sim) = self.sim.clone() else {
            return;
        };
        loop {
            let events = sim.take_events();
            if events.is_empty() {
                break;
            }
            for event in events {
                self.run(Input::Venue(event), None).await;
            }
        }
        if let Some(wallet) = sim.take_wallet_change() {
            self.journal.record_paper_wallet(wallet);
        }
    }
}

/// A store lookup that failed, in the venue error the engine's answers carry.
fn store_error(detail: String) -> VenueError {
    VenueError::Transport {
        endpoint: "database".into(),
        detail,
    }
}

/// A message of the user data stream, delivered to the actor.
#[derive(Message)]
#[rtype(result = "()")]
struct Stream(StreamSignal);

/// The order executor of one account.
pub struct ExecutionActor {
    cfg: Arc<AccountConfig>,
    core: Arc<tokio::sync::Mutex<Core>>,
    /// The live account's signed client, for its user data stream.
    stream_client: Option<TradeClient>,
    symbols: Vec<Symbol>,
    day_start: Option<(DateTime<Utc>, Decimal)>,
    bus: Addr<EventBus>,
    log: Logger,
    /// The account tree this actor belongs to (it stops with the tree).
    tree: Option<TreeGuard>,
}

/// The stored book as the engine holds it (rows read back as typed values).
fn stored_book(stored: &StoredAccount) -> Result<StoredBook, RowError> {
    Ok(StoredBook {
        positions: read_all::<PositionRow, Position>(&stored.positions)?,
        working_orders: read_all(&stored.working_orders)?,
        plans: stored.plans.clone(),
        last_fills: stored
            .last_fills
            .iter()
            .map(|(s, t)| (Symbol(s.clone()), *t))
            .collect(),
        last_income: stored.last_income,
    })
}

impl ExecutionActor {
    /// Rebuilds the executor from the account's stored state.
    pub fn restore(
        cfg: Arc<AccountConfig>,
        stored: StoredAccount,
        bus: Addr<EventBus>,
        store: Store,
        log: &Logger,
    ) -> Result<Self, String> {
        let log = log.new(slog::o!("component" => "execution"));
        let book = stored_book(&stored).map_err(|e| e.to_string())?;
        // The prompt's recent history: a row vibex cannot read is left out, not fatal.
        let readable = |what: &str, e: &RowError| {
            warn!(log, "a stored row is left out of the recent history"; "what" => what, "error" => %e);
        };
        let recent_fills = stored
            .recent_fills
            .iter()
            .filter_map(|r| {
                crate::engine::Fill::try_from(r)
                    .inspect_err(|e| readable("fill", e))
                    .ok()
            })
            .collect();
        let recent_diary = stored
            .recent_diary
            .iter()
            .filter_map(|r| {
                crate::engine::DiaryEntry::try_from(r)
                    .inspect_err(|e| readable("diary", e))
                    .ok()
            })
            .collect();
        let journal = Journal::new(
            cfg.id.clone(),
            store.clone(),
            log.clone(),
            recent_fills,
            recent_diary,
        );
        let today = utc_midnight(Utc::now());
        let day_start = stored.day_start_equity.map(|e| (today, e));
        let symbols: Vec<Symbol> = cfg.assets.iter().map(|a| a.symbol()).collect();
        let (exchange, sim, stream_client): (Arc<dyn Exchange>, _, _) = match cfg.mode {
            TradingMode::Paper => {
                let positions = book.positions.iter().map(Position::to_paper).collect();
                let working = book
                    .working_orders
                    .iter()
                    .filter(|o| o.status.is_working())
                    .map(Order::as_venue_order)
                    .collect();
                let sim = Arc::new(SimExchange::restore(
                    PaperSettings {
                        fee_bps: cfg.paper.fee_bps,
                        maker_fee_bps: cfg.paper.maker_fee_bps,
                        slippage_bps: cfg.paper.slippage_bps,
                        maintenance_margin_rate: cfg.paper.maintenance_margin_rate,
                    },
                    stored.account.paper_wallet_balance,
                    positions,
                    working,
                    cfg.leverage,
                )?);
                info!(log, "paper account loaded";
                    "wallet_balance" => stored.account.paper_wallet_balance.to_string(),
                    "open_positions" => book.positions.len());
                (sim.clone(), Some(sim), None)
            }
            TradingMode::Live => {
                let creds = Credentials::from_config(&cfg.asterdex)?.ok_or_else(|| {
                    "mode: live needs asterdex credentials (api_key + api_secret, or user + \
                     signer + private_key)"
                        .to_string()
                })?;
                let client = TradeClient::new(
                    &cfg.asterdex.base_url,
                    creds,
                    cfg.asterdex.recv_window_ms,
                    RetryPolicy::default(),
                )
                .map_err(|e| e.to_string())?
                .with_logger(log.clone());
                warn!(log, "LIVE account: orders go to the venue";
                    "venue" => &cfg.asterdex.base_url, "open_positions" => book.positions.len());
                (Arc::new(client.clone()), None, Some(client))
            }
        };
        let engine = Engine::restore(
            EngineConfig {
                account_id: cfg.id.clone(),
                leverage: cfg.leverage,
                margin_type: cfg.asterdex.margin_type.as_str().to_string(),
                in_process: exchange.in_process(),
            },
            book,
            Utc::now(),
        );
        let core = Core::new(engine, journal, exchange, sim, store, log.clone());
        Ok(ExecutionActor {
            cfg,
            core: Arc::new(tokio::sync::Mutex::new(core)),
            stream_client,
            symbols,
            day_start,
            bus,
            log,
            tree: None,
        })
    }

    /// Makes the actor a member of `tree`: it stops when any member of the tree ends
    /// (its user data stream with it), and its own end ends the tree.
    pub fn in_tree(mut self, tree: &Tree) -> Self {
        self.tree = Some(tree.guard());
        self
    }

    /// The first valuation of a UTC day is that day's start equity (daily loss rule).
    fn day_start_equity(&mut self, equity: Decimal) -> Option<Decimal> {
        let today = utc_midnight(Utc::now());
        if self.day_start.map(|(d, _)| d != today).unwrap_or(true) {
            self.day_start = Some((today, equity));
        }
        self.day_start.map(|(_, e)| e)
    }
}

impl Actor for ExecutionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(guard) = &self.tree {
            guard.tree().clone().watch(self, ctx);
        }
        let core = self.core.clone();
        let symbols = self.symbols.clone();
        // Start-up holds the lock: no cycle runs on a venue that is not set up.
        let start = async move {
            let mut core = core.lock().await;
            let outcome = core.run(Input::Start { symbols }, None).await;
            core.settle().await;
            outcome
        };
        ctx.wait(start.into_actor(self).map(move |outcome, act, ctx| {
            let result = match outcome {
                Outcome::Started(result) => result,
                other => Err(format!("start-up ended unexpectedly: {other:?}")),
            };
            if let Err(e) = result {
                error!(act.log, "the account's venue cannot start"; "error" => &e);
                act.bus.do_send(Publish(EventDraft::account(
                    Channel::TradingEvents,
                    "account_error",
                    &act.cfg.id,
                    None,
                    json!({"error": e}),
                )));
                ctx.stop();
                return;
            }
            let Some(client) = act.stream_client.clone() else {
                return;
            };
            let addr = ctx.address();
            let stream = user_stream::run(
                client,
                act.cfg.asterdex.ws_url.clone(),
                act.log.clone(),
                move |signal| addr.do_send(Stream(signal)),
            );
            ctx.spawn(stream.into_actor(act));
        }));
    }
}

impl Handler<Stream> for ExecutionActor {
    type Result = ();

    fn handle(&mut self, msg: Stream, ctx: &mut Self::Context) {
        let core = self.core.clone();
        let fut = async move {
            let mut core = core.lock().await;
            match msg.0 {
                StreamSignal::Up => core.engine.set_stream_up(true),
                StreamSignal::Down(_) => core.engine.set_stream_up(false),
                StreamSignal::Event(event) => {
                    core.run(Input::Venue(event), None).await;
                }
            }
        };
        ctx.spawn(fut.into_actor(self));
    }
}

impl Handler<PriceTick> for ExecutionActor {
    type Result = ();

    fn handle(&mut self, tick: PriceTick, ctx: &mut Self::Context) {
        let core = self.core.clone();
        let fut = async move {
            let mut core = core.lock().await;
            if let Some(sim) = core.sim.clone() {
                // What the paper venue does on its own when the market moves.
                sim.on_funding(
                    &tick.symbol,
                    tick.funding_rate,
                    tick.next_funding_time,
                    tick.mark_price,
                    tick.ts,
                );
                sim.on_price(&tick.symbol, tick.mark_price, tick.ts);
                core.settle().await;
                core.journal.flushed().await;
            }
            core.engine.on_mark(&tick.symbol, tick.mark_price);
        };
        // Ticks are applied in order, one at a time, with the account's other work.
        ctx.spawn(fut.into_actor(self));
    }
}

impl Handler<GetExecutionView> for ExecutionActor {
    type Result = ResponseActFuture<Self, ExecutionView>;

    fn handle(&mut self, msg: GetExecutionView, _: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        let fut = async move {
            let mut core = core.lock().await;
            if let Some(sim) = &core.sim {
                sim.set_rules(&msg.rules);
            }
            core.engine.set_rules(&msg.rules);
            if let Some(cycle) = msg.reconcile {
                core.venue_error = match core
                    .run(Input::Reconcile { cycle: Some(cycle) }, Some(cycle))
                    .await
                {
                    Outcome::Reconciled(Err(e)) => Some(e),
                    _ => None,
                };
                core.settle().await;
            }
            let (account, last_trades) = core.engine.view();
            ExecutionView {
                last_trades,
                open_orders: core.engine.open_orders(),
                recent_fills: core.journal.recent_fills.iter().cloned().collect(),
                recent_diary: core.journal.recent_diary.iter().cloned().collect(),
                day_start_equity: None,
                venue_error: core.venue_error.clone(),
                account,
            }
        };
        Box::pin(fut.into_actor(self).map(|mut view, act, _| {
            if view.venue_error.is_none() {
                view.day_start_equity = act.day_start_equity(view.account.equity);
            }
            view
        }))
    }
}

impl Handler<Execute> for ExecutionActor {
    type Result = ResponseActFuture<Self, ExecutionReport>;

    fn handle(&mut self, msg: Execute, _: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        let fut = async move {
            let mut core = core.lock().await;
            let mut report = ExecutionReport::default();
            core.engine.set_rules(&msg.rules);
            if let Some(sim) = &core.sim {
                sim.set_rules(&msg.rules);
            }
            for a in &msg.decisions {
                let symbol = &a.snapshot.symbol;
                // The snapshot's mark first: a paper TP/SL crossed since the last tick
                // fires before a new order is placed.
                if let Some(sim) = core.sim.clone() {
                    sim.on_price(symbol, a.snapshot.mark_price, Utc::now());
                    core.settle().await;
                }
                core.engine.on_mark(symbol, a.snapshot.mark_price);
                let fills_before = core.journal.fills_recorded;
                let input = Input::Execute {
                    cycle: msg.cycle_id,
                    decision_id: a.decision_id,
                    decision: a.decision.clone(),
                    price: a.snapshot.last_price,
                    rules: msg.rules.get(symbol).cloned(),
                };
                if let Outcome::Executed { orders } = core.run(input, Some(msg.cycle_id)).await {
                    report.orders += orders;
                }
                core.settle().await;
                report.fills += core.journal.fills_recorded.saturating_sub(fills_before);
            }
            let (revalued, equity) = core.engine.equity(msg.cycle_id, Utc::now());
            // Revalued positions are stored, not published: the balance event carries
            // them. Queued behind the cycle's other rows, before the cycle completes.
            let mut rows = Vec::new();
            if !revalued.is_empty() {
                rows.push(Rows::Execution(ExecutionBatch {
                    positions: revalued.iter().map(PositionRow::from).collect(),
                    ..Default::default()
                }));
            }
            rows.push(Rows::Equity(EquitySnapshotRow::from(&equity)));
            let balance = EventDraft::account(
                Channel::Positions,
                "balance",
                core.engine.account_id(),
                Some(msg.cycle_id),
                core.engine.balance_json(),
            );
            core.journal.write(Write::new(rows, vec![balance]));
            core.journal.flushed().await;
            report
        };
        Box::pin(fut.into_actor(self))
    }
}

impl Handler<CloseAll> for ExecutionActor {
    type Result = ResponseActFuture<Self, CloseAllReport>;

    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        let fut = async move {
            let mut core = core.lock().await;
            let orders_before = core.engine.open_orders();
            let (before, _) = core.engine.view();
            let fills_before = core.journal.fills_recorded;
            let outcome = core.run(Input::CloseAll { reason: msg.reason }, None).await;
            core.settle().await;
            core.journal.flushed().await;
            let open_after: Vec<String> = core
                .engine
                .open_orders()
                .into_iter()
                .map(|o| o.client_order_id)
                .collect();
            let (after, _) = core.engine.view();
            let new_fills = core.journal.fills_recorded.saturating_sub(fills_before);
            let mut report = CloseAllReport {
                cancelled_orders: orders_before
                    .into_iter()
                    .map(|o| o.client_order_id)
                    .filter(|id| !open_after.contains(id))
                    .collect(),
                closed_positions: before
                    .positions
                    .iter()
                    .filter(|p| after.position(&p.symbol).is_none())
                    .map(|p| ClosedPosition {
                        symbol: p.symbol.clone(),
                        side: p.side,
                        quantity: p.quantity,
                    })
                    .collect(),
                fills: core
                    .journal
                    .recent_fills
                    .iter()
                    .take(new_fills)
                    .map(|f| ClosingFill {
                        symbol: f.symbol.clone(),
                        side: f.side.as_str().to_string(),
                        quantity: f.quantity,
                        price: f.price,
                        realized_pnl: f.realized_pnl,
                    })
                    .collect(),
                problems: Vec::new(),
            };
            match outcome {
                Outcome::ClosedAll { problems } => report.problems = problems,
                other => report
                    .problems
                    .push(format!("close-all ended unexpectedly: {other:?}")),
            }
            for p in &after.positions {
                if !report
                    .problems
                    .iter()
                    .any(|l| l.contains(p.symbol.0.as_str()))
                {
                    report.problems.push(format!(
                        "{}: a {} position of {} is still open",
                        p.symbol.0,
                        p.side.as_str(),
                        p.quantity
                    ));
                }
            }
            report
        };
        Box::pin(fut.into_actor(self))
    }
}
