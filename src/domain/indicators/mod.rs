//! TA-Lib-compatible technical indicators: pure `f64` math, no I/O, no allocation
//! beyond the output vectors and the Bollinger window.
//!
//! # Entry points
//!
//! - [`IndicatorSeries::compute`] (also [`compute`]): the twelve series a market
//!   snapshot carries (EMA 20/50, MACD 12/26/9, RSI 7/14, ATR 3/14, Bollinger 20/2/2)
//!   over high/low/close slices.
//! - Batch functions, one per indicator, over a slice: [`ema()`], [`macd()`],
//!   [`rsi()`], [`atr()`], [`bollinger()`]. Each output has one element per input
//!   element.
//! - Streaming structs behind the [`Indicator`] trait, fed one value or bar at a
//!   time: [`Ema`], [`Macd`], [`Rsi`], [`Atr`], [`BollingerBands`]. [`run`] folds any
//!   of them over an iterator.
//!
//! # Invariants
//!
//! - **TA-Lib parity.** Outputs equal TA-Lib's (C 0.8.1, default compatibility,
//!   unstable period 0) with the same seeding and smoothing; `None` appears exactly
//!   where TA-Lib returns NaN, i.e. during the first [`Indicator::lookback`] inputs.
//!   The float operations follow TA-Lib's own order (fused multiply-add in the EMA
//!   step, reciprocal multiply in RSI), so EMA, MACD, RSI and the Bollinger middle
//!   band are bit-identical on the reference data and the rest differ by < 1e-13
//!   relative. `tests/data/talib_eurusd_1h.json` (written by
//!   `scripts/talib_reference.py`) pins this.
//! - **Batch = streaming.** Every batch function is its streaming struct folded over
//!   the input, so the two can never disagree.
//! - **Every `Some` is finite.** A non-finite input (NaN, ±inf) or a non-finite
//!   intermediate result resets the indicator: it yields `None` and warms up again
//!   from the next input, so one bad tick cannot poison a long-lived indicator.
//!   (TA-Lib instead propagates NaN; on finite data the two agree.)
//! - **No panics** on any input: empty or short slices give all `None`; invalid
//!   parameters are a [`IndicatorError`] from the constructors and all `None` from
//!   the batch functions.

mod atr;
mod bollinger;
mod ema;
mod macd;
mod rsi;

pub use atr::{atr, true_range, Atr};
pub use bollinger::{bollinger, BollingerBands, BollingerSeries, BollingerValue};
pub use ema::{ema, Ema};
pub use macd::{macd, Macd, MacdSeries, MacdValue};
pub use rsi::{rsi, Rsi};

use serde::{Deserialize, Serialize};

/// A streaming indicator: fed one input at a time, remembers only what it needs.
///
/// Modelled on NautilusTrader's indicator trait; implemented by every indicator in
/// this module so that callers (market-data hubs, backtests) can drive them alike.
pub trait Indicator {
    /// What one update consumes: a price (`f64`) or a bar ([`HighLowClose`]).
    type Input: Copy;
    /// What the indicator produces once warmed up.
    type Output: Copy;

    /// Short display name with parameters, e.g. `"EMA(20)"`.
    fn name(&self) -> String;

    /// TA-Lib's lookback: how many inputs are consumed before the first output.
    /// The first `Some` comes from input number `lookback() + 1`.
    fn lookback(&self) -> usize;

    /// Feed the next input; returns the new value, or `None` while warming up
    /// (and for a non-finite input, which resets the indicator).
    fn update(&mut self, input: Self::Input) -> Option<Self::Output>;

    /// The latest value, `None` until warmed up.
    fn value(&self) -> Option<Self::Output>;

    /// Whether the indicator has produced a value since construction or the last reset.
    fn is_ready(&self) -> bool {
        self.value().is_some()
    }

    /// Forget everything: the indicator behaves as freshly constructed.
    fn reset(&mut self);
}

