//! What a prompt is rendered from: [`PromptContext`] (filled by the decision actor) and
//! the variables the templates see, derived from it by [`TemplateVars::new`].
//!
//! Invariants: building the variables never fails and never panics (empty lists, a
//! default account, `None` everywhere are all valid); lists reach the templates in a
//! fixed order (fills and diary newest first, cooldowns soonest-ending first, positions
//! and orders by symbol), so the same context always renders the same text.

use crate::config::AccountConfig;
use crate::domain::decision::{AccountView, PositionView};
use crate::domain::snapshot::MarketSnapshot;
use crate::domain::types::{PositionSide, Symbol};
use crate::engine::{DiaryEntry, Fill, Order};
use crate::llm::prompt::format;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::sync::Arc;

/// Fills a caller should pass in [`PromptContext::recent_fills`] (the last N).
pub const RECENT_FILLS: usize = 5;
/// Diary entries a caller should pass in [`PromptContext::diary`] (the last N).
pub const RECENT_DIARY: usize = 5;

/// Everything one account's prompt is rendered from, for one cycle.
#[derive(Clone, Debug)]
pub struct PromptContext {
    /// Decision time (the cycle's clock; virtual in a replay).
    pub now: DateTime<Utc>,
    /// The account the prompt is for.
    pub account_id: String,
    /// The model that will read it (available to templates; the default ones don't print it).
    pub model: String,
    /// One snapshot per traded asset, in the order they should appear.
    pub snapshots: Vec<Arc<MarketSnapshot>>,
    /// Balances and open positions.
    pub account: AccountView,
    /// Resting orders (the positions' TP/SL).
    pub open_orders: Vec<OrderSummary>,
    /// The last fills (see [`RECENT_FILLS`]), any order.
    pub recent_fills: Vec<FillSummary>,
    /// The last diary entries (see [`RECENT_DIARY`]), any order.
    pub diary: Vec<DiarySummary>,
    /// Per-asset cooldowns; those already over at `now` are left out of the prompt.
    pub cooldowns: Vec<CooldownSummary>,
    /// The account's hard rules, as the model should be told them.
    pub rules: RulesSummary,
}

/// A resting order as the model sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderSummary {
    /// Venue symbol (`BTCUSDT`).
    pub symbol: String,
    /// `BUY` / `SELL`.
    pub side: String,
    /// `TAKE_PROFIT_MARKET`, `STOP_MARKET`, `MARKET`...
    pub order_type: String,
    /// Quantity, when not a close-position order.
    pub quantity: Option<Decimal>,
    /// Trigger price of a TP/SL.
    pub stop_price: Option<Decimal>,
    /// Reduce-only.
    pub reduce_only: bool,
    /// Closes the whole position when it fires.
    pub close_position: bool,
}

impl From<&Order> for OrderSummary {
    fn from(o: &Order) -> Self {
        OrderSummary {
            symbol: o.symbol.to_string(),
            side: o.side.as_str().to_string(),
            order_type: o.order_type.as_str().to_string(),
            quantity: o.quantity,
            stop_price: o.stop_price.or(o.price),
            reduce_only: o.reduce_only,
            close_position: o.close_position,
        }
    }
}

/// A fill as the model sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FillSummary {
    /// When it filled.
    pub ts: DateTime<Utc>,
    /// Venue symbol.
    pub symbol: String,
    /// `BUY` / `SELL`.
    pub side: String,
    /// Base quantity.
    pub quantity: Decimal,
    /// Fill price.
    pub price: Decimal,
    /// Fee paid, USDT.
    pub fee: Decimal,
    /// PnL realized by this fill, USDT.
    pub realized_pnl: Decimal,
    /// Why it happened (`entry`, `close`, `take_profit`, `stop_loss`, `liquidation`,
    /// `external`).
    pub reason: String,
}

impl From<&Fill> for FillSummary {
    fn from(f: &Fill) -> Self {
        FillSummary {
            ts: f.ts,
            symbol: f.symbol.to_string(),
            side: f.side.as_str().to_string(),
            quantity: f.quantity,
            price: f.price,
            fee: f.fee,
            realized_pnl: f.realized_pnl,
            reason: f.reason.as_str().to_string(),
        }
    }
}

/// A trading-diary entry as the model sees it (its own past decisions).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiarySummary {
    /// When it was written.
    pub ts: DateTime<Utc>,
    /// Base asset.
    pub asset: String,
    /// `buy`, `sell`, `hold`, or what the executor recorded.
    pub action: String,
    /// Allocation asked for, USD notional.
    pub allocation_usd: Option<Decimal>,
    /// The rationale given (the templates print an excerpt).
    pub rationale: String,
}

impl From<&DiaryEntry> for DiarySummary {
    fn from(d: &DiaryEntry) -> Self {
        DiarySummary {
            ts: d.ts,
            asset: d.asset.to_string(),
            action: d.action.as_str().to_string(),
            allocation_usd: d.allocation_usd,
            rationale: d.rationale.clone().unwrap_or_default(),
        }
    }
}

/// A cooldown in force: no trade on `asset` before `until`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CooldownSummary {
    /// Base asset.
    pub asset: String,
    /// End of the cooldown.
    pub until: DateTime<Utc>,
}

