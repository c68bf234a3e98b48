//! The typed values the engine keeps and produces: orders with their lifecycle steps,
//! fills, positions, income, reconciliation events and diary entries. `db/` maps them to
//! rows and back; the prompt context and the risk rules read them as they are.
//!
//! Invariants: sides, statuses, reasons and origins are enums (text exists only at the
//! edges); money, prices and quantities are decimals; every value carries its account
//! and, where one caused it, its cycle.

use crate::domain::decision::PositionView;
use crate::domain::orders::{OrderStatus, OrderType};
use crate::domain::paper::PaperPosition;
use crate::domain::types::{AccountId, Asset, CycleId, PositionSide, Side, Symbol, TradeAction};
use crate::engine::reconcile::Finding;
use crate::exchange::venue::VenueOrder;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Defines a closed set of words stored as text: `as_str`, `parse`, `Display`.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a stored word.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// Why a fill happened.
    FillReason {
        /// An entry order of vibex.
        Entry => "entry",
        /// A reduce-only exit of vibex (a decision, close-all, a crossed level).
        Close => "close",
        /// vibex's take-profit trigger.
        TakeProfit => "take_profit",
        /// vibex's stop-loss trigger.
        StopLoss => "stop_loss",
        /// The venue's liquidation (`autoclose-` orders).
        Liquidation => "liquidation",
        /// An order vibex did not place (by hand, another tool).
        External => "external",
    }
}

words! {
    /// Whether a position is still held.
    PositionStatus {
        /// Held.
        Open => "open",
        /// Closed (its row stays, with `closed_at` and the reason).
        Closed => "closed",
    }
}

words! {
    /// Who opened a position.
    Origin {
        /// vibex, from a decision.
        Vibex => "vibex",
        /// Found on the venue, never opened by vibex: reported, never closed by it.
        Adopted => "adopted",
    }
}

words! {
    /// Why a position closed.
    CloseReason {
        /// A decision closed it (reversal or an allocation of 0).
        Decision => "decision",
        /// Its take-profit fired.
        TakeProfit => "take_profit",
        /// Its stop-loss fired.
        StopLoss => "stop_loss",
        /// The venue liquidated it.
        Liquidation => "liquidation",
        /// A TP/SL level was already crossed when it was placed: closed at market.
        LevelCrossed => "level_crossed",
        /// Close-all (API or kill switch).
        CloseAll => "close_all",
        /// The venue no longer holds it and nothing vibex knows explains why (closed by
        /// hand, by another tool).
        ClosedOnVenue => "closed_on_venue",
    }
}

words! {
    /// What an income record is.
    IncomeKind {
        /// Realized PnL of a fill.
        RealizedPnl => "REALIZED_PNL",
        /// Funding paid or received.
        FundingFee => "FUNDING_FEE",
        /// Trading fee.
        Commission => "COMMISSION",
        /// The clearance fee of a liquidation (the venue's `INSURANCE_CLEAR`).
        LiquidationFee => "LIQUIDATION_FEE",
        /// A transfer in or out.
        Transfer => "TRANSFER",
        /// Anything else the venue books.
        Other => "OTHER",
    }
}

impl IncomeKind {
    /// The kind of a venue income type.
    pub fn from_venue(text: &str) -> IncomeKind {
        match text {
            "INSURANCE_CLEAR" => IncomeKind::LiquidationFee,
            other => IncomeKind::parse(other).unwrap_or(IncomeKind::Other),
        }
    }
}

impl FillReason {
    /// The reason a fill of `order` has (an order vibex placed).
    pub fn of_order(order: &Order) -> FillReason {
        match order.order_type {
            OrderType::TakeProfitMarket => FillReason::TakeProfit,
            OrderType::StopMarket => FillReason::StopLoss,
            OrderType::Liquidation => FillReason::Liquidation,
            _ if order.reduce_only || order.close_position => FillReason::Close,
            _ => FillReason::Entry,
        }
    }
}

