//! What the venue says on its own (the user data stream, the paper venue's trigger
//! fills, liquidations and funding), and the attribution of every fill to its order.
//!
//! Attribution, whichever way a fill arrives (stream, `userTrades` poll, paper venue):
//! 1. the order in memory — working or recently finished — by venue order id, then by
//!    client order id when the fill carries one;
//! 2. a venue liquidation (`autoclose-...`) is the venue's own;
//! 3. otherwise the account's stored orders are asked (PostgreSQL, by venue order id or
//!    client order id) before anything is concluded;
//! 4. only a fill nobody can attribute is `external`, with a warning naming it.
//!
//! A fill of an order vibex placed carries that order, its cycle and the reason
//! (`entry`, `close`, `take_profit`, `stop_loss`).

use crate::domain::orders::OrderStatus;
use crate::engine::core::{trade_key, Engine, Then};
use crate::engine::io::*;
use crate::engine::model::*;
use crate::engine::reconcile::VIBEX_ORDER_PREFIX;
use crate::exchange::error::VenueError;
use crate::exchange::venue::{UserEvent, VenueOrder, VenueTrade};

/// Client order ids of the venue's liquidation orders start with this.
const LIQUIDATION_PREFIX: &str = "autoclose-";

impl Engine {
    /// One message from the venue.
    pub(crate) fn on_venue_event(&mut self, job: JobId, event: UserEvent, fx: &mut Effects) {
        match event {
            UserEvent::Order { order, trade } => {
                self.on_order_update(job, *order, trade.map(|t| *t), fx)
            }
            UserEvent::Account {
                reason,
                wallet_balance,
                positions,
            } => {
                // Balances are taken at once. Position changes the venue made on its own
                // (a close by hand, a liquidation) are corrected by the next
                // reconciliation, so that every such correction is recorded as one.
                if let Some(w) = wallet_balance {
                    self.balance.wallet_balance = w;
                }
                for (symbol, amount, _) in positions {
                    fx.notices.push(Notice::info(
                        "position update from the venue",
                        vec![
                            ("symbol", symbol.to_string()),
                            ("amount", amount.to_string()),
                            ("reason", reason.clone()),
                        ],
                    ));
                }
                fx.balance_changed = true;
            }
            UserEvent::MarginCall => fx
                .notices
                .push(Notice::warning("margin call from the venue", vec![])),
            UserEvent::ListenKeyExpired | UserEvent::Other(_) => {}
        }
    }

    /// An order changed on the venue (with its fill when it traded).
    fn on_order_update(
        &mut self,
        job: JobId,
        o: VenueOrder,
        trade: Option<VenueTrade>,
        fx: &mut Effects,
    ) {
        let coid = o.client_order_id.clone();
        // A finished order (its answer or a lookup came first) still owns late fills.
        let known = self
            .orders
            .get(&coid)
            .or_else(|| self.finished.get(&coid))
            .cloned();
        let order = known.map(|mut order| {
            if order.status != o.status || order.venue_order_id.is_none() {
                self.absorb(&mut fx.changes, &mut order, &o);
                fx.changes.orders.push(order.clone());
            }
            self.file_order(order.clone());
            order
        });
        if let Some(t) = trade {
            match &order {
                Some(order) => self.record_fill(&t, Some(order), fx),
                None => self.on_trade(job, t, fx),
            }
        }
        if o.status != OrderStatus::Filled {
            return;
        }
        match CloseReason::of_closing_order(&o.order_type) {
            Some(reason) if o.close_position || reason == CloseReason::Liquidation => {
                self.close_local(job, &o.symbol, o.avg_price, reason, fx);
            }
            _ => {
                if !self.positions.contains_key(&o.symbol) {
                    if let Some(plan) = self.plans.get(&coid).cloned() {
                        // An entry whose answer was lost: its fill arrived here.
                        let cycle = order.as_ref().and_then(|x| x.cycle_id);
                        self.opened(&o, cycle, &plan, fx);
                    }
                }
            }
        }
    }

    /// A fill: attributed from memory at once, or after asking the store.
    pub(crate) fn on_trade(&mut self, job: JobId, t: VenueTrade, fx: &mut Effects) {
        if self.seen_trade(&t) {
            return;
        }
        if let Some(order) = self.order_of(&t) {
            self.record_fill(&t, Some(&order), fx);
            return;
        }
        let coid = t.client_order_id.clone().unwrap_or_default();
        if coid.starts_with(LIQUIDATION_PREFIX) {
            self.record_fill(&t, None, fx);
            return;
        }
        if !coid.is_empty() && !coid.starts_with(VIBEX_ORDER_PREFIX) {
            // Named, and not vibex's: an order placed by hand or by another tool.
            self.record_fill(&t, None, fx);
            return;
        }
        let key = if coid.is_empty() {
            StoredOrderKey::VenueId(t.order_id.clone())
        } else {
            StoredOrderKey::ClientId(coid)
        };
        // One lookup per order: more fills of it wait for the same answer.
        if self.join_lookup(&key, &t) {
            return;
        }
        self.ask(
            job,
            Request::StoredOrder(key.clone()),
            Then::Lookup {
                key,
                trades: vec![t],
            },
            fx,
        );
    }

