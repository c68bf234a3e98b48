//! `MarketSnapshot`: what an account knows about one asset at cycle time, shaped like
//! DESIGN §3 and `reference/llm-endpoints.md` (5m intraday series + 4h context, funding,
//! open interest).
//!
//! Entry point: [`MarketSnapshot::build`]. Invariants: prices that money math uses
//! (`last_price`, `mark_price`) are decimals; indicator values are `f64` and `None`
//! during TA-Lib's warm-up; series hold the last [`SERIES_LEN`] points, oldest first.

use crate::domain::indicators::IndicatorSeries;
use crate::domain::types::{Asset, Candle, Symbol};
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Points kept in each series given to a policy or model.
pub const SERIES_LEN: usize = 10;
/// Bars averaged for `volume_average` on the 4h context.
pub const VOLUME_AVERAGE_BARS: usize = 20;

/// Open interest now and averaged over the hub's recent polls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenInterestStats {
    /// Latest value (contracts, base asset).
    pub latest: Decimal,
    /// Mean of the values the hub polled recently.
    pub average: Decimal,
}

/// The 5-minute series, last [`SERIES_LEN`] points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntradaySeries {
    /// Bar interval (`5m`).
    pub interval: String,
    /// Bar mid prices, (high + low) / 2.
    pub mid_prices: Vec<f64>,
    /// EMA(20) of closes.
    pub ema20: Vec<Option<f64>>,
    /// MACD(12, 26, 9) line.
    pub macd: Vec<Option<f64>>,
    /// RSI(7).
    pub rsi7: Vec<Option<f64>>,
    /// RSI(14).
    pub rsi14: Vec<Option<f64>>,
}

/// Latest 5-minute indicator values (the last point of every series).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrentIndicators {
    /// EMA(20).
    pub ema20: Option<f64>,
    /// EMA(50).
    pub ema50: Option<f64>,
    /// MACD line.
    pub macd: Option<f64>,
    /// MACD signal line.
    pub macd_signal: Option<f64>,
    /// MACD histogram.
    pub macd_hist: Option<f64>,
    /// RSI(7).
    pub rsi7: Option<f64>,
    /// RSI(14).
    pub rsi14: Option<f64>,
    /// ATR(3).
    pub atr3: Option<f64>,
    /// ATR(14).
    pub atr14: Option<f64>,
    /// Upper Bollinger band (20, 2).
    pub bb_upper: Option<f64>,
    /// Middle Bollinger band.
    pub bb_middle: Option<f64>,
    /// Lower Bollinger band.
    pub bb_lower: Option<f64>,
}

/// The 4-hour context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongTermContext {
    /// EMA(20) on 4h closes.
    pub ema20_4h: Option<f64>,
    /// EMA(50) on 4h closes.
    pub ema50_4h: Option<f64>,
    /// ATR(3) on 4h bars.
    pub atr3_4h: Option<f64>,
    /// ATR(14) on 4h bars.
    pub atr14_4h: Option<f64>,
    /// Volume of the current (open) 4h bar.
    pub volume_current: f64,
    /// Mean volume of the last [`VOLUME_AVERAGE_BARS`] 4h bars.
    pub volume_average: f64,
    /// MACD line, last [`SERIES_LEN`] 4h points.
    pub macd_4h: Vec<Option<f64>>,
    /// RSI(14), last [`SERIES_LEN`] 4h points.
    pub rsi14_4h: Vec<Option<f64>>,
}

/// One asset's market state at one moment, shared by every account that trades it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarketSnapshot {
    /// Row id in `market_snapshots`.
    pub id: Uuid,
    /// Venue base URL it came from.
    pub venue: String,
    /// Base asset.
    pub asset: Asset,
    /// Venue symbol.
    pub symbol: Symbol,
    /// When the hub assembled it.
    pub timestamp: DateTime<Utc>,
    /// Last traded price (close of the open 5m bar).
    pub last_price: Decimal,
    /// Mark price (what TP/SL with `MARK_PRICE` and PnL use).
    pub mark_price: Decimal,
    /// Last funding rate.
    pub funding_rate: Decimal,
    /// Next funding time.
    pub next_funding_time: Option<DateTime<Utc>>,
    /// Open interest.
    pub open_interest: OpenInterestStats,
    /// Latest 5m indicators.
    pub current: CurrentIndicators,
    /// 5m series.
    pub intraday_series: IntradaySeries,
    /// 4h context.
    pub long_term_context: LongTermContext,
}

