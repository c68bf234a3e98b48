//! JSON shapes of the signed (account and trading) endpoints and of the user data
//! stream, and their strict translation into the venue-neutral values of
//! [`crate::exchange::venue`].
//!
//! Invariants: as in [`super::wire`] — money from its text, never `f64`; unknown fields
//! ignored; every translation error names the endpoint's object (symbol, order id).

use crate::domain::orders::{OrderStatus, OrderType};
use crate::domain::types::{Side, Symbol};
use crate::exchange::venue::{
    UserEvent, VenueBalance, VenueIncome, VenueOrder, VenuePosition, VenueTrade,
};
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::wire::{snippet, WireDecimal, WireMillis};

/// An id the venue sends as a number or a string; kept as text.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WireId(pub String);

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get().trim();
        if let Some(inner) = text.strip_prefix('"') {
            let s: String = serde_json::from_str(text)
                .map_err(|e| de::Error::custom(format!("bad id {}: {e}", snippet(inner))))?;
            Ok(WireId(s))
        } else if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '-') {
            Ok(WireId(text.to_string()))
        } else {
            Err(de::Error::custom(format!(
                "expected an id, got {}",
                snippet(text)
            )))
        }
    }
}

/// A boolean the venue sends as `true` or `"true"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WireBool(pub bool);

impl<'de> Deserialize<'de> for WireBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        match raw.get().trim() {
            "true" | "\"true\"" => Ok(WireBool(true)),
            "false" | "\"false\"" => Ok(WireBool(false)),
            other => Err(de::Error::custom(format!(
                "expected a boolean, got {}",
                snippet(other)
            ))),
        }
    }
}

fn side(text: &str, what: &str) -> Result<Side, String> {
    match text {
        "BUY" => Ok(Side::Buy),
        "SELL" => Ok(Side::Sell),
        other => Err(format!("{what}: side {other:?} is neither BUY nor SELL")),
    }
}

fn status(text: &str, what: &str) -> Result<OrderStatus, String> {
    OrderStatus::parse(text).ok_or_else(|| format!("{what}: unknown order status {text:?}"))
}

fn positive(value: Option<WireDecimal>) -> Option<Decimal> {
    value.map(|v| v.0).filter(|v| *v > Decimal::ZERO)
}

/// An order (`POST/GET/DELETE /fapi/v1/order`, `openOrders`, `allOrders`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderWire {
    /// `BTCUSDT`.
    pub symbol: String,
    /// Venue order id.
    pub order_id: WireId,
    /// Client order id.
    pub client_order_id: String,
    /// BUY/SELL.
    pub side: String,
    /// Order type (a triggered stop may read `MARKET` here).
    #[serde(rename = "type")]
    pub order_type: String,
    /// The type the order was placed as.
    #[serde(default)]
    pub orig_type: Option<String>,
    /// Status.
    pub status: String,
    /// Ordered quantity.
    #[serde(default)]
    pub orig_qty: Option<WireDecimal>,
    /// Filled quantity.
    #[serde(default)]
    pub executed_qty: Option<WireDecimal>,
    /// Average fill price ("0" when nothing filled).
    #[serde(default)]
    pub avg_price: Option<WireDecimal>,
    /// Trigger price ("0" when none).
    #[serde(default)]
    pub stop_price: Option<WireDecimal>,
    /// Reduce-only.
    #[serde(default)]
    pub reduce_only: Option<WireBool>,
    /// Close-position.
    #[serde(default)]
    pub close_position: Option<WireBool>,
    /// Last change.
    #[serde(default)]
    pub update_time: Option<WireMillis>,
    /// Creation (GET answers).
    #[serde(default)]
    pub time: Option<WireMillis>,
}

impl OrderWire {
    /// The neutral order.
    pub fn into_order(self) -> Result<VenueOrder, String> {
        let what = format!("order {} ({})", self.client_order_id, self.symbol);
        Ok(VenueOrder {
            side: side(&self.side, &what)?,
            symbol: Symbol(self.symbol),
            order_id: self.order_id.0,
            client_order_id: self.client_order_id,
            order_type: OrderType::parse(&self.orig_type.unwrap_or(self.order_type)),
            status: status(&self.status, &what)?,
            orig_qty: self.orig_qty.map(|q| q.0).unwrap_or_default(),
            executed_qty: self.executed_qty.map(|q| q.0).unwrap_or_default(),
            avg_price: positive(self.avg_price),
            stop_price: positive(self.stop_price),
            reduce_only: self.reduce_only.map(|b| b.0).unwrap_or(false),
            close_position: self.close_position.map(|b| b.0).unwrap_or(false),
            update_time: self
                .update_time
                .or(self.time)
                .map(|t| t.0)
                .unwrap_or_else(Utc::now),
        })
    }
}

