//! The signed AsterDEX client (`TradeClient`, `user_stream::run`) against the loopback
//! fake venue, one journey per behaviour a user relies on: a protected entry in both
//! signing modes, no duplicate order when the venue's answer is lost, clock drift,
//! rate limits and bans, venue refusals, the user data stream, and secrets that never
//! show up in errors or debug output.
//!
//! Every test starts its own fake (its own port, hence its own per-base-URL gate).

mod common;

use common::fake_trading::{FakeAccountId, Fault, MarginType, OrderStatus, OrderType, WorkingType};
use common::fake_venue::FakeVenue;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use vibex::domain::orders::OrderStatus as VenueStatus;
use vibex::domain::types::{Side, Symbol};
use vibex::exchange::aster::sign::{Credentials, WalletKey};
use vibex::exchange::aster::trade::TradeClient;
use vibex::exchange::aster::user_stream::{self, StreamSignal};
use vibex::exchange::aster::RetryPolicy;
use vibex::exchange::error::VenueError;
use vibex::exchange::venue::UserEvent;
use vibex::exchange::venue::{OrderKind, OrderRequest};
use vibex::secret::Secret;

/// The Binance documentation's example API key and secret (no funds behind them).
const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
/// AsterDEX's published wallet-signer example (demonstration keys only).
const USER: &str = "0x63DD5aCC6b1aa0f563956C0e534DD30B6dcF7C4e";
const SIGNER: &str = "0x21cF8Ae13Bb72632562c6Fff438652Ba1a151bb0";
const SIGNER_KEY: &str = "0x4fd0a42218f3eae43a6ce26d22544e986139a01e5b34a62db53757ffca81bae1";

const ORDER_PATH: &str = "/fapi/v1/order";

fn hmac_credentials(secret: &str) -> Credentials {
    Credentials::Hmac {
        api_key: Secret::new(KEY),
        api_secret: Secret::new(secret),
    }
}

fn wallet_credentials() -> Credentials {
    Credentials::Wallet {
        user: USER.parse().expect("user address"),
        signer: SIGNER.parse().expect("signer address"),
        key: WalletKey::from_secret(&Secret::new(SIGNER_KEY)).expect("demo key"),
    }
}

/// Quick retries, a generous per-request timeout (loopback answers in milliseconds).
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
    }
}

fn client(venue: &FakeVenue, creds: Credentials, policy: RetryPolicy) -> TradeClient {
    TradeClient::new(venue.base_url(), creds, 5_000, policy).expect("loopback base URL")
}

/// A fake venue, one account on it and the client of that account.
struct Desk {
    venue: FakeVenue,
    account: FakeAccountId,
    client: TradeClient,
}

impl Desk {
    fn hmac(balance: Decimal) -> Desk {
        Desk::hmac_with(balance, policy())
    }

    fn hmac_with(balance: Decimal, policy: RetryPolicy) -> Desk {
        let venue = FakeVenue::start();
        let account = venue.add_hmac_account(KEY, SECRET, balance);
        let client = client(&venue, hmac_credentials(SECRET), policy);
        Desk {
            venue,
            account,
            client,
        }
    }

    fn wallet(balance: Decimal) -> Desk {
        let venue = FakeVenue::start();
        let account = venue.add_wallet_account(USER, SIGNER, balance);
        let client = client(&venue, wallet_credentials(), policy());
        Desk {
            venue,
            account,
            client,
        }
    }

    /// Requests that reached the fake with `method` on `path` (any version segment:
    /// wallet requests go to `/fapi/v3/...`).
    fn hits(&self, method: &str, path: &str) -> usize {
        let tail = path
            .trim_start_matches("/fapi/v1")
            .trim_start_matches("/fapi/v2");
        self.venue
            .request_log()
            .iter()
            .filter(|r| {
                r.method == method && r.path.starts_with("/fapi/v") && r.path.ends_with(tail)
            })
            .count()
    }
}

fn sym(s: &str) -> Symbol {
    Symbol(s.to_string())
}

