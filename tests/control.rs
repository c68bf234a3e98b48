//! The control plane end to end: `vibex run` against the loopback fake AsterDEX and a
//! real PostgreSQL, driven over HTTP the way an operator would. Journeys: pause keeps a
//! live position's take-profit working and survives a restart, resume trades again,
//! close-all leaves nothing on the exchange, delete stops an account for good (its rows
//! stay, a restart does not bring it back); an account added over the API trades (and
//! survives a restart), a bad body adds nothing and names the field; the kill switch
//! with flatten leaves every paper account flat and opening nothing, survives a restart,
//! and DELETE lifts it. Every action is in `GET /audit`, trading.log and the
//! `control` events of `/ws/trading-events`.

mod common;

use common::daemon::{tail, Daemon, WsClient};
use common::fake_trading::{FakeAccountId, OrderType};
use common::fake_venue::FakeVenue;
use rust_decimal::Decimal;
use std::str::FromStr;
use std::time::{Duration, Instant};

const HMAC_KEY: &str = "ctl-key-5d1c9e7a3b20";
const HMAC_SECRET: &str = "ctl-secret-a9b8c7d6e5f40312";
const ENV: &[(&str, &str)] = &[
    ("LIVE_KEY", HMAC_KEY),
    ("LIVE_SECRET", HMAC_SECRET),
    ("P3_KEY", "p3-venue-key-0f9e8d7c"),
    ("P3_SECRET", "p3-venue-secret-6b5a4c3d"),
];

/// Sends `method path` with an optional body (`content type`, text); status and JSON.
async fn call(
    d: &Daemon,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> (u16, serde_json::Value) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(90))
        .finish();
    let m = awc::http::Method::from_str(method).expect("method");
    let req = client.request(m, format!("{}{path}", d.base));
    let sent = match body {
        Some((ct, text)) => {
            req.insert_header(("Content-Type", ct))
                .send_body(text)
                .await
        }
        None => req.send().await,
    };
    let mut res = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let bytes = res.body().limit(16 << 20).await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (res.status().as_u16(), json)
}

/// `call` that must answer 200.
async fn ok(
    d: &Daemon,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
) -> serde_json::Value {
    let (status, json) = call(d, method, path, body).await;
    assert_eq!(
        status,
        200,
        "{method} {path}: {json}\nstderr:\n{}",
        tail(&d.stderr(), 40)
    );
    json
}

/// Waits until `check` holds, or panics naming `what` with the daemon's stderr tail.
async fn until<F: FnMut() -> bool>(d: &Daemon, what: &str, secs: u64, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
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

fn live_account(venue: &FakeVenue) -> String {
    format!(
        r#"
accounts:
  - id: trader
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
        ws = venue.ws_base_url().trim_end_matches("/ws"),
    )
}

/// The exchange's non-empty positions of `acct`.
fn open_positions(venue: &FakeVenue, acct: FakeAccountId) -> usize {
    venue
        .positions(acct)
        .iter()
        .filter(|p| p.amount != Decimal::ZERO)
        .count()
}

/// Nudges BTC above its EMA for `secs` seconds (the policy wants to enter all along).
async fn tempt_for(d: &Daemon, venue: &FakeVenue, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        common::daemon::nudge_btc_above_ema(d, venue).await;
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn decisions_refused_for(d: &Daemon, account: &str, words: &str) -> usize {
    let (_, body) = d
        .get(&format!("/decisions?account_id={account}&limit=200"))
        .await;
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| {
                    i["refusal_reason"]
                        .as_str()
                        .is_some_and(|r| r.contains(words))
                })
                .count()
        })
        .unwrap_or(0)
}

async fn state_of(d: &Daemon, account: &str) -> String {
    let (_, s) = d.get(&format!("/accounts/{account}/status")).await;
    s["state"].as_str().unwrap_or_default().to_string()
}

