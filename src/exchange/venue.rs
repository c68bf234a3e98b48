//! What a futures venue holds for an account, in venue-neutral terms: the values the
//! live client reads from AsterDEX and the paper venue produces from its book, so that
//! one reconciliation compares either with what vibex recorded.
//!
//! Entry points: the [`Exchange`] trait (what vibex needs from a venue),
//! [`OrderRequest`] (what vibex asks a venue to do), [`VenueOrder`],
//! [`VenuePosition`], [`VenueBalance`], [`VenueTrade`], [`VenueIncome`] (what the venue
//! says), [`VenueSnapshot`] (all of it at one moment).
//!
//! [`UserEvent`] is what a venue says on its own, between requests: AsterDEX's user data
//! stream, or the paper venue's trigger fills, liquidations and funding.
//!
//! Invariants: money, prices and quantities are decimals exactly as the venue sent
//! them; a position's `amount` is signed (> 0 long, < 0 short, never 0 in a snapshot);
//! order statuses and types are typed ([`OrderStatus`], [`OrderType`]) from the wire on.

use crate::domain::orders::{OrderStatus, OrderType};
use crate::domain::types::{PositionSide, Side, Symbol};
use crate::exchange::error::VenueError;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// Order types vibex sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OrderKind {
    /// Market order (entries and exits).
    Market,
    /// Stop-loss trigger: market order when the mark crosses `stop_price` against the
    /// position.
    StopMarket,
    /// Take-profit trigger: market order when the mark crosses `stop_price` in the
    /// position's favour.
    TakeProfitMarket,
}

impl OrderKind {
    /// The venue's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Market => "MARKET",
            OrderKind::StopMarket => "STOP_MARKET",
            OrderKind::TakeProfitMarket => "TAKE_PROFIT_MARKET",
        }
    }

    /// The order type an order of this kind has on the venue.
    pub fn order_type(self) -> OrderType {
        match self {
            OrderKind::Market => OrderType::Market,
            OrderKind::StopMarket => OrderType::StopMarket,
            OrderKind::TakeProfitMarket => OrderType::TakeProfitMarket,
        }
    }

    /// True for the protection orders (TP/SL triggers).
    pub fn is_trigger(self) -> bool {
        self != OrderKind::Market
    }
}

/// One order vibex asks the venue to place. Quantities and prices are already rounded
/// to the symbol's step and tick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderRequest {
    /// The perpetual.
    pub symbol: Symbol,
    /// BUY or SELL.
    pub side: Side,
    /// MARKET, STOP_MARKET or TAKE_PROFIT_MARKET.
    pub kind: OrderKind,
    /// Base quantity; `None` for a close-position trigger.
    pub quantity: Option<Decimal>,
    /// Trigger price of a TP/SL (compared with the mark price).
    pub stop_price: Option<Decimal>,
    /// Only reduce a position.
    pub reduce_only: bool,
    /// Close the whole position when triggered (TP/SL; no quantity).
    pub close_position: bool,
    /// Deterministic client order id (`vx-...`), the idempotency key.
    pub client_order_id: String,
}

/// An order as the venue reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VenueOrder {
    /// The perpetual.
    pub symbol: Symbol,
    /// The venue's order id.
    pub order_id: String,
    /// The client order id it was placed with.
    pub client_order_id: String,
    /// BUY or SELL.
    pub side: Side,
    /// Order type as placed.
    pub order_type: OrderType,
    /// Status.
    pub status: OrderStatus,
    /// Ordered quantity (0 for a close-position trigger).
    pub orig_qty: Decimal,
    /// Filled quantity.
    pub executed_qty: Decimal,
    /// Average fill price, when something filled.
    pub avg_price: Option<Decimal>,
    /// Trigger price, for TP/SL.
    pub stop_price: Option<Decimal>,
    /// Reduce-only flag.
    pub reduce_only: bool,
    /// Close-position flag.
    pub close_position: bool,
    /// Last change on the venue.
    pub update_time: DateTime<Utc>,
}

