//! Builtin rule policies (`llm_model: builtin/<name>`): deterministic, no network. They
//! are the baseline an LLM account is compared with, the offline demo, and what the
//! tests drive.
//!
//! - `builtin/hold`: always holds.
//! - `builtin/ema-rsi`: long when the last price is above the 5m EMA20 and the 5m RSI14
//!   is below 70, flat otherwise; TP = price + 3 × ATR14(5m), SL = price − 2 × ATR14(5m);
//!   allocation = 20 % of equity × leverage, capped by `risk.max_position_usd`.
//! - `builtin/panic`: panics on every decision — a fault-injection drill that shows a
//!   crashing account being restarted by the supervisor while the others keep trading.

use crate::domain::decision::{DecisionContext, TradeDecision};
use crate::domain::snapshot::MarketSnapshot;
use crate::domain::types::{PositionSide, TradeAction};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

/// Share of equity (before leverage) the ema-rsi policy allocates to one entry.
pub const EMA_RSI_EQUITY_SHARE: Decimal = dec!(0.2);

/// A builtin policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinPolicy {
    /// Always hold.
    Hold,
    /// EMA20 / RSI14 trend follower, long or flat.
    EmaRsi,
    /// Panics (fault-injection drill).
    Panic,
}

impl BuiltinPolicy {
    /// Every builtin, by its configuration name.
    pub const ALL: [(&'static str, BuiltinPolicy); 3] = [
        ("builtin/hold", BuiltinPolicy::Hold),
        ("builtin/ema-rsi", BuiltinPolicy::EmaRsi),
        ("builtin/panic", BuiltinPolicy::Panic),
    ];

    /// The builtin named by `llm_model`, if it names one.
    pub fn from_model(model: &str) -> Option<BuiltinPolicy> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == model)
            .map(|(_, p)| *p)
    }

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinPolicy::Hold => "builtin/hold",
            BuiltinPolicy::EmaRsi => "builtin/ema-rsi",
            BuiltinPolicy::Panic => "builtin/panic",
        }
    }

    /// One decision per snapshot in the context.
    pub fn decide(self, ctx: &DecisionContext) -> Vec<TradeDecision> {
        match self {
            BuiltinPolicy::Hold => ctx
                .snapshots
                .iter()
                .map(|s| TradeDecision::hold(s.asset.clone(), "builtin/hold never trades"))
                .collect(),
            BuiltinPolicy::EmaRsi => ctx.snapshots.iter().map(|s| ema_rsi(ctx, s)).collect(),
            BuiltinPolicy::Panic => {
                panic!("builtin/panic: fault-injection drill (this account's actor crashes on purpose)")
            }
        }
    }
}

fn ema_rsi(ctx: &DecisionContext, snap: &MarketSnapshot) -> TradeDecision {
    let asset = snap.asset.clone();
    let (Some(ema20), Some(rsi14), Some(atr14)) =
        (snap.current.ema20, snap.current.rsi14, snap.current.atr14)
    else {
        return TradeDecision::hold(asset, "indicators are still warming up");
    };
    let (Some(ema), Some(atr)) = (Decimal::from_f64(ema20), Decimal::from_f64(atr14)) else {
        return TradeDecision::hold(asset, "indicator values are not finite");
    };
    let price = snap.last_price;
    let want_long = price > ema && rsi14 < 70.0;
    let position = ctx.account.position(&snap.symbol);
    let facts = format!(
        "price {price} vs EMA20 {:.2}, RSI14 {rsi14:.1}",
        ema.round_dp(2)
    );
    match (want_long, position.map(|p| p.side)) {
        (true, Some(PositionSide::Long)) => {
            TradeDecision::hold(asset, format!("already long; trend intact: {facts}"))
        }
        (true, _) => {
            let mut allocation =
                (ctx.account.equity * EMA_RSI_EQUITY_SHARE * Decimal::from(ctx.leverage.max(1)))
                    .round_dp(2);
            if let Some(cap) = ctx.max_position_usd {
                allocation = allocation.min(cap);
            }
            TradeDecision {
                asset,
                action: TradeAction::Buy,
                allocation_usd: allocation.max(Decimal::ZERO),
                tp_price: Some((price + atr * dec!(3)).round_dp(8)),
                sl_price: Some((price - atr * dec!(2)).round_dp(8)),
                exit_plan: "close when price falls below EMA20(5m) or RSI14(5m) reaches 70; \
                            TP/SL at +3/-2 ATR14(5m)"
                    .into(),
                rationale: format!("uptrend: {facts}"),
            }
        }
        (false, Some(PositionSide::Long)) => TradeDecision {
            asset,
            action: TradeAction::Sell,
            allocation_usd: Decimal::ZERO,
            tp_price: None,
            sl_price: None,
            exit_plan: String::new(),
            rationale: format!("exit long, trend over: {facts}"),
        },
        (false, _) => TradeDecision::hold(asset, format!("stay flat: {facts}")),
    }
}
