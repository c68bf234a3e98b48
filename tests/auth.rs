//! The gate, as a client sees it, against a real `vibex run`, a real PostgreSQL and real
//! sockets: `vibex keys new` makes an entry the daemon accepts; every route and every
//! WebSocket channel refuses a missing or wrong key with the same 401 and admits both
//! header forms (and `?api_key=` on upgrades); a key scoped to `alpha` never sees `beta`
//! (paths 404; lists, aggregates and streams carry none of it, while `beta` has rows and
//! events an unscoped key does see); CORS preflights are answered and a foreign Origin
//! cannot open a WebSocket; bodies above 64 KiB are 413; 429s come from both buckets
//! with `Retry-After`, and one noisy key does not slow another; a daemon without keys
//! asked to listen on 0.0.0.0 serves loopback only, as documented; and no key ever
//! appears in a log file or a response.

mod common;

use actix_web::http::Method;
use common::daemon::{tail, Daemon};
use common::fake_venue::FakeVenue;
use rust_decimal_macros::dec;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use vibex::db::models::*;
use vibex::db::queries::{self, ExecutionBatch};

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The `{"error": {"code"}}` of a refusal (and that it is one).
    fn error_code(&self) -> String {
        let v = self.json();
        assert!(
            v["error"]["message"].is_string(),
            "a refusal carries a message: {v}"
        );
        v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not a JSON error: {v}"))
            .to_string()
    }
}

/// Every body a test received, to check afterwards that no key is in any of them.
type Seen = Arc<Mutex<Vec<String>>>;

async fn send(
    d: &Daemon,
    seen: &Seen,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .finish();
    let mut req = client.request(method.clone(), format!("{}{path}", d.base));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let sent = match body {
        Some(b) => req.send_body(b).await,
        None => req.send().await,
    };
    let mut res = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let bytes = res
        .body()
        .limit(64 << 20)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: body: {e}"));
    let body = String::from_utf8_lossy(&bytes).to_string();
    seen.lock().unwrap().push(body.clone());
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body,
    }
}

async fn get(d: &Daemon, seen: &Seen, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(d, seen, Method::GET, path, headers, None).await
}

/// A WebSocket client that keeps every text frame, and the server's close reason.
struct Stream {
    frames: Arc<Mutex<Vec<serde_json::Value>>>,
    closed: Arc<Mutex<Option<String>>>,
    _task: actix_rt::task::JoinHandle<()>,
}

impl Stream {
    /// The reason of the server's close frame, once it sent one.
    fn close_reason(&self) -> Option<String> {
        self.closed.lock().unwrap().clone()
    }

    fn frames(&self) -> Vec<serde_json::Value> {
        self.frames.lock().unwrap().clone()
    }

    fn accounts(&self) -> BTreeSet<String> {
        self.frames()
            .iter()
            .filter_map(|f| f["account_id"].as_str().map(str::to_string))
            .collect()
    }
}

/// Opens `path` as a WebSocket with `headers`; the HTTP status of a refused upgrade.
async fn ws(d: &Daemon, path: &str, headers: &[(&str, &str)]) -> Result<Stream, u16> {
    use futures_util::{SinkExt, StreamExt};
    let url = format!("{}{path}", d.base.replace("http://", "ws://"));
    let mut req = awc::Client::new().ws(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (_, mut conn) = match req.connect().await {
        Ok(ok) => ok,
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            return Err(status.as_u16())
        }
        Err(e) => panic!("ws {path}: {e}"),
    };
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = frames.clone();
    let closed = Arc::new(Mutex::new(None));
    let close_sink = closed.clone();
    let task = actix_rt::spawn(async move {
        while let Some(Ok(frame)) = conn.next().await {
            match frame {
                awc::ws::Frame::Text(bytes) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&bytes).expect("every frame is JSON");
                    sink.lock().unwrap().push(v);
                }
                awc::ws::Frame::Ping(p) => {
                    let _ = conn.send(awc::ws::Message::Pong(p)).await;
                }
                awc::ws::Frame::Close(reason) => {
                    let text = reason
                        .and_then(|r| r.description)
                        .unwrap_or_else(|| "(no reason)".into());
                    *close_sink.lock().unwrap() = Some(text);
                    break;
                }
                _ => {}
            }
        }
    });
    Ok(Stream {
        frames,
        closed,
        _task: task,
    })
}

