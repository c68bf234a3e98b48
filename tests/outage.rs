//! Journeys of a PostgreSQL outage under trading accounts (the real daemon, paper
//! accounts on the fake venue, a builtin policy and a model account on the fake LLM,
//! a private cluster of this file's own that the tests stop and start):
//! - PostgreSQL stopped for 60 s, then started: the accounts keep completing cycles
//!   (their rows spooled), new entries are refused once the outage outlasts
//!   `storage.halt_entries_after`, and in the end every row of every cycle announced
//!   as completed is in PostgreSQL exactly once;
//! - meanwhile the API's lists answer `503 database unavailable` (JSON, within a few
//!   seconds, short pages and long ones alike) and answer again once PostgreSQL is back;
//! - the same with the daemon killed (SIGKILL) in the middle of the outage, then
//!   restarted once PostgreSQL is back: the spool is replayed before trading resumes
//!   and nothing that was announced is lost or doubled.

mod common;

use common::daemon::{dec, Daemon, WsClient};
use common::fake_llm::{Answer, FakeLlm};
use common::fake_venue::FakeVenue;
use common::pg::StoppableCluster;
use diesel::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const MODEL: &str = "x-ai/grok-4";

/// The API's short page (read on the HTTP worker's own connection) and long page (read
/// on the blocking pool) of orders and fills: each answers `want`, as JSON, within 8 s.
async fn lists_answer(d: &Daemon, want: u16) {
    for path in [
        "/orders?limit=10",
        "/trades?limit=100",
        "/orders?limit=1000",
        "/trades?limit=500",
    ] {
        let asked = Instant::now();
        let (status, body) = d.get(path).await;
        let took = asked.elapsed();
        assert_eq!(status, want, "GET {path}: {body}");
        assert!(took < Duration::from_secs(8), "GET {path} took {took:?}");
        if want == 503 {
            assert_eq!(body["error"]["code"], "unavailable", "GET {path}: {body}");
            assert_eq!(
                body["error"]["message"], "database unavailable",
                "GET {path}: {body}"
            );
            assert!(
                !body
                    .to_string()
                    .to_lowercase()
                    .contains("connection refused"),
                "no database error text reaches a client: {body}"
            );
        } else {
            assert!(body["items"].is_array(), "GET {path}: {body}");
        }
    }
}

/// Every `cycle_completed` frame seen so far.
fn completed(ws: &WsClient) -> Vec<Value> {
    ws.of_type("cycle_completed")
}

/// Waits until at least `n` cycles have been announced as completed.
async fn wait_completed(ws: &WsClient, n: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let seen = completed(ws).len();
        if seen >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}: {seen} of {n} cycles announced"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `/status` says the store is in `mode` (and, for `online`, holds no
/// spooled rows).
async fn wait_store(d: &Daemon, mode: &str, within: Duration) -> Value {
    d.wait_for("/status", within, |b| {
        b["storage"]["mode"] == mode
            && (mode != "online" || b["storage"]["spooled_rows_pending"] == 0)
    })
    .await["storage"]
        .clone()
}

#[derive(QueryableByName)]
struct PerCycle {
    #[diesel(sql_type = diesel::sql_types::Text)]
    cycle: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn per_cycle(conn: &mut PgConnection, table: &str) -> HashMap<String, i64> {
    diesel::sql_query(format!(
        "SELECT cycle_id::text AS cycle, count(*) AS n FROM {table} \
         WHERE cycle_id IS NOT NULL GROUP BY cycle_id"
    ))
    .load::<PerCycle>(conn)
    .unwrap_or_else(|e| panic!("count {table} per cycle: {e}"))
    .into_iter()
    .map(|r| (r.cycle, r.n))
    .collect()
}

/// Every announced cycle has its interaction, one decision per asset and its equity
/// row; no cycle at all has more than that. Returns the number of cycles checked.
fn every_announced_cycle_is_stored_once(
    url: &str,
    announced: &[Value],
    assets: &HashMap<&str, i64>,
) -> usize {
    let mut conn = PgConnection::establish(url).expect("connect to the test cluster");
    let interactions = per_cycle(&mut conn, "llm_interactions");
    let decisions = per_cycle(&mut conn, "decisions");
    let equity = per_cycle(&mut conn, "equity_snapshots");
    let mut missing = Vec::new();
    for e in announced {
        let cycle = e["cycle_id"].as_str().expect("cycle id").to_string();
        let account = e["account_id"].as_str().expect("account id");
        let want = assets[account];
        let found = (
            interactions.get(&cycle).copied().unwrap_or(0),
            decisions.get(&cycle).copied().unwrap_or(0),
            equity.get(&cycle).copied().unwrap_or(0),
        );
        if found != (1, want, 1) {
            missing.push(format!(
                "{account} {cycle}: interactions/decisions/equity {found:?}, want (1, {want}, 1)"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} announced cycles are not stored exactly once:\n{}",
        missing.len(),
        announced.len(),
        missing.join("\n")
    );
    let doubled: Vec<_> = interactions
        .iter()
        .chain(equity.iter())
        .filter(|(_, n)| **n > 1)
        .collect();
    assert!(doubled.is_empty(), "cycles stored twice: {doubled:?}");
    let too_many: Vec<_> = decisions.iter().filter(|(_, n)| **n > 2).collect();
    assert!(too_many.is_empty(), "decisions stored twice: {too_many:?}");
    announced.len()
}

/// Rows and seconds of the last `replay finished` line of app.log (for the record).
fn last_replay(app_log: &str) -> (u64, f64) {
    app_log
        .lines()
        .rev()
        .filter(|l| l.contains("replay finished"))
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["rows"].as_u64().unwrap_or(0),
                v["seconds"].as_f64().unwrap_or(0.0),
            )
        })
        .unwrap_or((0, 0.0))
}

