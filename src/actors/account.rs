//! Account: one per configured account, the root of its tree on one arbiter of the
//! pool (see `actors/tree.rs`). It owns the account's cadence and run state and drives
//! one cycle per interval:
//!
//! 1. ask the MarketDataHubs of its assets for their latest snapshots (skip the cycle,
//!    with the reason, when one is missing or stale);
//! 2. ask the ExecutionActor for balance, positions and last trades;
//! 3. ask the DecisionActor for risk-checked decisions;
//! 4. hand the approved ones to the ExecutionActor, which also records the equity.
//!
//! Invariants: at most one cycle in flight; a `cycle_id` ties every row, event and log
//! line of the cycle together; if a child actor dies (a panic), the Account stops
//! itself so that the Supervisor restarts the whole tree from the database. The
//! stored state is read through the store ([`load_account`] after `settled`), so a
//! restarted account reads after its own last writes, and `cycle_completed` goes
//! through the store too: it is announced only once the cycle's rows are durable.

use crate::actors::brief::AccountBrief;
use crate::actors::decision::{DecisionActor, DecisionSource, ModelEngine};
use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::execution::ExecutionActor;
use crate::actors::market_data::MarketDataHub;
use crate::actors::messages::*;
use crate::actors::tree::{Tree, TreeGuard};
use crate::config::{AccountConfig, LlmGlobalSettings};
use crate::db::models::{AccountRow, DiaryEntryRow, FillRow, OrderRow, PositionRow};
use crate::db::queries;
use crate::domain::cadence;
use crate::domain::policy::BuiltinPolicy;
use crate::domain::types::{Asset, CycleId, Symbol};
use crate::store::{Rows, Store, Write};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use diesel::{PgConnection, QueryResult};
use rust_decimal::Decimal;
use slog::{error, info, warn, Logger};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How fresh the market data of an LLM account's decision must be.
const LLM_DATA_MAX_AGE: Duration = Duration::from_secs(5);

/// How many recent fills and diary entries an account keeps at hand (prompt context).
pub const RECENT_HISTORY: i64 = 10;

/// What an account needs to resume, as stored: paper wallet, open positions, working
/// orders, recent history.
#[derive(Debug, Clone)]
pub struct StoredAccount {
    /// The account row.
    pub account: AccountRow,
    /// Its open positions.
    pub positions: Vec<PositionRow>,
    /// Its working orders (resting TP/SL).
    pub working_orders: Vec<OrderRow>,
    /// Last fill time per symbol.
    pub last_fills: Vec<(String, DateTime<Utc>)>,
    /// The newest fills, newest first.
    pub recent_fills: Vec<FillRow>,
    /// The newest diary entries, newest first.
    pub recent_diary: Vec<DiaryEntryRow>,
    /// Equity at the start of the current UTC day, if a snapshot exists.
    pub day_start_equity: Option<Decimal>,
    /// Model spending since 00:00 UTC.
    pub llm_cost_today: Decimal,
    /// Exit plans of the working orders' decisions, by client order id (a live entry
    /// whose answer was lost gets its TP/SL from here).
    pub plans: HashMap<String, crate::engine::EntryPlan>,
    /// Time of the newest income record.
    pub last_income: Option<DateTime<Utc>>,
}

/// Reads what account `id` needs to resume; `None` when it is not registered.
pub fn load_account(conn: &mut PgConnection, id: &str) -> QueryResult<Option<StoredAccount>> {
    let Some(account) = queries::find_account(conn, id)? else {
        return Ok(None);
    };
    let positions = queries::open_positions(conn, id)?;
    let working_orders = queries::working_orders(conn, id)?;
    let last_fills = queries::last_fill_times(conn, id)?;
    let recent_fills = queries::recent_fills(conn, id, RECENT_HISTORY)?;
    let recent_diary = queries::recent_diary(conn, id, RECENT_HISTORY)?;
    let today = crate::domain::types::utc_midnight(Utc::now());
    let day_start_equity = queries::first_equity_since(conn, id, today)?;
    let llm_cost_today = queries::llm_cost_since(conn, id, today)?;
    let decision_ids: Vec<uuid::Uuid> = working_orders
        .iter()
        .filter_map(|o| o.decision_id)
        .collect();
    let by_decision: HashMap<_, _> = queries::decision_plans(conn, &decision_ids)?
        .into_iter()
        .map(|(id, tp, sl, words)| (id, (tp, sl, words)))
        .collect();
    let plans = working_orders
        .iter()
        .filter(|o| o.order_type == "MARKET" && !o.reduce_only)
        .filter_map(|o| {
            let (tp, sl, words) = by_decision.get(&o.decision_id?)?.clone();
            Some((
                o.client_order_id.clone(),
                crate::engine::EntryPlan {
                    tp_price: tp,
                    sl_price: sl,
                    exit_plan: words,
                },
            ))
        })
        .collect();
    let last_income = queries::last_income_time(conn, id)?;
    Ok(Some(StoredAccount {
        account,
        positions,
        working_orders,
        last_fills,
        recent_fills,
        recent_diary,
        day_start_equity,
        llm_cost_today,
        plans,
        last_income,
    }))
}

