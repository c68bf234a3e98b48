//! The spine end to end: `vibex run` with two paper accounts on a 1 s interval, market
//! data from a loopback fake of the venue, a real PostgreSQL; asserts on what a user
//! sees — REST bodies, database rows, WebSocket frames filtered by account, log lines —
//! and that SIGTERM ends it cleanly.

mod common;

use common::daemon::{dec, has_order, Daemon, WsClient};
use common::fake_venue::FakeVenue;
use diesel::prelude::*;
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::Duration;
use vibex::db::{models::*, schema::*};

const SECRETS: &[(&str, &str)] = &[
    ("ALPHA_KEY", "alpha-key-7f3e9a1c55d2"),
    ("ALPHA_SECRET", "alpha-secret-b81f0e44c9aa"),
    ("ALPHA_OPENROUTER", "sk-or-v1-alpha0123456789abcdef"),
    ("BETA_KEY", "beta-key-90ab12cd34ef"),
    ("BETA_SECRET", "beta-secret-5566778899aa"),
];

fn accounts_yaml(venue: &str) -> String {
    format!(
        r#"
accounts:
  - id: alpha
    asterdex:
      base_url: {venue}
      api_key: ${{ALPHA_KEY}}
      api_secret: ${{ALPHA_SECRET}}
    openrouter:
      api_key: ${{ALPHA_OPENROUTER}}
    llm_model: builtin/ema-rsi
    assets: [BTC, ETH]
    interval: 1s
    leverage: 3
    risk:
      max_position_usd: 5000
    paper:
      starting_balance_usd: 10000
      fee_bps: 5
      slippage_bps: 2
  - id: beta
    asterdex:
      base_url: {venue}
      api_key: ${{BETA_KEY}}
      api_secret: ${{BETA_SECRET}}
    llm_model: builtin/hold
    assets: [SOL]
    interval: 1s
"#
    )
}

