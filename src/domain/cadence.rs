//! When an account's cycles happen. Every account cycles once per interval, at a fixed
//! offset within it derived from its id, so that thousands of accounts with the same
//! interval spread their cycles over the interval instead of all firing at the same
//! instant (a burst that would make every one of them wait for the others). The first
//! cycle after a start comes soon — spread over [`STARTUP_SPREAD`], or longer when the
//! daemon starts thousands of accounts at once ([`startup_spread`]) — so an hourly
//! account does not wait an hour for its first decision.
//!
//! Entry points: [`offset`], [`until_next`], [`startup_spread`], [`first_delay`].
//! Everything here is a function of its arguments (the caller passes the clock).
//!
//! Invariant: the offset of an account depends only on its id and interval, so it is the
//! same after every restart and on every machine.

use std::time::Duration;

/// The earliest first cycle after a start (the hubs' first data arrive about then).
pub const STARTUP_MIN: Duration = Duration::from_millis(200);
/// The first cycles after a start spread over at least this much (or the interval, if
/// shorter).
pub const STARTUP_SPREAD: Duration = Duration::from_secs(5);
/// At daemon start, each account widens the window of first cycles by this much.
pub const STARTUP_SPREAD_PER_ACCOUNT: Duration = Duration::from_millis(3);
/// The widest window of first cycles at daemon start.
pub const STARTUP_SPREAD_MAX: Duration = Duration::from_secs(60);

/// A stable 64-bit hash of an account id (FNV-1a: the same on every platform and
/// Rust version).
fn hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The account's offset within its interval, in `[0, interval)`, millisecond precision.
pub fn offset(account_id: &str, interval: Duration) -> Duration {
    let period = interval.as_millis().max(1);
    let ms = u128::from(hash(account_id)) % period;
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// How long from `now_ms` (milliseconds since the Unix epoch) until the account's next
/// cycle: the next instant whose time modulo the interval is its offset (never zero: a
/// cycle due right now is one interval away).
pub fn until_next(now_ms: i64, interval: Duration, offset: Duration) -> Duration {
    let period = i64::try_from(interval.as_millis().max(1)).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset.as_millis()).unwrap_or(0) % period;
    let phase = now_ms.rem_euclid(period);
    let wait = (offset - phase).rem_euclid(period);
    let wait = if wait == 0 { period } else { wait };
    Duration::from_millis(u64::try_from(wait).unwrap_or(0))
}

/// The window the first cycles of `accounts` accounts spread over at daemon start:
/// [`STARTUP_SPREAD`], widened by [`STARTUP_SPREAD_PER_ACCOUNT`] per account (10,000
/// accounts: 30 s), at most [`STARTUP_SPREAD_MAX`].
pub fn startup_spread(accounts: usize) -> Duration {
    let wide =
        STARTUP_SPREAD_PER_ACCOUNT.saturating_mul(u32::try_from(accounts).unwrap_or(u32::MAX));
    wide.clamp(STARTUP_SPREAD, STARTUP_SPREAD_MAX)
}

/// The delay before the first cycle after a start: [`STARTUP_MIN`] plus the account's
/// share of `spread` (or of the interval when it is shorter).
pub fn first_delay(account_id: &str, interval: Duration, spread: Duration) -> Duration {
    STARTUP_MIN + offset(account_id, spread.min(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let minute = Duration::from_secs(60);
        assert_eq!(offset("a1", minute), offset("a1", minute));
        for i in 0..1000 {
            assert!(offset(&format!("acct-{i}"), minute) < minute);
        }
        assert_eq!(offset("a1", Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn ten_thousand_accounts_spread_over_the_interval() {
        // Seconds of a minute: no second holds more than twice its fair share.
        let minute = Duration::from_secs(60);
        let mut per_second = [0u32; 60];
        for i in 0..10_000 {
            per_second[offset(&format!("acct-{i:05}"), minute).as_secs() as usize] += 1;
        }
        let fair = 10_000 / 60;
        assert!(per_second.iter().all(|n| *n < 2 * fair), "{per_second:?}");
        assert!(per_second.iter().all(|n| *n > fair / 2), "{per_second:?}");
    }

    #[test]
    fn the_next_cycle_is_at_the_offset_within_the_interval() {
        let minute = Duration::from_secs(60);
        let offset = Duration::from_secs(15);
        // 12:00:10 → 12:00:15.
        let now = 1_764_590_410_000; // ms; 10 s into a minute
        assert_eq!(now % 60_000, 10_000);
        assert_eq!(until_next(now, minute, offset), Duration::from_secs(5));
        // 12:00:20 → 12:01:15.
        assert_eq!(
            until_next(now + 10_000, minute, offset),
            Duration::from_secs(55)
        );
        // Exactly at the offset: the next one, a whole interval away.
        assert_eq!(until_next(now + 5_000, minute, offset), minute);
    }

    #[test]
    fn the_first_cycle_comes_soon_whatever_the_interval() {
        for interval in [Duration::from_secs(1), Duration::from_secs(3600)] {
            let d = first_delay("hourly", interval, STARTUP_SPREAD);
            assert!(
                d >= STARTUP_MIN && d < STARTUP_MIN + STARTUP_SPREAD,
                "{d:?}"
            );
        }
    }

    #[test]
    fn the_startup_window_grows_with_the_accounts_within_bounds() {
        assert_eq!(startup_spread(4), STARTUP_SPREAD);
        assert_eq!(startup_spread(10_000), Duration::from_secs(30));
        assert_eq!(startup_spread(1_000_000), STARTUP_SPREAD_MAX);
        // Never beyond the interval.
        let d = first_delay("a", Duration::from_secs(2), startup_spread(10_000));
        assert!(d < STARTUP_MIN + Duration::from_secs(2));
    }
}
