//! Live trading end to end: `vibex run` with `mode: live` accounts against the loopback
//! fake AsterDEX (which verifies every signature, keeps the account and fires TP/SL at
//! the mark), a real PostgreSQL, and assertions on what a user sees — the exchange's own
//! books, REST, rows and log lines.

mod common;

use common::daemon::{dec, has_order, tail, Daemon};
use common::fake_trading::{FakeAccountId, Fault, OrderStatus, OrderType, Side};
use common::fake_venue::FakeVenue;
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::Duration;

const HMAC_KEY: &str = "live-key-3c9a7e51b2d4";
const HMAC_SECRET: &str = "live-secret-f0e1d2c3b4a59687";
// The published AsterDEX demonstration wallet (never funds).
const WALLET_USER: &str = "0x63DD5aCC6b1aa0f563956C0e534DD30B6dcF7C4e";
const WALLET_SIGNER: &str = "0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0";
const WALLET_KEY: &str = "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81bae1";

const ENV: &[(&str, &str)] = &[
    ("LIVE_KEY", HMAC_KEY),
    ("LIVE_SECRET", HMAC_SECRET),
    ("WALLET_PRIVATE_KEY", WALLET_KEY),
];

fn ws_base(venue: &FakeVenue) -> String {
    venue.ws_base_url().trim_end_matches("/ws").to_string()
}

fn hmac_account(id: &str, venue: &FakeVenue) -> String {
    format!(
        r#"
  - id: {id}
    mode: live
    asterdex:
      base_url: {base}
      ws_url: {ws}
      api_key: ${{LIVE_KEY}}
      api_secret: ${{LIVE_SECRET}}
    llm_model: builtin/ema-rsi
    assets: [BTC]
    interval: 1s
    leverage: 3
    risk:
      max_position_usd: 5000
"#,
        base = venue.base_url(),
        ws = ws_base(venue),
    )
}

fn wallet_account(id: &str, venue: &FakeVenue) -> String {
    format!(
        r#"
  - id: {id}
    mode: live
    asterdex:
      base_url: {base}
      ws_url: {ws}
      user: "{WALLET_USER}"
      signer: "{WALLET_SIGNER}"
      private_key: ${{WALLET_PRIVATE_KEY}}
    llm_model: builtin/ema-rsi
    assets: [BTC]
    interval: 1s
    leverage: 3
    risk:
      max_position_usd: 5000
"#,
        base = venue.base_url(),
        ws = ws_base(venue),
    )
}

fn is_multiple(value: Decimal, step: &str) -> bool {
    let step = Decimal::from_str(step).unwrap();
    (value % step).is_zero()
}

/// Waits until `check` holds on the fake, or panics with the daemon's stderr tail.
async fn until<F: FnMut() -> bool>(d: &Daemon, what: &str, secs: u64, mut check: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{what}: not within {secs}s; stderr:\n{}",
        tail(&d.stderr(), 80)
    );
}

/// The fake's BTC position of `acct`, with its TP and SL orders, after checking that
/// they are on the right sides, rounded to the symbol's tick and step, close-position
/// triggers at the mark price.
fn protected_long(venue: &FakeVenue, acct: FakeAccountId) -> (Decimal, Decimal, Decimal) {
    let positions = venue.positions(acct);
    let p = positions
        .iter()
        .find(|p| p.symbol == "BTCUSDT")
        .expect("a BTC position on the exchange");
    assert!(p.amount > Decimal::ZERO, "long: {:?}", p.amount);
    assert!(is_multiple(p.amount, "0.001"), "step-rounded: {}", p.amount);
    let open = venue.open_orders(acct);
    assert_eq!(open.len(), 2, "exactly a TP and an SL: {open:?}");
    let tp = open
        .iter()
        .find(|o| o.order_type == OrderType::TakeProfitMarket)
        .expect("TP");
    let sl = open
        .iter()
        .find(|o| o.order_type == OrderType::StopMarket)
        .expect("SL");
    for o in [tp, sl] {
        assert_eq!(o.side, Side::Sell, "exit side of a long");
        assert!(o.close_position, "close-position trigger");
        assert!(
            is_multiple(o.stop_price, "0.10"),
            "tick-rounded: {}",
            o.stop_price
        );
        assert!(
            o.client_order_id.starts_with("vx-"),
            "{}",
            o.client_order_id
        );
        assert_eq!(format!("{:?}", o.working_type), "MarkPrice");
    }
    assert!(
        sl.stop_price < p.entry_price && p.entry_price < tp.stop_price,
        "SL {} < entry {} < TP {}",
        sl.stop_price,
        p.entry_price,
        tp.stop_price
    );
    (p.entry_price, tp.stop_price, sl.stop_price)
}