/// Waits until `done` holds for `stream`, or fails saying what it waited for.
async fn wait_frames<F: Fn(&Stream) -> bool>(stream: &Stream, what: &str, done: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(stream) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; frames: {:?}",
            stream.frames()
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `vibex keys new`: the key, and the entry after it.
fn keys_new(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vibex"))
        .args(["keys", "new"])
        .args(args)
        .output()
        .expect("run vibex keys new");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "keys new {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (key, entry) = stdout.split_once('\n').expect("the key, then the entry");
    (key.to_string(), entry.to_string())
}

fn sha256_hex(key: &str) -> String {
    hex::encode(vibex::api::auth::key_digest(key))
}

/// Two paper accounts on the fake venue, and `keys_yaml` under `api:`.
fn accounts_yaml(venue: &str, api_yaml: &str) -> String {
    format!(
        "api:\n{api_yaml}accounts:\n  - id: alpha\n    asterdex: {{ base_url: {venue} }}\n    \
         llm_model: builtin/hold\n    assets: [BTC]\n    interval: 1s\n  - id: beta\n    \
         asterdex: {{ base_url: {venue} }}\n    llm_model: builtin/hold\n    assets: [ETH]\n    \
         interval: 1s\n"
    )
}

/// Rows of `account` in every table a list route reads (decisions come from its cycles).
fn seed_rows(url: &str, account: &str, symbol: &str) -> (Uuid, String) {
    let pool = vibex::db::connect(url, 1).expect("connect");
    let mut conn = pool.get().expect("connection");
    let now = chrono::Utc::now();
    let order_id = Uuid::now_v7();
    let client_id = format!("vx-{account}-seeded-1");
    let order = OrderRow {
        id: order_id,
        account_id: account.into(),
        cycle_id: None,
        decision_id: None,
        client_order_id: client_id.clone(),
        venue_order_id: Some(format!("{account}-9001")),
        symbol: symbol.into(),
        side: "BUY".into(),
        order_type: "MARKET".into(),
        quantity: Some(dec!(0.01)),
        price: None,
        stop_price: None,
        reduce_only: false,
        close_position: false,
        status: "FILLED".into(),
        filled_quantity: dec!(0.01),
        avg_fill_price: Some(dec!(100)),
        reject_reason: None,
        created_at: now,
        updated_at: now,
    };
    let batch = ExecutionBatch {
        orders: vec![order],
        order_events: vec![NewOrderEvent {
            ts: now,
            order_id,
            account_id: account.into(),
            cycle_id: None,
            status: "FILLED".into(),
            detail: serde_json::json!({}),
        }],
        fills: vec![FillRow {
            id: Uuid::now_v7(),
            ts: now,
            account_id: account.into(),
            cycle_id: None,
            order_id: Some(order_id),
            client_order_id: client_id.clone(),
            symbol: symbol.into(),
            side: "BUY".into(),
            quantity: dec!(0.01),
            price: dec!(100),
            fee: dec!(0.01),
            realized_pnl: dec!(0),
            reason: "entry".into(),
            venue_trade_id: Some(format!("{account}-t1")),
        }],
        positions: vec![PositionRow {
            id: Uuid::now_v7(),
            account_id: account.into(),
            symbol: symbol.into(),
            side: "long".into(),
            quantity: dec!(0.01),
            entry_price: dec!(100),
            leverage: 1,
            margin: dec!(1),
            tp_price: None,
            sl_price: None,
            exit_plan: String::new(),
            mark_price: Some(dec!(101)),
            unrealized_pnl: dec!(0),
            realized_pnl: dec!(0.01),
            status: "closed".into(),
            opened_at: now,
            closed_at: Some(now),
            opened_cycle_id: None,
            updated_at: now,
            liquidation_price: None,
            origin: PositionRow::ORIGIN_VIBEX.into(),
            close_reason: Some("decision".into()),
        }],
        diary: vec![DiaryEntryRow {
            id: Uuid::now_v7(),
            ts: now,
            account_id: account.into(),
            cycle_id: None,
            asset: symbol.trim_end_matches("USDT").into(),
            action: "buy".into(),
            allocation_usd: Some(dec!(1)),
            amount: Some(dec!(0.01)),
            entry_price: Some(dec!(100)),
            tp_price: None,
            tp_oid: None,
            sl_price: None,
            sl_oid: None,
            exit_plan: None,
            rationale: Some("seeded".into()),
            order_result: None,
            opened_at: Some(now),
            filled: true,
        }],
        income: vec![IncomeRow {
            id: Uuid::now_v7(),
            ts: now,
            account_id: account.into(),
            cycle_id: None,
            symbol: Some(symbol.into()),
            kind: "COMMISSION".into(),
            amount: dec!(-0.01),
            asset: "USDT".into(),
            venue_tran_id: Some(format!("{account}-i1")),
            detail: serde_json::json!({}),
        }],
        reconciliation: vec![ReconciliationRow {
            id: Uuid::now_v7(),
            ts: now,
            account_id: account.into(),
            cycle_id: None,
            kind: "seeded".into(),
            symbol: Some(symbol.into()),
            detail: serde_json::json!({}),
        }],
        paper_wallet: None,
    };
    queries::record_execution(&mut conn, &batch).expect("seed rows");
    (order_id, client_id)
}

/// The list routes; each holds rows of both accounts once seeded.
const LISTS: &[&str] = &[
    "/positions",
    "/orders",
    "/trades",
    "/decisions",
    "/diary",
    "/income",
    "/reconciliation",
];

/// Stops the daemon and checks that none of `keys` is in a log file, its output, or
/// any body received.
fn no_key_anywhere(d: &mut Daemon, seen: &Seen, keys: &[&str]) {
    d.terminate(Duration::from_secs(20));
    let logs = d.all_logs();
    assert!(!logs.is_empty(), "the daemon wrote logs");
    let bodies = seen.lock().unwrap().join("\n");
    for key in keys {
        assert!(!logs.contains(key), "a key is in the daemon's logs");
        assert!(!bodies.contains(key), "a key is in a response");
    }
}

#[test]
fn keys_new_prints_the_key_then_an_entry_the_daemon_accepts() {
    let (ops_key, ops_entry) = keys_new(&["--name", "ops", "--role", "admin"]);
    let (view_key, view_entry) =
        keys_new(&["--name", "viewer", "--role", "read", "--accounts", "alpha"]);
    for (key, entry) in [(&ops_key, &ops_entry), (&view_key, &view_entry)] {
        assert!(
            key.starts_with("vx_") && key.len() == 67,
            "vx_ + 64 hex digits: {key}"
        );
        assert!(entry.contains(&sha256_hex(key)), "{entry}");
        assert!(
            !entry.contains(key.as_str()),
            "the entry never holds the key"
        );
    }
    assert_ne!(ops_key, view_key);
    assert!(view_entry.contains("accounts: [alpha]"), "{view_entry}");

    // Pasted under `api: keys:`, the entries load as they are.
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "api:\n  keys:\n{ops_entry}{view_entry}accounts:\n  - id: alpha\n    \
         llm_model: builtin/hold\n    assets: [BTC]\n    interval: 5m\n"
    );
    std::fs::write(dir.path().join("accounts.yaml"), &yaml).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vibex"));
    cmd.args(["--accounts", "accounts.yaml", "config", "check"])
        .current_dir(dir.path());
    for var in common::process::AMBIENT {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{yaml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&sha256_hex(&view_key)), "{stdout}");
    assert!(!stdout.contains(&view_key) && !stdout.contains(&ops_key));

    // Bad flags are named, and nothing is printed on stdout.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vibex"))
        .args(["keys", "new", "--name", "ops", "--role", "superuser"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--role: role must be read, trade or admin")
    );
}

#[actix_rt::test]
async fn every_route_and_channel_needs_a_key_and_a_scoped_key_sees_only_its_accounts() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let (ops, _) = keys_new(&["--name", "ops", "--role", "admin"]);
    let (reader, _) = keys_new(&["--name", "reader", "--role", "read"]);
    let (alpha_only, _) = keys_new(&["--name", "alpha-only", "--role", "read"]);
    let api = format!(
        "  cors_origins: [https://dash.example.com]\n  keys:\n    \
         - {{name: ops, role: admin, key_sha256: {}}}\n    \
         - {{name: reader, role: read, key_sha256: {}}}\n    \
         - {{name: alpha-only, role: read, key_sha256: {}, accounts: [alpha]}}\n",
        sha256_hex(&ops),
        sha256_hex(&reader),
        sha256_hex(&alpha_only)
    );
    let mut d = Daemon::start(&accounts_yaml(venue.base_url(), &api), Some(&db.url), &[]);
    let seen: Seen = Arc::default();
    let bearer = |k: &str| format!("Bearer {k}");
    let ops_auth = bearer(&ops);
    let admin: &[(&str, &str)] = &[("Authorization", ops_auth.as_str())];
    let read: &[(&str, &str)] = &[("X-API-Key", reader.as_str())];
    let scoped_auth = bearer(&alpha_only);
    let scoped: &[(&str, &str)] = &[("Authorization", scoped_auth.as_str())];

    // Both accounts have rows in every list; beta's decisions come from its cycles.
    let (_, _) = seed_rows(&db.url, "alpha", "BTCUSDT");
    let (beta_order, beta_client_id) = seed_rows(&db.url, "beta", "ETHUSDT");
    let deadline = Instant::now() + Duration::from_secs(60);
    let beta_decision = loop {
        let r = get(&d, &seen, "/decisions?account_id=beta&limit=1", admin).await;
        if let Some(id) = r.json()["items"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "beta never stored a decision; stderr:\n{}",
            tail(&d.stderr(), 40)
        );
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    };
    let routes: Vec<String> = [
        "/status",
        "/accounts",
        "/accounts/beta",
        "/accounts/beta/status",
        "/market-data",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(LISTS.iter().map(|s| s.to_string()))
    .chain([
        format!("/orders/{beta_order}"),
        format!("/decisions/{beta_decision}"),
    ])
    .collect();

    // /health is open.
    assert_eq!(get(&d, &seen, "/health", &[]).await.status, 200);

    // No key and wrong keys: the same 401 on every route.
    let wrong_bearer =
        bearer("vx_0000000000000000000000000000000000000000000000000000000000000000");
    let mut refusals = BTreeSet::new();
    for route in &routes {
        for headers in [
            &[][..],
            &[("Authorization", wrong_bearer.as_str())][..],
            &[("X-API-Key", "not-a-key")][..],
            &[("Authorization", "Basic b3BzOm9wcw==")][..],
        ] {
            let r = get(&d, &seen, route, headers).await;
            assert_eq!(r.status, 401, "{route} with {headers:?}: {}", r.body);
            assert_eq!(r.error_code(), "unauthorized");
            refusals.insert(r.body);
        }
        // The query string is read on WebSocket upgrades only.
        let sep = if route.contains('?') { '&' } else { '?' };
        let r = get(&d, &seen, &format!("{route}{sep}api_key={ops}"), &[]).await;
        assert_eq!(r.status, 401, "{route}?api_key=");
    }
    assert_eq!(
        refusals.len(),
        1,
        "a missing and a wrong key get the same answer: {refusals:?}"
    );

    // An unscoped key, either header form, reads every route, beta included.
    for headers in [admin, read] {
        for route in &routes {
            let r = get(&d, &seen, route, headers).await;
            assert_eq!(r.status, 200, "{route}: {}", r.body);
        }
        for list in LISTS {
            let r = get(&d, &seen, &format!("{list}?account_id=beta"), headers).await;
            assert!(
                r.json()["count"].as_u64().unwrap_or(0) > 0,
                "beta has rows in {list} (or this test could not fail): {}",
                r.body
            );
        }
    }
    let r = get(&d, &seen, "/accounts", read).await;
    assert_eq!(r.json()["count"], 2);

    // The scoped key: beta is not found in a path ...
    for route in [
        "/accounts/beta".to_string(),
        "/accounts/beta/status".to_string(),
        format!("/orders/{beta_order}"),
        format!("/orders/{beta_client_id}"),
        format!("/decisions/{beta_decision}"),
        "/market-data?account_id=beta".to_string(),
    ]
    .iter()
    .chain(
        LISTS
            .iter()
            .map(|l| format!("{l}?account_id=beta"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        let r = get(&d, &seen, route, scoped).await;
        assert_eq!(r.status, 404, "{route}: {}", r.body);
        assert!(r.error_code().ends_with("not_found"), "{}", r.body);
    }
    // ... and nowhere in lists and aggregates, which still carry alpha.
    for list in LISTS {
        let r = get(&d, &seen, list, scoped).await;
        assert_eq!(r.status, 200, "{list}: {}", r.body);
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        assert!(!items.is_empty(), "{list} carries alpha's rows");
        assert!(
            items.iter().all(|i| i["account_id"] == "alpha"),
            "{list} carries only alpha: {}",
            r.body
        );
        assert!(!r.body.contains("beta"), "{list}: {}", r.body);
    }
    for route in ["/status", "/accounts", "/accounts/alpha", "/market-data"] {
        let r = get(&d, &seen, route, scoped).await;
        assert_eq!(r.status, 200, "{route}: {}", r.body);
        assert!(
            route == "/market-data" || r.body.contains("alpha"),
            "{route} carries alpha: {}",
            r.body
        );
        assert!(
            !r.body.contains("beta"),
            "{route} carries no beta: {}",
            r.body
        );
    }
    let status = get(&d, &seen, "/status", scoped).await.json();
    assert_eq!(status["accounts"].as_array().map(Vec::len), Some(1));

    // WebSockets: no key or a wrong key is refused; every way of presenting a key works;
    // the scoped key's streams never carry beta, while the admin's do.
    for channel in ["trading-events", "market-data", "positions"] {
        let path = format!("/ws/{channel}");
        assert_eq!(ws(&d, &path, &[]).await.err(), Some(401), "{path}");
        assert_eq!(
            ws(&d, &format!("{path}?api_key=vx_wrong"), &[]).await.err(),
            Some(401)
        );
        assert_eq!(
            ws(&d, &format!("{path}?account_id=beta"), scoped)
                .await
                .err(),
            Some(404),
            "{path}?account_id=beta with the scoped key"
        );
    }
    let everything = ws(&d, "/ws/trading-events", admin).await.expect("admin");
    let by_header = ws(&d, "/ws/trading-events", scoped).await.expect("bearer");
    let by_x_key = ws(&d, "/ws/positions", &[("X-API-Key", alpha_only.as_str())])
        .await
        .expect("x-api-key");
    let by_query = ws(&d, &format!("/ws/trading-events?api_key={alpha_only}"), &[])
        .await
        .expect("?api_key=");
    let market = ws(&d, &format!("/ws/market-data?api_key={alpha_only}"), &[])
        .await
        .expect("market data");
    let both: BTreeSet<String> = ["alpha".to_string(), "beta".to_string()].into();
    wait_frames(
        &everything,
        "the admin stream to carry both accounts",
        |s| s.accounts().is_superset(&both),
    )
    .await;
    for (stream, what) in [
        (&by_header, "trading events by Authorization"),
        (&by_x_key, "positions by X-API-Key"),
        (&by_query, "trading events by ?api_key="),
    ] {
        wait_frames(stream, &format!("{what}: alpha's cycles"), |s| {
            s.frames()
                .iter()
                .filter(|f| f["account_id"] == "alpha")
                .count()
                >= 3
        })
        .await;
    }
    wait_frames(&market, "market data snapshots", |s| !s.frames().is_empty()).await;
    // The admin stream has seen beta since; the scoped ones still have not.
    for (stream, what) in [
        (&by_header, "Authorization"),
        (&by_x_key, "X-API-Key"),
        (&by_query, "?api_key="),
        (&market, "market data"),
    ] {
        assert!(
            !stream.accounts().contains("beta"),
            "{what}: a scoped stream carried beta (accounts seen: {:?})",
            stream.accounts()
        );
    }

    // CORS: a preflight from a configured origin is answered without a key; one from
    // elsewhere is refused in JSON; answers carry the origin only for configured ones.
    let preflight = |origin: &'static str| {
        [
            ("Origin", origin),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "x-api-key"),
        ]
    };
    let r = send(
        &d,
        &seen,
        Method::OPTIONS,
        "/positions",
        &preflight("https://dash.example.com"),
        None,
    )
    .await;
    assert!(
        r.status < 300,
        "preflight answered: {} {}",
        r.status,
        r.body
    );
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://dash.example.com")
    );
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.to_ascii_lowercase().contains("x-api-key")));
    let r = send(
        &d,
        &seen,
        Method::OPTIONS,
        "/positions",
        &preflight("https://evil.example"),
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "cors_refused");
    let with_origin = |origin| [("Origin", origin), ("X-API-Key", reader.as_str())];
    let r = get(
        &d,
        &seen,
        "/positions",
        &with_origin("https://dash.example.com"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://dash.example.com")
    );
    let r = get(
        &d,
        &seen,
        "/positions",
        &with_origin("https://evil.example"),
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);

    // A WebSocket from a foreign page is refused even with a valid key; the dashboard's
    // origin and the daemon's own are not; no Origin is judged by the key alone.
    let evil = [
        ("Origin", "https://evil.example"),
        ("X-API-Key", reader.as_str()),
    ];
    assert_eq!(ws(&d, "/ws/trading-events", &evil).await.err(), Some(403));
    let r = get(&d, &seen, "/ws/trading-events", &evil).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "origin_not_allowed")
    );
    let own = d.base.clone();
    for origin in ["https://dash.example.com", own.as_str()] {
        assert!(
            ws(
                &d,
                "/ws/market-data",
                &[("Origin", origin), ("X-API-Key", reader.as_str())]
            )
            .await
            .is_ok(),
            "{origin}"
        );
    }

    // A body above 64 KiB is refused before it is read.
    let r = send(
        &d,
        &seen,
        Method::POST,
        "/positions",
        &[
            ("X-API-Key", reader.as_str()),
            ("Content-Type", "application/json"),
        ],
        Some(vec![b' '; 100 * 1024]),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.error_code(), "payload_too_large");

    let app_log = d.log_file("app.log");
    assert!(
        app_log.contains("API keys required") && app_log.contains("3 key(s)"),
        "the start says how the API is protected"
    );
    drop((everything, by_header, by_x_key, by_query, market));
    no_key_anywhere(&mut d, &seen, &[&ops, &reader, &alpha_only]);
}

