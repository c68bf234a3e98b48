//! The message contract between the actors (and the API facade). Handlers stay thin:
//! receive, call domain code, send.

use crate::actors::events::{BusEvent, EventDraft, EventFilter};
use crate::domain::decision::{AccountView, TradeDecision};
use crate::domain::instrument::SymbolRules;
use crate::domain::snapshot::MarketSnapshot;
use crate::domain::types::{AccountId, CycleId, Symbol};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

// ---- EventBus ----------------------------------------------------------------------

/// Publish an event to every subscriber whose filter accepts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub EventDraft);

/// A stamped event delivered to a subscriber (a WebSocket session).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver(pub Arc<BusEvent>);

/// Tells a subscriber the bus dropped it (it could not keep up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evicted {
    /// Why.
    pub reason: String,
}

/// Register a subscriber; the reply is its subscription id.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Subscribe {
    /// What it wants.
    pub filter: EventFilter,
    /// Where events go (bounded mailbox: a full one means "too slow").
    pub events: Recipient<Deliver>,
    /// Where the eviction notice goes.
    pub evicted: Recipient<Evicted>,
}

/// Remove a subscriber.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub u64);

/// End the subscriptions opened with these API keys (by name): a reload removed them
/// or changed what they grant. Each session is told why and closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RevokeKeys(pub Vec<String>);

/// Number of live subscribers (status page, tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SubscriberCount;

// ---- MarketDataHub -----------------------------------------------------------------

/// A new price for a symbol (drives paper TP/SL between cycles).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct PriceTick {
    /// Symbol.
    pub symbol: Symbol,
    /// Last traded price.
    pub last_price: Decimal,
    /// Mark price.
    pub mark_price: Decimal,
    /// Funding rate of the running period.
    pub funding_rate: Decimal,
    /// When the running funding period settles.
    pub next_funding_time: Option<DateTime<Utc>>,
    /// When it was observed.
    pub ts: DateTime<Utc>,
}

/// An account starts watching a hub.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchSymbol {
    /// The account.
    pub account_id: AccountId,
    /// Its cycle interval (the hub polls at least this often).
    pub interval: Duration,
    /// Where price ticks go.
    pub ticks: Recipient<PriceTick>,
}

/// An account stops watching a hub.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnwatchSymbol(pub AccountId);

/// Stop polling for good (shutdown): nothing more reaches the store or the
/// ExecutionActors from this hub; a poll in flight is discarded.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPolling;

/// The hub's latest snapshot, trading rules and health. With `max_age`, a snapshot
/// older than that makes the hub poll now and answer with the fresh one (LLM accounts
/// decide on data at most seconds old).
#[derive(Message, Default)]
#[rtype(result = "HubView")]
pub struct GetHubView {
    /// Freshness wanted.
    pub max_age: Option<Duration>,
}

/// What [`GetHubView`] answers.
#[derive(Clone, Debug, Serialize)]
pub struct HubView {
    /// Latest snapshot, if any poll succeeded.
    pub snapshot: Option<Arc<MarketSnapshot>>,
    /// Trading rules from `exchangeInfo`.
    #[serde(skip)]
    pub rules: Option<SymbolRules>,
    /// Health.
    pub status: HubStatus,
}

/// Health of one hub.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HubStatus {
    /// Venue base URL.
    pub venue: String,
    /// Symbol.
    pub symbol: String,
    /// Current poll period in milliseconds.
    pub poll_ms: u64,
    /// Successful polls.
    pub polls_ok: u64,
    /// Failed polls.
    pub polls_failed: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Last success.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Last error, if the last poll failed.
    pub last_error: Option<String>,
    /// Accounts watching.
    pub watchers: usize,
}

// ---- Account -----------------------------------------------------------------------