fn market(symbol: &str, side: Side, qty: Decimal, coid: &str) -> OrderRequest {
    OrderRequest {
        symbol: sym(symbol),
        side,
        kind: OrderKind::Market,
        quantity: Some(qty),
        stop_price: None,
        reduce_only: false,
        close_position: false,
        client_order_id: coid.to_string(),
    }
}

/// A close-position TP or SL trigger at the mark price.
fn trigger(symbol: &str, side: Side, kind: OrderKind, stop: Decimal, coid: &str) -> OrderRequest {
    OrderRequest {
        symbol: sym(symbol),
        side,
        kind,
        quantity: None,
        stop_price: Some(stop),
        reduce_only: true,
        close_position: true,
        client_order_id: coid.to_string(),
    }
}

/// Runs `attempt` until it returns `Some`, or panics with `what` after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------
// A protected entry, in both signing modes
// ---------------------------------------------------------------------------------

/// Clock, settings, a MARKET long with its TP and SL on the exit side; the venue shows
/// one position and two triggers; the TP fires when the price crosses it.
async fn protected_long_is_opened_and_closed_by_its_take_profit(desk: Desk) {
    let Desk {
        venue,
        account,
        client,
    } = &desk;
    let btc = sym("BTCUSDT");
    venue.set_price("BTCUSDT", dec!(60000));

    let offset = client.sync_time().await.expect("server time");
    assert!(
        offset.abs() < 1_000,
        "the fake runs on our clock: {offset} ms"
    );
    assert!(!client.is_hedge_mode().await.expect("position mode"));
    client
        .set_margin_type(&btc, "ISOLATED")
        .await
        .expect("margin type");
    client
        .set_margin_type(&btc, "ISOLATED")
        .await
        .expect("asking again for the margin type it has is not an error");
    client.set_leverage(&btc, 5).await.expect("leverage");

    let entry = client
        .place_order(&market("BTCUSDT", Side::Buy, dec!(0.010), "vx-lc-entry"))
        .await
        .expect("entry");
    assert_eq!(entry.status, VenueStatus::Filled);
    assert_eq!(entry.executed_qty, dec!(0.010));
    assert_eq!(entry.avg_price, Some(dec!(60000)));
    let tp = client
        .place_order(&trigger(
            "BTCUSDT",
            Side::Sell,
            OrderKind::TakeProfitMarket,
            dec!(61000),
            "vx-lc-tp",
        ))
        .await
        .expect("take profit");
    let sl = client
        .place_order(&trigger(
            "BTCUSDT",
            Side::Sell,
            OrderKind::StopMarket,
            dec!(59000),
            "vx-lc-sl",
        ))
        .await
        .expect("stop loss");
    assert_eq!((tp.status.as_str(), sl.status.as_str()), ("NEW", "NEW"));

    // What the exchange website would show.
    let positions = venue.positions(*account);
    assert_eq!(positions.len(), 1, "{positions:?}");
    let p = &positions[0];
    assert_eq!(
        (p.symbol, p.amount, p.entry_price, p.leverage, p.margin_type),
        ("BTCUSDT", dec!(0.010), dec!(60000), 5, MarginType::Isolated)
    );
    let open = venue.open_orders(*account);
    assert_eq!(open.len(), 2, "{open:?}");
    for (coid, kind, stop) in [
        ("vx-lc-tp", OrderType::TakeProfitMarket, dec!(61000)),
        ("vx-lc-sl", OrderType::StopMarket, dec!(59000)),
    ] {
        let o = open
            .iter()
            .find(|o| o.client_order_id == coid)
            .unwrap_or_else(|| panic!("{coid} is not open: {open:?}"));
        assert_eq!(o.order_type, kind, "{coid}");
        assert_eq!(o.side, common::fake_trading::Side::Sell, "{coid}");
        assert_eq!(o.stop_price, stop, "{coid}");
        assert!(o.close_position, "{coid}");
        assert_eq!(o.working_type, WorkingType::MarkPrice, "{coid}");
    }

    // The client reads the same account.
    let snap = client.snapshot().await.expect("snapshot");
    assert_eq!(snap.positions.len(), 1);
    assert_eq!(snap.positions[0].amount, dec!(0.010));
    assert_eq!(snap.positions[0].leverage, 5);
    assert_eq!(snap.positions[0].margin_type, "isolated");
    assert_eq!(snap.open_orders.len(), 2);

    // The price crosses the TP: the position is closed at a profit.
    let wallet_before = venue.balance(*account);
    venue.set_price("BTCUSDT", dec!(61000.5));
    assert!(venue.positions(*account).is_empty(), "the TP closed it");
    let tp_now = client
        .query_order(&btc, "vx-lc-tp")
        .await
        .expect("query")
        .expect("the venue knows the TP");
    assert_eq!(tp_now.status, VenueStatus::Filled);
    assert_eq!(tp_now.executed_qty, dec!(0.010));
    assert!(
        venue.balance(*account) > wallet_before,
        "a profit was booked"
    );
    let sl_now = venue
        .orders(*account)
        .into_iter()
        .find(|o| o.client_order_id == "vx-lc-sl")
        .expect("the SL exists");
    assert_eq!(
        sl_now.status,
        OrderStatus::New,
        "the venue leaves the other trigger open: cancelling it is vibex's job"
    );
    assert!(client.positions().await.expect("positions").is_empty());
}

