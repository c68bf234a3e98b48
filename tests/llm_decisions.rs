//! LLM accounts end to end: `vibex run` with accounts that ask a loopback fake of an
//! OpenAI-compatible server (which checks what it receives and answers with scripted
//! replies), market data from the fake venue, a real PostgreSQL. Asserts on what a user
//! sees: positions, decisions with their interactions, the diary, WebSocket frames.

mod common;

use common::daemon::{Daemon, WsClient};
use common::fake_llm::{Answer, FakeLlm};
use common::fake_venue::FakeVenue;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use std::time::Duration;

fn dec(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).expect("decimal"),
        other => Decimal::from_str(&other.to_string()).expect("decimal"),
    }
}

/// The daemon's current last price of an asset.
async fn price(d: &Daemon, asset: &str) -> Decimal {
    let md = d
        .wait_for(
            &format!("/market-data?symbol={asset}"),
            Duration::from_secs(20),
            |b| b["items"][0]["snapshot"]["last_price"].is_string(),
        )
        .await;
    dec(&md["items"][0]["snapshot"]["last_price"])
}

fn hold(asset: &str, why: &str) -> Value {
    json!({"asset": asset, "action": "hold", "allocation_usd": 0, "tp_price": null,
           "sl_price": null, "exit_plan": "", "rationale": why})
}

fn decisions(items: Vec<Value>) -> Value {
    json!({ "trade_decisions": items })
}

/// Interactions of an account, oldest first, from `/decisions` (one per cycle).
async fn interactions(d: &Daemon, account: &str) -> Vec<Value> {
    let (_, body) = d
        .get(&format!("/decisions?account_id={account}&limit=1000"))
        .await;
    let mut seen = std::collections::BTreeMap::new();
    for row in body["items"].as_array().cloned().unwrap_or_default() {
        if let Some(id) = row["llm_interaction_id"].as_str() {
            seen.entry(row["ts"].as_str().unwrap_or_default().to_string() + id)
                .or_insert_with(Vec::new)
                .push(row.clone());
        }
    }
    seen.into_values()
        .map(|rows| json!({"decisions": rows}))
        .collect()
}

