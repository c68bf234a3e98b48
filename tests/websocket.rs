//! WebSocket sessions: a client that stops answering pings is dropped; a client that
//! cannot keep up is disconnected instead of being buffered without bound.

mod common;

use actix::prelude::*;
use common::daemon::{Daemon, WsClient};
use common::fake_venue::FakeVenue;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use vibex::actors::event_bus::EventBus;
use vibex::actors::events::{Channel, EventDraft, EventFilter};
use vibex::actors::messages::{Deliver, Evicted, Publish, Subscribe, SubscriberCount};
use vibex::domain::types::AccountId;

#[actix_rt::test]
async fn a_silent_client_is_dropped_and_a_live_one_stays() {
    let venue = FakeVenue::start();
    let db = common::pg::test_db();
    let yaml = format!(
        r#"
api:
  ws_ping_interval: 1s
  ws_client_timeout: 3s
accounts:
  - id: a1
    asterdex: {{ base_url: {} }}
    llm_model: builtin/hold
    assets: [BTC]
    interval: 1s
"#,
        venue.base_url()
    );
    let d = Daemon::start(&yaml, Some(&db.url), &[]);
    let live = WsClient::connect(&d, "/ws/trading-events?account_id=a1").await;

    // A raw client: completes the handshake, then never sends another byte.
    let addr = d.base.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        write!(
            s,
            "GET /ws/trading-events HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let mut first = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (Some(started.elapsed()), first),
                Ok(n) => {
                    if first.is_empty() {
                        first = buf[..n].to_vec();
                    }
                }
                Err(_) => return (None, first),
            }
        }
    })
    .await
    .unwrap();
    let (elapsed, first) = closed_after;
    assert!(
        String::from_utf8_lossy(&first).starts_with("HTTP/1.1 101"),
        "handshake accepted"
    );
    let elapsed = elapsed.expect("the server closed the silent client");
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(8),
        "dropped after the 3 s timeout, got {elapsed:?}"
    );
    // The client that answers pings is still being served.
    let before = live.frames().len();
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert!(
        live.frames().len() > before,
        "live client still receives events"
    );
    assert!(d
        .log_file("app.log")
        .contains("client stopped answering pings"));
}

/// A subscriber that takes 20 ms per event, with the session's bounded mailbox.
struct SlowClient {
    capacity: usize,
    received: usize,
    evicted: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Actor for SlowClient {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.capacity);
    }
}

impl Handler<Deliver> for SlowClient {
    type Result = ();
    fn handle(&mut self, _: Deliver, _: &mut Self::Context) {
        self.received += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Handler<Evicted> for SlowClient {
    type Result = ();
    fn handle(&mut self, msg: Evicted, ctx: &mut Self::Context) {
        *self.evicted.lock().unwrap() = Some(msg.reason);
        ctx.stop();
    }
}

#[actix_rt::test]
async fn a_client_that_cannot_keep_up_is_disconnected_not_buffered() {
    let bus = EventBus::new(vibex::telemetry::discard()).start();
    let evicted = std::sync::Arc::new(std::sync::Mutex::new(None));
    let flag = evicted.clone();
    // The slow client runs on its own thread, like a session on a server worker.
    let arbiter = Arbiter::new();
    let slow = SlowClient::start_in_arbiter(&arbiter.handle(), move |_| SlowClient {
        capacity: vibex::api::ws_session::MAILBOX,
        received: 0,
        evicted: flag,
    });
    bus.send(Subscribe {
        filter: EventFilter {
            channel: Channel::TradingEvents,
            account_id: None,
            symbols: vec![],
            scope: None,
            key_name: None,
        },
        events: slow.clone().recipient(),
        evicted: slow.clone().recipient(),
    })
    .await
    .unwrap();
    let account = AccountId::new("a1");
    for i in 0..2_000 {
        bus.do_send(Publish(EventDraft::account(
            Channel::TradingEvents,
            "decision",
            &account,
            None,
            serde_json::json!({"n": i}),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while evicted.lock().unwrap().is_none() && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let reason = evicted
        .lock()
        .unwrap()
        .clone()
        .expect("slow client evicted");
    assert!(reason.contains("too slow"), "{reason}");
    assert_eq!(bus.send(SubscriberCount).await.unwrap(), 0);
    arbiter.stop();
}
