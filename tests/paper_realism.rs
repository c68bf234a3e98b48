//! The paper venue behaves like the exchange: a paper account at high leverage whose
//! market collapses past its liquidation price is liquidated by the venue (not by its
//! stop-loss), loses its margin plus fees, and everything a user audits shows it — the
//! fill, the venue's income records, the cancelled protection, the wallet.

mod common;

use common::daemon::{dec, has_order, Daemon};
use common::fake_venue::FakeVenue;
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::Duration;

#[actix_rt::test]
async fn a_paper_position_past_its_liquidation_price_is_liquidated_like_on_the_venue() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let yaml = format!(
        r#"
accounts:
  - id: lev
    asterdex: {{ base_url: {} }}
    llm_model: builtin/ema-rsi
    assets: [BTC]
    interval: 1s
    leverage: 20
    risk:
      max_position_usd: 5000
    paper:
      starting_balance_usd: 10000
      fee_bps: 5
      slippage_bps: 2
      maintenance_margin_rate: 0.005
"#,
        venue.base_url()
    );
    let d = Daemon::start(&yaml, Some(&db.url), &[]);
    let position = common::daemon::open_btc_long(&d, &venue, "lev").await;
    let id = position["id"].as_str().unwrap().to_string();
    let entry = dec(&position["entry_price"]);
    let margin = dec(&position["margin"]);
    // The venue's liquidation price arrives with the next reconciliation.
    let open = d
        .wait_for(
            "/positions?account_id=lev&symbol=BTCUSDT&status=open",
            Duration::from_secs(10),
            |b| b["items"][0]["liquidation_price"].is_string(),
        )
        .await;
    let liquidation = dec(&open["items"][0]["liquidation_price"]);
    let sl = dec(&position["sl_price"]);
    assert!(
        liquidation < sl && sl < entry,
        "liquidation {liquidation} < SL {sl} < entry {entry}"
    );
    let (_, before) = d.get("/accounts/lev").await;
    let wallet_before = dec(&before["paper_wallet_balance"]);

    // The market gaps through the stop-loss and the liquidation price in one tick.
    venue.set_price(
        "BTCUSDT",
        (liquidation * Decimal::from_str("0.99").unwrap()).round_dp(1),
    );
    let trades = d
        .wait_for("/trades?account_id=lev", Duration::from_secs(20), |b| {
            b["items"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t["reason"] == "liquidation"))
        })
        .await;
    let fill = trades["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["reason"] == "liquidation")
        .unwrap()
        .clone();
    // At the liquidation price, on the tick (0.1), against the trader.
    let price = dec(&fill["price"]);
    assert!(
        price <= liquidation && liquidation - price < Decimal::from_str("0.1").unwrap(),
        "filled at {price}, liquidation price {liquidation}"
    );
    assert!(fill["client_order_id"]
        .as_str()
        .unwrap()
        .starts_with("autoclose-"));

    let closed =
        common::daemon::closed_position(&d, "lev", &id, Duration::from_secs(10), |_| true).await;
    assert!(dec(&closed["realized_pnl"]) < Decimal::ZERO, "{closed}");
    // Its TP and SL were cancelled, not filled.
    let (_, orders) = d.get("/orders?account_id=lev&limit=50").await;
    let orders = orders["items"].as_array().unwrap().clone();
    for kind in ["TAKE_PROFIT_MARKET", "STOP_MARKET"] {
        assert!(
            has_order(&orders, kind, "CANCELED"),
            "{kind} cancelled: {orders:?}"
        );
        assert!(!has_order(&orders, kind, "FILLED"), "{kind} not filled");
    }
    // The venue's income records: realized loss, commission, clearance fee.
    let income = d
        .wait_for("/income?account_id=lev", Duration::from_secs(10), |b| {
            b["items"]
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i["kind"] == "LIQUIDATION_FEE"))
        })
        .await;
    let kinds: Vec<&str> = income["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"REALIZED_PNL") && kinds.contains(&"COMMISSION"));
    // The position's margin is gone (plus fees), and the wallet is stored.
    let (_, after) = d.get("/accounts/lev").await;
    let lost = wallet_before - dec(&after["paper_wallet_balance"]);
    assert!(
        lost >= margin * Decimal::from_str("0.95").unwrap() && lost < margin * Decimal::from(2),
        "lost {lost} of a {margin} margin"
    );
}