impl VenueOrder {
    /// Still working on the venue.
    pub fn is_open(&self) -> bool {
        self.status.is_working()
    }
}

/// An open position as the venue reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VenuePosition {
    /// The perpetual.
    pub symbol: Symbol,
    /// Signed base quantity: > 0 long, < 0 short.
    pub amount: Decimal,
    /// Average entry price.
    pub entry_price: Decimal,
    /// Mark price.
    pub mark_price: Decimal,
    /// Unrealized PnL at the mark.
    pub unrealized_pnl: Decimal,
    /// Liquidation price, when the venue computes one.
    pub liquidation_price: Option<Decimal>,
    /// Leverage of the symbol.
    pub leverage: u32,
    /// `isolated` or `cross`.
    pub margin_type: String,
    /// Margin held by an isolated position.
    pub isolated_margin: Decimal,
}

impl VenuePosition {
    /// Long or short.
    pub fn side(&self) -> PositionSide {
        if self.amount.is_sign_negative() {
            PositionSide::Short
        } else {
            PositionSide::Long
        }
    }

    /// Absolute quantity.
    pub fn quantity(&self) -> Decimal {
        self.amount.abs()
    }
}

/// Account totals (USDT).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VenueBalance {
    /// Deposits + realized PnL − fees ± funding.
    pub wallet_balance: Decimal,
    /// Σ unrealized PnL.
    pub unrealized_pnl: Decimal,
    /// Wallet + unrealized.
    pub margin_balance: Decimal,
    /// What new orders can use.
    pub available_balance: Decimal,
    /// Initial margin held by positions and orders.
    pub initial_margin: Decimal,
    /// Maintenance margin of the positions.
    pub maint_margin: Decimal,
}

/// One execution (a fill) as the venue reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VenueTrade {
    /// The venue's trade id (unique per symbol and account).
    pub id: String,
    /// The order it belongs to.
    pub order_id: String,
    /// The order's client id, when the source carries it (the user stream does,
    /// `userTrades` does not).
    pub client_order_id: Option<String>,
    /// The perpetual.
    pub symbol: Symbol,
    /// BUY or SELL.
    pub side: Side,
    /// Fill price.
    pub price: Decimal,
    /// Filled quantity.
    pub quantity: Decimal,
    /// Fee charged (positive = paid).
    pub commission: Decimal,
    /// Fee asset.
    pub commission_asset: String,
    /// Realized PnL of the fill (before fees).
    pub realized_pnl: Decimal,
    /// Maker (true) or taker.
    pub maker: bool,
    /// Execution time.
    pub time: DateTime<Utc>,
}

/// One income record (`GET /fapi/v1/income`): realized PnL, funding, commission...
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VenueIncome {
    /// The venue's transaction id.
    pub tran_id: String,
    /// The symbol, when the income belongs to one.
    pub symbol: Option<Symbol>,
    /// `REALIZED_PNL`, `FUNDING_FEE`, `COMMISSION`, `TRANSFER`, ...
    pub kind: String,
    /// Signed amount (+ credited).
    pub amount: Decimal,
    /// Asset (`USDT`).
    pub asset: String,
    /// When it was booked.
    pub time: DateTime<Utc>,
    /// The trade it came from, when any.
    pub trade_id: Option<String>,
}

/// Everything the venue holds for the account at one moment (the input of
/// reconciliation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VenueSnapshot {
    /// Totals.
    pub balance: VenueBalance,
    /// Open positions (non-zero amounts only).
    pub positions: Vec<VenuePosition>,
    /// Working orders.
    pub open_orders: Vec<VenueOrder>,
}

