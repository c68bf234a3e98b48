//! Order identity and lifecycle vocabulary. A client order id is derived from (account,
//! cycle, asset, leg), so the same order asked for twice — a retry, a restart replaying
//! a cycle — carries the same id and the venue (or the unique index on
//! `orders.client_order_id`) refuses the duplicate. Ids match the venue's
//! `^[.A-Z:/a-z0-9_-]{1,36}$`.
//!
//! [`OrderStatus`] and [`OrderType`] are the typed words of an order's life: the venue's
//! statuses plus vibex's own `PENDING_NEW` (written, not yet sent) and `UNKNOWN` (sent,
//! outcome not settled). Text appears only at the edges (wire formats, database rows),
//! through [`OrderStatus::parse`] / [`OrderStatus::as_str`] and their twins.

use crate::domain::types::{AccountId, Asset, CycleId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// vibex wrote the order's row and has not heard from the venue yet (its own status).
    PendingNew,
    /// Working on the venue.
    New,
    /// Working, partly filled.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled (by vibex, by hand, or by the venue).
    Canceled,
    /// Expired on the venue.
    Expired,
    /// Refused: by the venue, or by vibex before sending (the symbol's rules).
    Rejected,
    /// Sent, but the answer never came or could not be read; reconciliation settles it.
    Unknown,
}

impl OrderStatus {
    /// Every status, for validation and documentation.
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::PendingNew,
        OrderStatus::New,
        OrderStatus::PartiallyFilled,
        OrderStatus::Filled,
        OrderStatus::Canceled,
        OrderStatus::Expired,
        OrderStatus::Rejected,
        OrderStatus::Unknown,
    ];

    /// The word stored and shown (`NEW`, `FILLED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingNew => "PENDING_NEW",
            OrderStatus::New => "NEW",
            OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Canceled => "CANCELED",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Unknown => "UNKNOWN",
        }
    }

    /// Reads a stored or venue status. The venue's liquidation-engine statuses
    /// (`NEW_INSURANCE`, `NEW_ADL`) are working orders.
    pub fn parse(text: &str) -> Option<OrderStatus> {
        match text {
            "NEW_INSURANCE" | "NEW_ADL" => Some(OrderStatus::New),
            _ => OrderStatus::ALL.into_iter().find(|s| s.as_str() == text),
        }
    }

    /// Still working on the venue (it may fill).
    pub fn is_working(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Canceled
                | OrderStatus::Expired
                | OrderStatus::Rejected
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of order it is, as placed (a triggered stop keeps its original type).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderType {
    /// Market order (vibex's entries and exits).
    Market,
    /// Stop-loss trigger (market when the mark crosses the stop against the position).
    StopMarket,
    /// Take-profit trigger (market when the mark crosses the stop in the position's favour).
    TakeProfitMarket,
    /// The venue's own order closing a liquidated position (`autoclose-...`).
    Liquidation,
    /// Any other type the venue reports (an order placed by hand, e.g. `LIMIT`).
    Other(String),
}

impl OrderType {
    /// The venue's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            OrderType::Market => "MARKET",
            OrderType::StopMarket => "STOP_MARKET",
            OrderType::TakeProfitMarket => "TAKE_PROFIT_MARKET",
            OrderType::Liquidation => "LIQUIDATION",
            OrderType::Other(text) => text,
        }
    }

    /// Reads the venue's (or a stored) spelling; never fails.
    pub fn parse(text: &str) -> OrderType {
        match text {
            "MARKET" => OrderType::Market,
            "STOP_MARKET" => OrderType::StopMarket,
            "TAKE_PROFIT_MARKET" => OrderType::TakeProfitMarket,
            "LIQUIDATION" => OrderType::Liquidation,
            other => OrderType::Other(other.to_string()),
        }
    }

    /// A TP/SL trigger.
    pub fn is_trigger(&self) -> bool {
        matches!(self, OrderType::StopMarket | OrderType::TakeProfitMarket)
    }
}

impl fmt::Display for OrderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which order of a decision this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderLeg {
    /// Market order that opens (or adds to) a position.
    Entry,
    /// Market order that closes a position.
    Exit,
    /// Take-profit trigger order.
    TakeProfit,
    /// Stop-loss trigger order.
    StopLoss,
}

impl OrderLeg {
    /// Two-letter code used in the id.
    pub fn code(self) -> &'static str {
        match self {
            OrderLeg::Entry => "en",
            OrderLeg::Exit => "ex",
            OrderLeg::TakeProfit => "tp",
            OrderLeg::StopLoss => "sl",
        }
    }
}

/// A deterministic client order id, e.g. `vx-en-9f3a61c2d4e5b780`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientOrderId(String);

impl ClientOrderId {
    /// Derives the id of `leg` of the decision on `asset` in `cycle` of `account`.
    pub fn derive(account: &AccountId, cycle: CycleId, asset: &Asset, leg: OrderLeg) -> Self {
        let mut h = Fnv1a::new();
        h.write(account.as_str().as_bytes());
        h.write(&[0]);
        h.write(cycle.0.as_bytes());
        h.write(asset.as_str().as_bytes());
        h.write(&[0]);
        h.write(leg.code().as_bytes());
        ClientOrderId(format!("vx-{}-{:016x}", leg.code(), h.finish()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a, 64 bit: stable across Rust versions and platforms (unlike `DefaultHasher`),
/// which matters because ids must be the same after an upgrade and restart.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_distinct_and_venue_valid() {
        let a = AccountId::new("account1");
        let c = CycleId::new();
        let btc = Asset::new("BTC");
        let id = ClientOrderId::derive(&a, c, &btc, OrderLeg::Entry);
        assert_eq!(id, ClientOrderId::derive(&a, c, &btc, OrderLeg::Entry));
        assert_ne!(id, ClientOrderId::derive(&a, c, &btc, OrderLeg::StopLoss));
        assert_ne!(
            id,
            ClientOrderId::derive(&a, CycleId::new(), &btc, OrderLeg::Entry)
        );
        assert_ne!(
            id,
            ClientOrderId::derive(&AccountId::new("account2"), c, &btc, OrderLeg::Entry)
        );
        let s = id.as_str();
        assert!(s.len() <= 36);
        assert!(s
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ".:/_-".contains(ch)));
    }

    #[test]
    fn statuses_and_types_read_back_what_they_write() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("NEW_ADL"), Some(OrderStatus::New));
        assert_eq!(OrderStatus::parse("filled"), None);
        for t in [
            "MARKET",
            "STOP_MARKET",
            "TAKE_PROFIT_MARKET",
            "LIQUIDATION",
            "LIMIT",
        ] {
            assert_eq!(OrderType::parse(t).as_str(), t);
        }
        assert!(OrderType::parse("STOP_MARKET").is_trigger());
        assert!(!OrderType::parse("LIMIT").is_trigger());
    }

    #[test]
    fn fnv_matches_the_published_vector() {
        let mut h = Fnv1a::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