    /// The store answered a lookup for a fill.
    pub(crate) fn on_lookup(
        &mut self,
        trades: Vec<VenueTrade>,
        result: Result<Reply, VenueError>,
        fx: &mut Effects,
    ) {
        let found = match result {
            Ok(Reply::StoredOrder(found)) => found,
            Ok(other) => {
                fx.notices.push(Notice::warning(
                    "unexpected answer to an order lookup",
                    vec![("answer", format!("{other:?}"))],
                ));
                None
            }
            Err(e) => {
                fx.notices.push(Notice::warning(
                    "could not look the order of a fill up",
                    vec![
                        (
                            "venue_order_id",
                            trades
                                .first()
                                .map(|t| t.order_id.clone())
                                .unwrap_or_default(),
                        ),
                        ("error", e.to_string()),
                    ],
                ));
                None
            }
        };
        if let Some(order) = &found {
            // Keep it at hand: more fills of the same order may follow.
            if !self.orders.contains_key(&order.client_order_id) {
                self.finish_order(order.clone());
            }
        }
        for t in trades {
            self.attribute_looked_up(&t, found.as_ref(), fx);
        }
    }

    fn attribute_looked_up(&mut self, t: &VenueTrade, found: Option<&Order>, fx: &mut Effects) {
        match found {
            Some(order) => self.record_fill(t, Some(order), fx),
            None => {
                fx.notices.push(Notice::warning(
                    "a fill matches no order vibex placed; recorded as external",
                    vec![
                        ("symbol", t.symbol.to_string()),
                        ("venue_trade_id", t.id.clone()),
                        ("venue_order_id", t.order_id.clone()),
                        (
                            "client_order_id",
                            t.client_order_id.clone().unwrap_or_else(|| "-".into()),
                        ),
                    ],
                ));
                self.record_fill(t, None, fx);
            }
        }
    }

    /// The order a fill belongs to, from memory: by venue order id, then client id.
    fn order_of(&self, t: &VenueTrade) -> Option<Order> {
        let by_venue = |o: &&Order| o.venue_order_id.as_deref() == Some(t.order_id.as_str());
        self.orders
            .values()
            .find(by_venue)
            .or_else(|| self.finished.values().find(by_venue))
            .or_else(|| {
                let coid = t.client_order_id.as_deref()?;
                self.orders.get(coid).or_else(|| self.finished.get(coid))
            })
            .cloned()
    }

    /// Records a fill (once per venue trade id), attributed to `order`.
    pub(crate) fn record_fill(&mut self, t: &VenueTrade, order: Option<&Order>, fx: &mut Effects) {
        if !self.remember(trade_key(t)) {
            return;
        }
        let reason = match order {
            Some(o) => FillReason::of_order(o),
            None if t
                .client_order_id
                .as_deref()
                .is_some_and(|c| c.starts_with(LIQUIDATION_PREFIX)) =>
            {
                FillReason::Liquidation
            }
            None => FillReason::External,
        };
        fx.changes.fills.push(Fill {
            id: self.new_id(),
            ts: t.time,
            account_id: self.cfg.account_id.clone(),
            cycle_id: order.and_then(|o| o.cycle_id),
            order_id: order.map(|o| o.id),
            client_order_id: order
                .map(|o| o.client_order_id.clone())
                .or_else(|| t.client_order_id.clone())
                .unwrap_or_else(|| format!("venue-{}", t.order_id)),
            symbol: t.symbol.clone(),
            side: t.side,
            quantity: t.quantity,
            price: t.price,
            fee: t.commission,
            realized_pnl: t.realized_pnl,
            reason,
            venue_trade_id: Some(t.id.clone()),
        });
        if t.time > self.fills_since {
            self.fills_since = t.time;
        }
        self.last_trades.insert(t.symbol.clone(), t.time);
        if !t.realized_pnl.is_zero() {
            let now = self.now;
            let row = match self.positions.get_mut(&t.symbol) {
                Some(open) => Some(open),
                None => self.closed.get_mut(&t.symbol),
            };
            if let Some(row) = row {
                row.realized_pnl += t.realized_pnl;
                row.updated_at = now;
                fx.changes.positions.push(row.clone());
            }
        }
    }
}
