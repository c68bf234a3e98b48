//! Moving average convergence/divergence, TA-Lib `TA_MACD`.
//!
//! Entry points: [`Macd`] (streaming), [`macd`] (batch).
//!
//! Invariants (TA-Lib's seeding, which differs from chaining two ordinary EMAs):
//! - Both EMAs start at input index `slow - 1`. The slow EMA is seeded with the
//!   average of inputs `0..slow`; the fast EMA with the average of the `fast` inputs
//!   *ending at* `slow - 1` (not of the first `fast` inputs), so the two lines are
//!   aligned from their first value.
//! - The MACD line is `fast - slow`. The signal EMA is seeded with the plain average
//!   of the first `signal` MACD-line values, so all three outputs first appear at
//!   index `slow + signal - 2` (33 for 12/26/9) and are `None` before it.
//! - Every EMA step is TA-Lib's fused `(x - prev) * k + prev` with `k = 2/(n+1)`.
//! - A fast period above the slow one is swapped, as TA-Lib does.

use super::ema::ema_step;
use super::{check_period, run, Indicator, IndicatorError};

/// One MACD output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdValue {
    /// Fast EMA − slow EMA.
    pub macd: f64,
    /// EMA of the MACD line.
    pub signal: f64,
    /// `macd - signal`.
    pub histogram: f64,
}

/// The three MACD series of a batch run, one element per input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MacdSeries {
    /// MACD line.
    pub macd: Vec<Option<f64>>,
    /// Signal line.
    pub signal: Vec<Option<f64>>,
    /// Histogram.
    pub histogram: Vec<Option<f64>>,
}

/// Where the streaming MACD is in its warm-up.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Summing the first `slow` inputs (the last `fast` of them also for the fast EMA).
    SeedingEmas {
        count: usize,
        fast_sum: f64,
        slow_sum: f64,
    },
    /// Both EMAs run; summing the first `signal` MACD-line values.
    SeedingSignal {
        fast: f64,
        slow: f64,
        count: usize,
        line_sum: f64,
    },
    /// All three EMAs run.
    Running { fast: f64, slow: f64, signal: f64 },
}

const START: Phase = Phase::SeedingEmas {
    count: 0,
    fast_sum: 0.0,
    slow_sum: 0.0,
};

/// Streaming MACD of a price series.
#[derive(Debug, Clone)]
pub struct Macd {
    fast_period: usize,
    slow_period: usize,
    signal_period: usize,
    fast_k: f64,
    slow_k: f64,
    signal_k: f64,
    phase: Phase,
    value: Option<MacdValue>,
}

impl Macd {
    /// A MACD with the given EMA periods (each at least 2). If `fast > slow` the two
    /// are swapped, like TA-Lib.
    pub fn new(fast: usize, slow: usize, signal: usize) -> Result<Self, IndicatorError> {
        let fast = check_period("MACD", "fast", fast)?;
        let slow = check_period("MACD", "slow", slow)?;
        let signal = check_period("MACD", "signal", signal)?;
        Ok(Self::with_valid_periods(fast, slow, signal))
    }

    /// The classic MACD(12, 26, 9).
    pub fn standard() -> Self {
        Self::with_valid_periods(12, 26, 9)
    }

    /// Build from periods already known to be at least 2.
    fn with_valid_periods(fast: usize, slow: usize, signal: usize) -> Self {
        let (fast, slow) = if slow < fast {
            (slow, fast)
        } else {
            (fast, slow)
        };
        let k = |n: usize| 2.0 / (n as f64 + 1.0);
        Self {
            fast_period: fast,
            slow_period: slow,
            signal_period: signal,
            fast_k: k(fast),
            slow_k: k(slow),
            signal_k: k(signal),
            phase: START,
            value: None,
        }
    }

    /// (fast, slow, signal) periods, after any swap.
    pub fn periods(&self) -> (usize, usize, usize) {
        (self.fast_period, self.slow_period, self.signal_period)
    }

