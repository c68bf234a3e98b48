//! EventBus: fans domain events out to WebSocket sessions (filtered by channel and
//! account), stamping each with a process-wide sequence number.
//!
//! Invariant: the bus never buffers for a subscriber. It hands each event to the
//! subscriber's bounded mailbox with `try_send`; a full mailbox means the client cannot
//! keep up, and the subscriber is dropped and told so (its session then closes).
//! Memory per client is therefore bounded by its mailbox capacity.

use crate::actors::events::BusEvent;
use crate::actors::messages::*;
use actix::prelude::*;
use slog::{info, warn, Logger};
use std::collections::HashMap;
use std::sync::Arc;

struct Subscriber {
    filter: crate::actors::events::EventFilter,
    events: Recipient<Deliver>,
    evicted: Recipient<Evicted>,
}

/// The fan-out actor (one per process).
pub struct EventBus {
    seq: u64,
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    log: Logger,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new(log: Logger) -> Self {
        EventBus {
            seq: 0,
            next_id: 1,
            subscribers: HashMap::new(),
            log: log.new(slog::o!("component" => "event_bus")),
        }
    }
}

/// Publishers use `do_send`, which never waits on the bus's mailbox capacity.
impl Actor for EventBus {
    type Context = Context<Self>;
}

impl Handler<Publish> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Self::Context) {
        self.seq += 1;
        let event = Arc::new(BusEvent::stamp(msg.0, self.seq));
        let mut dropped = Vec::new();
        for (id, sub) in &self.subscribers {
            if !sub.filter.accepts(&event) {
                continue;
            }
            match sub.events.try_send(Deliver(event.clone())) {
                Ok(()) => {}
                Err(SendError::Full(_)) => dropped.push((*id, true)),
                Err(SendError::Closed(_)) => dropped.push((*id, false)),
            }
        }
        for (id, slow) in dropped {
            if let Some(sub) = self.subscribers.remove(&id) {
                if slow {
                    warn!(self.log, "subscriber cannot keep up; disconnecting it";
                        "subscription" => id, "channel" => sub.filter.channel.as_str());
                    sub.evicted.do_send(Evicted {
                        reason: "client too slow: its event buffer is full".into(),
                    });
                }
            }
        }
    }
}

impl Handler<Subscribe> for EventBus {
    type Result = u64;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        info!(self.log, "subscriber added"; "subscription" => id,
            "channel" => msg.filter.channel.as_str(),
            "account_id" => msg.filter.account_id.as_ref().map(|a| a.to_string()));
        self.subscribers.insert(
            id,
            Subscriber {
                filter: msg.filter,
                events: msg.events,
                evicted: msg.evicted,
            },
        );
        id
    }
}

impl Handler<Unsubscribe> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        if self.subscribers.remove(&msg.0).is_some() {
            info!(self.log, "subscriber removed"; "subscription" => msg.0);
        }
    }
}

impl Handler<RevokeKeys> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: RevokeKeys, _: &mut Self::Context) {
        let revoked: Vec<u64> = self
            .subscribers
            .iter()
            .filter(|(_, sub)| {
                sub.filter
                    .key_name
                    .as_deref()
                    .is_some_and(|name| msg.0.iter().any(|r| r == name))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in revoked {
            if let Some(sub) = self.subscribers.remove(&id) {
                let name = sub.filter.key_name.as_deref().unwrap_or_default();
                info!(self.log, "subscriber's API key was revoked or changed; disconnecting it";
                    "subscription" => id, "key_name" => name);
                sub.evicted.do_send(Evicted {
                    reason: format!(
                        "the API key {name:?} was removed or changed by a reload; reconnect \
                         with a valid key"
                    ),
                });
            }
        }
    }
}

impl Handler<SubscriberCount> for EventBus {
    type Result = usize;

    fn handle(&mut self, _: SubscriberCount, _: &mut Self::Context) -> usize {
        self.subscribers.len()
    }
}