/// Status of one account (REST `/accounts/{id}/status`).
#[derive(Clone, Debug, Serialize)]
pub struct AccountStatus {
    /// Account id.
    pub account_id: AccountId,
    /// `active`, `paused`, `stopped` (the operator's wish, once running or stopped);
    /// `starting`, `stopping`, `restarting` in between.
    pub state: String,
    /// `paper` or `live`.
    pub mode: String,
    /// Model or builtin policy.
    pub llm_model: String,
    /// Cycle interval as configured.
    pub interval: String,
    /// Completed cycles since this actor started.
    pub cycles_completed: u64,
    /// Cycles skipped (no fresh market data, previous cycle still running).
    pub cycles_skipped: u64,
    /// Cycles that failed.
    pub cycles_failed: u64,
    /// The cycle running now.
    pub cycle_in_flight: Option<CycleId>,
    /// Last finished cycle.
    pub last_cycle: Option<CycleSummary>,
    /// Last error or skip reason.
    pub last_error: Option<String>,
    /// Times the supervisor restarted this account.
    pub restarts: u32,
    /// Balance and positions now.
    pub balance: Option<AccountView>,
    /// The decision maker: model calls, breaker, budget, why it holds.
    pub decision: Option<DecisionStatus>,
    /// When this incarnation started.
    pub started_at: Option<DateTime<Utc>>,
}

/// Outcome of one cycle.
#[derive(Clone, Debug, Serialize)]
pub struct CycleSummary {
    /// Cycle id.
    pub cycle_id: CycleId,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Wall time of the cycle, milliseconds.
    pub duration_ms: f64,
    /// `completed`, `skipped` or `failed`.
    pub outcome: String,
    /// Decisions per outcome (`approved`, `refused`, `hold`).
    pub decisions: HashMap<String, usize>,
    /// Orders placed.
    pub orders: usize,
    /// Fills.
    pub fills: usize,
}

/// Ask an account for its status.
#[derive(Message)]
#[rtype(result = "AccountStatus")]
pub struct GetAccountStatus;

/// Stop starting cycles; the reply comes once the cycle in flight (if any) finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Pause (no new entries; exits and TP/SL keep working) or resume an account. The reply
/// comes once no cycle decided before the change is still in flight, so no entry
/// follows a pause's answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

/// Flatten an account: once the cycle in flight (if any) finished, its ExecutionActor
/// cancels every open order and closes every position ([`CloseAll`]).
#[derive(Message)]
#[rtype(result = "CloseAllReport")]
pub struct FlattenAccount {
    /// Why (recorded with the orders).
    pub reason: String,
}

// ---- DecisionActor -----------------------------------------------------------------

/// Decide for every asset of the account.
#[derive(Message)]
#[rtype(result = "Vec<ApprovedDecision>")]
pub struct Decide {
    /// Cycle.
    pub cycle_id: CycleId,
    /// One snapshot per asset.
    pub snapshots: Vec<Arc<MarketSnapshot>>,
    /// Balance, positions, orders, recent fills and diary, last trades.
    pub view: ExecutionView,
    /// The operator paused the account: no new entries.
    pub paused: bool,
    /// The global kill switch is on: no new entries.
    pub global_kill_switch: bool,
}

/// The decision maker's state (account status).
#[derive(Message)]
#[rtype(result = "DecisionStatus")]
pub struct GetDecisionStatus;

/// What [`GetDecisionStatus`] answers.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionStatus {
    /// Model or builtin policy.
    pub source: String,
    /// Why the account holds without calling its model (breaker open, budget spent).
    pub holding_reason: Option<String>,
    /// The circuit breaker.
    pub breaker: crate::domain::guard::BreakerState,
    /// Model calls made by this actor.
    pub model_calls: u64,
    /// Of which failed.
    pub failed_calls: u64,
    /// Model spending today, USD.
    pub cost_today_usd: Decimal,
    /// `llm.max_cost_usd_per_day`.
    pub budget_usd_per_day: Option<Decimal>,
}

/// A decision the risk rules let through, with its row id.
#[derive(Clone, Debug)]
pub struct ApprovedDecision {
    /// `decisions.id`.
    pub decision_id: Uuid,
    /// What to execute (possibly clamped).
    pub decision: TradeDecision,
    /// The snapshot it was decided on.
    pub snapshot: Arc<MarketSnapshot>,
}

// ---- ExecutionActor ----------------------------------------------------------------

/// The account's balance and positions now, plus last trade times. With a cycle, a
/// live venue is reconciled with the exchange first (the cycle's step 2).
#[derive(Message, Default)]
#[rtype(result = "ExecutionView")]
pub struct GetExecutionView {
    /// Reconcile with the venue for this cycle before answering (live accounts).
    pub reconcile: Option<CycleId>,
    /// The symbols' trading rules (for orders reconciliation places).
    pub rules: HashMap<Symbol, SymbolRules>,
}