#[actix_rt::test]
async fn hmac_account_opens_a_protected_long_and_its_take_profit_closes_it() {
    protected_long_is_opened_and_closed_by_its_take_profit(Desk::hmac(dec!(10000))).await;
}

#[actix_rt::test]
async fn wallet_account_opens_a_protected_long_and_its_take_profit_closes_it() {
    let desk = Desk::wallet(dec!(10000));
    assert_eq!(desk.client.signing_mode(), "wallet");
    protected_long_is_opened_and_closed_by_its_take_profit(desk).await;
}

// ---------------------------------------------------------------------------------
// Lost answers: never a duplicate order
// ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn an_order_accepted_then_answered_503_is_found_by_its_id_and_not_sent_again() {
    let desk = Desk::hmac(dec!(10000));
    desk.venue.set_price("BTCUSDT", dec!(60000));
    desk.venue
        .inject("POST /fapi/v1/order", Fault::AcceptThen503, 1);

    let order = desk
        .client
        .place_order(&market("BTCUSDT", Side::Buy, dec!(0.010), "vx-lc-503"))
        .await
        .expect("the order is found by its client order id");

    assert_eq!(order.client_order_id, "vx-lc-503");
    assert_eq!(order.status, VenueStatus::Filled);
    assert_eq!(order.executed_qty, dec!(0.010));
    assert_eq!(desk.venue.order_count(desk.account, "vx-lc-503"), 1);
    assert_eq!(desk.venue.positions(desk.account)[0].amount, dec!(0.010));
    assert_eq!(desk.hits("POST", ORDER_PATH), 1, "sent once");
    assert_eq!(desk.hits("GET", ORDER_PATH), 1, "looked up once");
}

#[actix_rt::test]
async fn an_order_whose_answer_stalls_past_the_timeout_is_found_and_not_sent_again() {
    let desk = Desk::hmac_with(
        dec!(10000),
        RetryPolicy {
            timeout: Duration::from_secs(1),
            ..policy()
        },
    );
    desk.venue.set_price("BTCUSDT", dec!(60000));
    desk.client.sync_time().await.expect("server time");
    desk.venue
        .inject("POST /fapi/v1/order", Fault::AcceptThenStall { secs: 4 }, 1);

    let started = Instant::now();
    let order = desk
        .client
        .place_order(&market("BTCUSDT", Side::Buy, dec!(0.010), "vx-lc-stall"))
        .await
        .expect("the order is found by its client order id");

    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the client did not wait for the stalled answer: {:?}",
        started.elapsed()
    );
    assert_eq!(order.client_order_id, "vx-lc-stall");
    assert_eq!(order.status, VenueStatus::Filled);
    assert_eq!(desk.venue.order_count(desk.account, "vx-lc-stall"), 1);
    assert_eq!(desk.venue.positions(desk.account)[0].amount, dec!(0.010));
    assert_eq!(desk.hits("POST", ORDER_PATH), 1, "sent once");
}

