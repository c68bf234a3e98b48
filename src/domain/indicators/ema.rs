//! Exponential moving average, TA-Lib `TA_EMA`.
//!
//! Entry points: [`Ema`] (streaming), [`ema`] (batch).
//!
//! Invariants: `k = 2 / (period + 1)`; the first value, at input index `period - 1`,
//! is the simple average of the first `period` inputs (summed in order, then
//! divided); after that `ema = (x - ema) * k + ema`, evaluated as one fused
//! multiply-add exactly like TA-Lib 0.8.1, which makes the output bit-identical.

use super::{check_period, finite, run, Indicator, IndicatorError};

/// Streaming EMA of a price series.
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    k: f64,
    /// Inputs summed so far while seeding (fewer than `period`).
    seed_sum: f64,
    seed_count: usize,
    value: Option<f64>,
}

impl Ema {
    /// An EMA over `period` inputs (at least 2).
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let period = check_period("EMA", "period", period)?;
        Ok(Self {
            period,
            k: 2.0 / (period as f64 + 1.0),
            seed_sum: 0.0,
            seed_count: 0,
            value: None,
        })
    }

    /// The configured period.
    pub fn period(&self) -> usize {
        self.period
    }

    /// The smoothing factor `2 / (period + 1)`.
    pub fn k(&self) -> f64 {
        self.k
    }
}

/// One EMA step as TA-Lib 0.8.1 computes it: `(x - prev) * k + prev`, fused.
/// Shared with MACD, whose three EMAs take the same step.
pub(super) fn ema_step(prev: f64, x: f64, k: f64) -> f64 {
    (x - prev).mul_add(k, prev)
}

impl Indicator for Ema {
    type Input = f64;
    type Output = f64;

    fn name(&self) -> String {
        format!("EMA({})", self.period)
    }

    fn lookback(&self) -> usize {
        self.period - 1
    }

    fn update(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            self.reset();
            return None;
        }
        let next = match self.value {
            Some(prev) => ema_step(prev, x, self.k),
            None => {
                self.seed_sum += x;
                self.seed_count += 1;
                if self.seed_count < self.period {
                    return None;
                }
                self.seed_sum / self.period as f64
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
        self.seed_sum = 0.0;
        self.seed_count = 0;
        self.value = None;
    }
}

/// EMA over a whole series, one output per input (`None` for the first
/// `period - 1`). A period below 2 gives all `None`.
pub fn ema(values: &[f64], period: usize) -> Vec<Option<f64>> {
    match Ema::new(period) {
        Ok(mut e) => run(&mut e, values.iter().copied()),
        Err(_) => vec![None; values.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_close, CLOSE};
    use super::*;

    #[test]
    fn matches_talib_values_on_the_fixture() {
        let e20 = ema(&CLOSE, 20);
        assert_eq!(e20[18], None);
        assert_close(e20[19], 60181.42999999998, 1e-9);
        assert_close(e20[20], 60141.750952380935, 1e-9);
        assert_close(e20[39], 59407.12229572868, 1e-9);

        let e5 = ema(&CLOSE, 5);
        assert_eq!(e5[3], None);
        assert_close(e5[4], 60160.44, 1e-9);
        assert_close(e5[5], 60189.39333333333, 1e-9);
        assert_close(e5[39], 59085.39343079538, 1e-9);
    }

    #[test]
    fn seed_is_the_simple_average_then_smoothing_by_k() {
        let out = ema(&[1.0, 2.0, 3.0, 10.0], 3);
        assert_eq!(out[..2], [None, None]);
        assert_eq!(out[2], Some(2.0));
        assert_eq!(out[3], Some(2.0 + (10.0 - 2.0) * 0.5));
    }

    #[test]
    fn streaming_equals_batch_and_reset_starts_over() {
        let batch = ema(&CLOSE, 20);
        let mut e = Ema::new(20).unwrap();
        assert_eq!(e.lookback(), 19);
        assert!(!e.is_ready());
        let first = run(&mut e, CLOSE);
        assert_eq!(first, batch);
        assert!(e.is_ready());
        assert_eq!(e.value(), batch[39]);

        e.reset();
        assert!(!e.is_ready());
        assert_eq!(e.value(), None);
        assert_eq!(run(&mut e, CLOSE), batch);
    }

    #[test]
    fn short_inputs_and_bad_periods() {
        assert!(ema(&[], 20).is_empty());
        assert_eq!(ema(&CLOSE[..19], 20), vec![None; 19]);
        assert_eq!(ema(&CLOSE[..5], 1), vec![None; 5]);
        assert!(matches!(
            Ema::new(0),
            Err(IndicatorError::PeriodTooShort { period: 0, .. })
        ));
    }

    #[test]
    fn a_non_finite_input_restarts_the_warm_up() {
        let mut e = Ema::new(3).unwrap();
        assert_eq!(run(&mut e, [1.0, 2.0, 3.0]), [None, None, Some(2.0)]);
        assert_eq!(e.update(f64::NAN), None);
        assert!(!e.is_ready());
        assert_eq!(run(&mut e, [4.0, 5.0, 6.0]), [None, None, Some(5.0)]);
        // Overflow inside the step also resets rather than yielding infinity.
        let mut e = Ema::new(2).unwrap();
        let half = f64::MAX / 2.0;
        assert_eq!(run(&mut e, [half, half]), [None, Some(half)]);
        assert_eq!(e.update(-f64::MAX), None);
    }
}