/// Feed every input to `indicator` (continuing from its current state) and collect
/// one output per input.
pub fn run<I: Indicator>(
    indicator: &mut I,
    inputs: impl IntoIterator<Item = I::Input>,
) -> Vec<Option<I::Output>> {
    inputs.into_iter().map(|x| indicator.update(x)).collect()
}

/// One bar's high, low and close: the input of [`Atr`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HighLowClose {
    /// Highest price of the bar.
    pub high: f64,
    /// Lowest price of the bar.
    pub low: f64,
    /// Last price of the bar.
    pub close: f64,
}

impl HighLowClose {
    /// Whether all three prices are finite.
    pub fn is_finite(&self) -> bool {
        self.high.is_finite() && self.low.is_finite() && self.close.is_finite()
    }
}

/// Why an indicator could not be constructed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndicatorError {
    /// A period below the indicator's minimum (2 everywhere in this module).
    #[error("{indicator}: period {name} must be at least {min}, got {period}")]
    PeriodTooShort {
        /// Indicator name, e.g. `"EMA"`.
        indicator: &'static str,
        /// Which period, e.g. `"slow"`; `"period"` for single-period indicators.
        name: &'static str,
        /// The rejected value.
        period: usize,
        /// The smallest accepted value.
        min: usize,
    },
    /// A Bollinger standard-deviation multiplier that is NaN or infinite.
    #[error("{indicator}: multiplier {name} must be finite, got {value}")]
    NonFiniteMultiplier {
        /// Indicator name.
        indicator: &'static str,
        /// Which multiplier, `"up"` or `"down"`.
        name: &'static str,
        /// The rejected value.
        value: f64,
    },
}

/// The smallest period any indicator here accepts (TA-Lib's minimum for RSI and
/// Bollinger; its period-1 special cases for EMA/MACD/ATR are not supported).
pub const MIN_PERIOD: usize = 2;

/// Validate one period against [`MIN_PERIOD`].
fn check_period(
    indicator: &'static str,
    name: &'static str,
    period: usize,
) -> Result<usize, IndicatorError> {
    if period < MIN_PERIOD {
        Err(IndicatorError::PeriodTooShort {
            indicator,
            name,
            period,
            min: MIN_PERIOD,
        })
    } else {
        Ok(period)
    }
}

/// `Some(v)` if `v` is finite.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The twelve indicator series a market snapshot carries, each one element per bar,
/// `None` (JSON `null`) where TA-Lib gives NaN. Field names are the JSON keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndicatorSeries {
    /// EMA(20) of close.
    pub ema20: Vec<Option<f64>>,
    /// EMA(50) of close.
    pub ema50: Vec<Option<f64>>,
    /// MACD(12, 26, 9) line: fast EMA − slow EMA.
    pub macd: Vec<Option<f64>>,
    /// MACD signal line: EMA(9) of the MACD line.
    pub macd_signal: Vec<Option<f64>>,
    /// MACD histogram: line − signal.
    pub macd_hist: Vec<Option<f64>>,
    /// RSI(7) of close (Wilder).
    pub rsi7: Vec<Option<f64>>,
    /// RSI(14) of close (Wilder).
    pub rsi14: Vec<Option<f64>>,
    /// ATR(3) (Wilder).
    pub atr3: Vec<Option<f64>>,
    /// ATR(14) (Wilder).
    pub atr14: Vec<Option<f64>>,
    /// Bollinger upper band: SMA(20) + 2 population standard deviations.
    pub bb_upper: Vec<Option<f64>>,
    /// Bollinger middle band: SMA(20) of close.
    pub bb_middle: Vec<Option<f64>>,
    /// Bollinger lower band: SMA(20) − 2 population standard deviations.
    pub bb_lower: Vec<Option<f64>>,
}

