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

use crate::actors::account::{Account, SharedSettings};
use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::market_data::MarketDataHub;
use crate::actors::messages::*;
use crate::actors::tree::Tree;
use crate::config::{AccountConfig, Settings};
use crate::domain::types::{AccountId, Symbol};
use crate::exchange::aster::{MarketClient, RetryPolicy};
use crate::store::Store;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{error, info, Logger};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After this long without a crash, the backoff starts again from one second.
const HEALTHY_AFTER: Duration = Duration::from_secs(300);
/// Longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

struct Slot {
    cfg: Arc<AccountConfig>,
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
        let log = log.new(slog::o!("component" => "supervisor"));
        check_pool_fits(settings.runtime.arbiters.max(1))?;
        let pool: Vec<Arbiter> = (0..settings.runtime.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        info!(log, "arbiter pool started"; "arbiters" => pool.len());
        let policy = RetryPolicy {
            max_retries: settings.market_data.max_retries,
            timeout: settings.market_data.request_timeout,
            ..RetryPolicy::default()
        };
        let mut clients: BTreeMap<String, Arc<MarketClient>> = BTreeMap::new();
        let mut hubs = BTreeMap::new();
        let mut accounts = BTreeMap::new();
        for cfg in &settings.accounts {
            let venue = cfg.asterdex.base_url.trim_end_matches('/').to_string();
            let client = match clients.get(&venue) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(
                        MarketClient::new(&venue, policy)
                            .map_err(|e| TopologyError::Venue {
                                account: cfg.id.clone(),
                                url: venue.clone(),
                                reason: e.to_string(),
                            })?
                            .with_logger(market_log.clone()),
                    );
                    clients.insert(venue.clone(), c.clone());
                    c
                }
            };
            for asset in &cfg.assets {
                let key = (venue.clone(), asset.symbol());
                if hubs.contains_key(&key) {
                    continue;
                }
                let hub = MarketDataHub::new(
                    venue.clone(),
                    asset.symbol(),
                    client.clone(),
                    settings.market_data.clone(),
                    bus.clone(),
                    store.clone(),
                    market_log,
                );
                let arbiter = &pool[hubs.len() % pool.len()];
                let addr = MarketDataHub::start_in_arbiter(&arbiter.handle(), |_| hub);
                hubs.insert(key, addr);
            }
            accounts.insert(
                cfg.id.clone(),
                Slot {
                    cfg: Arc::new(cfg.clone()),
                    addr: None,
                    tree: None,
                    arbiter: accounts.len() % pool.len(),
                    restarts: 0,
                    restart_at: None,
                    awaiting_start: true,
                    last_crash: None,
                    started: Instant::now(),
                },
            );
        }
        Ok(Supervisor {
            bus,
            store,
            hubs,
            accounts,
            shutting_down: false,
            started_at: Utc::now(),
            log,
            llm_log: llm_log.clone(),
            shared: Arc::new(SharedSettings {
                kill_switch: settings.kill_switch,
                llm: settings.llm.clone(),
                startup_spread: crate::domain::cadence::startup_spread(settings.accounts.len()),
            }),
            pool,
        })
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
            Account::new(cfg, shared, hubs, bus, store, restarts, &log, &llm_log).in_tree(&member)
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
            state: if slot.awaiting_start {
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

impl Handler<GetSystemStatus> for Supervisor {
    type Result = ResponseFuture<SystemStatus>;

    fn handle(&mut self, _: GetSystemStatus, _: &mut Self::Context) -> Self::Result {
        let accounts: Vec<_> = self
            .accounts
            .values()
            .map(|s| (s.addr.clone(), Self::offline_status(s)))
            .collect();
        let hubs: Vec<_> = self.hubs.values().cloned().collect();
        let started_at = self.started_at;
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
                market_data,
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
