//! The order lifecycle of docs/trading.md: written before sent, unknown outcomes,
//! entries and their refusals, protection, closing, close-all, start-up.

use super::*;
use crate::exchange::venue::OrderKind;

fn refused(code: i64, msg: &str) -> VenueError {
    VenueError::Api {
        endpoint: "/fapi/v1/order".into(),
        status: 400,
        code,
        msg: msg.into(),
    }
}

#[test]
fn a_live_order_is_written_before_it_is_sent() {
    let mut desk = Desk::live();
    let cycle = CycleId::new();
    let run = protected_long(&mut desk, cycle);
    let placed = run.placed();
    assert_eq!(placed.len(), 3, "entry, TP, SL: {placed:?}");
    assert!(
        run.intent_before_place.iter().all(|b| *b),
        "every placement follows its intent"
    );
    // Each intent is the order's PENDING_NEW row, with the request in its event.
    assert_eq!(run.intents.orders.len(), 3);
    for (intent, req) in run.intents.orders.iter().zip(&placed) {
        assert_eq!(intent.status, OrderStatus::PendingNew);
        assert_eq!(intent.client_order_id, req.client_order_id);
        assert_eq!(intent.cycle_id, Some(cycle));
    }
    assert!(run
        .intents
        .order_events
        .iter()
        .all(|e| e.status == OrderStatus::PendingNew && e.detail.get("request").is_some()));
}

#[test]
fn a_paper_order_is_recorded_in_order_without_waiting() {
    let mut desk = Desk::paper();
    let run = protected_long(&mut desk, CycleId::new());
    assert!(
        run.intents.is_empty(),
        "a venue in this process needs no durable intent"
    );
    let first = &run.changes.orders[0];
    assert_eq!(
        first.status,
        OrderStatus::PendingNew,
        "the intent is still recorded first"
    );
}

#[test]
fn an_entry_is_a_market_order_floored_to_the_step_and_its_protection_is_rounded_to_the_tick() {
    let mut desk = Desk::live();
    let cycle = CycleId::new();
    let run = desk.run(execute(cycle, TradeAction::Buy, dec!(3000.123)), obliging);
    let placed = run.placed();
    let entry = placed[0];
    assert_eq!(entry.kind, OrderKind::Market);
    assert_eq!(entry.side, Side::Buy);
    assert_eq!(
        entry.quantity,
        Some(dec!(0.050)),
        "3000.123 / 60000 floored to 0.001"
    );
    assert!(entry.client_order_id.starts_with("vx-en-"));
    let (tp, sl) = (placed[1], placed[2]);
    assert_eq!(
        (tp.kind, sl.kind),
        (OrderKind::TakeProfitMarket, OrderKind::StopMarket)
    );
    for o in [tp, sl] {
        assert_eq!(o.side, Side::Sell, "the exit side of a long");
        assert!(o.close_position && o.reduce_only);
        assert_eq!(o.quantity, None);
    }
    assert_eq!(
        tp.stop_price,
        Some(dec!(66000.0)),
        "66000.04 to the 0.1 tick"
    );
    assert_eq!(
        sl.stop_price,
        Some(dec!(57000.1)),
        "57000.06 to the 0.1 tick"
    );
    let p = run.position().expect("position");
    assert_eq!(
        (p.side, p.quantity, p.entry_price),
        (long(), dec!(0.050), dec!(60000))
    );
    assert_eq!(p.opened_cycle_id, Some(cycle));
    assert_eq!(p.origin, Origin::Vibex);
    let diary = &run.changes.diary[0];
    assert!(diary.filled);
    assert_eq!(diary.tp_oid.as_deref(), Some(tp.client_order_id.as_str()));
    assert_eq!(diary.sl_oid.as_deref(), Some(sl.client_order_id.as_str()));
}

#[test]
fn an_entry_the_rules_refuse_is_recorded_rejected_and_never_sent() {
    let mut desk = Desk::live();
    // 3 USD at 60 000 is below the 0.001 step and the 5 USD minimum notional.
    let run = desk.run(execute(CycleId::new(), TradeAction::Buy, dec!(3)), obliging);
    assert!(run.placed().is_empty(), "{:?}", run.requests);
    let order = &run.changes.orders[0];
    assert_eq!(order.status, OrderStatus::Rejected);
    assert!(order.reject_reason.is_some());
    assert_eq!(
        run.changes.diary[0].order_result.as_ref().unwrap()["entry"]["status"],
        "REJECTED"
    );

    // No rules from the venue yet: refused too, with the reason.
    let run = desk.run(
        Input::Execute {
            cycle: CycleId::new(),
            decision_id: Uuid::now_v7(),
            decision: decision(TradeAction::Buy, dec!(3000)),
            price: dec!(60000),
            rules: None,
        },
        obliging,
    );
    assert!(run.placed().is_empty());
    assert!(run.changes.orders[0]
        .reject_reason
        .as_deref()
        .is_some_and(|r| r.contains("no trading rules")));
}

