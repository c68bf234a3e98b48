//! The AsterDEX market-data client against the loopback fake venue: what a market-data
//! actor sees when the venue answers, stumbles, rate-limits or goes down.

mod common;

use common::fake_venue::FakeVenue;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::time::{Duration, Instant};
use vibex::domain::types::Symbol;
use vibex::exchange::aster::{MarketClient, RetryPolicy};
use vibex::exchange::error::VenueError;

fn btc() -> Symbol {
    Symbol("BTCUSDT".into())
}

/// Quick retries so failure paths finish fast.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
    }
}

fn client(venue: &FakeVenue) -> MarketClient {
    MarketClient::new(venue.base_url(), quick()).unwrap()
}

#[tokio::test]
async fn exchange_info_gives_tick_and_step_not_display_precision() {
    let venue = FakeVenue::start();
    let info = client(&venue).exchange_info().await.unwrap();

    assert_eq!(info.symbols.len(), 3);
    assert!(info.skipped.is_empty(), "{:?}", info.skipped);
    assert_eq!(info.request_weight_per_minute(), Some(2400));
    let rules = info.rules(&btc()).unwrap();
    assert!(rules.is_trading());
    assert_eq!(rules.tick_size, Some(dec!(0.1)));
    assert_eq!(rules.step_size, Some(dec!(0.001)));
    assert_eq!(rules.min_notional, Some(dec!(5)));
    assert_eq!(rules.market_max_qty, Some(dec!(120)));
    // pricePrecision is 2 and quantityPrecision 4 on the wire: rounding uses the filters.
    assert_eq!(rules.round_price(dec!(60000.06)), dec!(60000.1));
    assert_eq!(rules.floor_quantity(dec!(0.0129), true), dec!(0.012));
    let sol = info.rules(&Symbol("SOLUSDT".into())).unwrap();
    assert_eq!(sol.step_size, Some(dec!(0.01)));
}

#[tokio::test]
async fn klines_run_oldest_first_up_to_the_open_candle() {
    let venue = FakeVenue::start();
    let client = client(&venue);
    for (interval, minutes) in [("1m", 1), ("5m", 5), ("4h", 240), ("1d", 1440)] {
        let before = chrono::Utc::now();
        let candles = client.klines(&btc(), interval, 100).await.unwrap();
        let after = chrono::Utc::now();
        assert_eq!(candles.len(), 100, "{interval}");
        for pair in candles.windows(2) {
            let step = pair[1].open_time - pair[0].open_time;
            assert_eq!(step.num_minutes(), minutes, "{interval}");
        }
        let last = candles.last().unwrap();
        // The last candle holds the venue's "now", which lies between our two reads.
        assert!(
            last.open_time <= after,
            "{interval}: last candle is in the future"
        );
        assert!(
            last.close_time >= before,
            "{interval}: last candle is already closed"
        );
        for c in &candles {
            assert!(c.low <= c.open && c.open <= c.high, "{interval}: {c:?}");
            assert!(c.low <= c.close && c.close <= c.high, "{interval}: {c:?}");
            assert!(
                c.close > dec!(40000) && c.close < dec!(80000),
                "{interval}: {c:?}"
            );
        }
    }
}

#[tokio::test]
async fn all_intervals_agree_on_the_current_price() {
    let venue = FakeVenue::start();
    venue.set_price("ETHUSDT", dec!(3123.45));
    let client = client(&venue);
    let eth = Symbol("ETHUSDT".into());
    for interval in ["1m", "3m", "15m", "1h", "4h", "1d"] {
        let candles = client.klines(&eth, interval, 3).await.unwrap();
        assert_eq!(candles.last().unwrap().close, dec!(3123.45), "{interval}");
    }
}

#[tokio::test]
async fn price_override_shows_in_last_close_and_mark_price() {
    let venue = FakeVenue::start();
    let client = client(&venue);
    venue.set_price("BTCUSDT", dec!(51234.5));

    let candles = client.klines(&btc(), "5m", 10).await.unwrap();
    let last = candles.last().unwrap();
    assert_eq!(last.close, dec!(51234.5));
    assert!(last.low <= dec!(51234.5));
    let premium = client.premium_index(&btc()).await.unwrap();
    assert_eq!(premium.mark_price, dec!(51234.5));

    venue.clear_price_override("BTCUSDT");
    let premium = client.premium_index(&btc()).await.unwrap();
    assert_ne!(premium.mark_price, dec!(51234.5));
}

#[tokio::test]
async fn prices_move_from_one_second_to_the_next() {
    let venue = FakeVenue::start();
    let client = client(&venue);
    let mut marks = Vec::new();
    for _ in 0..3 {
        marks.push(client.premium_index(&btc()).await.unwrap().mark_price);
        tokio::time::sleep(Duration::from_millis(1050)).await;
    }
    // Consecutive seconds inside a minute always differ; at most one pair can straddle
    // a minute boundary.
    assert!(marks[0] != marks[1] || marks[1] != marks[2], "{marks:?}");
}