/// One entry of `GET /fapi/v2/positionRisk`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionRiskWire {
    /// `BTCUSDT`.
    pub symbol: String,
    /// Signed amount.
    pub position_amt: WireDecimal,
    /// Entry price.
    pub entry_price: WireDecimal,
    /// Mark price.
    #[serde(default)]
    pub mark_price: Option<WireDecimal>,
    /// Unrealized PnL.
    #[serde(default, rename = "unRealizedProfit")]
    pub unrealized_profit: Option<WireDecimal>,
    /// Liquidation price ("0" when none).
    #[serde(default)]
    pub liquidation_price: Option<WireDecimal>,
    /// Leverage (a string on the wire).
    #[serde(default)]
    pub leverage: Option<WireDecimal>,
    /// `isolated` / `cross`.
    #[serde(default)]
    pub margin_type: Option<String>,
    /// Isolated margin.
    #[serde(default)]
    pub isolated_margin: Option<WireDecimal>,
    /// `BOTH` in one-way mode.
    #[serde(default)]
    pub position_side: Option<String>,
}

impl PositionRiskWire {
    /// The neutral position, `None` for a flat symbol.
    pub fn into_position(self) -> Result<Option<VenuePosition>, String> {
        if self.position_amt.0.is_zero() {
            return Ok(None);
        }
        if let Some(ps) = &self.position_side {
            if ps != "BOTH" {
                return Err(format!(
                    "{}: positionSide {ps:?}: the account is in hedge mode; vibex needs one-way mode",
                    self.symbol
                ));
            }
        }
        let leverage = self
            .leverage
            .map(|l| l.0)
            .and_then(|l| l.trunc().to_u32())
            .unwrap_or(1);
        Ok(Some(VenuePosition {
            symbol: Symbol(self.symbol),
            amount: self.position_amt.0,
            entry_price: self.entry_price.0,
            mark_price: self.mark_price.map(|m| m.0).unwrap_or_default(),
            unrealized_pnl: self.unrealized_profit.map(|m| m.0).unwrap_or_default(),
            liquidation_price: positive(self.liquidation_price),
            leverage,
            margin_type: self.margin_type.unwrap_or_default().to_ascii_lowercase(),
            isolated_margin: self.isolated_margin.map(|m| m.0).unwrap_or_default(),
        }))
    }
}

/// `GET /fapi/v2/account` totals.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountWire {
    /// Wallet balance.
    pub total_wallet_balance: WireDecimal,
    /// Unrealized PnL.
    pub total_unrealized_profit: WireDecimal,
    /// Margin balance.
    pub total_margin_balance: WireDecimal,
    /// Available balance.
    pub available_balance: WireDecimal,
    /// Initial margin.
    #[serde(default)]
    pub total_initial_margin: Option<WireDecimal>,
    /// Maintenance margin.
    #[serde(default)]
    pub total_maint_margin: Option<WireDecimal>,
}

impl AccountWire {
    /// The neutral totals.
    pub fn into_balance(self) -> VenueBalance {
        VenueBalance {
            wallet_balance: self.total_wallet_balance.0,
            unrealized_pnl: self.total_unrealized_profit.0,
            margin_balance: self.total_margin_balance.0,
            available_balance: self.available_balance.0,
            initial_margin: self.total_initial_margin.map(|v| v.0).unwrap_or_default(),
            maint_margin: self.total_maint_margin.map(|v| v.0).unwrap_or_default(),
        }
    }
}

