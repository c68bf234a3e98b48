//! Bollinger bands over a simple moving average, TA-Lib `TA_BBANDS` with
//! `TA_MAType_SMA`.
//!
//! Entry points: [`BollingerBands`] (streaming), [`bollinger`] (batch).
//!
//! Invariants:
//! - First value at input index `period - 1`.
//! - Middle band = SMA(period), kept as TA-Lib keeps it (a running sum: add the
//!   newest input, divide, subtract the oldest), which makes it bit-identical.
//! - The deviation is the **population** standard deviation (divide by `period`,
//!   not `period - 1`) of the same `period` inputs. It is computed in two passes
//!   over the window, shifted by the window's first value, so it has no
//!   `E[x²] − mean²` cancellation and a flat window gives exactly 0. TA-Lib 0.8.1
//!   uses a shifted running sum instead; the two agree to ~1e-14 relative.
//! - `upper = middle + up * sd`, `lower = middle - down * sd`.

use std::collections::VecDeque;

use super::{check_period, run, Indicator, IndicatorError};

/// One Bollinger output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BollingerValue {
    /// Middle + `up` standard deviations.
    pub upper: f64,
    /// The simple moving average.
    pub middle: f64,
    /// Middle − `down` standard deviations.
    pub lower: f64,
}

/// The three band series of a batch run, one element per input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BollingerSeries {
    /// Upper band.
    pub upper: Vec<Option<f64>>,
    /// Middle band (SMA).
    pub middle: Vec<Option<f64>>,
    /// Lower band.
    pub lower: Vec<Option<f64>>,
}

/// Streaming Bollinger bands of a price series.
#[derive(Debug, Clone)]
pub struct BollingerBands {
    period: usize,
    up: f64,
    down: f64,
    /// The last `period - 1` inputs between updates (`period` during one).
    window: VecDeque<f64>,
    /// Sum of `window`, updated incrementally like TA-Lib's SMA.
    window_sum: f64,
    value: Option<BollingerValue>,
}

impl BollingerBands {
    /// Bands over `period` inputs (at least 2), `up` / `down` standard deviations
    /// above / below the middle (finite; TA-Lib's default is 2 and 2).
    pub fn new(period: usize, up: f64, down: f64) -> Result<Self, IndicatorError> {
        let period = check_period("BBANDS", "period", period)?;
        for (name, value) in [("up", up), ("down", down)] {
            if !value.is_finite() {
                return Err(IndicatorError::NonFiniteMultiplier {
                    indicator: "BBANDS",
                    name,
                    value,
                });
            }
        }
        Ok(Self {
            period,
            up,
            down,
            window: VecDeque::with_capacity(period),
            window_sum: 0.0,
            value: None,
        })
    }

    /// The configured period.
    pub fn period(&self) -> usize {
        self.period
    }
}

/// Population standard deviation of `window` (non-empty), two-pass, shifted by the
/// first element so that `x - shift` is exact for nearby prices and a flat window
/// gives exactly zero.
fn population_std_dev(window: &VecDeque<f64>) -> f64 {
    let n = window.len() as f64;
    let shift = window.front().copied().unwrap_or(0.0);
    let mean_offset = window.iter().map(|x| x - shift).sum::<f64>() / n;
    let sum_sq = window
        .iter()
        .map(|x| {
            let d = (x - shift) - mean_offset;
            d * d
        })
        .sum::<f64>();
    (sum_sq / n).sqrt()
}

impl Indicator for BollingerBands {
    type Input = f64;
    type Output = BollingerValue;

    fn name(&self) -> String {
        format!("BBANDS({}, {}, {})", self.period, self.up, self.down)
    }

    fn lookback(&self) -> usize {
        self.period - 1
    }

    fn update(&mut self, x: f64) -> Option<BollingerValue> {
        if !x.is_finite() {
            self.reset();
            return None;
        }
        self.window.push_back(x);
        self.window_sum += x;
        if self.window.len() < self.period {
            return None;
        }
        let middle = self.window_sum / self.period as f64;
        let sd = population_std_dev(&self.window);
        if let Some(oldest) = self.window.pop_front() {
            self.window_sum -= oldest;
        }
        let value = BollingerValue {
            upper: middle + sd * self.up,
            middle,
            lower: middle - sd * self.down,
        };
        if value.upper.is_finite() && value.middle.is_finite() && value.lower.is_finite() {
            self.value = Some(value);
            Some(value)
        } else {
            self.reset();
            None
        }
    }

    fn value(&self) -> Option<BollingerValue> {
        self.value
    }

