//! The user data stream of one live account: a listen key, a WebSocket that delivers
//! `ORDER_TRADE_UPDATE` and `ACCOUNT_UPDATE` as they happen, a keepalive every 30
//! minutes, and reconnection with backoff. While the stream is down the account's
//! per-cycle reconciliation (polling) is what keeps vibex true to the venue.
//!
//! Entry point: [`run`] — runs until the returned future is dropped (the execution
//! actor owns it, so it stops with the account), reporting every event and every
//! up/down change through a callback.
//!
//! Invariants: the listen key is part of the URL and is never logged; a message that
//! cannot be read is logged and skipped, never fatal.

use crate::exchange::aster::trade::TradeClient;
use crate::exchange::aster::trade_wire::user_event;
use crate::exchange::venue::UserEvent;
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;

/// How often the listen key is kept alive (it expires after 60 minutes).
pub const KEEPALIVE: Duration = Duration::from_secs(30 * 60);

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the stream reports.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamSignal {
    /// Connected and listening.
    Up,
    /// Disconnected (why); polling takes over until it is back.
    Down(String),
    /// A venue event.
    Event(UserEvent),
}

/// Runs the stream for `client`'s account against `ws_base` (`wss://fstream.asterdex.com`,
/// the socket is `<ws_base>/ws/<listenKey>`), forever.
pub async fn run<F>(client: TradeClient, ws_base: String, log: slog::Logger, mut report: F)
where
    F: FnMut(StreamSignal),
{
    let base = ws_base.trim_end_matches('/').to_string();
    let mut failures: u32 = 0;
    loop {
        let reason = match session(&client, &base, &log, &mut report, &mut failures).await {
            Ok(reason) => reason,
            Err(reason) => reason,
        };
        report(StreamSignal::Down(reason.clone()));
        let wait = crate::backoff::full_jitter(Duration::from_millis(500), MAX_BACKOFF, failures)
            .max(Duration::from_millis(200));
        slog::warn!(log, "user data stream down; reconnecting";
            "reason" => reason, "wait_ms" => u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        failures = failures.saturating_add(1);
        tokio::time::sleep(wait).await;
    }
}

/// One connection: from a new listen key until the socket ends. Returns why it ended.
async fn session<F>(
    client: &TradeClient,
    base: &str,
    log: &slog::Logger,
    report: &mut F,
    failures: &mut u32,
) -> Result<String, String>
where
    F: FnMut(StreamSignal),
{
    let key = client
        .new_listen_key()
        .await
        .map_err(|e| format!("no listen key: {e}"))?;
    let url = format!("{base}/ws/{key}");
    let (_, mut socket) = awc::Client::builder()
        .max_http_version(awc::http::Version::HTTP_11)
        .finish()
        .ws(url)
        .max_frame_size(1 << 20)
        .connect()
        .await
        .map_err(|e| format!("could not connect the user data stream: {e}"))?;
    slog::info!(log, "user data stream connected");
    report(StreamSignal::Up);
    *failures = 0;
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = keepalive.tick() => {
                if let Err(e) = client.keepalive_listen_key(&key).await {
                    slog::warn!(log, "listen key keepalive failed"; "error" => %e);
                    return Err(format!("keepalive failed: {e}"));
                }
            }
            frame = socket.next() => {
                let Some(frame) = frame else {
                    return Ok("the venue closed the stream".into());
                };
                let frame = frame.map_err(|e| format!("stream error: {e}"))?;
                match frame {
                    ws::Frame::Text(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        match user_event(&text) {
                            Ok(UserEvent::ListenKeyExpired) => {
                                return Ok("the listen key expired".into());
                            }
                            Ok(event) => report(StreamSignal::Event(event)),
                            Err(e) => slog::warn!(log, "unreadable user stream message"; "error" => e),
                        }
                    }
                    ws::Frame::Ping(payload) => {
                        socket
                            .send(ws::Message::Pong(payload))
                            .await
                            .map_err(|e| format!("could not answer a ping: {e}"))?;
                    }
                    ws::Frame::Close(reason) => {
                        return Ok(format!("closed by the venue: {reason:?}"));
                    }
                    ws::Frame::Binary(_) | ws::Frame::Pong(_) | ws::Frame::Continuation(_) => {}
                }
            }
        }
    }
}