#[actix_rt::test]
async fn two_paper_accounts_trade_side_by_side_and_stop_cleanly() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let d = Daemon::start(&accounts_yaml(venue.base_url()), Some(&db.url), SECRETS);
    let mut d = d;

    let alpha_events = WsClient::connect(&d, "/ws/trading-events?account_id=alpha").await;
    let alpha_positions = WsClient::connect(&d, "/ws/positions?account_id=alpha").await;
    let beta_market = WsClient::connect(&d, "/ws/market-data?account_id=beta").await;

    // Several cycles of both accounts.
    for id in ["alpha", "beta"] {
        d.wait_for(
            &format!("/accounts/{id}/status"),
            Duration::from_secs(45),
            |b| b["cycles_completed"].as_u64().unwrap_or(0) >= 3,
        )
        .await;
    }

    // Make alpha enter BTC long, then hit its take-profit.
    let position = common::daemon::open_btc_long(&d, &venue, "alpha").await;
    assert_eq!(position["side"], "long");
    assert_eq!(position["account_id"], "alpha");
    assert_eq!(position["leverage"], 3);
    let tp = dec(&position["tp_price"]);
    let sl = dec(&position["sl_price"]);
    let entry = dec(&position["entry_price"]);
    assert!(
        sl < entry && entry < tp,
        "SL {sl} < entry {entry} < TP {tp}"
    );
    let position_id = position["id"].as_str().unwrap().to_string();

    venue.set_price(
        "BTCUSDT",
        (tp * Decimal::from_str("1.001").unwrap()).round_dp(1),
    );
    let closed =
        common::daemon::closed_position(&d, "alpha", &position_id, Duration::from_secs(20), |_| {
            true
        })
        .await;
    assert!(
        dec(&closed["realized_pnl"]) > Decimal::ZERO,
        "TP gives a profit: {closed}"
    );
    venue.clear_price_override("BTCUSDT");

    // REST: orders and trades tell the story of the TP.
    let (_, orders) = d.get("/orders?account_id=alpha&symbol=BTC&limit=50").await;
    let orders = orders["items"].as_array().unwrap().clone();
    let of = |t: &str, s: &str| has_order(&orders, t, s);
    assert!(of("MARKET", "FILLED"), "entry filled: {orders:?}");
    assert!(of("TAKE_PROFIT_MARKET", "FILLED"), "TP filled");
    assert!(
        of("STOP_MARKET", "CANCELED"),
        "SL cancelled when the TP closed the position"
    );
    for o in &orders {
        let coid = o["client_order_id"].as_str().unwrap();
        assert!(coid.len() <= 36 && coid.starts_with("vx-"), "{coid}");
        assert_eq!(o["account_id"], "alpha");
    }
    let (_, trades) = d.get("/trades?account_id=alpha").await;
    let reasons: Vec<_> = trades["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(reasons.contains(&"entry".to_string()), "{reasons:?}");
    assert!(reasons.contains(&"take_profit".to_string()), "{reasons:?}");

    // REST: beta never traded; lists filter by account; bad input answers JSON errors.
    let (_, beta_orders) = d.get("/orders?account_id=beta").await;
    assert_eq!(beta_orders["count"], 0);
    // Beta holds every cycle; wait until five of its decisions are stored (its cycles
    // run at their own offset, so the TP journey above may take fewer than five).
    let beta_dec = d
        .wait_for(
            "/decisions?account_id=beta&limit=5",
            Duration::from_secs(20),
            |b| b["count"] == 5,
        )
        .await;
    for row in beta_dec["items"].as_array().unwrap() {
        assert_eq!(row["account_id"], "beta");
        assert_eq!(row["action"], "hold");
        assert_eq!(row["source"], "builtin/hold");
    }
    let (status, body) = d.get("/accounts/nobody").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "account_not_found");
    let (status, body) = d.get("/positions?account_id=nobody").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = d.get("/orders?limit=0").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = d.get("/decisions?limit=abc").await;
    assert_eq!(status, 400);
    let (_, accounts) = d.get("/accounts").await;
    assert_eq!(accounts["count"], 2);
    let (_, status_body) = d.get("/status").await;
    assert_eq!(status_body["accounts"].as_array().unwrap().len(), 2);
    assert_eq!(
        status_body["market_data"].as_array().unwrap().len(),
        3,
        "BTC, ETH, SOL hubs"
    );
    let (_, alpha) = d.get("/accounts/alpha").await;
    assert_eq!(alpha["mode"], "paper");
    assert!(
        dec(&alpha["paper_wallet_balance"]) != Decimal::from(10_000),
        "fees and PnL moved the wallet"
    );
    let (_, health) = d.get("/health").await;
    assert_eq!(health["status"], "ok");

    // WebSocket: frames carry the envelope and only the subscribed account.
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    let frames = alpha_events.frames();
    assert!(!frames.is_empty());
    let mut last_seq = 0;
    for f in &frames {
        for key in [
            "channel",
            "type",
            "account_id",
            "cycle_id",
            "seq",
            "ts",
            "data",
        ] {
            assert!(f.get(key).is_some(), "frame lacks {key}: {f}");
        }
        assert_eq!(f["channel"], "trading-events");
        assert_eq!(f["account_id"], "alpha", "filtered by account: {f}");
        let seq = f["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "seq increases");
        last_seq = seq;
    }
    for kind in [
        "cycle_started",
        "decision",
        "cycle_completed",
        "order",
        "fill",
    ] {
        assert!(!alpha_events.of_type(kind).is_empty(), "no {kind} frame");
    }
    let tp_fill = alpha_events
        .of_type("fill")
        .into_iter()
        .find(|f| f["data"]["reason"] == "take_profit")
        .expect("take-profit fill pushed");
    assert_eq!(tp_fill["data"]["symbol"], "BTCUSDT");
    let pos_frames = alpha_positions.frames();
    assert!(pos_frames
        .iter()
        .all(|f| f["account_id"] == "alpha" && f["channel"] == "positions"));
    assert!(pos_frames
        .iter()
        .any(|f| f["type"] == "position" && f["data"]["status"] == "closed"));
    assert!(pos_frames.iter().any(|f| f["type"] == "balance"));
    let md = beta_market.frames();
    assert!(!md.is_empty());
    assert!(
        md.iter()
            .all(|f| f["type"] == "snapshot" && f["data"]["symbol"] == "SOLUSDT"),
        "beta's market-data stream carries only SOL"
    );

    // Database: one cycle traced through decision rows, equity rows, events and logs.
    let mut conn = PgConnection::establish(&db.url).unwrap();
    let entry_order: OrderRow = orders::table
        .filter(orders::account_id.eq("alpha"))
        .filter(orders::symbol.eq("BTCUSDT"))
        .filter(orders::order_type.eq("MARKET"))
        .filter(orders::status.eq("FILLED"))
        .order(orders::created_at.asc())
        .select(OrderRow::as_select())
        .first(&mut conn)
        .unwrap();
    let cycle = entry_order.cycle_id.expect("order has a cycle");
    let decision: DecisionRow = decisions::table
        .filter(decisions::cycle_id.eq(cycle))
        .filter(decisions::asset.eq("BTC"))
        .select(DecisionRow::as_select())
        .first(&mut conn)
        .unwrap();
    assert_eq!(decision.action, "buy");
    assert_eq!(decision.outcome, "approved");
    assert_eq!(entry_order.decision_id, Some(decision.id));
    let fill: FillRow = fills::table
        .filter(fills::order_id.eq(entry_order.id))
        .select(FillRow::as_select())
        .first(&mut conn)
        .unwrap();
    assert_eq!(fill.cycle_id, Some(cycle));
    let equity: i64 = equity_snapshots::table
        .filter(equity_snapshots::cycle_id.eq(cycle))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(equity, 1, "one equity snapshot per cycle");
    let events: i64 = order_events::table
        .filter(order_events::order_id.eq(entry_order.id))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert!(events >= 2, "NEW and FILLED recorded");
    // One entry per executed decision: ETH may have traded in the same cycle.
    let diary: i64 = diary_entries::table
        .filter(diary_entries::cycle_id.eq(cycle))
        .filter(diary_entries::asset.eq("BTC"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(diary, 1);
    let snapshots: i64 = market_snapshots::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert!(snapshots > 3);
    let candles: i64 = candles::table.count().get_result(&mut conn).unwrap();
    assert!(candles > 100);
    assert!(frames
        .iter()
        .any(|f| f["cycle_id"] == cycle.to_string().as_str() && f["type"] == "decision"));
    let trading_log = d.log_file("trading.log");
    let line = trading_log
        .lines()
        .find(|l| l.contains(&cycle.to_string()) && l.contains("\"fill\""))
        .expect("the fill's log line carries the cycle id");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["account_id"], "alpha");
    assert_eq!(line["domain"], "trading");

    // No secret in any API response or log line.
    let mut seen = String::new();
    for path in [
        "/accounts",
        "/accounts/alpha",
        "/accounts/beta",
        "/status",
        "/orders",
        "/decisions",
        "/trades",
        "/positions",
        "/market-data",
    ] {
        seen.push_str(&d.get_text(path).await);
    }
    let (status, elapsed) = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    seen.push_str(&d.all_logs());
    for (_, secret) in SECRETS {
        assert!(!seen.contains(secret), "secret {secret} leaked");
    }
    assert!(!seen.contains(&db.password), "database password leaked");
    let app_log = d.log_file("app.log");
    assert!(app_log.contains("SIGTERM received"));
    assert!(app_log.contains("vibex stopped"));
}