impl IndicatorSeries {
    /// EMA periods of [`IndicatorSeries::ema20`] / [`IndicatorSeries::ema50`].
    pub const EMA_PERIODS: (usize, usize) = (20, 50);
    /// MACD (fast, slow, signal) periods.
    pub const MACD_PERIODS: (usize, usize, usize) = (12, 26, 9);
    /// RSI periods of `rsi7` / `rsi14`.
    pub const RSI_PERIODS: (usize, usize) = (7, 14);
    /// ATR periods of `atr3` / `atr14`.
    pub const ATR_PERIODS: (usize, usize) = (3, 14);
    /// Bollinger period and the up/down standard-deviation multipliers.
    pub const BOLLINGER: (usize, f64, f64) = (20, 2.0, 2.0);

    /// Compute all twelve series over bars given as parallel slices.
    ///
    /// If the slices differ in length, all three are truncated to the shortest (the
    /// output then has that many elements). Never panics.
    pub fn compute(high: &[f64], low: &[f64], close: &[f64]) -> Self {
        let len = high.len().min(low.len()).min(close.len());
        let (high, low, close) = (&high[..len], &low[..len], &close[..len]);
        let (fast, slow, signal) = Self::MACD_PERIODS;
        let macd = macd(close, fast, slow, signal);
        let (bb_period, up, down) = Self::BOLLINGER;
        let bands = bollinger(close, bb_period, up, down);
        Self {
            ema20: ema(close, Self::EMA_PERIODS.0),
            ema50: ema(close, Self::EMA_PERIODS.1),
            macd: macd.macd,
            macd_signal: macd.signal,
            macd_hist: macd.histogram,
            rsi7: rsi(close, Self::RSI_PERIODS.0),
            rsi14: rsi(close, Self::RSI_PERIODS.1),
            atr3: atr(high, low, close, Self::ATR_PERIODS.0),
            atr14: atr(high, low, close, Self::ATR_PERIODS.1),
            bb_upper: bands.upper,
            bb_middle: bands.middle,
            bb_lower: bands.lower,
        }
    }

    /// Number of bars covered (every series has this length).
    pub fn len(&self) -> usize {
        self.ema20.len()
    }

    /// Whether no bars were given.
    pub fn is_empty(&self) -> bool {
        self.ema20.is_empty()
    }

    /// The JSON names of the series, in the order of [`Self::named`].
    pub const NAMES: [&'static str; 12] = [
        "ema20",
        "ema50",
        "macd",
        "macd_signal",
        "macd_hist",
        "rsi7",
        "rsi14",
        "atr3",
        "atr14",
        "bb_upper",
        "bb_middle",
        "bb_lower",
    ];

