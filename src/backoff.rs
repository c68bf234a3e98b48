//! Exponential backoff with full jitter, shared by every client that retries (the
//! venue's market data, the models).

use rand::Rng;
use std::time::Duration;

/// The longest wait before retry number `retry` (0 for the first retry):
/// `min(max_delay, base_delay * 2^retry)`.
pub fn ceiling(base_delay: Duration, max_delay: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    base_delay.saturating_mul(factor).min(max_delay)
}

/// A random wait in `[0, ceiling(..)]` ("full jitter"), so that many clients failing
/// together do not retry together.
pub fn full_jitter(base_delay: Duration, max_delay: Duration, retry: u32) -> Duration {
    let millis =
        u64::try_from(ceiling(base_delay, max_delay, retry).as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap_and_jitter_stays_under_it() {
        let (b, m) = (Duration::from_millis(200), Duration::from_secs(5));
        assert_eq!(ceiling(b, m, 0), b);
        assert_eq!(ceiling(b, m, 2), Duration::from_millis(800));
        assert_eq!(ceiling(b, m, 10), m);
        assert_eq!(ceiling(b, m, 64), m, "no overflow");
        for retry in 0..8 {
            assert!(full_jitter(b, m, retry) <= ceiling(b, m, retry));
        }
    }
}