fn no_dead_letters(dir: &Path) {
    let rejected = dir.join("data/spool/rejected.jsonl");
    assert!(
        !rejected.exists(),
        "writes were refused: {}",
        std::fs::read_to_string(&rejected).unwrap_or_default()
    );
}

async fn last_price(d: &Daemon, asset: &str) -> Decimal {
    let md = d
        .wait_for(
            &format!("/market-data?symbol={asset}"),
            Duration::from_secs(20),
            |b| b["items"][0]["snapshot"]["last_price"].is_string(),
        )
        .await;
    dec(&md["items"][0]["snapshot"]["last_price"])
}

fn buy_btc(price: Decimal) -> Answer {
    let tp = (price * Decimal::new(103, 2)).round_dp(1);
    let sl = (price * Decimal::new(97, 2)).round_dp(1);
    Answer::Decisions(json!({"trade_decisions": [
        {"asset": "BTC", "action": "buy", "allocation_usd": 500,
         "tp_price": tp.to_string().parse::<f64>().unwrap(),
         "sl_price": sl.to_string().parse::<f64>().unwrap(),
         "exit_plan": "out below the 4h EMA20", "rationale": "momentum"},
        {"asset": "ETH", "action": "hold", "allocation_usd": 0, "tp_price": null,
         "sl_price": null, "exit_plan": "", "rationale": "no edge"},
    ]}))
}

#[actix_rt::test]
async fn a_minute_without_postgres_loses_no_announced_cycle_and_halts_new_entries() {
    let venue = FakeVenue::start();
    let llm = FakeLlm::start();
    llm.set_default(MODEL, Answer::hold(&["BTC", "ETH"]));
    let mut cluster = StoppableCluster::new();
    let url = cluster.create_db("outage");
    let yaml = format!(
        r#"
storage:
  halt_entries_after: 20s
accounts:
  - id: trend
    asterdex: {{ base_url: {venue} }}
    llm_model: builtin/ema-rsi
    assets: [BTC, ETH]
    interval: 1s
  - id: idle
    asterdex: {{ base_url: {venue} }}
    llm_model: builtin/hold
    assets: [ETH]
    interval: 1s
  - id: grok
    asterdex: {{ base_url: {venue} }}
    openrouter: {{ base_url: {llm}, api_key: sk-test }}
    llm_model: {MODEL}
    assets: [BTC, ETH]
    interval: 1s
"#,
        venue = venue.base_url(),
        llm = llm.base_url()
    );
    let mut d = Daemon::start(&yaml, Some(&url), &[]);
    let ws = WsClient::connect(&d, "/ws/trading-events").await;
    wait_completed(&ws, 6, Duration::from_secs(30), "cycles before the outage").await;
    lists_answer(&d, 200).await;

    cluster.stop();
    let down = Instant::now();
    let storage = wait_store(&d, "spooling", Duration::from_secs(20)).await;
    assert!(storage["outage_since"].is_string(), "{storage}");
    lists_answer(&d, 503).await;
    // Trading goes on: cycles complete, their rows durable in the spool.
    let before = completed(&ws).len();
    wait_completed(
        &ws,
        before + 15,
        Duration::from_secs(30),
        "cycles completed during the outage",
    )
    .await;

    // Past storage.halt_entries_after, a new entry is refused (closing would not be).
    let halt = Duration::from_secs(21);
    actix_rt::time::sleep(halt.saturating_sub(down.elapsed())).await;
    llm.set_default(MODEL, buy_btc(last_price(&d, "BTC").await));
    let deadline = Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        let refused = ws.of_type("decision").into_iter().find(|e| {
            e["account_id"] == "grok"
                && e["data"]["action"] == "buy"
                && e["data"]["outcome"] == "refused"
        });
        if let Some(e) = refused {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no refused entry announced during the outage"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = refusal["data"]["refusal_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("database has been unreachable"),
        "refused for the outage: {reason}"
    );
    llm.set_default(MODEL, Answer::hold(&["BTC", "ETH"]));

    actix_rt::time::sleep(Duration::from_secs(60).saturating_sub(down.elapsed())).await;
    let during = completed(&ws).len() - before;
    cluster.start();
    wait_store(&d, "online", Duration::from_secs(60)).await;
    lists_answer(&d, 200).await;
    let back = completed(&ws).len();
    wait_completed(
        &ws,
        back + 6,
        Duration::from_secs(30),
        "cycles after the outage",
    )
    .await;
    let (status, _) = d.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");

    let announced = completed(&ws);
    let assets = HashMap::from([("trend", 2), ("idle", 1), ("grok", 2)]);
    let checked = every_announced_cycle_is_stored_once(&url, &announced, &assets);
    assert!(during >= 40, "cycles announced during the outage: {during}");
    let (rows, seconds) = last_replay(&d.log_file("app.log"));
    println!(
        "outage journey: {checked} cycles announced, {during} of them during the 60 s \
         outage; {rows} spooled rows replayed in {seconds:.2} s"
    );
    // The refused entry is in the database with its reason.
    let mut conn = PgConnection::establish(&url).unwrap();
    let refused: i64 = vibex::db::schema::decisions::table
        .filter(vibex::db::schema::decisions::account_id.eq("grok"))
        .filter(vibex::db::schema::decisions::outcome.eq("refused"))
        .filter(
            vibex::db::schema::decisions::refusal_reason.like("%database has been unreachable%"),
        )
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert!(refused >= 1);
    no_dead_letters(&d.dir);
    let app = d.log_file("app.log");
    assert!(app.contains("replay finished"), "the replay is logged");
    assert!(app.contains("shutdown: queued writes flushed"));
    assert!(d
        .log_file("errors.log")
        .contains("PostgreSQL is unreachable: writes go to the spool"));
    assert!(!d.dir.join("data/spool/batches.spool").exists());
}

