//! The request gate of one venue base URL: the venue's limits are per IP, so every
//! client of that URL in this process — the market-data hubs and every live account —
//! shares one gate.
//!
//! Entry points: [`VenueGate::for_base_url`] (the process-wide gate of a URL),
//! [`VenueGate::admit`] before each request, [`VenueGate::observe`] after each answer,
//! [`VenueGate::status`] for `/status`.
//!
//! What it enforces:
//! - **Request weight.** The venue counts weight per IP per clock minute and reports it
//!   in `X-MBX-USED-WEIGHT-1M`. The gate adds each request's weight locally when it is
//!   sent and takes the venue's figure when it answers. A request that would take the
//!   minute past [`HEADROOM`] of the limit waits for the next minute (or is refused
//!   when that is further away than the caller can wait).
//! - **429.** After a 429 every request waits until its `Retry-After` has passed (1 s
//!   when the venue did not say).
//! - **418.** After a ban every request to the URL is refused at once with
//!   [`VenueError::Banned`] until the ban ends (2 minutes when the venue did not say):
//!   nothing is sent to a venue that banned us, which is how bans get longer.
//!
//! Invariant: the gate never sleeps while holding its lock; `admit` returns how long
//! the caller must wait, and the caller sleeps.

use crate::exchange::error::VenueError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Share of the per-minute weight limit the gate lets this process use.
pub const HEADROOM: f64 = 0.9;

/// Request weight per minute assumed until `exchangeInfo` declares it.
pub const DEFAULT_WEIGHT_LIMIT: u32 = 2400;

/// How long a ban lasts when the venue does not say.
pub const DEFAULT_BAN: Duration = Duration::from_secs(120);

/// How long to hold back after a 429 without `Retry-After`.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct GateState {
    /// Weight used in `minute` (venue's figure, plus what was sent since).
    used: u32,
    /// The clock minute `used` belongs to (Unix minutes).
    minute: i64,
    limit: u32,
    banned_until: Option<(Instant, DateTime<Utc>)>,
    cooldown_until: Option<Instant>,
    bans: u32,
    rate_limited: u32,
}

/// The shared limiter of one venue base URL. See the module docs.
#[derive(Debug)]
pub struct VenueGate {
    base_url: String,
    state: Mutex<GateState>,
}

/// What a gate reports for `/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateStatus {
    /// The venue base URL.
    pub base_url: String,
    /// Request weight used in the current minute (venue's figure plus our sends since).
    pub used_weight: u32,
    /// The per-minute weight limit in force.
    pub weight_limit: u32,
    /// When a ban (418) ends, while one is in force.
    pub banned_until: Option<DateTime<Utc>>,
    /// 418 answers seen since start.
    pub bans: u32,
    /// 429 answers seen since start.
    pub rate_limited: u32,
}

fn registry() -> &'static Mutex<HashMap<String, Arc<VenueGate>>> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<VenueGate>>>> = OnceLock::new();
    GATES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn unix_minute(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(60)
}

impl VenueGate {
    /// A gate of its own (not shared), for tests and tools.
    pub fn new(base_url: &str) -> VenueGate {
        VenueGate {
            base_url: base_url.to_string(),
            state: Mutex::new(GateState {
                used: 0,
                minute: unix_minute(Utc::now()),
                limit: DEFAULT_WEIGHT_LIMIT,
                banned_until: None,
                cooldown_until: None,
                bans: 0,
                rate_limited: 0,
            }),
        }
    }

    /// The process-wide gate of `base_url` (normalised, without a trailing slash).
    pub fn for_base_url(base_url: &str) -> Arc<VenueGate> {
        let key = base_url.trim().trim_end_matches('/').to_string();
        let mut gates = match registry().lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        gates
            .entry(key.clone())
            .or_insert_with(|| Arc::new(VenueGate::new(&key)))
            .clone()
    }