/// The global kill switch: one flag the Supervisor sets and every account reads at
/// each cycle (and passes to its risk rules), so turning it on halts new exposure
/// everywhere at the next decision without a message per account.
#[derive(Clone, Debug, Default)]
pub struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    /// A switch, on or off.
    pub fn new(on: bool) -> Self {
        KillSwitch(Arc::new(AtomicBool::new(on)))
    }

    /// Whether it is on.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Turns it on or off.
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }
}

/// Process-wide settings every account tree needs.
#[derive(Clone, Debug)]
pub struct SharedSettings {
    /// The global kill switch.
    pub kill_switch: KillSwitch,
    /// Settings of the LLM accounts (attribution headers, price table).
    pub llm: LlmGlobalSettings,
    /// The window the accounts' first cycles spread over when the daemon starts (it
    /// grows with the number of accounts, so thousands do not all begin at once).
    pub startup_spread: Duration,
}

/// Retry period of a skipped cycle before the first one completed.
const STARTUP_RETRY: Duration = Duration::from_secs(2);
/// At most this many start-up retries (one minute); then the interval rules.
const STARTUP_RETRIES: u32 = 30;

/// Why a cycle did not complete.
#[derive(Debug)]
enum CycleError {
    /// Not enough fresh market data: the cycle is skipped.
    Skipped(String),
    /// A child actor is gone: the account tree must restart.
    ChildDied(String),
}

/// The root of one account's actor tree.
pub struct Account {
    cfg: Arc<AccountConfig>,
    shared: Arc<SharedSettings>,
    llm_log: Logger,
    hubs: Vec<(Asset, Addr<MarketDataHub>)>,
    decision: Option<Addr<DecisionActor>>,
    execution: Option<Addr<ExecutionActor>>,
    bus: Addr<EventBus>,
    store: Store,
    log: Logger,
    state: &'static str,
    /// The operator paused it: cycles run, entries are refused (exits keep working).
    paused: bool,
    in_flight: Option<CycleId>,
    drain_waiters: Vec<oneshot::Sender<()>>,
    /// Waiting for the cycle in flight to end (pause, close-all).
    idle_waiters: Vec<oneshot::Sender<()>>,
    cycles_completed: u64,
    cycles_skipped: u64,
    cycles_failed: u64,
    /// The tree of this account (the Account, its DecisionActor and ExecutionActor).
    tree: TreeGuard,
    last_cycle: Option<CycleSummary>,
    last_error: Option<String>,
    /// What the Supervisor counts without asking: the state and whether `last_error` is set.
    brief: Arc<AccountBrief>,
    restarts: u32,
    startup_retries: u32,
    started_at: Option<DateTime<Utc>>,
}

