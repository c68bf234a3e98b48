//! Row types: one struct per table, used both to insert and to read (the API serialises
//! them as they are; the write path's spool stores them as JSON and reads them back).
//! `order_events` has a separate insert form (its id is a sequence).
//!
//! Rows that carry a venue id (`FillRow::venue_trade_id`, `IncomeRow::venue_tran_id`)
//! are stored at most once per account (and kind): a repeat is skipped by the insert
//! queries, because live data arrives both from the user-data stream and from polling.

use crate::db::schema::*;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An account as registered in the database (its configuration, masked, and paper state).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = accounts, check_for_backend(diesel::pg::Pg))]
pub struct AccountRow {
    pub id: String,
    pub mode: String,
    pub venue_base_url: String,
    pub llm_model: String,
    pub assets: Vec<String>,
    pub interval_label: String,
    pub leverage: i32,
    pub status: String,
    pub paper_starting_balance: Decimal,
    pub paper_wallet_balance: Decimal,
    pub config: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One OHLCV bar of a venue's symbol.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = candles, check_for_backend(diesel::pg::Pg))]
pub struct CandleRow {
    pub venue: String,
    pub symbol: String,
    pub kline_interval: String,
    pub open_time: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    pub close_time: DateTime<Utc>,
}

/// A market snapshot as computed by a MarketDataHub (the full snapshot is in `data`).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = market_snapshots, check_for_backend(diesel::pg::Pg))]
pub struct MarketSnapshotRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub venue: String,
    pub symbol: String,
    pub last_price: Decimal,
    pub mark_price: Decimal,
    pub funding_rate: Decimal,
    pub open_interest: Decimal,
    pub data: serde_json::Value,
}

/// One call to a model: prompt, raw answer, parse and risk outcome, usage.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = llm_interactions, check_for_backend(diesel::pg::Pg))]
pub struct LlmInteractionRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub account_id: String,
    pub cycle_id: Uuid,
    pub model: String,
    pub request: serde_json::Value,
    pub response_body: Option<String>,
    pub parsed: Option<serde_json::Value>,
    pub outcome: Option<serde_json::Value>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub cost_usd: Option<Decimal>,
    pub latency_ms: Option<i32>,
    pub http_status: Option<i32>,
    pub error: Option<String>,
}

/// One asset's decision in one cycle, with what the risk rules made of it.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = decisions, check_for_backend(diesel::pg::Pg))]
pub struct DecisionRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub account_id: String,
    pub cycle_id: Uuid,
    pub asset: String,
    pub symbol: String,
    pub action: String,
    pub allocation_usd: Decimal,
    pub tp_price: Option<Decimal>,
    pub sl_price: Option<Decimal>,
    pub exit_plan: String,
    pub rationale: String,
    /// The policy or model that produced it (`builtin/ema-rsi`, `x-ai/grok-4`).
    pub source: String,
    /// `approved`, `refused` or `hold`.
    pub outcome: String,
    pub refusal_reason: Option<String>,
    /// What the risk rules clamped on an approved decision.
    pub risk_note: Option<String>,
    pub snapshot_id: Option<Uuid>,
    pub llm_interaction_id: Option<Uuid>,
}

/// An order and its current state (the lifecycle is in `order_events`).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, AsChangeset, Serialize, Deserialize)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub struct OrderRow {
    pub id: Uuid,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub decision_id: Option<Uuid>,
    pub client_order_id: String,
    pub venue_order_id: Option<String>,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub quantity: Option<Decimal>,
    pub price: Option<Decimal>,
    pub stop_price: Option<Decimal>,
    pub reduce_only: bool,
    pub close_position: bool,
    pub status: String,
    pub filled_quantity: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub reject_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One step in an order's life, as read back.
#[derive(Clone, Debug, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = order_events, check_for_backend(diesel::pg::Pg))]
pub struct OrderEventRow {
    pub id: i64,
    pub ts: DateTime<Utc>,
    pub order_id: Uuid,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub status: String,
    pub detail: serde_json::Value,
}

/// Insert form of [`OrderEventRow`].
#[derive(Clone, Debug, Insertable, Serialize, Deserialize)]
#[diesel(table_name = order_events)]
pub struct NewOrderEvent {
    pub ts: DateTime<Utc>,
    pub order_id: Uuid,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub status: String,
    pub detail: serde_json::Value,
}

/// An execution (trade) of an order.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = fills, check_for_backend(diesel::pg::Pg))]
pub struct FillRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub quantity: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub realized_pnl: Decimal,
    pub reason: String,
    /// The venue's trade id (live fills); `None` for paper fills. A fill whose
    /// `(account_id, venue_trade_id)` is already stored is skipped.
    pub venue_trade_id: Option<String>,
}

