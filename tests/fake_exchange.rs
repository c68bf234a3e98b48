//! The fake venue's trading half, checked with hand-signed requests over real HTTP:
//! the fake must be as strict as AsterDEX (signatures, time, filters, margin) and behave
//! as documented under faults, so the journey tests can trust what it reports.

mod common;

use common::daemon::dec;
use common::fake_trading::{FakeAccountId, Fault, HandOrder, OrderStatus, OrderType, Side};
use common::fake_venue::FakeVenue;
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;
use sha2::Sha256;
use std::time::{Duration, Instant};
use vibex::exchange::aster::sign::{Credentials, WalletKey};
use vibex::secret::Secret;

const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

fn hmac_hex(secret: &str, payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(payload.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn local_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A venue answer: status, headers and JSON body (`Value::Null` when not JSON).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Value,
}

impl Answer {
    fn code(&self) -> i64 {
        self.json["code"].as_i64().unwrap_or(0)
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Signs requests by hand, as the Binance documentation describes: urlencoded
/// parameters + `timestamp`, `signature` = hex HMAC-SHA256 of those exact bytes, last.
struct HmacClient {
    base: String,
    key: String,
    secret: String,
    http: reqwest::Client,
}

impl HmacClient {
    fn new(venue: &FakeVenue, key: &str, secret: &str) -> HmacClient {
        HmacClient {
            base: venue.base_url().to_string(),
            key: key.to_string(),
            secret: secret.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        }
    }

    /// `params` urlencoded, then `timestamp`, then `&signature=`.
    fn signed(&self, params: &[(&str, &str)], timestamp: i64) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            form.append_pair(k, v);
        }
        form.append_pair("timestamp", &timestamp.to_string());
        let payload = form.finish();
        let signature = hmac_hex(&self.secret, &payload);
        format!("{payload}&signature={signature}")
    }

    /// Sends `payload` as the query (GET/DELETE) or form body (POST/PUT).
    async fn raw(&self, method: &str, path: &str, payload: &str) -> Answer {
        self.raw_with(method, path, payload, &self.http).await
    }

    async fn raw_with(
        &self,
        method: &str,
        path: &str,
        payload: &str,
        http: &reqwest::Client,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let in_body = method == reqwest::Method::POST || method == reqwest::Method::PUT;
        let url = if in_body || payload.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{payload}", self.base)
        };
        let mut request = http.request(method, url).header("X-MBX-APIKEY", &self.key);
        if in_body {
            request = request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(payload.to_string());
        }
        let response = request.send().await.expect("the fake answers");
        answer(response).await
    }

    async fn send(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Answer {
        let payload = self.signed(params, local_ms());
        self.raw(method, path, &payload).await
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        self.send("GET", path, params).await
    }

    async fn post(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        self.send("POST", path, params).await
    }

    async fn delete(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        self.send("DELETE", path, params).await
    }

    async fn market(&self, side: &str, qty: &str, client_id: &str) -> Answer {
        self.post(
            "/fapi/v1/order",
            &[
                ("symbol", "BTCUSDT"),
                ("side", side),
                ("type", "MARKET"),
                ("quantity", qty),
                ("newClientOrderId", client_id),
                ("newOrderRespType", "RESULT"),
            ],
        )
        .await
    }

    /// A closePosition conditional order on BTCUSDT.
    async fn protect(&self, side: &str, kind: &str, stop: &str, client_id: &str) -> Answer {
        self.post(
            "/fapi/v1/order",
            &[
                ("symbol", "BTCUSDT"),
                ("side", side),
                ("type", kind),
                ("stopPrice", stop),
                ("closePosition", "true"),
                ("workingType", "MARK_PRICE"),
                ("newClientOrderId", client_id),
            ],
        )
        .await
    }

    async fn query(&self, client_id: &str) -> Answer {
        self.get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", client_id)],
        )
        .await
    }

    async fn position_amt(&self) -> Decimal {
        let risk = self
            .get("/fapi/v2/positionRisk", &[("symbol", "BTCUSDT")])
            .await;
        assert_eq!(risk.status, 200, "{}", risk.text);
        dec(&risk.json[0]["positionAmt"])
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
    }
}

/// A venue with one HMAC account of 10,000 USDT and BTC pinned at 60,000.
fn venue_with_account() -> (FakeVenue, FakeAccountId, HmacClient) {
    let venue = FakeVenue::start();
    let account = venue.add_hmac_account(KEY, SECRET, dec!(10000));
    venue.set_price("BTCUSDT", dec!(60000));
    let client = HmacClient::new(&venue, KEY, SECRET);
    (venue, account, client)
}

// ----- signatures and time -----

#[tokio::test]
async fn the_published_binance_vector_is_verified_byte_for_byte() {
    let venue = FakeVenue::start();
    venue.add_hmac_account(KEY, SECRET, dec!(100));
    let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1\
                   &recvWindow=5000&timestamp=1499827319559";
    let signature = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
    assert_eq!(hmac_hex(SECRET, payload), signature);
    // Move the fake's clock to the example's time so the timestamp is fresh.
    venue.set_clock_offset_ms(1_499_827_319_559 + 200 - local_ms());
    let client = HmacClient::new(&venue, KEY, SECRET);
    let a = client
        .raw(
            "POST",
            "/fapi/v1/order",
            &format!("{payload}&signature={signature}"),
        )
        .await;
    // Past the signature check: refused for the symbol, which the fake does not list.
    assert_eq!((a.status, a.code()), (400, -1121), "{}", a.text);
}

