//! The journal of one account's execution: what the engine changed becomes one write
//! of the store — the rows and the WebSocket events that announce them (published once
//! the rows are durable) — and log lines; the newest fills and diary entries are kept
//! at hand for the prompt context.
//!
//! Entry points: [`Journal::record`] (queued in call order, not awaited),
//! [`Journal::flushed`] (waits until the last write is in the store's queue: the
//! ExecutionActor's backpressure), [`Journal::record_durable`] (returns once the rows
//! are durable, in PostgreSQL or the spool: an order's intent before it is sent to a
//! remote venue), [`Journal::notices`] (the engine's log lines).

use crate::actors::account::RECENT_HISTORY;
use crate::actors::events::{Channel, EventDraft};
use crate::db::mapping::batch_of;
use crate::db::queries::ExecutionBatch;
use crate::domain::types::{AccountId, CycleId};
use crate::engine::{Changes, DiaryEntry, Fill, Level, Notice};
use crate::store::{Queued, Rows, Store, Write};
use rust_decimal::Decimal;
use slog::{info, warn, Logger};
use std::collections::VecDeque;

/// Rows and their events to the store, lines to the log. See the module docs.
pub struct Journal {
    account_id: AccountId,
    store: Store,
    /// The last write's place in the store's queue, until it is queued.
    last_write: Option<Queued>,
    log: Logger,
    /// The newest fills, newest first.
    pub recent_fills: VecDeque<Fill>,
    /// The newest diary entries, newest first.
    pub recent_diary: VecDeque<DiaryEntry>,
    /// Fills recorded since start (for cycle reports).
    pub fills_recorded: usize,
}

impl Journal {
    /// A journal for `account_id`, starting from the stored recent history.
    pub fn new(
        account_id: AccountId,
        store: Store,
        log: Logger,
        recent_fills: Vec<Fill>,
        recent_diary: Vec<DiaryEntry>,
    ) -> Journal {
        Journal {
            account_id,
            store,
            last_write: None,
            log,
            recent_fills: recent_fills.into_iter().collect(),
            recent_diary: recent_diary.into_iter().collect(),
            fills_recorded: 0,
        }
    }

    /// Announces an account event on `channel`, after the writes queued before it.
    pub fn publish(
        &mut self,
        channel: Channel,
        kind: &'static str,
        cycle: Option<CycleId>,
        data: serde_json::Value,
    ) {
        let draft = EventDraft::account(channel, kind, &self.account_id, cycle, data);
        self.write(Write::events(vec![draft]));
    }

    /// Queues a write (in call order) and remembers its place for [`Self::flushed`].
    pub fn write(&mut self, w: Write) {
        self.last_write = Some(self.store.write(w));
    }

    /// Waits until the last write is in the store's queue (at once unless the queue is
    /// full: the account's backpressure).
    pub async fn flushed(&mut self) {
        if let Some(queued) = self.last_write.take() {
            // Refused only once the store is closed (shutdown).
            let _ = queued.await;
        }
    }

    /// Records what changed and announces it once durable (in call order).
    pub fn record(&mut self, changes: &Changes, cycle: Option<CycleId>) {
        if let Some((batch, events)) = self.prepare(changes, cycle) {
            self.write(Write::new(vec![Rows::Execution(batch)], events));
        }
    }

    /// Like [`Self::record`], but returns only once the rows are durable (PostgreSQL or
    /// the spool). If they cannot be made durable that is an error: the caller does not
    /// send the order.
    pub async fn record_durable(
        &mut self,
        changes: &Changes,
        cycle: Option<CycleId>,
    ) -> Result<(), String> {
        let Some((batch, events)) = self.prepare(changes, cycle) else {
            return Ok(());
        };
        let w = Write::new(vec![Rows::Execution(batch)], events);
        self.store.write_durable(w).await.map(|_| ()).map_err(|e| {
            let msg = format!("the order's row could not be made durable ({e}); order not sent");
            warn!(self.log, "could not record an order before sending it"; "error" => &msg);
            msg
        })
    }

    /// Records rows that are not the engine's (the paper wallet, revalued positions).
    pub fn record_rows(&mut self, batch: ExecutionBatch) {
        if !batch.is_empty() {
            self.write(Write::rows(vec![Rows::Execution(batch)]));
        }
    }

    /// Records the paper wallet balance after a change.
    pub fn record_paper_wallet(&mut self, wallet: Decimal) {
        self.record_rows(ExecutionBatch {
            paper_wallet: Some((self.account_id.to_string(), wallet)),
            ..Default::default()
        });
    }

    /// Writes the engine's log lines.
    pub fn notices(&self, notices: &[Notice], cycle: Option<CycleId>) {
        let cycle = cycle.map(|c| c.to_string());
        for n in notices {
            let fields = NoticeFields(&n.fields);
            match n.level {
                Level::Info => info!(self.log, "{}", n.message; "cycle_id" => &cycle, fields),
                Level::Warning => warn!(self.log, "{}", n.message; "cycle_id" => &cycle, fields),
            }
        }
    }