/// What a venue says on its own, between requests (the user data stream; the paper
/// venue's own fills and funding).
#[derive(Clone, Debug, PartialEq)]
pub enum UserEvent {
    /// An order changed; with the execution when it traded.
    Order {
        /// The order after the change.
        order: Box<VenueOrder>,
        /// The fill, when it traded.
        trade: Option<Box<VenueTrade>>,
    },
    /// Balances and positions changed.
    Account {
        /// Why (`ORDER`, `FUNDING_FEE`, ...).
        reason: String,
        /// New USDT wallet balance, when in the update.
        wallet_balance: Option<Decimal>,
        /// Positions in the update: symbol, signed amount (0 = closed), entry price.
        positions: Vec<(Symbol, Decimal, Decimal)>,
    },
    /// The listen key expired: create a new one and reconnect.
    ListenKeyExpired,
    /// A margin call (logged).
    MarginCall,
    /// Anything else (ignored).
    Other(String),
}

/// A boxed future of a venue call (the trait is object-safe, so an account holds
/// `Arc<dyn Exchange>` whatever its venue).
pub type VenueFuture<'a, T> = futures_util::future::BoxFuture<'a, Result<T, VenueError>>;

/// What vibex needs from a futures venue, for one account. AsterDEX's signed client
/// ([`crate::exchange::aster::trade::TradeClient`]) is the live implementation.
///
/// Contract every implementation keeps:
/// - `place_order` is idempotent by client order id: it never executes the same id
///   twice, and an outcome it cannot settle is [`VenueError::OutcomeUnknown`];
/// - `query_order`/`cancel_order` answer `None` for an id the venue does not know;
/// - `snapshot` lists only non-zero positions and working orders;
/// - `user_trades`/`income` list what happened at or after `since`, oldest first.
pub trait Exchange: Send + Sync {
    /// True for a venue that lives in this process (the paper venue): it loses its
    /// state with vibex, so an order's row need not be on disk before it is sent.
    /// A remote venue (the default) keeps what it accepted through a crash of vibex.
    fn in_process(&self) -> bool {
        false
    }
    /// Measures the venue clock; returns server minus local time in ms.
    fn sync_time(&self) -> VenueFuture<'_, i64>;
    /// True when the account is in hedge (dual-side) mode.
    fn is_hedge_mode(&self) -> VenueFuture<'_, bool>;
    /// Sets a symbol's leverage.
    fn set_leverage<'a>(&'a self, symbol: &'a Symbol, leverage: u32) -> VenueFuture<'a, ()>;
    /// Sets a symbol's margin type (`ISOLATED`, `CROSSED`).
    fn set_margin_type<'a>(
        &'a self,
        symbol: &'a Symbol,
        margin_type: &'a str,
    ) -> VenueFuture<'a, ()>;
    /// Places an order (idempotent by client order id).
    fn place_order<'a>(&'a self, order: &'a OrderRequest) -> VenueFuture<'a, VenueOrder>;
    /// Looks an order up by client order id.
    fn query_order<'a>(
        &'a self,
        symbol: &'a Symbol,
        client_order_id: &'a str,
    ) -> VenueFuture<'a, Option<VenueOrder>>;
    /// Cancels an order by client order id.
    fn cancel_order<'a>(
        &'a self,
        symbol: &'a Symbol,
        client_order_id: &'a str,
    ) -> VenueFuture<'a, Option<VenueOrder>>;
    /// Cancels every working order of a symbol.
    fn cancel_all<'a>(&'a self, symbol: &'a Symbol) -> VenueFuture<'a, ()>;
    /// Balance, positions and working orders now.
    fn snapshot(&self) -> VenueFuture<'_, VenueSnapshot>;
    /// Balance and positions, with the working orders of `symbols` only (cheaper on a
    /// venue that charges per symbol). By default the full snapshot.
    fn snapshot_of<'a>(&'a self, symbols: &'a [Symbol]) -> VenueFuture<'a, VenueSnapshot> {
        let _ = symbols;
        self.snapshot()
    }
    /// Fills of a symbol since a time.
    fn user_trades<'a>(
        &'a self,
        symbol: &'a Symbol,
        since: Option<DateTime<Utc>>,
    ) -> VenueFuture<'a, Vec<VenueTrade>>;
    /// Income records since a time.
    fn income(&self, since: Option<DateTime<Utc>>) -> VenueFuture<'_, Vec<VenueIncome>>;
}
