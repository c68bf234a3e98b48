//! Guards in front of a model call: a per-account circuit breaker and a daily budget.
//! Both are pure state machines over the times and amounts they are given.
//!
//! Breaker: closed while calls succeed; after `threshold` consecutive failed calls it
//! opens for `cooldown` (cycles hold without calling); then it half-opens and lets one
//! trial call through: success closes it, failure opens it again for another cooldown.
//! Budget: the spending of the current UTC day; once it reaches the limit the account
//! holds until 00:00 UTC.

use crate::domain::types::utc_midnight;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::time::Duration;

/// The breaker's state as shown in the account status.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Calls are skipped until `until`.
    Open {
        /// When the trial call is allowed.
        until: DateTime<Utc>,
    },
    /// The next call is a trial.
    HalfOpen,
}

/// A per-account circuit breaker.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: chrono::Duration,
    failures: u32,
    open_until: Option<DateTime<Utc>>,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown: chrono::Duration::from_std(cooldown)
                .unwrap_or_else(|_| chrono::Duration::minutes(5)),
            failures: 0,
            open_until: None,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> BreakerState {
        match self.open_until {
            Some(until) if now < until => BreakerState::Open { until },
            Some(_) => BreakerState::HalfOpen,
            None => BreakerState::Closed {
                failures: self.failures,
            },
        }
    }

    /// `Err(reason)` while open; a half-open breaker lets the call through as a trial.
    pub fn allow(&self, now: DateTime<Utc>) -> Result<(), String> {
        match self.state(now) {
            BreakerState::Open { until } => Err(format!(
                "circuit breaker open after {} consecutive failed model calls; next trial call \
                 at {}",
                self.failures,
                until.to_rfc3339()
            )),
            _ => Ok(()),
        }
    }

    /// Records a call's outcome.
    pub fn record(&mut self, ok: bool, now: DateTime<Utc>) {
        if ok {
            self.failures = 0;
            self.open_until = None;
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let half_open = matches!(self.state(now), BreakerState::HalfOpen);
        if half_open || self.failures >= self.threshold {
            self.open_until = Some(now + self.cooldown);
        }
    }
}

/// A daily spending limit.
#[derive(Clone, Debug, Serialize)]
pub struct DailyBudget {
    /// Limit in USD, if any.
    pub limit_usd: Option<Decimal>,
    /// Spent since `day` started.
    pub spent_usd: Decimal,
    /// 00:00 UTC of the day counted.
    pub day: DateTime<Utc>,
}

impl DailyBudget {
    /// A budget that already spent `spent_today` (restored from the database).
    pub fn new(limit_usd: Option<Decimal>, spent_today: Decimal, now: DateTime<Utc>) -> Self {
        DailyBudget {
            limit_usd,
            spent_usd: spent_today,
            day: utc_midnight(now),
        }
    }

    fn roll(&mut self, now: DateTime<Utc>) {
        let today = utc_midnight(now);
        if today != self.day {
            self.day = today;
            self.spent_usd = Decimal::ZERO;
        }
    }

    /// `Err(reason)` once today's spending reached the limit.
    pub fn check(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        self.roll(now);
        match self.limit_usd {
            Some(limit) if self.spent_usd >= limit => Err(format!(
                "daily model budget spent: {} USD of {limit} USD (llm.max_cost_usd_per_day); \
                 holding until 00:00 UTC",
                self.spent_usd.round_dp(4)
            )),
            _ => Ok(()),
        }
    }

    /// Adds a call's cost.
    pub fn add(&mut self, cost_usd: Decimal, now: DateTime<Utc>) {
        self.roll(now);
        self.spent_usd += cost_usd;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn breaker_opens_after_repeated_failures_and_half_opens_after_the_cooldown() {
        let t0 = Utc::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(60));
        b.record(false, t0);
        b.record(false, t0);
        assert!(b.allow(t0).is_ok());
        b.record(false, t0);
        let reason = b.allow(t0).unwrap_err();
        assert!(reason.contains("3 consecutive failed"), "{reason}");
        assert!(b.allow(t0 + chrono::Duration::seconds(59)).is_err());
        let t1 = t0 + chrono::Duration::seconds(61);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.allow(t1).is_ok(), "one trial call");
        b.record(false, t1);
        assert!(b.allow(t1).is_err(), "a failed trial opens it again");
        let t2 = t1 + chrono::Duration::seconds(61);
        b.record(true, t2);
        assert_eq!(b.state(t2), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn budget_stops_at_the_limit_and_resets_at_midnight() {
        let now = "2026-11-26T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let mut b = DailyBudget::new(Some(dec!(1)), dec!(0.6), now);
        assert!(b.check(now).is_ok());
        b.add(dec!(0.4), now);
        let reason = b.check(now).unwrap_err();
        assert!(reason.contains("1.0 USD of 1 USD"), "{reason}");
        let tomorrow = "2026-11-27T00:00:01Z".parse::<DateTime<Utc>>().unwrap();
        assert!(b.check(tomorrow).is_ok());
        assert_eq!(b.spent_usd, Decimal::ZERO);
        let mut unlimited = DailyBudget::new(None, dec!(100), now);
        assert!(unlimited.check(now).is_ok());
    }
}