#[actix_rt::test]
async fn pause_keeps_exits_survives_restart_then_close_all_and_delete_stop_a_live_account() {
    let venue = FakeVenue::start();
    let acct = venue.add_hmac_account(HMAC_KEY, HMAC_SECRET, Decimal::from(10_000));
    let db = common::pg::test_db();
    let tmp = tempfile::tempdir().unwrap();
    let yaml = live_account(&venue);
    let mut d = Daemon::start_in(tmp.path(), &yaml, Some(&db.url), ENV);
    let events = WsClient::connect(&d, "/ws/trading-events").await;

    // A protected long on the exchange.
    common::daemon::open_btc_long(&d, &venue, "trader").await;
    until(&d, "TP and SL on the exchange", 20, || {
        venue.open_orders(acct).len() == 2
    })
    .await;
    let tp = venue
        .open_orders(acct)
        .into_iter()
        .find(|o| o.order_type == OrderType::TakeProfitMarket)
        .expect("a take-profit")
        .stop_price;

    // Pause: the answer comes once no cycle decided before it is in flight.
    let paused = ok(&d, "POST", "/accounts/trader/pause", None).await;
    assert_eq!(paused["state"], "paused", "{paused}");
    assert_eq!(state_of(&d, "trader").await, "paused");
    let entries = venue.order_count(acct, "vx-en-");
    assert_eq!(entries, 1);

    // The take-profit still closes the position on the exchange.
    venue.set_price(
        "BTCUSDT",
        (tp * Decimal::from_str("1.001").unwrap()).round_dp(1),
    );
    until(
        &d,
        "the TP closes the paused account's position",
        30,
        || open_positions(&venue, acct) == 0,
    )
    .await;
    // The policy keeps asking to go long: every entry is refused, none is sent.
    tempt_for(&d, &venue, 5).await;
    assert_eq!(
        venue.order_count(acct, "vx-en-"),
        entries,
        "no entry while paused"
    );
    assert!(decisions_refused_for(&d, "trader", "paused").await > 0);

    // Restart: still paused.
    let (status, _) = d.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    let mut d = Daemon::start_in(tmp.path(), &yaml, Some(&db.url), ENV);
    d.wait_for("/accounts/trader/status", Duration::from_secs(30), |b| {
        b["state"] == "paused" && b["cycles_completed"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    tempt_for(&d, &venue, 3).await;
    assert_eq!(
        venue.order_count(acct, "vx-en-"),
        entries,
        "no entry after a restart"
    );
    let (_, listed) = d.get("/accounts").await;
    assert_eq!(listed["items"][0]["status"]["state"], "paused");
    let (_, status) = d.get("/status").await;
    assert_eq!(status["accounts"][0]["state"], "paused");

    // Resume: it enters again.
    let resumed = ok(&d, "POST", "/accounts/trader/resume", None).await;
    assert_eq!(resumed["state"], "active");
    venue.clear_price_override("BTCUSDT");
    common::daemon::open_btc_long(&d, &venue, "trader").await;
    until(&d, "TP and SL of the new position", 20, || {
        venue.open_orders(acct).len() == 2
    })
    .await;

    // Close-all: nothing left on the exchange, and the answer says what was done.
    let report = ok(&d, "POST", "/accounts/trader/close-all", None).await;
    assert_eq!(venue.open_orders(acct).len(), 0, "no open order: {report}");
    assert_eq!(open_positions(&venue, acct), 0, "no position: {report}");
    assert_eq!(report["flat"], true, "{report}");
    assert_eq!(
        report["cancelled_orders"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert_eq!(report["closed_positions"][0]["symbol"], "BTCUSDT");

    // Delete (flattening first): drained and stopped; its rows stay listed.
    let removed = ok(&d, "DELETE", "/accounts/trader?close_positions=true", None).await;
    assert_eq!(removed["state"], "stopped", "{removed}");
    assert_eq!(open_positions(&venue, acct), 0, "{removed}");
    assert_eq!(venue.open_orders(acct).len(), 0, "{removed}");
    let (_, s) = d.get("/accounts/trader/status").await;
    assert_eq!(s["state"], "stopped");
    let (_, orders) = d.get("/orders?account_id=trader&limit=100").await;
    assert!(
        orders["count"].as_u64().unwrap() >= 4,
        "rows stay: {orders}"
    );
    let (_, before) = d.get("/decisions?account_id=trader&limit=1000").await;
    tempt_for(&d, &venue, 3).await;
    let (_, after) = d.get("/decisions?account_id=trader&limit=1000").await;
    assert_eq!(before["count"], after["count"], "no further cycle");

    // After a restart the deleted account does not trade again.
    let (status, _) = d.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    let d = Daemon::start_in(tmp.path(), &yaml, Some(&db.url), ENV);
    assert_eq!(state_of(&d, "trader").await, "stopped");
    let sent = venue.order_count(acct, "vx-");
    tempt_for(&d, &venue, 4).await;
    let (_, again) = d.get("/decisions?account_id=trader&limit=1000").await;
    assert_eq!(after["count"], again["count"], "no cycle after the restart");
    assert_eq!(
        venue.order_count(acct, "vx-"),
        sent,
        "no order after the restart"
    );

    // Every action is audited: the trail, the log and the stream.
    let (_, audit) = d.get("/audit?limit=100").await;
    let actions: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["action"].as_str().unwrap(),
                a["target"],
                a["status"]
            )
        })
        .collect();
    for wanted in [
        "account.pause \"trader\" 200",
        "account.resume \"trader\" 200",
        "account.close_all \"trader\" 200",
        "account.remove \"trader\" 200",
    ] {
        assert!(
            actions.iter().any(|a| a == wanted),
            "{wanted} in {actions:?}"
        );
    }
    assert!(audit["items"][0]["key_name"].is_string());
    let controls = events.of_type("control");
    assert!(
        controls
            .iter()
            .any(|e| e["data"]["action"] == "account.pause"),
        "control events: {controls:?}"
    );
    assert!(d
        .log_file("trading.log")
        .contains("\"action\":\"account.close_all\""));
    for log in [d.all_logs(), audit.to_string()] {
        assert!(!log.contains(HMAC_SECRET) && !log.contains(HMAC_KEY));
    }
}

fn paper_accounts(venue: &FakeVenue, ids: &[&str]) -> String {
    let mut yaml = String::from("accounts:\n");
    for id in ids {
        yaml.push_str(&format!(
            r#"  - id: {id}
    asterdex: {{ base_url: {base} }}
    llm_model: builtin/ema-rsi
    assets: [BTC]
    interval: 1s
    leverage: 2
"#,
            base = venue.base_url()
        ));
    }
    yaml
}

/// Nudges BTC until every account in `ids` holds an open BTC long.
async fn all_long(d: &Daemon, venue: &FakeVenue, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        common::daemon::nudge_btc_above_ema(d, venue).await;
        actix_rt::time::sleep(Duration::from_millis(1000)).await;
        let mut long = 0;
        for id in ids {
            let (_, p) = d
                .get(&format!("/positions?account_id={id}&status=open"))
                .await;
            if p["count"] == 1 {
                long += 1;
            }
        }
        if long == ids.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{long} of {} accounts went long; stderr:\n{}",
            ids.len(),
            tail(&d.stderr(), 60)
        );
    }
}