#[tokio::test]
async fn a_good_signature_is_accepted_and_bad_ones_refused() {
    let (_venue, _account, client) = venue_with_account();
    let ok = client.get("/fapi/v2/account", &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["totalWalletBalance"], "10000.00000000");

    // One character of the signature changed.
    let mut tampered = client.signed(&[("symbol", "BTCUSDT")], local_ms());
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == '0' { '1' } else { '0' });
    let bad = client.raw("GET", "/fapi/v2/positionRisk", &tampered).await;
    assert_eq!((bad.status, bad.code()), (400, -1022), "{}", bad.text);
    assert_eq!(bad.json["msg"], "Signature for this request is not valid.");

    // A parameter changed after signing.
    let signed = client.signed(&[("symbol", "BTCUSDT")], local_ms());
    let altered = signed.replace("BTCUSDT", "ETHUSDT");
    let bad = client.raw("GET", "/fapi/v2/positionRisk", &altered).await;
    assert_eq!(bad.code(), -1022);

    // The signature not last.
    let signed = client.signed(&[("symbol", "BTCUSDT")], local_ms());
    let moved = format!("{signed}&recvWindow=5000");
    let bad = client.raw("GET", "/fapi/v2/positionRisk", &moved).await;
    assert_eq!(bad.code(), -1022, "{}", bad.text);

    // No signature at all.
    let unsigned = format!("symbol=BTCUSDT&timestamp={}", local_ms());
    let bad = client.raw("GET", "/fapi/v2/positionRisk", &unsigned).await;
    assert_eq!((bad.status, bad.code()), (400, -1102), "{}", bad.text);

    // A POST signs its form body; a JSON body is not parameters.
    let http = reqwest::Client::new();
    let json_body = http
        .post(format!("{}/fapi/v1/leverage", client.base))
        .header("X-MBX-APIKEY", KEY)
        .header("Content-Type", "application/json")
        .body(client.signed(&[("symbol", "BTCUSDT"), ("leverage", "5")], local_ms()))
        .send()
        .await
        .expect("answer");
    let a = answer(json_body).await;
    assert_eq!(a.status, 400, "{}", a.text);
}

#[tokio::test]
async fn an_unknown_or_missing_api_key_is_refused() {
    let (venue, _account, _client) = venue_with_account();
    let stranger = HmacClient::new(&venue, "not-a-key", SECRET);
    let a = stranger.get("/fapi/v2/account", &[]).await;
    assert_eq!((a.status, a.code()), (401, -2015), "{}", a.text);
    assert_eq!(
        a.json["msg"],
        "Invalid API-key, IP, or permissions for action."
    );
    // Right key, wrong secret: the signature does not match.
    let wrong_secret = HmacClient::new(&venue, KEY, "another-secret");
    assert_eq!(
        wrong_secret.get("/fapi/v2/account", &[]).await.code(),
        -1022
    );
    let no_key = HmacClient::new(&venue, "", SECRET);
    let a = no_key.get("/fapi/v2/account", &[]).await;
    assert_eq!((a.status, a.code()), (401, -2014), "{}", a.text);
}

#[tokio::test]
async fn a_stale_timestamp_is_refused_and_the_clock_offset_moves_server_time() {
    let (venue, _account, client) = venue_with_account();
    let stale = client.signed(&[], local_ms() - 6_000);
    let a = client.raw("GET", "/fapi/v2/account", &stale).await;
    assert_eq!((a.status, a.code()), (400, -1021), "{}", a.text);
    assert_eq!(
        a.json["msg"],
        "Timestamp for this request is outside of the recvWindow."
    );
    // The same age inside a larger recvWindow passes.
    let windowed = client.signed(&[("recvWindow", "10000")], local_ms() - 6_000);
    assert_eq!(
        client
            .raw("GET", "/fapi/v2/account", &windowed)
            .await
            .status,
        200
    );
    // recvWindow above 60 s is refused.
    let huge = client.signed(&[("recvWindow", "60001")], local_ms());
    assert_eq!(
        client.raw("GET", "/fapi/v2/account", &huge).await.code(),
        -1131
    );

    // The venue's clock runs 7 s behind ours: our timestamps are in its future.
    venue.set_clock_offset_ms(-7_000);
    let time = reqwest::get(format!("{}/fapi/v1/time", venue.base_url()))
        .await
        .expect("time");
    let server: Value = time.json().await.expect("json");
    let server = server["serverTime"].as_i64().expect("serverTime");
    assert!((local_ms() - 7_000 - server).abs() < 1_000, "{server}");
    assert_eq!(client.get("/fapi/v2/account", &[]).await.code(), -1021);
    // A client that syncs to serverTime gets through.
    let synced = client.signed(&[], server);
    assert_eq!(
        client.raw("GET", "/fapi/v2/account", &synced).await.status,
        200
    );
}

// ----- orders and positions -----

