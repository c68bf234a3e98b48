//! MarketDataHub: one per venue and symbol, shared by every account that trades it.
//!
//! It polls the venue's public endpoints (klines 5m and 4h, premiumIndex, openInterest;
//! exchangeInfo at start and hourly), computes the indicators into a
//! [`MarketSnapshot`], and hands it out: the latest snapshot on request
//! ([`GetHubView`]), a [`PriceTick`] to every watcher (paper TP/SL between cycles), a
//! `snapshot` event and a row, written through the store (the event is published once
//! the row is durable).
//!
//! Invariants: market data for a symbol is fetched once per venue, not once per account;
//! a hub polls at the shortest interval of its watchers (bounded by
//! `market_data.max_poll_interval`, at least once a second) and never runs two polls at
//! once; a failing venue only makes this hub's snapshot stale (retries and backoff are
//! in the client), it never blocks or fails anything else; a poll starts only once the
//! previous snapshot is in the store's queue (backpressure when the queue is full).

use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::messages::*;
use crate::config::MarketDataSettings;
use crate::db::models::{CandleRow, MarketSnapshotRow};
use crate::domain::instrument::SymbolRules;
use crate::domain::snapshot::{MarketSnapshot, SnapshotInput};
use crate::domain::types::{AccountId, Candle, Symbol};
use crate::exchange::aster::MarketClient;
use crate::store::{Queued, Rows, Store, Write};
use actix::prelude::*;
use actix::WeakRecipient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use slog::{debug, info, warn, Logger};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Open-interest values kept for the average.
const OI_HISTORY: usize = 30;
/// How often trading rules are refreshed.
const RULES_TTL: Duration = Duration::from_secs(3600);
/// Fastest allowed poll.
const MIN_POLL: Duration = Duration::from_secs(1);

/// The market data of one symbol on one venue.
pub struct MarketDataHub {
    venue: String,
    symbol: Symbol,
    client: Arc<MarketClient>,
    settings: MarketDataSettings,
    /// Watching accounts: their interval and a weak address (a hub never keeps a
    /// stopped account's ExecutionActor alive; a gone one is dropped at the next tick).
    watchers: HashMap<AccountId, (Duration, WeakRecipient<PriceTick>)>,
    latest: Option<Arc<MarketSnapshot>>,
    rules: Option<SymbolRules>,
    rules_at: Option<Instant>,
    oi_history: VecDeque<Decimal>,
    saved_until: HashMap<&'static str, DateTime<Utc>>,
    polling: bool,
    stopped: bool,
    waiters: Vec<oneshot::Sender<HubView>>,
    period: Duration,
    timer: Option<SpawnHandle>,
    status: HubStatus,
    bus: Addr<EventBus>,
    store: Store,
    /// The last snapshot's write, until it is queued.
    last_write: Option<Queued>,
    log: Logger,
}

struct PollResult {
    rules: Option<Result<Option<SymbolRules>, String>>,
    k5: Vec<Candle>,
    k4: Vec<Candle>,
    mark_price: Decimal,
    funding_rate: Decimal,
    next_funding_time: Option<DateTime<Utc>>,
    open_interest: Decimal,
}

impl MarketDataHub {
    /// A hub for `symbol` on the venue behind `client`.
    pub fn new(
        venue: String,
        symbol: Symbol,
        client: Arc<MarketClient>,
        settings: MarketDataSettings,
        bus: Addr<EventBus>,
        store: Store,
        log: &Logger,
    ) -> Self {
        let period = settings.max_poll_interval.max(MIN_POLL);
        let log = log.new(slog::o!("component" => "market_data_hub",
            "venue" => venue.clone(), "symbol" => symbol.to_string()));
        MarketDataHub {
            status: HubStatus {
                venue: venue.clone(),
                symbol: symbol.to_string(),
                poll_ms: period.as_millis() as u64,
                ..Default::default()
            },
            venue,
            symbol,
            client,
            settings,
            watchers: HashMap::new(),
            latest: None,
            rules: None,
            rules_at: None,
            oi_history: VecDeque::new(),
            saved_until: HashMap::new(),
            polling: false,
            stopped: false,
            waiters: Vec::new(),
            period,
            timer: None,
            bus,
            store,
            last_write: None,
            log,
        }
    }

    fn wanted_period(&self) -> Duration {
        self.watchers
            .values()
            .map(|(d, _)| *d)
            .min()
            .unwrap_or(self.settings.max_poll_interval)
            .min(self.settings.max_poll_interval)
            .max(MIN_POLL)
    }

