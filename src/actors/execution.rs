//! ExecutionActor: the one place an account's orders, positions and balance change.
//! It drives the account's venue (the paper venue in this version), turns every change
//! into rows for the Recorder and events for the bus, and fires TP/SL on every price
//! tick from the MarketDataHubs — not only at cycle time.
//!
//! Invariant: every batch it records carries the paper wallet after the step, so a
//! restart resumes the same balance and positions.

use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::messages::*;
use crate::actors::recorder::{
    RecordEquity, RecordExecution, Recorder, StoredAccount, RECENT_HISTORY,
};
use crate::config::{AccountConfig, TradingMode};
use crate::db::models::{DiaryEntryRow, FillRow};
use crate::db::queries::ExecutionBatch;
use crate::domain::types::utc_midnight;
use crate::domain::types::CycleId;
use crate::exchange::paper::{PaperVenue, StoredPaperState};
use actix::prelude::*;
use chrono::DateTime;
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::json;
use slog::{info, Logger};
use std::collections::VecDeque;
use std::sync::Arc;

/// The order executor of one account.
pub struct ExecutionActor {
    cfg: Arc<AccountConfig>,
    venue: PaperVenue,
    recent_fills: VecDeque<FillRow>,
    recent_diary: VecDeque<DiaryEntryRow>,
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
        if cfg.mode == TradingMode::Live {
            return Err("live trading is not available in this version".into());
        }
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
        let today = utc_midnight(Utc::now());
        let actor = ExecutionActor {
            cfg,
            venue,
            recent_fills: stored.recent_fills.into_iter().collect(),
            recent_diary: stored.recent_diary.into_iter().collect(),
            day_start: stored.day_start_equity.map(|e| (today, e)),
            bus,
            recorder,
            log: log.new(slog::o!("component" => "execution")),
        };
        let mut actor = actor;
        let (view, _) = actor.venue.view();
        info!(actor.log, "paper account loaded";
            "wallet_balance" => view.wallet_balance.to_string(),
            "open_positions" => view.positions.len());
        actor.commit(corrections, None);
        Ok(actor)
    }

    /// Records a batch and publishes what it changed.
    fn commit(&mut self, batch: ExecutionBatch, cycle: Option<CycleId>) {
        if batch.is_empty() {
            return;
        }
        for f in &batch.fills {
            self.recent_fills.push_front(f.clone());
        }
        for d in &batch.diary {
            self.recent_diary.push_front(d.clone());
        }
        self.recent_fills.truncate(RECENT_HISTORY as usize);
        self.recent_diary.truncate(RECENT_HISTORY as usize);
        let id = &self.cfg.id;
        for o in &batch.orders {
            self.publish(
                Channel::TradingEvents,
                "order",
                o.cycle_id.map(CycleId).or(cycle),
                &o.symbol,
                serde_json::to_value(o).unwrap_or_default(),
            );
            info!(self.log, "order"; "cycle_id" => o.cycle_id.map(|c| c.to_string()),
                "client_order_id" => &o.client_order_id, "symbol" => &o.symbol,
                "side" => &o.side, "type" => &o.order_type, "status" => &o.status,
                "quantity" => o.quantity.map(|q| q.to_string()),
                "reason" => o.reject_reason.clone());
        }
        for f in &batch.fills {
            self.publish(
                Channel::TradingEvents,
                "fill",
                f.cycle_id.map(CycleId).or(cycle),
                &f.symbol,
                serde_json::to_value(f).unwrap_or_default(),
            );
            info!(self.log, "fill"; "cycle_id" => f.cycle_id.map(|c| c.to_string()),
                "client_order_id" => &f.client_order_id, "symbol" => &f.symbol,
                "side" => &f.side, "quantity" => f.quantity.to_string(),
                "price" => f.price.to_string(), "fee" => f.fee.to_string(),
                "realized_pnl" => f.realized_pnl.to_string(), "reason" => &f.reason);
        }
        for p in &batch.positions {
            self.publish(
                Channel::Positions,
                "position",
                cycle,
                &p.symbol,
                serde_json::to_value(p).unwrap_or_default(),
            );
        }
        if batch.paper_wallet.is_some() {
            self.bus.do_send(Publish(EventDraft::account(
                Channel::Positions,
                "balance",
                id,
                cycle,
                self.venue.balance_json(),
            )));
        }
        self.recorder.do_send(RecordExecution(batch));
    }

    fn publish(
        &self,
        channel: Channel,
        kind: &'static str,
        cycle: Option<CycleId>,
        symbol: &str,
        data: serde_json::Value,
    ) {
        self.bus.do_send(Publish(
            EventDraft::account(channel, kind, &self.cfg.id, cycle, data).with_symbol(symbol),
        ));
    }
}