#[tokio::test]
async fn premium_index_and_open_interest_are_read() {
    let venue = FakeVenue::start();
    let client = client(&venue);
    let now = chrono::Utc::now();

    let premium = client.premium_index(&btc()).await.unwrap();
    assert_eq!(premium.symbol, btc());
    assert!(premium.index_price < premium.mark_price);
    assert!(premium.last_funding_rate.abs() <= dec!(0.003));
    assert!(premium.next_funding_time > now);
    assert!(premium.next_funding_time - now <= chrono::Duration::minutes(8 * 60 + 1));
    assert!((premium.time - now).num_seconds().abs() < 5);

    let oi = client.open_interest(&btc()).await.unwrap();
    assert_eq!(oi.symbol, btc());
    assert!(oi.open_interest > dec!(7000) && oi.open_interest < dec!(9000));

    let server = client.server_time().await.unwrap();
    assert!((server - now).num_seconds().abs() < 5);
    client.ping().await.unwrap();
}

#[tokio::test]
async fn transient_server_errors_are_retried_until_success() {
    let venue = FakeVenue::start();
    venue.fail_next(2, 500);
    let time = client(&venue).server_time().await;
    assert!(time.is_ok(), "{time:?}");
    assert_eq!(venue.requests("/fapi/v1/time"), 3);
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let venue = FakeVenue::start();
    venue.rate_limit_next(1, 1);
    let started = Instant::now();
    client(&venue).server_time().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(venue.requests("/fapi/v1/time"), 2);
}

#[tokio::test]
async fn a_retry_after_longer_than_a_call_may_wait_is_handed_back() {
    let venue = FakeVenue::start();
    venue.rate_limit_next(1, 60);
    let started = Instant::now();
    let err = client(&venue).server_time().await.unwrap_err();
    assert_eq!(
        err,
        VenueError::RateLimited {
            endpoint: "/fapi/v1/time".into(),
            retry_after: Some(Duration::from_secs(60)),
        }
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(venue.requests("/fapi/v1/time"), 1);
}

#[tokio::test]
async fn a_venue_that_stays_down_fails_after_max_retries_naming_the_endpoint() {
    let venue = FakeVenue::start();
    let client = client(&venue);
    venue.set_down(true);
    let err = client.klines(&btc(), "5m", 50).await.unwrap_err();
    assert!(matches!(err, VenueError::Http { status: 503, .. }), "{err}");
    assert!(err.to_string().starts_with("/fapi/v1/klines: "), "{err}");
    assert!(!err.to_string().contains("127.0.0.1"), "{err}");
    assert_eq!(venue.requests("/fapi/v1/klines"), 3);

    venue.set_down(false);
    assert_eq!(client.klines(&btc(), "5m", 50).await.unwrap().len(), 50);
}

#[tokio::test]
async fn unknown_symbol_is_a_venue_refusal_without_retry() {
    let venue = FakeVenue::start();
    let err = client(&venue)
        .klines(&Symbol("NOPEUSDT".into()), "5m", 10)
        .await
        .unwrap_err();
    assert_eq!(err.venue_code(), Some(-1121));
    assert_eq!(
        err.to_string(),
        "/fapi/v1/klines: venue refused the request (HTTP 400, code -1121): Invalid symbol."
    );
    assert_eq!(venue.requests("/fapi/v1/klines"), 1);
}

#[tokio::test]
async fn bad_parameters_are_refused_like_the_venue_does() {
    let venue = FakeVenue::start();
    let client = client(&venue);
    let err = client.klines(&btc(), "7m", 10).await.unwrap_err();
    assert_eq!(err.venue_code(), Some(-1120));
    let err = client.klines(&btc(), "5m", 1501).await.unwrap_err();
    assert_eq!(err.venue_code(), Some(-1130));
    assert_eq!(client.klines(&btc(), "5m", 1500).await.unwrap().len(), 1500);
}

#[tokio::test]
async fn a_banned_ip_is_not_retried() {
    let venue = FakeVenue::start();
    venue.fail_next(1, 418);
    let err = client(&venue).exchange_info().await.unwrap_err();
    assert!(matches!(err, VenueError::Banned { .. }), "{err}");
    assert_eq!(venue.requests("/fapi/v1/exchangeInfo"), 1);
}

#[tokio::test]
async fn used_weight_follows_the_venue_header() {
    let venue = FakeVenue::start();
    let client = client(&venue);
    assert_eq!(client.used_weight(), 0);
    client.klines(&btc(), "1m", 500).await.unwrap();
    let after_one = client.used_weight();
    assert!(after_one >= 5, "{after_one}");
    client.clone().klines(&btc(), "1m", 500).await.unwrap();
    assert!(client.used_weight() > after_one);
}

#[tokio::test]
async fn an_unreachable_venue_is_a_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = MarketClient::new(&format!("http://127.0.0.1:{port}"), quick()).unwrap();
    let err = client.server_time().await.unwrap_err();
    assert!(matches!(err, VenueError::Transport { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .starts_with("/fapi/v1/time: could not reach the venue"),
        "{err}"
    );
}

#[test]
fn the_fake_runs_without_an_async_runtime_and_stops_on_drop() {
    let venue = FakeVenue::start();
    let base = venue.base_url().to_string();
    assert!(venue.current_price("SOLUSDT") > Decimal::ZERO);
    assert!(std::net::TcpStream::connect(base.trim_start_matches("http://")).is_ok());
    drop(venue);
    assert!(std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err());
}