#[actix_rt::test]
async fn an_order_the_venue_failed_before_accepting_is_sent_again_once_with_the_same_id() {
    let desk = Desk::hmac(dec!(10000));
    desk.venue.set_price("BTCUSDT", dec!(60000));
    desk.client.sync_time().await.expect("server time");

    // A 500 and a 503 (with the venue's -1001 body), neither executed.
    let failures: [(&str, &dyn Fn()); 2] = [
        ("vx-lc-500", &|| {
            desk.venue
                .inject("POST /fapi/v1/order", Fault::ServerError, 1)
        }),
        ("vx-lc-503", &|| desk.venue.fail_next(1, 503)),
    ];
    for (n, (coid, fail)) in failures.iter().enumerate() {
        fail();
        let side = if n == 0 { Side::Buy } else { Side::Sell };
        let order = desk
            .client
            .place_order(&market("BTCUSDT", side, dec!(0.010), coid))
            .await
            .expect("placed by the second send");

        assert_eq!(order.client_order_id, *coid);
        assert_eq!(order.status, VenueStatus::Filled);
        assert_eq!(desk.venue.order_count(desk.account, coid), 1, "{coid}");
        assert_eq!(
            desk.venue.orders(desk.account).len(),
            n + 1,
            "no other order"
        );
        assert_eq!(desk.hits("POST", ORDER_PATH), 2 * (n + 1), "sent twice");
        assert_eq!(desk.hits("GET", ORDER_PATH), n + 1, "looked up in between");
    }
    assert!(
        desk.venue.positions(desk.account).is_empty(),
        "bought, then sold"
    );
}

#[actix_rt::test]
async fn an_order_that_fails_twice_stays_unknown_and_is_not_sent_a_third_time() {
    let desk = Desk::hmac(dec!(10000));
    desk.venue.set_price("BTCUSDT", dec!(60000));
    desk.venue
        .inject("POST /fapi/v1/order", Fault::ServerError, 2);

    let err = desk
        .client
        .place_order(&market("BTCUSDT", Side::Buy, dec!(0.010), "vx-lc-2x500"))
        .await
        .expect_err("two failures leave the outcome unknown");

    match &err {
        VenueError::OutcomeUnknown {
            client_order_id, ..
        } => assert_eq!(client_order_id, "vx-lc-2x500"),
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    assert!(desk.venue.orders(desk.account).is_empty());
    assert_eq!(desk.hits("POST", ORDER_PATH), 2);
    assert_eq!(desk.hits("GET", ORDER_PATH), 2);
}

// ---------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_timestamp_refusal_resyncs_the_clock_and_the_request_goes_through() {
    let desk = Desk::hmac(dec!(10000));
    desk.client.sync_time().await.expect("server time");
    assert_eq!(desk.hits("GET", "/fapi/v1/time"), 1);
    desk.venue.inject("/fapi/v2/account", Fault::Code(-1021), 1);

    let balance = desk.client.balance().await.expect("balance after a resync");

    assert_eq!(balance.wallet_balance, dec!(10000));
    assert_eq!(desk.hits("GET", "/fapi/v1/time"), 2, "resynced once");
    assert_eq!(desk.hits("GET", "/fapi/v2/account"), 2, "asked twice");
}

#[actix_rt::test]
async fn a_venue_clock_seconds_ahead_is_measured_and_signed_requests_follow_it() {
    // Wallet signing checks both `timestamp` and the µs `nonce` against the clock.
    let desk = Desk::wallet(dec!(10000));
    let offset = desk.client.sync_time().await.expect("server time");
    assert!(offset.abs() < 1_000, "{offset}");

    // The venue's clock jumps 7 s ahead: the next signed request is refused -1021,
    // the client measures the new offset and sends it again.
    desk.venue.set_clock_offset_ms(7_000);
    let positions = desk.client.positions().await.expect("positions");
    assert!(positions.is_empty());
    let measured = desk.client.clock_offset_ms();
    assert!(
        (measured - 7_000).abs() < 500,
        "the client follows the venue's clock: {measured} ms"
    );
    assert_eq!(desk.hits("GET", "/fapi/v1/time"), 2);

    // sync_time itself reports it.
    desk.venue.set_clock_offset_ms(9_000);
    let measured = desk.client.sync_time().await.expect("server time");
    assert!((measured - 9_000).abs() < 500, "{measured}");
    desk.client.balance().await.expect("balance");
}