#[tokio::test]
async fn a_market_order_fills_and_opens_a_position_seen_in_position_risk_and_account() {
    let (venue, account, client) = venue_with_account();
    let a = client.market("BUY", "0.010", "vx-open-1").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["status"], "FILLED");
    assert_eq!(a.json["clientOrderId"], "vx-open-1");
    assert_eq!(a.json["executedQty"], "0.010");
    assert_eq!(dec(&a.json["avgPrice"]), dec!(60000));
    assert_eq!(dec(&a.json["cumQuote"]), dec!(600));
    assert_eq!(a.json["positionSide"], "BOTH");
    assert!(a.json["orderId"].as_i64().is_some());

    let risk = client
        .get("/fapi/v2/positionRisk", &[("symbol", "BTCUSDT")])
        .await;
    let p = &risk.json[0];
    assert_eq!(p["positionAmt"], "0.010");
    assert_eq!(dec(&p["entryPrice"]), dec!(60000));
    assert_eq!(dec(&p["markPrice"]), dec!(60000));
    assert_eq!(p["leverage"], "20");
    assert_eq!(p["marginType"], "cross");
    assert_eq!(p["positionSide"], "BOTH");
    assert!(dec(&p["liquidationPrice"]) < dec!(60000));

    // Fee 0.04 % of 600 = 0.24.
    let acct = client.get("/fapi/v2/account", &[]).await;
    assert_eq!(dec(&acct.json["totalWalletBalance"]), dec!(9999.76));
    let btc = acct.json["positions"]
        .as_array()
        .expect("positions")
        .iter()
        .find(|p| p["symbol"] == "BTCUSDT")
        .expect("BTCUSDT");
    assert_eq!(btc["positionAmt"], "0.010");
    assert_eq!(venue.balance(account), dec!(9999.76));

    // The price moves: unrealized PnL; closing realizes it.
    venue.set_price("BTCUSDT", dec!(60500));
    let risk = client
        .get("/fapi/v2/positionRisk", &[("symbol", "BTCUSDT")])
        .await;
    assert_eq!(dec(&risk.json[0]["unRealizedProfit"]), dec!(5));
    let close = client.market("SELL", "0.010", "vx-close-1").await;
    assert_eq!(close.json["status"], "FILLED", "{}", close.text);
    assert!(venue.positions(account).is_empty());
    // 9999.76 + 5 - 0.242 fee
    assert_eq!(venue.balance(account), dec!(10004.518));
    let income = client
        .get("/fapi/v1/income", &[("incomeType", "REALIZED_PNL")])
        .await;
    assert_eq!(income.json.as_array().map(Vec::len), Some(1));
    assert_eq!(dec(&income.json[0]["income"]), dec!(5));
    let trades = client
        .get("/fapi/v1/userTrades", &[("symbol", "BTCUSDT")])
        .await;
    assert_eq!(trades.json.as_array().map(Vec::len), Some(2));
    assert_eq!(dec(&trades.json[1]["realizedPnl"]), dec!(5));
}

#[tokio::test]
async fn an_ack_reply_says_new_although_the_market_order_filled() {
    let (_venue, _account, client) = venue_with_account();
    let a = client
        .post(
            "/fapi/v1/order",
            &[
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("type", "MARKET"),
                ("quantity", "0.001"),
                ("newClientOrderId", "vx-ack"),
            ],
        )
        .await;
    assert_eq!(a.json["status"], "NEW", "{}", a.text);
    assert_eq!(a.json["executedQty"], "0.000");
    assert_eq!(client.query("vx-ack").await.json["status"], "FILLED");
}

#[tokio::test]
async fn a_tp_sl_pair_rests_and_only_the_tp_fills_when_the_price_crosses_it() {
    let (venue, account, client) = venue_with_account();
    assert_eq!(client.market("BUY", "0.010", "vx-e").await.status, 200);
    let tp = client
        .protect("SELL", "TAKE_PROFIT_MARKET", "61000", "vx-tp")
        .await;
    assert_eq!(tp.status, 200, "{}", tp.text);
    assert_eq!(tp.json["status"], "NEW");
    assert_eq!(tp.json["closePosition"], true);
    assert_eq!(tp.json["workingType"], "MARK_PRICE");
    let sl = client
        .protect("SELL", "STOP_MARKET", "59000", "vx-sl")
        .await;
    assert_eq!(sl.json["status"], "NEW", "{}", sl.text);
    let open = client
        .get("/fapi/v1/openOrders", &[("symbol", "BTCUSDT")])
        .await;
    assert_eq!(open.json.as_array().map(Vec::len), Some(2));

    venue.set_price("BTCUSDT", dec!(60999.9));
    assert_eq!(client.query("vx-tp").await.json["status"], "NEW");
    venue.set_price("BTCUSDT", dec!(61000));
    let tp = client.query("vx-tp").await;
    assert_eq!(tp.json["status"], "FILLED", "{}", tp.text);
    assert_eq!(tp.json["executedQty"], "0.010");
    assert_eq!(client.position_amt().await, Decimal::ZERO);
    // The stop loss is an orphan now: still open, the client must cancel it.
    let sl = client.query("vx-sl").await;
    assert_eq!(sl.json["status"], "NEW");
    assert_eq!(venue.open_orders(account).len(), 1);
    let cancel = client
        .delete(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "vx-sl")],
        )
        .await;
    assert_eq!(cancel.json["status"], "CANCELED", "{}", cancel.text);
    let again = client
        .delete(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "vx-sl")],
        )
        .await;
    assert_eq!(again.code(), -2011);
}

#[tokio::test]
async fn the_background_tick_triggers_a_stop_without_any_request() {
    let (venue, account, _client) = venue_with_account();
    // Pinned far above the walk (~60,000), a long with a stop at 90,000 rests...
    venue.set_price("BTCUSDT", dec!(100000));
    venue.open_position_by_hand(account, "BTCUSDT", dec!(0.01), dec!(100000));
    let sl = venue
        .place_order_by_hand(
            account,
            HandOrder {
                symbol: "BTCUSDT".into(),
                side: Side::Sell,
                order_type: OrderType::StopMarket,
                quantity: None,
                stop_price: Some(dec!(90000)),
                reduce_only: false,
                close_position: true,
            },
        )
        .expect("placed");
    assert_eq!(sl.status, OrderStatus::New);
    assert!(sl.client_order_id.starts_with("web_"));
    // ...until the price follows the walk again: no request, no set_price, only the
    // 100 ms tick notices.
    venue.clear_price_override("BTCUSDT");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !venue.open_orders(account).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(venue.positions(account).is_empty());
    let orders = venue.orders(account);
    assert_eq!(orders.last().map(|o| o.status), Some(OrderStatus::Filled));
}