/// A position from open to close (one row per lifecycle, updated in place).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, AsChangeset, Serialize, Deserialize)]
#[diesel(table_name = positions, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct PositionRow {
    pub id: Uuid,
    pub account_id: String,
    pub symbol: String,
    pub side: String,
    pub quantity: Decimal,
    pub entry_price: Decimal,
    pub leverage: i32,
    pub margin: Decimal,
    pub tp_price: Option<Decimal>,
    pub sl_price: Option<Decimal>,
    pub exit_plan: String,
    pub mark_price: Option<Decimal>,
    pub unrealized_pnl: Decimal,
    pub realized_pnl: Decimal,
    pub status: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub opened_cycle_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    /// The venue's liquidation price, when known.
    pub liquidation_price: Option<Decimal>,
    /// [`PositionRow::ORIGIN_VIBEX`] or [`PositionRow::ORIGIN_ADOPTED`].
    pub origin: String,
    /// Why it closed (`take_profit`, `stop_loss`, `decision`, ...), once closed.
    pub close_reason: Option<String>,
}

impl PositionRow {
    /// `origin` of a position vibex opened.
    pub const ORIGIN_VIBEX: &'static str = "vibex";
    /// `origin` of a position found on the exchange that vibex never opened.
    pub const ORIGIN_ADOPTED: &'static str = "adopted";
}

/// Balance and equity of an account at the end of a cycle.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = equity_snapshots, check_for_backend(diesel::pg::Pg))]
pub struct EquitySnapshotRow {
    pub ts: DateTime<Utc>,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub wallet_balance: Decimal,
    pub unrealized_pnl: Decimal,
    pub equity: Decimal,
    pub used_margin: Decimal,
    pub available: Decimal,
}

/// A trading diary entry (the original system's shape).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = diary_entries, check_for_backend(diesel::pg::Pg))]
pub struct DiaryEntryRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub asset: String,
    pub action: String,
    pub allocation_usd: Option<Decimal>,
    pub amount: Option<Decimal>,
    pub entry_price: Option<Decimal>,
    pub tp_price: Option<Decimal>,
    pub tp_oid: Option<String>,
    pub sl_price: Option<Decimal>,
    pub sl_oid: Option<String>,
    pub exit_plan: Option<String>,
    pub rationale: Option<String>,
    pub order_result: Option<serde_json::Value>,
    pub opened_at: Option<DateTime<Utc>>,
    pub filled: bool,
}

/// A correction of local state to the venue's (exchange is authoritative).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = reconciliation_events, check_for_backend(diesel::pg::Pg))]
pub struct ReconciliationRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub kind: String,
    pub symbol: Option<String>,
    pub detail: serde_json::Value,
}

/// The earlier name of [`ReconciliationRow`], kept so that code written against it still
/// compiles.
pub type ReconciliationEventRow = ReconciliationRow;

/// A wallet movement the venue reports (its income history): realized PnL, funding,
/// commission, liquidation fee, transfer. Stored once per `(account_id, kind,
/// venue_tran_id)`.
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = income_events, check_for_backend(diesel::pg::Pg))]
pub struct IncomeRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    pub account_id: String,
    pub cycle_id: Option<Uuid>,
    pub symbol: Option<String>,
    /// One of [`IncomeRow::KINDS`].
    pub kind: String,
    /// Signed: positive is credited to the wallet, negative debited.
    pub amount: Decimal,
    /// The asset moved (`USDT`).
    pub asset: String,
    /// The venue's transaction id; `None` when the venue gave none.
    pub venue_tran_id: Option<String>,
    /// The venue's record as received, or other context.
    pub detail: serde_json::Value,
}

impl IncomeRow {
    /// The accepted `kind`s (a CHECK constraint holds the same list).
    pub const KINDS: &'static [&'static str] = &[
        "REALIZED_PNL",
        "FUNDING_FEE",
        "COMMISSION",
        "LIQUIDATION_FEE",
        "TRANSFER",
        "OTHER",
    ];
}

/// The operator's wish for one account, kept across restarts (`account_controls`).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, AsChangeset, Serialize, Deserialize)]
#[diesel(table_name = account_controls, check_for_backend(diesel::pg::Pg))]
#[diesel(treat_none_as_null = true)]
pub struct AccountControlRow {
    pub account_id: String,
    /// `active`, `paused` or `stopped`.
    pub state: String,
    /// `file` (the accounts file defines it) or `api` (added over the API).
    pub origin: String,
    /// An API-added account's definition as given (`${VAR}` references, no secret).
    pub definition: Option<serde_json::Value>,
    /// The API key's name (or `(no key)`, `config reload`, `SIGHUP`).
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A process-wide switch (`control_flags`; today `kill_switch`).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, AsChangeset, Serialize, Deserialize)]
#[diesel(table_name = control_flags, check_for_backend(diesel::pg::Pg))]
pub struct ControlFlagRow {
    pub name: String,
    pub enabled: bool,
    /// What came with it (`{"flatten": true}`).
    pub detail: serde_json::Value,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// One control request, granted or refused (`control_actions`, `GET /audit`).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[diesel(table_name = control_actions, check_for_backend(diesel::pg::Pg))]
pub struct ControlActionRow {
    pub id: Uuid,
    pub ts: DateTime<Utc>,
    /// The API key's name, never the key.
    pub key_name: String,
    pub client_ip: Option<String>,
    /// `account.add`, `account.pause`, `kill_switch.on`, `config.reload`, ...
    pub action: String,
    /// The account id, or `None` for a global action.
    pub target: Option<String>,
    /// The request body with secrets masked.
    pub body: Option<serde_json::Value>,
    /// The HTTP status answered.
    pub status: i32,
    /// What was done, or why not.
    pub result: serde_json::Value,
}
