//! The execution journal of one account: every [`ExecutionBatch`] a venue produces
//! goes through here to become one write of the store — the rows and the WebSocket
//! events that announce them (published once the rows are durable) — and log lines,
//! and the newest fills and diary entries are kept at hand for the prompt context.
//!
//! Entry points: [`Journal::commit`] (queued in call order, without waiting),
//! [`Journal::flushed`] (waits until the last commit is in the store's queue: the
//! ExecutionActor's backpressure) and [`Journal::commit_durable`] (waits until the
//! rows are durable, in PostgreSQL or the spool — used for an order's intent before it
//! is sent to a live venue, so that a crash between sending and answering still leaves
//! the client order id to look up).

use crate::actors::account::RECENT_HISTORY;
use crate::actors::events::{Channel, EventDraft};
use crate::db::models::{DiaryEntryRow, FillRow};
use crate::db::queries::ExecutionBatch;
use crate::domain::types::{AccountId, CycleId};
use crate::store::{Queued, Rows, Store, Write};
use slog::{info, warn, Logger};
use std::collections::VecDeque;

/// Rows and their events to the store, lines to the log. See the module docs.
pub struct Journal {
    account_id: AccountId,
    store: Store,
    /// The last commit's place in the store's queue, until it is queued.
    last_write: Option<Queued>,
    log: Logger,
    /// The newest fills, newest first.
    pub recent_fills: VecDeque<FillRow>,
    /// The newest diary entries, newest first.
    pub recent_diary: VecDeque<DiaryEntryRow>,
    /// Fills announced since start (for cycle reports).
    pub fills_announced: usize,
}

impl Journal {
    /// A journal for `account_id`, starting from the stored recent history.
    pub fn new(
        account_id: AccountId,
        store: Store,
        log: Logger,
        recent_fills: Vec<FillRow>,
        recent_diary: Vec<DiaryEntryRow>,
    ) -> Journal {
        Journal {
            account_id,
            store,
            last_write: None,
            log,
            recent_fills: recent_fills.into_iter().collect(),
            recent_diary: recent_diary.into_iter().collect(),
            fills_announced: 0,
        }
    }

    fn draft(
        &self,
        channel: Channel,
        kind: &'static str,
        cycle: Option<CycleId>,
        symbol: Option<&str>,
        data: serde_json::Value,
    ) -> EventDraft {
        let draft = EventDraft::account(channel, kind, &self.account_id, cycle, data);
        match symbol {
            Some(symbol) => draft.with_symbol(symbol),
            None => draft,
        }
    }

    /// Publishes an account event on `channel` (through the store: after the writes
    /// committed before it).
    pub fn publish(
        &mut self,
        channel: Channel,
        kind: &'static str,
        cycle: Option<CycleId>,
        symbol: Option<&str>,
        data: serde_json::Value,
    ) {
        let draft = self.draft(channel, kind, cycle, symbol, data);
        self.last_write = Some(self.store.write(Write::events(vec![draft])));
    }

    /// Queues `batch` and the events announcing it in the store (in call order).
    pub fn commit(&mut self, batch: ExecutionBatch, cycle: Option<CycleId>) {
        if let Some(events) = self.announce(&batch, cycle) {
            let w = Write::new(vec![Rows::Execution(batch)], events);
            self.last_write = Some(self.store.write(w));
        }
    }

    /// Waits until the last commit is in the store's queue (at once unless the queue
    /// is full).
    pub async fn flushed(&mut self) {
        if let Some(queued) = self.last_write.take() {
            // Refused only once the store is closed (shutdown).
            let _ = queued.await;
        }
    }

