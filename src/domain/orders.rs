//! Order identity. A client order id is derived from (account, cycle, asset, leg), so
//! the same order asked for twice — a retry, a restart replaying a cycle — carries the
//! same id and the venue (or the unique index on `orders.client_order_id`) refuses the
//! duplicate. Ids match the venue's `^[.A-Z:/a-z0-9_-]{1,36}$`.

use crate::domain::types::{AccountId, Asset, CycleId};
use std::fmt;

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
    fn fnv_matches_the_published_vector() {
        let mut h = Fnv1a::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
