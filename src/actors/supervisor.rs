//! Supervisor: the root actor. It builds the topology — one MarketDataHub per venue and
//! symbol (shared by the accounts that trade it), one Account tree per account — on a
//! fixed pool of arbiters (`runtime.arbiters`, default the number of cores: threads and
//! file descriptors do not grow with the accounts), watches the accounts, and restarts
//! a crashed one with exponential backoff while the others keep trading.
//!
//! Invariants: hubs and accounts are spread over the pool round-robin, and an account
//! keeps its arbiter across restarts; a crashed account tree is torn down completely
//! the moment the crash is noticed (its [`Tree`] is cancelled: every member stops and
//! every future it spawned is dropped), long before the new one starts after the
//! backoff; restarts reload the state from the database; shutdown first stops the hubs
//! (`StopPolling`: no new snapshots or price ticks), then drains every account (no new
//! cycles, in-flight cycles and queued ticks finish) within the deadline, so that
//! nothing reaches the store after its final flush.
//!
//! Control (`POST/DELETE /accounts`, pause, resume, close-all, kill switch, reload) is
//! handled here: the set of accounts and each account's control state (`active`,
//! `paused`, `stopped`) live in the Supervisor's slots, every change is written through
//! the store (`account_controls`, `control_flags`) before it is answered, and the
//! accounts are told through their actors (`SetPaused`, `FlattenAccount`, `Drain`).
//! A stopped account is never restarted by the watchdog; it stays listed (its rows
//! stay queryable) until a resume starts it again.

use crate::actors::account::{Account, KillSwitch, SharedSettings};
use crate::actors::brief::AccountBrief;
use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::market_data::MarketDataHub;
use crate::actors::messages::*;
use crate::actors::tree::Tree;
use crate::config::{AccountConfig, MarketDataSettings, Settings};
use crate::control::{self, AccountDirectory};
use crate::db::models::{AccountControlRow, ControlFlagRow};
use crate::domain::types::{AccountId, Symbol};
use crate::exchange::aster::{MarketClient, RetryPolicy};
use crate::store::Store;
use crate::store::{ControlRow, Rows, Write};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{error, info, warn, Logger};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After this long without a crash, the backoff starts again from one second.
const HEALTHY_AFTER: Duration = Duration::from_secs(300);
/// Longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the operator wants of an account (kept in `account_controls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Trades.
    Active,
    /// Cycles run; no new entries; exits and TP/SL keep working.
    Paused,
    /// Removed: no tree, no trading; rows stay; survives restarts.
    Stopped,
}

impl Control {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Active => "active",
            Control::Paused => "paused",
            Control::Stopped => "stopped",
        }
    }

    /// From the stored text (anything unknown is active).
    pub fn parse(s: &str) -> Control {
        match s {
            "paused" => Control::Paused,
            "stopped" => Control::Stopped,
            _ => Control::Active,
        }
    }
}

/// Where an account's definition comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The accounts file (a reload may change or remove it).
    File,
    /// Added over the API (kept in `account_controls.definition`; a reload leaves it).
    Api,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Api => "api",
        }
    }
}

/// What was stored by earlier runs: the operator's wishes, API-added accounts, the
/// kill switch. Read at start, before the Supervisor is built.
#[derive(Clone, Debug, Default)]
pub struct StoredControls {
    /// Every `account_controls` row.
    pub accounts: Vec<AccountControlRow>,
    /// The accounts added over the API, validated again from their definitions.
    pub added: Vec<AccountConfig>,
    /// The stored kill switch, if it was ever set over the API.
    pub kill_switch: Option<ControlFlagRow>,
}

struct Slot {
    cfg: Arc<AccountConfig>,
    control: Control,
    origin: Origin,
    /// False for a file account that the last reload no longer found in the file.
    in_file: bool,
    /// An API-added account's definition as given (kept with every control row).
    definition: Option<serde_json::Value>,
    addr: Option<Addr<Account>>,
    /// The live tree of the account (cancelled when it crashes).
    tree: Option<Tree>,
    /// Its arbiter in the pool.
    arbiter: usize,
    restarts: u32,
    restart_at: Option<Instant>,
    /// Not started yet (start-up paces the accounts' starts).
    awaiting_start: bool,
    last_crash: Option<String>,
    started: Instant,
    /// The account's state and error flag as its actor last set them (`/status` counts
    /// thousands of accounts from these without asking each).
    brief: Arc<AccountBrief>,
}

/// The root of the actor tree.
pub struct Supervisor {
    bus: Addr<EventBus>,
    store: Store,
    hubs: BTreeMap<(String, Symbol), Addr<MarketDataHub>>,
    accounts: BTreeMap<AccountId, Slot>,
    shutting_down: bool,
    started_at: DateTime<Utc>,
    log: Logger,
    llm_log: Logger,
    shared: Arc<SharedSettings>,
    /// The arbiter pool every hub and account tree runs on.
    pool: Vec<Arbiter>,
    /// One market client per venue.
    clients: BTreeMap<String, Arc<MarketClient>>,
    market: MarketDataSettings,
    market_log: Logger,
    /// The accounts as the API sees them.
    directory: AccountDirectory,
    /// Who turned the kill switch on, and when.
    kill_by: Option<(String, DateTime<Utc>)>,
}

