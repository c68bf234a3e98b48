//! ExecutionActor: the one place an account's orders, positions and balance change.
//! It drives the account's venue — the paper venue, or the live AsterDEX venue — and
//! turns every change into rows for the Recorder and events for the bus (through the
//! account's [`Journal`]).
//!
//! - **Paper**: TP/SL, liquidation and funding run on every price tick from the
//!   MarketDataHubs, not only at cycle time; every batch carries the paper wallet, so
//!   a restart resumes the same balance and positions.
//! - **Live**: the venue state lives behind an async mutex ([`LiveCore`]) so that
//!   venue calls (which await the network) run one at a time, in the order the
//!   messages arrived: start-up (clock, position mode, leverage, first
//!   reconciliation), the cycle's reconciliation (`GetExecutionView` with a cycle),
//!   execution, and the user data stream's events. The stream runs as a future of
//!   this actor and stops with it.

use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::journal::Journal;
use crate::actors::messages::*;
use crate::actors::recorder::{RecordEquity, RecordExecution, Recorder, StoredAccount};
use crate::config::{AccountConfig, TradingMode};
use crate::db::models::IncomeRow;
use crate::db::queries::ExecutionBatch;
use crate::domain::types::utc_midnight;
use crate::domain::types::{CycleId, Symbol};
use crate::exchange::aster::market::RetryPolicy;
use crate::exchange::aster::sign::Credentials;
use crate::exchange::aster::trade::TradeClient;
use crate::exchange::aster::user_stream::{self, StreamSignal};
use crate::exchange::live::{LiveVenue, StoredLiveState};
use crate::exchange::paper::{PaperVenue, StoredPaperState};
use actix::prelude::*;
use chrono::DateTime;
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;
use slog::{error, info, warn, Logger};
use std::sync::Arc;
use uuid::Uuid;

/// The live venue and its journal, used by one venue call at a time.
pub struct LiveCore {
    /// The venue.
    pub venue: LiveVenue,
    /// Where its changes go.
    pub journal: Journal,
    /// Why the last reconciliation failed, while it does.
    pub venue_error: Option<String>,
    /// Whether the user data stream is connected.
    pub stream_up: bool,
}

enum Engine {
    Paper {
        venue: Box<PaperVenue>,
        journal: Journal,
    },
    Live(Arc<tokio::sync::Mutex<LiveCore>>),
}

/// A message of the user data stream, delivered to the actor.
#[derive(Message)]
#[rtype(result = "()")]
struct Stream(StreamSignal);

/// The order executor of one account.
pub struct ExecutionActor {
    cfg: Arc<AccountConfig>,
    engine: Engine,
    /// The live account's signed client, for its user data stream.
    stream_client: Option<TradeClient>,
    symbols: Vec<Symbol>,
    day_start: Option<(DateTime<Utc>, Decimal)>,
    bus: Addr<EventBus>,
    recorder: Addr<Recorder>,
    log: Logger,
}

impl ExecutionActor {
    /// Rebuilds the executor from the account's stored state.
    pub fn restore(
        cfg: Arc<AccountConfig>,
        stored: StoredAccount,
        bus: Addr<EventBus>,
        recorder: Addr<Recorder>,
        log: &Logger,
    ) -> Result<Self, String> {
        let log = log.new(slog::o!("component" => "execution"));
        let journal = Journal::new(
            cfg.id.clone(),
            bus.clone(),
            recorder.clone(),
            log.clone(),
            stored.recent_fills.clone(),
            stored.recent_diary.clone(),
        );
        let today = utc_midnight(Utc::now());
        let day_start = stored.day_start_equity.map(|e| (today, e));
        let symbols: Vec<Symbol> = cfg.assets.iter().map(|a| a.symbol()).collect();
        let mut stream_client = None;
        let engine = match cfg.mode {
            TradingMode::Paper => {
                let (venue, corrections) = PaperVenue::restore(
                    cfg.id.clone(),
                    &cfg.paper,
                    StoredPaperState {
                        wallet_balance: stored.account.paper_wallet_balance,
                        positions: &stored.positions,
                        working_orders: &stored.working_orders,
                        last_fills: &stored.last_fills,
                    },
                    Utc::now(),
                )?;
                let (view, _) = venue.view();
                info!(log, "paper account loaded";
                    "wallet_balance" => view.wallet_balance.to_string(),
                    "open_positions" => view.positions.len());
                let mut journal = journal;
                journal.commit(corrections, None);
                Engine::Paper {
                    venue: Box::new(venue),
                    journal,
                }
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
                stream_client = Some(client.clone());
                let venue = LiveVenue::restore(
                    cfg.id.clone(),
                    Arc::new(client),
                    cfg.leverage,
                    cfg.asterdex.margin_type.as_str(),
                    StoredLiveState {
                        positions: &stored.positions,
                        working_orders: &stored.working_orders,
                        plans: stored.plans.clone(),
                        last_fills: &stored.last_fills,
                        last_income: stored.last_income,
                    },
                    Utc::now(),
                    log.clone(),
                );
                warn!(log, "LIVE account: orders go to the venue";
                    "venue" => &cfg.asterdex.base_url, "open_positions" => stored.positions.len());
                Engine::Live(Arc::new(tokio::sync::Mutex::new(LiveCore {
                    venue,
                    journal,
                    venue_error: None,
                    stream_up: false,
                })))
            }
        };
        Ok(ExecutionActor {
            cfg,
            engine,
            stream_client,
            symbols,
            day_start,
            bus,
            recorder,
            log,
        })
    }