#[actix_rt::test]
async fn a_grok_account_trades_paper_through_the_model_end_to_end() {
    let venue = FakeVenue::start();
    let llm = FakeLlm::start();
    let key = "sk-or-v1-grok-0123456789abcdef";
    llm.expect_key("x-ai/grok-4", key);
    llm.set_cost("x-ai/grok-4", Some(0.0042));
    llm.set_default(
        "x-ai/grok-4",
        Answer::Decisions(decisions(vec![
            hold("BTC", "waiting"),
            hold("ETH", "waiting"),
        ])),
    );
    let db = common::pg::test_db();
    let yaml = format!(
        r#"
accounts:
  - id: grok
    asterdex: {{ base_url: {venue} }}
    openrouter:
      base_url: {llm}
      api_key: ${{GROK_KEY}}
    llm_model: x-ai/grok-4
    assets: [BTC, ETH]
    interval: 2s
    leverage: 2
    risk: {{ max_position_usd: 3000 }}
"#,
        venue = venue.base_url(),
        llm = llm.base_url()
    );
    let mut d = Daemon::start(&yaml, Some(&db.url), &[("GROK_KEY", key)]);
    let events = WsClient::connect(&d, "/ws/trading-events?account_id=grok").await;

    // The model decides to buy BTC with TP/SL around the current price.
    let p = price(&d, "BTC").await;
    let tp = (p * Decimal::from_str("1.03").unwrap()).round_dp(1);
    let sl = (p * Decimal::from_str("0.97").unwrap()).round_dp(1);
    llm.push(
        "x-ai/grok-4",
        Answer::Decisions(decisions(vec![
            json!({"asset": "BTC", "action": "buy", "allocation_usd": 1500,
                   "tp_price": tp.to_string().parse::<f64>().unwrap(),
                   "sl_price": sl.to_string().parse::<f64>().unwrap(),
                   "exit_plan": "close if the 4h EMA20 breaks", "rationale": "momentum up"}),
            hold("ETH", "no edge"),
        ])),
    );
    let positions = d
        .wait_for(
            "/positions?account_id=grok&status=open",
            Duration::from_secs(30),
            |b| b["count"] == 1,
        )
        .await;
    let pos = &positions["items"][0];
    assert_eq!(pos["symbol"], "BTCUSDT");
    assert_eq!(pos["side"], "long");
    assert_eq!(dec(&pos["tp_price"]), tp);
    assert_eq!(dec(&pos["sl_price"]), sl);
    assert_eq!(pos["exit_plan"], "close if the 4h EMA20 breaks");
    let notional = dec(&pos["quantity"]) * dec(&pos["entry_price"]);
    assert!(notional <= Decimal::from(1501), "{notional}");

    // What the model received: its model id, its key, the schema for its assets, and
    // the snapshot in the prompt.
    let reqs = llm.requests_for("x-ai/grok-4");
    assert!(!reqs.is_empty());
    let r = &reqs[0];
    assert_eq!(r.authorization(), Some(format!("Bearer {key}").as_str()));
    assert_eq!(r.body["model"], "x-ai/grok-4");
    assert_eq!(r.body["response_format"]["type"], "json_schema");
    assert_eq!(r.body["response_format"]["json_schema"]["strict"], true);
    let enum_ = &r.body["response_format"]["json_schema"]["schema"]["properties"]
        ["trade_decisions"]["items"]["properties"]["asset"]["enum"];
    assert_eq!(enum_, &json!(["BTC", "ETH"]));
    let prompt = r.body["messages"].to_string();
    for needle in [
        "BTC", "ETH", "funding", "OI ", "EMA20", "RSI14", "4h:", "leverage",
    ] {
        assert!(
            prompt.to_lowercase().contains(&needle.to_lowercase()),
            "prompt lacks {needle}"
        );
    }

    // The audit: the decision with its interaction, then the full interaction.
    let (_, list) = d
        .get("/decisions?account_id=grok&asset=BTC&action=buy")
        .await;
    let row = &list["items"][0];
    assert_eq!(row["outcome"], "approved");
    assert_eq!(row["rationale"], "momentum up");
    assert_eq!(row["source"], "x-ai/grok-4");
    let summary = &row["interaction"];
    assert_eq!(summary["model"], "x-ai/grok-4");
    assert_eq!(summary["http_status"], 200);
    assert!(summary["prompt_tokens"].as_i64().unwrap() > 100);
    assert_eq!(
        dec(&summary["cost_usd"]),
        Decimal::from_str("0.0042").unwrap()
    );
    let id = row["id"].as_str().unwrap();
    let (status, full) = d.get(&format!("/decisions/{id}")).await;
    assert_eq!(status, 200);
    let interaction = &full["interaction"];
    assert!(interaction["request"]["body"]["messages"].is_array());
    assert!(interaction["response_body"]
        .as_str()
        .unwrap()
        .contains("momentum up"));
    assert_eq!(interaction["parsed"]["decisions"][0]["valid"], true);
    assert!(interaction["outcome"]["timing"]["overhead_ms"].is_number());
    let (status, _) = d.get("/decisions/not-a-uuid").await;
    assert_eq!(status, 400);

    // The diary, as JSON and as a JSONL download.
    let (_, diary) = d.get("/diary?account_id=grok").await;
    let entry = diary["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "buy")
        .expect("diary entry of the buy")
        .clone();
    for key in [
        "ts",
        "asset",
        "action",
        "allocation_usd",
        "amount",
        "entry_price",
        "tp_price",
        "tp_oid",
        "sl_price",
        "sl_oid",
        "exit_plan",
        "rationale",
        "order_result",
        "opened_at",
        "filled",
    ] {
        assert!(entry.get(key).is_some(), "diary entry lacks {key}");
    }
    assert_eq!(entry["filled"], true);
    let jsonl = d.get_text("/diary?account_id=grok&format=jsonl").await;
    assert!(jsonl.lines().count() >= 1);
    for line in jsonl.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["account_id"], "grok");
    }
    let file = std::fs::read_to_string(d.dir.join("data/diary/grok.jsonl")).unwrap();
    assert!(file.contains("momentum up"));

    // WebSocket: the decision event carries asset, action, allocation and rationale.
    let frames = events.of_type("decision");
    let buy = frames
        .iter()
        .find(|f| f["data"]["action"] == "buy")
        .expect("buy decision pushed");
    assert_eq!(buy["data"]["asset"], "BTC");
    assert_eq!(buy["data"]["rationale"], "momentum up");
    assert_eq!(dec(&buy["data"]["allocation_usd"]), Decimal::from(1500));

    let (_, status) = d.get("/accounts/grok/status").await;
    assert_eq!(status["decision"]["source"], "x-ai/grok-4");
    assert!(status["decision"]["model_calls"].as_u64().unwrap() >= 1);
    let _ = d.terminate(Duration::from_secs(10));
    assert!(
        !d.all_logs().contains(key),
        "the model key never reaches a log"
    );
}