#[tokio::test]
async fn a_client_order_id_is_refused_while_open_and_reusable_after_fill() {
    let (venue, account, client) = venue_with_account();
    assert_eq!(client.market("BUY", "0.010", "vx-1").await.status, 200);
    assert_eq!(
        client
            .protect("SELL", "STOP_MARKET", "59000", "vx-dup")
            .await
            .status,
        200
    );
    let dup = client
        .protect("SELL", "TAKE_PROFIT_MARKET", "61000", "vx-dup")
        .await;
    assert_eq!((dup.status, dup.code()), (400, -4116), "{}", dup.text);
    assert_eq!(dup.json["msg"], "ClientOrderId is duplicated.");
    // The filled market order's id is free again, like on the venue.
    let reuse = client.market("BUY", "0.001", "vx-1").await;
    assert_eq!(reuse.json["status"], "FILLED", "{}", reuse.text);
    assert_eq!(venue.order_count(account, "vx-1"), 2);
    assert_eq!(venue.order_count(account, "vx-dup"), 1);
}

#[tokio::test]
async fn orders_are_checked_like_the_venue_against_the_published_filters() {
    let (venue, _account, client) = venue_with_account();
    let order = |extra: Vec<(&'static str, &'static str)>| {
        let mut p = vec![("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET")];
        p.extend(extra);
        p
    };
    let cases: Vec<(Vec<(&str, &str)>, i64)> = vec![
        (order(vec![("quantity", "0.0105")]), -1111),
        (order(vec![("quantity", "121")]), -4005),
        (order(vec![("quantity", "0")]), -4003),
        (order(vec![("quantity", "0.00001")]), -1111),
        (order(vec![("quantity", "1,5")]), -1100),
        // 0.001 * 60,000 = 60 >= 5, but ETH: 0.001 * ~3,000 = 3 < 5.
        (
            vec![
                ("symbol", "ETHUSDT"),
                ("side", "BUY"),
                ("type", "MARKET"),
                ("quantity", "0.001"),
            ],
            -4164,
        ),
        // 10 BTC = 600,000 USDT at 20x needs 30,000 margin; the account has 10,000.
        (order(vec![("quantity", "10")]), -2019),
        (
            order(vec![("quantity", "0.01"), ("reduceOnly", "true")]),
            -2022,
        ),
        (
            order(vec![
                ("quantity", "0.01"),
                ("newClientOrderId", "no spaces"),
            ]),
            -1100,
        ),
        (
            order(vec![
                ("quantity", "0.01"),
                ("newClientOrderId", "a-client-order-id-that-is-too-long-37"),
            ]),
            -1100,
        ),
        (
            vec![
                ("symbol", "DOGEUSDT"),
                ("side", "BUY"),
                ("type", "MARKET"),
                ("quantity", "1"),
            ],
            -1121,
        ),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "SELL"),
                ("type", "STOP_MARKET"),
                ("stopPrice", "60100"),
                ("quantity", "0.01"),
            ],
            -2021,
        ),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "SELL"),
                ("type", "TAKE_PROFIT_MARKET"),
                ("stopPrice", "61000.05"),
                ("closePosition", "true"),
            ],
            -1111,
        ),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "SELL"),
                ("type", "STOP_MARKET"),
                ("stopPrice", "59000"),
                ("closePosition", "true"),
                ("quantity", "0.01"),
            ],
            -4137,
        ),
        (
            order(vec![("quantity", "0.01"), ("positionSide", "LONG")]),
            -4061,
        ),
        (
            vec![
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("type", "LIMIT"),
                ("quantity", "0.01"),
                ("price", "59000"),
                ("timeInForce", "GTC"),
            ],
            -1116,
        ),
    ];
    for (params, code) in cases {
        let a = client.post("/fapi/v1/order", &params).await;
        assert_eq!(a.code(), code, "{params:?}: {}", a.text);
        assert_eq!(a.status, 400, "{params:?}");
        assert!(a.json["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let notional = client
        .post(
            "/fapi/v1/order",
            &[
                ("symbol", "ETHUSDT"),
                ("side", "BUY"),
                ("type", "MARKET"),
                ("quantity", "0.001"),
            ],
        )
        .await;
    assert_eq!(
        notional.json["msg"],
        "Order's notional must be no smaller than 5.0 (unless you choose reduce only)."
    );

    // Settings.
    let lev = client
        .post(
            "/fapi/v1/leverage",
            &[("symbol", "BTCUSDT"), ("leverage", "5")],
        )
        .await;
    assert_eq!(lev.json["leverage"], 5, "{}", lev.text);
    assert_eq!(lev.json["symbol"], "BTCUSDT");
    assert!(lev.json["maxNotionalValue"].as_str().is_some());
    let mt = [("symbol", "BTCUSDT"), ("marginType", "CROSSED")];
    let same = client.post("/fapi/v1/marginType", &mt).await;
    assert_eq!((same.status, same.code()), (400, -4046), "{}", same.text);
    let iso = [("symbol", "BTCUSDT"), ("marginType", "ISOLATED")];
    assert_eq!(client.post("/fapi/v1/marginType", &iso).await.status, 200);
    let dual = client.get("/fapi/v1/positionSide/dual", &[]).await;
    assert_eq!(dual.json["dualSidePosition"], false);
    let no_change = client
        .post(
            "/fapi/v1/positionSide/dual",
            &[("dualSidePosition", "false")],
        )
        .await;
    assert_eq!(no_change.code(), -4059);
    let unknown = client
        .get(
            "/fapi/v1/order",
            &[("symbol", "BTCUSDT"), ("origClientOrderId", "never-sent")],
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (400, -2013));
    assert_eq!(unknown.json["msg"], "Order does not exist.");

    // Two closePosition stops in the same direction: the venue keeps one.
    venue.set_price("BTCUSDT", dec!(60000));
    assert_eq!(client.market("BUY", "0.010", "vx-pos").await.status, 200);
    let first = client
        .protect("SELL", "STOP_MARKET", "59000", "vx-sl-1")
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = client
        .protect("SELL", "STOP_MARKET", "58000", "vx-sl-2")
        .await;
    assert_eq!(second.code(), -4130, "{}", second.text);

    // With hedge mode switched on by the user, one-way orders are refused.
    venue.set_hedge_mode(_account, true);
    let hedged = client.market("BUY", "0.001", "vx-hedge").await;
    assert_eq!(hedged.code(), -4061, "{}", hedged.text);
}

// ----- faults -----

#[tokio::test]
async fn rate_limit_ban_and_server_error_do_not_execute_the_order() {
    let (venue, account, client) = venue_with_account();
    venue.inject(
        "/fapi/v1/order",
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
    );
    let a = client.market("BUY", "0.001", "vx-429").await;
    assert_eq!((a.status, a.code()), (429, -1003), "{}", a.text);
    assert_eq!(a.header("Retry-After").as_deref(), Some("7"));

    venue.inject("POST /fapi/v1/order", Fault::ServerError, 1);
    let a = client.market("BUY", "0.001", "vx-500").await;
    assert_eq!(a.status, 500, "{}", a.text);
    // Other paths are not affected by a path fault.
    assert_eq!(client.get("/fapi/v2/account", &[]).await.status, 200);
    assert_eq!(venue.order_count(account, "vx-"), 0);

    venue.inject(
        "/fapi/v1/order",
        Fault::Banned {
            retry_after_secs: 1,
        },
        1,
    );
    let a = client.market("BUY", "0.001", "vx-418").await;
    assert_eq!(a.status, 418, "{}", a.text);
    assert!(a.header("Retry-After").is_some());
    // Every request is refused until the ban ends, public ones too.
    assert_eq!(client.get("/fapi/v2/account", &[]).await.status, 418);
    let public = reqwest::get(format!("{}/fapi/v1/time", venue.base_url()))
        .await
        .expect("answer");
    assert_eq!(public.status().as_u16(), 418);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.get("/fapi/v2/account", &[]).await.status, 200);
    assert_eq!(venue.order_count(account, "vx-"), 0);
}

#[tokio::test]
async fn accept_then_503_executes_the_order_and_a_query_finds_it() {
    let (venue, account, client) = venue_with_account();
    venue.inject("POST /fapi/v1/order", Fault::AcceptThen503, 1);
    let a = client.market("BUY", "0.010", "vx-unknown").await;
    assert_eq!(a.status, 503);
    assert!(a.text.contains("<html>"), "{}", a.text);
    assert_eq!(a.json, Value::Null);
    // The outcome was unknown to the client; the venue has the order.
    let q = client.query("vx-unknown").await;
    assert_eq!(q.json["status"], "FILLED", "{}", q.text);
    assert_eq!(venue.order_count(account, "vx-unknown"), 1);
    assert_eq!(client.position_amt().await, dec!(0.010));
}

#[tokio::test]
async fn accept_then_stall_executes_the_order_while_the_client_times_out() {
    let (venue, account, client) = venue_with_account();
    venue.inject("/fapi/v1/order", Fault::AcceptThenStall { secs: 3 }, 1);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let payload = client.signed(
        &[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.010"),
            ("newClientOrderId", "vx-slow"),
        ],
        local_ms(),
    );
    let url = format!("{}/fapi/v1/order", venue.base_url());
    let sent = impatient
        .post(url)
        .header("X-MBX-APIKEY", KEY)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(payload)
        .send()
        .await;
    assert!(sent.is_err_and(|e| e.is_timeout()));
    assert_eq!(client.query("vx-slow").await.json["status"], "FILLED");
    assert_eq!(venue.order_count(account, "vx-slow"), 1);
}

#[tokio::test]
async fn an_injected_code_answers_with_the_venues_message_and_status() {
    let (venue, account, client) = venue_with_account();
    for (code, status, msg) in [
        (
            -1021,
            400,
            "Timestamp for this request is outside of the recvWindow.",
        ),
        (-2019, 400, "Margin is insufficient."),
        (
            -1111,
            400,
            "Precision is over the maximum defined for this asset.",
        ),
        (
            -4164,
            400,
            "Order's notional must be no smaller than 5.0 (unless you choose reduce only).",
        ),
        (
            -2015,
            401,
            "Invalid API-key, IP, or permissions for action.",
        ),
    ] {
        venue.inject("/fapi/v1/order", Fault::Code(code), 1);
        let a = client.market("BUY", "0.001", "vx-code").await;
        assert_eq!((a.status, a.code()), (status, code), "{}", a.text);
        assert_eq!(a.json["msg"], msg);
    }
    assert_eq!(venue.order_count(account, "vx-code"), 0);
    // Counted: two faults, two requests, then normal service.
    venue.inject("/fapi/v2/account", Fault::Code(-1001), 2);
    assert_eq!(client.get("/fapi/v2/account", &[]).await.status, 500);
    assert_eq!(client.get("/fapi/v2/account", &[]).await.status, 500);
    assert_eq!(client.get("/fapi/v2/account", &[]).await.status, 200);
}

#[tokio::test]
async fn held_order_replies_wait_until_released_but_the_order_is_executed() {
    let (venue, account, client) = venue_with_account();
    venue.hold_order_replies(true);
    let payload = client.signed(
        &[
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", "0.010"),
            ("newClientOrderId", "vx-held"),
            ("newOrderRespType", "RESULT"),
        ],
        local_ms(),
    );
    let base = venue.base_url().to_string();
    let pending = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(format!("{base}/fapi/v1/order"))
            .header("X-MBX-APIKEY", KEY)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(payload)
            .send()
            .await
            .expect("answer");
        answer(response).await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while venue.accepted_while_held() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(venue.accepted_while_held(), 1);
    assert_eq!(venue.orders(account)[0].status, OrderStatus::Filled);
    // Other requests are answered meanwhile.
    assert_eq!(client.query("vx-held").await.json["status"], "FILLED");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "the reply is held");
    venue.hold_order_replies(false);
    let a = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("released")
        .expect("task");
    assert_eq!(a.json["status"], "FILLED", "{}", a.text);
}