#[actix_rt::test]
async fn a_daemon_killed_during_an_outage_restarts_with_everything_it_announced() {
    let venue = FakeVenue::start();
    let mut cluster = StoppableCluster::new();
    let url = cluster.create_db("crash");
    let tmp = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
accounts:
  - id: trend
    asterdex: {{ base_url: {venue} }}
    llm_model: builtin/ema-rsi
    assets: [BTC, ETH]
    interval: 1s
  - id: idle
    asterdex: {{ base_url: {venue} }}
    llm_model: builtin/hold
    assets: [BTC]
    interval: 1s
"#,
        venue = venue.base_url()
    );
    let mut d = Daemon::start_in(tmp.path(), &yaml, Some(&url), &[]);
    let ws = WsClient::connect(&d, "/ws/trading-events").await;
    wait_completed(&ws, 4, Duration::from_secs(30), "cycles before the outage").await;

    cluster.stop();
    let down = Instant::now();
    wait_store(&d, "spooling", Duration::from_secs(20)).await;
    let before = completed(&ws).len();
    wait_completed(
        &ws,
        before + 20,
        Duration::from_secs(30),
        "cycles completed during the outage",
    )
    .await;
    // A crash: nothing flushed, nothing said.
    d.kill_hard();
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    let announced = completed(&ws);
    let during = announced.len() - before;
    let spool = tmp.path().join("data/spool/batches.spool");
    assert!(spool.exists(), "the spool outlives the process");

    actix_rt::time::sleep(Duration::from_secs(60).saturating_sub(down.elapsed())).await;
    cluster.start();
    let mut d = Daemon::start_in(tmp.path(), &yaml, Some(&url), &[]);
    // Healthy means started: the spool was replayed before any account started.
    let app = d.log_file("app.log");
    let replaying = app
        .rfind("replaying the spool of the previous run before any account starts")
        .expect("the start-up replay is logged");
    let replayed = app.rfind("replay finished").expect("the replay finished");
    let listening = app.rfind("\"listening\"").expect("the API listens");
    assert!(
        replaying < replayed && replayed < listening,
        "the spool is replayed before the accounts and the API start"
    );
    let storage = wait_store(&d, "online", Duration::from_secs(10)).await;
    assert_eq!(storage["spooled_rows_pending"], 0);
    assert!(!spool.exists(), "replayed and deleted");
    let (status, _) = d.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");

    let assets = HashMap::from([("trend", 2), ("idle", 1)]);
    let checked = every_announced_cycle_is_stored_once(&url, &announced, &assets);
    assert!(during >= 20, "{during}");
    let (rows, seconds) = last_replay(&app);
    println!(
        "crash journey: {checked} cycles announced before the SIGKILL, {during} of them \
         during the outage; {rows} spooled rows replayed at restart in {seconds:.2} s"
    );
    no_dead_letters(tmp.path());
}