#[actix_rt::test]
async fn both_buckets_answer_429_with_retry_after_and_a_noisy_key_does_not_slow_another() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let (noisy, _) = keys_new(&["--name", "noisy", "--role", "read"]);
    let (quiet, _) = keys_new(&["--name", "quiet", "--role", "read"]);
    let api = format!(
        "  rate_limit:\n    per_key: {{per_second: 1, burst: 5}}\n    \
         per_ip: {{per_second: 1, burst: 5}}\n  keys:\n    \
         - {{name: noisy, role: read, key_sha256: {}}}\n    \
         - {{name: quiet, role: read, key_sha256: {}}}\n",
        sha256_hex(&noisy),
        sha256_hex(&quiet)
    );
    let mut d = Daemon::start(&accounts_yaml(venue.base_url(), &api), Some(&db.url), &[]);
    let seen: Seen = Arc::default();
    let noisy_h = [("X-API-Key", noisy.as_str())];
    let quiet_h = [("X-API-Key", quiet.as_str())];

    // Hammer with the noisy key until its bucket is empty.
    let mut limited = None;
    for _ in 0..50 {
        let r = get(&d, &seen, "/positions", &noisy_h).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let limited = limited.expect("the noisy key was limited within 50 requests");
    assert_eq!(limited.error_code(), "rate_limited");
    assert!(
        limited.body.contains("noisy"),
        "names the key: {}",
        limited.body
    );
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "{retry}");

    // While the noisy key keeps hammering, the quiet key is served at once.
    let hammer = {
        let base = d.base.clone();
        let key = noisy.clone();
        actix_rt::spawn(async move {
            let client = awc::Client::default();
            let mut refused = 0u32;
            for _ in 0..100 {
                if let Ok(res) = client
                    .get(format!("{base}/positions"))
                    .insert_header(("X-API-Key", key.as_str()))
                    .send()
                    .await
                {
                    if res.status().as_u16() == 429 {
                        refused += 1;
                    }
                }
            }
            refused
        })
    };
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let r = get(&d, &seen, "/positions", &quiet_h).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.status, 200, "the quiet key is not limited: {}", r.body);
    }
    let refused = hammer.await.expect("hammer");
    println!(
        "quiet key's slowest answer while the noisy one was refused {refused} times: {slowest:?}"
    );
    assert!(
        refused > 50,
        "the noisy key stayed limited ({refused} of 100)"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "the quiet key was answered promptly: {slowest:?}"
    );

    // After Retry-After, the noisy key is served again.
    actix_rt::time::sleep(Duration::from_secs(retry)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = get(&d, &seen, "/positions", &noisy_h).await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still limited after Retry-After: {}",
            r.body
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }

    // Failed authentications spend the address's bucket: 401s, then 429s; valid keys
    // from the same address are not affected.
    let mut statuses = Vec::new();
    let mut address_limited = None;
    for i in 0..50 {
        let wrong = format!("vx_guess_{i}");
        let r = get(&d, &seen, "/positions", &[("X-API-Key", wrong.as_str())]).await;
        statuses.push(r.status);
        if r.status == 429 {
            address_limited = Some(r);
            break;
        }
        assert_eq!(r.status, 401);
    }
    let address_limited = address_limited.expect("wrong keys were limited within 50 requests");
    assert_eq!(address_limited.error_code(), "rate_limited");
    assert!(
        address_limited.body.contains("this address"),
        "{}",
        address_limited.body
    );
    assert!(address_limited
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    assert!(
        statuses.iter().filter(|s| **s == 401).count() >= 5,
        "{statuses:?}"
    );
    let r = get(&d, &seen, "/positions", &quiet_h).await;
    assert_eq!(
        r.status, 200,
        "a valid key passes while its address is limited"
    );
    // No key spends the address's bucket too (a token may have come back meanwhile).
    let mut anonymous = Vec::new();
    for _ in 0..10 {
        let r = get(&d, &seen, "/positions", &[]).await;
        anonymous.push(r.status);
        if r.status == 429 {
            break;
        }
    }
    assert!(
        anonymous.last() == Some(&429) && anonymous.iter().all(|s| *s == 401 || *s == 429),
        "requests without a key are limited by the address: {anonymous:?}"
    );
    assert_eq!(
        get(&d, &seen, "/health", &[]).await.status,
        200,
        "/health is never limited"
    );

    no_key_anywhere(&mut d, &seen, &[&noisy, &quiet]);
}