#[actix_rt::test]
async fn live_accounts_open_protected_positions_and_a_take_profit_closes_one() {
    let venue = FakeVenue::start();
    let hmac = venue.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    let wallet = venue.add_wallet_account(WALLET_USER, WALLET_SIGNER, Decimal::from(10_000));
    let db = common::pg::test_db();
    let yaml = format!(
        "accounts:{}{}",
        hmac_account("hmac", &venue),
        wallet_account("wallet", &venue)
    );
    let mut d = Daemon::start(&yaml, Some(&db.url), ENV);
    assert!(
        d.stderr().contains("LIVE: hmac") && d.stderr().contains("LIVE: wallet"),
        "a loud warning per live account:\n{}",
        tail(&d.stderr(), 20)
    );

    // Both signing modes open a protected long on the exchange.
    let position = common::daemon::open_btc_long(&d, &venue, "hmac").await;
    common::daemon::open_btc_long(&d, &venue, "wallet").await;
    for acct in [hmac, wallet] {
        until(&d, "TP and SL on the exchange", 20, || {
            venue.open_orders(acct).len() == 2
        })
        .await;
    }
    let (entry, tp, sl) = protected_long(&venue, hmac);
    protected_long(&venue, wallet);
    assert_eq!(position["origin"], "vibex");
    assert_eq!(
        dec(&position["entry_price"]),
        entry,
        "vibex shows the exchange's entry"
    );
    assert_eq!(dec(&position["tp_price"]), tp);
    assert_eq!(dec(&position["sl_price"]), sl);
    assert_eq!(
        venue.order_count(hmac, "vx-en-"),
        1,
        "one entry order, whatever the cycles since"
    );

    // The take-profit fires on the exchange: vibex closes the position and cancels
    // the stop-loss there.
    // (The policy may enter again afterwards: the price stays above its EMA, so the
    // assertions follow this position's own orders.)
    let position_id = position["id"].as_str().unwrap().to_string();
    let stop_loss = |acct| {
        venue
            .open_orders(acct)
            .into_iter()
            .find(|o| o.order_type == OrderType::StopMarket)
            .map(|o| o.client_order_id)
            .expect("a stop-loss")
    };
    let (hmac_sl, wallet_sl) = (stop_loss(hmac), stop_loss(wallet));
    let cancelled = |acct, id: &str| {
        venue
            .orders(acct)
            .iter()
            .any(|o| o.client_order_id == id && o.status == OrderStatus::Canceled)
    };
    venue.set_price(
        "BTCUSDT",
        (tp * Decimal::from_str("1.002").unwrap()).round_dp(1),
    );
    until(&d, "hmac's stop-loss cancelled on the exchange", 20, || {
        cancelled(hmac, &hmac_sl)
    })
    .await;
    // Closed, with the exchange's realized PnL (it arrives with the fill).
    let closed =
        common::daemon::closed_position(&d, "hmac", &position_id, Duration::from_secs(20), |p| {
            p["realized_pnl"].as_str().is_some_and(|v| v != "0")
        })
        .await;
    assert!(dec(&closed["realized_pnl"]) > Decimal::ZERO, "{closed}");

    // The rows follow the exchange: wait for exactly what the user should see.
    let orders = d
        .wait_for(
            "/orders?account_id=hmac&limit=50",
            Duration::from_secs(20),
            |b| {
                let orders = b["items"].as_array().cloned().unwrap_or_default();
                has_order(&orders, "MARKET", "FILLED")
                    && has_order(&orders, "TAKE_PROFIT_MARKET", "FILLED")
                    && has_order(&orders, "STOP_MARKET", "CANCELED")
            },
        )
        .await;
    let orders = orders["items"].as_array().unwrap().clone();
    assert!(
        orders
            .iter()
            .any(|o| o["client_order_id"] == hmac_sl.as_str() && o["status"] == "CANCELED"),
        "the position's own stop-loss is the one cancelled: {orders:?}"
    );
    let trades = d
        .wait_for("/trades?account_id=hmac", Duration::from_secs(20), |b| {
            b["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|t| t["reason"] == "take_profit" && t["venue_trade_id"].is_string())
            })
        })
        .await;
    let trades = trades["items"].as_array().unwrap().clone();
    let mut ids: Vec<&str> = trades
        .iter()
        .filter_map(|t| t["venue_trade_id"].as_str())
        .collect();
    let recorded = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), recorded, "each exchange fill recorded once");
    assert_eq!(
        recorded,
        trades.len(),
        "every live fill carries its trade id"
    );

    // The same price closed the wallet-signed account's long too, and its stop-loss
    // was cancelled as well.
    until(&d, "wallet's stop-loss cancelled", 20, || {
        cancelled(wallet, &wallet_sl)
    })
    .await;
    let (_, status) = d.get("/status").await;
    assert!(status["venues"].as_array().is_some_and(|v| !v.is_empty()));
    let (code, _) = d.terminate(Duration::from_secs(15));
    assert!(code.success());
    let logs = d.all_logs();
    for secret in [HMAC_SECRET, WALLET_KEY, &WALLET_KEY[2..]] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[actix_rt::test]