/// Why the topology could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// An account's venue cannot be used.
    #[error("account {account}: asterdex.base_url {url:?}: {reason}")]
    Venue {
        /// The account.
        account: AccountId,
        /// Its venue URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The arbiter pool would not fit in the open-file limit.
    #[error(
        "field \"runtime.arbiters\": {arbiters} arbiters need about {needed} open files, but \
         this process may open {limit} (ulimit -n); lower runtime.arbiters or raise the limit"
    )]
    PoolTooLarge {
        /// The configured pool size.
        arbiters: usize,
        /// Open files the pool and the process need, about.
        needed: u64,
        /// The soft open-file limit.
        limit: u64,
    },
}

/// Open files one arbiter holds (its event loop's epoll, eventfd, signal pipe).
const FILES_PER_ARBITER: u64 = 4;
/// Open files the rest of the process needs at least (logs, database, listener, clients).
const FILES_RESERVED: u64 = 128;

/// Refuses a pool that cannot start under the open-file limit (an arbiter that cannot
/// get its files would panic the process instead of saying why).
fn check_pool_fits(arbiters: usize) -> Result<(), TopologyError> {
    let needed = arbiters as u64 * FILES_PER_ARBITER + FILES_RESERVED;
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if soft < needed => Err(TopologyError::PoolTooLarge {
            arbiters,
            needed,
            limit: soft,
        }),
        _ => Ok(()),
    }
}

impl Supervisor {
    /// Starts the arbiter pool, builds the hubs (spread over it) and the account slots;
    /// the accounts start when the supervisor starts.
    pub fn build(
        settings: &Settings,
        bus: Addr<EventBus>,
        store: Store,
        log: &Logger,
        market_log: &Logger,
        llm_log: &Logger,
    ) -> Result<Supervisor, TopologyError> {
        Supervisor::build_with(
            settings,
            StoredControls::default(),
            bus,
            store,
            log,
            market_log,
            llm_log,
        )
    }