#[tokio::test]
async fn every_response_carries_the_weight_and_orders_their_count() {
    let (venue, _account, client) = venue_with_account();
    let public = reqwest::get(format!("{}/fapi/v1/time", venue.base_url()))
        .await
        .expect("answer");
    let first: u32 = public.headers()["X-MBX-USED-WEIGHT-1M"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let acct = client.get("/fapi/v2/account", &[]).await;
    let after: u32 = acct
        .header("X-MBX-USED-WEIGHT-1M")
        .and_then(|w| w.parse().ok())
        .expect("weight");
    // One shared counter: the account call (5) adds to the public one.
    assert!(after >= first + 5, "{first} -> {after}");
    assert!(acct.header("X-MBX-ORDER-COUNT-1M").is_none());
    let o1 = client.market("BUY", "0.001", "vx-c1").await;
    let o2 = client.market("BUY", "0.001", "vx-c2").await;
    assert_eq!(o1.header("X-MBX-ORDER-COUNT-1M").as_deref(), Some("1"));
    assert_eq!(o2.header("X-MBX-ORDER-COUNT-1M").as_deref(), Some("2"));
}

// ----- by-hand actions and funding -----

#[tokio::test]
async fn by_hand_actions_and_funding_show_up_like_on_the_website() {
    let (venue, account, client) = venue_with_account();
    venue.open_position_by_hand(account, "BTCUSDT", dec!(-0.02), dec!(60000));
    assert_eq!(client.position_amt().await, dec!(-0.020));
    let sl = client.protect("BUY", "STOP_MARKET", "61000", "vx-sl").await;
    assert_eq!(sl.status, 200, "{}", sl.text);

    // Shorts receive funding when the rate is positive: 0.02 * 60,000 * 0.0001 = 0.12.
    let before = venue.balance(account);
    venue.charge_funding("BTCUSDT", dec!(0.0001));
    assert_eq!(venue.balance(account) - before, dec!(0.12));
    let funding = client
        .get("/fapi/v1/income", &[("incomeType", "FUNDING_FEE")])
        .await;
    assert_eq!(
        dec(&funding.json[0]["income"]),
        dec!(0.12),
        "{}",
        funding.text
    );

    // The user closes it on the website: the client's stop stays, orphaned.
    let closed = venue
        .close_position_by_hand(account, "BTCUSDT")
        .expect("a position to close");
    assert!(closed.client_order_id.starts_with("web_"));
    assert!(venue.positions(account).is_empty());
    assert_eq!(venue.open_orders(account).len(), 1);
    // When it triggers there is nothing to close: it expires.
    venue.set_price("BTCUSDT", dec!(61000));
    assert_eq!(client.query("vx-sl").await.json["status"], "EXPIRED");
    assert!(venue.positions(account).is_empty());
    assert_eq!(venue.close_position_by_hand(account, "BTCUSDT"), None);
}

// ----- user data stream -----

/// What a user-stream WebSocket yields.
type Frame = Result<awc::ws::Frame, awc::error::WsProtocolError>;

async fn connect(venue: &FakeVenue, key: &str) -> impl futures_util::Stream<Item = Frame> + Unpin {
    let (_response, conn) = awc::Client::new()
        .ws(format!("{}/{key}", venue.ws_base_url()))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("ws connect: {e}"));
    conn
}