/// Cancel every open order and close every position of the account at market,
/// reduce-only (the kill switch and `POST /accounts/{id}/close-all` call it). Answers
/// what was cancelled and filled, and what could not be done.
#[derive(Message)]
#[rtype(result = "CloseAllReport")]
pub struct CloseAll {
    /// Why (recorded with the orders).
    pub reason: String,
}

/// What a close-all did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CloseAllReport {
    /// Working orders cancelled (client order ids).
    pub cancelled_orders: Vec<String>,
    /// Positions open before and gone after.
    pub closed_positions: Vec<ClosedPosition>,
    /// The fills of the closing orders.
    pub fills: Vec<ClosingFill>,
    /// What could not be done, one line each (empty: the account is flat).
    pub problems: Vec<String>,
}

/// A position a close-all flattened.
#[derive(Clone, Debug, Serialize)]
pub struct ClosedPosition {
    /// Symbol.
    pub symbol: Symbol,
    /// `long` or `short`.
    pub side: crate::domain::types::PositionSide,
    /// Its size before.
    pub quantity: Decimal,
}

/// A fill of a close-all's orders.
#[derive(Clone, Debug, Serialize)]
pub struct ClosingFill {
    /// Symbol.
    pub symbol: Symbol,
    /// `BUY` or `SELL`.
    pub side: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Price.
    pub price: Decimal,
    /// Realized PnL.
    pub realized_pnl: Decimal,
}

/// What [`GetExecutionView`] answers.
#[derive(Clone, Debug)]
pub struct ExecutionView {
    /// Balance and positions.
    pub account: AccountView,
    /// Last trade per symbol.
    pub last_trades: HashMap<Symbol, DateTime<Utc>>,
    /// Working orders (resting TP/SL).
    pub open_orders: Vec<crate::engine::Order>,
    /// The newest fills, newest first.
    pub recent_fills: Vec<crate::engine::Fill>,
    /// The newest diary entries, newest first.
    pub recent_diary: Vec<crate::engine::DiaryEntry>,
    /// Equity at the first valuation of the current UTC day.
    pub day_start_equity: Option<Decimal>,
    /// Why the venue could not be reconciled, when it could not (the cycle is skipped:
    /// no decision is taken on a book that may be wrong).
    pub venue_error: Option<String>,
}

/// Execute approved decisions, then record the cycle's equity.
#[derive(Message)]
#[rtype(result = "ExecutionReport")]
pub struct Execute {
    /// Cycle.
    pub cycle_id: CycleId,
    /// Approved decisions.
    pub decisions: Vec<ApprovedDecision>,
    /// Trading rules per symbol.
    pub rules: HashMap<Symbol, SymbolRules>,
}

/// What one execution step did.
#[derive(Clone, Debug, Default)]
pub struct ExecutionReport {
    /// Orders created (including refused ones, recorded as REJECTED).
    pub orders: usize,
    /// Fills.
    pub fills: usize,
}

// ---- Supervisor --------------------------------------------------------------------

/// Status of the daemon, the hubs and some accounts (REST `/status`, `/accounts`).
#[derive(Message)]
#[rtype(result = "SystemStatus")]
pub struct GetSystemStatus {
    /// Which accounts' statuses to gather.
    pub select: StatusSelect,
}

/// The accounts a [`GetSystemStatus`] gathers statuses of.
#[derive(Clone, Debug)]
pub enum StatusSelect {
    /// One page of the accounts (in id order) that `scope` lets the caller see (`None`:
    /// every account), with a summary of all of them.
    Page {
        /// Accounts skipped.
        offset: usize,
        /// Most accounts returned.
        limit: usize,
        /// The account ids the caller sees; `None` for all.
        scope: Option<std::sync::Arc<std::collections::HashSet<String>>>,
    },
    /// These accounts (unknown ids are left out); no summary.
    Ids(Vec<AccountId>),
}

/// Every visible account in three numbers (`/status`'s `accounts_summary`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AccountsSummary {
    /// Every account.
    pub total: usize,
    /// Accounts per state (`active`, `paused`, ...).
    pub by_state: std::collections::BTreeMap<String, usize>,
    /// Accounts whose last cycle failed or was skipped, or that report an error.
    pub with_error: usize,
}

impl AccountsSummary {
    /// Counts one account.
    pub fn count(&mut self, state: String, error: bool) {
        self.total += 1;
        *self.by_state.entry(state).or_insert(0) += 1;
        if error {
            self.with_error += 1;
        }
    }
}