    /// Keeps the recent history and logs what `changes` did; the rows and the events
    /// that announce them, or `None` when nothing changed.
    fn prepare(
        &mut self,
        changes: &Changes,
        cycle: Option<CycleId>,
    ) -> Option<(ExecutionBatch, Vec<EventDraft>)> {
        if changes.is_empty() {
            return None;
        }
        self.fills_recorded += changes.fills.len();
        for f in &changes.fills {
            self.recent_fills.push_front(f.clone());
        }
        for d in &changes.diary {
            self.recent_diary.push_front(d.clone());
        }
        self.recent_fills.truncate(RECENT_HISTORY as usize);
        self.recent_diary.truncate(RECENT_HISTORY as usize);
        let batch = batch_of(changes);
        let events = events_of(&self.account_id, &batch, cycle);
        self.log_rows(&batch);
        Some((batch, events))
    }

    fn log_rows(&self, batch: &ExecutionBatch) {
        for o in &batch.orders {
            info!(self.log, "order"; "cycle_id" => o.cycle_id.map(|c| c.to_string()),
                "client_order_id" => &o.client_order_id, "symbol" => &o.symbol,
                "side" => &o.side, "type" => &o.order_type, "status" => &o.status,
                "quantity" => o.quantity.map(|q| q.to_string()),
                "reason" => o.reject_reason.clone());
        }
        for f in &batch.fills {
            info!(self.log, "fill"; "cycle_id" => f.cycle_id.map(|c| c.to_string()),
                "client_order_id" => &f.client_order_id, "symbol" => &f.symbol,
                "side" => &f.side, "quantity" => f.quantity.to_string(),
                "price" => f.price.to_string(), "fee" => f.fee.to_string(),
                "realized_pnl" => f.realized_pnl.to_string(), "reason" => &f.reason);
        }
        for r in &batch.reconciliation {
            warn!(self.log, "reconciliation"; "kind" => &r.kind,
                "symbol" => r.symbol.clone(), "detail" => r.detail.to_string());
        }
        for i in &batch.income {
            info!(self.log, "income"; "kind" => &i.kind, "symbol" => i.symbol.clone(),
                "amount" => i.amount.to_string());
        }
    }
}

/// The engine's key-value context as slog fields.
struct NoticeFields<'a>(&'a [(&'static str, String)]);

impl slog::KV for NoticeFields<'_> {
    fn serialize(&self, _: &slog::Record, serializer: &mut dyn slog::Serializer) -> slog::Result {
        for (key, value) in self.0 {
            serializer.emit_str(slog::Key::from(*key), value)?;
        }
        Ok(())
    }
}

/// The WebSocket events announcing what `batch` changed: `order` and `fill` and
/// `reconciliation` (trading-events), `order_status` and `position` (positions).
pub fn events_of(
    account: &AccountId,
    batch: &ExecutionBatch,
    cycle: Option<CycleId>,
) -> Vec<EventDraft> {
    let event = |channel, kind, c: Option<uuid::Uuid>, symbol: Option<&str>, data| {
        let mut draft = EventDraft::account(channel, kind, account, c.map(CycleId).or(cycle), data);
        if let Some(symbol) = symbol {
            draft = draft.with_symbol(symbol);
        }
        draft
    };
    let mut out = Vec::new();
    for o in &batch.orders {
        out.push(event(
            Channel::TradingEvents,
            "order",
            o.cycle_id,
            Some(&o.symbol),
            serde_json::to_value(o).unwrap_or_default(),
        ));
    }
    for o in &batch.orders {
        // Order status changes also go to the positions channel (dashboards).
        out.push(event(
            Channel::Positions,
            "order_status",
            o.cycle_id,
            Some(&o.symbol),
            serde_json::json!({
                "client_order_id": o.client_order_id, "type": o.order_type,
                "side": o.side, "status": o.status, "stop_price": o.stop_price,
                "quantity": o.quantity, "filled_quantity": o.filled_quantity,
            }),
        ));
    }
    for f in &batch.fills {
        out.push(event(
            Channel::TradingEvents,
            "fill",
            f.cycle_id,
            Some(&f.symbol),
            serde_json::to_value(f).unwrap_or_default(),
        ));
    }
    for p in &batch.positions {
        out.push(event(
            Channel::Positions,
            "position",
            None,
            Some(&p.symbol),
            serde_json::to_value(p).unwrap_or_default(),
        ));
    }
    for r in &batch.reconciliation {
        out.push(event(
            Channel::TradingEvents,
            "reconciliation",
            r.cycle_id,
            r.symbol.as_deref(),
            serde_json::json!({"kind": r.kind, "detail": r.detail}),
        ));
    }
    out
}