async fn open_count(d: &Daemon) -> u64 {
    let (_, p) = d.get("/positions?status=open&limit=1000").await;
    p["count"].as_u64().unwrap_or(0)
}

#[actix_rt::test]
async fn an_api_account_trades_and_the_kill_switch_flattens_every_account_until_lifted() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let tmp = tempfile::tempdir().unwrap();
    let yaml = paper_accounts(&venue, &["p1", "p2"]);
    let mut d = Daemon::start_in(tmp.path(), &yaml, Some(&db.url), ENV);
    let events = WsClient::connect(&d, "/ws/trading-events").await;

    // A bad body adds nothing and names the field.
    let bad = format!(
        "id: p9\nasterdex: {{ base_url: {} }}\nllm_model: builtin/hold\nassets: [BTC]\ninterval: 1s\nleverage: 99\n",
        venue.base_url()
    );
    let (status, err) = call(&d, "POST", "/accounts", Some(("application/yaml", bad))).await;
    assert_eq!(status, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("account \"p9\": field \"leverage\""),
        "{message}"
    );
    let (status, _) = d.get("/accounts/p9").await;
    assert_eq!(status, 404, "nothing added");
    // A secret in plain text is refused (and not echoed).
    let plain = format!(
        r#"{{"id":"p8","asterdex":{{"base_url":"{}","api_key":"plain-text-venue-key"}},"llm_model":"builtin/hold","assets":["BTC"],"interval":"1s"}}"#,
        venue.base_url()
    );
    let (status, err) = call(&d, "POST", "/accounts", Some(("application/json", plain))).await;
    assert_eq!(status, 400, "{err}");
    assert!(!err.to_string().contains("plain-text-venue-key"));
    assert!(err.to_string().contains("asterdex.api_key"), "{err}");

    // Added over the API (a ${VAR} secret), it starts trading without a restart.
    let body = format!(
        r#"{{"id":"p3","asterdex":{{"base_url":"{}","api_key":"${{P3_KEY}}","api_secret":"${{P3_SECRET}}"}},"llm_model":"builtin/ema-rsi","assets":["BTC"],"interval":"1s","leverage":2}}"#,
        venue.base_url()
    );
    let asked = Instant::now();
    let added = ok(&d, "POST", "/accounts", Some(("application/json", body))).await;
    assert_eq!(added["state"], "active", "{added}");
    d.wait_for("/accounts/p3/status", Duration::from_secs(30), |b| {
        b["cycles_completed"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    println!(
        "POST /accounts to the first completed cycle: {} ms",
        asked.elapsed().as_millis()
    );
    let (status, dup) = call(
        &d,
        "POST",
        "/accounts",
        Some((
            "application/json",
            r#"{"id":"p3","llm_model":"builtin/hold","assets":["BTC"],"interval":"1s"}"#.into(),
        )),
    )
    .await;
    assert_eq!(status, 409, "an id in use: {dup}");

    // Every account long, then the kill switch with flatten.
    let ids = ["p1", "p2", "p3"];
    all_long(&d, &venue, &ids).await;
    let asked = Instant::now();
    let killed = ok(
        &d,
        "POST",
        "/kill-switch",
        Some(("application/json", r#"{"flatten": true}"#.into())),
    )
    .await;
    println!(
        "kill switch with flatten, 3 paper accounts: answered flat in {} ms",
        asked.elapsed().as_millis()
    );
    assert_eq!(killed["all_flat"], true, "{killed}");
    for id in ids {
        let report = &killed["accounts"][id];
        assert_eq!(
            report["closed_positions"][0]["symbol"], "BTCUSDT",
            "{killed}"
        );
        assert!(!report["fills"].as_array().unwrap().is_empty(), "{killed}");
    }
    assert_eq!(open_count(&d).await, 0, "every account flat: {killed}");
    tempt_for(&d, &venue, 4).await;
    assert_eq!(
        open_count(&d).await,
        0,
        "no new entry under the kill switch"
    );
    assert!(decisions_refused_for(&d, "p1", "global kill switch").await > 0);
    let (_, status) = d.get("/status").await;
    assert_eq!(
        status["kill_switch"]["enabled"], true,
        "{}",
        status["kill_switch"]
    );

    // Restart: the kill switch holds, and the API-added account is back.
    let (code, _) = d.terminate(Duration::from_secs(15));
    assert!(code.success(), "{code}");
    let mut d = Daemon::start_in(tmp.path(), &yaml, Some(&db.url), ENV);
    let (_, status) = d.get("/status").await;
    assert_eq!(status["kill_switch"]["enabled"], true);
    d.wait_for("/accounts/p3/status", Duration::from_secs(30), |b| {
        b["cycles_completed"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    tempt_for(&d, &venue, 3).await;
    assert_eq!(open_count(&d).await, 0, "no entry after the restart");

    // Lifted: entries again, the API-added account included.
    let lifted = ok(&d, "DELETE", "/kill-switch", None).await;
    assert_eq!(lifted["enabled"], false);
    all_long(&d, &venue, &ids).await;

    // The trail: granted and refused actions, with masked bodies.
    let (_, audit) = d.get("/audit?limit=100").await;
    let items = audit["items"].as_array().unwrap();
    let has = |action: &str, status: u64| {
        items
            .iter()
            .any(|a| a["action"] == action && a["status"].as_u64() == Some(status))
    };
    assert!(has("account.add", 200) && has("account.add", 400) && has("account.add", 409));
    assert!(has("kill_switch.on", 200) && has("kill_switch.off", 200));
    let (_, p3) = d
        .get("/audit?account_id=p3&kind=account.add&limit=10")
        .await;
    let granted = p3["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == 200)
        .cloned()
        .unwrap_or_default();
    assert_eq!(granted["body"]["asterdex"]["api_key"], "${P3_KEY}", "{p3}");
    assert!(
        !audit.to_string().contains("plain-text-venue-key"),
        "masked"
    );
    assert!(!events.of_type("control").is_empty());
    assert!(d
        .log_file("trading.log")
        .contains("\"action\":\"kill_switch.on\""));
    drop(events);
    let (code, _) = d.terminate(Duration::from_secs(15));
    assert!(code.success(), "{code}");
    let logs = d.all_logs();
    assert!(!logs.contains("p3-venue-key-0f9e8d7c") && !logs.contains("plain-text-venue-key"));
}

fn hold_accounts(venue: &FakeVenue, accounts: &[(&str, &str, u32)]) -> String {
    let mut yaml = String::from("accounts:\n");
    for (id, interval, leverage) in accounts {
        yaml.push_str(&format!(
            r#"  - id: {id}
    asterdex: {{ base_url: {base} }}
    llm_model: builtin/hold
    assets: [BTC]
    interval: {interval}
    leverage: {leverage}
"#,
            base = venue.base_url()
        ));
    }
    yaml
}

#[actix_rt::test]
async fn reload_adds_removes_and_changes_accounts_and_a_broken_file_changes_nothing() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let yaml = hold_accounts(&venue, &[("r1", "1s", 2), ("r2", "1s", 2), ("r4", "1s", 2)]);
    let d = Daemon::start(&yaml, Some(&db.url), ENV);
    let events = WsClient::connect(&d, "/ws/trading-events").await;
    for id in ["r1", "r2", "r4"] {
        d.wait_for(
            &format!("/accounts/{id}/status"),
            Duration::from_secs(30),
            |b| b["cycles_completed"].as_u64().unwrap_or(0) >= 1,
        )
        .await;
    }
    let (_, r4) = d.get("/accounts/r4/status").await;
    let r4_started = r4["started_at"].clone();

    // SIGHUP: r1 removed, r2 changed, r3 added, r4 untouched.
    let next = hold_accounts(&venue, &[("r2", "2s", 3), ("r3", "1s", 2), ("r4", "1s", 2)]);
    std::fs::write(d.dir.join("accounts.yaml"), &next).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    d.wait_for("/accounts/r3/status", Duration::from_secs(30), |b| {
        b["cycles_completed"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    d.wait_for("/accounts/r1/status", Duration::from_secs(15), |b| {
        b["state"] == "stopped"
    })
    .await;
    d.wait_for("/accounts/r2", Duration::from_secs(15), |b| {
        b["interval"] == "2s" && b["leverage"] == 3 && b["status"]["state"] == "active"
    })
    .await;
    let (_, r4) = d.get("/accounts/r4/status").await;
    assert_eq!(
        r4["started_at"], r4_started,
        "unchanged accounts are not restarted"
    );
    let (_, audit) = d.get("/audit?kind=config.reload").await;
    let entry = &audit["items"][0];
    assert_eq!(entry["key_name"], "SIGHUP", "{audit}");
    assert_eq!(entry["result"]["added"], serde_json::json!(["r3"]));
    assert_eq!(entry["result"]["removed"], serde_json::json!(["r1"]));
    assert_eq!(entry["result"]["changed"], serde_json::json!(["r2"]));
    assert_eq!(entry["result"]["unchanged"], serde_json::json!(["r4"]));
    assert!(d.log_file("trading.log").contains("accounts reloaded"));

    // A broken file changes nothing; the error names file, account and field.
    let broken = hold_accounts(&venue, &[("r2", "5s", 99), ("r5", "1s", 2)]);
    std::fs::write(d.dir.join("accounts.yaml"), &broken).unwrap();
    let (status, err) = call(&d, "POST", "/config/reload", None).await;
    assert_eq!(status, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("accounts.yaml: account \"r2\": field \"leverage\""),
        "{message}"
    );
    let (status, _) = d.get("/accounts/r5").await;
    assert_eq!(status, 404, "nothing added");
    let (_, r2) = d.get("/accounts/r2").await;
    assert_eq!(r2["interval"], "2s", "nothing changed");
    assert_eq!(state_of(&d, "r3").await, "active");

    // The route applies a good file and answers the diff.
    std::fs::write(d.dir.join("accounts.yaml"), &yaml).unwrap();
    let diff = ok(&d, "POST", "/config/reload", None).await;
    assert_eq!(diff["added"], serde_json::json!(["r1"]), "{diff}");
    assert_eq!(diff["removed"], serde_json::json!(["r3"]), "{diff}");
    d.wait_for("/accounts/r1/status", Duration::from_secs(30), |b| {
        b["state"] == "active"
    })
    .await;
    let reloads = events
        .of_type("control")
        .into_iter()
        .filter(|e| e["data"]["action"] == "config.reload")
        .count();
    assert!(reloads >= 3, "every reload is a control event");
}