/// Everything a hub fetched for one symbol in one poll.
#[derive(Clone, Debug)]
pub struct SnapshotInput<'a> {
    /// Venue base URL.
    pub venue: &'a str,
    /// Symbol.
    pub symbol: &'a Symbol,
    /// 5m bars, oldest first, last one still open.
    pub candles_5m: &'a [Candle],
    /// 4h bars, oldest first, last one still open.
    pub candles_4h: &'a [Candle],
    /// Mark price.
    pub mark_price: Decimal,
    /// Last funding rate.
    pub funding_rate: Decimal,
    /// Next funding time.
    pub next_funding_time: Option<DateTime<Utc>>,
    /// Open interest values polled recently, oldest first, latest last.
    pub open_interest: &'a [Decimal],
    /// Assembly time.
    pub now: DateTime<Utc>,
}

/// Why no snapshot could be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    /// The venue returned no 5m bars.
    #[error("no 5m candles for {0}")]
    NoCandles(Symbol),
}

impl MarketSnapshot {
    /// Computes indicators on both timeframes and assembles the snapshot.
    pub fn build(input: &SnapshotInput<'_>) -> Result<MarketSnapshot, SnapshotError> {
        let last = input
            .candles_5m
            .last()
            .ok_or_else(|| SnapshotError::NoCandles(input.symbol.clone()))?;
        let (h5, l5, c5, _) = columns(input.candles_5m);
        let s5 = IndicatorSeries::compute(&h5, &l5, &c5);
        let (h4, l4, c4, v4) = columns(input.candles_4h);
        let s4 = IndicatorSeries::compute(&h4, &l4, &c4);

        let mid_prices: Vec<f64> = h5
            .iter()
            .zip(l5.iter())
            .map(|(h, l)| (h + l) / 2.0)
            .collect();
        let latest_oi = input.open_interest.last().copied().unwrap_or_default();
        let average_oi = if input.open_interest.is_empty() {
            Decimal::ZERO
        } else {
            let sum: Decimal = input.open_interest.iter().copied().sum();
            (sum / Decimal::from(input.open_interest.len())).round_dp(8)
        };
        let volume_window = tail(&v4, VOLUME_AVERAGE_BARS);
        let volume_average = if volume_window.is_empty() {
            0.0
        } else {
            volume_window.iter().sum::<f64>() / volume_window.len() as f64
        };

        Ok(MarketSnapshot {
            id: Uuid::now_v7(),
            venue: input.venue.to_string(),
            asset: input.symbol.asset(),
            symbol: input.symbol.clone(),
            timestamp: input.now,
            last_price: last.close,
            mark_price: input.mark_price,
            funding_rate: input.funding_rate,
            next_funding_time: input.next_funding_time,
            open_interest: OpenInterestStats {
                latest: latest_oi,
                average: average_oi,
            },
            current: CurrentIndicators {
                ema20: last_of(&s5.ema20),
                ema50: last_of(&s5.ema50),
                macd: last_of(&s5.macd),
                macd_signal: last_of(&s5.macd_signal),
                macd_hist: last_of(&s5.macd_hist),
                rsi7: last_of(&s5.rsi7),
                rsi14: last_of(&s5.rsi14),
                atr3: last_of(&s5.atr3),
                atr14: last_of(&s5.atr14),
                bb_upper: last_of(&s5.bb_upper),
                bb_middle: last_of(&s5.bb_middle),
                bb_lower: last_of(&s5.bb_lower),
            },
            intraday_series: IntradaySeries {
                interval: "5m".into(),
                mid_prices: tail(&mid_prices, SERIES_LEN).to_vec(),
                ema20: tail(&s5.ema20, SERIES_LEN).to_vec(),
                macd: tail(&s5.macd, SERIES_LEN).to_vec(),
                rsi7: tail(&s5.rsi7, SERIES_LEN).to_vec(),
                rsi14: tail(&s5.rsi14, SERIES_LEN).to_vec(),
            },
            long_term_context: LongTermContext {
                ema20_4h: last_of(&s4.ema20),
                ema50_4h: last_of(&s4.ema50),
                atr3_4h: last_of(&s4.atr3),
                atr14_4h: last_of(&s4.atr14),
                volume_current: v4.last().copied().unwrap_or(0.0),
                volume_average,
                macd_4h: tail(&s4.macd, SERIES_LEN).to_vec(),
                rsi14_4h: tail(&s4.rsi14, SERIES_LEN).to_vec(),
            },
        })
    }