async fn a_crash_between_acceptance_and_reply_never_places_the_order_twice() {
    let venue = FakeVenue::start();
    let acct = venue.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    let db = common::pg::test_db();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("accounts:{}", hmac_account("crash", &venue));
    let mut d = Daemon::start_in(dir.path(), &yaml, Some(&db.url), ENV);

    // The exchange executes the entry but its answer never reaches vibex: SIGKILL.
    venue.hold_order_replies(true);
    for _ in 0..60 {
        if venue.accepted_while_held() > 0 {
            break;
        }
        common::daemon::nudge_btc_above_ema(&d, &venue).await;
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        venue.accepted_while_held(),
        1,
        "the entry reached the exchange"
    );
    d.kill_hard();
    venue.hold_order_replies(false);
    assert_eq!(venue.order_count(acct, "vx-en-"), 1);

    // Restarted: vibex finds its order by its client order id, takes the position as
    // its own and protects it — and never sends a second entry.
    let d = Daemon::start_in(dir.path(), &yaml, Some(&db.url), ENV);
    let position = d
        .wait_for(
            "/positions?account_id=crash&symbol=BTCUSDT&status=open",
            Duration::from_secs(30),
            |b| b["count"] == 1,
        )
        .await["items"][0]
        .clone();
    assert_eq!(position["origin"], "vibex", "{position}");
    until(&d, "TP and SL placed after the restart", 30, || {
        venue.open_orders(acct).len() == 2
    })
    .await;
    protected_long(&venue, acct);
    // Several more cycles: still one entry, one TP, one SL.
    d.wait_for("/accounts/crash/status", Duration::from_secs(30), |b| {
        b["cycles_completed"].as_u64().unwrap_or(0) >= 3
    })
    .await;
    assert_eq!(venue.order_count(acct, "vx-en-"), 1, "no duplicate entry");
    assert_eq!(venue.open_orders(acct).len(), 2);
    assert_eq!(venue.positions(acct).len(), 1);
    let (_, entry) = d
        .get(&format!(
            "/orders/{}",
            venue.orders(acct)[0].client_order_id
        ))
        .await;
    assert_eq!(entry["status"], "FILLED", "{entry}");
    let statuses: Vec<&str> = entry["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.first(),
        Some(&"PENDING_NEW"),
        "written before sending: {statuses:?}"
    );
}

#[actix_rt::test]
async fn a_position_closed_by_hand_on_the_exchange_is_reconciled() {
    let venue = FakeVenue::start();
    let acct = venue.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    let db = common::pg::test_db();
    let yaml = format!("accounts:{}", hmac_account("byhand", &venue));
    let d = Daemon::start(&yaml, Some(&db.url), ENV);
    let position = common::daemon::open_btc_long(&d, &venue, "byhand").await;
    until(&d, "TP and SL on the exchange", 20, || {
        venue.open_orders(acct).len() == 2
    })
    .await;
    protected_long(&venue, acct);
    let protection: Vec<String> = venue
        .open_orders(acct)
        .into_iter()
        .map(|o| o.client_order_id)
        .collect();

    // The user closes the long on the website (its TP/SL stay open there), and opens
    // an ETH short vibex never opened.
    venue
        .close_position_by_hand(acct, "BTCUSDT")
        .expect("closed");
    venue.open_position_by_hand(
        acct,
        "ETHUSDT",
        Decimal::from_str("-0.5").unwrap(),
        Decimal::from(3000),
    );
    // vibex follows the exchange: the long is closed, its orphaned TP/SL cancelled.
    until(&d, "orphaned TP/SL cancelled", 20, || {
        let orders = venue.orders(acct);
        protection.iter().all(|id| {
            orders
                .iter()
                .any(|o| &o.client_order_id == id && o.status == OrderStatus::Canceled)
        })
    })
    .await;
    let events = d
        .wait_for(
            "/reconciliation?account_id=byhand",
            Duration::from_secs(20),
            |b| {
                let kinds: Vec<&str> = b["items"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|e| e["kind"].as_str()).collect())
                    .unwrap_or_default();
                kinds.contains(&"position_closed_on_venue")
                    && kinds.contains(&"orphan_order_cancelled")
                    && kinds.contains(&"position_adopted")
            },
        )
        .await;
    for e in events["items"].as_array().unwrap() {
        assert_eq!(e["account_id"], "byhand");
    }
    let id = position["id"].as_str().unwrap();
    let (_, closed) = d
        .get("/positions?account_id=byhand&symbol=BTCUSDT&status=closed")
        .await;
    assert!(
        closed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id),
        "the long vibex opened is recorded closed: {closed}"
    );
    // Adopted and reported, not closed: the ETH short stays on the exchange.
    let (_, eth) = d
        .get("/positions?account_id=byhand&symbol=ETHUSDT&status=open")
        .await;
    assert_eq!(eth["count"], 1, "{eth}");
    assert_eq!(eth["items"][0]["origin"], "adopted");
    assert_eq!(eth["items"][0]["side"], "short");
    assert_eq!(eth["items"][0]["quantity"], "0.500");
    assert!(venue.positions(acct).iter().any(|p| p.symbol == "ETHUSDT"));
    assert!(d.log_file("trading.log").contains("position_adopted"));
}