/// The next JSON text frame, or `None` when the server closed the stream (or 5 s
/// passed without one).
async fn next_event(conn: &mut (impl futures_util::Stream<Item = Frame> + Unpin)) -> Option<Value> {
    use futures_util::StreamExt;
    loop {
        let frame = actix_rt::time::timeout(Duration::from_secs(5), conn.next())
            .await
            .ok()??;
        match frame {
            Ok(awc::ws::Frame::Text(bytes)) => {
                return Some(serde_json::from_slice(&bytes).expect("JSON event"))
            }
            Ok(awc::ws::Frame::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn wait_for_streams(venue: &FakeVenue, account: FakeAccountId, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while venue.user_stream_count(account) != n && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(venue.user_stream_count(account), n);
}

#[actix_rt::test]
async fn the_user_stream_carries_order_and_account_updates_for_a_fill() {
    let (venue, account, client) = venue_with_account();
    // USER_STREAM endpoints need the API key only, no signature.
    let created = client.raw("POST", "/fapi/v1/listenKey", "").await;
    assert_eq!(created.status, 200, "{}", created.text);
    let key = created.json["listenKey"]
        .as_str()
        .expect("listenKey")
        .to_string();
    assert_eq!(key.len(), 64);
    let mut conn = connect(&venue, &key).await;
    wait_for_streams(&venue, account, 1).await;

    assert_eq!(client.market("BUY", "0.010", "vx-ws").await.status, 200);
    let mut events = Vec::new();
    while let Some(event) = next_event(&mut conn).await {
        let done = event["o"]["X"] == "FILLED";
        events.push(event);
        if done {
            break;
        }
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["e"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"]
    );
    let new = &events[0]["o"];
    assert_eq!(
        (new["c"].as_str(), new["x"].as_str()),
        (Some("vx-ws"), Some("NEW"))
    );
    let account_update = &events[1]["a"];
    assert_eq!(account_update["m"], "ORDER");
    assert_eq!(account_update["B"][0]["a"], "USDT");
    assert_eq!(dec(&account_update["B"][0]["wb"]), dec!(9999.76));
    assert_eq!(account_update["P"][0]["s"], "BTCUSDT");
    assert_eq!(account_update["P"][0]["pa"], "0.010");
    assert_eq!(dec(&account_update["P"][0]["ep"]), dec!(60000));
    assert_eq!(account_update["P"][0]["mt"], "cross");
    let fill = &events[2]["o"];
    assert_eq!(fill["x"], "TRADE");
    assert_eq!(fill["X"], "FILLED");
    assert_eq!(fill["S"], "BUY");
    assert_eq!(fill["o"], "MARKET");
    assert_eq!(fill["l"], "0.010");
    assert_eq!(fill["z"], "0.010");
    assert_eq!(dec(&fill["ap"]), dec!(60000));
    assert_eq!(dec(&fill["L"]), dec!(60000));
    assert_eq!(dec(&fill["n"]), dec!(0.24));
    assert_eq!(fill["N"], "USDT");
    assert_eq!(dec(&fill["rp"]), Decimal::ZERO);
    assert_eq!(fill["ps"], "BOTH");
    for field in ["i", "T", "t"] {
        assert!(fill[field].as_i64().is_some(), "o.{field}");
    }
    assert!(events[2]["E"].as_i64().is_some());

    // A triggered stop says what it was.
    let tp = client
        .protect("SELL", "TAKE_PROFIT_MARKET", "61000", "vx-ws-tp")
        .await;
    assert_eq!(tp.status, 200, "{}", tp.text);
    assert_eq!(next_event(&mut conn).await.expect("NEW")["o"]["X"], "NEW");
    venue.set_price("BTCUSDT", dec!(61000));
    let mut last = Value::Null;
    while let Some(event) = next_event(&mut conn).await {
        let done = event["o"]["X"] == "FILLED";
        last = event;
        if done {
            break;
        }
    }
    assert_eq!(last["o"]["c"], "vx-ws-tp");
    assert_eq!(last["o"]["o"], "MARKET");
    assert_eq!(last["o"]["ot"], "TAKE_PROFIT_MARKET");
    assert_eq!(last["o"]["cp"], true);
    assert_eq!(dec(&last["o"]["rp"]), dec!(10));

    // Keepalive works; the same key is handed out again while it lives.
    assert_eq!(
        client.raw("PUT", "/fapi/v1/listenKey", "").await.status,
        200
    );
    let again = client.raw("POST", "/fapi/v1/listenKey", "").await;
    assert_eq!(again.json["listenKey"], key.as_str());
}

#[actix_rt::test]
async fn dropped_streams_can_reconnect_and_expired_keys_cannot() {
    let (venue, account, client) = venue_with_account();
    let key = client.raw("POST", "/fapi/v1/listenKey", "").await.json["listenKey"]
        .as_str()
        .expect("listenKey")
        .to_string();
    let mut conn = connect(&venue, &key).await;
    wait_for_streams(&venue, account, 1).await;

    venue.drop_user_streams();
    assert_eq!(next_event(&mut conn).await, None, "closed by the venue");
    assert_eq!(venue.user_stream_count(account), 0);
    // The key is still good: reconnecting works.
    let mut conn = connect(&venue, &key).await;
    wait_for_streams(&venue, account, 1).await;

    venue.expire_listen_keys();
    let expired = next_event(&mut conn).await.expect("listenKeyExpired");
    assert_eq!(expired["e"], "listenKeyExpired");
    assert_eq!(expired["listenKey"], key.as_str());
    assert_eq!(next_event(&mut conn).await, None, "closed after expiry");
    let refused = awc::Client::new()
        .ws(format!("{}/{key}", venue.ws_base_url()))
        .connect()
        .await;
    assert!(refused.is_err(), "an expired key cannot connect");
    let keepalive = client.raw("PUT", "/fapi/v1/listenKey", "").await;
    assert_eq!((keepalive.status, keepalive.code()), (400, -1125));
    // A new key is a different one.
    let fresh = client.raw("POST", "/fapi/v1/listenKey", "").await;
    assert_ne!(fresh.json["listenKey"], key.as_str());
    // Closing it.
    assert_eq!(
        client.raw("DELETE", "/fapi/v1/listenKey", "").await.status,
        200
    );
    assert_eq!(
        client.raw("PUT", "/fapi/v1/listenKey", "").await.code(),
        -1125
    );
}

// ----- wallet signer (v3) -----

/// The published demonstration wallet (never funds).
const USER: &str = "0x63DD5aCC6b1aa0f563956C0e534DD30B6dcF7C4e";
const SIGNER: &str = "0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0";
const SIGNER_KEY: &str = "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81bae1";

fn wallet_credentials() -> Credentials {
    let key = WalletKey::from_secret(&Secret::new(SIGNER_KEY)).expect("demo key");
    Credentials::Wallet {
        user: USER.parse().expect("user address"),
        signer: key.address(),
        key,
    }
}

/// Signs with the crate's signer (`/fapi/v1/x` becomes `/fapi/v3/x`) at the fake's
/// time and sends it: query for GET/DELETE, form body for POST/PUT.
async fn wallet_send(
    venue: &FakeVenue,
    credentials: &Credentials,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    tamper: impl Fn(String) -> String,
) -> Answer {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let now = venue.server_time_ms();
    let signed = credentials
        .sign(path, &params, now, 5000, (now as u64) * 1000)
        .expect("signed");
    assert!(signed.path.starts_with("/fapi/v3/"), "{}", signed.path);
    assert_eq!(signed.api_key, None);
    let encoded = tamper(signed.encoded);
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let http = reqwest::Client::new();
    let request = if method == reqwest::Method::POST || method == reqwest::Method::PUT {
        http.request(method, format!("{}{}", venue.base_url(), signed.path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(encoded)
    } else {
        http.request(
            method,
            format!("{}{}?{encoded}", venue.base_url(), signed.path),
        )
    };
    answer(request.send().await.expect("answer")).await
}

#[tokio::test]
async fn a_wallet_signed_order_is_accepted_and_a_tampered_one_refused() {
    let venue = FakeVenue::start();
    venue.set_price("BTCUSDT", dec!(60000));
    let account = venue.add_wallet_account(USER, SIGNER, dec!(1000));
    let credentials = wallet_credentials();
    let same = |e: String| e;

    let acct = wallet_send(&venue, &credentials, "GET", "/fapi/v2/account", &[], same).await;
    assert_eq!(acct.status, 200, "{}", acct.text);
    assert_eq!(dec(&acct.json["totalWalletBalance"]), dec!(1000));

    let order = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.001"),
        ("newClientOrderId", "vx-wallet-1"),
        ("newOrderRespType", "RESULT"),
    ];
    let placed = wallet_send(&venue, &credentials, "POST", "/fapi/v1/order", &order, same).await;
    assert_eq!(placed.json["status"], "FILLED", "{}", placed.text);
    assert_eq!(venue.positions(account)[0].amount, dec!(0.001));

    // A business parameter changed after signing: the recovered signer differs.
    let bigger = |e: String| e.replace("quantity=0.001", "quantity=0.002");
    let tampered = wallet_send(
        &venue,
        &credentials,
        "POST",
        "/fapi/v1/order",
        &order,
        bigger,
    )
    .await;
    assert_eq!(
        (tampered.status, tampered.code()),
        (400, -1022),
        "{}",
        tampered.text
    );
    // The nonce changed after signing (it is part of the hash).
    let renonced = |e: String| {
        let (head, tail) = e.split_once("&nonce=").expect("nonce");
        let (nonce, rest) = tail.split_once('&').expect("after nonce");
        let nonce: u64 = nonce.parse().expect("digits");
        format!("{head}&nonce={}&{rest}", nonce + 1)
    };
    let bad = wallet_send(
        &venue,
        &credentials,
        "POST",
        "/fapi/v1/order",
        &order,
        renonced,
    )
    .await;
    assert_eq!(bad.code(), -1022, "{}", bad.text);
    assert_eq!(venue.order_count(account, "vx-wallet"), 1);

    // The wallet's own listen key, through the v3 signed form.
    let key = wallet_send(
        &venue,
        &credentials,
        "POST",
        "/fapi/v1/listenKey",
        &[],
        same,
    )
    .await;
    assert_eq!(
        key.json["listenKey"].as_str().map(str::len),
        Some(64),
        "{}",
        key.text
    );
}

#[tokio::test]
async fn a_wallet_request_needs_the_registered_signer_and_a_fresh_nonce() {
    let venue = FakeVenue::start();
    let credentials = wallet_credentials();
    let same = |e: String| e;
    // Unknown user.
    let a = wallet_send(&venue, &credentials, "GET", "/fapi/v2/account", &[], same).await;
    assert_eq!((a.status, a.code()), (401, -2015), "{}", a.text);
    // The user registered another API wallet: this signer is not it.
    venue.add_wallet_account(USER, "0x000000000000000000000000000000000000dEaD", dec!(1));
    let a = wallet_send(&venue, &credentials, "GET", "/fapi/v2/account", &[], same).await;
    assert_eq!(a.code(), -1022, "{}", a.text);

    let venue = FakeVenue::start();
    venue.add_wallet_account(USER, SIGNER, dec!(1));
    // Signed 6 s ago: the timestamp passes its 10 s window, the nonce (5 s) does not.
    let params: Vec<(String, String)> = vec![];
    let now = venue.server_time_ms();
    let six_seconds_ago = now - 6_000;
    let signed = credentials
        .sign(
            "/fapi/v2/account",
            &params,
            six_seconds_ago,
            10_000,
            (six_seconds_ago as u64) * 1000,
        )
        .expect("signed");
    let url = format!("{}{}?{}", venue.base_url(), signed.path, signed.encoded);
    let a = answer(reqwest::get(url).await.expect("answer")).await;
    assert_eq!((a.status, a.code()), (400, -1021), "{}", a.text);
    // The same request with the fake's clock 6 s behind: the nonce is fresh again.
    venue.set_clock_offset_ms(-6_000);
    let url = format!("{}{}?{}", venue.base_url(), signed.path, signed.encoded);
    let a = answer(reqwest::get(url).await.expect("answer")).await;
    assert_eq!(a.status, 200, "{}", a.text);
}