/// The hard rules of an account, as the model is told them (the daemon enforces them
/// whatever the prompt says).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RulesSummary {
    /// Account leverage (margin = notional / leverage).
    pub leverage: u32,
    /// Largest position notional, USD.
    pub max_position_usd: Option<Decimal>,
    /// Minimum seconds between two trades of one asset.
    pub cooldown_secs: Option<u64>,
    /// When on, nothing new is opened.
    pub kill_switch: bool,
    /// Cycles in a row the same reversing call must be made before it is executed.
    pub hysteresis_cycles: u32,
    /// New entries stop for the UTC day after losing this % of the day's start equity.
    pub max_daily_loss_pct: Option<Decimal>,
    /// The assets the account trades; one decision is due for each.
    pub assets: Vec<String>,
}

impl RulesSummary {
    /// The rules of a configured account; the kill switch is on when either the
    /// account's or the global one is.
    pub fn from_account(account: &AccountConfig, global_kill_switch: bool) -> Self {
        RulesSummary {
            leverage: account.leverage,
            max_position_usd: account.risk.max_position_usd,
            cooldown_secs: account.risk.cooldown.map(|c| c.as_secs()),
            kill_switch: account.risk.kill_switch || global_kill_switch,
            hysteresis_cycles: account.risk.hysteresis_cycles,
            max_daily_loss_pct: account.risk.max_daily_loss_pct,
            assets: account
                .assets
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
        }
    }
}

/// The variables a template is rendered with (documented in the module docs of
/// [`crate::llm::prompt`]).
#[derive(Debug, Serialize)]
pub(crate) struct TemplateVars<'a> {
    now: String,
    account_id: &'a str,
    model: &'a str,
    prompt_version: &'a str,
    data_age_secs: Option<i64>,
    snapshots: &'a [Arc<MarketSnapshot>],
    assets_without_data: Vec<&'a str>,
    account: AccountVars<'a>,
    open_orders: Vec<&'a OrderSummary>,
    recent_fills: Vec<&'a FillSummary>,
    diary: Vec<&'a DiarySummary>,
    cooldowns: Vec<&'a CooldownSummary>,
    rules: &'a RulesSummary,
}

#[derive(Debug, Serialize)]
struct AccountVars<'a> {
    wallet_balance: Decimal,
    equity: Decimal,
    available: Decimal,
    positions: Vec<PositionVars<'a>>,
}

#[derive(Debug, Serialize)]
struct PositionVars<'a> {
    asset: String,
    symbol: &'a Symbol,
    side: PositionSide,
    quantity: Decimal,
    entry_price: Decimal,
    mark_price: Option<Decimal>,
    notional_usd: Option<Decimal>,
    unrealized_pnl: Decimal,
    leverage: u32,
    tp_price: Option<Decimal>,
    sl_price: Option<Decimal>,
    exit_plan: &'a str,
    opened_at: DateTime<Utc>,
}

impl<'a> TemplateVars<'a> {
    /// Derives the template variables from a context.
    pub(crate) fn new(ctx: &'a PromptContext, prompt_version: &'a str) -> Self {
        let data_age_secs = ctx
            .snapshots
            .iter()
            .map(|s| s.age(ctx.now).num_seconds().max(0))
            .max();
        let assets_without_data = ctx
            .rules
            .assets
            .iter()
            .filter(|a| {
                !ctx.snapshots
                    .iter()
                    .any(|s| s.asset.as_str().eq_ignore_ascii_case(a))
            })
            .map(String::as_str)
            .collect();
        let mut positions: Vec<PositionVars<'a>> = ctx
            .account
            .positions
            .iter()
            .map(|p| position_vars(p, &ctx.snapshots))
            .collect();
        positions.sort_by(|a, b| a.symbol.cmp(b.symbol));
        let mut open_orders: Vec<&OrderSummary> = ctx.open_orders.iter().collect();
        open_orders.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let mut recent_fills: Vec<&FillSummary> = ctx.recent_fills.iter().collect();
        recent_fills.sort_by_key(|f| std::cmp::Reverse(f.ts));
        let mut diary: Vec<&DiarySummary> = ctx.diary.iter().collect();
        diary.sort_by_key(|d| std::cmp::Reverse(d.ts));
        let mut cooldowns: Vec<&CooldownSummary> =
            ctx.cooldowns.iter().filter(|c| c.until > ctx.now).collect();
        cooldowns.sort_by_key(|c| c.until);
        TemplateVars {
            now: format::time(ctx.now),
            account_id: &ctx.account_id,
            model: &ctx.model,
            prompt_version,
            data_age_secs,
            snapshots: &ctx.snapshots,
            assets_without_data,
            account: AccountVars {
                wallet_balance: ctx.account.wallet_balance,
                equity: ctx.account.equity,
                available: ctx.account.available,
                positions,
            },
            open_orders,
            recent_fills,
            diary,
            cooldowns,
            rules: &ctx.rules,
        }
    }
}

fn position_vars<'a>(p: &'a PositionView, snapshots: &[Arc<MarketSnapshot>]) -> PositionVars<'a> {
    let mark_price = snapshots
        .iter()
        .find(|s| s.symbol == p.symbol)
        .map(|s| s.mark_price);
    let notional_usd = p
        .quantity
        .checked_mul(mark_price.unwrap_or(p.entry_price))
        .map(|n| n.round_dp(2));
    PositionVars {
        asset: p.symbol.asset().as_str().to_string(),
        symbol: &p.symbol,
        side: p.side,
        quantity: p.quantity,
        entry_price: p.entry_price,
        mark_price,
        notional_usd,
        unrealized_pnl: p.unrealized_pnl,
        leverage: p.leverage,
        tp_price: p.tp_price,
        sl_price: p.sl_price,
        exit_plan: &p.exit_plan,
        opened_at: p.opened_at,
    }
}
