//! One account's trouble never stops another: a venue that is down only stalls the
//! accounts on it, and an account whose actor panics is restarted by the supervisor
//! while the others keep trading.

mod common;

use common::daemon::{Daemon, WsClient};
use common::fake_venue::FakeVenue;
use std::time::Duration;

#[actix_rt::test]
async fn a_down_venue_and_a_panicking_account_leave_the_others_trading() {
    let healthy = FakeVenue::start();
    let broken = FakeVenue::start();
    broken.set_down(true);
    let db = common::pg::test_db();
    let yaml = format!(
        r#"
market_data:
  max_retries: 1
  request_timeout: 2s
accounts:
  - id: steady
    asterdex: {{ base_url: {healthy} }}
    llm_model: builtin/ema-rsi
    assets: [BTC]
    interval: 1s
  - id: cut-off
    asterdex: {{ base_url: {broken} }}
    llm_model: builtin/hold
    assets: [ETH]
    interval: 1s
  - id: crashy
    asterdex: {{ base_url: {healthy} }}
    llm_model: builtin/panic
    assets: [BTC]
    interval: 1s
  - id: hourly
    asterdex: {{ base_url: {healthy} }}
    llm_model: builtin/hold
    assets: [BTC]
    interval: 1h
"#,
        healthy = healthy.base_url(),
        broken = broken.base_url()
    );
    let mut d = Daemon::start(&yaml, Some(&db.url), &[]);
    let crashy_events = WsClient::connect(&d, "/ws/trading-events?account_id=crashy").await;

    // The crashing account is restarted with backoff, over and over.
    d.wait_for("/accounts/crashy/status", Duration::from_secs(30), |b| {
        b["restarts"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    // Meanwhile the healthy account keeps completing cycles.
    let steady = d
        .wait_for("/accounts/steady/status", Duration::from_secs(30), |b| {
            b["cycles_completed"].as_u64().unwrap_or(0) >= 5
        })
        .await;
    assert_eq!(steady["state"], "active");
    // An hourly account does not wait an hour for its first cycle.
    d.wait_for("/accounts/hourly/status", Duration::from_secs(10), |b| {
        b["cycles_completed"].as_u64().unwrap_or(0) == 1
    })
    .await;
    assert_eq!(steady["restarts"], 0);
    assert!(steady["last_error"].is_null(), "{steady}");

    // The account on the down venue skips its cycles and says why.
    let cut = d
        .wait_for("/accounts/cut-off/status", Duration::from_secs(30), |b| {
            b["cycles_skipped"].as_u64().unwrap_or(0) >= 2
        })
        .await;
    assert_eq!(cut["cycles_completed"], 0);
    let why = cut["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("ETH"), "names the asset: {why}");
    let (_, status) = d.get("/status").await;
    let eth_hub = status["market_data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["symbol"] == "ETHUSDT")
        .expect("ETH hub listed")
        .clone();
    assert!(
        eth_hub["consecutive_failures"].as_u64().unwrap() >= 1,
        "{eth_hub}"
    );
    assert!(
        eth_hub["last_error"].as_str().unwrap().contains("503"),
        "{eth_hub}"
    );

    // The venue comes back: the stalled account resumes without a restart.
    broken.set_down(false);
    d.wait_for("/accounts/cut-off/status", Duration::from_secs(30), |b| {
        b["cycles_completed"].as_u64().unwrap_or(0) >= 2
    })
    .await;

    // What a dashboard saw of the crashing account.
    let states: Vec<_> = crashy_events
        .of_type("account_status")
        .iter()
        .map(|f| f["data"]["state"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(states.iter().any(|s| s == "restarting"), "{states:?}");
    assert!(states.iter().any(|s| s == "crashed"), "{states:?}");
    assert!(!crashy_events.of_type("cycle_failed").is_empty());
    assert!(crashy_events
        .frames()
        .iter()
        .all(|f| f["account_id"] == "crashy"));

    let (status, _) = d.terminate(Duration::from_secs(10));
    assert!(status.success());
    let errors = d.log_file("errors.log");
    assert!(
        errors.contains("account crashed; restarting it"),
        "{errors}"
    );
    assert!(errors.contains("\"account_id\":\"crashy\""));
    assert!(
        !errors.contains("\"account_id\":\"steady\""),
        "steady logged no error"
    );
}