    /// [`Supervisor::build`] with what earlier runs stored: accounts added over the
    /// API join the file's, stopped accounts are listed but not started, paused ones
    /// start paused, and a stored kill switch is on again.
    #[allow(clippy::too_many_arguments)]
    pub fn build_with(
        settings: &Settings,
        stored: StoredControls,
        bus: Addr<EventBus>,
        store: Store,
        log: &Logger,
        market_log: &Logger,
        llm_log: &Logger,
    ) -> Result<Supervisor, TopologyError> {
        let log = log.new(slog::o!("component" => "supervisor"));
        check_pool_fits(settings.runtime.arbiters.max(1))?;
        let pool: Vec<Arbiter> = (0..settings.runtime.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        info!(log, "arbiter pool started"; "arbiters" => pool.len());
        let stored_kill = stored.kill_switch.as_ref().filter(|f| f.enabled);
        let kill_on = settings.kill_switch || stored_kill.is_some();
        let mut sup = Supervisor {
            bus,
            store,
            hubs: BTreeMap::new(),
            accounts: BTreeMap::new(),
            shutting_down: false,
            started_at: Utc::now(),
            log,
            llm_log: llm_log.clone(),
            shared: Arc::new(SharedSettings {
                kill_switch: KillSwitch::new(kill_on),
                llm: settings.llm.clone(),
                startup_spread: crate::domain::cadence::startup_spread(
                    settings.accounts.len() + stored.added.len(),
                ),
            }),
            pool,
            clients: BTreeMap::new(),
            market: settings.market_data.clone(),
            market_log: market_log.clone(),
            directory: AccountDirectory::default(),
            kill_by: stored_kill
                .map(|f| (f.updated_by.clone(), f.updated_at))
                .or_else(|| {
                    settings
                        .kill_switch
                        .then(|| ("configuration".to_string(), Utc::now()))
                }),
        };
        if kill_on {
            warn!(sup.log, "the global kill switch is on: no account opens anything new";
                "by" => sup.kill_by.as_ref().map(|(b, _)| b.clone()));
        }
        let controls: BTreeMap<&str, &AccountControlRow> = stored
            .accounts
            .iter()
            .map(|r| (r.account_id.as_str(), r))
            .collect();
        let file_ids: Vec<&str> = settings.accounts.iter().map(|a| a.id.as_str()).collect();
        let from_file = settings.accounts.iter().map(|c| (c, Origin::File));
        let sup_log = sup.log.clone();
        let from_api = stored
            .added
            .iter()
            .filter(|c| {
                let shadowed = file_ids.contains(&c.id.as_str());
                if shadowed {
                    warn!(sup_log, "an account added over the API is also in the accounts file: \
                        the file's definition is used"; "account_id" => c.id.to_string());
                }
                !shadowed
            })
            .map(|c| (c, Origin::Api));
        let all: Vec<_> = from_file.chain(from_api).collect();
        for (cfg, origin) in all {
            sup.ensure_hubs(cfg)?;
            let control = controls
                .get(cfg.id.as_str())
                .map_or(Control::Active, |r| Control::parse(&r.state));
            match control {
                Control::Stopped => warn!(sup.log, "account stopped by an operator earlier: not \
                    started (POST /accounts/ID/resume starts it)"; "account_id" => cfg.id.to_string()),
                Control::Paused => info!(sup.log, "account paused by an operator earlier: it \
                    starts paused"; "account_id" => cfg.id.to_string()),
                Control::Active => {}
            }
            sup.insert_slot(Arc::new(cfg.clone()), control, origin);
            if origin == Origin::Api {
                if let Some(slot) = sup.accounts.get_mut(&cfg.id) {
                    slot.definition = controls
                        .get(cfg.id.as_str())
                        .and_then(|r| r.definition.clone());
                }
            }
        }
        Ok(sup)
    }

    /// The accounts as the API should see them (updated on every change).
    pub fn directory(&self) -> AccountDirectory {
        self.directory.clone()
    }

    /// Builds the market client and hubs `cfg` needs that do not exist yet.
    fn ensure_hubs(&mut self, cfg: &AccountConfig) -> Result<(), TopologyError> {
        let venue = cfg.asterdex.base_url.trim_end_matches('/').to_string();
        let client = match self.clients.get(&venue) {
            Some(c) => c.clone(),
            None => {
                let policy = RetryPolicy {
                    max_retries: self.market.max_retries,
                    timeout: self.market.request_timeout,
                    ..RetryPolicy::default()
                };
                let c = Arc::new(
                    MarketClient::new(&venue, policy)
                        .map_err(|e| TopologyError::Venue {
                            account: cfg.id.clone(),
                            url: venue.clone(),
                            reason: e.to_string(),
                        })?
                        .with_logger(self.market_log.clone()),
                );
                self.clients.insert(venue.clone(), c.clone());
                c
            }
        };
        for asset in &cfg.assets {
            let key = (venue.clone(), asset.symbol());
            if self.hubs.contains_key(&key) {
                continue;
            }
            let hub = MarketDataHub::new(
                venue.clone(),
                asset.symbol(),
                client.clone(),
                self.market.clone(),
                self.bus.clone(),
                self.store.clone(),
                &self.market_log,
            );
            let Some(arbiter) = self.pool.get(self.hubs.len() % self.pool.len().max(1)) else {
                continue;
            };
            let addr = MarketDataHub::start_in_arbiter(&arbiter.handle(), |_| hub);
            self.hubs.insert(key, addr);
        }
        Ok(())
    }

    /// A new slot (not started; `awaiting_start` unless stopped), listed in the directory.
    fn insert_slot(&mut self, cfg: Arc<AccountConfig>, control: Control, origin: Origin) {
        self.directory.upsert(cfg.clone());
        let arbiter = self.accounts.len() % self.pool.len().max(1);
        self.accounts.insert(
            cfg.id.clone(),
            Slot {
                cfg,
                control,
                origin,
                in_file: origin == Origin::File,
                definition: None,
                addr: None,
                tree: None,
                arbiter,
                restarts: 0,
                restart_at: None,
                awaiting_start: control != Control::Stopped,
                last_crash: None,
                started: Instant::now(),
                brief: Arc::default(),
            },
        );
    }

    fn start_account(&mut self, id: &AccountId) {
        let Some(slot) = self.accounts.get_mut(id) else {
            return;
        };
        if let Some(old) = slot.tree.take() {
            old.cancel();
        }
        let venue = slot.cfg.asterdex.base_url.trim_end_matches('/').to_string();
        let hubs: Vec<_> = slot
            .cfg
            .assets
            .iter()
            .filter_map(|a| {
                self.hubs
                    .get(&(venue.clone(), a.symbol()))
                    .map(|h| (a.clone(), h.clone()))
            })
            .collect();
        let Some(arbiter) = self.pool.get(slot.arbiter) else {
            return;
        };
        let tree = Tree::new();
        let member = tree.clone();
        let paused = slot.control == Control::Paused;
        let brief = slot.brief.clone();
        let (cfg, shared, bus, store, restarts, log, llm_log) = (
            slot.cfg.clone(),
            self.shared.clone(),
            self.bus.clone(),
            self.store.clone(),
            slot.restarts,
            self.log.clone(),
            self.llm_log.clone(),
        );
        let addr = Account::start_in_arbiter(&arbiter.handle(), move |_| {
            Account::new(
                cfg, paused, shared, hubs, bus, store, restarts, &log, &llm_log,
            )
            .in_tree(&member)
            .with_brief(brief)
        });
        slot.addr = Some(addr);
        slot.tree = Some(tree);
        slot.awaiting_start = false;
        slot.restart_at = None;
        slot.started = Instant::now();
    }

    fn watch(&mut self) {
        if self.shutting_down {
            return;
        }
        let now = Instant::now();
        let mut to_start = Vec::new();
        for (id, slot) in self.accounts.iter_mut() {
            match &slot.addr {
                Some(addr) if !addr.connected() && slot.control == Control::Stopped => {
                    // Removed on purpose: never restarted.
                    slot.addr = None;
                    slot.tree = None;
                }
                Some(addr) if addr.connected() => {
                    if slot.restarts > 0 && slot.started.elapsed() > HEALTHY_AFTER {
                        slot.restarts = 0;
                    }
                }
                Some(_) => {
                    // Tear the tree down now: nothing of it may act until the restart.
                    if let Some(tree) = slot.tree.take() {
                        tree.cancel();
                    }
                    let delay = backoff(slot.restarts);
                    slot.addr = None;
                    slot.restarts += 1;
                    slot.restart_at = Some(now + delay);
                    let reason = "the account's actor tree stopped unexpectedly (see errors.log)";
                    slot.last_crash = Some(format!("{} at {}", reason, Utc::now().to_rfc3339()));
                    error!(self.log, "account crashed; restarting it"; "account_id" => id.to_string(),
                        "restart_in_ms" => delay.as_millis() as u64, "restarts" => slot.restarts);
                    self.bus.do_send(Publish(EventDraft::account(
                        Channel::TradingEvents,
                        "account_status",
                        id,
                        None,
                        serde_json::json!({"state": "restarting", "restarts": slot.restarts,
                            "restart_in_ms": delay.as_millis() as u64}),
                    )));
                }
                None => {
                    if slot.restart_at.map(|t| t <= now).unwrap_or(false) {
                        to_start.push(id.clone());
                    }
                }
            }
        }
        for id in to_start {
            self.start_account(&id);
        }
    }

    fn offline_status(slot: &Slot) -> AccountStatus {
        AccountStatus {
            account_id: slot.cfg.id.clone(),
            state: if slot.control == Control::Stopped {
                "stopped".into()
            } else if slot.awaiting_start {
                "starting".into()
            } else if slot.restart_at.is_some() {
                "restarting".into()
            } else {
                "stopped".into()
            },
            mode: slot.cfg.mode.as_str().to_string(),
            llm_model: slot.cfg.llm_model.clone(),
            interval: slot.cfg.interval.label.clone(),
            cycles_completed: 0,
            cycles_skipped: 0,
            cycles_failed: 0,
            cycle_in_flight: None,
            last_cycle: None,
            last_error: slot.last_crash.clone(),
            restarts: slot.restarts,
            balance: None,
            decision: None,
            started_at: None,
        }
    }
}

/// 1 s, 2 s, 4 s ... up to [`MAX_BACKOFF`].
fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.min(6)).min(MAX_BACKOFF)
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(self.log, "supervisor started"; "accounts" => self.accounts.len(),
            "market_data_hubs" => self.hubs.len());
        self.start_paced(ctx);
        ctx.run_interval(Duration::from_millis(250), |act, _| act.watch());
    }
}