    fn reschedule(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let period = self.wanted_period();
        if self.timer.is_some() && period == self.period {
            return;
        }
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.period = period;
        self.status.poll_ms = period.as_millis() as u64;
        self.timer = Some(ctx.run_interval(period, |act, ctx| act.poll(ctx)));
        debug!(self.log, "poll period set"; "period_ms" => period.as_millis() as u64);
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.polling || self.stopped {
            return;
        }
        self.polling = true;
        let client = self.client.clone();
        let symbol = self.symbol.clone();
        let limit = self.settings.kline_limit;
        let need_rules = self
            .rules_at
            .map(|t| t.elapsed() > RULES_TTL)
            .unwrap_or(true);
        let previous = self.last_write.take();
        let fut = async move {
            if let Some(previous) = previous {
                // Refused only once the store is closed (shutdown).
                let _ = previous.await;
            }
            let rules = if need_rules {
                Some(
                    client
                        .exchange_info()
                        .await
                        .map(|info| {
                            // The venue's declared weight limit feeds the shared gate.
                            if let Some(limit) = info.request_weight_per_minute() {
                                client.gate().set_weight_limit(limit);
                            }
                            info.rules(&symbol).cloned()
                        })
                        .map_err(|e| e.to_string()),
                )
            } else {
                None
            };
            let (k5, k4, premium, oi) = tokio::join!(
                client.klines(&symbol, "5m", limit),
                client.klines(&symbol, "4h", limit),
                client.premium_index(&symbol),
                client.open_interest(&symbol),
            );
            let premium = premium.map_err(|e| e.to_string())?;
            Ok::<_, String>(PollResult {
                rules,
                k5: k5.map_err(|e| e.to_string())?,
                k4: k4.map_err(|e| e.to_string())?,
                mark_price: premium.mark_price,
                funding_rate: premium.last_funding_rate,
                next_funding_time: Some(premium.next_funding_time),
                open_interest: oi.map_err(|e| e.to_string())?.open_interest,
            })
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _ctx| {
            act.polling = false;
            if act.stopped {
                return;
            }
            match res {
                Ok(p) => act.on_data(p),
                Err(e) => act.on_failure(e),
            }
            // Whoever asked for fresh data gets the outcome of this poll.
            let view = act.view();
            for w in act.waiters.drain(..) {
                let _ = w.send(view.clone());
            }
        }));
    }

    fn on_failure(&mut self, error: String) {
        self.status.polls_failed += 1;
        self.status.consecutive_failures += 1;
        self.status.last_error = Some(error.clone());
        warn!(self.log, "market data poll failed"; "error" => &error,
            "consecutive_failures" => self.status.consecutive_failures);
        self.bus.do_send(Publish(EventDraft {
            channel: Channel::MarketData,
            kind: "market_data_error",
            account_id: None,
            cycle_id: None,
            symbol: Some(self.symbol.to_string()),
            ts: Utc::now(),
            data: serde_json::json!({
                "venue": self.venue, "symbol": self.symbol, "error": error,
                "consecutive_failures": self.status.consecutive_failures,
            }),
        }));
    }

    fn on_data(&mut self, p: PollResult) {
        match p.rules {
            Some(Ok(Some(rules))) => {
                self.rules = Some(rules);
                self.rules_at = Some(Instant::now());
            }
            Some(Ok(None)) => {
                self.on_failure(format!(
                    "{} is not listed in the venue's exchangeInfo",
                    self.symbol
                ));
                return;
            }
            Some(Err(e)) => {
                // Keep old rules if any; without any, the snapshot is still useful but
                // execution will refuse orders until rules arrive.
                warn!(self.log, "exchangeInfo failed"; "error" => e);
            }
            None => {}
        }
        self.oi_history.push_back(p.open_interest);
        while self.oi_history.len() > OI_HISTORY {
            self.oi_history.pop_front();
        }
        let oi: Vec<Decimal> = self.oi_history.iter().copied().collect();
        let now = Utc::now();
        let input = SnapshotInput {
            venue: &self.venue,
            symbol: &self.symbol,
            candles_5m: &p.k5,
            candles_4h: &p.k4,
            mark_price: p.mark_price,
            funding_rate: p.funding_rate,
            next_funding_time: p.next_funding_time,
            open_interest: &oi,
            now,
        };
        let snapshot = match MarketSnapshot::build(&input) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                self.on_failure(e.to_string());
                return;
            }
        };
        self.status.polls_ok += 1;
        self.status.consecutive_failures = 0;
        self.status.last_error = None;
        self.status.last_ok_at = Some(now);
        if self.status.polls_ok == 1 {
            info!(self.log, "market data flowing"; "last_price" => snapshot.last_price.to_string());
        }
        let tick = PriceTick {
            symbol: self.symbol.clone(),
            last_price: snapshot.last_price,
            mark_price: snapshot.mark_price,
            funding_rate: snapshot.funding_rate,
            next_funding_time: snapshot.next_funding_time,
            ts: now,
        };
        let before = self.watchers.len();
        self.watchers.retain(|_, (_, ticks)| match ticks.upgrade() {
            Some(recipient) => {
                recipient.do_send(tick.clone());
                true
            }
            None => false,
        });
        if self.watchers.len() != before {
            self.status.watchers = self.watchers.len();
        }
        let data = serde_json::to_value(&*snapshot).unwrap_or_default();
        let event = EventDraft {
            channel: Channel::MarketData,
            kind: "snapshot",
            account_id: None,
            cycle_id: None,
            symbol: Some(self.symbol.to_string()),
            ts: now,
            data: data.clone(),
        };
        let candles = self.new_candles("5m", &p.k5);
        let mut candles4 = self.new_candles("4h", &p.k4);
        let mut all = candles;
        all.append(&mut candles4);
        let rows = Rows::Snapshot {
            snapshot: MarketSnapshotRow {
                id: snapshot.id,
                ts: snapshot.timestamp,
                venue: self.venue.clone(),
                symbol: self.symbol.to_string(),
                last_price: snapshot.last_price,
                mark_price: snapshot.mark_price,
                funding_rate: snapshot.funding_rate,
                open_interest: snapshot.open_interest.latest,
                data,
            },
            candles: all,
        };
        self.last_write = Some(self.store.write(Write::new(vec![rows], vec![event])));
        self.latest = Some(snapshot);
    }

    /// Bars not stored yet (the last stored one again: it was still open).
    fn new_candles(&mut self, interval: &'static str, candles: &[Candle]) -> Vec<CandleRow> {
        let since = self.saved_until.get(interval).copied();
        let rows: Vec<CandleRow> = candles
            .iter()
            .filter(|c| since.map(|s| c.open_time >= s).unwrap_or(true))
            .map(|c| CandleRow {
                venue: self.venue.clone(),
                symbol: self.symbol.to_string(),
                kline_interval: interval.to_string(),
                open_time: c.open_time,
                open: c.open,
                high: c.high,
                low: c.low,
                close: c.close,
                volume: c.volume,
                close_time: c.close_time,
            })
            .collect();
        if let Some(last) = candles.last() {
            self.saved_until.insert(interval, last.open_time);
        }
        rows
    }
}