#[actix_rt::test]
async fn every_bad_reply_ends_in_a_documented_hold_and_cycling_goes_on() {
    let venue = FakeVenue::start();
    let llm = FakeLlm::start();
    let m = "test/chaos";
    let db = common::pg::test_db();
    let yaml = format!(
        r#"
accounts:
  - id: chaos
    asterdex: {{ base_url: {venue} }}
    openrouter: {{ base_url: {llm}, api_key: sk-chaos-0123456789 }}
    llm_model: {m}
    assets: [BTC]
    interval: 1s
    llm: {{ timeout: 3s, circuit_breaker: {{ failures: 10 }} }}
"#,
        venue = venue.base_url(),
        llm = llm.base_url()
    );
    llm.set_default(
        m,
        Answer::Decisions(decisions(vec![hold("BTC", "default")])),
    );
    let d = Daemon::start(&yaml, Some(&db.url), &[]);
    let p = price(&d, "BTC").await;
    let f = |x: Decimal| x.round_dp(1).to_string().parse::<f64>().unwrap();
    let valid = |why: &str| decisions(vec![hold("BTC", why)]);
    let script = vec![
        Answer::Content(format!("```json\n{}\n```", valid("fenced"))),
        Answer::Content(format!(
            "Here is my decision: {} Good luck!",
            valid("surrounded")
        )),
        Answer::Decisions(decisions(vec![json!({"asset": "BTC", "action": "yolo",
            "allocation_usd": 10, "tp_price": null, "sl_price": null, "exit_plan": "",
            "rationale": "wrong enum"})])),
        Answer::Decisions(decisions(vec![json!({"asset": "BTC", "action": "buy",
            "allocation_usd": 1_000_000, "tp_price": f(p * Decimal::from_str("1.05").unwrap()),
            "sl_price": f(p * Decimal::from_str("0.95").unwrap()), "exit_plan": "x",
            "rationale": "all in"})])),
        Answer::Decisions(decisions(vec![json!({"asset": "BTC", "action": "buy",
            "allocation_usd": 100, "tp_price": f(p * Decimal::from_str("1.05").unwrap()),
            "sl_price": f(p * Decimal::from_str("1.10").unwrap()), "exit_plan": "x",
            "rationale": "stop above"})])),
        Answer::NullContent {
            finish_reason: "length".into(),
        },
        Answer::Status {
            status: 429,
            retry_after: Some(1),
            body: None,
        },
        Answer::Decisions(valid("after 429")),
        Answer::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
        Answer::Decisions(valid("after 500")),
        Answer::Slow {
            delay: Duration::from_secs(6),
            then: Box::new(Answer::Decisions(valid("too late"))),
        },
        Answer::Garbage(vec![0xff, 0xfe, b'{', 0x00, b'x']),
        // PostgreSQL cannot store NUL: the row is kept with U+FFFD in its place.
        Answer::Content(r#"{"trade_decisions":[{"asset":"BTC","action":"hold","allocation_usd":0,"tp_price":null,"sl_price":null,"exit_plan":"","rationale":"nul\u0000byte"}]}"#.into()),
    ];
    // The fenced answer etc. must be seen in this order: queue them all at once.
    for a in script {
        llm.push(m, a);
    }
    // Wait until the queue is consumed (its last answer, the NUL one, is recorded) and a
    // default answer came after it. (A default answer may also come before the script,
    // from the cycles that ran while it was being queued.)
    d.wait_for(
        "/decisions?account_id=chaos&limit=1000",
        Duration::from_secs(90),
        |b| {
            let rows = b["items"].as_array().cloned().unwrap_or_default(); // newest first
            let position = |pred: &dyn Fn(&str) -> bool| {
                rows.iter()
                    .position(|r| pred(r["rationale"].as_str().unwrap_or_default()))
            };
            let last_scripted = position(&|r| r.contains("nul\u{FFFD}byte"));
            let newest_default = position(&|r| r == "default");
            matches!((newest_default, last_scripted), (Some(d), Some(s)) if d < s)
        },
    )
    .await;
    let (_, body) = d.get("/decisions?account_id=chaos&limit=1000").await;
    let mut rows = body["items"].as_array().unwrap().clone();
    rows.reverse(); // oldest first
    let reasons: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} | {} | {} | {} | {}",
                r["outcome"],
                r["action"],
                r["rationale"].as_str().unwrap_or_default(),
                r["refusal_reason"].as_str().unwrap_or_default(),
                r["risk_note"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let find = |pred: &dyn Fn(&str) -> bool| reasons.iter().any(|r| pred(r));
    assert!(
        find(&|r| r.contains("fenced") && r.starts_with("\"hold\"")),
        "{reasons:#?}"
    );
    assert!(find(
        &|r| r.contains("surrounded") && r.starts_with("\"hold\"")
    ));
    assert!(
        find(&|r| r.starts_with("\"invalid\"") && r.contains("yolo")),
        "{reasons:#?}"
    );
    assert!(
        find(&|r| r.starts_with("\"approved\"") && r.contains("all in") && r.contains("clamped")),
        "allocation above capital is clamped: {reasons:#?}"
    );
    assert!(
        find(&|r| r.contains("sl_price")
            && (r.starts_with("\"invalid\"") || r.starts_with("\"refused\""))),
        "SL on the wrong side: {reasons:#?}"
    );
    assert!(
        find(&|r| r.starts_with("\"invalid\"") && r.contains("length")),
        "{reasons:#?}"
    );
    assert!(
        find(&|r| r.contains("after 429")),
        "429 retried: {reasons:#?}"
    );
    assert!(
        find(&|r| r.contains("after 500")),
        "500 retried: {reasons:#?}"
    );
    assert!(
        find(&|r| r.starts_with("\"invalid\"")
            && r.contains("no complete answer from the model within 3.0 s")),
        "slow reply: {reasons:#?}"
    );
    assert!(!find(&|r| r.contains("too late")));
    assert!(
        find(&|r| r.contains("nul\u{FFFD}byte")),
        "NUL kept as U+FFFD: {reasons:#?}"
    );
    assert!(
        find(&|r| r.starts_with("\"invalid\"") && r.contains("the body is not JSON")),
        "garbage: {reasons:#?}"
    );
    // Cycling went on all along.
    let (_, status) = d.get("/accounts/chaos/status").await;
    assert!(
        status["cycles_completed"].as_u64().unwrap() >= 10,
        "{status}"
    );
    assert_eq!(status["restarts"], 0);
    // Every recorded interaction carries exactly one decision: one per asset (BTC).
    let recorded = interactions(&d, "chaos").await;
    assert!(recorded.len() >= 10, "{}", recorded.len());
    for i in &recorded {
        assert_eq!(i["decisions"].as_array().map(Vec::len), Some(1), "{i}");
    }
}

#[actix_rt::test]
async fn breaker_and_budget_make_an_account_hold_without_calling() {
    let venue = FakeVenue::start();
    let llm = FakeLlm::start();
    let db = common::pg::test_db();
    llm.set_default(
        "test/down",
        Answer::Status {
            status: 503,
            retry_after: None,
            body: Some(r#"{"error":{"code":503,"message":"provider down"}}"#.into()),
        },
    );
    llm.set_default(
        "test/pricey",
        Answer::Decisions(decisions(vec![hold("ETH", "ok")])),
    );
    llm.set_cost("test/pricey", Some(0.006));
    let yaml = format!(
        r#"
accounts:
  - id: down
    asterdex: {{ base_url: {venue} }}
    openrouter: {{ base_url: {llm} }}
    llm_model: test/down
    assets: [BTC]
    interval: 1s
    llm: {{ timeout: 2s, circuit_breaker: {{ failures: 2, cooldown: 4s }} }}
  - id: pricey
    asterdex: {{ base_url: {venue} }}
    openrouter: {{ base_url: {llm} }}
    llm_model: test/pricey
    assets: [ETH]
    interval: 1s
    llm: {{ max_cost_usd_per_day: 0.01 }}
"#,
        venue = venue.base_url(),
        llm = llm.base_url()
    );
    let d = Daemon::start(&yaml, Some(&db.url), &[]);
    let down = d
        .wait_for("/accounts/down/status", Duration::from_secs(40), |b| {
            b["decision"]["holding_reason"]
                .as_str()
                .map(|r| r.contains("circuit breaker open"))
                .unwrap_or(false)
        })
        .await;
    assert_eq!(down["decision"]["breaker"]["state"], "open");
    let calls_when_open = llm.requests_for("test/down").len();
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        llm.requests_for("test/down").len(),
        calls_when_open,
        "no call while the breaker is open"
    );
    // After the cool-down, one trial call goes out (and fails again).
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    assert!(
        llm.requests_for("test/down").len() > calls_when_open,
        "half-open trial"
    );
    let (_, rows) = d.get("/decisions?account_id=down&limit=5").await;
    for r in rows["items"].as_array().unwrap() {
        assert_eq!(r["action"], "hold");
    }

    let pricey = d
        .wait_for("/accounts/pricey/status", Duration::from_secs(30), |b| {
            b["decision"]["holding_reason"]
                .as_str()
                .map(|r| r.contains("daily model budget spent"))
                .unwrap_or(false)
        })
        .await;
    assert_eq!(pricey["state"], "active");
    let spent = dec(&pricey["decision"]["cost_today_usd"]);
    assert!(spent >= Decimal::from_str("0.01").unwrap(), "{spent}");
    let calls = llm.requests_for("test/pricey").len();
    assert_eq!(calls, 2, "0.006 + 0.006 reaches the 0.01 budget");
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(llm.requests_for("test/pricey").len(), calls);
}

#[actix_rt::test]
async fn two_llm_accounts_never_see_each_others_requests_or_rows() {
    let venue = FakeVenue::start();
    let llm = FakeLlm::start();
    let db = common::pg::test_db();
    llm.expect_key("vendor/model-a", "key-a-0123456789");
    llm.expect_key("vendor/model-b", "key-b-9876543210");
    llm.set_default(
        "vendor/model-a",
        Answer::Decisions(decisions(vec![hold("BTC", "a")])),
    );
    llm.set_default(
        "vendor/model-b",
        Answer::Decisions(decisions(vec![hold("SOL", "b")])),
    );
    let yaml = format!(
        r#"
accounts:
  - id: alice
    asterdex: {{ base_url: {venue} }}
    openrouter: {{ base_url: {llm}, api_key: key-a-0123456789 }}
    llm_model: vendor/model-a
    assets: [BTC]
    interval: 1s
  - id: bob
    asterdex: {{ base_url: {venue} }}
    openrouter: {{ base_url: {llm}, api_key: key-b-9876543210 }}
    llm_model: vendor/model-b
    assets: [SOL]
    interval: 1s
"#,
        venue = venue.base_url(),
        llm = llm.base_url()
    );
    let d = Daemon::start(&yaml, Some(&db.url), &[]);
    for id in ["alice", "bob"] {
        d.wait_for(
            &format!("/accounts/{id}/status"),
            Duration::from_secs(30),
            |b| b["cycles_completed"].as_u64().unwrap_or(0) >= 3,
        )
        .await;
    }
    for (model, key, asset, other) in [
        ("vendor/model-a", "key-a-0123456789", "BTC", "SOL"),
        ("vendor/model-b", "key-b-9876543210", "SOL", "BTC"),
    ] {
        let reqs = llm.requests_for(model);
        assert!(reqs.len() >= 3);
        for r in reqs {
            assert_eq!(r.authorization(), Some(format!("Bearer {key}").as_str()));
            let schema = r.body["response_format"]["json_schema"]["schema"].to_string();
            assert!(schema.contains(asset) && !schema.contains(other));
            let prompt = r.body["messages"].to_string();
            assert!(
                !prompt.contains(&format!("{other}USDT")),
                "{model} saw {other}"
            );
        }
    }
    for (id, model, rationale) in [
        ("alice", "vendor/model-a", "a"),
        ("bob", "vendor/model-b", "b"),
    ] {
        let (_, rows) = d.get(&format!("/decisions?account_id={id}&limit=50")).await;
        for r in rows["items"].as_array().unwrap() {
            assert_eq!(r["source"], model);
            assert_eq!(r["rationale"], rationale);
            assert_eq!(r["interaction"]["model"], model);
        }
    }
}
