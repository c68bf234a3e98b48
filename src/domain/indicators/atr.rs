//! Average true range (Wilder), TA-Lib `TA_ATR`.
//!
//! Entry points: [`Atr`] (streaming), [`atr`] (batch), [`true_range`].
//!
//! Invariants:
//! - The true range needs the previous close, so the first bar has none:
//!   `TR_i = max(high - low, |high - prev_close|, |low - prev_close|)` for `i >= 1`.
//! - The first ATR, at bar index `period`, is the simple average of
//!   `TR_1 ..= TR_period`; then Wilder smoothing,
//!   `atr = (atr * (period - 1) + TR) / period`.
//! - TA-Lib 0.8.1 rearranges that smoothing slightly differently internally, so
//!   values agree to ~1e-15 relative rather than bit for bit.

use super::{check_period, finite, run, HighLowClose, Indicator, IndicatorError};

/// Wilder's true range of a bar given the previous bar's close.
pub fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    (high - low)
        .max((high - prev_close).abs())
        .max((low - prev_close).abs())
}

/// Streaming ATR over bars.
#[derive(Debug, Clone)]
pub struct Atr {
    period: usize,
    prev_close: Option<f64>,
    /// True ranges summed while seeding (fewer than `period`).
    seed_sum: f64,
    seed_count: usize,
    value: Option<f64>,
}

impl Atr {
    /// An ATR over `period` true ranges (at least 2).
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let period = check_period("ATR", "period", period)?;
        Ok(Self {
            period,
            prev_close: None,
            seed_sum: 0.0,
            seed_count: 0,
            value: None,
        })
    }

    /// The configured period.
    pub fn period(&self) -> usize {
        self.period
    }
}

impl Indicator for Atr {
    type Input = HighLowClose;
    type Output = f64;

    fn name(&self) -> String {
        format!("ATR({})", self.period)
    }

    fn lookback(&self) -> usize {
        self.period
    }

    fn update(&mut self, bar: HighLowClose) -> Option<f64> {
        if !bar.is_finite() {
            self.reset();
            return None;
        }
        let prev_close = self.prev_close.replace(bar.close)?;
        let tr = true_range(bar.high, bar.low, prev_close);
        let n = self.period as f64;
        let next = match self.value {
            Some(prev) => (prev * (n - 1.0) + tr) / n,
            None => {
                self.seed_sum += tr;
                self.seed_count += 1;
                if self.seed_count < self.period {
                    return None;
                }
                self.seed_sum / n
            }
        };
        self.value = finite(next);
        if self.value.is_none() {
            self.reset();
        }
        self.value
    }

    fn value(&self) -> Option<f64> {
        self.value
    }

    fn reset(&mut self) {
        self.prev_close = None;
        self.seed_sum = 0.0;
        self.seed_count = 0;
        self.value = None;
    }
}

/// ATR over bars given as parallel slices, one output per bar (`None` for the
/// first `period`). Slices of different lengths are truncated to the shortest; a
/// period below 2 gives all `None`.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<Option<f64>> {
    let bars = high
        .iter()
        .zip(low)
        .zip(close)
        .map(|((&high, &low), &close)| HighLowClose { high, low, close });
    match Atr::new(period) {
        Ok(mut a) => run(&mut a, bars),
        Err(_) => bars.map(|_| None).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_close, bars, CLOSE, HIGH, LOW};
    use super::*;

    #[test]
    fn matches_talib_values_on_the_fixture() {
        let a14 = atr(&HIGH, &LOW, &CLOSE, 14);
        assert_eq!(a14[13], None);
        assert_close(a14[14], 154.97142857142794, 1e-9);
        assert_close(a14[15], 157.58775510204012, 1e-9);
        assert_close(a14[39], 183.99491893137878, 1e-9);

        let a3 = atr(&HIGH, &LOW, &CLOSE, 3);
        assert_eq!(a3[2], None);
        assert_close(a3[3], 126.53333333333285, 1e-9);
        assert_close(a3[4], 145.35555555555524, 1e-9);
        assert_close(a3[39], 223.48785710576354, 1e-9);
    }

    #[test]
    fn true_range_covers_gaps_both_ways() {
        assert_eq!(true_range(10.0, 8.0, 9.0), 2.0);
        assert_eq!(true_range(10.0, 8.0, 5.0), 5.0); // gap up
        assert_eq!(true_range(10.0, 8.0, 14.0), 6.0); // gap down
    }

    #[test]
    fn seed_is_the_average_of_the_first_true_ranges_excluding_bar_zero() {
        let out = atr(
            &[2.0, 3.0, 4.0, 5.0],
            &[1.0, 1.0, 2.0, 3.0],
            &[1.5, 2.0, 3.0, 4.0],
            2,
        );
        assert_eq!(out, [None, None, Some(2.0), Some(2.0)]);
    }

    #[test]
    fn streaming_equals_batch_and_reset_starts_over() {
        let batch = atr(&HIGH, &LOW, &CLOSE, 14);
        let mut a = Atr::new(14).unwrap();
        assert_eq!(a.lookback(), 14);
        assert_eq!(run(&mut a, bars()), batch);
        assert!(a.is_ready());
        a.reset();
        assert_eq!(a.value(), None);
        assert_eq!(run(&mut a, bars()), batch);
    }

    #[test]
    fn short_inputs_mismatched_lengths_and_bad_periods() {
        assert!(atr(&[], &[], &[], 14).is_empty());
        assert_eq!(
            atr(&HIGH[..14], &LOW[..14], &CLOSE[..14], 14),
            vec![None; 14]
        );
        assert_eq!(atr(&HIGH, &LOW[..20], &CLOSE, 3).len(), 20);
        assert_eq!(atr(&HIGH, &LOW, &CLOSE, 0), vec![None; 40]);
        assert!(Atr::new(1).is_err());
    }

    #[test]
    fn a_non_finite_bar_restarts_the_warm_up() {
        let mut a = Atr::new(2).unwrap();
        let good = bars();
        let first = run(&mut a, good[..5].iter().copied());
        let bad = HighLowClose {
            high: f64::NAN,
            ..good[5]
        };
        assert_eq!(a.update(bad), None);
        assert!(!a.is_ready());
        assert_eq!(run(&mut a, good[..5].iter().copied()), first);
    }
}