#[test]
fn an_unknown_outcome_is_recorded_unknown_and_settled_by_the_next_reconciliation() {
    let mut desk = Desk::live();
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Buy, dec!(3000)),
        |r| match r {
            Request::Place(o) => Err(VenueError::OutcomeUnknown {
                endpoint: "/fapi/v1/order".into(),
                client_order_id: o.client_order_id.clone(),
                detail: "503".into(),
            }),
            other => obliging(other),
        },
    );
    let coid = run.placed()[0].client_order_id.clone();
    assert_eq!(
        run.order(&coid).map(|o| o.status),
        Some(OrderStatus::Unknown)
    );
    assert_eq!(desk.engine.positions().count(), 0);

    // The venue had it and filled it: the position is vibex's (not adopted), with the
    // decision's exit plan, and protected at once.
    let entry_on_venue = |c: &str| VenueOrder {
        symbol: btc(),
        order_id: "v-en".into(),
        client_order_id: c.into(),
        side: Side::Buy,
        order_type: OrderType::Market,
        status: OrderStatus::Filled,
        orig_qty: dec!(0.05),
        executed_qty: dec!(0.05),
        avg_price: Some(dec!(60000)),
        stop_price: None,
        reduce_only: false,
        close_position: false,
        update_time: Utc::now(),
    };
    let run = desk.run(
        Input::Reconcile {
            cycle: Some(CycleId::new()),
        },
        |r| match r {
            Request::Snapshot => Ok(Reply::Snapshot(snapshot(
                vec![venue_position(dec!(0.05), dec!(60000))],
                vec![],
            ))),
            Request::Query {
                client_order_id, ..
            } => Ok(Reply::Order(Some(entry_on_venue(client_order_id)))),
            other => obliging(other),
        },
    );
    assert_eq!(
        run.order(&coid).map(|o| o.status),
        Some(OrderStatus::Filled)
    );
    let p = run.position().expect("position");
    assert_eq!(p.origin, Origin::Vibex);
    assert_eq!(p.exit_plan, "ride the trend");
    assert!(
        !run.kinds().contains(&"position_adopted"),
        "{:?}",
        run.kinds()
    );
    let protection: Vec<OrderKind> = run.placed().iter().map(|o| o.kind).collect();
    assert_eq!(
        protection,
        vec![OrderKind::TakeProfitMarket, OrderKind::StopMarket]
    );
}

#[test]
fn an_order_the_venue_never_received_is_rejected_by_reconciliation() {
    let mut desk = Desk::live();
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Buy, dec!(3000)),
        |r| match r {
            Request::Place(o) => Err(VenueError::OutcomeUnknown {
                endpoint: "/fapi/v1/order".into(),
                client_order_id: o.client_order_id.clone(),
                detail: "timeout".into(),
            }),
            other => obliging(other),
        },
    );
    let coid = run.placed()[0].client_order_id.clone();
    let run = desk.run(Input::Reconcile { cycle: None }, obliging);
    let order = run.order(&coid).expect("settled");
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(
        order.reject_reason.as_deref(),
        Some("the venue never received this order")
    );
    assert_eq!(run.kinds(), vec!["order_not_working"]);
    assert!(desk.engine.plans.is_empty(), "its exit plan is dropped");
}

#[test]
fn a_protection_level_already_crossed_closes_the_position_at_market() {
    let mut desk = Desk::live();
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Buy, dec!(3000)),
        |r| match r {
            Request::Place(o) if o.kind == OrderKind::TakeProfitMarket => {
                Err(refused(-2021, "Order would immediately trigger."))
            }
            other => obliging(other),
        },
    );
    let kinds: Vec<(OrderKind, bool)> = run
        .placed()
        .iter()
        .map(|o| (o.kind, o.reduce_only))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (OrderKind::Market, false),
            (OrderKind::TakeProfitMarket, true),
            (OrderKind::Market, true)
        ],
        "entry, refused TP, then the exit at market (no SL for a closed position)"
    );
    let p = run.position().expect("position");
    assert_eq!(p.status, PositionStatus::Closed);
    assert_eq!(p.close_reason, Some(CloseReason::LevelCrossed));
    assert!(run.placed()[2].client_order_id.starts_with("vx-ex-"));
}

