//! Relative strength index (Wilder), TA-Lib `TA_RSI`.
//!
//! Entry points: [`Rsi`] (streaming), [`rsi`] (batch).
//!
//! Invariants:
//! - The first value is at input index `period`: average gain and average loss over
//!   the first `period` changes (a zero change counts as a gain of 0).
//! - Then Wilder smoothing, `avg = (avg * (period - 1) + change) / period`, with the
//!   division done as a multiplication by `1 / period` exactly as TA-Lib 0.8.1 does,
//!   which makes the output bit-identical.
//! - `rsi = 100 * gain / (gain + loss)`; when both averages are zero (a flat
//!   stretch) the RSI is **0**, not 50 or NaN — that is what TA-Lib outputs.

use super::{check_period, finite, run, Indicator, IndicatorError};

/// Streaming RSI of a price series.
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    /// `1 / period`, TA-Lib multiplies by it instead of dividing.
    inv_period: f64,
    prev_input: Option<f64>,
    /// Changes seen while seeding (fewer than `period`), then unused.
    seed_count: usize,
    /// Sum of gains while seeding, average gain afterwards.
    gain: f64,
    /// Sum of losses (positive) while seeding, average loss afterwards.
    loss: f64,
    value: Option<f64>,
}

impl Rsi {
    /// An RSI over `period` changes (at least 2).
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let period = check_period("RSI", "period", period)?;
        Ok(Self {
            period,
            inv_period: 1.0 / period as f64,
            prev_input: None,
            seed_count: 0,
            gain: 0.0,
            loss: 0.0,
            value: None,
        })
    }

    /// The configured period.
    pub fn period(&self) -> usize {
        self.period
    }
}

/// `100 * gain / (gain + loss)`, or 0 when both are zero (TA-Lib's flat case).
fn rsi_from_averages(gain: f64, loss: f64) -> f64 {
    let total = gain + loss;
    if total == 0.0 {
        0.0
    } else {
        100.0 * (gain / total)
    }
}

impl Indicator for Rsi {
    type Input = f64;
    type Output = f64;

    fn name(&self) -> String {
        format!("RSI({})", self.period)
    }

    fn lookback(&self) -> usize {
        self.period
    }

    fn update(&mut self, x: f64) -> Option<f64> {
        if !x.is_finite() {
            self.reset();
            return None;
        }
        let prev = self.prev_input.replace(x)?;
        let change = x - prev;
        if self.value.is_none() {
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
            self.seed_count += 1;
            if self.seed_count < self.period {
                return None;
            }
            self.loss *= self.inv_period;
            self.gain *= self.inv_period;
        } else {
            let keep = (self.period - 1) as f64;
            self.loss *= keep;
            self.gain *= keep;
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
            self.loss *= self.inv_period;
            self.gain *= self.inv_period;
        }
        self.value = finite(rsi_from_averages(self.gain, self.loss));
        if self.value.is_none() {
            self.reset();
        }
        self.value
    }

    fn value(&self) -> Option<f64> {
        self.value
    }

    fn reset(&mut self) {
        self.prev_input = None;
        self.seed_count = 0;
        self.gain = 0.0;
        self.loss = 0.0;
        self.value = None;
    }
}

/// RSI over a whole series, one output per input (`None` for the first `period`).
/// A period below 2 gives all `None`.
pub fn rsi(values: &[f64], period: usize) -> Vec<Option<f64>> {
    match Rsi::new(period) {
        Ok(mut r) => run(&mut r, values.iter().copied()),
        Err(_) => vec![None; values.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_close, CLOSE};
    use super::*;

    #[test]
    fn matches_talib_values_on_the_fixture() {
        let r14 = rsi(&CLOSE, 14);
        assert_eq!(r14[13], None);
        assert_close(r14[14], 48.43916552459265, 1e-9);
        assert_close(r14[15], 45.9023854188635, 1e-9);
        assert_close(r14[39], 29.893660651222547, 1e-9);

        let r7 = rsi(&CLOSE, 7);
        assert_eq!(r7[6], None);
        assert_close(r7[7], 88.16067653277015, 1e-9);
        assert_close(r7[39], 24.18732351766107, 1e-9);
    }

    #[test]
    fn flat_prices_give_zero_like_talib_and_one_way_moves_give_the_bounds() {
        assert_eq!(rsi(&[1.1; 20], 14)[14..], [Some(0.0); 6]);
        let up: Vec<f64> = (0..20).map(f64::from).collect();
        assert_eq!(rsi(&up, 14)[19], Some(100.0));
        let down: Vec<f64> = up.iter().rev().copied().collect();
        assert_eq!(rsi(&down, 14)[19], Some(0.0));
        // Rising then flat: averages decay but never reach zero, so it stays 100.
        let mut rise_then_flat = up.clone();
        rise_then_flat.extend([19.0; 10]);
        assert_eq!(rsi(&rise_then_flat, 3)[29], Some(100.0));
    }

    #[test]
    fn streaming_equals_batch_and_reset_starts_over() {
        let batch = rsi(&CLOSE, 14);
        let mut r = Rsi::new(14).unwrap();
        assert_eq!(r.lookback(), 14);
        assert_eq!(run(&mut r, CLOSE), batch);
        assert_eq!(r.value(), batch[39]);
        r.reset();
        assert!(!r.is_ready());
        assert_eq!(run(&mut r, CLOSE), batch);
    }

    #[test]
    fn short_inputs_and_bad_periods() {
        assert!(rsi(&[], 14).is_empty());
        assert_eq!(rsi(&CLOSE[..14], 14), vec![None; 14]);
        assert!(rsi(&CLOSE[..15], 14)[14].is_some());
        assert_eq!(rsi(&CLOSE, 1), vec![None; 40]);
        assert!(Rsi::new(1).is_err());
    }

    #[test]
    fn a_non_finite_input_restarts_the_warm_up() {
        let mut r = Rsi::new(2).unwrap();
        assert_eq!(run(&mut r, [1.0, 2.0, 3.0]), [None, None, Some(100.0)]);
        assert_eq!(r.update(f64::NAN), None);
        assert!(!r.is_ready());
        assert_eq!(run(&mut r, [3.0, 2.0, 1.0]), [None, None, Some(0.0)]);
    }
}