#[actix_rt::test]
async fn a_venue_clock_seconds_behind_is_measured_and_signed_requests_follow_it() {
    let desk = Desk::hmac(dec!(10000));
    desk.venue.set_clock_offset_ms(-6_000);
    let measured = desk.client.sync_time().await.expect("server time");
    assert!((measured + 6_000).abs() < 500, "{measured}");
    desk.client.balance().await.expect("balance");
    assert_eq!(desk.hits("GET", "/fapi/v2/account"), 1, "accepted at once");
}

/// After the venue's clock moves back by more than the 5 s nonce tolerance, a resync
/// brings the wallet nonces back with it (they used to stay ahead of the venue's
/// window, and every wallet-signed request was refused -1021 until the wall clock
/// caught up).
#[actix_rt::test]
async fn wallet_requests_recover_when_the_venue_clock_moves_back() {
    let desk = Desk::wallet(dec!(10000));
    desk.venue.set_clock_offset_ms(7_000);
    desk.client.sync_time().await.expect("server time");
    desk.client.balance().await.expect("balance at +7 s");

    desk.venue.set_clock_offset_ms(-4_000);
    let measured = desk.client.sync_time().await.expect("server time");
    assert!((measured + 4_000).abs() < 500, "{measured}");
    desk.client
        .balance()
        .await
        .expect("balance once the clock is measured again");
}

// ---------------------------------------------------------------------------------
// Rate limits, bans, exchange-side errors
// ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_read_answered_429_waits_its_retry_after_and_succeeds() {
    let desk = Desk::hmac(dec!(10000));
    desk.client.sync_time().await.expect("server time");
    desk.venue.inject(
        "/fapi/v2/positionRisk",
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );

    let started = Instant::now();
    let positions = desk.client.positions().await.expect("positions");

    assert!(positions.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(desk.hits("GET", "/fapi/v2/positionRisk"), 2);
    assert_eq!(desk.client.gate().status().rate_limited, 1);
}

