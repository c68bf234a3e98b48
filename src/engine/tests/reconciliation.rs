//! One test per row of docs/trading.md's reconciliation table, plus the polling of
//! fills and income and the light reconciliation while the user stream delivers.

use super::*;
use crate::exchange::venue::{OrderKind, VenueIncome};

fn reconcile_with(desk: &mut Desk, snap: VenueSnapshot) -> Run {
    desk.run(
        Input::Reconcile {
            cycle: Some(CycleId::new()),
        },
        move |r| match r {
            Request::Snapshot | Request::SnapshotOf(_) => Ok(Reply::Snapshot(snap.clone())),
            other => obliging(other),
        },
    )
}

/// The venue's view of the protected long: position and both triggers working.
fn agreeing(desk: &Desk) -> VenueSnapshot {
    let open: Vec<VenueOrder> = desk
        .engine
        .open_orders()
        .iter()
        .map(|o| o.as_venue_order())
        .collect();
    snapshot(vec![venue_position(dec!(0.05), dec!(60000))], open)
}

#[test]
fn agreeing_books_change_nothing() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let snap = agreeing(&desk);
    let run = reconcile_with(&mut desk, snap);
    assert!(run.changes.reconciliation.is_empty(), "{:?}", run.kinds());
    assert!(run.placed().is_empty() && run.cancelled().is_empty());
}

#[test]
fn a_position_with_another_quantity_or_entry_takes_the_venues() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let mut snap = agreeing(&desk);
    snap.positions[0] = venue_position(dec!(0.04), dec!(60010));
    let run = reconcile_with(&mut desk, snap);
    assert_eq!(run.kinds(), vec!["position_changed"]);
    let p = run.position().unwrap();
    assert_eq!((p.quantity, p.entry_price), (dec!(0.04), dec!(60010)));
}

#[test]
fn a_position_the_venue_no_longer_holds_is_recorded_closed_and_its_orphans_cancelled() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let mut snap = agreeing(&desk);
    snap.positions.clear();
    let run = reconcile_with(&mut desk, snap);
    assert_eq!(
        run.kinds(),
        vec![
            "position_closed_on_venue",
            "orphan_order_cancelled",
            "orphan_order_cancelled"
        ]
    );
    assert_eq!(
        run.position().and_then(|p| p.close_reason),
        Some(CloseReason::ClosedOnVenue)
    );
    assert_eq!(run.cancelled().len(), 2);
    assert!(desk.engine.open_orders().is_empty());
}

#[test]
fn a_position_vibex_never_opened_is_adopted_and_never_closed() {
    let mut desk = Desk::live();
    let run = reconcile_with(
        &mut desk,
        snapshot(vec![venue_position(dec!(-0.3), dec!(61000))], vec![]),
    );
    assert_eq!(run.kinds(), vec!["position_adopted"]);
    let p = run.position().unwrap();
    assert_eq!(
        (p.origin, p.side, p.quantity),
        (Origin::Adopted, PositionSide::Short, dec!(0.3))
    );
    assert!(run.placed().is_empty(), "no order touches it");
    // Later reconciliations keep it and never ask for protection.
    let again = reconcile_with(
        &mut desk,
        snapshot(vec![venue_position(dec!(-0.3), dec!(61000))], vec![]),
    );
    assert!(
        again.changes.reconciliation.is_empty(),
        "{:?}",
        again.kinds()
    );
}

#[test]
fn a_reduce_only_order_without_a_position_is_cancelled() {
    let mut desk = Desk::live();
    let orphan = venue_trigger(&btc(), "someone-else-sl", OrderType::StopMarket);
    let run = reconcile_with(&mut desk, snapshot(vec![], vec![orphan]));
    assert_eq!(run.kinds(), vec!["orphan_order_cancelled"]);
    assert_eq!(run.cancelled(), vec!["someone-else-sl"]);
}

#[test]
fn a_vibex_order_the_venue_works_that_vibex_lost_is_tracked() {
    let mut desk = Desk::live();
    let lost = VenueOrder {
        reduce_only: false,
        close_position: false,
        order_type: OrderType::Market,
        ..venue_trigger(&btc(), "vx-en-0000000000000001", OrderType::Market)
    };
    let run = reconcile_with(&mut desk, snapshot(vec![], vec![lost]));
    assert_eq!(run.kinds(), vec!["order_adopted"]);
    assert_eq!(desk.engine.orders.len(), 1);
    assert!(run.cancelled().is_empty());
}

