//! Hard risk rules, applied to every decision before execution, whatever produced it.
//! A refusal is a value with a reason (recorded, published), never an error.
//!
//! Rules only ever block or shrink what adds exposure; closing a position is always
//! allowed. Which rule clamps and which refuses:
//! - kill switch on (the account's or the global one), or the account paused by an
//!   operator: refuse new exposure;
//! - PostgreSQL unreachable for longer than `storage.halt_entries_after`: refuse new
//!   exposure until it answers again (what vibex does cannot be stored, only spooled);
//! - the day's loss reached `risk.max_daily_loss_pct` of the day's start equity:
//!   refuse new exposure until UTC midnight;
//! - reversing an open position (an entry on the other side) before the model asked
//!   for it `risk.hysteresis_cycles` cycles in a row: refuse;
//! - reversing an open position whose exit plan is in force, without the decision
//!   saying the plan is invalidated: refuse (closing it is always allowed);
//! - TP/SL on the wrong side of the price: refuse;
//! - allocation negative: refuse;
//! - allocation above `risk.max_position_usd`: clamp to it;
//! - margin (allocation / leverage) above available capital: clamp to what is
//!   available; refuse when nothing is available;
//! - a trade on the same asset within `risk.cooldown`: refuse.

use crate::domain::decision::TradeDecision;
use crate::domain::types::{PositionSide, TradeAction};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::time::Duration;

/// The limits of one account.
#[derive(Clone, Debug, Default)]
pub struct RiskLimits {
    /// Account leverage (margin = notional / leverage).
    pub leverage: u32,
    /// Largest position notional, USD.
    pub max_position_usd: Option<Decimal>,
    /// Minimum time between trades of one asset.
    pub cooldown: Option<Duration>,
    /// Open nothing new (this account's switch).
    pub kill_switch: bool,
    /// Open nothing new (the process-wide switch).
    pub global_kill_switch: bool,
    /// Open nothing new (the operator paused the account; exits keep working).
    pub paused: bool,
    /// Consecutive cycles a reversal must be asked for (1 = no hysteresis).
    pub hysteresis_cycles: u32,
    /// Stop new entries after losing this percentage of the day's start equity.
    pub max_daily_loss_pct: Option<Decimal>,
    /// Stop new entries while the database has been unreachable this long
    /// (`storage.halt_entries_after`); `None` never stops.
    pub halt_entries_after: Option<Duration>,
}

/// The facts a check needs about the asset and the account.
#[derive(Clone, Debug)]
pub struct RiskInput {
    /// Price an entry would fill near.
    pub price: Decimal,
    /// Margin available.
    pub available: Decimal,
    /// Side of the open position on this asset, if any.
    pub position: Option<PositionSide>,
    /// Last trade on this asset.
    pub last_trade_at: Option<DateTime<Utc>>,
    /// Now.
    pub now: DateTime<Utc>,
    /// Equity now.
    pub equity: Decimal,
    /// Equity at the start of the UTC day (first valuation of the day).
    pub day_start_equity: Option<Decimal>,
    /// How many consecutive cycles, this one included, asked for this same reversal.
    pub reversal_streak: u32,
    /// The exit plan recorded with the open position, if any.
    pub exit_plan: Option<String>,
    /// How long the database has been unreachable, if it is (the write path spools).
    pub database_unreachable_for: Option<Duration>,
}

/// What the rules made of a decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum RiskVerdict {
    /// Nothing to do.
    Hold,
    /// Execute as decided (possibly clamped: `note` says how).
    Approved {
        /// The decision to execute.
        decision: TradeDecision,
        /// What was clamped, if anything.
        note: Option<String>,
    },
    /// Not executed.
    Refused {
        /// Why.
        reason: String,
    },
}

impl RiskVerdict {
    /// `hold`, `approved` or `refused` (the `decisions.outcome` column).
    pub fn outcome(&self) -> &'static str {
        match self {
            RiskVerdict::Hold => "hold",
            RiskVerdict::Approved { .. } => "approved",
            RiskVerdict::Refused { .. } => "refused",
        }
    }
}

