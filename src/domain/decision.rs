//! What a policy or model decides, per asset, and the account state it decides on.
//!
//! Semantics (documented in `docs/trading.md`): `buy` targets a long position of
//! `allocation_usd` notional (a short is closed first; an existing long is kept);
//! `sell` targets a short of `allocation_usd` (a long is closed first); `sell` with an
//! allocation of 0 closes a long and stays flat (mirrored: `buy` 0 closes a short);
//! `hold` changes nothing.

use crate::domain::snapshot::MarketSnapshot;
use crate::domain::types::{Asset, PositionSide, Symbol, TradeAction};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One asset's decision for one cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeDecision {
    /// The asset it is about.
    pub asset: Asset,
    /// Buy, sell or hold.
    pub action: TradeAction,
    /// Target position notional in USD (0 = close only).
    pub allocation_usd: Decimal,
    /// Take-profit trigger price.
    pub tp_price: Option<Decimal>,
    /// Stop-loss trigger price.
    pub sl_price: Option<Decimal>,
    /// When the position should be closed, in words (kept with the position).
    pub exit_plan: String,
    /// Why.
    pub rationale: String,
}

impl TradeDecision {
    /// A hold with a reason.
    pub fn hold(asset: Asset, rationale: impl Into<String>) -> Self {
        TradeDecision {
            asset,
            action: TradeAction::Hold,
            allocation_usd: Decimal::ZERO,
            tp_price: None,
            sl_price: None,
            exit_plan: String::new(),
            rationale: rationale.into(),
        }
    }
}

/// An open position as a policy sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionView {
    /// Symbol.
    pub symbol: Symbol,
    /// Long or short.
    pub side: PositionSide,
    /// Size in base asset (> 0).
    pub quantity: Decimal,
    /// Average entry price.
    pub entry_price: Decimal,
    /// Leverage.
    pub leverage: u32,
    /// Unrealized PnL at the last price.
    pub unrealized_pnl: Decimal,
    /// Resting take-profit.
    pub tp_price: Option<Decimal>,
    /// Resting stop-loss.
    pub sl_price: Option<Decimal>,
    /// The exit plan recorded when it was opened.
    pub exit_plan: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
}

/// The account as a policy sees it at decision time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    /// Wallet balance (deposits + realized PnL − fees).
    pub wallet_balance: Decimal,
    /// Wallet + unrealized PnL.
    pub equity: Decimal,
    /// Margin not yet used.
    pub available: Decimal,
    /// Open positions.
    pub positions: Vec<PositionView>,
}

impl AccountView {
    /// The open position on a symbol, if any.
    pub fn position(&self, symbol: &Symbol) -> Option<&PositionView> {
        self.positions.iter().find(|p| &p.symbol == symbol)
    }
}

/// Everything a policy decides on.
#[derive(Clone, Debug)]
pub struct DecisionContext {
    /// Decision time.
    pub now: DateTime<Utc>,
    /// One snapshot per traded asset.
    pub snapshots: Vec<Arc<MarketSnapshot>>,
    /// Balance and positions.
    pub account: AccountView,
    /// Configured leverage.
    pub leverage: u32,
    /// Largest position notional allowed.
    pub max_position_usd: Option<Decimal>,
}