    /// The series by JSON name, in a fixed order, for callers that iterate over them.
    pub fn named(&self) -> [(&'static str, &[Option<f64>]); 12] {
        let series: [&[Option<f64>]; 12] = [
            &self.ema20,
            &self.ema50,
            &self.macd,
            &self.macd_signal,
            &self.macd_hist,
            &self.rsi7,
            &self.rsi14,
            &self.atr3,
            &self.atr14,
            &self.bb_upper,
            &self.bb_middle,
            &self.bb_lower,
        ];
        std::array::from_fn(|i| (Self::NAMES[i], series[i]))
    }
}

/// Same as [`IndicatorSeries::compute`]: all twelve series over high/low/close.
pub fn compute(high: &[f64], low: &[f64], close: &[f64]) -> IndicatorSeries {
    IndicatorSeries::compute(high, low, close)
}

/// Small fixed inputs with TA-Lib outputs, shared by the per-indicator unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    /// Closes of 40 synthetic BTC-like bars (seeded random walk, 0.1 tick).
    pub const CLOSE: [f64; 40] = [
        60059.6, 60043.0, 60120.7, 60303.5, 60275.4, 60247.3, 60436.8, 60528.9, 60472.6, 60537.7,
        60482.1, 60426.2, 60455.2, 60225.6, 60018.6, 59951.2, 59829.6, 59867.3, 59758.4, 59588.9,
        59764.8, 59737.7, 59745.8, 59574.8, 59509.5, 59522.8, 59384.7, 59429.8, 59357.7, 59322.7,
        59250.5, 59472.7, 59471.1, 59344.2, 59442.9, 59296.4, 59321.5, 59086.3, 58926.9, 58950.5,
    ];
    /// Highs of the same bars.
    pub const HIGH: [f64; 40] = [
        60118.7, 60056.7, 60130.0, 60327.6, 60393.7, 60304.9, 60473.7, 60613.5, 60500.1, 60678.7,
        60508.0, 60457.0, 60509.4, 60274.5, 60101.1, 60025.7, 59896.7, 59892.0, 59784.9, 59666.9,
        59803.1, 59752.6, 59834.3, 59670.5, 59574.5, 59631.3, 59390.5, 59510.1, 59386.6, 59374.3,
        59279.4, 59595.7, 59474.0, 59469.4, 59652.5, 59362.2, 59328.5, 59110.2, 58934.2, 59109.5,
    ];
    /// Lows of the same bars.
    pub const LOW: [f64; 40] = [
        60042.0, 60014.4, 60002.5, 60262.0, 60210.7, 60207.2, 60363.6, 60502.6, 60430.2, 60496.6,
        60474.3, 60348.7, 60399.0, 60199.4, 59987.2, 59834.1, 59805.9, 59846.4, 59758.0, 59570.1,
        59651.6, 59704.0, 59718.4, 59510.6, 59496.6, 59490.5, 59233.8, 59415.8, 59337.1, 59316.7,
        59097.0, 59470.6, 59466.3, 59147.1, 59427.5, 59272.3, 59318.7, 58992.8, 58835.5, 58890.3,
    ];

    /// The bars as [`super::HighLowClose`].
    pub fn bars() -> Vec<super::HighLowClose> {
        (0..CLOSE.len())
            .map(|i| super::HighLowClose {
                high: HIGH[i],
                low: LOW[i],
                close: CLOSE[i],
            })
            .collect()
    }

    /// Assert `actual` is within `tol` (absolute) of the TA-Lib value `expected`.
    #[track_caller]
    pub fn assert_close(actual: Option<f64>, expected: f64, tol: f64) {
        let a = actual.unwrap_or_else(|| panic!("expected {expected}, got None"));
        assert!(
            (a - expected).abs() <= tol,
            "expected {expected}, got {a} (diff {})",
            (a - expected).abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TA-Lib's output for `tests/data/eurusd-1h.csv`, written by
    /// `scripts/talib_reference.py`.
    const REFERENCE_JSON: &str = include_str!("../../../tests/data/talib_eurusd_1h.json");
    const EURUSD_CSV: &str = include_str!("../../../tests/data/eurusd-1h.csv");

    /// The contract: every element within this of TA-Lib.
    const ABS_TOL: f64 = 1e-9;
    /// Drift alarm: every element within this fraction of the series' largest
    /// magnitude. MACD and ATR values are ~1e-4 on EUR/USD, where an absolute 1e-9
    /// alone would let a relative error of 1e-5 through.
    const SCALE_TOL: f64 = 1e-12;

    fn eurusd_hlc() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut high, mut low, mut close) = (Vec::new(), Vec::new(), Vec::new());
        for line in EURUSD_CSV.lines().skip(1) {
            let cells: Vec<f64> = line
                .split(',')
                .skip(2)
                .take(3)
                .map(|c| c.parse().unwrap())
                .collect();
            high.push(cells[0]);
            low.push(cells[1]);
            close.push(cells[2]);
        }
        (high, low, close)
    }

