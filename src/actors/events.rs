//! Domain events: what every dashboard, WebSocket client and test consumes.
//!
//! Every event is one JSON text frame
//! `{"channel","type","account_id","cycle_id","seq","ts","data"}`. `seq` is assigned by
//! the EventBus, strictly increasing over the whole process, so a client can detect a
//! gap. The JSON is rendered once, when the bus stamps the sequence number, and shared
//! by every session that receives it.

use crate::domain::types::{AccountId, CycleId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

/// The WebSocket channel an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Channel {
    /// Cycles, decisions, orders, fills, account status (`/ws/trading-events`).
    #[serde(rename = "trading-events")]
    TradingEvents,
    /// Market snapshots and venue health (`/ws/market-data`).
    #[serde(rename = "market-data")]
    MarketData,
    /// Positions and balances (`/ws/positions`).
    #[serde(rename = "positions")]
    Positions,
}

impl Channel {
    /// The name used in frames and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::TradingEvents => "trading-events",
            Channel::MarketData => "market-data",
            Channel::Positions => "positions",
        }
    }
}

/// An event before the bus stamps it.
#[derive(Clone, Debug)]
pub struct EventDraft {
    /// Channel.
    pub channel: Channel,
    /// Event type (`decision`, `order`, `fill`, `cycle_completed`, `snapshot`, ...).
    pub kind: &'static str,
    /// Owning account; `None` for shared market data.
    pub account_id: Option<AccountId>,
    /// Cycle it belongs to, if any.
    pub cycle_id: Option<CycleId>,
    /// Symbol it is about, if any (lets market-data subscribers filter by account).
    pub symbol: Option<String>,
    /// When it happened.
    pub ts: DateTime<Utc>,
    /// Payload.
    pub data: serde_json::Value,
}

impl EventDraft {
    /// A new event of an account, now.
    pub fn account(
        channel: Channel,
        kind: &'static str,
        account: &AccountId,
        cycle: Option<CycleId>,
        data: serde_json::Value,
    ) -> Self {
        EventDraft {
            channel,
            kind,
            account_id: Some(account.clone()),
            cycle_id: cycle,
            symbol: None,
            ts: Utc::now(),
            data,
        }
    }

    /// Sets the symbol the event is about.
    pub fn with_symbol(mut self, symbol: impl Into<String>) -> Self {
        self.symbol = Some(symbol.into());
        self
    }
}

/// A stamped event, rendered once to its JSON frame.
#[derive(Debug)]
pub struct BusEvent {
    /// Channel.
    pub channel: Channel,
    /// Event type.
    pub kind: &'static str,
    /// Owning account.
    pub account_id: Option<AccountId>,
    /// Symbol, if any.
    pub symbol: Option<String>,
    /// Sequence number.
    pub seq: u64,
    /// The frame as sent to clients.
    pub json: Arc<str>,
}

#[derive(Serialize)]
struct Frame<'a> {
    channel: Channel,
    #[serde(rename = "type")]
    kind: &'a str,
    account_id: Option<&'a AccountId>,
    cycle_id: Option<CycleId>,
    seq: u64,
    ts: DateTime<Utc>,
    data: &'a serde_json::Value,
}

impl BusEvent {
    /// Stamps a draft with its sequence number and renders the frame.
    pub fn stamp(draft: EventDraft, seq: u64) -> BusEvent {
        let frame = Frame {
            channel: draft.channel,
            kind: draft.kind,
            account_id: draft.account_id.as_ref(),
            cycle_id: draft.cycle_id,
            seq,
            ts: draft.ts,
            data: &draft.data,
        };
        let json = serde_json::to_string(&frame)
            .unwrap_or_else(|e| format!("{{\"error\":\"event not serialisable: {e}\"}}"));
        BusEvent {
            channel: draft.channel,
            kind: draft.kind,
            account_id: draft.account_id,
            symbol: draft.symbol,
            seq,
            json: json.into(),
        }
    }
}

/// Which events a subscriber wants.
#[derive(Clone, Debug)]
pub struct EventFilter {
    /// Only this channel.
    pub channel: Channel,
    /// Only this account's events (and shared market data of its symbols).
    pub account_id: Option<AccountId>,
    /// The symbols of that account (for shared market-data events).
    pub symbols: Vec<String>,
    /// The accounts the subscriber may see (its API key's scope); `None`: every
    /// account. An event of another account is never delivered; events of no account
    /// (shared market data) are.
    pub scope: Option<Arc<HashSet<String>>>,
    /// The name of the API key the subscription was opened with (`None`: no key): a
    /// reload that removes or changes that key ends the subscription.
    pub key_name: Option<Arc<str>>,
}

impl EventFilter {
    /// True when the subscriber should receive the event.
    pub fn accepts(&self, e: &BusEvent) -> bool {
        if e.channel != self.channel {
            return false;
        }
        if let (Some(scope), Some(account)) = (&self.scope, &e.account_id) {
            if !scope.contains(account.as_str()) {
                return false;
            }
        }
        match (&self.account_id, &e.account_id) {
            (None, _) => true,
            (Some(want), Some(got)) => want == got,
            (Some(_), None) => e
                .symbol
                .as_ref()
                .map(|s| self.symbols.iter().any(|x| x == s))
                .unwrap_or(false),
        }
    }
}