    fn publish_balance(&self, cycle: Option<CycleId>, data: serde_json::Value) {
        self.bus.do_send(Publish(EventDraft::account(
            Channel::Positions,
            "balance",
            &self.cfg.id,
            cycle,
            data,
        )));
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
        let Engine::Live(core) = &self.engine else {
            return;
        };
        let core = core.clone();
        let symbols = self.symbols.clone();
        let log = self.log.clone();
        // Start-up holds the lock: no cycle runs on a venue that is not set up.
        let start = async move {
            let mut guard = core.lock().await;
            let LiveCore { venue, journal, .. } = &mut *guard;
            venue.start(&symbols, journal).await
        };
        ctx.wait(start.into_actor(self).map(move |result, act, ctx| {
            if let Err(e) = result {
                error!(log, "live account cannot start"; "error" => &e);
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
        let Engine::Live(core) = &self.engine else {
            return;
        };
        let core = core.clone();
        let fut = async move {
            let mut guard = core.lock().await;
            let LiveCore {
                venue,
                journal,
                stream_up,
                ..
            } = &mut *guard;
            match msg.0 {
                StreamSignal::Up => *stream_up = true,
                StreamSignal::Down(_) => *stream_up = false,
                StreamSignal::Event(event) => venue.on_user_event(event, journal).await,
            }
        };
        ctx.spawn(fut.into_actor(self));
    }
}

impl Handler<PriceTick> for ExecutionActor {
    type Result = ();

    fn handle(&mut self, tick: PriceTick, _: &mut Self::Context) {
        match &mut self.engine {
            Engine::Paper { venue, journal } => {
                if let Some(f) = venue.on_funding(
                    &tick.symbol,
                    tick.funding_rate,
                    tick.next_funding_time,
                    tick.mark_price,
                    tick.ts,
                ) {
                    let batch = ExecutionBatch {
                        income: vec![IncomeRow {
                            id: Uuid::now_v7(),
                            ts: f.ts,
                            account_id: self.cfg.id.to_string(),
                            cycle_id: None,
                            symbol: Some(f.symbol.to_string()),
                            kind: "FUNDING_FEE".into(),
                            amount: f.amount,
                            asset: "USDT".into(),
                            venue_tran_id: None,
                            detail: json!({"rate": f.rate, "mark": f.mark,
                                "quantity": f.quantity, "side": f.side}),
                        }],
                        paper_wallet: Some((self.cfg.id.to_string(), venue.wallet_balance())),
                        ..Default::default()
                    };
                    journal.publish(
                        Channel::Positions,
                        "funding",
                        None,
                        Some(tick.symbol.as_str()),
                        serde_json::to_value(&f).unwrap_or_default(),
                    );
                    journal.commit(batch, None);
                }
                let batch = venue.on_price(&tick.symbol, tick.mark_price, tick.ts);
                if batch.paper_wallet.is_some() {
                    journal.publish(
                        Channel::Positions,
                        "balance",
                        None,
                        None,
                        venue.balance_json(),
                    );
                }
                journal.commit(batch, None);
            }
            Engine::Live(core) => {
                // Marks only revalue; a busy venue skips this tick (the next one follows).
                if let Ok(mut core) = core.try_lock() {
                    core.venue.on_mark(&tick.symbol, tick.mark_price);
                }
            }
        }
    }
}

impl Handler<GetExecutionView> for ExecutionActor {
    type Result = ResponseActFuture<Self, ExecutionView>;

    fn handle(&mut self, msg: GetExecutionView, _: &mut Self::Context) -> Self::Result {
        match &mut self.engine {
            Engine::Paper { venue, journal } => {
                let (account, last_trades) = venue.view();
                let view = ExecutionView {
                    last_trades,
                    open_orders: venue.open_orders(),
                    recent_fills: journal.recent_fills.iter().cloned().collect(),
                    recent_diary: journal.recent_diary.iter().cloned().collect(),
                    day_start_equity: None,
                    venue_error: None,
                    account,
                };
                Box::pin(actix::fut::ready(view).map(|mut view, act: &mut Self, _| {
                    view.day_start_equity = act.day_start_equity(view.account.equity);
                    view
                }))
            }
            Engine::Live(core) => {
                let core = core.clone();
                let fut = async move {
                    let mut guard = core.lock().await;
                    let LiveCore {
                        venue,
                        journal,
                        venue_error,
                        ..
                    } = &mut *guard;
                    venue.set_rules(&msg.rules);
                    if let Some(cycle) = msg.reconcile {
                        *venue_error = venue
                            .reconcile(Some(cycle), journal)
                            .await
                            .err()
                            .map(|e| e.to_string());
                    }
                    let (account, last_trades) = venue.view();
                    ExecutionView {
                        last_trades,
                        open_orders: venue.open_orders(),
                        recent_fills: journal.recent_fills.iter().cloned().collect(),
                        recent_diary: journal.recent_diary.iter().cloned().collect(),
                        day_start_equity: None,
                        venue_error: venue_error.clone(),
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
    }
}

impl Handler<Execute> for ExecutionActor {
    type Result = ResponseActFuture<Self, ExecutionReport>;

    fn handle(&mut self, msg: Execute, _: &mut Self::Context) -> Self::Result {
        match &mut self.engine {
            Engine::Paper { venue, journal } => {
                let mut report = ExecutionReport::default();
                for a in &msg.decisions {
                    let now = Utc::now();
                    let symbol = &a.snapshot.symbol;
                    if let Some(tick) = msg.rules.get(symbol).and_then(|r| r.tick_size) {
                        venue.set_tick_size(symbol, tick);
                    }
                    // The snapshot's mark first: a TP/SL crossed since the last tick
                    // fires before a new order is placed.
                    let pre = venue.on_price(symbol, a.snapshot.mark_price, now);
                    journal.commit(pre, Some(msg.cycle_id));
                    let batch = venue.execute(
                        msg.cycle_id,
                        a.decision_id,
                        &a.decision,
                        a.snapshot.last_price,
                        msg.rules.get(symbol),
                        self.cfg.leverage,
                        now,
                    );
                    report.orders += batch
                        .orders
                        .iter()
                        .filter(|o| o.status != "CANCELED")
                        .count();
                    report.fills += batch.fills.len();
                    if batch.paper_wallet.is_some() {
                        journal.publish(
                            Channel::Positions,
                            "balance",
                            Some(msg.cycle_id),
                            None,
                            venue.balance_json(),
                        );
                    }
                    journal.commit(batch, Some(msg.cycle_id));
                }
                let (marks, equity) = venue.mark_to_market(msg.cycle_id, Utc::now());
                // Revalued positions are stored, not published: the balance event
                // carries it.
                if !marks.is_empty() {
                    self.recorder.do_send(RecordExecution(marks));
                }
                self.publish_balance(
                    Some(msg.cycle_id),
                    json!({
                        "wallet_balance": equity.wallet_balance,
                        "unrealized_pnl": equity.unrealized_pnl,
                        "equity": equity.equity,
                        "used_margin": equity.used_margin,
                        "available": equity.available,
                    }),
                );
                self.recorder.do_send(RecordEquity(equity));
                Box::pin(actix::fut::ready(report))
            }
            Engine::Live(core) => {
                let core = core.clone();
                let leverage_log = self.log.clone();
                let fut = async move {
                    let mut guard = core.lock().await;
                    let LiveCore { venue, journal, .. } = &mut *guard;
                    let mut report = ExecutionReport::default();
                    venue.set_rules(&msg.rules);
                    for a in &msg.decisions {
                        let symbol = &a.snapshot.symbol;
                        venue.on_mark(symbol, a.snapshot.mark_price);
                        let fills_before = journal.recent_fills.len();
                        report.orders += venue
                            .execute(
                                msg.cycle_id,
                                a.decision_id,
                                &a.decision,
                                a.snapshot.last_price,
                                msg.rules.get(symbol),
                                journal,
                            )
                            .await;
                        report.fills += journal.recent_fills.len().saturating_sub(fills_before);
                    }
                    let (marks, equity) = venue.equity(msg.cycle_id, Utc::now());
                    let balance = venue.balance_json();
                    (report, marks, equity, balance)
                };
                Box::pin(fut.into_actor(self).map(move |(report, marks, equity, balance), act, _| {
                    if !marks.is_empty() {
                        act.recorder.do_send(RecordExecution(marks));
                    }
                    act.publish_balance(Some(msg.cycle_id), balance);
                    act.recorder.do_send(RecordEquity(equity));
                    slog::debug!(leverage_log, "live cycle executed"; "orders" => report.orders);
                    report
                }))
            }
        }
    }
}

impl Handler<CloseAll> for ExecutionActor {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> Self::Result {
        match &mut self.engine {
            Engine::Paper { venue, journal } => {
                let batch = venue.close_all(&msg.reason, Utc::now());
                if batch.paper_wallet.is_some() {
                    journal.publish(
                        Channel::Positions,
                        "balance",
                        None,
                        None,
                        venue.balance_json(),
                    );
                }
                journal.commit(batch, None);
                Box::pin(actix::fut::ready(Ok(())))
            }
            Engine::Live(core) => {
                let core = core.clone();
                let fut = async move {
                    let mut guard = core.lock().await;
                    let LiveCore { venue, journal, .. } = &mut *guard;
                    let problems = venue.close_all(&msg.reason, journal).await;
                    if problems.is_empty() {
                        Ok(())
                    } else {
                        Err(problems.join("; "))
                    }
                };
                Box::pin(fut.into_actor(self))
            }
        }
    }
}