    /// Age of the snapshot at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.timestamp
    }
}

/// High, low, close and volume columns as `f64` (indicators compute in floating point).
fn columns(candles: &[Candle]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let f = |d: &Decimal| d.to_f64().unwrap_or(f64::NAN);
    (
        candles.iter().map(|c| f(&c.high)).collect(),
        candles.iter().map(|c| f(&c.low)).collect(),
        candles.iter().map(|c| f(&c.close)).collect(),
        candles.iter().map(|c| f(&c.volume)).collect(),
    )
}

fn tail<T>(v: &[T], n: usize) -> &[T] {
    v.get(v.len().saturating_sub(n)..).unwrap_or_default()
}

fn last_of(v: &[Option<f64>]) -> Option<f64> {
    v.last().copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn candles(n: usize, start: f64, step_secs: i64) -> Vec<Candle> {
        (0..n)
            .map(|i| {
                let close = start + (i as f64 * 0.7).sin() * 50.0 + i as f64;
                let t = Utc
                    .timestamp_opt(1_700_000_000 + i as i64 * step_secs, 0)
                    .unwrap();
                let d = |x: f64| Decimal::from_f64_retain(x).unwrap().round_dp(2);
                Candle {
                    open_time: t,
                    open: d(close - 5.0),
                    high: d(close + 20.0),
                    low: d(close - 20.0),
                    close: d(close),
                    volume: d(100.0 + i as f64),
                    close_time: t + chrono::Duration::seconds(step_secs - 1),
                }
            })
            .collect()
    }

    #[test]
    fn snapshot_has_the_documented_shape() {
        let c5 = candles(150, 60_000.0, 300);
        let c4 = candles(150, 60_000.0, 14_400);
        let sym = Symbol("BTCUSDT".into());
        let oi = [dec!(100), dec!(110), dec!(120)];
        let snap = MarketSnapshot::build(&SnapshotInput {
            venue: "http://venue",
            symbol: &sym,
            candles_5m: &c5,
            candles_4h: &c4,
            mark_price: dec!(60100.5),
            funding_rate: dec!(0.0001),
            next_funding_time: None,
            open_interest: &oi,
            now: Utc::now(),
        })
        .unwrap();
        assert_eq!(snap.asset, Asset::new("BTC"));
        assert_eq!(snap.last_price, c5.last().unwrap().close);
        assert_eq!(snap.open_interest.latest, dec!(120));
        assert_eq!(snap.open_interest.average, dec!(110));
        assert_eq!(snap.intraday_series.mid_prices.len(), SERIES_LEN);
        assert_eq!(snap.intraday_series.rsi14.len(), SERIES_LEN);
        assert!(snap.current.ema20.is_some() && snap.current.atr14.is_some());
        assert!(snap.long_term_context.ema50_4h.is_some());
        assert_eq!(snap.long_term_context.macd_4h.len(), SERIES_LEN);
        let json = serde_json::to_value(&snap).unwrap();
        for key in [
            "asset",
            "timestamp",
            "funding_rate",
            "open_interest",
            "intraday_series",
            "long_term_context",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
    }

    #[test]
    fn short_history_gives_warm_up_nones_not_errors() {
        let c5 = candles(5, 100.0, 300);
        let sym = Symbol("SOLUSDT".into());
        let snap = MarketSnapshot::build(&SnapshotInput {
            venue: "v",
            symbol: &sym,
            candles_5m: &c5,
            candles_4h: &[],
            mark_price: dec!(100),
            funding_rate: Decimal::ZERO,
            next_funding_time: None,
            open_interest: &[],
            now: Utc::now(),
        })
        .unwrap();
        assert_eq!(snap.current.ema20, None);
        assert_eq!(snap.long_term_context.volume_current, 0.0);
        assert!(MarketSnapshot::build(&SnapshotInput {
            candles_5m: &[],
            ..SnapshotInput {
                venue: "v",
                symbol: &sym,
                candles_5m: &c5,
                candles_4h: &[],
                mark_price: dec!(100),
                funding_rate: Decimal::ZERO,
                next_funding_time: None,
                open_interest: &[],
                now: Utc::now(),
            }
        })
        .is_err());
    }
}
