//! ExecutionActor: the one place an account's orders, positions and balance change.
//! It drives the account's venue through one engine ([`LiveVenue`] over the
//! [`Exchange`] trait) whatever the venue is —
//! AsterDEX for `mode: live`, the simulated exchange ([`SimExchange`]) for paper — and
//! every change becomes rows and events (published once the rows are durable) in the
//! store through the account's [`Journal`].
//!
//! The engine lives behind an async mutex ([`Core`]) so that venue calls (which await
//! the network for a live account) run one at a time, in the order the messages
//! arrived: start-up (clock, position mode, leverage, first reconciliation), price
//! ticks (a paper venue's TP/SL, liquidation and funding fire on every tick, not only
//! at cycle time), the cycle's reconciliation (`GetExecutionView` with a cycle),
//! execution, and a live account's user data stream, which runs as a future of this
//! actor and stops with it.
//!
//! Invariant (paper): every change of the simulated wallet is persisted with the rows
//! of the step, so a restart resumes the same balance and positions.

use crate::actors::account::StoredAccount;
use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::journal::Journal;
use crate::actors::messages::*;
use crate::config::{AccountConfig, TradingMode};
use crate::db::queries::ExecutionBatch;
use crate::domain::paper::PaperSettings;
use crate::domain::types::utc_midnight;
use crate::domain::types::Symbol;
use crate::exchange::aster::market::RetryPolicy;
use crate::exchange::aster::sign::Credentials;
use crate::exchange::aster::trade::TradeClient;
use crate::exchange::aster::user_stream::{self, StreamSignal};
use crate::exchange::live::{LiveVenue, StoredLiveState};
use crate::exchange::sim::{order_from_row, position_from_row, SimExchange};
use crate::exchange::venue::{is_open_status, Exchange};
use crate::store::{Rows, Store, Write};
use actix::prelude::*;
use chrono::DateTime;
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;
use slog::{error, info, warn, Logger};
use std::sync::Arc;

/// The account's engine and journal, used by one venue call at a time.
pub struct Core {
    /// The engine.
    pub venue: LiveVenue,
    /// Where its changes go.
    pub journal: Journal,
    /// The simulated exchange of a paper account (its market-driven events).
    pub sim: Option<Arc<SimExchange>>,
    /// Why the last reconciliation failed, while it does.
    pub venue_error: Option<String>,
    account_id: String,
}