/// One entry of `GET /fapi/v1/userTrades`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTradeWire {
    /// Trade id.
    pub id: WireId,
    /// Order id.
    pub order_id: WireId,
    /// `BTCUSDT`.
    pub symbol: String,
    /// BUY/SELL.
    pub side: String,
    /// Price.
    pub price: WireDecimal,
    /// Quantity.
    pub qty: WireDecimal,
    /// Commission (the venue may sign it; vibex stores the fee paid as a magnitude).
    pub commission: WireDecimal,
    /// Commission asset.
    #[serde(default)]
    pub commission_asset: Option<String>,
    /// Realized PnL.
    #[serde(default)]
    pub realized_pnl: Option<WireDecimal>,
    /// Maker side.
    #[serde(default)]
    pub maker: Option<bool>,
    /// Time.
    pub time: WireMillis,
}

impl UserTradeWire {
    /// The neutral trade.
    pub fn into_trade(self) -> Result<VenueTrade, String> {
        let what = format!("trade {} ({})", self.id.0, self.symbol);
        Ok(VenueTrade {
            side: side(&self.side, &what)?,
            id: self.id.0,
            order_id: self.order_id.0,
            client_order_id: None,
            symbol: Symbol(self.symbol),
            price: self.price.0,
            quantity: self.qty.0,
            commission: self.commission.0.abs(),
            commission_asset: self.commission_asset.unwrap_or_else(|| "USDT".into()),
            realized_pnl: self.realized_pnl.map(|v| v.0).unwrap_or_default(),
            maker: self.maker.unwrap_or(false),
            time: self.time.0,
        })
    }
}

/// One entry of `GET /fapi/v1/income`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomeWire {
    /// Symbol ("" when none).
    #[serde(default)]
    pub symbol: Option<String>,
    /// Kind.
    pub income_type: String,
    /// Signed amount.
    pub income: WireDecimal,
    /// Asset.
    #[serde(default)]
    pub asset: Option<String>,
    /// Time.
    pub time: WireMillis,
    /// Transaction id.
    pub tran_id: WireId,
    /// Trade id ("" when none).
    #[serde(default)]
    pub trade_id: Option<WireId>,
}

impl IncomeWire {
    /// The neutral income record.
    pub fn into_income(self) -> VenueIncome {
        VenueIncome {
            tran_id: self.tran_id.0,
            symbol: self.symbol.filter(|s| !s.is_empty()).map(Symbol),
            kind: self.income_type,
            amount: self.income.0,
            asset: self.asset.unwrap_or_else(|| "USDT".into()),
            time: self.time.0,
            trade_id: self.trade_id.map(|t| t.0).filter(|t| !t.is_empty()),
        }
    }
}

/// `POST /fapi/v1/listenKey`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenKeyWire {
    /// The key naming the user data stream.
    pub listen_key: String,
}

/// `GET /fapi/v1/positionSide/dual`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DualSideWire {
    /// True in hedge mode.
    pub dual_side_position: bool,
}

#[derive(Debug, Deserialize)]
struct StreamOrderWire {
    s: String,
    c: String,
    #[serde(rename = "S")]
    side: String,
    o: String,
    /// The type the order was placed as (a triggered stop reports `o: MARKET`).
    #[serde(default)]
    ot: Option<String>,
    #[serde(default)]
    q: Option<WireDecimal>,
    #[serde(default)]
    ap: Option<WireDecimal>,
    #[serde(default)]
    sp: Option<WireDecimal>,
    x: String,
    #[serde(rename = "X")]
    status: String,
    i: WireId,
    #[serde(default)]
    l: Option<WireDecimal>,
    #[serde(default)]
    z: Option<WireDecimal>,
    #[serde(rename = "L", default)]
    last_price: Option<WireDecimal>,
    #[serde(default)]
    n: Option<WireDecimal>,
    #[serde(rename = "N", default)]
    fee_asset: Option<String>,
    #[serde(rename = "T")]
    time: WireMillis,
    #[serde(default)]
    t: Option<WireId>,
    #[serde(default)]
    m: Option<bool>,
    #[serde(rename = "R", default)]
    reduce_only: Option<WireBool>,
    #[serde(default)]
    cp: Option<WireBool>,
    #[serde(default)]
    rp: Option<WireDecimal>,
}

#[derive(Debug, Deserialize)]
struct StreamBalanceWire {
    a: String,
    wb: WireDecimal,
}

#[derive(Debug, Deserialize)]
struct StreamPositionWire {
    s: String,
    pa: WireDecimal,
    ep: WireDecimal,
}

