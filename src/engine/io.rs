//! The engine's boundary: what goes in ([`Input`]), what comes out ([`Effects`]), and
//! the requests the caller performs for it ([`Request`], answered by [`Reply`]).
//!
//! Protocol: the caller hands the engine one input with the current time and gets
//! [`Effects`]. It records `changes`, makes `intents` durable (and waits for that), then
//! performs `requests` one at a time in order, handing each answer back as
//! [`Input::Answer`] (which yields effects of its own), until the job reports
//! [`Effects::done`]. Nothing else reaches the venue or the database.

use crate::domain::decision::TradeDecision;
use crate::domain::instrument::SymbolRules;
use crate::domain::types::{CycleId, Symbol};
use crate::engine::model::{Changes, Order};
use crate::exchange::error::VenueError;
use crate::exchange::venue::{
    OrderRequest, UserEvent, VenueIncome, VenueOrder, VenueSnapshot, VenueTrade,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// Identifies one request the engine asked for (unique per engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Identifies one job (an input other than an answer) of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Something the engine is asked to do.
#[derive(Clone, Debug)]
pub enum Input {
    /// Measure the clock, refuse hedge mode, set leverage and margin type of the
    /// symbols, reconcile.
    Start {
        /// The account's symbols.
        symbols: Vec<Symbol>,
    },
    /// Read the venue and correct vibex's book to it; then poll fills and income.
    Reconcile {
        /// The cycle reconciling (none at start).
        cycle: Option<CycleId>,
    },
    /// Execute one approved decision.
    Execute {
        /// The cycle.
        cycle: CycleId,
        /// The decision's id (its row).
        decision_id: Uuid,
        /// The decision.
        decision: TradeDecision,
        /// The price quantities are computed at.
        price: Decimal,
        /// The symbol's trading rules, when the venue gave them.
        rules: Option<SymbolRules>,
    },
    /// Something the venue said on its own (user data stream, paper venue).
    Venue(UserEvent),
    /// Cancel every working order and close every position at market.
    CloseAll {
        /// Why (recorded with the orders).
        reason: String,
    },
    /// The answer to a request.
    Answer {
        /// Which request.
        id: RequestId,
        /// What came back.
        result: Result<Reply, VenueError>,
    },
}

/// Which order of the account's store to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredOrderKey {
    /// By the venue's order id (what `userTrades` carries).
    VenueId(String),
    /// By client order id.
    ClientId(String),
}

/// What the engine asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Venue clock offset.
    SyncTime,
    /// Whether the account is in hedge mode.
    IsHedgeMode,
    /// Set a symbol's margin type.
    SetMarginType {
        /// The perpetual.
        symbol: Symbol,
        /// `ISOLATED` / `CROSSED`.
        margin_type: String,
    },
    /// Set a symbol's leverage.
    SetLeverage {
        /// The perpetual.
        symbol: Symbol,
        /// Leverage.
        leverage: u32,
    },
    /// Place an order (its intent is in the same effects' `intents`).
    Place(OrderRequest),
    /// Look an order up by client order id.
    Query {
        /// The perpetual.
        symbol: Symbol,
        /// Client order id.
        client_order_id: String,
    },
    /// Cancel an order by client order id.
    Cancel {
        /// The perpetual.
        symbol: Symbol,
        /// Client order id.
        client_order_id: String,
    },
    /// Cancel every working order of a symbol.
    CancelAll {
        /// The perpetual.
        symbol: Symbol,
    },
    /// Balance, positions and every working order.
    Snapshot,
    /// Balance, positions and the working orders of these symbols.
    SnapshotOf(Vec<Symbol>),
    /// Fills of a symbol since a time.
    UserTrades {
        /// The perpetual.
        symbol: Symbol,
        /// Since.
        since: DateTime<Utc>,
    },
    /// Income records since a time.
    Income {
        /// Since.
        since: DateTime<Utc>,
    },
    /// An order of this account from the database (not the venue): a fill of an order
    /// no longer in memory.
    StoredOrder(StoredOrderKey),
}

/// The answer to a [`Request`].
#[derive(Clone, Debug)]
pub enum Reply {
    /// To [`Request::SyncTime`]: server minus local time, ms.
    ClockOffset(i64),
    /// To [`Request::IsHedgeMode`].
    HedgeMode(bool),
    /// To a request that answers nothing (leverage, margin type, cancel-all).
    Done,
    /// To [`Request::Place`].
    Placed(VenueOrder),
    /// To [`Request::Query`] / [`Request::Cancel`] (`None`: the venue does not know it).
    Order(Option<VenueOrder>),
    /// To [`Request::Snapshot`] / [`Request::SnapshotOf`].
    Snapshot(VenueSnapshot),
    /// To [`Request::UserTrades`].
    Trades(Vec<VenueTrade>),
    /// To [`Request::Income`].
    Income(Vec<VenueIncome>),
    /// To [`Request::StoredOrder`].
    StoredOrder(Option<Order>),
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// [`Input::Start`]: ready to trade, or why not (the message says what to do).
    Started(Result<(), String>),
    /// [`Input::Reconcile`]: the venue could not be read (the cycle is skipped).
    Reconciled(Result<(), String>),
    /// [`Input::Execute`]: how many orders it asked for.
    Executed {
        /// Orders asked for (entry, exit).
        orders: usize,
    },
    /// [`Input::Venue`]: applied.
    Applied,
    /// [`Input::CloseAll`]: what could not be done.
    ClosedAll {
        /// One line per failure.
        problems: Vec<String>,
    },
}

/// How loud a [`Notice`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Worth knowing.
    Info,
    /// Something an operator should look at.
    Warning,
}

/// A log line the engine asks for (it does no logging itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// How loud.
    pub level: Level,
    /// The message.
    pub message: String,
    /// Key-value context (client order ids, symbols, errors).
    pub fields: Vec<(&'static str, String)>,
}

impl Notice {
    /// A warning with context.
    pub fn warning(message: impl Into<String>, fields: Vec<(&'static str, String)>) -> Notice {
        Notice {
            level: Level::Warning,
            message: message.into(),
            fields,
        }
    }

    /// An informational line with context.
    pub fn info(message: impl Into<String>, fields: Vec<(&'static str, String)>) -> Notice {
        Notice {
            level: Level::Info,
            message: message.into(),
            fields,
        }
    }
}

/// What one input made the engine do.
#[derive(Debug, Default)]
pub struct Effects {
    /// The job this input belongs to.
    pub job: Option<JobId>,
    /// What changed: record and announce.
    pub changes: Changes,
    /// Rows that must be durable before any of `requests` is sent (an order's
    /// `PENDING_NEW` row, so that a crash leaves its client order id to look up).
    pub intents: Changes,
    /// Requests to perform, in order; each answer comes back as [`Input::Answer`].
    pub requests: Vec<(RequestId, Request)>,
    /// Log lines.
    pub notices: Vec<Notice>,
    /// The balance changed (a `balance` event is due).
    pub balance_changed: bool,
    /// Set when the job is over (no more requests of it will be asked for).
    pub done: Option<Outcome>,
}
