//! The execution journal of one account: every [`ExecutionBatch`] a venue produces
//! goes through here to become database rows (via the Recorder), WebSocket events (via
//! the EventBus) and log lines, and the newest fills and diary entries are kept at
//! hand for the prompt context.
//!
//! Entry points: [`Journal::commit`] (fire and forget, in send order) and
//! [`Journal::commit_durable`] (waits until the Recorder has written the rows — used
//! for an order's intent before it is sent to a live venue, so that a crash between
//! sending and answering still leaves the client order id to look up).

use crate::actors::event_bus::EventBus;
use crate::actors::events::{Channel, EventDraft};
use crate::actors::messages::Publish;
use crate::actors::recorder::{RecordExecution, Recorder, RECENT_HISTORY};
use crate::db::models::{DiaryEntryRow, FillRow};
use crate::db::queries::ExecutionBatch;
use crate::domain::types::{AccountId, CycleId};
use actix::Addr;
use slog::{info, warn, Logger};
use std::collections::VecDeque;

/// Rows to the Recorder, events to the bus, lines to the log. See the module docs.
pub struct Journal {
    account_id: AccountId,
    bus: Addr<EventBus>,
    recorder: Addr<Recorder>,
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
        bus: Addr<EventBus>,
        recorder: Addr<Recorder>,
        log: Logger,
        recent_fills: Vec<FillRow>,
        recent_diary: Vec<DiaryEntryRow>,
    ) -> Journal {
        Journal {
            account_id,
            bus,
            recorder,
            log,
            recent_fills: recent_fills.into_iter().collect(),
            recent_diary: recent_diary.into_iter().collect(),
            fills_announced: 0,
        }
    }

    /// Publishes an account event on `channel`.
    pub fn publish(
        &self,
        channel: Channel,
        kind: &'static str,
        cycle: Option<CycleId>,
        symbol: Option<&str>,
        data: serde_json::Value,
    ) {
        let mut draft = EventDraft::account(channel, kind, &self.account_id, cycle, data);
        if let Some(symbol) = symbol {
            draft = draft.with_symbol(symbol);
        }
        self.bus.do_send(Publish(draft));
    }

    /// Publishes what `batch` changed and hands it to the Recorder (in send order).
    pub fn commit(&mut self, batch: ExecutionBatch, cycle: Option<CycleId>) {
        if self.announce(&batch, cycle) {
            self.recorder.do_send(RecordExecution(batch));
        }
    }

    /// Like [`Self::commit`], but returns only once the rows are written. If the
    /// Recorder is gone the rows cannot be made durable: that is logged and returned
    /// as an error so the caller does not send the order.
    pub async fn commit_durable(
        &mut self,
        batch: ExecutionBatch,
        cycle: Option<CycleId>,
    ) -> Result<(), String> {
        if !self.announce(&batch, cycle) {
            return Ok(());
        }
        self.recorder
            .send(RecordExecution(batch))
            .await
            .map_err(|e| {
                let msg = format!("the database writer is gone ({e}); order not sent");
                warn!(self.log, "could not record an order before sending it"; "error" => &msg);
                msg
            })
    }

    /// Publishes, logs and remembers what `batch` changed; false when it is empty.
    fn announce(&mut self, batch: &ExecutionBatch, cycle: Option<CycleId>) -> bool {
        if batch.is_empty() {
            return false;
        }
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
            self.publish(
                Channel::TradingEvents,
                "order",
                o.cycle_id.map(CycleId).or(cycle),
                Some(&o.symbol),
                serde_json::to_value(o).unwrap_or_default(),
            );
            info!(self.log, "order"; "cycle_id" => o.cycle_id.map(|c| c.to_string()),
                "client_order_id" => &o.client_order_id, "symbol" => &o.symbol,
                "side" => &o.side, "type" => &o.order_type, "status" => &o.status,
                "quantity" => o.quantity.map(|q| q.to_string()),
                "reason" => o.reject_reason.clone());
        }
        for o in &batch.orders {
            // Order status changes also go to the positions channel (dashboards).
            self.publish(
                Channel::Positions,
                "order_status",
                o.cycle_id.map(CycleId).or(cycle),
                Some(&o.symbol),
                serde_json::json!({
                    "client_order_id": o.client_order_id, "type": o.order_type,
                    "side": o.side, "status": o.status, "stop_price": o.stop_price,
                    "quantity": o.quantity, "filled_quantity": o.filled_quantity,
                }),
            );
        }
        for f in &batch.fills {
            self.publish(
                Channel::TradingEvents,
                "fill",
                f.cycle_id.map(CycleId).or(cycle),
                Some(&f.symbol),
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
                Some(&p.symbol),
                serde_json::to_value(p).unwrap_or_default(),
            );
        }
        for r in &batch.reconciliation {
            self.publish(
                Channel::TradingEvents,
                "reconciliation",
                r.cycle_id.map(CycleId).or(cycle),
                r.symbol.as_deref(),
                serde_json::json!({"kind": r.kind, "detail": r.detail}),
            );
            warn!(self.log, "reconciliation"; "kind" => &r.kind,
                "symbol" => r.symbol.clone(), "detail" => r.detail.to_string());
        }
        for i in &batch.income {
            info!(self.log, "income"; "kind" => &i.kind, "symbol" => i.symbol.clone(),
                "amount" => i.amount.to_string());
        }
        true
    }
}