/// Applies every rule to one decision.
pub fn check(decision: &TradeDecision, limits: &RiskLimits, input: &RiskInput) -> RiskVerdict {
    let target = match decision.action {
        TradeAction::Hold => return RiskVerdict::Hold,
        TradeAction::Buy => PositionSide::Long,
        TradeAction::Sell => PositionSide::Short,
    };
    if decision.allocation_usd < Decimal::ZERO {
        return refuse(format!(
            "allocation_usd {} is negative",
            decision.allocation_usd
        ));
    }
    let opens = decision.allocation_usd > Decimal::ZERO && input.position != Some(target);
    let closes = input.position.is_some() && input.position != Some(target);
    if !opens {
        return if closes {
            RiskVerdict::Approved {
                decision: decision.clone(),
                note: None,
            }
        } else if input.position == Some(target) {
            RiskVerdict::Hold
        } else {
            refuse(format!(
                "{} with allocation 0 and no {} position to close",
                decision.action.as_str(),
                target.opposite_name()
            ))
        };
    }
    if limits.global_kill_switch {
        return refuse("global kill switch is on: no new positions".into());
    }
    if limits.kill_switch {
        return refuse("kill switch is on: no new positions".into());
    }
    if limits.paused {
        return refuse("the account is paused: no new positions; exits keep working".into());
    }
    if let (Some(limit), Some(down)) = (limits.halt_entries_after, input.database_unreachable_for) {
        if down >= limit {
            return refuse(format!(
                "the database has been unreachable for {}s (storage.halt_entries_after is {}s): \
                 no new positions until it answers; closing is allowed",
                down.as_secs(),
                limit.as_secs()
            ));
        }
    }
    if let (Some(pct), Some(start)) = (limits.max_daily_loss_pct, input.day_start_equity) {
        if start > Decimal::ZERO {
            let lost_pct = (start - input.equity) / start * Decimal::ONE_HUNDRED;
            if lost_pct >= pct {
                return refuse(format!(
                    "daily loss limit: equity {} is {}% below the day's start {} (limit {pct}%); \
                     no new positions until 00:00 UTC",
                    input.equity.round_dp(2),
                    lost_pct.round_dp(2),
                    start.round_dp(2)
                ));
            }
        }
    }
    if closes {
        // An entry on the other side of an open position: a reversal.
        if input.reversal_streak < limits.hysteresis_cycles {
            return refuse(format!(
                "hysteresis: reversing the open {} position needs the same call {} cycles in a \
                 row ({} so far)",
                target.opposite_name(),
                limits.hysteresis_cycles,
                input.reversal_streak
            ));
        }
        if let Some(plan) = input.exit_plan.as_deref().filter(|p| !p.trim().is_empty()) {
            if !declares_invalidated(decision) {
                return refuse(format!(
                    "the open position's exit plan is in force ({plan:?}); reversing it needs \
                     the decision to state that the plan is invalidated (closing it is allowed)"
                ));
            }
        }
    }
    if let Some(reason) = wrong_side(decision, target, input.price) {
        return refuse(reason);
    }
    if let (Some(cooldown), Some(last)) = (limits.cooldown, input.last_trade_at) {
        if let Ok(cd) = chrono::Duration::from_std(cooldown) {
            if input.now < last + cd {
                return refuse(format!(
                    "cooldown: last {} trade at {}, next allowed at {}",
                    decision.asset,
                    last.to_rfc3339(),
                    (last + cd).to_rfc3339()
                ));
            }
        }
    }
    let mut out = decision.clone();
    let mut notes = Vec::new();
    if let Some(cap) = limits.max_position_usd {
        if out.allocation_usd > cap {
            notes.push(format!(
                "allocation {} clamped to max_position_usd {cap}",
                out.allocation_usd
            ));
            out.allocation_usd = cap;
        }
    }
    let leverage = Decimal::from(limits.leverage.max(1));
    if input.available <= Decimal::ZERO {
        return refuse(format!(
            "no available margin ({} USDT)",
            input.available.round_dp(2)
        ));
    }
    let max_notional = (input.available * leverage).round_dp(2);
    if out.allocation_usd > max_notional {
        notes.push(format!(
            "allocation {} clamped to available margin × leverage = {max_notional}",
            out.allocation_usd
        ));
        out.allocation_usd = max_notional;
    }
    RiskVerdict::Approved {
        decision: out,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// Whether the decision states that the open position's exit plan no longer holds
/// ("invalidated", "invalidation" in its rationale or exit plan).
pub fn declares_invalidated(d: &TradeDecision) -> bool {
    let says = |t: &str| t.to_ascii_lowercase().contains("invalidat");
    says(&d.rationale) || says(&d.exit_plan)
}

/// Whether `decision` would reverse an open position of side `position` (an entry on
/// the other side, as opposed to a plain close).
pub fn is_reversal(decision: &TradeDecision, position: Option<PositionSide>) -> bool {
    let target = match decision.action {
        TradeAction::Hold => return false,
        TradeAction::Buy => PositionSide::Long,
        TradeAction::Sell => PositionSide::Short,
    };
    decision.allocation_usd > Decimal::ZERO && position.is_some_and(|p| p != target)
}

fn refuse(reason: String) -> RiskVerdict {
    RiskVerdict::Refused { reason }
}

fn wrong_side(d: &TradeDecision, target: PositionSide, price: Decimal) -> Option<String> {
    // For a long the TP sits above the price and the SL below; mirrored for a short.
    let long = target == PositionSide::Long;
    let checks = [
        ("tp_price", d.tp_price, long),
        ("sl_price", d.sl_price, !long),
    ];
    for (name, level, must_be_above) in checks {
        if let Some(level) = level {
            let ok = if must_be_above {
                level > price
            } else {
                level < price
            };
            if !ok {
                return Some(format!(
                    "{name} {level} is on the wrong side of the price {price} for a {} \
                     (must be {} it)",
                    target.as_str(),
                    if must_be_above { "above" } else { "below" }
                ));
            }
        }
    }
    None
}

trait OppositeName {
    fn opposite_name(self) -> &'static str;
}

impl OppositeName for PositionSide {
    fn opposite_name(self) -> &'static str {
        match self {
            PositionSide::Long => "short",
            PositionSide::Short => "long",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::Asset;
    use rust_decimal_macros::dec;

    fn buy(alloc: Decimal, tp: Option<Decimal>, sl: Option<Decimal>) -> TradeDecision {
        TradeDecision {
            asset: Asset::new("BTC"),
            action: TradeAction::Buy,
            allocation_usd: alloc,
            tp_price: tp,
            sl_price: sl,
            exit_plan: String::new(),
            rationale: String::new(),
        }
    }

    fn input(position: Option<PositionSide>) -> RiskInput {
        RiskInput {
            price: dec!(100),
            available: dec!(1000),
            position,
            last_trade_at: None,
            now: Utc::now(),
            equity: dec!(1000),
            day_start_equity: Some(dec!(1000)),
            reversal_streak: 1,
            exit_plan: None,
            database_unreachable_for: None,
        }
    }

    fn limits() -> RiskLimits {
        RiskLimits {
            leverage: 2,
            hysteresis_cycles: 1,
            ..Default::default()
        }
    }

    #[test]
    fn approves_a_sane_entry() {
        let v = check(
            &buy(dec!(500), Some(dec!(110)), Some(dec!(95))),
            &limits(),
            &input(None),
        );
        assert_eq!(v.outcome(), "approved");
    }

    #[test]
    fn refuses_wrong_side_protection() {
        let v = check(
            &buy(dec!(500), Some(dec!(90)), None),
            &limits(),
            &input(None),
        );
        assert!(matches!(v, RiskVerdict::Refused { ref reason } if reason.contains("tp_price 90")));
        let v = check(
            &buy(dec!(500), None, Some(dec!(101))),
            &limits(),
            &input(None),
        );
        assert!(
            matches!(v, RiskVerdict::Refused { ref reason } if reason.contains("sl_price 101"))
        );
    }

    #[test]
    fn clamps_to_max_position_and_available_margin() {
        let mut l = limits();
        l.max_position_usd = Some(dec!(1500));
        let v = check(&buy(dec!(5000), None, None), &l, &input(None));
        match v {
            RiskVerdict::Approved { decision, note } => {
                assert_eq!(decision.allocation_usd, dec!(1500));
                assert!(note.unwrap().contains("max_position_usd"));
            }
            other => panic!("{other:?}"),
        }
        let v = check(&buy(dec!(5000), None, None), &limits(), &input(None));
        match v {
            RiskVerdict::Approved { decision, .. } => {
                assert_eq!(decision.allocation_usd, dec!(2000))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kill_switch_and_cooldown_block_entries_but_never_exits() {
        let mut l = limits();
        l.kill_switch = true;
        assert_eq!(
            check(&buy(dec!(10), None, None), &l, &input(None)).outcome(),
            "refused"
        );
        let exit = TradeDecision {
            action: TradeAction::Sell,
            allocation_usd: Decimal::ZERO,
            ..buy(Decimal::ZERO, None, None)
        };
        assert_eq!(
            check(&exit, &l, &input(Some(PositionSide::Long))).outcome(),
            "approved"
        );

        let mut l = limits();
        l.cooldown = Some(Duration::from_secs(600));
        let mut i = input(None);
        i.last_trade_at = Some(i.now - chrono::Duration::seconds(60));
        assert_eq!(
            check(&buy(dec!(10), None, None), &l, &i).outcome(),
            "refused"
        );
    }

    #[test]
    fn buy_while_long_is_a_hold_and_close_without_position_is_refused() {
        assert_eq!(
            check(
                &buy(dec!(10), None, None),
                &limits(),
                &input(Some(PositionSide::Long))
            ),
            RiskVerdict::Hold
        );
        let close = TradeDecision {
            action: TradeAction::Sell,
            ..buy(Decimal::ZERO, None, None)
        };
        assert_eq!(check(&close, &limits(), &input(None)).outcome(), "refused");
    }

    fn sell(alloc: Decimal) -> TradeDecision {
        TradeDecision {
            action: TradeAction::Sell,
            ..buy(alloc, Some(dec!(90)), Some(dec!(105)))
        }
    }

    #[test]
    fn a_reversal_needs_the_call_repeated_and_the_plan_invalidated() {
        let mut l = limits();
        l.hysteresis_cycles = 2;
        let mut i = input(Some(PositionSide::Long));
        // First cycle asking to go short: refused by hysteresis.
        let v = check(&sell(dec!(100)), &l, &i);
        assert!(
            matches!(v, RiskVerdict::Refused { ref reason } if reason.contains("hysteresis") && reason.contains("(1 so far)")),
            "{v:?}"
        );
        // Second cycle in a row: allowed (no exit plan recorded).
        i.reversal_streak = 2;
        assert_eq!(check(&sell(dec!(100)), &l, &i).outcome(), "approved");
        // With an exit plan in force the decision must say it is invalidated.
        i.exit_plan = Some("hold until 4h close below EMA50".into());
        let v = check(&sell(dec!(100)), &l, &i);
        assert!(
            matches!(v, RiskVerdict::Refused { ref reason } if reason.contains("exit plan")),
            "{v:?}"
        );
        let mut d = sell(dec!(100));
        d.rationale = "4h closed below EMA50: long thesis invalidated".into();
        assert_eq!(check(&d, &l, &i).outcome(), "approved");
        // A plain close is always allowed, whatever the streak or plan.
        i.reversal_streak = 1;
        assert_eq!(check(&sell(Decimal::ZERO), &l, &i).outcome(), "approved");
        assert!(is_reversal(&sell(dec!(1)), Some(PositionSide::Long)));
        assert!(!is_reversal(&sell(Decimal::ZERO), Some(PositionSide::Long)));
        assert!(!is_reversal(&sell(dec!(1)), None));
    }

    #[test]
    fn the_daily_loss_limit_and_the_global_switch_stop_entries_not_exits() {
        let mut l = limits();
        l.max_daily_loss_pct = Some(dec!(5));
        let mut i = input(None);
        i.day_start_equity = Some(dec!(1000));
        i.equity = dec!(951);
        assert_eq!(
            check(&buy(dec!(10), None, None), &l, &i).outcome(),
            "approved"
        );
        i.equity = dec!(950);
        let v = check(&buy(dec!(10), None, None), &l, &i);
        assert!(
            matches!(v, RiskVerdict::Refused { ref reason } if reason.contains("daily loss limit") && reason.contains("5.00%")),
            "{v:?}"
        );
        let mut i = input(Some(PositionSide::Long));
        i.equity = dec!(900);
        assert_eq!(check(&sell(Decimal::ZERO), &l, &i).outcome(), "approved");

        let mut g = limits();
        g.global_kill_switch = true;
        let v = check(&buy(dec!(10), None, None), &g, &input(None));
        assert!(
            matches!(v, RiskVerdict::Refused { ref reason } if reason.contains("global kill switch"))
        );
    }

    #[test]
    fn a_paused_account_opens_nothing_but_may_close() {
        let paused = RiskLimits {
            paused: true,
            ..limits()
        };
        assert!(matches!(
            check(&buy(dec!(100), None, None), &paused, &input(None)),
            RiskVerdict::Refused { ref reason } if reason.contains("paused")
        ));
        assert!(matches!(
            check(
                &buy(dec!(0), None, None),
                &paused,
                &input(Some(PositionSide::Short))
            ),
            RiskVerdict::Approved { .. }
        ));
    }

    #[test]
    fn a_long_database_outage_refuses_entries_but_not_closing() {
        let limits = RiskLimits {
            halt_entries_after: Some(Duration::from_secs(60)),
            ..limits()
        };
        let mut down = input(None);
        down.database_unreachable_for = Some(Duration::from_secs(59));
        assert!(
            matches!(
                check(&buy(dec!(100), None, None), &limits, &down),
                RiskVerdict::Approved { .. }
            ),
            "a short outage does not stop trading"
        );
        down.database_unreachable_for = Some(Duration::from_secs(60));
        match check(&buy(dec!(100), None, None), &limits, &down) {
            RiskVerdict::Refused { reason } => {
                assert!(
                    reason.contains("database has been unreachable for 60s"),
                    "{reason}"
                );
                assert!(reason.contains("storage.halt_entries_after"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Closing a short with a buy of 0 is still allowed.
        let mut short = input(Some(PositionSide::Short));
        short.database_unreachable_for = Some(Duration::from_secs(600));
        assert!(matches!(
            check(&buy(dec!(0), None, None), &limits, &short),
            RiskVerdict::Approved { .. }
        ));
        // No limit configured: never stops.
        assert!(matches!(
            check(&buy(dec!(100), None, None), &self::limits(), &down),
            RiskVerdict::Approved { .. }
        ));
    }
}