#[test]
fn a_reversal_closes_the_opposite_position_first_and_a_same_side_decision_adds_nothing() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    // Buy again: no pyramiding.
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Buy, dec!(3000)),
        obliging,
    );
    assert!(run.requests.is_empty());
    assert_eq!(run.outcome, Some(Outcome::Executed { orders: 0 }));
    // Sell: cancel the long's TP/SL, close it, then open the short with its own TP/SL.
    let mut d = decision(TradeAction::Sell, dec!(3000));
    d.tp_price = Some(dec!(55000));
    d.sl_price = Some(dec!(63000));
    let run = desk.run(
        Input::Execute {
            cycle: CycleId::new(),
            decision_id: Uuid::now_v7(),
            decision: d,
            price: dec!(60000),
            rules: Some(rules()),
        },
        obliging,
    );
    let order: Vec<String> = run
        .requests
        .iter()
        .filter_map(|r| match r {
            Request::Cancel { .. } => Some("cancel".to_string()),
            Request::Place(o) => Some(format!("{} {}", o.kind.as_str(), o.side.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![
            "cancel",
            "cancel",
            "MARKET SELL",
            "MARKET SELL",
            "TAKE_PROFIT_MARKET BUY",
            "STOP_MARKET BUY"
        ],
    );
    assert_eq!(run.outcome, Some(Outcome::Executed { orders: 2 }));
    let closed = run
        .changes
        .positions
        .iter()
        .find(|p| p.status == PositionStatus::Closed)
        .expect("long closed");
    assert_eq!(closed.close_reason, Some(CloseReason::Decision));
    assert_eq!(
        desk.engine.positions().next().map(|p| p.side),
        Some(PositionSide::Short)
    );
}

#[test]
fn an_entry_is_not_sent_when_the_opposite_position_could_not_be_closed() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Sell, dec!(3000)),
        |r| match r {
            Request::Place(o) if o.reduce_only && !o.close_position => {
                Err(refused(-2019, "Margin is insufficient."))
            }
            other => obliging(other),
        },
    );
    assert_eq!(
        run.placed().len(),
        1,
        "only the exit was sent: {:?}",
        run.placed()
    );
    let entry = run
        .changes
        .orders
        .iter()
        .find(|o| o.client_order_id.starts_with("vx-en-"))
        .expect("entry");
    assert_eq!(entry.status, OrderStatus::Rejected);
    assert!(entry
        .reject_reason
        .as_deref()
        .is_some_and(|r| r.contains("could not be closed")));
}

#[test]
fn a_close_the_venue_fills_only_in_part_leaves_the_remainder_open() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Sell, Decimal::ZERO),
        |r| match r {
            Request::Place(o) if o.reduce_only && !o.close_position => {
                let mut a = accept(o, dec!(60000), "v-ex");
                a.executed_qty = dec!(0.02);
                a.status = OrderStatus::PartiallyFilled;
                Ok(Reply::Placed(a))
            }
            other => obliging(other),
        },
    );
    let p = run.position().expect("position");
    assert_eq!((p.status, p.quantity), (PositionStatus::Open, dec!(0.030)));
}

#[test]
fn close_all_cancels_every_order_then_closes_every_position_reduce_only() {
    let mut desk = Desk::live();
    protected_long(&mut desk, CycleId::new());
    let run = desk.run(
        Input::CloseAll {
            reason: "kill switch".into(),
        },
        obliging,
    );
    assert!(matches!(run.requests[0], Request::CancelAll { .. }));
    let exit = run.placed()[0];
    assert!(exit.reduce_only && exit.kind == OrderKind::Market && exit.side == Side::Sell);
    assert_eq!(run.outcome, Some(Outcome::ClosedAll { problems: vec![] }));
    assert_eq!(
        run.position().and_then(|p| p.close_reason),
        Some(CloseReason::CloseAll)
    );
    assert!(desk.engine.open_orders().is_empty());
    assert!(run
        .changes
        .order_events
        .iter()
        .any(|e| e.status == OrderStatus::Canceled && e.detail["reason"] == "kill switch"));

    // What cannot be done is said.
    protected_long(&mut desk, CycleId::new());
    let run = desk.run(
        Input::CloseAll {
            reason: "api".into(),
        },
        |r| match r {
            Request::Place(_) => Err(refused(-1001, "Internal error.")),
            other => obliging(other),
        },
    );
    let Some(Outcome::ClosedAll { problems }) = run.outcome else {
        panic!("{:?}", run.outcome)
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("BTCUSDT") && problems[0].contains("Internal error"));
}