impl Actor for ExecutionActor {
    type Context = Context<Self>;
}

impl Handler<PriceTick> for ExecutionActor {
    type Result = ();

    fn handle(&mut self, tick: PriceTick, _: &mut Self::Context) {
        let batch = self.venue.on_price(&tick.symbol, tick.mark_price, tick.ts);
        self.commit(batch, None);
    }
}

impl Handler<GetExecutionView> for ExecutionActor {
    type Result = MessageResult<GetExecutionView>;

    fn handle(&mut self, _: GetExecutionView, _: &mut Self::Context) -> Self::Result {
        let (account, last_trades) = self.venue.view();
        // The first valuation of a UTC day is that day's start equity (daily loss rule).
        let today = utc_midnight(Utc::now());
        if self.day_start.map(|(d, _)| d != today).unwrap_or(true) {
            self.day_start = Some((today, account.equity));
        }
        MessageResult(ExecutionView {
            account,
            last_trades,
            open_orders: self.venue.open_orders(),
            recent_fills: self.recent_fills.iter().cloned().collect(),
            recent_diary: self.recent_diary.iter().cloned().collect(),
            day_start_equity: self.day_start.map(|(_, e)| e),
        })
    }
}

impl Handler<Execute> for ExecutionActor {
    type Result = MessageResult<Execute>;

    fn handle(&mut self, msg: Execute, _: &mut Self::Context) -> Self::Result {
        let mut report = ExecutionReport::default();
        for a in &msg.decisions {
            let now = Utc::now();
            // The snapshot's mark first: a TP/SL crossed since the last tick fires
            // before a new order is placed.
            let pre = self
                .venue
                .on_price(&a.snapshot.symbol, a.snapshot.mark_price, now);
            self.commit(pre, Some(msg.cycle_id));
            let batch = self.venue.execute(
                msg.cycle_id,
                a.decision_id,
                &a.decision,
                a.snapshot.last_price,
                msg.rules.get(&a.snapshot.symbol),
                self.cfg.leverage,
                now,
            );
            report.orders += batch
                .orders
                .iter()
                .filter(|o| o.status != "CANCELED")
                .count();
            report.fills += batch.fills.len();
            self.commit(batch, Some(msg.cycle_id));
        }
        let now = Utc::now();
        let (marks, equity) = self.venue.mark_to_market(msg.cycle_id, now);
        // Revalued positions are stored, not published: the balance event carries it.
        if !marks.is_empty() {
            self.recorder.do_send(RecordExecution(marks));
        }
        self.bus.do_send(Publish(EventDraft::account(
            Channel::Positions,
            "balance",
            &self.cfg.id,
            Some(msg.cycle_id),
            json!({
                "wallet_balance": equity.wallet_balance,
                "unrealized_pnl": equity.unrealized_pnl,
                "equity": equity.equity,
                "used_margin": equity.used_margin,
                "available": equity.available,
            }),
        )));
        self.recorder.do_send(RecordEquity(equity));
        MessageResult(report)
    }
}
