//! Reconciliation: what vibex believes an account holds, compared with what the venue
//! says it holds. The venue is authoritative; this module only decides — it performs
//! nothing, so it is a pure function tested on its own, and every venue (live or
//! simulated) is reconciled by the same rules.
//!
//! Entry point: [`reconcile`]`(&LocalBook, &VenueSnapshot) -> Vec<Finding>`.
//!
//! Rules (FR-029..032):
//! - A position on the venue that vibex holds on the same side: vibex takes the venue's
//!   quantity and entry ([`Finding::PositionChanged`] when they differ).
//! - A position vibex holds that the venue does not (closed on the exchange by hand, by
//!   a trigger or a liquidation vibex did not see): [`Finding::PositionClosedOnVenue`].
//! - A position on the venue vibex never opened (or on the other side): it is adopted
//!   and reported, never closed ([`Finding::PositionAdopted`]).
//! - A working reduce-only or close-position order on a symbol without a position (an
//!   orphaned TP/SL): [`Finding::OrphanOrder`], to cancel. Other orders vibex did not
//!   place are left alone.
//! - A vibex order the venue still works that vibex had lost track of:
//!   [`Finding::OrderAdopted`]. A vibex order vibex thinks is working that the venue no
//!   longer lists: [`Finding::OrderNotWorking`], to look up.
//! - A position vibex opened with a recorded TP or SL whose protection order is not
//!   working on the venue: [`Finding::ProtectionMissing`], to place again.

use crate::domain::orders::OrderType;
use crate::domain::types::{PositionSide, Symbol};
use crate::exchange::venue::{OrderKind, VenueOrder, VenuePosition, VenueSnapshot};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Prefix of every client order id vibex generates.
pub const VIBEX_ORDER_PREFIX: &str = "vx-";

/// A position as vibex recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPosition {
    /// The perpetual.
    pub symbol: Symbol,
    /// Long or short.
    pub side: PositionSide,
    /// Quantity.
    pub quantity: Decimal,
    /// Entry price.
    pub entry_price: Decimal,
    /// Take-profit level from the exit plan.
    pub tp_price: Option<Decimal>,
    /// Stop-loss level from the exit plan.
    pub sl_price: Option<Decimal>,
    /// Adopted from the venue (no exit plan of ours).
    pub adopted: bool,
}

/// A working order as vibex recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOrder {
    /// The perpetual.
    pub symbol: Symbol,
    /// Client order id.
    pub client_order_id: String,
    /// As placed.
    pub order_type: OrderType,
}

/// What vibex believes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalBook {
    /// Open positions.
    pub positions: Vec<LocalPosition>,
    /// Orders vibex thinks are working (or whose outcome it does not know).
    pub open_orders: Vec<LocalOrder>,
}

/// One difference between vibex and the venue, and what it calls for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// Same position, other quantity or entry: take the venue's.
    PositionChanged {
        /// The perpetual.
        symbol: Symbol,
        /// vibex's quantity.
        local_quantity: Decimal,
        /// The venue's quantity.
        venue_quantity: Decimal,
        /// vibex's entry.
        local_entry: Decimal,
        /// The venue's entry.
        venue_entry: Decimal,
    },
    /// vibex holds a position the venue does not: record it closed.
    PositionClosedOnVenue {
        /// The perpetual.
        symbol: Symbol,
        /// The side vibex held.
        side: PositionSide,
        /// The quantity vibex held.
        quantity: Decimal,
    },
    /// The venue holds a position vibex did not open (or on the other side): adopt it.
    PositionAdopted {
        /// The venue's position.
        position: VenuePosition,
    },
    /// A reduce-only/close-position order without a position: cancel it.
    OrphanOrder {
        /// The order.
        order: VenueOrder,
    },
    /// A vibex order working on the venue that vibex did not track: track it.
    OrderAdopted {
        /// The order.
        order: VenueOrder,
    },
    /// A vibex order vibex thinks is working that the venue does not list: look it up.
    OrderNotWorking {
        /// The perpetual.
        symbol: Symbol,
        /// Client order id.
        client_order_id: String,
    },
    /// A position's recorded TP or SL has no working order: place it again.
    ProtectionMissing {
        /// The perpetual.
        symbol: Symbol,
        /// The side of the position.
        side: PositionSide,
        /// Which trigger is missing.
        leg: OrderKind,
        /// Its level.
        stop_price: Decimal,
    },
}