/// Accounts started per tick at daemon start.
const STARTS_PER_TICK: usize = 10;
/// The pace of account starts at daemon start (10 per 10 ms: 1,000 accounts a second).
const START_TICK: Duration = Duration::from_millis(10);

impl Supervisor {
    /// Starts the accounts not started yet, [`STARTS_PER_TICK`] per [`START_TICK`]: an
    /// account's start (loading its state, setting up its venue) is work on the shared
    /// arbiters, and thousands at once would hold up the cycles of those already
    /// running. A handful of accounts start at once.
    fn start_paced(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let next: Vec<AccountId> = self
            .accounts
            .iter()
            .filter(|(_, s)| s.awaiting_start)
            .map(|(id, _)| id.clone())
            .take(STARTS_PER_TICK)
            .collect();
        for id in &next {
            self.start_account(id);
        }
        if self.accounts.values().any(|s| s.awaiting_start) {
            ctx.run_later(START_TICK, |act, ctx| act.start_paced(ctx));
        }
    }
}

async fn status_of(addr: Option<Addr<Account>>, fallback: AccountStatus) -> AccountStatus {
    match addr {
        Some(a) => {
            match tokio::time::timeout(Duration::from_secs(2), a.send(GetAccountStatus)).await {
                Ok(Ok(s)) => s,
                _ => fallback,
            }
        }
        None => fallback,
    }
}

impl Supervisor {
    /// The state and error flag `/status` counts for `slot`: its actor's brief while it
    /// has one, what the slot knows otherwise.
    fn brief_of(slot: &Slot) -> (String, bool) {
        if slot.addr.is_some() {
            let b = slot.brief.get();
            (b.state.to_string(), b.error)
        } else {
            let offline = Self::offline_status(slot);
            (offline.state, offline.last_error.is_some())
        }
    }
}

impl Handler<GetSystemStatus> for Supervisor {
    type Result = ResponseFuture<SystemStatus>;

    fn handle(&mut self, msg: GetSystemStatus, _: &mut Self::Context) -> Self::Result {
        // Only the accounts asked for are asked for their status (three messages each);
        // the summary counts every visible account from the briefs.
        let (asked, summary): (Vec<&Slot>, Option<AccountsSummary>) = match &msg.select {
            StatusSelect::Page {
                offset,
                limit,
                scope,
            } => {
                let visible = self.accounts.values().filter(|s| {
                    scope
                        .as_ref()
                        .map_or(true, |ids| ids.contains(s.cfg.id.as_str()))
                });
                let mut summary = AccountsSummary::default();
                let mut page = Vec::new();
                for (i, slot) in visible.enumerate() {
                    let (state, error) = Self::brief_of(slot);
                    summary.count(state, error);
                    if i >= *offset && page.len() < *limit {
                        page.push(slot);
                    }
                }
                (page, Some(summary))
            }
            StatusSelect::Ids(ids) => (
                ids.iter().filter_map(|id| self.accounts.get(id)).collect(),
                None,
            ),
        };
        let accounts: Vec<_> = asked
            .into_iter()
            .map(|s| (s.addr.clone(), Self::offline_status(s)))
            .collect();
        let hubs: Vec<_> = self.hubs.values().cloned().collect();
        let started_at = self.started_at;
        let kill_switch = self.kill_switch_status();
        let state = if self.shutting_down {
            "shutting_down"
        } else {
            "running"
        };
        Box::pin(async move {
            let accounts =
                futures_util::future::join_all(accounts.into_iter().map(|(a, f)| status_of(a, f)))
                    .await;
            let mut market_data = Vec::new();
            for h in hubs {
                if let Ok(v) = h.send(GetHubView::default()).await {
                    market_data.push(v.status);
                }
            }
            SystemStatus {
                started_at,
                state: state.into(),
                accounts,
                summary,
                market_data,
                kill_switch,
                venues: crate::exchange::aster::gate::VenueGate::all()
                    .iter()
                    .map(|g| g.status())
                    .collect(),
            }
        })
    }
}

