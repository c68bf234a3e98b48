//! Unit tests of the engine: inputs in a given order, the effects checked. No
//! PostgreSQL, no sockets, no clock: a scripted venue answers the engine's requests.
//!
//! One file per part of docs/trading.md: `lifecycle` (orders: written before sent,
//! unknown outcomes, entries and their refusals, protection, closing, close-all,
//! start-up), `reconciliation` (one test per row of the reconciliation table),
//! `attribution` (every path by which a fill arrives, the user stream before, after,
//! and never).

mod attribution;
mod lifecycle;
mod reconciliation;

use crate::domain::decision::TradeDecision;
use crate::domain::instrument::SymbolRules;
use crate::domain::orders::{OrderStatus, OrderType};
use crate::domain::types::{AccountId, Asset, CycleId, PositionSide, Side, Symbol, TradeAction};
use crate::engine::*;
use crate::exchange::error::VenueError;
use crate::exchange::venue::{
    OrderRequest, UserEvent, VenueBalance, VenueOrder, VenuePosition, VenueSnapshot, VenueTrade,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use uuid::Uuid;

pub(crate) const BTC: &str = "BTCUSDT";

pub(crate) fn btc() -> Symbol {
    Symbol(BTC.into())
}

/// What one job did, all effects gathered.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Every request asked, in order.
    pub requests: Vec<Request>,
    /// Every change recorded, in order.
    pub changes: Changes,
    /// Every intent, in order.
    pub intents: Changes,
    /// For each request, whether an intent was outstanding (written and not yet
    /// followed by its request) when it was asked: true for every placement.
    pub intent_before_place: Vec<bool>,
    pub notices: Vec<Notice>,
    pub outcome: Option<Outcome>,
    pub balance_changed: bool,
}

impl Run {
    pub fn fills(&self) -> &[Fill] {
        &self.changes.fills
    }

    /// The last state recorded of the order `coid`.
    pub fn order(&self, coid: &str) -> Option<&Order> {
        self.changes
            .orders
            .iter()
            .rev()
            .find(|o| o.client_order_id == coid)
    }

    /// The last state recorded of the position on BTC.
    pub fn position(&self) -> Option<&Position> {
        self.changes
            .positions
            .iter()
            .rev()
            .find(|p| p.symbol == btc())
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.changes
            .reconciliation
            .iter()
            .map(|r| r.finding.kind())
            .collect()
    }