    /// Like [`Self::commit`], but returns only once the rows are durable (in
    /// PostgreSQL or the spool). If they cannot be made durable, that is logged and
    /// returned as an error so the caller does not send the order.
    pub async fn commit_durable(
        &mut self,
        batch: ExecutionBatch,
        cycle: Option<CycleId>,
    ) -> Result<(), String> {
        let Some(events) = self.announce(&batch, cycle) else {
            return Ok(());
        };
        let w = Write::new(vec![Rows::Execution(batch)], events);
        self.store.write_durable(w).await.map(|_| ()).map_err(|e| {
            let msg = format!("the order's row could not be made durable ({e}); order not sent");
            warn!(self.log, "could not record an order before sending it"; "error" => &msg);
            msg
        })
    }

    /// Logs and remembers what `batch` changed and returns the events announcing it;
    /// `None` when it is empty.
    fn announce(
        &mut self,
        batch: &ExecutionBatch,
        cycle: Option<CycleId>,
    ) -> Option<Vec<EventDraft>> {
        if batch.is_empty() {
            return None;
        }
        let mut events = Vec::new();
        self.fills_announced += batch.fills.len();
        for f in &batch.fills {
            self.recent_fills.push_front(f.clone());
        }
        for d in &batch.diary {
            self.recent_diary.push_front(d.clone());
        }
        self.recent_fills.truncate(RECENT_HISTORY as usize);
        self.recent_diary.truncate(RECENT_HISTORY as usize);
        for o in &batch.orders {
            events.push(self.draft(
                Channel::TradingEvents,
                "order",
                o.cycle_id.map(CycleId).or(cycle),
                Some(&o.symbol),
                serde_json::to_value(o).unwrap_or_default(),
            ));
            info!(self.log, "order"; "cycle_id" => o.cycle_id.map(|c| c.to_string()),
                "client_order_id" => &o.client_order_id, "symbol" => &o.symbol,
                "side" => &o.side, "type" => &o.order_type, "status" => &o.status,
                "quantity" => o.quantity.map(|q| q.to_string()),
                "reason" => o.reject_reason.clone());
        }
        for o in &batch.orders {
            // Order status changes also go to the positions channel (dashboards).
            events.push(self.draft(
                Channel::Positions,
                "order_status",
                o.cycle_id.map(CycleId).or(cycle),
                Some(&o.symbol),
                serde_json::json!({
                    "client_order_id": o.client_order_id, "type": o.order_type,
                    "side": o.side, "status": o.status, "stop_price": o.stop_price,
                    "quantity": o.quantity, "filled_quantity": o.filled_quantity,
                }),
            ));
        }
        for f in &batch.fills {
            events.push(self.draft(
                Channel::TradingEvents,
                "fill",
                f.cycle_id.map(CycleId).or(cycle),
                Some(&f.symbol),
                serde_json::to_value(f).unwrap_or_default(),
            ));
            info!(self.log, "fill"; "cycle_id" => f.cycle_id.map(|c| c.to_string()),
                "client_order_id" => &f.client_order_id, "symbol" => &f.symbol,
                "side" => &f.side, "quantity" => f.quantity.to_string(),
                "price" => f.price.to_string(), "fee" => f.fee.to_string(),
                "realized_pnl" => f.realized_pnl.to_string(), "reason" => &f.reason);
        }
        for p in &batch.positions {
            events.push(self.draft(
                Channel::Positions,
                "position",
                cycle,
                Some(&p.symbol),
                serde_json::to_value(p).unwrap_or_default(),
            ));
        }
        for r in &batch.reconciliation {
            events.push(self.draft(
                Channel::TradingEvents,
                "reconciliation",
                r.cycle_id.map(CycleId).or(cycle),
                r.symbol.as_deref(),
                serde_json::json!({"kind": r.kind, "detail": r.detail}),
            ));
            warn!(self.log, "reconciliation"; "kind" => &r.kind,
                "symbol" => r.symbol.clone(), "detail" => r.detail.to_string());
        }
        for i in &batch.income {
            info!(self.log, "income"; "kind" => &i.kind, "symbol" => i.symbol.clone(),
                "amount" => i.amount.to_string());
        }
        Some(events)
    }
}