#[derive(Debug, Deserialize)]
struct StreamAccountWire {
    #[serde(default)]
    m: Option<String>,
    #[serde(rename = "B", default)]
    balances: Vec<StreamBalanceWire>,
    #[serde(rename = "P", default)]
    positions: Vec<StreamPositionWire>,
}

#[derive(Debug, Deserialize)]
struct StreamEnvelope {
    e: String,
    #[serde(default)]
    o: Option<Box<RawValue>>,
    #[serde(default)]
    a: Option<Box<RawValue>>,
}

/// Translates one user-data-stream message.
pub fn user_event(text: &str) -> Result<UserEvent, String> {
    let env: StreamEnvelope = serde_json::from_str(text)
        .map_err(|e| format!("user stream message {}: {e}", snippet(text)))?;
    match env.e.as_str() {
        "ORDER_TRADE_UPDATE" => {
            let raw = env
                .o
                .ok_or_else(|| "ORDER_TRADE_UPDATE without \"o\"".to_string())?;
            let o: StreamOrderWire =
                serde_json::from_str(raw.get()).map_err(|e| format!("ORDER_TRADE_UPDATE: {e}"))?;
            let what = format!("order {} ({})", o.c, o.s);
            let side = side(&o.side, &what)?;
            let time: DateTime<Utc> = o.time.0;
            let symbol = Symbol(o.s.clone());
            let order = VenueOrder {
                symbol: symbol.clone(),
                order_id: o.i.0.clone(),
                client_order_id: o.c.clone(),
                side,
                order_type: OrderType::parse(o.ot.as_deref().unwrap_or(&o.o)),
                status: status(&o.status, &what)?,
                orig_qty: o.q.map(|v| v.0).unwrap_or_default(),
                executed_qty: o.z.map(|v| v.0).unwrap_or_default(),
                avg_price: positive(o.ap),
                stop_price: positive(o.sp),
                reduce_only: o.reduce_only.map(|b| b.0).unwrap_or(false),
                close_position: o.cp.map(|b| b.0).unwrap_or(false),
                update_time: time,
            };
            let order = Box::new(order);
            let trade = if o.x == "TRADE" {
                let qty = o.l.map(|v| v.0).unwrap_or_default();
                let price = o.last_price.map(|v| v.0).unwrap_or_default();
                if qty <= Decimal::ZERO || price <= Decimal::ZERO {
                    return Err(format!("{what}: TRADE without quantity or price"));
                }
                Some(Box::new(VenueTrade {
                    id: o
                        .t
                        .map(|t| t.0)
                        .ok_or_else(|| format!("{what}: TRADE without trade id"))?,
                    order_id: o.i.0,
                    client_order_id: Some(o.c),
                    symbol,
                    side,
                    price,
                    quantity: qty,
                    commission: o.n.map(|v| v.0.abs()).unwrap_or_default(),
                    commission_asset: o.fee_asset.unwrap_or_else(|| "USDT".into()),
                    realized_pnl: o.rp.map(|v| v.0).unwrap_or_default(),
                    maker: o.m.unwrap_or(false),
                    time,
                }))
            } else {
                None
            };
            Ok(UserEvent::Order { order, trade })
        }
        "ACCOUNT_UPDATE" => {
            let raw = env
                .a
                .ok_or_else(|| "ACCOUNT_UPDATE without \"a\"".to_string())?;
            let a: StreamAccountWire =
                serde_json::from_str(raw.get()).map_err(|e| format!("ACCOUNT_UPDATE: {e}"))?;
            Ok(UserEvent::Account {
                reason: a.m.unwrap_or_default(),
                wallet_balance: a.balances.iter().find(|b| b.a == "USDT").map(|b| b.wb.0),
                positions: a
                    .positions
                    .into_iter()
                    .map(|p| (Symbol(p.s), p.pa.0, p.ep.0))
                    .collect(),
            })
        }
        "listenKeyExpired" => Ok(UserEvent::ListenKeyExpired),
        "MARGIN_CALL" => Ok(UserEvent::MarginCall),
        other => Ok(UserEvent::Other(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_answer_reads_exactly() {
        let body = br#"{"clientOrderId":"vx-e-0123456789abcdef","cumQty":"0","cumQuote":"0",
            "executedQty":"0.010","orderId":22542179,"avgPrice":"64010.10","origQty":"0.010",
            "price":"0","reduceOnly":false,"side":"BUY","positionSide":"BOTH","status":"FILLED",
            "stopPrice":"0","closePosition":false,"symbol":"BTCUSDT","timeInForce":"GTC",
            "type":"MARKET","origType":"MARKET","updateTime":1566818724722,
            "workingType":"CONTRACT_PRICE","priceProtect":false}"#;
        let o = super::super::wire::decode_json::<OrderWire>(body)
            .unwrap()
            .into_order()
            .unwrap();
        assert_eq!(o.order_id, "22542179");
        assert_eq!(o.avg_price, Some(Decimal::new(6401010, 2)));
        assert_eq!(o.stop_price, None);
        assert_eq!(o.executed_qty, Decimal::new(10, 3));
        assert!(!o.is_open());
    }

    #[test]
    fn a_flat_symbol_is_no_position_and_hedge_mode_is_refused() {
        let flat: PositionRiskWire = serde_json::from_str(
            r#"{"symbol":"BTCUSDT","positionAmt":"0.000","entryPrice":"0.0","leverage":"10",
                "positionSide":"BOTH"}"#,
        )
        .unwrap();
        assert_eq!(flat.into_position().unwrap(), None);
        let short: PositionRiskWire = serde_json::from_str(
            r#"{"symbol":"ETHUSDT","positionAmt":"-1.500","entryPrice":"3000.5","markPrice":"2990",
                "unRealizedProfit":"15.75","liquidationPrice":"3250.1","leverage":"5",
                "marginType":"isolated","isolatedMargin":"915.9","positionSide":"BOTH"}"#,
        )
        .unwrap();
        let p = short.into_position().unwrap().unwrap();
        assert_eq!(p.side(), crate::domain::types::PositionSide::Short);
        assert_eq!(p.quantity(), Decimal::new(15, 1));
        assert_eq!(p.leverage, 5);
        let hedge: PositionRiskWire = serde_json::from_str(
            r#"{"symbol":"ETHUSDT","positionAmt":"1","entryPrice":"3000","positionSide":"LONG"}"#,
        )
        .unwrap();
        assert!(hedge.into_position().unwrap_err().contains("hedge mode"));
    }

    #[test]
    fn stream_messages_become_events() {
        let fill = r#"{"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,"o":{
            "s":"BTCUSDT","c":"vx-t-0011223344556677","S":"SELL","o":"TAKE_PROFIT_MARKET",
            "f":"GTC","q":"0.010","p":"0","ap":"65000.0","sp":"65000.0","x":"TRADE",
            "X":"FILLED","i":8886774,"l":"0.010","z":"0.010","L":"65000.0","n":"0.26",
            "N":"USDT","T":1568879465650,"t":1234,"b":"0","a":"0","m":false,"R":true,
            "wt":"MARK_PRICE","ot":"TAKE_PROFIT_MARKET","ps":"BOTH","cp":true,"rp":"10.0"}}"#;
        let UserEvent::Order { order, trade } = user_event(fill).unwrap() else {
            panic!("not an order event")
        };
        assert_eq!(order.status, OrderStatus::Filled);
        assert!(order.close_position);
        let trade = trade.unwrap();
        assert_eq!(trade.id, "1234");
        assert_eq!(trade.realized_pnl, Decimal::new(100, 1));
        assert_eq!(
            trade.client_order_id.as_deref(),
            Some("vx-t-0011223344556677")
        );

        let acct = r#"{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"FUNDING_FEE",
            "B":[{"a":"USDT","wb":"122624.12345678","cw":"100.12345678","bc":"50.12345678"}],
            "P":[{"s":"BTCUSDT","pa":"0","ep":"0.00000","cr":"200","up":"0","mt":"isolated",
                  "iw":"0.00000000","ps":"BOTH"}]}}"#;
        let UserEvent::Account {
            reason,
            wallet_balance,
            positions,
        } = user_event(acct).unwrap()
        else {
            panic!("not an account event")
        };
        assert_eq!(reason, "FUNDING_FEE");
        assert_eq!(wallet_balance, Some(Decimal::new(12262412345678, 8)));
        assert_eq!(positions.len(), 1);
        assert_eq!(
            user_event(r#"{"e":"listenKeyExpired","E":1}"#).unwrap(),
            UserEvent::ListenKeyExpired
        );
        assert!(user_event("not json").is_err());
    }
}