    pub fn placed(&self) -> Vec<&OrderRequest> {
        self.requests
            .iter()
            .filter_map(|r| match r {
                Request::Place(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    pub fn cancelled(&self) -> Vec<&str> {
        self.requests
            .iter()
            .filter_map(|r| match r {
                Request::Cancel {
                    client_order_id, ..
                } => Some(client_order_id.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn warnings(&self) -> Vec<&Notice> {
        self.notices
            .iter()
            .filter(|n| n.level == Level::Warning)
            .collect()
    }
}

/// An engine and a clock that moves one second per input.
pub(crate) struct Desk {
    pub engine: Engine,
    pub now: DateTime<Utc>,
}

impl Desk {
    /// A live (remote venue) account with nothing stored.
    pub fn live() -> Desk {
        Desk::with(StoredBook::default(), false)
    }

    /// A paper (in-process venue) account with nothing stored.
    pub fn paper() -> Desk {
        Desk::with(StoredBook::default(), true)
    }

    pub fn with(stored: StoredBook, in_process: bool) -> Desk {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let mut engine = Engine::restore(
            EngineConfig {
                account_id: AccountId::new("a1"),
                leverage: 5,
                margin_type: "ISOLATED".into(),
                in_process,
            },
            stored,
            now,
        );
        engine.set_rules(&[(btc(), rules())].into_iter().collect());
        Desk { engine, now }
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.now += Duration::seconds(1);
        self.now
    }

    /// Runs `input` to the end of its job, answering every request with `venue`.
    pub fn run(
        &mut self,
        input: Input,
        mut venue: impl FnMut(&Request) -> Result<Reply, VenueError>,
    ) -> Run {
        let mut run = Run::default();
        let now = self.tick();
        let mut fx = self.engine.handle(input, now);
        let mut queue = std::collections::VecDeque::new();
        loop {
            let intents_now = !fx.intents.is_empty();
            run.changes.extend(std::mem::take(&mut fx.changes));
            run.intents.extend(std::mem::take(&mut fx.intents));
            run.notices.append(&mut fx.notices);
            run.balance_changed |= fx.balance_changed;
            for (id, r) in fx.requests.drain(..) {
                run.intent_before_place
                    .push(!matches!(r, Request::Place(_)) || intents_now);
                queue.push_back((id, r));
            }
            if let Some(outcome) = fx.done.take() {
                run.outcome = Some(outcome);
                assert!(!self.engine.busy(), "a finished job left work behind");
                return run;
            }
            let (id, request) = queue
                .pop_front()
                .expect("the engine waits for an answer it never asked for");
            let result = venue(&request);
            run.requests.push(request);
            let now = self.tick();
            fx = self.engine.handle(Input::Answer { id, result }, now);
        }
    }
}

/// BTC's rules: tick 0.1, step 0.001, min notional 5.
pub(crate) fn rules() -> SymbolRules {
    let mut r = SymbolRules::new(btc(), "TRADING");
    r.tick_size = Some(dec!(0.1));
    r.min_price = Some(dec!(0.1));
    r.step_size = Some(dec!(0.001));
    r.min_qty = Some(dec!(0.001));
    r.min_notional = Some(dec!(5));
    r
}

pub(crate) fn decision(action: TradeAction, allocation: Decimal) -> TradeDecision {
    TradeDecision {
        asset: Asset::new("BTC"),
        action,
        allocation_usd: allocation,
        tp_price: Some(dec!(66000.04)),
        sl_price: Some(dec!(57000.06)),
        exit_plan: "ride the trend".into(),
        rationale: "because".into(),
    }
}

pub(crate) fn execute(cycle: CycleId, action: TradeAction, allocation: Decimal) -> Input {
    Input::Execute {
        cycle,
        decision_id: Uuid::now_v7(),
        decision: decision(action, allocation),
        price: dec!(60000),
        rules: Some(rules()),
    }
}

/// The venue's answer to a placement: MARKET orders fill at `price`, triggers rest.
pub(crate) fn accept(o: &OrderRequest, price: Decimal, order_id: &str) -> VenueOrder {
    let market = o.kind == crate::exchange::venue::OrderKind::Market;
    VenueOrder {
        symbol: o.symbol.clone(),
        order_id: order_id.into(),
        client_order_id: o.client_order_id.clone(),
        side: o.side,
        order_type: o.kind.order_type(),
        status: if market {
            OrderStatus::Filled
        } else {
            OrderStatus::New
        },
        orig_qty: o.quantity.unwrap_or_default(),
        executed_qty: if market {
            o.quantity.unwrap_or_default()
        } else {
            Decimal::ZERO
        },
        avg_price: market.then_some(price),
        stop_price: o.stop_price,
        reduce_only: o.reduce_only,
        close_position: o.close_position,
        update_time: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
    }
}

/// A venue that accepts everything: market orders fill at 60 000, triggers rest,
/// cancels succeed, settings succeed. Snapshots and polls are empty.
pub(crate) fn obliging(r: &Request) -> Result<Reply, VenueError> {
    Ok(match r {
        Request::SyncTime => Reply::ClockOffset(3),
        Request::IsHedgeMode => Reply::HedgeMode(false),
        Request::SetMarginType { .. } | Request::SetLeverage { .. } | Request::CancelAll { .. } => {
            Reply::Done
        }
        Request::Place(o) => {
            Reply::Placed(accept(o, dec!(60000), &format!("v-{}", o.client_order_id)))
        }
        Request::Query { .. } => Reply::Order(None),
        Request::Cancel {
            symbol,
            client_order_id,
        } => Reply::Order(Some(VenueOrder {
            status: OrderStatus::Canceled,
            ..venue_trigger(symbol, client_order_id, OrderType::StopMarket)
        })),
        Request::Snapshot | Request::SnapshotOf(_) => Reply::Snapshot(VenueSnapshot::default()),
        Request::UserTrades { .. } => Reply::Trades(vec![]),
        Request::Income { .. } => Reply::Income(vec![]),
        Request::StoredOrder(_) => Reply::StoredOrder(None),
    })
}

pub(crate) fn venue_trigger(symbol: &Symbol, coid: &str, order_type: OrderType) -> VenueOrder {
    VenueOrder {
        symbol: symbol.clone(),
        order_id: format!("v-{coid}"),
        client_order_id: coid.into(),
        side: Side::Sell,
        order_type,
        status: OrderStatus::New,
        orig_qty: Decimal::ZERO,
        executed_qty: Decimal::ZERO,
        avg_price: None,
        stop_price: Some(dec!(1)),
        reduce_only: true,
        close_position: true,
        update_time: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
    }
}

pub(crate) fn venue_position(amount: Decimal, entry: Decimal) -> VenuePosition {
    VenuePosition {
        symbol: btc(),
        amount,
        entry_price: entry,
        mark_price: entry,
        unrealized_pnl: Decimal::ZERO,
        liquidation_price: None,
        leverage: 5,
        margin_type: "isolated".into(),
        isolated_margin: Decimal::ZERO,
    }
}

pub(crate) fn snapshot(
    positions: Vec<VenuePosition>,
    open_orders: Vec<VenueOrder>,
) -> VenueSnapshot {
    VenueSnapshot {
        balance: VenueBalance {
            wallet_balance: dec!(10000),
            available_balance: dec!(9000),
            margin_balance: dec!(10000),
            ..VenueBalance::default()
        },
        positions,
        open_orders,
    }
}

/// A fill of the venue order `order_id`, as `userTrades` reports it (no client id).
pub(crate) fn polled_trade(
    id: &str,
    order_id: &str,
    side: Side,
    qty: Decimal,
    price: Decimal,
    pnl: Decimal,
) -> VenueTrade {
    VenueTrade {
        id: id.into(),
        order_id: order_id.into(),
        client_order_id: None,
        symbol: btc(),
        side,
        price,
        quantity: qty,
        commission: dec!(0.5),
        commission_asset: "USDT".into(),
        realized_pnl: pnl,
        maker: false,
        time: Utc.with_ymd_and_hms(2026, 12, 1, 12, 5, 0).unwrap(),
    }
}

/// The user stream's event for a fill of `order` (it carries the client id).
pub(crate) fn stream_fill(
    order: &VenueOrder,
    trade_id: &str,
    price: Decimal,
    pnl: Decimal,
) -> UserEvent {
    let qty = if order.executed_qty.is_zero() {
        dec!(0.05)
    } else {
        order.executed_qty
    };
    let filled = VenueOrder {
        status: OrderStatus::Filled,
        executed_qty: qty,
        avg_price: Some(price),
        ..order.clone()
    };
    let trade = VenueTrade {
        client_order_id: Some(order.client_order_id.clone()),
        ..polled_trade(trade_id, &order.order_id, order.side, qty, price, pnl)
    };
    UserEvent::Order {
        order: Box::new(filled),
        trade: Some(Box::new(trade)),
    }
}

/// A desk holding a protected BTC long opened by the decision of `cycle` (entry, TP and
/// SL accepted): what `execute` of a buy leaves behind.
pub(crate) fn protected_long(desk: &mut Desk, cycle: CycleId) -> Run {
    let run = desk.run(execute(cycle, TradeAction::Buy, dec!(3000)), obliging);
    assert_eq!(run.outcome, Some(Outcome::Executed { orders: 1 }));
    assert_eq!(desk.engine.positions().count(), 1);
    assert_eq!(desk.engine.open_orders().len(), 2, "TP and SL working");
    run
}

/// The working order of `order_type` on BTC.
pub(crate) fn working(desk: &Desk, order_type: OrderType) -> Order {
    desk.engine
        .open_orders()
        .into_iter()
        .find(|o| o.order_type == order_type)
        .expect("a working order of that type")
}

pub(crate) fn long() -> PositionSide {
    PositionSide::Long
}