impl Handler<GetOneAccountStatus> for Supervisor {
    type Result = ResponseFuture<Option<AccountStatus>>;

    fn handle(&mut self, msg: GetOneAccountStatus, _: &mut Self::Context) -> Self::Result {
        let slot = self
            .accounts
            .get(&msg.0)
            .map(|s| (s.addr.clone(), Self::offline_status(s)));
        Box::pin(async move {
            match slot {
                Some((a, f)) => Some(status_of(a, f).await),
                None => None,
            }
        })
    }
}

impl Handler<GetMarketData> for Supervisor {
    type Result = ResponseFuture<Vec<HubView>>;

    fn handle(&mut self, _: GetMarketData, _: &mut Self::Context) -> Self::Result {
        let hubs: Vec<_> = self.hubs.values().cloned().collect();
        Box::pin(async move {
            let mut out = Vec::new();
            for h in hubs {
                if let Ok(v) = h.send(GetHubView::default()).await {
                    out.push(v);
                }
            }
            out
        })
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        info!(
            self.log,
            "shutting down: no new cycles; waiting for cycles in flight"
        );
        let addrs: Vec<_> = self
            .accounts
            .values()
            .filter_map(|s| s.addr.clone())
            .collect();
        let hubs: Vec<_> = self.hubs.values().cloned().collect();
        let log = self.log.clone();
        Box::pin(async move {
            // The hubs first: no snapshot or price tick after this (a poll in flight
            // is discarded), so nothing reaches the store after its final flush.
            let stops = futures_util::future::join_all(hubs.iter().map(|h| h.send(StopPolling)));
            if tokio::time::timeout(msg.deadline, stops).await.is_err() {
                error!(
                    log,
                    "some market data hubs did not stop before the shutdown deadline"
                );
            }
            let drains = futures_util::future::join_all(addrs.iter().map(|a| a.send(Drain)));
            if tokio::time::timeout(msg.deadline, drains).await.is_err() {
                error!(
                    log,
                    "some cycles did not finish before the shutdown deadline"
                );
            }
        })
    }
}

// ---- Control ---------------------------------------------------------------------------

/// How long a control action waits for one account's close-all.
const CLOSE_ALL_DEADLINE: Duration = Duration::from_secs(60);

impl Supervisor {
    fn kill_switch_status(&self) -> KillSwitchStatus {
        KillSwitchStatus {
            enabled: self.shared.kill_switch.is_on(),
            since: self.kill_by.as_ref().map(|(_, t)| *t),
            by: self.kill_by.as_ref().map(|(b, _)| b.clone()),
        }
    }

    fn slot(&self, id: &AccountId) -> Result<&Slot, ControlError> {
        self.accounts
            .get(id)
            .ok_or_else(|| ControlError::NotFound(format!("no account with id {:?}", id.as_str())))
    }