    fn reset(&mut self) {
        self.window.clear();
        self.window_sum = 0.0;
        self.value = None;
    }
}

/// Bollinger bands over a whole series; each band has one element per input,
/// `None` for the first `period - 1`. Invalid parameters give all `None`.
pub fn bollinger(values: &[f64], period: usize, up: f64, down: f64) -> BollingerSeries {
    let outputs = match BollingerBands::new(period, up, down) {
        Ok(mut b) => run(&mut b, values.iter().copied()),
        Err(_) => vec![None; values.len()],
    };
    BollingerSeries {
        upper: outputs.iter().map(|o| o.map(|v| v.upper)).collect(),
        middle: outputs.iter().map(|o| o.map(|v| v.middle)).collect(),
        lower: outputs.iter().map(|o| o.map(|v| v.lower)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_close, CLOSE};
    use super::*;

    #[test]
    fn matches_talib_values_on_the_fixture() {
        let b = bollinger(&CLOSE, 20, 2.0, 2.0);
        assert_eq!(b.upper[18], None);
        assert_close(b.upper[19], 60733.27505470283, 1e-9);
        assert_close(b.middle[19], 60181.42999999998, 1e-9);
        assert_close(b.lower[19], 59629.58494529712, 1e-9);
        assert_close(b.upper[39], 59845.47729985403, 1e-9);
        assert_close(b.middle[39], 59395.664999999964, 1e-9);
        assert_close(b.lower[39], 58945.8527001459, 1e-9);

        let b = bollinger(&CLOSE, 5, 2.0, 1.5);
        assert_close(b.upper[4], 60378.10413025577, 1e-9);
        assert_close(b.middle[4], 60160.44, 1e-9);
        assert_close(b.lower[4], 59997.19190230817, 1e-9);
        assert_close(b.upper[39], 59449.552709078795, 1e-9);
        assert_close(b.middle[39], 59116.31999999999, 1e-9);
        assert_close(b.lower[39], 58866.39546819089, 1e-9);
    }

    #[test]
    fn deviation_is_the_population_one() {
        // Values 1..=4: mean 2.5, population variance 1.25 (sample would be 5/3).
        let b = bollinger(&[1.0, 2.0, 3.0, 4.0], 4, 1.0, 1.0);
        let sd = 1.25_f64.sqrt();
        assert_eq!(b.middle[3], Some(2.5));
        assert_eq!(b.upper[3], Some(2.5 + sd));
        assert_eq!(b.lower[3], Some(2.5 - sd));
    }

    #[test]
    fn a_flat_window_has_zero_width() {
        for price in [1.1, 0.1, 1.07219, 60000.3] {
            let b = bollinger(&[price; 25], 20, 2.0, 2.0);
            for i in 19..25 {
                assert_eq!(b.upper[i], b.middle[i]);
                assert_eq!(b.lower[i], b.middle[i]);
            }
        }
    }

    #[test]
    fn streaming_equals_batch_and_reset_starts_over() {
        let batch = bollinger(&CLOSE, 20, 2.0, 2.0);
        let mut b = BollingerBands::new(20, 2.0, 2.0).unwrap();
        assert_eq!(b.lookback(), 19);
        let outputs = run(&mut b, CLOSE);
        let middle: Vec<_> = outputs.iter().map(|o| o.map(|v| v.middle)).collect();
        assert_eq!(middle, batch.middle);
        b.reset();
        assert!(!b.is_ready());
        assert_eq!(run(&mut b, CLOSE), outputs);
    }

    #[test]
    fn short_inputs_and_bad_parameters() {
        assert_eq!(bollinger(&[], 20, 2.0, 2.0), BollingerSeries::default());
        assert_eq!(bollinger(&CLOSE[..19], 20, 2.0, 2.0).upper, vec![None; 19]);
        assert_eq!(bollinger(&CLOSE, 1, 2.0, 2.0).middle, vec![None; 40]);
        assert_eq!(bollinger(&CLOSE, 20, f64::NAN, 2.0).lower, vec![None; 40]);
        assert!(matches!(
            BollingerBands::new(20, 2.0, f64::INFINITY),
            Err(IndicatorError::NonFiniteMultiplier { name: "down", .. })
        ));
    }

    #[test]
    fn a_non_finite_input_restarts_the_warm_up() {
        let mut b = BollingerBands::new(3, 2.0, 2.0).unwrap();
        let first = run(&mut b, [1.0, 2.0, 3.0]);
        assert!(first[2].is_some());
        assert_eq!(b.update(f64::NAN), None);
        assert!(!b.is_ready());
        assert_eq!(run(&mut b, [1.0, 2.0, 3.0]), first);
    }
}