#[actix_rt::test]
async fn a_retry_after_longer_than_the_client_may_wait_is_reported_not_hammered() {
    let desk = Desk::hmac(dec!(10000));
    desk.client.sync_time().await.expect("server time");
    desk.venue.inject(
        "/fapi/v2/account",
        Fault::RateLimited {
            retry_after_secs: 30,
        },
        1,
    );

    let started = Instant::now();
    let err = desk
        .client
        .balance()
        .await
        .expect_err("30 s is beyond max_delay");
    assert!(
        matches!(err, VenueError::RateLimited { .. }),
        "expected RateLimited, got {err:?}"
    );
    // The cool-down holds the other calls back too, without sending them.
    let err = desk.client.positions().await.expect_err("cooling down");
    assert!(matches!(err, VenueError::RateLimited { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(desk.hits("GET", "/fapi/v2/account"), 1);
    assert_eq!(desk.hits("GET", "/fapi/v2/positionRisk"), 0);
}

#[actix_rt::test]
async fn a_ban_stops_every_request_to_that_venue_until_it_ends_and_no_other() {
    let desk = Desk::hmac(dec!(10000));
    let other = Desk::hmac(dec!(10000));
    desk.venue.set_price("BTCUSDT", dec!(60000));
    desk.client.sync_time().await.expect("server time");
    other.client.sync_time().await.expect("server time");
    // A second account behind the same IP and base URL shares the ban.
    let neighbour = client(&desk.venue, hmac_credentials(SECRET), policy());
    neighbour.sync_time().await.expect("server time");

    desk.venue.inject(
        "/fapi/v2/account",
        Fault::Banned {
            retry_after_secs: 2,
        },
        1,
    );
    let err = desk.client.balance().await.expect_err("banned");
    let banned_at = Instant::now();
    match &err {
        VenueError::Banned { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(2)))
        }
        other => panic!("expected Banned, got {other:?}"),
    }
    let reached = desk.venue.request_log().len();

    // Refused here, without a request reaching the venue.
    let refusals = [
        desk.client.positions().await.map(|_| ()),
        desk.client.open_orders(None).await.map(|_| ()),
        desk.client.sync_time().await.map(|_| ()),
        desk.client.new_listen_key().await.map(|_| ()),
        desk.client
            .place_order(&market("BTCUSDT", Side::Buy, dec!(0.010), "vx-lc-ban"))
            .await
            .map(|_| ()),
        neighbour.balance().await.map(|_| ()),
    ];
    for (i, r) in refusals.iter().enumerate() {
        assert!(
            matches!(r, Err(VenueError::Banned { .. })),
            "call {i} during the ban: {r:?}"
        );
    }
    assert_eq!(desk.venue.request_log().len(), reached, "nothing was sent");
    assert!(desk.client.gate().banned_until().is_some());

    // Another venue (another base URL) is not affected.
    other
        .client
        .balance()
        .await
        .expect("the other venue answers");

    // Once the ban is over, requests flow again.
    let balance = eventually("the ban to end", Duration::from_secs(6), || async {
        match desk.client.balance().await {
            Ok(b) => Some(b),
            Err(VenueError::Banned { .. }) => None,
            Err(e) => panic!("unexpected error after the ban: {e:?}"),
        }
    })
    .await;
    assert_eq!(balance.wallet_balance, dec!(10000));
    assert!(banned_at.elapsed() >= Duration::from_millis(1_900));
    assert_eq!(
        desk.venue.request_log().len(),
        reached + 1,
        "the first request after the ban is the one that went through"
    );
    assert_eq!(desk.venue.order_count(desk.account, "vx-lc-ban"), 0);
}

#[actix_rt::test]
async fn a_read_answered_500_is_retried_and_succeeds() {
    let desk = Desk::hmac(dec!(10000));
    desk.client.sync_time().await.expect("server time");
    desk.venue
        .inject("/fapi/v1/openOrders", Fault::ServerError, 2);

    let open = desk.client.open_orders(None).await.expect("open orders");

    assert!(open.is_empty());
    assert_eq!(desk.hits("GET", "/fapi/v1/openOrders"), 3);
}

#[actix_rt::test]
async fn orders_the_venue_refuses_return_its_code_and_nothing_is_placed() {
    // 100 USDT: enough for small orders, not for 0.1 BTC at 20x (300 USDT of margin).
    let desk = Desk::hmac(dec!(100));
    desk.venue.set_price("BTCUSDT", dec!(60000));
    desk.venue.set_price("SOLUSDT", dec!(150));
    desk.client.sync_time().await.expect("server time");

    let refused = [
        (
            -2019,
            market("BTCUSDT", Side::Buy, dec!(0.1), "vx-lc-margin"),
        ),
        (
            -1111,
            market("BTCUSDT", Side::Buy, dec!(0.0005), "vx-lc-step"),
        ),
        (
            -4164,
            market("SOLUSDT", Side::Buy, dec!(0.01), "vx-lc-notional"),
        ),
    ];
    for (code, order) in &refused {
        let posts = desk.hits("POST", ORDER_PATH);
        let err = desk
            .client
            .place_order(order)
            .await
            .expect_err("the venue refuses it");
        assert!(
            matches!(err, VenueError::Api { code: c, .. } if c == *code),
            "{}: expected Api {code}, got {err:?}",
            order.client_order_id
        );
        assert_eq!(
            desk.venue.order_count(desk.account, &order.client_order_id),
            0
        );
        assert_eq!(desk.hits("POST", ORDER_PATH), posts + 1, "not sent again");
    }
    assert_eq!(
        desk.hits("GET", ORDER_PATH),
        0,
        "a refusal is no unknown outcome"
    );
    assert!(desk.venue.orders(desk.account).is_empty());
    assert!(desk.venue.positions(desk.account).is_empty());

    // The same refusals injected on an order the venue would accept.
    for code in [-2019, -1111, -4164] {
        desk.venue
            .inject("POST /fapi/v1/order", Fault::Code(code), 1);
        let coid = format!("vx-lc-inj{}", -code);
        let err = desk
            .client
            .place_order(&market("BTCUSDT", Side::Buy, dec!(0.001), &coid))
            .await
            .expect_err("refused");
        assert_eq!(err.venue_code(), Some(code), "{err:?}");
        assert_eq!(desk.venue.order_count(desk.account, &coid), 0);
    }
    assert!(desk.venue.orders(desk.account).is_empty());
}

// ---------------------------------------------------------------------------------
// User data stream
// ---------------------------------------------------------------------------------

/// The next signal `pick` accepts (others are skipped), within `limit`.
async fn next_signal<T>(
    rx: &mut UnboundedReceiver<StreamSignal>,
    limit: Duration,
    what: &str,
    mut pick: impl FnMut(&StreamSignal) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(signal)) => {
                if let Some(found) = pick(&signal) {
                    return found;
                }
            }
            Ok(None) => panic!("{what}: the stream task ended"),
            Err(_) => panic!("{what}: nothing within {limit:?}"),
        }
    }
}