#[test]
fn start_sets_margin_type_and_leverage_per_symbol_then_reconciles() {
    let mut desk = Desk::live();
    let run = desk.run(
        Input::Start {
            symbols: vec![btc(), Symbol("ETHUSDT".into())],
        },
        obliging,
    );
    assert_eq!(run.outcome, Some(Outcome::Started(Ok(()))));
    let names: Vec<String> = run
        .requests
        .iter()
        .map(|r| match r {
            Request::SetMarginType {
                symbol,
                margin_type,
            } => format!("margin {symbol} {margin_type}"),
            Request::SetLeverage { symbol, leverage } => format!("leverage {symbol} {leverage}"),
            other => format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "SyncTime",
            "IsHedgeMode",
            "margin BTCUSDT ISOLATED",
            "leverage BTCUSDT 5",
            "margin ETHUSDT ISOLATED",
            "leverage ETHUSDT 5",
            "Snapshot",
            "Income",
        ]
    );
    // Prepared once: an entry later does not set them again.
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Buy, dec!(3000)),
        obliging,
    );
    assert!(!run
        .requests
        .iter()
        .any(|r| matches!(r, Request::SetLeverage { .. })));
}

#[test]
fn an_account_in_hedge_mode_is_refused_with_what_to_do() {
    let mut desk = Desk::live();
    let run = desk.run(
        Input::Start {
            symbols: vec![btc()],
        },
        |r| match r {
            Request::IsHedgeMode => Ok(Reply::HedgeMode(true)),
            other => obliging(other),
        },
    );
    let Some(Outcome::Started(Err(why))) = run.outcome else {
        panic!("{:?}", run.outcome)
    };
    assert!(why.contains("hedge") && why.contains("one-way"), "{why}");
    assert!(!run
        .requests
        .iter()
        .any(|r| matches!(r, Request::SetLeverage { .. } | Request::Snapshot)));
}

#[test]
fn leverage_that_cannot_be_set_is_retried_before_the_entry_which_is_refused_if_it_still_fails() {
    let mut desk = Desk::live();
    let run = desk.run(
        Input::Start {
            symbols: vec![btc()],
        },
        |r| match r {
            Request::SetLeverage { .. } => Err(refused(-4028, "Leverage is not valid")),
            other => obliging(other),
        },
    );
    assert_eq!(
        run.outcome,
        Some(Outcome::Started(Ok(()))),
        "start-up goes on"
    );
    assert_eq!(run.warnings().len(), 1);
    let run = desk.run(
        execute(CycleId::new(), TradeAction::Buy, dec!(3000)),
        |r| match r {
            Request::SetLeverage { .. } => Err(refused(-4028, "Leverage is not valid")),
            other => obliging(other),
        },
    );
    assert!(run.placed().is_empty());
    assert!(run.changes.orders[0]
        .reject_reason
        .as_deref()
        .is_some_and(|r| r.contains("leverage")));
}

#[test]
fn a_venue_that_cannot_be_read_fails_the_reconciliation_with_the_reason() {
    let mut desk = Desk::live();
    let run = desk.run(
        Input::Reconcile {
            cycle: Some(CycleId::new()),
        },
        |r| match r {
            Request::Snapshot => Err(VenueError::Timeout {
                endpoint: "/fapi/v2/account".into(),
                timeout: std::time::Duration::from_secs(10),
            }),
            other => obliging(other),
        },
    );
    let Some(Outcome::Reconciled(Err(why))) = run.outcome else {
        panic!("{:?}", run.outcome)
    };
    assert!(why.contains("/fapi/v2/account"), "{why}");
    assert_eq!(run.requests.len(), 1, "nothing else was asked");
}

#[test]
fn the_injected_clock_stamps_every_change() {
    let mut desk = Desk::live();
    let run = protected_long(&mut desk, CycleId::new());
    for o in &run.changes.orders {
        assert!(o.updated_at > Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap());
        assert!(
            o.updated_at <= desk.now,
            "never after the last input's time"
        );
    }
}
