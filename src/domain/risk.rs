//! Hard risk rules, applied to every decision before execution, whatever produced it.
//! A refusal is a value with a reason (recorded, published), never an error.
//!
//! Rules only ever block or shrink what adds exposure; closing a position is always
//! allowed. Which rule clamps and which refuses:
//! - kill switch on: refuse new exposure;
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
    /// Open nothing new.
    pub kill_switch: bool,
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
    if limits.kill_switch {
        return refuse("kill switch is on: no new positions".into());
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
        }
    }

    fn limits() -> RiskLimits {
        RiskLimits {
            leverage: 2,
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
}