impl Finding {
    /// A short stable name (`reconciliation_events.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::PositionChanged { .. } => "position_changed",
            Finding::PositionClosedOnVenue { .. } => "position_closed_on_venue",
            Finding::PositionAdopted { .. } => "position_adopted",
            Finding::OrphanOrder { .. } => "orphan_order_cancelled",
            Finding::OrderAdopted { .. } => "order_adopted",
            Finding::OrderNotWorking { .. } => "order_not_working",
            Finding::ProtectionMissing { .. } => "protection_replaced",
        }
    }

    /// The symbol it is about.
    pub fn symbol(&self) -> &Symbol {
        match self {
            Finding::PositionChanged { symbol, .. }
            | Finding::PositionClosedOnVenue { symbol, .. }
            | Finding::OrderNotWorking { symbol, .. }
            | Finding::ProtectionMissing { symbol, .. } => symbol,
            Finding::PositionAdopted { position } => &position.symbol,
            Finding::OrphanOrder { order } | Finding::OrderAdopted { order } => &order.symbol,
        }
    }
}

/// True when `order` is a working trigger of `kind` that protects a `side` position.
fn protects(order: &VenueOrder, side: PositionSide, kind: OrderKind) -> bool {
    order.is_open()
        && order.order_type == kind.order_type()
        && order.side == side.exit_side()
        && (order.close_position || order.reduce_only)
}