impl Account {
    /// An account tree for `cfg`, fed by `hubs` (one per asset); `paused` as the
    /// operator left it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Arc<AccountConfig>,
        paused: bool,
        shared: Arc<SharedSettings>,
        hubs: Vec<(Asset, Addr<MarketDataHub>)>,
        bus: Addr<EventBus>,
        store: Store,
        restarts: u32,
        log: &Logger,
        llm_log: &Logger,
    ) -> Self {
        let log = log.new(slog::o!("component" => "account", "account_id" => cfg.id.to_string()));
        Account {
            cfg,
            shared,
            llm_log: llm_log.clone(),
            hubs,
            decision: None,
            execution: None,
            bus,
            store,
            log,
            state: "starting",
            paused,
            in_flight: None,
            drain_waiters: Vec::new(),
            idle_waiters: Vec::new(),
            cycles_completed: 0,
            cycles_skipped: 0,
            cycles_failed: 0,
            tree: Tree::new().guard(),
            last_cycle: None,
            last_error: None,
            brief: Arc::default(),
            restarts,
            startup_retries: 0,
            started_at: None,
        }
    }

    /// Shares the account's state and error flag through `brief` (the slot's, kept across
    /// restarts): it reads `starting` and no error from here on.
    pub fn with_brief(mut self, brief: Arc<AccountBrief>) -> Self {
        brief.set_state(self.state);
        brief.set_error(false);
        self.brief = brief;
        self
    }

    /// Sets the error the account reports (or clears it), and the brief's flag.
    fn set_last_error(&mut self, error: Option<String>) {
        self.brief.set_error(error.is_some());
        self.last_error = error;
    }

    /// Makes the account the root of `tree`: its children join it, and the whole tree
    /// stops when any member ends.
    pub fn in_tree(mut self, tree: &Tree) -> Self {
        self.tree = tree.guard();
        self
    }

    fn event(
        &self,
        kind: &'static str,
        cycle: Option<CycleId>,
        data: serde_json::Value,
    ) -> EventDraft {
        EventDraft::account(Channel::TradingEvents, kind, &self.cfg.id, cycle, data)
    }

    fn publish(&self, kind: &'static str, cycle: Option<CycleId>, data: serde_json::Value) {
        self.bus.do_send(Publish(self.event(kind, cycle, data)));
    }

    /// Queues `w` behind the account's earlier writes. The account does not wait for
    /// room: these are a few rows per cycle, and its children wait for theirs.
    fn record(&self, w: Write) {
        drop(self.store.write(w));
    }

    fn set_state(&mut self, state: &'static str) {
        self.state = state;
        self.brief.set_state(state);
        let event = self.event(
            "account_status",
            None,
            serde_json::json!({"state": state, "restarts": self.restarts}),
        );
        self.record(Write::new(
            vec![Rows::AccountStatus {
                account_id: self.cfg.id.to_string(),
                status: state.to_string(),
            }],
            vec![event],
        ));
    }

    fn start_cycle(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.state, "active" | "paused") {
            return;
        }
        if let Some(running) = self.in_flight {
            self.cycles_skipped += 1;
            warn!(self.log, "previous cycle still running; skipping this tick";
                "cycle_id" => running.to_string());
            return;
        }
        let (Some(decision), Some(execution)) = (self.decision.clone(), self.execution.clone())
        else {
            return;
        };
        let cycle_id = CycleId::new();
        self.in_flight = Some(cycle_id);
        let started = Instant::now();
        let started_at = Utc::now();
        self.publish("cycle_started", Some(cycle_id), serde_json::json!({}));
        let hubs = self.hubs.clone();
        let max_age = self.max_snapshot_age();
        let fresh = BuiltinPolicy::from_model(&self.cfg.llm_model)
            .is_none()
            .then_some(LLM_DATA_MAX_AGE);
        let paused = self.paused;
        let kill_switch = self.shared.kill_switch.clone();
        let fut = async move {
            // 1. Market data.
            let mut snapshots = Vec::new();
            let mut rules = HashMap::new();
            for (asset, hub) in &hubs {
                let view = hub.send(GetHubView { max_age: fresh }).await.map_err(|e| {
                    CycleError::Skipped(format!("{asset}: market data hub unavailable: {e}"))
                })?;
                let last_error = view.status.last_error.clone();
                let snap = view.snapshot.ok_or_else(|| {
                    CycleError::Skipped(format!(
                        "{asset}: no market data yet{}",
                        last_error
                            .clone()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    ))
                })?;
                let age = snap.age(Utc::now());
                if age > max_age {
                    return Err(CycleError::Skipped(format!(
                        "{asset}: market data is {}s old (limit {}s){}",
                        age.num_seconds(),
                        max_age.num_seconds(),
                        last_error
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    )));
                }
                if let Some(r) = view.rules {
                    rules.insert(Symbol(snap.symbol.0.clone()), r);
                }
                snapshots.push(snap);
            }
            // 2. Account state: the paper venue is its own truth; a live venue is
            //    reconciled with the exchange first (exchange authoritative).
            let view = execution
                .send(GetExecutionView {
                    reconcile: Some(cycle_id),
                    rules: rules.clone(),
                })
                .await
                .map_err(|e| CycleError::ChildDied(format!("execution actor: {e}")))?;
            if let Some(e) = &view.venue_error {
                return Err(CycleError::Skipped(format!(
                    "the venue could not be reconciled: {e}"
                )));
            }
            // 3. Decisions through the risk rules.
            let approved = decision
                .send(Decide {
                    cycle_id,
                    snapshots,
                    view,
                    paused,
                    global_kill_switch: kill_switch.is_on(),
                })
                .await
                .map_err(|e| CycleError::ChildDied(format!("decision actor: {e}")))?;
            let mut counts: HashMap<String, usize> = HashMap::new();
            counts.insert("approved".into(), approved.len());
            // 4. Execution.
            let report = execution
                .send(Execute {
                    cycle_id,
                    decisions: approved,
                    rules,
                })
                .await
                .map_err(|e| CycleError::ChildDied(format!("execution actor: {e}")))?;
            Ok((counts, report))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.in_flight = None;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let mut summary = CycleSummary {
                cycle_id,
                started_at,
                duration_ms,
                outcome: "completed".into(),
                decisions: HashMap::new(),
                orders: 0,
                fills: 0,
            };
            match res {
                Ok((counts, report)) => {
                    act.cycles_completed += 1;
                    summary.decisions = counts;
                    summary.orders = report.orders;
                    summary.fills = report.fills;
                    act.set_last_error(None);
                    info!(act.log, "cycle completed"; "cycle_id" => cycle_id.to_string(),
                        "duration_ms" => duration_ms, "orders" => report.orders,
                        "fills" => report.fills);
                    // Behind the cycle's rows in the queue: announced once they are durable.
                    let done = act.event(
                        "cycle_completed",
                        Some(cycle_id),
                        serde_json::to_value(&summary).unwrap_or_default(),
                    );
                    act.record(Write::events(vec![done]));
                }
                Err(CycleError::Skipped(reason)) => {
                    act.cycles_skipped += 1;
                    summary.outcome = "skipped".into();
                    warn!(act.log, "cycle skipped"; "cycle_id" => cycle_id.to_string(),
                        "reason" => &reason);
                    act.publish(
                        "cycle_skipped",
                        Some(cycle_id),
                        serde_json::json!({"reason": reason}),
                    );
                    act.set_last_error(Some(reason));
                    // Until the first cycle completes (market data still arriving at
                    // start-up), try again soon instead of a whole interval later.
                    if act.cycles_completed == 0
                        && act.cfg.interval.duration > STARTUP_RETRY
                        && act.startup_retries < STARTUP_RETRIES
                    {
                        act.startup_retries += 1;
                        ctx.run_later(STARTUP_RETRY, |act, ctx| act.start_cycle(ctx));
                    }
                }
                Err(CycleError::ChildDied(reason)) => {
                    act.cycles_failed += 1;
                    summary.outcome = "failed".into();
                    error!(act.log, "cycle failed: a child actor died; restarting the account";
                        "cycle_id" => cycle_id.to_string(), "reason" => &reason);
                    act.publish(
                        "cycle_failed",
                        Some(cycle_id),
                        serde_json::json!({"reason": reason}),
                    );
                    act.set_last_error(Some(reason));
                    ctx.stop();
                }
            }
            act.last_cycle = Some(summary);
            for w in act.idle_waiters.drain(..) {
                let _ = w.send(());
            }
            if act.state == "stopping" {
                act.finish_drain();
            }
        }));
    }

    /// A snapshot older than this is stale: twice the interval, at least two polls.
    fn max_snapshot_age(&self) -> chrono::Duration {
        let interval = self.cfg.interval.duration;
        let floor = Duration::from_secs(10);
        chrono::Duration::from_std((interval * 2).max(floor).min(Duration::from_secs(600)))
            .unwrap_or_else(|_| chrono::Duration::seconds(600))
    }

    fn finish_drain(&mut self) {
        if self.in_flight.is_none() {
            if self.state != "stopped" {
                self.set_state("stopped");
            }
            for w in self.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

impl Actor for Account {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tree.tree().clone().watch(self, ctx);
        self.started_at = Some(Utc::now());
        info!(self.log, "account starting"; "mode" => self.cfg.mode.as_str(),
            "llm_model" => &self.cfg.llm_model, "interval" => &self.cfg.interval.label,
            "restarts" => self.restarts);
        let id = self.cfg.id.clone();
        // After every write queued before it (a restart reads its own last writes).
        let load = self.store.read(move |conn| load_account(conn, id.as_str()));
        // Nothing else runs until the stored state is loaded.
        ctx.wait(load.into_actor(self).map(|res, act, ctx| {
            let stored = match res {
                Ok(Some(s)) => s,
                Ok(None) => {
                    error!(act.log, "could not load the account's stored state";
                        "error" => "the account is not registered in the database");
                    ctx.stop();
                    return;
                }
                Err(e) => {
                    error!(act.log, "could not load the account's stored state";
                        "error" => e.to_string());
                    ctx.stop();
                    return;
                }
            };
            let spent_today = stored.llm_cost_today;
            let execution = match ExecutionActor::restore(
                act.cfg.clone(),
                stored,
                act.bus.clone(),
                act.store.clone(),
                &act.log,
            ) {
                Ok(e) => e.in_tree(act.tree.tree()).start(),
                Err(e) => {
                    error!(act.log, "stored paper state is inconsistent"; "error" => e);
                    ctx.stop();
                    return;
                }
            };
            for (_, hub) in &act.hubs {
                hub.do_send(WatchSymbol {
                    account_id: act.cfg.id.clone(),
                    interval: act.cfg.interval.duration,
                    ticks: execution.clone().recipient(),
                });
            }
            act.execution = Some(execution);
            let source = match BuiltinPolicy::from_model(&act.cfg.llm_model) {
                Some(policy) => DecisionSource::Builtin(policy),
                None => match ModelEngine::new(&act.cfg, &act.shared.llm) {
                    Ok(engine) => DecisionSource::Model(Box::new(engine)),
                    Err(e) => {
                        error!(act.log, "cannot set up the model client"; "error" => e);
                        ctx.stop();
                        return;
                    }
                },
            };
            act.decision = Some(
                DecisionActor::new(
                    act.cfg.clone(),
                    source,
                    act.shared.kill_switch.is_on(),
                    spent_today,
                    act.store.clone(),
                    &act.llm_log,
                )
                .in_tree(act.tree.tree())
                .start(),
            );
            act.set_state(if act.paused { "paused" } else { "active" });
            // The first cycle soon (the hubs' data arrive about then); the next ones at
            // the account's own offset within its interval, so that many accounts spread
            // their cycles over the interval (domain::cadence).
            let interval = act.cfg.interval.duration;
            // A restarted account (a crash) comes back soon; at daemon start the first
            // cycles of all accounts spread over the shared window.
            let spread = if act.restarts == 0 {
                act.shared.startup_spread
            } else {
                cadence::STARTUP_SPREAD
            };
            let first = cadence::first_delay(act.cfg.id.as_str(), interval, spread);
            ctx.run_later(first, |act, ctx| act.start_cycle(ctx));
            let offset = cadence::offset(act.cfg.id.as_str(), interval);
            let mut next = cadence::until_next(Utc::now().timestamp_millis(), interval, offset);
            if next < first + (interval / 2).min(Duration::from_secs(1)) {
                // Too close behind the first cycle: the one after.
                next += interval;
            }
            ctx.run_later(next, move |act, ctx| {
                act.start_cycle(ctx);
                ctx.run_interval(interval, |act, ctx| act.start_cycle(ctx));
            });
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for (_, hub) in &self.hubs {
            hub.do_send(UnwatchSymbol(self.cfg.id.clone()));
        }
        if let Some(cycle) = self.in_flight.take() {
            // The tree went down under a cycle (a member crashed): it failed.
            let reason = "the account's actor tree stopped during the cycle (a member crashed)";
            error!(self.log, "cycle failed"; "cycle_id" => cycle.to_string(), "reason" => reason);
            self.publish(
                "cycle_failed",
                Some(cycle),
                serde_json::json!({"reason": reason}),
            );
            self.set_last_error(Some(reason.to_string()));
        }
        if self.state != "stopped" {
            self.publish(
                "account_status",
                None,
                serde_json::json!({"state": "crashed", "restarts": self.restarts,
                    "last_error": self.last_error}),
            );
        }
        info!(self.log, "account stopped"; "state" => self.state);
    }
}

impl Handler<GetAccountStatus> for Account {
    type Result = ResponseFuture<AccountStatus>;

    fn handle(&mut self, _: GetAccountStatus, _: &mut Self::Context) -> Self::Result {
        let mut status = AccountStatus {
            account_id: self.cfg.id.clone(),
            state: self.state.to_string(),
            mode: self.cfg.mode.as_str().to_string(),
            llm_model: self.cfg.llm_model.clone(),
            interval: self.cfg.interval.label.clone(),
            cycles_completed: self.cycles_completed,
            cycles_skipped: self.cycles_skipped,
            cycles_failed: self.cycles_failed,
            cycle_in_flight: self.in_flight,
            last_cycle: self.last_cycle.clone(),
            last_error: self.last_error.clone(),
            restarts: self.restarts,
            balance: None,
            decision: None,
            started_at: self.started_at,
        };
        let execution = self.execution.clone();
        let decision = self.decision.clone();
        Box::pin(async move {
            if let Some(exec) = execution {
                if let Ok(view) = exec.send(GetExecutionView::default()).await {
                    status.balance = Some(view.account);
                }
            }
            if let Some(d) = decision {
                status.decision = d.send(GetDecisionStatus).await.ok();
            }
            status
        })
    }
}

impl Handler<Drain> for Account {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        if self.state != "stopped" {
            self.set_state("stopping");
        }
        self.finish_drain();
        let execution = self.execution.clone();
        Box::pin(async move {
            let _ = rx.await;
            // Price ticks queued before the hubs stopped are processed (and their
            // writes queued in the store) before the account reports drained.
            if let Some(exec) = execution {
                let _ = exec.send(GetExecutionView::default()).await;
            }
        })
    }
}

impl Account {
    /// Resolves once no cycle is in flight (at once when none is).
    fn idle(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if self.in_flight.is_none() {
            let _ = tx.send(());
        } else {
            self.idle_waiters.push(tx);
        }
        rx
    }
}

impl Handler<SetPaused> for Account {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: SetPaused, _: &mut Self::Context) -> Self::Result {
        self.paused = msg.0;
        if msg.0 {
            info!(self.log, "account paused: no new entries");
        } else {
            info!(self.log, "account resumed");
        }
        if matches!(self.state, "active" | "paused") {
            self.set_state(if msg.0 { "paused" } else { "active" });
        }
        // A cycle that decided before the pause may still open: answer after it.
        let idle = self.idle();
        Box::pin(async move {
            let _ = idle.await;
        })
    }
}

impl Handler<FlattenAccount> for Account {
    type Result = ResponseFuture<CloseAllReport>;

    fn handle(&mut self, msg: FlattenAccount, _: &mut Self::Context) -> Self::Result {
        let idle = self.idle();
        let execution = self.execution.clone();
        let log = self.log.clone();
        info!(log, "close-all requested"; "reason" => &msg.reason);
        Box::pin(async move {
            let _ = idle.await;
            let Some(exec) = execution else {
                return CloseAllReport {
                    problems: vec!["the account has not started yet (no execution actor)".into()],
                    ..CloseAllReport::default()
                };
            };
            match exec.send(CloseAll { reason: msg.reason }).await {
                Ok(report) => {
                    info!(log, "close-all done"; "cancelled_orders" => report.cancelled_orders.len(),
                        "closed_positions" => report.closed_positions.len(),
                        "fills" => report.fills.len(), "problems" => report.problems.join("; "));
                    report
                }
                Err(e) => CloseAllReport {
                    problems: vec![format!("execution actor: {e}")],
                    ..CloseAllReport::default()
                },
            }
        })
    }
}