impl Core {
    /// Applies what the simulated exchange did on its own (trigger fills,
    /// liquidations, funding) and persists its wallet when it changed.
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
                self.venue.on_user_event(event, &mut self.journal).await;
            }
        }
        if let Some(wallet) = sim.take_wallet_change() {
            self.journal.commit(
                ExecutionBatch {
                    paper_wallet: Some((self.account_id.clone(), wallet)),
                    ..Default::default()
                },
                None,
            );
        }
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
    store: Store,
    log: Logger,
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
        let journal = Journal::new(
            cfg.id.clone(),
            store.clone(),
            log.clone(),
            stored.recent_fills.clone(),
            stored.recent_diary.clone(),
        );
        let today = utc_midnight(Utc::now());
        let day_start = stored.day_start_equity.map(|e| (today, e));
        let symbols: Vec<Symbol> = cfg.assets.iter().map(|a| a.symbol()).collect();
        let (exchange, sim, stream_client): (Arc<dyn Exchange>, _, _) = match cfg.mode {
            TradingMode::Paper => {
                let positions = stored
                    .positions
                    .iter()
                    .map(position_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                let working = stored
                    .working_orders
                    .iter()
                    .filter(|o| is_open_status(&o.status))
                    .map(order_from_row)
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
                    "open_positions" => stored.positions.len());
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
                    "venue" => &cfg.asterdex.base_url, "open_positions" => stored.positions.len());
                (Arc::new(client.clone()), None, Some(client))
            }
        };
        let venue = LiveVenue::restore(
            cfg.id.clone(),
            exchange,
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
        let core = Core {
            venue,
            journal,
            sim,
            venue_error: None,
            account_id: cfg.id.to_string(),
        };
        Ok(ExecutionActor {
            cfg,
            core: Arc::new(tokio::sync::Mutex::new(core)),
            stream_client,
            symbols,
            day_start,
            bus,
            store,
            log,
        })
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
        let core = self.core.clone();
        let symbols = self.symbols.clone();
        let log = self.log.clone();
        // Start-up holds the lock: no cycle runs on a venue that is not set up.
        let start = async move {
            let mut guard = core.lock().await;
            let Core { venue, journal, .. } = &mut *guard;
            let started = venue.start(&symbols, journal).await;
            journal.flushed().await;
            started
        };
        ctx.wait(start.into_actor(self).map(move |result, act, ctx| {
            if let Err(e) = result {
                error!(log, "the account's venue cannot start"; "error" => &e);
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
            let mut guard = core.lock().await;
            let Core { venue, journal, .. } = &mut *guard;
            match msg.0 {
                StreamSignal::Up => venue.set_stream_up(true),
                StreamSignal::Down(_) => venue.set_stream_up(false),
                StreamSignal::Event(event) => venue.on_user_event(event, journal).await,
            }
            journal.flushed().await;
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
            }
            core.venue.on_mark(&tick.symbol, tick.mark_price);
            core.journal.flushed().await;
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
            let mut guard = core.lock().await;
            if let Some(sim) = &guard.sim {
                sim.set_rules(&msg.rules);
            }
            let Core {
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
            let view = ExecutionView {
                last_trades,
                open_orders: venue.open_orders(),
                recent_fills: journal.recent_fills.iter().cloned().collect(),
                recent_diary: journal.recent_diary.iter().cloned().collect(),
                day_start_equity: None,
                venue_error: venue_error.clone(),
                account,
            };
            guard.settle().await;
            guard.journal.flushed().await;
            view
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
        let (store, account_id) = (self.store.clone(), self.cfg.id.clone());
        let fut = async move {
            let mut guard = core.lock().await;
            let mut report = ExecutionReport::default();
            guard.venue.set_rules(&msg.rules);
            if let Some(sim) = &guard.sim {
                sim.set_rules(&msg.rules);
            }
            for a in &msg.decisions {
                let symbol = &a.snapshot.symbol;
                // The snapshot's mark first: a paper TP/SL crossed since the last tick
                // fires before a new order is placed.
                if let Some(sim) = guard.sim.clone() {
                    sim.on_price(symbol, a.snapshot.mark_price, Utc::now());
                    guard.settle().await;
                }
                let Core { venue, journal, .. } = &mut *guard;
                venue.on_mark(symbol, a.snapshot.mark_price);
                let fills_before = journal.fills_announced;
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
                guard.settle().await;
                report.fills += guard.journal.fills_announced.saturating_sub(fills_before);
            }
            let (marks, equity) = guard.venue.equity(msg.cycle_id, Utc::now());
            let balance = guard.venue.balance_json();
            guard.journal.flushed().await;
            // Revalued positions are stored, not published: the balance event carries
            // it. Queued behind the cycle's other rows, before the cycle completes.
            let mut rows = Vec::new();
            if !marks.is_empty() {
                rows.push(Rows::Execution(marks));
            }
            rows.push(Rows::Equity(equity));
            let balance = EventDraft::account(
                Channel::Positions,
                "balance",
                &account_id,
                Some(msg.cycle_id),
                balance,
            );
            // Refused only once the store is closed (shutdown).
            let _ = store.write(Write::new(rows, vec![balance])).await;
            report
        };
        Box::pin(fut.into_actor(self))
    }
}

impl Handler<CloseAll> for ExecutionActor {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        let fut = async move {
            let mut guard = core.lock().await;
            let Core { venue, journal, .. } = &mut *guard;
            let problems = venue.close_all(&msg.reason, journal).await;
            guard.settle().await;
            guard.journal.flushed().await;
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        };
        Box::pin(fut.into_actor(self))
    }
}