impl CloseReason {
    /// What a fired trigger or the venue's own order closing a position means.
    pub fn of_closing_order(order_type: &OrderType) -> Option<CloseReason> {
        match order_type {
            OrderType::TakeProfitMarket => Some(CloseReason::TakeProfit),
            OrderType::StopMarket => Some(CloseReason::StopLoss),
            OrderType::Liquidation => Some(CloseReason::Liquidation),
            _ => None,
        }
    }

    /// The words for a log line or an order event.
    pub fn describe(self) -> &'static str {
        match self {
            CloseReason::Decision => "position closed by decision",
            CloseReason::TakeProfit => "take-profit hit",
            CloseReason::StopLoss => "stop-loss hit",
            CloseReason::Liquidation => "liquidated by the venue",
            CloseReason::LevelCrossed => "TP/SL level already crossed",
            CloseReason::CloseAll => "close-all",
            CloseReason::ClosedOnVenue => "closed on the venue",
        }
    }
}

/// One order vibex placed, tracks or refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// vibex's id of the order.
    pub id: Uuid,
    /// Its account.
    pub account_id: AccountId,
    /// The cycle that placed it.
    pub cycle_id: Option<CycleId>,
    /// The decision behind it.
    pub decision_id: Option<Uuid>,
    /// Deterministic `vx-...` id (the idempotency key), or the venue's id of an adopted order.
    pub client_order_id: String,
    /// The venue's id, once it answered.
    pub venue_order_id: Option<String>,
    /// The perpetual.
    pub symbol: Symbol,
    /// BUY or SELL.
    pub side: Side,
    /// As placed.
    pub order_type: OrderType,
    /// Base quantity; `None` for a close-position trigger.
    pub quantity: Option<Decimal>,
    /// Limit price (vibex sends none).
    pub price: Option<Decimal>,
    /// Trigger price of a TP/SL.
    pub stop_price: Option<Decimal>,
    /// Reduce-only.
    pub reduce_only: bool,
    /// Close-position trigger.
    pub close_position: bool,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// Filled so far.
    pub filled_quantity: Decimal,
    /// Average fill price.
    pub avg_fill_price: Option<Decimal>,
    /// Why it was refused.
    pub reject_reason: Option<String>,
    /// When vibex created it.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Protects a position (a TP/SL or another reduce-only order).
    pub fn is_protective(&self) -> bool {
        self.close_position || self.reduce_only
    }

    /// The order as a venue would list it (the paper venue is restored from these).
    pub fn as_venue_order(&self) -> VenueOrder {
        VenueOrder {
            symbol: self.symbol.clone(),
            order_id: self
                .venue_order_id
                .clone()
                .unwrap_or_else(|| self.id.simple().to_string()),
            client_order_id: self.client_order_id.clone(),
            side: self.side,
            order_type: self.order_type.clone(),
            status: self.status,
            orig_qty: self.quantity.unwrap_or_default(),
            executed_qty: self.filled_quantity,
            avg_price: self.avg_fill_price,
            stop_price: self.stop_price,
            reduce_only: self.reduce_only,
            close_position: self.close_position,
            update_time: self.updated_at,
        }
    }
}

/// One step in an order's life (`order_events`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// When.
    pub ts: DateTime<Utc>,
    /// The order (vibex's id).
    pub order_id: Uuid,
    /// Its account.
    pub account_id: AccountId,
    /// The order's cycle.
    pub cycle_id: Option<CycleId>,
    /// The status it reached.
    pub status: OrderStatus,
    /// The request, the venue's answer, or the reason.
    pub detail: serde_json::Value,
}

/// One execution on the venue, attributed to its order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    /// vibex's id of the fill.
    pub id: Uuid,
    /// Execution time (the venue's).
    pub ts: DateTime<Utc>,
    /// Its account.
    pub account_id: AccountId,
    /// The cycle of the order it filled.
    pub cycle_id: Option<CycleId>,
    /// The order it filled, when vibex placed it.
    pub order_id: Option<Uuid>,
    /// That order's client id (`venue-<orderId>` for an order nobody can name).
    pub client_order_id: String,
    /// The perpetual.
    pub symbol: Symbol,
    /// BUY or SELL.
    pub side: Side,
    /// Base quantity.
    pub quantity: Decimal,
    /// Price.
    pub price: Decimal,
    /// Fee paid.
    pub fee: Decimal,
    /// PnL the fill realized.
    pub realized_pnl: Decimal,
    /// Why it happened.
    pub reason: FillReason,
    /// The venue's trade id (each is stored once).
    pub venue_trade_id: Option<String>,
}

