//! WsSession: one actor per WebSocket client, fed straight from the EventBus.
//!
//! Invariants: the session's mailbox is bounded ([`MAILBOX`] events); when it is full the
//! bus drops the subscription and the session closes with a policy-violation close frame
//! (a slow client is disconnected, never buffered without bound). The server pings every
//! `ping_interval`; a client that has not answered (any frame counts) within
//! `client_timeout` is dropped.

use crate::actors::event_bus::EventBus;
use crate::actors::events::EventFilter;
use crate::actors::messages::{Deliver, Evicted, Subscribe, Unsubscribe};
use actix::prelude::*;
use actix_web_actors::ws;
use slog::{debug, info, Logger};
use std::time::{Duration, Instant};

/// Events a session may have queued before it counts as too slow.
pub const MAILBOX: usize = 256;

/// One WebSocket client.
pub struct WsSession {
    filter: EventFilter,
    bus: Addr<EventBus>,
    subscription: Option<u64>,
    last_seen: Instant,
    ping_interval: Duration,
    client_timeout: Duration,
    log: Logger,
}

impl WsSession {
    /// A session that will receive the events `filter` accepts.
    pub fn new(
        filter: EventFilter,
        bus: Addr<EventBus>,
        ping_interval: Duration,
        client_timeout: Duration,
        log: &Logger,
    ) -> Self {
        let log = log.new(slog::o!("component" => "ws_session",
            "channel" => filter.channel.as_str(),
            "account_id" => filter.account_id.as_ref().map(|a| a.to_string())));
        WsSession {
            filter,
            bus,
            subscription: None,
            last_seen: Instant::now(),
            ping_interval,
            client_timeout,
            log,
        }
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        ctx.run_interval(self.ping_interval, |act, ctx| {
            if act.last_seen.elapsed() > act.client_timeout {
                info!(act.log, "client stopped answering pings; dropping it");
                ctx.stop();
                return;
            }
            ctx.ping(b"vibex");
        });
        let subscribe = Subscribe {
            filter: self.filter.clone(),
            events: ctx.address().recipient(),
            evicted: ctx.address().recipient(),
        };
        self.bus
            .send(subscribe)
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(id) => act.subscription = Some(id),
                Err(_) => ctx.stop(),
            })
            .wait(ctx);
        debug!(self.log, "websocket client connected");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(id) = self.subscription.take() {
            self.bus.do_send(Unsubscribe(id));
        }
        debug!(self.log, "websocket client gone");
    }
}

impl Handler<Deliver> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        ctx.text(&*msg.0.json);
    }
}

impl Handler<Evicted> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Evicted, ctx: &mut Self::Context) {
        self.subscription = None;
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(msg.reason),
        }));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        match msg {
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(e) => {
                info!(self.log, "websocket protocol error; closing"; "error" => e.to_string());
                ctx.stop();
            }
        }
    }
}