    fn step(&mut self, x: f64) -> Option<MacdValue> {
        match self.phase {
            Phase::SeedingEmas {
                count,
                fast_sum,
                slow_sum,
            } => {
                // Only the last `fast` of the first `slow` inputs seed the fast EMA.
                let fast_sum = if count >= self.slow_period - self.fast_period {
                    fast_sum + x
                } else {
                    fast_sum
                };
                let slow_sum = slow_sum + x;
                let count = count + 1;
                self.phase = if count < self.slow_period {
                    Phase::SeedingEmas {
                        count,
                        fast_sum,
                        slow_sum,
                    }
                } else {
                    let fast = fast_sum / self.fast_period as f64;
                    let slow = slow_sum / self.slow_period as f64;
                    Phase::SeedingSignal {
                        fast,
                        slow,
                        count: 1,
                        line_sum: fast - slow,
                    }
                };
                None
            }
            Phase::SeedingSignal {
                fast,
                slow,
                count,
                line_sum,
            } => {
                let fast = ema_step(fast, x, self.fast_k);
                let slow = ema_step(slow, x, self.slow_k);
                let line_sum = line_sum + (fast - slow);
                let count = count + 1;
                if count < self.signal_period {
                    self.phase = Phase::SeedingSignal {
                        fast,
                        slow,
                        count,
                        line_sum,
                    };
                    return None;
                }
                let signal = line_sum / self.signal_period as f64;
                self.phase = Phase::Running { fast, slow, signal };
                Some(MacdValue {
                    macd: fast - slow,
                    signal,
                    histogram: (fast - slow) - signal,
                })
            }
            Phase::Running { fast, slow, signal } => {
                let fast = ema_step(fast, x, self.fast_k);
                let slow = ema_step(slow, x, self.slow_k);
                let line = fast - slow;
                let signal = ema_step(signal, line, self.signal_k);
                self.phase = Phase::Running { fast, slow, signal };
                Some(MacdValue {
                    macd: line,
                    signal,
                    histogram: line - signal,
                })
            }
        }
    }
}

impl Indicator for Macd {
    type Input = f64;
    type Output = MacdValue;

    fn name(&self) -> String {
        format!(
            "MACD({}, {}, {})",
            self.fast_period, self.slow_period, self.signal_period
        )
    }

    fn lookback(&self) -> usize {
        (self.slow_period - 1) + (self.signal_period - 1)
    }

    fn update(&mut self, x: f64) -> Option<MacdValue> {
        if !x.is_finite() {
            self.reset();
            return None;
        }
        let out = self.step(x)?;
        if out.macd.is_finite() && out.signal.is_finite() && out.histogram.is_finite() {
            self.value = Some(out);
            Some(out)
        } else {
            self.reset();
            None
        }
    }

    fn value(&self) -> Option<MacdValue> {
        self.value
    }

    fn reset(&mut self) {
        self.phase = START;
        self.value = None;
    }
}