/// Places a MARKET order and waits for its fill on the stream.
async fn fill_arrives(
    desk: &Desk,
    rx: &mut UnboundedReceiver<StreamSignal>,
    side: Side,
    coid: &str,
) {
    desk.client
        .place_order(&market("BTCUSDT", side, dec!(0.010), coid))
        .await
        .expect("order");
    let (status, qty) = next_signal(rx, Duration::from_secs(5), coid, |s| match s {
        StreamSignal::Event(UserEvent::Order {
            order,
            trade: Some(trade),
        }) if order.client_order_id == coid => Some((order.status, trade.quantity)),
        _ => None,
    })
    .await;
    assert_eq!((status.as_str(), qty), ("FILLED", dec!(0.010)), "{coid}");
}

async fn user_stream_delivers_fills_and_survives_drops_and_expiry(desk: Desk) {
    desk.venue.set_price("BTCUSDT", dec!(60000));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let ws_base = desk.venue.ws_base_url().trim_end_matches("/ws").to_string();
    let stream = actix_rt::spawn(user_stream::run(
        desk.client.clone(),
        ws_base,
        slog::Logger::root(slog::Discard, slog::o!()),
        move |signal| {
            let _ = tx.send(signal);
        },
    ));
    let up = |s: &StreamSignal| matches!(s, StreamSignal::Up).then_some(());
    let down = |s: &StreamSignal| match s {
        StreamSignal::Down(reason) => Some(reason.clone()),
        _ => None,
    };
    let wait = Duration::from_secs(5);

    next_signal(&mut rx, wait, "connected", up).await;
    assert_eq!(desk.venue.user_stream_count(desk.account), 1);
    fill_arrives(&desk, &mut rx, Side::Buy, "vx-lc-ws-1").await;

    // The venue drops the socket: the client reconnects and events flow again.
    desk.venue.drop_user_streams();
    next_signal(&mut rx, wait, "down after the drop", down).await;
    next_signal(&mut rx, wait, "reconnected", up).await;
    fill_arrives(&desk, &mut rx, Side::Sell, "vx-lc-ws-2").await;

    // The listen key expires: the client takes a new one.
    let keys = desk.hits("POST", "/fapi/v1/listenKey");
    desk.venue.expire_listen_keys();
    let reason = next_signal(&mut rx, wait, "down after the expiry", down).await;
    assert!(reason.contains("expired"), "{reason}");
    next_signal(&mut rx, wait, "reconnected with a new key", up).await;
    assert_eq!(desk.hits("POST", "/fapi/v1/listenKey"), keys + 1);
    assert_eq!(desk.venue.user_stream_count(desk.account), 1);
    fill_arrives(&desk, &mut rx, Side::Buy, "vx-lc-ws-3").await;

    stream.abort();
}