/// What [`GetSystemStatus`] answers.
#[derive(Clone, Debug, Serialize)]
pub struct SystemStatus {
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// `running` or `shutting_down`.
    pub state: String,
    /// The accounts asked for (see [`StatusSelect`]).
    pub accounts: Vec<AccountStatus>,
    /// With [`StatusSelect::Page`]: every visible account counted.
    pub summary: Option<AccountsSummary>,
    /// Every market-data hub.
    pub market_data: Vec<HubStatus>,
    /// The global kill switch.
    pub kill_switch: KillSwitchStatus,
    /// Every venue base URL's request gate: weight used, and a ban (418) in force —
    /// while a venue is banned its accounts pause.
    pub venues: Vec<crate::exchange::aster::gate::GateStatus>,
}

/// One account's status, `None` for an unknown id.
#[derive(Message)]
#[rtype(result = "Option<AccountStatus>")]
pub struct GetOneAccountStatus(pub AccountId);

/// Latest snapshots of all hubs (REST `/market-data`).
#[derive(Message)]
#[rtype(result = "Vec<HubView>")]
pub struct GetMarketData;

/// Graceful shutdown: no new cycles, in-flight cycles finish (bounded by `deadline`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    /// Give up waiting after this long.
    pub deadline: Duration,
}

// ---- Control (the Supervisor) --------------------------------------------------------

/// The global kill switch as shown in `/status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KillSwitchStatus {
    /// On: no account opens anything new.
    pub enabled: bool,
    /// Since when (set over the API; `None` when set by the configuration or never).
    pub since: Option<DateTime<Utc>>,
    /// Who set it (an API key's name, or `configuration`).
    pub by: Option<String>,
}

/// Why the Supervisor refused a control request.
#[derive(Clone, Debug)]
pub enum ControlError {
    /// No such account.
    NotFound(String),
    /// The request contradicts the current state (an id already in use, ...).
    Conflict(String),
    /// The request is invalid (a configuration problem, naming the field).
    Invalid(String),
    /// Shutting down, or the store did not take the change.
    Unavailable(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::NotFound(m)
            | ControlError::Conflict(m)
            | ControlError::Invalid(m)
            | ControlError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// What a control request answers: a JSON report of what was done.
pub type ControlResult = Result<serde_json::Value, ControlError>;

/// Add an account at runtime (from the API): registered, then started.
#[derive(Message)]
#[rtype(result = "ControlResult")]
pub struct AddAccount {
    /// The validated account.
    pub cfg: crate::config::AccountConfig,
    /// Its definition as given (`${VAR}` references, no secret), kept for restarts.
    pub definition: serde_json::Value,
    /// Who asked (a key's name).
    pub by: String,
}

/// Remove an account: drained (no new cycle; the one in flight finishes), optionally
/// flattened, stopped; its rows stay, and it does not trade after a restart.
#[derive(Message)]
#[rtype(result = "ControlResult")]
pub struct RemoveAccount {
    /// The account.
    pub id: AccountId,
    /// Close its positions and cancel its orders once drained.
    pub close_positions: bool,
    /// Who asked.
    pub by: String,
}

/// Pause or resume an account (resume also restarts a stopped one).
#[derive(Message)]
#[rtype(result = "ControlResult")]
pub struct SetAccountPaused {
    /// The account.
    pub id: AccountId,
    /// Pause (true) or resume (false).
    pub paused: bool,
    /// Who asked.
    pub by: String,
}

/// Close-all on one account.
#[derive(Message)]
#[rtype(result = "ControlResult")]
pub struct CloseAllOf {
    /// The account.
    pub id: AccountId,
    /// Who asked.
    pub by: String,
}

/// Turn the global kill switch on (optionally flattening every account) or off.
#[derive(Message)]
#[rtype(result = "ControlResult")]
pub struct SetKillSwitch {
    /// On or off.
    pub enabled: bool,
    /// With `enabled`: flatten every running account too.
    pub flatten: bool,
    /// Who asked.
    pub by: String,
}

/// Apply a re-read accounts file: added accounts start, removed ones drain, changed ones
/// restart with the new settings, unchanged ones are not touched.
#[derive(Message)]
#[rtype(result = "ControlResult")]
pub struct ReloadAccounts {
    /// The accounts of the file, validated.
    pub accounts: Vec<crate::config::AccountConfig>,
    /// Who asked (`SIGHUP` or a key's name).
    pub by: String,
}