/// MACD over a whole series; each of the three output series has one element per
/// input, `None` for the first `slow + signal - 2`. Invalid periods give all `None`.
pub fn macd(values: &[f64], fast: usize, slow: usize, signal: usize) -> MacdSeries {
    let outputs = match Macd::new(fast, slow, signal) {
        Ok(mut m) => run(&mut m, values.iter().copied()),
        Err(_) => vec![None; values.len()],
    };
    MacdSeries {
        macd: outputs.iter().map(|o| o.map(|v| v.macd)).collect(),
        signal: outputs.iter().map(|o| o.map(|v| v.signal)).collect(),
        histogram: outputs.iter().map(|o| o.map(|v| v.histogram)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{assert_close, CLOSE};
    use super::super::{ema, IndicatorSeries};
    use super::*;

    #[test]
    fn matches_talib_values_on_the_fixture() {
        let m = macd(&CLOSE, 12, 26, 9);
        for series in [&m.macd, &m.signal, &m.histogram] {
            assert!(series[..33].iter().all(Option::is_none));
        }
        assert_close(m.macd[33], -270.06480154248857, 1e-9);
        assert_close(m.signal[33], -306.58135749632737, 1e-9);
        assert_close(m.histogram[33], 36.516555953838804, 1e-9);
        assert_close(m.macd[39], -274.3152400547333, 1e-9);
        assert_close(m.signal[39], -270.94720327178993, 1e-9);
        assert_close(m.histogram[39], -3.3680367829433635, 1e-9);

        let m = macd(&CLOSE, 3, 6, 4);
        assert!(m.macd[..8].iter().all(Option::is_none));
        assert_close(m.macd[8], 87.1640427599632, 1e-9);
        assert_close(m.signal[8], 101.75163994169452, 1e-9);
        assert_close(m.histogram[8], -14.587597181731326, 1e-9);
        assert_close(m.macd[39], -105.78489477522089, 1e-9);
        assert_close(m.signal[39], -83.91408249880294, 1e-9);
        assert_close(m.histogram[39], -21.87081227641795, 1e-9);
    }

    #[test]
    fn the_fast_ema_is_seeded_at_the_slow_start_not_at_its_own() {
        // Chaining a standalone EMA(12) (seeded over inputs 0..12) would give a
        // different line; TA-Lib seeds the fast EMA over inputs 14..26.
        let m = macd(&CLOSE, 12, 26, 9);
        let naive_fast = ema(&CLOSE, 12);
        let slow = ema(&CLOSE, 26);
        let naive_line = naive_fast[33].unwrap() - slow[33].unwrap();
        assert!((m.macd[33].unwrap() - naive_line).abs() > 1e-6);
    }

    #[test]
    fn swapped_periods_are_reordered_like_talib() {
        assert_eq!(macd(&CLOSE, 26, 12, 9), macd(&CLOSE, 12, 26, 9));
        assert_eq!(Macd::new(26, 12, 9).unwrap().periods(), (12, 26, 9));
        let (fast, slow, signal) = IndicatorSeries::MACD_PERIODS;
        assert_eq!(Macd::standard().periods(), (fast, slow, signal));
    }

    #[test]
    fn streaming_equals_batch_and_reset_starts_over() {
        let batch = macd(&CLOSE, 12, 26, 9);
        let mut m = Macd::standard();
        assert_eq!(m.lookback(), 33);
        let outputs = run(&mut m, CLOSE);
        let line: Vec<_> = outputs.iter().map(|o| o.map(|v| v.macd)).collect();
        assert_eq!(line, batch.macd);
        assert!(m.is_ready());
        m.reset();
        assert!(!m.is_ready());
        assert_eq!(run(&mut m, CLOSE), outputs);
    }

    #[test]
    fn short_inputs_and_bad_periods() {
        assert_eq!(macd(&[], 12, 26, 9), MacdSeries::default());
        let m = macd(&CLOSE[..33], 12, 26, 9);
        assert_eq!(m.macd, vec![None; 33]);
        assert_eq!(m.histogram, vec![None; 33]);
        assert_eq!(
            macd(&CLOSE[..34], 12, 26, 9).macd[33],
            macd(&CLOSE, 12, 26, 9).macd[33]
        );
        assert_eq!(macd(&CLOSE, 12, 26, 1).signal, vec![None; 40]);
        assert!(Macd::new(1, 26, 9).is_err());
    }

    #[test]
    fn a_non_finite_input_restarts_the_warm_up() {
        let mut m = Macd::new(2, 3, 2).unwrap();
        let warm = run(&mut m, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(warm.iter().position(Option::is_some), Some(3));
        assert_eq!(m.update(f64::NEG_INFINITY), None);
        assert!(!m.is_ready());
        assert_eq!(run(&mut m, [1.0, 2.0, 3.0, 4.0]), warm);
    }
}
