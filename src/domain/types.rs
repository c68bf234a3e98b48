//! Trading vocabulary shared by every layer: accounts, assets, symbols, sides, candles,
//! cycle ids. Money, prices and quantities are `rust_decimal::Decimal`, never `f64`.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The quote currency every perpetual here is margined in.
pub const QUOTE: &str = "USDT";

/// Identifier of one trading account (the `id` in `accounts.yaml`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub String);

impl AccountId {
    /// Wraps an account id.
    pub fn new(id: impl Into<String>) -> Self {
        AccountId(id.into())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A base asset an account trades, upper case (`BTC`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Asset(pub String);

impl Asset {
    /// Normalises an asset name to upper case.
    pub fn new(name: impl AsRef<str>) -> Self {
        Asset(name.as_ref().trim().to_ascii_uppercase())
    }
    /// The asset as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The USDT-margined perpetual this asset trades as: `BTC` trades `BTCUSDT`.
    pub fn symbol(&self) -> Symbol {
        Symbol(format!("{}{}", self.0, QUOTE))
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A venue symbol (`BTCUSDT`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Symbol(pub String);

impl Symbol {
    /// The symbol as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The base asset of a USDT perpetual symbol (`BTCUSDT` -> `BTC`).
    pub fn asset(&self) -> Asset {
        Asset(self.0.strip_suffix(QUOTE).unwrap_or(&self.0).to_string())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Order side as the venue spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    /// Buy (opens or adds to a long, reduces a short).
    Buy,
    /// Sell (opens or adds to a short, reduces a long).
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
    /// `BUY` / `SELL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}

/// Direction of an open position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionSide {
    /// Profits when the price rises.
    Long,
    /// Profits when the price falls.
    Short,
}

impl PositionSide {
    /// The order side that opens a position of this direction.
    pub fn entry_side(self) -> Side {
        match self {
            PositionSide::Long => Side::Buy,
            PositionSide::Short => Side::Sell,
        }
    }
    /// The order side that closes a position of this direction.
    pub fn exit_side(self) -> Side {
        self.entry_side().opposite()
    }
    /// `long` / `short`.
    pub fn as_str(self) -> &'static str {
        match self {
            PositionSide::Long => "long",
            PositionSide::Short => "short",
        }
    }
    /// +1 for long, -1 for short: PnL = sign * (exit - entry) * qty.
    pub fn sign(self) -> Decimal {
        match self {
            PositionSide::Long => Decimal::ONE,
            PositionSide::Short => Decimal::NEGATIVE_ONE,
        }
    }
}

/// What a decision asks for one asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradeAction {
    /// Go (or stay) long.
    Buy,
    /// Go (or stay) short / close a long.
    Sell,
    /// Do nothing.
    Hold,
}

impl TradeAction {
    /// `buy` / `sell` / `hold`.
    pub fn as_str(self) -> &'static str {
        match self {
            TradeAction::Buy => "buy",
            TradeAction::Sell => "sell",
            TradeAction::Hold => "hold",
        }
    }
}

/// One OHLCV bar from the venue (`klines`), oldest first in a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    /// Bar open time.
    pub open_time: DateTime<Utc>,
    /// Open price.
    pub open: Decimal,
    /// High price.
    pub high: Decimal,
    /// Low price.
    pub low: Decimal,
    /// Close (last) price; for the still-open last bar, the latest trade.
    pub close: Decimal,
    /// Base-asset volume.
    pub volume: Decimal,
    /// Bar close time.
    pub close_time: DateTime<Utc>,
}

/// Ties together everything one account does in one cycle (snapshot, decision, orders,
/// fills, events, rows, log lines). Time-ordered (UUIDv7), so ids sort by start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CycleId(pub Uuid);

impl CycleId {
    /// A fresh cycle id.
    pub fn new() -> Self {
        CycleId(Uuid::now_v7())
    }
}

impl Default for CycleId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CycleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// 00:00 UTC of the day `t` falls in (daily limits reset there).
pub fn utc_midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|n| n.and_utc())
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_trades_its_usdt_perpetual() {
        assert_eq!(Asset::new(" btc ").symbol().as_str(), "BTCUSDT");
        assert_eq!(Symbol("ETHUSDT".into()).asset(), Asset::new("ETH"));
    }
}