#[actix_rt::test]
async fn hmac_user_stream_delivers_fills_and_survives_drops_and_key_expiry() {
    user_stream_delivers_fills_and_survives_drops_and_expiry(Desk::hmac(dec!(10000))).await;
}

#[actix_rt::test]
async fn wallet_user_stream_delivers_fills_and_survives_drops_and_key_expiry() {
    user_stream_delivers_fills_and_survives_drops_and_expiry(Desk::wallet(dec!(10000))).await;
}

// ---------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------

/// Fails when `text` contains a secret or a piece of a signed query.
fn assert_clean(what: &str, text: &str) {
    let key_hex = SIGNER_KEY.trim_start_matches("0x");
    for secret in [SECRET, KEY, key_hex, &key_hex.to_uppercase()] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
    for piece in ["signature=", "timestamp=", "nonce="] {
        assert!(!text.contains(piece), "{what} shows a signed query: {text}");
    }
}

#[actix_rt::test]
async fn no_error_or_debug_output_shows_the_api_secret_or_the_private_key() {
    let venue = FakeVenue::start();
    // The venue knows other credentials: every signed request is refused -1022.
    venue.add_hmac_account(KEY, "another-secret", dec!(10));
    venue.add_wallet_account(USER, "0x000000000000000000000000000000000000dEaD", dec!(10));
    let hmac = client(&venue, hmac_credentials(SECRET), policy());
    let wallet = client(&venue, wallet_credentials(), policy());
    let quick = RetryPolicy {
        max_retries: 1,
        base_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(1),
        ..policy()
    };

    let mut outputs: Vec<(String, String)> = Vec::new();
    for (name, c) in [("hmac", &hmac), ("wallet", &wallet)] {
        outputs.push((format!("{name} client Debug"), format!("{c:?}")));
        let err = c.balance().await.expect_err("bad signature");
        assert_eq!(err.venue_code(), Some(-1022), "{name}: {err:?}");
        outputs.push((format!("{name} error"), err.to_string()));
        outputs.push((format!("{name} error Debug"), format!("{err:?}")));
        let err = c
            .place_order(&market("BTCUSDT", Side::Buy, dec!(0.001), "vx-lc-secret"))
            .await
            .expect_err("bad signature");
        outputs.push((format!("{name} order error"), format!("{err} / {err:?}")));
    }

    // A transport failure on a signed GET (the URL carries the signature).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        format!("http://127.0.0.1:{port}")
    };
    for creds in [hmac_credentials(SECRET), wallet_credentials()] {
        let c = TradeClient::new(&closed, creds, 5_000, quick).expect("client");
        let err = c.open_orders(None).await.expect_err("nothing listens");
        assert!(
            matches!(err, VenueError::Transport { .. }),
            "expected Transport, got {err:?}"
        );
        outputs.push(("transport error".into(), format!("{err} / {err:?}")));
    }

    // An order whose answer is lost: the unknown-outcome error.
    let desk = Desk::hmac_with(
        dec!(10000),
        RetryPolicy {
            timeout: Duration::from_millis(500),
            ..quick
        },
    );
    desk.client.sync_time().await.expect("server time");
    desk.venue.set_price("BTCUSDT", dec!(60000));
    desk.venue
        .inject("/fapi/v1/order", Fault::AcceptThenStall { secs: 3 }, 3);
    let err = desk
        .client
        .place_order(&market("BTCUSDT", Side::Buy, dec!(0.001), "vx-lc-lost"))
        .await
        .expect_err("the lookup stalls too");
    assert!(
        matches!(err, VenueError::OutcomeUnknown { .. }),
        "expected OutcomeUnknown, got {err:?}"
    );
    outputs.push(("unknown outcome".into(), format!("{err} / {err:?}")));

    for (what, text) in &outputs {
        assert_clean(what, text);
    }
}