#[test]
fn a_vibex_order_the_venue_no_longer_lists_is_looked_up_and_its_real_status_recorded() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let tp = working(&desk, OrderType::TakeProfitMarket);
    let mut snap = agreeing(&desk);
    snap.open_orders
        .retain(|o| o.client_order_id != tp.client_order_id);
    // Cancelled by hand on the website.
    let cancelled = VenueOrder {
        status: OrderStatus::Canceled,
        ..tp.as_venue_order()
    };
    let run = desk.run(Input::Reconcile { cycle: None }, |r| match r {
        Request::Snapshot => Ok(Reply::Snapshot(snap.clone())),
        Request::Query { .. } => Ok(Reply::Order(Some(cancelled.clone()))),
        other => obliging(other),
    });
    assert_eq!(
        run.kinds(),
        vec!["order_not_working", "protection_replaced"]
    );
    assert_eq!(
        run.order(&tp.client_order_id).map(|o| o.status),
        Some(OrderStatus::Canceled)
    );
}

#[test]
fn a_missing_protection_is_placed_again_from_the_exit_plan_with_fresh_ids() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let sl = working(&desk, OrderType::StopMarket);
    // The venue lost the stop-loss (it still says so when asked).
    let mut snap = agreeing(&desk);
    snap.open_orders
        .retain(|o| o.order_type != OrderType::StopMarket);
    let run = desk.run(Input::Reconcile { cycle: None }, |r| match r {
        Request::Snapshot => Ok(Reply::Snapshot(snap.clone())),
        Request::Query { .. } => Ok(Reply::Order(None)),
        other => obliging(other),
    });
    assert_eq!(
        run.kinds(),
        vec!["order_not_working", "protection_replaced"]
    );
    let placed = run.placed();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].kind, OrderKind::StopMarket);
    assert_eq!(placed[0].stop_price, sl.stop_price);
    assert_ne!(placed[0].client_order_id, sl.client_order_id, "a fresh id");
}

#[test]
fn fills_and_income_are_polled_after_the_corrections_and_stored_once() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let snap = agreeing(&desk);
    let income = vec![
        VenueIncome {
            tran_id: "9".into(),
            symbol: Some(btc()),
            kind: "FUNDING_FEE".into(),
            amount: dec!(-0.12),
            asset: "USDT".into(),
            time: desk.now,
            trade_id: None,
        },
        VenueIncome {
            tran_id: "10".into(),
            symbol: Some(btc()),
            kind: "INSURANCE_CLEAR".into(),
            amount: dec!(-1),
            asset: "USDT".into(),
            time: desk.now,
            trade_id: None,
        },
    ];
    let answer = |r: &Request| match r {
        Request::Snapshot | Request::SnapshotOf(_) => Ok(Reply::Snapshot(snap.clone())),
        Request::Income { .. } => Ok(Reply::Income(income.clone())),
        other => obliging(other),
    };
    let run = desk.run(Input::Reconcile { cycle: None }, answer);
    let kinds: Vec<IncomeKind> = run.changes.income.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        vec![IncomeKind::FundingFee, IncomeKind::LiquidationFee]
    );
    let last: Vec<&str> = run
        .requests
        .iter()
        .map(|r| match r {
            Request::Snapshot => "snapshot",
            Request::UserTrades { .. } => "trades",
            Request::Income { .. } => "income",
            _ => "other",
        })
        .collect();
    assert_eq!(last, vec!["snapshot", "trades", "income"]);
    let again = desk.run(Input::Reconcile { cycle: None }, answer);
    assert!(
        again.changes.income.is_empty(),
        "the venue's inclusive startTime repeats them"
    );
}

#[test]
fn with_the_stream_up_most_reconciliations_are_light() {
    let mut desk = Desk::live();
    desk.engine.set_stream_up(true);
    let mut full = 0;
    for _ in 0..20 {
        let run = reconcile_with(&mut desk, snapshot(vec![], vec![]));
        match &run.requests[0] {
            Request::Snapshot => {
                full += 1;
                assert!(run
                    .requests
                    .iter()
                    .any(|r| matches!(r, Request::Income { .. })));
            }
            Request::SnapshotOf(symbols) => {
                assert_eq!(symbols, &vec![btc()]);
                assert_eq!(run.requests.len(), 1, "no polls: {:?}", run.requests);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(full, 2, "every 10th is full");
}

#[test]
fn with_the_stream_down_fills_are_polled_every_time_and_the_rest_every_tenth() {
    let mut desk = Desk::live();
    // BTC traded before: its fills are polled.
    let then = desk.now;
    desk.engine.last_trades.insert(btc(), then);
    let mut full = 0;
    for _ in 0..20 {
        let run = reconcile_with(&mut desk, snapshot(vec![], vec![]));
        let asked: Vec<&str> = run
            .requests
            .iter()
            .map(|r| match r {
                Request::Snapshot => "all orders",
                Request::SnapshotOf(_) => "traded symbols",
                Request::UserTrades { .. } => "fills",
                Request::Income { .. } => "income",
                _ => "other",
            })
            .collect();
        if asked[0] == "all orders" {
            full += 1;
            assert_eq!(asked, vec!["all orders", "fills", "income"]);
        } else {
            assert_eq!(
                asked,
                vec!["traded symbols", "fills"],
                "fills are learned by polling"
            );
        }
    }
    assert_eq!(full, 2);
}