/// Compares vibex's book with the venue's snapshot. Findings come in a stable order:
/// positions by symbol, then orders by client order id.
pub fn reconcile(local: &LocalBook, venue: &VenueSnapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let local_pos: BTreeMap<&Symbol, &LocalPosition> =
        local.positions.iter().map(|p| (&p.symbol, p)).collect();
    let venue_pos: BTreeMap<&Symbol, &VenuePosition> = venue
        .positions
        .iter()
        .filter(|p| !p.amount.is_zero())
        .map(|p| (&p.symbol, p))
        .collect();
    let symbols: BTreeSet<&Symbol> = local_pos.keys().chain(venue_pos.keys()).copied().collect();
    // Positions held after reconciliation, with their side (for the order rules).
    let mut held: BTreeMap<&Symbol, PositionSide> = BTreeMap::new();
    for symbol in symbols {
        match (local_pos.get(symbol), venue_pos.get(symbol)) {
            (Some(l), Some(v)) if l.side == v.side() => {
                held.insert(symbol, l.side);
                if l.quantity != v.quantity() || l.entry_price != v.entry_price {
                    out.push(Finding::PositionChanged {
                        symbol: symbol.clone(),
                        local_quantity: l.quantity,
                        venue_quantity: v.quantity(),
                        local_entry: l.entry_price,
                        venue_entry: v.entry_price,
                    });
                }
                if !l.adopted {
                    let levels = [
                        (OrderKind::TakeProfitMarket, l.tp_price),
                        (OrderKind::StopMarket, l.sl_price),
                    ];
                    for (kind, level) in levels {
                        let Some(level) = level else { continue };
                        let working = venue
                            .open_orders
                            .iter()
                            .any(|o| o.symbol == *symbol && protects(o, l.side, kind));
                        if !working {
                            out.push(Finding::ProtectionMissing {
                                symbol: symbol.clone(),
                                side: l.side,
                                leg: kind,
                                stop_price: level,
                            });
                        }
                    }
                }
            }
            (Some(l), Some(v)) => {
                out.push(Finding::PositionClosedOnVenue {
                    symbol: symbol.clone(),
                    side: l.side,
                    quantity: l.quantity,
                });
                out.push(Finding::PositionAdopted {
                    position: (*v).clone(),
                });
                held.insert(symbol, v.side());
            }
            (Some(l), None) => out.push(Finding::PositionClosedOnVenue {
                symbol: symbol.clone(),
                side: l.side,
                quantity: l.quantity,
            }),
            (None, Some(v)) => {
                out.push(Finding::PositionAdopted {
                    position: (*v).clone(),
                });
                held.insert(symbol, v.side());
            }
            (None, None) => {}
        }
    }

    let mut venue_orders: Vec<&VenueOrder> =
        venue.open_orders.iter().filter(|o| o.is_open()).collect();
    venue_orders.sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
    let local_ids: BTreeSet<&str> = local
        .open_orders
        .iter()
        .map(|o| o.client_order_id.as_str())
        .collect();
    for order in &venue_orders {
        let protective = order.reduce_only || order.close_position;
        let orphan = protective
            && match held.get(&order.symbol) {
                None => true,
                // A trigger on the entry side of the position cannot close it.
                Some(side) => order.side != side.exit_side(),
            };
        if orphan {
            out.push(Finding::OrphanOrder {
                order: (*order).clone(),
            });
        } else if order.client_order_id.starts_with(VIBEX_ORDER_PREFIX)
            && !local_ids.contains(order.client_order_id.as_str())
        {
            out.push(Finding::OrderAdopted {
                order: (*order).clone(),
            });
        }
    }
    let venue_ids: BTreeSet<&str> = venue_orders
        .iter()
        .map(|o| o.client_order_id.as_str())
        .collect();
    let mut gone: Vec<&LocalOrder> = local
        .open_orders
        .iter()
        .filter(|o| !venue_ids.contains(o.client_order_id.as_str()))
        .collect();
    gone.sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
    for o in gone {
        out.push(Finding::OrderNotWorking {
            symbol: o.symbol.clone(),
            client_order_id: o.client_order_id.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::Side;
    use chrono::Utc;
    use rust_decimal_macros::dec;

    fn sym(s: &str) -> Symbol {
        Symbol(s.into())
    }

    fn vpos(symbol: &str, amount: Decimal, entry: Decimal) -> VenuePosition {
        VenuePosition {
            symbol: sym(symbol),
            amount,
            entry_price: entry,
            mark_price: entry,
            unrealized_pnl: Decimal::ZERO,
            liquidation_price: None,
            leverage: 5,
            margin_type: "isolated".into(),
            isolated_margin: Decimal::ZERO,
        }
    }

    fn vorder(symbol: &str, coid: &str, kind: OrderKind, side: Side, close: bool) -> VenueOrder {
        VenueOrder {
            symbol: sym(symbol),
            order_id: "1".into(),
            client_order_id: coid.into(),
            side,
            order_type: kind.order_type(),
            status: crate::domain::orders::OrderStatus::New,
            orig_qty: Decimal::ZERO,
            executed_qty: Decimal::ZERO,
            avg_price: None,
            stop_price: Some(dec!(1)),
            reduce_only: close,
            close_position: close,
            update_time: Utc::now(),
        }
    }

    fn lpos(symbol: &str, side: PositionSide, qty: Decimal) -> LocalPosition {
        LocalPosition {
            symbol: sym(symbol),
            side,
            quantity: qty,
            entry_price: dec!(100),
            tp_price: Some(dec!(110)),
            sl_price: Some(dec!(95)),
            adopted: false,
        }
    }

    #[test]
    fn agreeing_books_have_nothing_to_say() {
        let local = LocalBook {
            positions: vec![lpos("BTCUSDT", PositionSide::Long, dec!(0.5))],
            open_orders: vec![],
        };
        let venue = VenueSnapshot {
            positions: vec![vpos("BTCUSDT", dec!(0.5), dec!(100))],
            open_orders: vec![
                vorder(
                    "BTCUSDT",
                    "vx-t-1",
                    OrderKind::TakeProfitMarket,
                    Side::Sell,
                    true,
                ),
                vorder("BTCUSDT", "vx-s-1", OrderKind::StopMarket, Side::Sell, true),
            ],
            ..Default::default()
        };
        let local = LocalBook {
            open_orders: ["vx-t-1", "vx-s-1"]
                .iter()
                .map(|c| LocalOrder {
                    symbol: sym("BTCUSDT"),
                    client_order_id: (*c).into(),
                    order_type: OrderType::Market,
                })
                .collect(),
            ..local
        };
        assert_eq!(reconcile(&local, &venue), vec![]);
    }

    #[test]
    fn a_position_closed_by_hand_leaves_an_orphan_stop_to_cancel() {
        let local = LocalBook {
            positions: vec![lpos("BTCUSDT", PositionSide::Long, dec!(0.5))],
            open_orders: vec![LocalOrder {
                symbol: sym("BTCUSDT"),
                client_order_id: "vx-s-1".into(),
                order_type: OrderType::StopMarket,
            }],
        };
        let venue = VenueSnapshot {
            open_orders: vec![vorder(
                "BTCUSDT",
                "vx-s-1",
                OrderKind::StopMarket,
                Side::Sell,
                true,
            )],
            ..Default::default()
        };
        let f = reconcile(&local, &venue);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].kind(), "position_closed_on_venue");
        assert_eq!(f[1].kind(), "orphan_order_cancelled");
    }

    #[test]
    fn unknown_positions_are_adopted_and_resized_ones_corrected() {
        let local = LocalBook {
            positions: vec![lpos("ETHUSDT", PositionSide::Short, dec!(2))],
            open_orders: vec![],
        };
        let venue = VenueSnapshot {
            positions: vec![
                vpos("BTCUSDT", dec!(0.1), dec!(64000)),
                vpos("ETHUSDT", dec!(-1.5), dec!(100)),
            ],
            open_orders: vec![
                vorder(
                    "ETHUSDT",
                    "vx-t-9",
                    OrderKind::TakeProfitMarket,
                    Side::Buy,
                    true,
                ),
                vorder("ETHUSDT", "vx-s-9", OrderKind::StopMarket, Side::Buy, true),
            ],
            ..Default::default()
        };
        let kinds: Vec<&str> = reconcile(&local, &venue).iter().map(|f| f.kind()).collect();
        assert_eq!(
            kinds,
            vec![
                "position_adopted",
                "position_changed",
                "order_adopted",
                "order_adopted"
            ]
        );
    }

    #[test]
    fn missing_protection_is_replaced_from_the_exit_plan_but_not_for_adopted_positions() {
        let mut adopted = lpos("SOLUSDT", PositionSide::Long, dec!(3));
        adopted.adopted = true;
        let local = LocalBook {
            positions: vec![lpos("BTCUSDT", PositionSide::Long, dec!(0.5)), adopted],
            open_orders: vec![],
        };
        let venue = VenueSnapshot {
            positions: vec![
                vpos("BTCUSDT", dec!(0.5), dec!(100)),
                vpos("SOLUSDT", dec!(3), dec!(100)),
            ],
            open_orders: vec![
                // A TP on the wrong side does not protect a long.
                vorder(
                    "BTCUSDT",
                    "x-1",
                    OrderKind::TakeProfitMarket,
                    Side::Buy,
                    true,
                ),
            ],
            ..Default::default()
        };
        let f = reconcile(&local, &venue);
        let missing: Vec<&Finding> = f
            .iter()
            .filter(|f| f.kind() == "protection_replaced")
            .collect();
        assert_eq!(missing.len(), 2, "{f:?}");
        assert!(f.iter().any(|f| f.kind() == "orphan_order_cancelled"));
    }

    #[test]
    fn a_vibex_order_the_venue_no_longer_works_is_looked_up() {
        let local = LocalBook {
            positions: vec![],
            open_orders: vec![LocalOrder {
                symbol: sym("BTCUSDT"),
                client_order_id: "vx-e-1".into(),
                order_type: OrderType::Market,
            }],
        };
        let f = reconcile(&local, &VenueSnapshot::default());
        assert_eq!(
            f,
            vec![Finding::OrderNotWorking {
                symbol: sym("BTCUSDT"),
                client_order_id: "vx-e-1".into()
            }]
        );
    }
}