    fn refuse_while_shutting_down(&self) -> Result<(), ControlError> {
        if self.shutting_down {
            Err(ControlError::Unavailable(
                "the daemon is shutting down; control actions are refused".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Queues the control rows and resolves once they are durable (PostgreSQL or the
    /// spool): a change is answered only once it would survive a crash.
    fn persist(
        &self,
        rows: Vec<Rows>,
    ) -> impl std::future::Future<Output = Result<(), ControlError>> {
        let durable = self.store.write_durable(Write::rows(rows));
        async move {
            durable
                .await
                .map(|_| ())
                .map_err(|e| ControlError::Unavailable(format!("storing the change: {e}")))
        }
    }

    fn control_row_of(&self, slot: &Slot, by: &str) -> Rows {
        control::control_row(
            &slot.cfg.id,
            slot.control.as_str(),
            slot.origin.as_str(),
            slot.definition.clone(),
            by,
        )
    }

    /// Drains the account (no new cycle; the one in flight finishes); with `flatten`,
    /// then closes everything; resolves with the close-all report, if any.
    fn drain_future(
        &self,
        id: &AccountId,
        flatten: bool,
    ) -> impl std::future::Future<Output = Option<CloseAllReport>> {
        let addr = self.accounts.get(id).and_then(|s| s.addr.clone());
        let id = id.clone();
        async move {
            let addr = addr?;
            let _ = addr.send(Drain).await;
            if !flatten {
                return None;
            }
            let reason = format!("account {} removed with close_positions", id.as_str());
            match tokio::time::timeout(CLOSE_ALL_DEADLINE, addr.send(FlattenAccount { reason }))
                .await
            {
                Ok(Ok(r)) => Some(r),
                Ok(Err(e)) => Some(CloseAllReport {
                    problems: vec![format!("account actor: {e}")],
                    ..CloseAllReport::default()
                }),
                Err(_) => Some(CloseAllReport {
                    problems: vec!["close-all did not finish within 60 s".into()],
                    ..CloseAllReport::default()
                }),
            }
        }
    }

    /// Tears down a drained account's tree (it was marked stopped before).
    fn tear_down(&mut self, id: &AccountId) {
        if let Some(slot) = self.accounts.get_mut(id) {
            if slot.control == Control::Stopped {
                if let Some(tree) = slot.tree.take() {
                    tree.cancel();
                }
                slot.addr = None;
                slot.restart_at = None;
                slot.awaiting_start = false;
                info!(self.log, "account stopped by an operator"; "account_id" => id.to_string());
            }
        }
    }

    fn publish_state(&self, id: &AccountId, state: &str, by: &str) {
        self.bus.do_send(Publish(EventDraft::account(
            Channel::TradingEvents,
            "account_status",
            id,
            None,
            serde_json::json!({"state": state, "by": by}),
        )));
    }
}

impl Handler<AddAccount> for Supervisor {
    type Result = ResponseFuture<ControlResult>;

    fn handle(&mut self, msg: AddAccount, _: &mut Self::Context) -> Self::Result {
        let result = (|| {
            self.refuse_while_shutting_down()?;
            if let Some(slot) = self.accounts.get(&msg.cfg.id) {
                return Err(ControlError::Conflict(format!(
                    "account {:?} already exists (state {}); an id is never reused — remove \
                     it and choose another id, or resume it",
                    msg.cfg.id.as_str(),
                    slot.control.as_str()
                )));
            }
            if crate::domain::policy::BuiltinPolicy::from_model(&msg.cfg.llm_model).is_none() {
                crate::actors::decision::ModelEngine::new(&msg.cfg, &self.shared.llm).map_err(
                    |e| ControlError::Invalid(format!("account {:?}: {e}", msg.cfg.id.as_str())),
                )?;
            }
            self.ensure_hubs(&msg.cfg)
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
            Ok(())
        })();
        if let Err(e) = result {
            return Box::pin(async move { Err(e) });
        }
        let id = msg.cfg.id.clone();
        let cfg = Arc::new(msg.cfg);
        // Registered and recorded before the account starts: its start reads its row
        // after every write queued before it.
        let durable = self.persist(vec![
            Rows::Control(ControlRow::Register(control::account_row(&cfg))),
            control::control_row(&id, "active", "api", Some(msg.definition.clone()), &msg.by),
        ]);
        self.insert_slot(cfg.clone(), Control::Active, Origin::Api);
        if let Some(slot) = self.accounts.get_mut(&id) {
            slot.definition = Some(msg.definition);
        }
        self.start_account(&id);
        info!(self.log, "account added over the API"; "account_id" => id.to_string(), "by" => &msg.by);
        self.publish_state(&id, "added", &msg.by);
        Box::pin(async move {
            durable.await?;
            Ok(
                serde_json::json!({"account_id": id, "state": "active", "mode": cfg.mode.as_str(),
                "llm_model": cfg.llm_model, "interval": cfg.interval.label}),
            )
        })
    }
}

impl Handler<RemoveAccount> for Supervisor {
    type Result = ResponseActFuture<Self, ControlResult>;

    fn handle(&mut self, msg: RemoveAccount, _: &mut Self::Context) -> Self::Result {
        let checked = self
            .refuse_while_shutting_down()
            .and_then(|_| self.slot(&msg.id).map(|_| ()));
        if let Err(e) = checked {
            return Box::pin(fut::ready(Err(e)));
        }
        let Some(slot) = self.accounts.get_mut(&msg.id) else {
            return Box::pin(fut::ready(Err(ControlError::NotFound(msg.id.to_string()))));
        };
        let was = slot.control;
        slot.control = Control::Stopped;
        slot.awaiting_start = false;
        slot.restart_at = None;
        let row = self
            .accounts
            .get(&msg.id)
            .map(|s| self.control_row_of(s, &msg.by));
        let durable = self.persist(row.into_iter().collect());
        let drained = self.drain_future(&msg.id, msg.close_positions);
        self.publish_state(&msg.id, "stopping", &msg.by);
        let id = msg.id.clone();
        Box::pin(
            async move {
                let report = drained.await;
                (report, durable.await)
            }
            .into_actor(self)
            .map(move |(report, durable), act, _| {
                act.tear_down(&id);
                act.publish_state(&id, "stopped", &msg.by);
                durable?;
                Ok(serde_json::json!({"account_id": id, "state": "stopped",
                    "was": was.as_str(), "close_positions": msg.close_positions,
                    "close_all": report}))
            }),
        )
    }
}

impl Handler<SetAccountPaused> for Supervisor {
    type Result = ResponseFuture<ControlResult>;

    fn handle(&mut self, msg: SetAccountPaused, _: &mut Self::Context) -> Self::Result {
        let checked = self
            .refuse_while_shutting_down()
            .and_then(|_| self.slot(&msg.id).map(|s| s.control));
        let was = match checked {
            Ok(c) => c,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if msg.paused && was == Control::Stopped {
            return Box::pin(async move {
                Err(ControlError::Conflict(format!(
                    "account {:?} is stopped (removed); resume it first",
                    msg.id.as_str()
                )))
            });
        }
        let wanted = if msg.paused {
            Control::Paused
        } else {
            Control::Active
        };
        let mut addr = None;
        if let Some(slot) = self.accounts.get_mut(&msg.id) {
            slot.control = wanted;
            addr = slot.addr.clone();
        }
        let row = self
            .accounts
            .get(&msg.id)
            .map(|s| self.control_row_of(s, &msg.by));
        let durable = self.persist(row.into_iter().collect());
        if was == Control::Stopped {
            // Resuming a removed account starts it again from its stored state.
            self.start_account(&msg.id);
            addr = None;
        }
        self.publish_state(&msg.id, wanted.as_str(), &msg.by);
        info!(self.log, "account control changed by an operator";
            "account_id" => msg.id.to_string(), "by" => &msg.by, "was" => was.as_str(),
            "now" => wanted.as_str());
        let id = msg.id.clone();
        Box::pin(async move {
            if let Some(a) = addr {
                // Answered once no cycle decided before the change is in flight.
                let _ =
                    tokio::time::timeout(CLOSE_ALL_DEADLINE, a.send(SetPaused(msg.paused))).await;
            }
            durable.await?;
            Ok(serde_json::json!({"account_id": id, "state": wanted.as_str(), "was": was.as_str()}))
        })
    }
}

impl Handler<CloseAllOf> for Supervisor {
    type Result = ResponseFuture<ControlResult>;

    fn handle(&mut self, msg: CloseAllOf, _: &mut Self::Context) -> Self::Result {
        let addr = self
            .refuse_while_shutting_down()
            .and_then(|_| self.slot(&msg.id))
            .and_then(|s| {
                s.addr.clone().ok_or_else(|| {
                    ControlError::Conflict(format!(
                        "account {:?} is not running (state {}); nothing can be closed now",
                        msg.id.as_str(),
                        Self::offline_status(s).state
                    ))
                })
            });
        let id = msg.id.clone();
        let by = msg.by.clone();
        Box::pin(async move {
            let addr = addr?;
            let reason = format!("close-all requested by {by}");
            let report =
                tokio::time::timeout(CLOSE_ALL_DEADLINE, addr.send(FlattenAccount { reason }))
                    .await
                    .map_err(|_| {
                        ControlError::Unavailable("close-all did not finish within 60 s".into())
                    })?
                    .map_err(|e| ControlError::Unavailable(format!("account actor: {e}")))?;
            Ok(
                serde_json::json!({"account_id": id, "flat": report.problems.is_empty(),
                "cancelled_orders": report.cancelled_orders,
                "closed_positions": report.closed_positions, "fills": report.fills,
                "problems": report.problems}),
            )
        })
    }
}

impl Handler<SetKillSwitch> for Supervisor {
    type Result = ResponseFuture<ControlResult>;

    fn handle(&mut self, msg: SetKillSwitch, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.refuse_while_shutting_down() {
            return Box::pin(async move { Err(e) });
        }
        self.shared.kill_switch.set(msg.enabled);
        let now = Utc::now();
        self.kill_by = msg.enabled.then(|| (msg.by.clone(), now));
        if msg.enabled {
            warn!(self.log, "global kill switch ON: no account opens anything new";
                "by" => &msg.by, "flatten" => msg.flatten);
        } else {
            warn!(self.log, "global kill switch OFF: accounts may open positions again"; "by" => &msg.by);
        }
        let durable = self.persist(vec![Rows::Control(ControlRow::Flag(ControlFlagRow {
            name: "kill_switch".into(),
            enabled: msg.enabled,
            detail: serde_json::json!({"flatten": msg.flatten}),
            updated_by: msg.by.clone(),
            updated_at: now,
        }))]);
        self.bus.do_send(Publish(EventDraft {
            channel: Channel::TradingEvents,
            kind: "kill_switch",
            account_id: None,
            cycle_id: None,
            symbol: None,
            ts: now,
            data: serde_json::json!({"enabled": msg.enabled, "flatten": msg.flatten, "by": msg.by}),
        }));
        let running: Vec<(AccountId, Addr<Account>)> = if msg.enabled && msg.flatten {
            self.accounts
                .iter()
                .filter_map(|(id, s)| s.addr.clone().map(|a| (id.clone(), a)))
                .collect()
        } else {
            Vec::new()
        };
        let started = Instant::now();
        Box::pin(async move {
            let by = msg.by.clone();
            let flattened = futures_util::future::join_all(running.into_iter().map(|(id, a)| {
                let reason = format!("global kill switch with flatten, by {by}");
                async move {
                    let r =
                        tokio::time::timeout(CLOSE_ALL_DEADLINE, a.send(FlattenAccount { reason }))
                            .await;
                    let report = match r {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => CloseAllReport {
                            problems: vec![format!("account actor: {e}")],
                            ..CloseAllReport::default()
                        },
                        Err(_) => CloseAllReport {
                            problems: vec!["close-all did not finish within 60 s".into()],
                            ..CloseAllReport::default()
                        },
                    };
                    (id, report)
                }
            }))
            .await;
            durable.await?;
            let not_flat: Vec<&AccountId> = flattened
                .iter()
                .filter(|(_, r)| !r.problems.is_empty())
                .map(|(id, _)| id)
                .collect();
            let accounts: serde_json::Map<String, serde_json::Value> = flattened
                .iter()
                .map(|(id, r)| (id.to_string(), serde_json::to_value(r).unwrap_or_default()))
                .collect();
            Ok(
                serde_json::json!({"enabled": msg.enabled, "flatten": msg.flatten,
                "all_flat": not_flat.is_empty(), "not_flat": not_flat,
                "flatten_ms": started.elapsed().as_millis() as u64, "accounts": accounts}),
            )
        })
    }
}

impl Handler<ReloadAccounts> for Supervisor {
    type Result = ResponseActFuture<Self, ControlResult>;

    fn handle(&mut self, msg: ReloadAccounts, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.refuse_while_shutting_down() {
            return Box::pin(fut::ready(Err(e)));
        }
        // 1. The plan, checked whole before anything changes.
        let mut added = Vec::new();
        let mut changed = Vec::new();
        let mut unchanged = Vec::new();
        let mut skipped = Vec::new();
        let mut problems = Vec::new();
        let new_ids: Vec<&AccountId> = msg.accounts.iter().map(|a| &a.id).collect();
        for cfg in &msg.accounts {
            match self.accounts.get(&cfg.id) {
                Some(slot) if slot.origin == Origin::Api => skipped.push(serde_json::json!({
                    "account_id": cfg.id,
                    "reason": "added over the API: the file does not change it (remove it over the API first)"
                })),
                Some(slot) if slot.in_file => {
                    if control::fingerprint(&slot.cfg) == control::fingerprint(cfg) {
                        unchanged.push(cfg.id.clone());
                    } else {
                        changed.push(cfg.clone());
                    }
                }
                _ => added.push(cfg.clone()),
            }
        }
        for cfg in added.iter().chain(changed.iter()) {
            if crate::domain::policy::BuiltinPolicy::from_model(&cfg.llm_model).is_none() {
                if let Err(e) = crate::actors::decision::ModelEngine::new(cfg, &self.shared.llm) {
                    problems.push(format!("account {:?}: {e}", cfg.id.as_str()));
                }
            }
        }
        if !problems.is_empty() {
            return Box::pin(fut::ready(Err(ControlError::Invalid(problems.join("\n")))));
        }
        for cfg in added.iter().chain(changed.iter()) {
            if let Err(e) = self.ensure_hubs(cfg) {
                return Box::pin(fut::ready(Err(ControlError::Invalid(e.to_string()))));
            }
        }
        let removed: Vec<AccountId> = self
            .accounts
            .iter()
            .filter(|(id, s)| s.origin == Origin::File && s.in_file && !new_ids.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        // 2. Apply: rows first (registered before any start), then the actors.
        let mut rows = Vec::new();
        for cfg in added.iter().chain(changed.iter()) {
            rows.push(Rows::Control(ControlRow::Register(control::account_row(
                cfg,
            ))));
        }
        for cfg in &added {
            rows.push(control::control_row(
                &cfg.id, "active", "file", None, &msg.by,
            ));
        }
        let durable = self.persist(rows);
        for cfg in &added {
            let cfg = Arc::new(cfg.clone());
            match self.accounts.get_mut(&cfg.id) {
                Some(slot) => {
                    // Back in the file after a reload removed it.
                    slot.cfg = cfg.clone();
                    slot.in_file = true;
                    slot.control = Control::Active;
                    self.directory.upsert(cfg.clone());
                }
                None => self.insert_slot(cfg.clone(), Control::Active, Origin::File),
            }
            self.start_account(&cfg.id);
        }
        let mut restarts = Vec::new();
        for cfg in &changed {
            let cfg = Arc::new(cfg.clone());
            self.directory.upsert(cfg.clone());
            if let Some(slot) = self.accounts.get_mut(&cfg.id) {
                slot.cfg = cfg.clone();
                if slot.addr.is_some() {
                    restarts.push(cfg.id.clone());
                }
            }
        }
        for id in &removed {
            if let Some(slot) = self.accounts.get_mut(id) {
                slot.in_file = false;
                slot.control = Control::Stopped;
                slot.awaiting_start = false;
                slot.restart_at = None;
            }
        }
        let drains: Vec<_> = restarts
            .iter()
            .chain(removed.iter())
            .map(|id| self.drain_future(id, false))
            .collect();
        let diff = serde_json::json!({
            "added": added.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            "removed": removed,
            "changed": changed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            "unchanged": unchanged,
            "skipped": skipped,
        });
        info!(self.log, "reloading the accounts file"; "by" => &msg.by, "diff" => diff.to_string());
        Box::pin(
            async move {
                futures_util::future::join_all(drains).await;
                durable.await
            }
            .into_actor(self)
            .map(move |durable, act, _| {
                for id in &removed {
                    act.tear_down(id);
                    act.publish_state(id, "stopped", &msg.by);
                }
                for id in &restarts {
                    // Drained: a new tree with the new settings.
                    act.start_account(id);
                }
                durable?;
                Ok(diff)
            }),
        )
    }
}