#[actix_rt::test]
async fn a_ban_on_one_venue_pauses_its_accounts_and_not_the_others() {
    let banned = FakeVenue::start();
    let other = FakeVenue::start();
    banned.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    other.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    let db = common::pg::test_db();
    let yaml = format!(
        "accounts:{}{}",
        hmac_account("on-banned", &banned),
        hmac_account("on-other", &other)
    );
    let d = Daemon::start(&yaml, Some(&db.url), ENV);
    for id in ["on-banned", "on-other"] {
        d.wait_for(
            &format!("/accounts/{id}/status"),
            Duration::from_secs(45),
            |b| b["cycles_completed"].as_u64().unwrap_or(0) >= 2,
        )
        .await;
    }
    banned.inject(
        "/fapi/v1/klines",
        Fault::Banned {
            retry_after_secs: 20,
        },
        1,
    );
    let status = d
        .wait_for("/status", Duration::from_secs(20), |b| {
            b["venues"]
                .as_array()
                .is_some_and(|v| v.iter().any(|g| g["banned_until"].is_string()))
        })
        .await;
    let gate = status["venues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["banned_until"].is_string())
        .unwrap()
        .clone();
    assert_eq!(gate["base_url"], banned.base_url());
    // While banned, nothing is sent to that venue, its account pauses, and the other
    // account goes on trading.
    let sent_at_ban = banned.request_log().len();
    let before = d.get("/accounts/on-other/status").await.1["cycles_completed"]
        .as_u64()
        .unwrap();
    let paused_before = d.get("/accounts/on-banned/status").await.1["cycles_completed"]
        .as_u64()
        .unwrap();
    actix_rt::time::sleep(Duration::from_secs(8)).await;
    let after = d.get("/accounts/on-other/status").await.1["cycles_completed"]
        .as_u64()
        .unwrap();
    let banned_status = d.get("/accounts/on-banned/status").await.1;
    assert!(
        after >= before + 4,
        "the other account kept trading: {before} -> {after}"
    );
    assert!(
        banned_status["cycles_completed"].as_u64().unwrap() <= paused_before + 1,
        "the banned venue's account paused: {banned_status}"
    );
    assert!(
        banned.request_log().len() <= sent_at_ban + 2,
        "nothing hammers a venue that banned us"
    );
    assert!(
        d.log_file("market_data.log")
            .contains("banned by the venue (HTTP 418)"),
        "the ban is logged"
    );
}

#[actix_rt::test]
async fn an_account_in_hedge_mode_is_refused_with_a_clear_message() {
    let venue = FakeVenue::start();
    let acct = venue.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    venue.set_hedge_mode(acct, true);
    let db = common::pg::test_db();
    let yaml = format!("accounts:{}", hmac_account("hedged", &venue));
    let d = Daemon::start(&yaml, Some(&db.url), ENV);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !d
        .log_file("errors.log")
        .contains("hedge (dual-side) position mode")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no clear refusal; errors.log:\n{}",
            tail(&d.log_file("errors.log"), 20)
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(d
        .log_file("errors.log")
        .contains("switch the account to one-way mode"));
    // Nothing was traded, and the other side of the refusal is visible in the status.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(venue.orders(acct).len(), 0);
    let (_, status) = d.get("/accounts/hedged/status").await;
    assert_eq!(status["cycles_completed"], 0, "{status}");
}

/// Every take-profit fill the venue made for `acct`, by venue trade id, with its
/// client order id.
fn take_profit_fills(venue: &FakeVenue, acct: FakeAccountId) -> Vec<(String, String)> {
    let orders = venue.orders(acct);
    venue
        .trades(acct)
        .into_iter()
        .filter_map(|t| {
            let order = orders.iter().find(|o| o.order_id == t.order_id)?;
            order
                .client_order_id
                .starts_with("vx-tp-")
                .then(|| (t.id.to_string(), order.client_order_id.clone()))
        })
        .collect()
}

#[actix_rt::test]
async fn take_profits_learned_without_the_user_stream_keep_their_orders_and_reasons() {
    let venue = FakeVenue::start();
    // The listen keys work, the user-data WebSocket does not: vibex learns of fills
    // only by reconciliation (`userTrades` carries the order id, never a client id).
    venue.refuse_user_streams(true);
    let hmac = venue.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    let wallet = venue.add_wallet_account(WALLET_USER, WALLET_SIGNER, Decimal::from(10_000));
    let db = common::pg::test_db();
    let yaml = format!(
        "accounts:{}{}",
        hmac_account("hmac", &venue),
        wallet_account("wallet", &venue)
    );
    let d = Daemon::start(&yaml, Some(&db.url), ENV);
    let position = common::daemon::open_btc_long(&d, &venue, "hmac").await;
    common::daemon::open_btc_long(&d, &venue, "wallet").await;
    for acct in [hmac, wallet] {
        until(&d, "TP and SL on the exchange", 20, || {
            venue.open_orders(acct).len() == 2
        })
        .await;
    }
    assert!(
        venue.user_streams_refused() > 0,
        "the daemon tried the stream"
    );
    assert_eq!(venue.user_stream_count(hmac), 0);
    let (_, tp, _) = protected_long(&venue, hmac);
    let stop_loss = venue
        .open_orders(hmac)
        .into_iter()
        .find(|o| o.order_type == OrderType::StopMarket)
        .map(|o| o.client_order_id)
        .expect("a stop-loss");

    // The mark rises through both accounts' take-profits.
    venue.set_price(
        "BTCUSDT",
        (tp * Decimal::from_str("1.01").unwrap()).round_dp(1),
    );
    until(&d, "the take-profits fired on the exchange", 20, || {
        !take_profit_fills(&venue, hmac).is_empty() && !take_profit_fills(&venue, wallet).is_empty()
    })
    .await;

    // /positions: the long is closed by its take-profit, not "closed on the venue".
    let id = position["id"].as_str().unwrap();
    let closed = common::daemon::closed_position(&d, "hmac", id, Duration::from_secs(20), |p| {
        !p["close_reason"].is_null()
    })
    .await;
    assert_eq!(closed["close_reason"], "take_profit", "{closed}");
    // Its stop-loss was cancelled on the exchange.
    until(&d, "the stop-loss cancelled on the exchange", 20, || {
        venue
            .orders(hmac)
            .iter()
            .any(|o| o.client_order_id == stop_loss && o.status == OrderStatus::Canceled)
    })
    .await;

    // /trades: every take-profit fill the exchange made so far is there as a
    // take-profit, linked to its order (the policy may enter again meanwhile; later
    // fills are not waited for).
    for (acct, name) in [(hmac, "hmac"), (wallet, "wallet")] {
        let expected = take_profit_fills(&venue, acct);
        let path = format!("/trades?account_id={name}&limit=500");
        let trades = d
            .wait_for(&path, Duration::from_secs(20), |b| {
                let items = b["items"].as_array().cloned().unwrap_or_default();
                expected.iter().all(|(trade, _)| {
                    items.iter().any(|t| {
                        t["venue_trade_id"] == trade.as_str() && t["reason"] == "take_profit"
                    })
                })
            })
            .await;
        for (trade, coid) in &expected {
            let row = trades["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["venue_trade_id"] == trade.as_str())
                .unwrap();
            assert_eq!(row["client_order_id"], coid.as_str(), "{row}");
            assert!(row["order_id"].is_string(), "linked to its order: {row}");
            assert!(
                row["cycle_id"].is_string(),
                "and to its decision's cycle: {row}"
            );
        }
        let external: Vec<_> = trades["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["reason"] == "external")
            .collect();
        assert!(
            external.is_empty(),
            "{name}: vibex's own fills shown as someone else's: {external:?}"
        );
    }
    assert!(
        !d.log_file("trading.log").contains("recorded as external"),
        "no fill fell back to external"
    );
}