    /// Every gate created so far (for `/status`).
    pub fn all() -> Vec<Arc<VenueGate>> {
        let gates = match registry().lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out: Vec<Arc<VenueGate>> = gates.values().cloned().collect();
        out.sort_by(|a, b| a.base_url.cmp(&b.base_url));
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The base URL this gate guards.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sets the per-minute weight limit (from `exchangeInfo.rateLimits`).
    pub fn set_weight_limit(&self, limit: u32) {
        if limit > 0 {
            self.lock().limit = limit;
        }
    }

    /// Asks to send a request of `weight` to `endpoint` now. `Ok(None)`: go (the weight
    /// is counted). `Ok(Some(wait))`: sleep `wait`, then ask again. `Err`: the venue
    /// banned us, or the wait is longer than `max_wait` ([`VenueError::RateLimited`]
    /// with the wait as `retry_after`).
    pub fn admit(
        &self,
        endpoint: &str,
        weight: u32,
        max_wait: Duration,
    ) -> Result<Option<Duration>, VenueError> {
        let now = Instant::now();
        let wall = Utc::now();
        let mut s = self.lock();
        if let Some((until, _)) = s.banned_until {
            if now < until {
                return Err(VenueError::Banned {
                    endpoint: endpoint.to_string(),
                    retry_after: Some(until - now),
                });
            }
            s.banned_until = None;
        }
        let wait = match s.cooldown_until {
            Some(until) if now < until => Some(until - now),
            _ => {
                s.cooldown_until = None;
                let minute = unix_minute(wall);
                if minute != s.minute {
                    s.minute = minute;
                    s.used = 0;
                }
                let budget = (f64::from(s.limit) * HEADROOM) as u32;
                if s.used.saturating_add(weight) > budget && s.used > 0 {
                    let into = wall.timestamp_subsec_millis() as u64
                        + (wall.timestamp().rem_euclid(60) as u64) * 1000;
                    Some(Duration::from_millis(60_000u64.saturating_sub(into) + 50))
                } else {
                    None
                }
            }
        };
        match wait {
            None => {
                s.used = s.used.saturating_add(weight);
                Ok(None)
            }
            Some(wait) if wait <= max_wait => Ok(Some(wait)),
            Some(wait) => Err(VenueError::RateLimited {
                endpoint: endpoint.to_string(),
                retry_after: Some(wait),
            }),
        }
    }

    /// Records an answer: the venue's used weight, and a 429 or 418 with its
    /// `Retry-After`.
    pub fn observe(&self, status: u16, used_weight: Option<u32>, retry_after: Option<Duration>) {
        let now = Instant::now();
        let wall = Utc::now();
        let mut s = self.lock();
        if let Some(w) = used_weight {
            s.minute = unix_minute(wall);
            s.used = w;
        }
        match status {
            418 => {
                let ban = retry_after.unwrap_or(DEFAULT_BAN);
                let wall_until =
                    wall + chrono::Duration::from_std(ban).unwrap_or(chrono::Duration::MAX);
                s.banned_until = Some((now + ban, wall_until));
                s.bans = s.bans.saturating_add(1);
            }
            429 => {
                s.cooldown_until = Some(now + retry_after.unwrap_or(DEFAULT_COOLDOWN));
                s.rate_limited = s.rate_limited.saturating_add(1);
            }
            _ => {}
        }
    }

    /// When the ban in force ends, if any.
    pub fn banned_until(&self) -> Option<DateTime<Utc>> {
        let s = self.lock();
        match s.banned_until {
            Some((until, wall)) if Instant::now() < until => Some(wall),
            _ => None,
        }
    }

    /// Weight used, limit, ban and counters.
    pub fn status(&self) -> GateStatus {
        let banned_until = self.banned_until();
        let s = self.lock();
        GateStatus {
            base_url: self.base_url.clone(),
            used_weight: s.used,
            weight_limit: s.limit,
            banned_until,
            bans: s.bans,
            rate_limited: s.rate_limited,
        }
    }

    /// Waits as the gate says, then counts the request; errors as [`Self::admit`].
    pub async fn pass(
        &self,
        endpoint: &str,
        weight: u32,
        max_wait: Duration,
    ) -> Result<(), VenueError> {
        // A few rounds at most: each wait ends at a minute boundary or a cooldown end.
        for _ in 0..4 {
            match self.admit(endpoint, weight, max_wait)? {
                None => return Ok(()),
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
        Err(VenueError::RateLimited {
            endpoint: endpoint.to_string(),
            retry_after: None,
        })
    }
}

/// The request weight of an endpoint, as the venue's documentation lists it (Binance
/// USDⓈ-M conventions). Unknown endpoints count 1.
pub fn weight_of(endpoint: &str, params: &[(&str, &str)]) -> u32 {
    let tail = endpoint
        .trim_start_matches("/fapi/v1")
        .trim_start_matches("/fapi/v2")
        .trim_start_matches("/fapi/v3");
    let has = |name: &str| params.iter().any(|(k, _)| *k == name);
    match tail {
        "/klines" => {
            let limit = params
                .iter()
                .find(|(k, _)| *k == "limit")
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .unwrap_or(500);
            match limit {
                0..=99 => 1,
                100..=499 => 2,
                500..=1000 => 5,
                _ => 10,
            }
        }
        "/openOrders" if !has("symbol") => 40,
        "/account" | "/positionRisk" | "/userTrades" | "/allOrders" => 5,
        "/income" => 30,
        "/exchangeInfo" | "/premiumIndex" | "/openInterest" | "/time" | "/ping" => 1,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_refuses_everything_until_it_ends() {
        let gate = VenueGate::new("http://x");
        assert_eq!(gate.admit("/fapi/v1/time", 1, Duration::ZERO), Ok(None));
        gate.observe(418, Some(10), Some(Duration::from_secs(60)));
        let err = gate
            .admit("/fapi/v1/order", 1, Duration::from_secs(3600))
            .unwrap_err();
        assert!(matches!(err, VenueError::Banned { .. }), "{err}");
        assert!(gate.banned_until().is_some());
        assert_eq!(gate.status().bans, 1);
    }

    #[test]
    fn a_429_holds_requests_back_for_retry_after() {
        let gate = VenueGate::new("http://x");
        gate.observe(429, None, Some(Duration::from_secs(5)));
        let wait = gate
            .admit("/fapi/v1/time", 1, Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert!(wait > Duration::from_secs(4) && wait <= Duration::from_secs(5));
        let err = gate
            .admit("/fapi/v1/time", 1, Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(err, VenueError::RateLimited { .. }));
    }

    #[test]
    fn weight_near_the_limit_waits_for_the_next_minute() {
        let gate = VenueGate::new("http://x");
        gate.set_weight_limit(100);
        gate.observe(200, Some(85), None);
        assert_eq!(gate.admit("/fapi/v1/time", 5, Duration::ZERO), Ok(None));
        let wait = gate
            .admit("/fapi/v1/account", 5, Duration::from_secs(61))
            .unwrap()
            .unwrap();
        assert!(wait <= Duration::from_millis(60_050), "{wait:?}");
        assert_eq!(gate.status().used_weight, 90);
    }

    #[test]
    fn gates_are_shared_per_base_url() {
        let a = VenueGate::for_base_url("http://127.0.0.1:1/");
        let b = VenueGate::for_base_url("http://127.0.0.1:1");
        assert!(Arc::ptr_eq(&a, &b));
        let c = VenueGate::for_base_url("http://127.0.0.1:2");
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn weights_follow_the_documented_table() {
        assert_eq!(weight_of("/fapi/v1/klines", &[("limit", "1500")]), 10);
        assert_eq!(weight_of("/fapi/v1/klines", &[("limit", "50")]), 1);
        assert_eq!(weight_of("/fapi/v1/openOrders", &[]), 40);
        assert_eq!(
            weight_of("/fapi/v1/openOrders", &[("symbol", "BTCUSDT")]),
            1
        );
        assert_eq!(weight_of("/fapi/v3/positionRisk", &[]), 5);
        assert_eq!(weight_of("/fapi/v1/income", &[]), 30);
    }
}