impl MarketDataHub {
    fn view(&self) -> HubView {
        HubView {
            snapshot: self.latest.clone(),
            rules: self.rules.clone(),
            status: self.status.clone(),
        }
    }
}

impl Actor for MarketDataHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(self.log, "market data hub started");
        self.reschedule(ctx);
        self.poll(ctx);
    }
}

impl Handler<WatchSymbol> for MarketDataHub {
    type Result = ();

    fn handle(&mut self, msg: WatchSymbol, ctx: &mut Self::Context) {
        self.watchers
            .insert(msg.account_id, (msg.interval, msg.ticks.downgrade()));
        self.status.watchers = self.watchers.len();
        self.reschedule(ctx);
    }
}

impl Handler<UnwatchSymbol> for MarketDataHub {
    type Result = ();

    fn handle(&mut self, msg: UnwatchSymbol, ctx: &mut Self::Context) {
        self.watchers.remove(&msg.0);
        self.status.watchers = self.watchers.len();
        self.reschedule(ctx);
    }
}

impl Handler<StopPolling> for MarketDataHub {
    type Result = ();

    fn handle(&mut self, _: StopPolling, ctx: &mut Self::Context) {
        self.stopped = true;
        self.waiters.clear();
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        info!(self.log, "market data hub stopped");
    }
}

impl Handler<GetHubView> for MarketDataHub {
    type Result = ResponseFuture<HubView>;

    fn handle(&mut self, msg: GetHubView, ctx: &mut Self::Context) -> Self::Result {
        let view = self.view();
        let stale = match (msg.max_age, &self.latest) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(max), Some(s)) => s.age(Utc::now()).to_std().map(|a| a > max).unwrap_or(false),
        };
        if !stale || self.stopped {
            return Box::pin(async move { view });
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.poll(ctx);
        let timeout = self.settings.request_timeout * (self.settings.max_retries + 2);
        Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(fresh)) => fresh,
                _ => view,
            }
        })
    }
}
