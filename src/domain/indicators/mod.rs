//! TA-Lib-compatible indicators (placeholder until the real module lands).
#![allow(missing_docs)]
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct IndicatorSeries {
    pub ema20: Vec<Option<f64>>,
    pub ema50: Vec<Option<f64>>,
    pub macd: Vec<Option<f64>>,
    pub macd_signal: Vec<Option<f64>>,
    pub macd_hist: Vec<Option<f64>>,
    pub rsi7: Vec<Option<f64>>,
    pub rsi14: Vec<Option<f64>>,
    pub atr3: Vec<Option<f64>>,
    pub atr14: Vec<Option<f64>>,
    pub bb_upper: Vec<Option<f64>>,
    pub bb_middle: Vec<Option<f64>>,
    pub bb_lower: Vec<Option<f64>>,
}

impl IndicatorSeries {
    pub fn compute(_h: &[f64], _l: &[f64], c: &[f64]) -> Self {
        let n = vec![Some(1.0); c.len()];
        IndicatorSeries { ema20: n.clone(), ema50: n.clone(), macd: n.clone(), macd_signal: n.clone(), macd_hist: n.clone(), rsi7: n.clone(), rsi14: n.clone(), atr3: n.clone(), atr14: n.clone(), bb_upper: n.clone(), bb_middle: n.clone(), bb_lower: n }
    }
}