    /// Compare one series element by element; returns the max absolute deviation.
    fn assert_matches_reference(
        name: &str,
        actual: &[Option<f64>],
        expected: &[Option<f64>],
    ) -> f64 {
        assert_eq!(actual.len(), expected.len(), "{name}: length");
        let scale = expected
            .iter()
            .flatten()
            .fold(0.0_f64, |m, v| m.max(v.abs()));
        let mut max_dev = 0.0_f64;
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            match (a, e) {
                (None, None) => {}
                (Some(a), Some(e)) => {
                    let dev = (a - e).abs();
                    assert!(dev <= ABS_TOL, "{name}[{i}]: {a} vs TA-Lib {e}");
                    assert!(
                        dev <= SCALE_TOL * scale,
                        "{name}[{i}]: {a} vs TA-Lib {e}: deviation {dev} above {SCALE_TOL} x {scale}"
                    );
                    max_dev = max_dev.max(dev);
                }
                _ => panic!("{name}[{i}]: {a:?} but TA-Lib gives {e:?}"),
            }
        }
        max_dev
    }

    #[test]
    fn all_twelve_series_match_talib_on_5000_eurusd_bars() {
        let reference: IndicatorSeries = serde_json::from_str(REFERENCE_JSON).unwrap();
        let (high, low, close) = eurusd_hlc();
        assert_eq!(close.len(), 5000);
        let ours = IndicatorSeries::compute(&high, &low, &close);
        assert_eq!(ours.len(), 5000);
        for ((name, actual), (_, expected)) in ours.named().into_iter().zip(reference.named()) {
            // serde_json's default float parser may land 1 ulp off the JSON text, so
            // a deviation of ~1e-16 here can be the parser's, not ours.
            let dev = assert_matches_reference(name, actual, expected);
            println!("{name:12} max |dev| vs TA-Lib = {dev:e}");
        }
    }

    #[test]
    fn series_serialise_with_the_agreed_names_and_null_warm_up() {
        let series = IndicatorSeries::compute(&[1.0, 2.0], &[0.5, 1.0], &[0.75, 1.5]);
        let json = serde_json::to_value(&series).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: Vec<&str> = series.named().iter().map(|(n, _)| *n).collect();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["ema20"], serde_json::json!([null, null]));
    }

    #[test]
    fn empty_and_short_inputs_give_all_none() {
        let empty = IndicatorSeries::compute(&[], &[], &[]);
        assert!(empty.is_empty());
        assert!(empty.named().iter().all(|(_, s)| s.is_empty()));

        // 33 bars: one short of MACD's first value; every other series has started.
        let (high, low, close) = eurusd_hlc();
        let s = IndicatorSeries::compute(&high[..33], &low[..33], &close[..33]);
        assert_eq!(s.len(), 33);
        assert!(s.macd.iter().all(Option::is_none));
        assert!(s.ema50.iter().all(Option::is_none));
        assert!(s.ema20[19].is_some() && s.rsi14[14].is_some() && s.bb_upper[19].is_some());

        let one = IndicatorSeries::compute(&[1.0], &[1.0], &[1.0]);
        assert!(one.named().iter().all(|(_, s)| s == &[None]));
    }

    #[test]
    fn mismatched_lengths_truncate_to_the_shortest() {
        let (high, low, close) = eurusd_hlc();
        let s = IndicatorSeries::compute(&high[..100], &low[..60], &close);
        assert_eq!(s.len(), 60);
        assert!(s.named().iter().all(|(_, v)| v.len() == 60));
        let aligned = IndicatorSeries::compute(&high[..60], &low[..60], &close[..60]);
        assert_eq!(s, aligned);
    }

    #[test]
    fn non_finite_inputs_do_not_panic_and_never_leak_into_values() {
        let (high, low, mut close) = eurusd_hlc();
        close.truncate(200);
        close[100] = f64::NAN;
        close[150] = f64::INFINITY;
        let s = IndicatorSeries::compute(&high[..200], &low[..200], &close);
        for (name, series) in s.named() {
            assert!(
                series.iter().flatten().all(|v| v.is_finite()),
                "{name} leaked a non-finite value"
            );
            assert_eq!(series[100], None, "{name} at the NaN bar");
        }
        // Warm-up restarts after the bad bar: EMA(20) is back 20 bars later.
        assert!(s.ema20[119].is_none() && s.ema20[120].is_some());
    }
}