/// A position's lifecycle (one per open, kept after it closes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// vibex's id of the position.
    pub id: Uuid,
    /// Its account.
    pub account_id: AccountId,
    /// The perpetual.
    pub symbol: Symbol,
    /// Long or short.
    pub side: PositionSide,
    /// Base quantity.
    pub quantity: Decimal,
    /// Average entry price.
    pub entry_price: Decimal,
    /// Leverage.
    pub leverage: u32,
    /// Margin held.
    pub margin: Decimal,
    /// Take-profit level of its exit plan.
    pub tp_price: Option<Decimal>,
    /// Stop-loss level of its exit plan.
    pub sl_price: Option<Decimal>,
    /// The exit plan in words.
    pub exit_plan: String,
    /// Last mark.
    pub mark_price: Option<Decimal>,
    /// PnL at the mark.
    pub unrealized_pnl: Decimal,
    /// PnL realized by its fills.
    pub realized_pnl: Decimal,
    /// Open or closed.
    pub status: PositionStatus,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When it closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Why it closed.
    pub close_reason: Option<CloseReason>,
    /// The cycle that opened it.
    pub opened_cycle_id: Option<CycleId>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The venue's liquidation price.
    pub liquidation_price: Option<Decimal>,
    /// Who opened it.
    pub origin: Origin,
}

impl Position {
    /// PnL of the position at `mark`.
    pub fn unrealized_at(&self, mark: Decimal) -> Decimal {
        ((mark - self.entry_price) * self.quantity * self.side.sign()).round_dp(8)
    }

    /// The position as the policy and the risk rules see it, valued at `mark`.
    pub fn view(&self, mark: Decimal) -> PositionView {
        PositionView {
            symbol: self.symbol.clone(),
            side: self.side,
            quantity: self.quantity,
            entry_price: self.entry_price,
            leverage: self.leverage,
            unrealized_pnl: self.unrealized_at(mark),
            tp_price: self.tp_price,
            sl_price: self.sl_price,
            exit_plan: self.exit_plan.clone(),
            opened_at: self.opened_at,
        }
    }

    /// The position as the paper book holds it (the paper venue is restored from these).
    pub fn to_paper(&self) -> PaperPosition {
        PaperPosition {
            symbol: self.symbol.clone(),
            side: self.side,
            quantity: self.quantity,
            entry_price: self.entry_price,
            leverage: self.leverage,
            margin: self.margin,
            tp_price: self.tp_price,
            sl_price: self.sl_price,
            opened_at: self.opened_at,
            realized_pnl: self.realized_pnl,
        }
    }
}

/// A wallet movement the venue booked (realized PnL, funding, commission...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Income {
    /// vibex's id.
    pub id: Uuid,
    /// When the venue booked it.
    pub ts: DateTime<Utc>,
    /// Its account.
    pub account_id: AccountId,
    /// The cycle whose poll found it.
    pub cycle_id: Option<CycleId>,
    /// The symbol, when it belongs to one.
    pub symbol: Option<Symbol>,
    /// What it is.
    pub kind: IncomeKind,
    /// Signed amount (+ credited).
    pub amount: Decimal,
    /// Asset (`USDT`).
    pub asset: String,
    /// The venue's transaction id (each stored once).
    pub venue_tran_id: Option<String>,
    /// The venue's words and the trade it came from.
    pub detail: serde_json::Value,
}