#[actix_rt::test]
async fn refused_attempts_on_control_routes_are_audited_logged_and_streamed() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let (admin, _) = keys_new(&["--name", "ops", "--role", "admin"]);
    let (reader, _) = keys_new(&["--name", "watcher", "--role", "read"]);
    let api = format!(
        "  rate_limit:\n    per_ip: {{per_second: 1, burst: 4}}\n  keys:\n    \
         - {{name: ops, role: admin, key_sha256: {}}}\n    \
         - {{name: watcher, role: read, key_sha256: {}}}\n",
        sha256_hex(&admin),
        sha256_hex(&reader)
    );
    let mut d = Daemon::start(&accounts_yaml(venue.base_url(), &api), Some(&db.url), &[]);
    let seen: Seen = Arc::default();
    let admin_h = [("X-API-Key", admin.as_str())];
    let events = ws(&d, "/ws/trading-events", &admin_h)
        .await
        .expect("the admin key opens the stream");

    // No key on a control route: 401, then (the address's bucket spent) 429.
    let r = send(&d, &seen, Method::POST, "/kill-switch", &[], None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let mut limited = false;
    for i in 0..20 {
        let wrong = format!("vx_guess_{i}");
        let r = send(
            &d,
            &seen,
            Method::POST,
            "/accounts/alpha/pause",
            &[("X-API-Key", wrong.as_str())],
            None,
        )
        .await;
        if r.status == 429 {
            limited = true;
            break;
        }
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert!(limited, "wrong keys on a control route were limited");
    // A read key on an admin route: 403 (the handler's refusal).
    let r = send(
        &d,
        &seen,
        Method::DELETE,
        "/kill-switch",
        &[("X-API-Key", reader.as_str())],
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // The trail has each kind of refusal, named as the granted action would be.
    let wanted = [
        ("kill_switch.on", "(no key)", 401, None),
        ("account.pause", "(no key)", 401, Some("alpha")),
        ("account.pause", "(no key)", 429, Some("alpha")),
        ("kill_switch.off", "watcher", 403, None),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let items = loop {
        let r = get(&d, &seen, "/audit?limit=100", &admin_h).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.json()["items"].as_array().cloned().unwrap_or_default();
        let has = |(action, key, status, target): &(&str, &str, u16, Option<&str>)| {
            items.iter().any(|a| {
                a["action"] == *action
                    && a["key_name"] == *key
                    && a["status"] == *status
                    && a["target"].as_str() == *target
                    && a["client_ip"] == "127.0.0.1"
            })
        };
        if wanted.iter().all(has) {
            break items;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the refusals {wanted:?} in /audit: {items:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    // A flood's 429s are one row a second, not one per request.
    let rows_429 = items.iter().filter(|a| a["status"] == 429).count();
    assert!(
        rows_429 <= 2,
        "{rows_429} rows of 429 for one burst: {items:?}"
    );
    wait_frames(&events, "control events for the 401 and the 403", |s| {
        let f = s.frames();
        let control = |status: u16| {
            f.iter()
                .any(|e| e["type"] == "control" && e["data"]["status"] == status)
        };
        control(401) && control(403)
    })
    .await;
    let trading = d.log_file("trading.log");
    assert!(
        trading.contains("control action refused") && trading.contains("\"status\":401"),
        "the refusal is in trading.log"
    );
    no_key_anywhere(&mut d, &seen, &[&admin, &reader]);
}

#[actix_rt::test]
async fn status_and_accounts_page_and_summarise_only_what_a_key_sees() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let (admin, _) = keys_new(&["--name", "ops", "--role", "admin"]);
    let (desk, _) = keys_new(&[
        "--name",
        "desk",
        "--role",
        "trade",
        "--accounts",
        "p03,p07,p11",
    ]);
    let mut yaml = format!(
        "api:\n  keys:\n    - {{name: ops, role: admin, key_sha256: {}}}\n    \
         - {{name: desk, role: trade, key_sha256: {}, accounts: [p03, p07, p11]}}\naccounts:\n",
        sha256_hex(&admin),
        sha256_hex(&desk)
    );
    // Configured out of id order: /accounts pages in file order, /status in id order.
    for i in (1..=12).rev() {
        yaml.push_str(&format!(
            "  - id: p{i:02}\n    asterdex: {{ base_url: {} }}\n    llm_model: builtin/hold\n    \
             assets: [BTC]\n    interval: 1h\n",
            venue.base_url()
        ));
    }
    let mut d = Daemon::start(&yaml, Some(&db.url), &[]);
    let seen: Seen = Arc::default();
    let admin_h = [("X-API-Key", admin.as_str())];
    let desk_h = [("X-API-Key", desk.as_str())];
    let ids = |v: &serde_json::Value, field: &str, key: &str| -> Vec<String> {
        v[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} in {v}"))
            .iter()
            .map(|a| a[key].as_str().unwrap_or_default().to_string())
            .collect()
    };

    // Every account counted as active, whichever page is shown.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(&d, &seen, "/status?limit=5", &admin_h).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["accounts_summary"]["by_state"]["active"] == 12 {
            assert_eq!(v["accounts_summary"]["total"], 12, "{v}");
            assert_eq!(v["accounts_limit"], 5);
            assert_eq!(
                ids(&v, "accounts", "account_id"),
                ["p01", "p02", "p03", "p04", "p05"]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for 12 active accounts in accounts_summary: {v}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let v = get(&d, &seen, "/status?limit=5&offset=10", &admin_h)
        .await
        .json();
    assert_eq!(ids(&v, "accounts", "account_id"), ["p11", "p12"]);
    assert_eq!(v["accounts_summary"]["total"], 12);
    assert_eq!(v["accounts_offset"], 10);
    let v = get(&d, &seen, "/accounts?limit=4&offset=2", &admin_h)
        .await
        .json();
    assert_eq!(ids(&v, "items", "id"), ["p10", "p09", "p08", "p07"]);
    assert_eq!(v["total"], 12);
    assert_eq!(v["count"], 4);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"]["state"] == "active"),
        "each listed account carries its live status: {v}"
    );

    // A scoped key: its three accounts, counted and paged alone.
    let v = get(&d, &seen, "/status?limit=2", &desk_h).await.json();
    assert_eq!(v["accounts_summary"]["total"], 3, "{v}");
    assert_eq!(ids(&v, "accounts", "account_id"), ["p03", "p07"]);
    let v = get(&d, &seen, "/status?offset=2", &desk_h).await.json();
    assert_eq!(ids(&v, "accounts", "account_id"), ["p11"]);
    let v = get(&d, &seen, "/accounts", &desk_h).await.json();
    assert_eq!(ids(&v, "items", "id"), ["p11", "p07", "p03"]);
    assert_eq!(v["total"], 3);

    // A pause shows in the summary without listing the account.
    let r = send(
        &d,
        &seen,
        Method::POST,
        "/accounts/p07/pause",
        &desk_h,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(&d, &seen, "/status?limit=1", &admin_h).await.json();
        let by_state = &v["accounts_summary"]["by_state"];
        if by_state["paused"] == 1 && by_state["active"] == 11 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for 1 paused and 11 active accounts in the summary: {v}"
        );
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    no_key_anywhere(&mut d, &seen, &[&admin, &desk]);
}

/// The listening sockets of `port` from `/proc/net/tcp{,6}`: their local addresses.
fn listeners(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            // 0A: LISTEN.
            if *state != "0A" {
                continue;
            }
            if let Some((addr, p)) = local.split_once(':') {
                if u16::from_str_radix(p, 16).ok() == Some(port) {
                    out.push(addr.to_string());
                }
            }
        }
    }
    out
}

#[actix_rt::test]
async fn a_daemon_without_keys_asked_for_0_0_0_0_serves_loopback_only_and_says_so() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let api = "  rate_limit:\n    per_ip: {per_second: 1, burst: 5}\n";
    let mut d = Daemon::start(
        &accounts_yaml(venue.base_url(), api),
        Some(&db.url),
        &[("API_HOST", "0.0.0.0")],
    );
    let seen: Seen = Arc::default();
    let port: u16 = d
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let stdout = std::fs::read_to_string(d.dir.join("stdout.txt")).unwrap_or_default();
    assert!(
        stdout.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(
        d.stderr()
            .contains("serving on 127.0.0.1 only instead of 0.0.0.0"),
        "the start says so: {}",
        d.stderr()
    );
    // 0100007F is 127.0.0.1 as /proc/net/tcp writes it.
    assert_eq!(listeners(port), ["0100007F"], "bound to loopback alone");

    // Every route is open to a local client ...
    let r = get(&d, &seen, "/accounts", &[]).await;
    assert_eq!((r.status, r.json()["count"].as_u64()), (200, Some(2)));
    let stream = ws(&d, "/ws/trading-events", &[])
        .await
        .expect("open WebSocket");
    wait_frames(&stream, "an event", |s| !s.frames().is_empty()).await;
    // ... addressing a loopback host: a page whose DNS name was rebound to 127.0.0.1 is
    // refused, and a foreign Origin cannot open a WebSocket.
    let r = get(&d, &seen, "/accounts", &[("Host", "evil.example")]).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "host_not_allowed")
    );
    assert_eq!(
        ws(
            &d,
            "/ws/trading-events",
            &[("Origin", "http://evil.example")]
        )
        .await
        .err(),
        Some(403)
    );
    // Anonymous requests spend the address's bucket; /health is never limited.
    let mut limited = None;
    for _ in 0..50 {
        let r = get(&d, &seen, "/positions", &[]).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let limited = limited.expect("limited within 50 requests");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(get(&d, &seen, "/health", &[]).await.status, 200);
    drop(stream);
    d.terminate(Duration::from_secs(20));
}

#[actix_rt::test]
async fn a_reload_replaces_the_keys_closes_revoked_streams_and_keeps_at_least_one_key() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let (admin, _) = keys_new(&["--name", "ops", "--role", "admin"]);
    let (leaked, _) = keys_new(&["--name", "leaked", "--role", "read"]);
    let (desk, _) = keys_new(&["--name", "desk", "--role", "read"]);
    let (fresh, _) = keys_new(&["--name", "fresh", "--role", "read"]);
    let entry = |name: &str, key: &str, extra: &str| {
        format!(
            "    - {{name: {name}, role: {role}, key_sha256: {hash}{extra}}}\n",
            role = if name == "ops" { "admin" } else { "read" },
            hash = sha256_hex(key)
        )
    };
    let before = format!(
        "  keys:\n{}{}{}",
        entry("ops", &admin, ""),
        entry("leaked", &leaked, ""),
        entry("desk", &desk, ", accounts: [alpha]")
    );
    let mut d = Daemon::start(
        &accounts_yaml(venue.base_url(), &before),
        Some(&db.url),
        &[],
    );
    let seen: Seen = Arc::default();
    let status = |r: Reply| r.status;
    let leaked_h = [("X-API-Key", leaked.as_str())];
    let admin_h = [("X-API-Key", admin.as_str())];
    let desk_h = [("X-API-Key", desk.as_str())];
    let fresh_h = [("X-API-Key", fresh.as_str())];
    assert_eq!(status(get(&d, &seen, "/accounts", &leaked_h).await), 200);
    assert_eq!(
        status(get(&d, &seen, "/accounts/alpha", &desk_h).await),
        200
    );
    assert_eq!(status(get(&d, &seen, "/accounts/beta", &desk_h).await), 404);
    assert_eq!(status(get(&d, &seen, "/accounts", &fresh_h).await), 401);
    let leaked_stream = ws(&d, "/ws/trading-events", &leaked_h)
        .await
        .expect("the leaked key opens a stream");
    let desk_stream = ws(&d, "/ws/trading-events", &desk_h)
        .await
        .expect("the desk key opens a stream");
    let admin_stream = ws(&d, "/ws/trading-events", &admin_h)
        .await
        .expect("the admin key opens a stream");

    // The leaked key is removed, desk is moved to beta, fresh is added, ops is untouched.
    let after = format!(
        "  keys:\n{}{}{}",
        entry("ops", &admin, ""),
        entry("desk", &desk, ", accounts: [beta]"),
        entry("fresh", &fresh, "")
    );
    std::fs::write(
        d.dir.join("accounts.yaml"),
        accounts_yaml(venue.base_url(), &after),
    )
    .unwrap();
    let r = send(&d, &seen, Method::POST, "/config/reload", &admin_h, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["keys"],
        serde_json::json!({"added": ["fresh"], "removed": ["leaked"], "changed": ["desk"]}),
        "{}",
        r.body
    );
    assert_eq!(r.json()["unchanged"], serde_json::json!(["alpha", "beta"]));
    // The next request is judged by the new keys.
    let r = get(&d, &seen, "/accounts", &leaked_h).await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, "unauthorized".to_string())
    );
    assert_eq!(
        status(get(&d, &seen, "/accounts/alpha", &desk_h).await),
        404
    );
    assert_eq!(status(get(&d, &seen, "/accounts/beta", &desk_h).await), 200);
    assert_eq!(status(get(&d, &seen, "/accounts", &fresh_h).await), 200);
    assert_eq!(status(get(&d, &seen, "/accounts", &admin_h).await), 200);
    // Streams opened with a removed or changed key end, saying why; the others stay.
    for (stream, name) in [(&leaked_stream, "leaked"), (&desk_stream, "desk")] {
        wait_frames(stream, &format!("the {name} stream to be closed"), |s| {
            s.close_reason().is_some()
        })
        .await;
        let reason = stream.close_reason().unwrap_or_default();
        assert!(
            reason.contains(&format!("{name:?}")) && reason.contains("removed or changed"),
            "{reason}"
        );
    }
    let r = send(
        &d,
        &seen,
        Method::POST,
        "/accounts/alpha/pause",
        &admin_h,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_frames(&admin_stream, "the pause on the admin's stream", |s| {
        s.frames()
            .iter()
            .any(|e| e["type"] == "control" && e["data"]["action"] == "account.pause")
    })
    .await;
    assert_eq!(
        admin_stream.close_reason(),
        None,
        "an unchanged key's stream stays open"
    );

    // A file without keys would leave a keyed daemon without a way in: nothing changes,
    // accounts included, and the error names the field.
    std::fs::write(
        d.dir.join("accounts.yaml"),
        accounts_yaml(venue.base_url(), "  cors_origins: []\n").replace(
            "    interval: 1s\n  - id: beta",
            "    interval: 2s\n  - id: beta",
        ),
    )
    .unwrap();
    let r = send(&d, &seen, Method::POST, "/config/reload", &admin_h, None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("api.keys"), "{message}");
    assert_eq!(status(get(&d, &seen, "/accounts", &fresh_h).await), 200);
    let r = get(&d, &seen, "/accounts/alpha", &admin_h).await;
    assert_eq!(r.json()["interval"], "1s", "nothing changed: {}", r.body);

    // The audit trail has the keys' diff (names only).
    let r = get(&d, &seen, "/audit?kind=config.reload", &admin_h).await;
    let items = r.json()["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items
            .iter()
            .any(|a| a["result"]["keys"]["removed"] == serde_json::json!(["leaked"])),
        "{items:?}"
    );
    assert!(d.log_file("app.log").contains("API keys reloaded"));
    no_key_anywhere(&mut d, &seen, &[&admin, &leaked, &desk, &fresh]);
}