/// One correction reconciliation made (`reconciliation_events`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReconciliationEvent {
    /// vibex's id.
    pub id: Uuid,
    /// When.
    pub ts: DateTime<Utc>,
    /// Its account.
    pub account_id: AccountId,
    /// The cycle that reconciled.
    pub cycle_id: Option<CycleId>,
    /// What was found.
    pub finding: Finding,
    /// What was done, beyond the finding (the venue's status of an order...).
    pub extra: serde_json::Value,
}

impl ReconciliationEvent {
    /// The finding and the extra as one JSON object (the row's `detail`).
    pub fn detail(&self) -> serde_json::Value {
        let mut detail = serde_json::to_value(&self.finding).unwrap_or_default();
        if let (Some(d), Some(e)) = (detail.as_object_mut(), self.extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        detail
    }
}

/// What an executed decision did, in the trading diary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiaryEntry {
    /// vibex's id.
    pub id: Uuid,
    /// When.
    pub ts: DateTime<Utc>,
    /// Its account.
    pub account_id: AccountId,
    /// The cycle.
    pub cycle_id: Option<CycleId>,
    /// The asset decided on.
    pub asset: Asset,
    /// buy / sell / hold.
    pub action: TradeAction,
    /// Notional asked for.
    pub allocation_usd: Option<Decimal>,
    /// Quantity filled by the entry.
    pub amount: Option<Decimal>,
    /// Entry fill price.
    pub entry_price: Option<Decimal>,
    /// Take-profit level.
    pub tp_price: Option<Decimal>,
    /// Client id of the take-profit order.
    pub tp_oid: Option<String>,
    /// Stop-loss level.
    pub sl_price: Option<Decimal>,
    /// Client id of the stop-loss order.
    pub sl_oid: Option<String>,
    /// The exit plan.
    pub exit_plan: Option<String>,
    /// The rationale.
    pub rationale: Option<String>,
    /// What the orders did (statuses, prices, refusals).
    pub order_result: Option<serde_json::Value>,
    /// When the entry filled.
    pub opened_at: Option<DateTime<Utc>>,
    /// Whether the entry filled.
    pub filled: bool,
}

/// The account's value at the end of a cycle (`equity_snapshots`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EquitySnapshot {
    /// When.
    pub ts: DateTime<Utc>,
    /// Its account.
    pub account_id: AccountId,
    /// The cycle.
    pub cycle_id: Option<CycleId>,
    /// Wallet balance.
    pub wallet_balance: Decimal,
    /// Σ unrealized PnL.
    pub unrealized_pnl: Decimal,
    /// Wallet + unrealized.
    pub equity: Decimal,
    /// Margin held by positions.
    pub used_margin: Decimal,
    /// What new orders can use.
    pub available: Decimal,
}

/// The exit plan of an entry order, kept until its position exists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EntryPlan {
    /// Take-profit level.
    pub tp_price: Option<Decimal>,
    /// Stop-loss level.
    pub sl_price: Option<Decimal>,
    /// The plan in words.
    pub exit_plan: String,
}

/// Everything one step of the engine changed, to record and announce.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Changes {
    /// Orders created or changed (their latest state).
    pub orders: Vec<Order>,
    /// Lifecycle steps of those orders.
    pub order_events: Vec<OrderEvent>,
    /// Executions.
    pub fills: Vec<Fill>,
    /// Positions opened, changed or closed (their latest state).
    pub positions: Vec<Position>,
    /// Diary entries.
    pub diary: Vec<DiaryEntry>,
    /// Wallet movements.
    pub income: Vec<Income>,
    /// Corrections of vibex's book to the venue's.
    pub reconciliation: Vec<ReconciliationEvent>,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
            && self.order_events.is_empty()
            && self.fills.is_empty()
            && self.positions.is_empty()
            && self.diary.is_empty()
            && self.income.is_empty()
            && self.reconciliation.is_empty()
    }

    /// Appends `other` (in order).
    pub fn extend(&mut self, other: Changes) {
        self.orders.extend(other.orders);
        self.order_events.extend(other.order_events);
        self.fills.extend(other.fills);
        self.positions.extend(other.positions);
        self.diary.extend(other.diary);
        self.income.extend(other.income);
        self.reconciliation.extend(other.reconciliation);
    }
}
