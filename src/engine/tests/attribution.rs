//! Every path by which a fill reaches the engine carries its order, its cycle and its
//! reason: the user stream (before or after reconciliation), the `userTrades` poll,
//! reconciliation's lookup of an order that stopped working, and the database when
//! the order is no longer in memory. Only a fill nobody can attribute is `external`.

use super::*;

/// The TP order of the protected long, as the venue lists it.
fn tp_on_venue(desk: &Desk) -> VenueOrder {
    let tp = working(desk, OrderType::TakeProfitMarket);
    VenueOrder {
        side: Side::Sell,
        stop_price: tp.stop_price,
        ..venue_trigger(&btc(), &tp.client_order_id, OrderType::TakeProfitMarket)
    }
}

fn sl_on_venue(desk: &Desk) -> VenueOrder {
    let sl = working(desk, OrderType::StopMarket);
    VenueOrder {
        side: Side::Sell,
        stop_price: sl.stop_price,
        ..venue_trigger(&btc(), &sl.client_order_id, OrderType::StopMarket)
    }
}

/// A venue whose take-profit fired while vibex was not listening: no position, the SL
/// still working, the TP FILLED when looked up, its fill in `userTrades`.
fn venue_after_take_profit(
    tp: VenueOrder,
    sl: VenueOrder,
    trade_id: &'static str,
) -> impl FnMut(&Request) -> Result<Reply, VenueError> {
    move |r: &Request| match r {
        Request::Snapshot | Request::SnapshotOf(_) => {
            Ok(Reply::Snapshot(snapshot(vec![], vec![sl.clone()])))
        }
        Request::Query {
            client_order_id, ..
        } if *client_order_id == tp.client_order_id => Ok(Reply::Order(Some(VenueOrder {
            status: OrderStatus::Filled,
            executed_qty: dec!(0.05),
            avg_price: Some(dec!(66000)),
            ..tp.clone()
        }))),
        Request::UserTrades { .. } => Ok(Reply::Trades(vec![polled_trade(
            trade_id,
            &tp.order_id,
            Side::Sell,
            dec!(0.05),
            dec!(66000),
            dec!(300),
        )])),
        other => obliging(other),
    }
}

fn assert_closed_by_take_profit(
    desk: &Desk,
    run: &Run,
    (tp, sl): (&VenueOrder, &VenueOrder),
    trade_id: &str,
    cycle: CycleId,
) {
    let fills: Vec<&Fill> = run
        .fills()
        .iter()
        .filter(|f| f.venue_trade_id.as_deref() == Some(trade_id))
        .collect();
    assert_eq!(
        fills.len(),
        1,
        "the fill is recorded once: {:?}",
        run.fills()
    );
    let fill = fills[0];
    assert_eq!(fill.reason, FillReason::TakeProfit);
    assert_eq!(fill.client_order_id, tp.client_order_id);
    assert!(fill.order_id.is_some(), "linked to its order");
    assert_eq!(
        fill.cycle_id,
        Some(cycle),
        "with the cycle of the decision that set it"
    );
    let position = run.position().expect("the position was recorded");
    assert_eq!(position.status, PositionStatus::Closed);
    assert_eq!(position.close_reason, Some(CloseReason::TakeProfit));
    assert_eq!(position.realized_pnl, dec!(300));
    assert_eq!(
        run.cancelled(),
        vec![sl.client_order_id.as_str()],
        "the stop-loss is cancelled at once"
    );
    assert_eq!(
        run.order(&sl.client_order_id).map(|o| o.status),
        Some(OrderStatus::Canceled)
    );
    assert_eq!(desk.engine.positions().count(), 0);
    assert!(desk.engine.open_orders().is_empty());
}

#[test]
fn a_take_profit_on_the_stream_before_reconciliation_closes_with_its_reason() {
    let mut desk = Desk::live();
    let cycle = CycleId::new();
    protected_long(&mut desk, cycle);
    let (tp, sl) = (tp_on_venue(&desk), sl_on_venue(&desk));

    let run = desk.run(
        Input::Venue(stream_fill(&tp, "t-tp", dec!(66000), dec!(300))),
        obliging,
    );
    assert_eq!(run.outcome, Some(Outcome::Applied));
    assert_closed_by_take_profit(&desk, &run, (&tp, &sl), "t-tp", cycle);

    // The next reconciliation polls the same fill again: nothing new, nothing to fix.
    let run = desk.run(
        Input::Reconcile {
            cycle: Some(CycleId::new()),
        },
        |r| match r {
            Request::Snapshot => Ok(Reply::Snapshot(snapshot(vec![], vec![]))),
            Request::UserTrades { .. } => Ok(Reply::Trades(vec![polled_trade(
                "t-tp",
                &tp.order_id,
                Side::Sell,
                dec!(0.05),
                dec!(66000),
                dec!(300),
            )])),
            other => obliging(other),
        },
    );
    assert!(run.fills().is_empty(), "{:?}", run.fills());
    assert!(run.changes.reconciliation.is_empty(), "{:?}", run.kinds());
}

#[test]
fn a_take_profit_learned_by_reconciliation_closes_with_its_reason_and_the_late_stream_changes_nothing(
) {
    let mut desk = Desk::live();
    let cycle = CycleId::new();
    protected_long(&mut desk, cycle);
    let (tp, sl) = (tp_on_venue(&desk), sl_on_venue(&desk));

    let run = desk.run(
        Input::Reconcile {
            cycle: Some(CycleId::new()),
        },
        venue_after_take_profit(tp.clone(), sl.clone(), "t-tp"),
    );
    assert_eq!(run.outcome, Some(Outcome::Reconciled(Ok(()))));
    assert_closed_by_take_profit(&desk, &run, (&tp, &sl), "t-tp", cycle);
    // The take-profit explains the missing position: not "closed on the venue", and
    // the stop-loss was cancelled as the sibling, not found as an orphan.
    assert_eq!(run.kinds(), vec!["order_not_working"], "{:?}", run.kinds());
    assert_eq!(
        run.order(&tp.client_order_id).map(|o| o.status),
        Some(OrderStatus::Filled)
    );
    assert!(run.warnings().is_empty(), "{:?}", run.warnings());

    // The stream's event for the same fill arrives late.
    let late = desk.run(
        Input::Venue(stream_fill(&tp, "t-tp", dec!(66000), dec!(300))),
        obliging,
    );
    assert!(late.fills().is_empty(), "recorded once: {:?}", late.fills());
    assert!(
        late.requests.is_empty(),
        "nothing to do: {:?}",
        late.requests
    );
    assert!(late.changes.positions.is_empty());
}

#[test]
fn with_the_stream_never_delivering_every_take_profit_is_attributed_over_several_cycles() {
    let mut desk = Desk::live();
    for (round, trade_id) in ["t-1", "t-2", "t-3"].into_iter().enumerate() {
        let cycle = CycleId::new();
        protected_long(&mut desk, cycle);
        let (tp, sl) = (tp_on_venue(&desk), sl_on_venue(&desk));
        let run = desk.run(
            Input::Reconcile {
                cycle: Some(CycleId::new()),
            },
            venue_after_take_profit(tp.clone(), sl.clone(), trade_id),
        );
        assert_closed_by_take_profit(&desk, &run, (&tp, &sl), trade_id, cycle);
        // The next cycle's poll returns the same trade (the venue's `startTime` is
        // inclusive): it is not recorded again.
        let again = desk.run(
            Input::Reconcile {
                cycle: Some(CycleId::new()),
            },
            venue_after_take_profit(tp.clone(), sl.clone(), trade_id),
        );
        assert!(
            again.fills().is_empty(),
            "round {round}: {:?}",
            again.fills()
        );
    }
}

#[test]
fn a_stop_loss_on_the_stream_closes_with_its_reason_and_cancels_the_take_profit() {
    let mut desk = Desk::live();
    let cycle = CycleId::new();
    protected_long(&mut desk, cycle);
    let (tp, sl) = (tp_on_venue(&desk), sl_on_venue(&desk));
    let run = desk.run(
        Input::Venue(stream_fill(&sl, "t-sl", dec!(57000), dec!(-150))),
        obliging,
    );
    assert_eq!(run.fills()[0].reason, FillReason::StopLoss);
    assert_eq!(run.fills()[0].cycle_id, Some(cycle));
    assert_eq!(
        run.position().and_then(|p| p.close_reason),
        Some(CloseReason::StopLoss)
    );
    assert_eq!(run.cancelled(), vec![tp.client_order_id.as_str()]);
}

#[test]
fn a_fill_of_an_order_no_longer_in_memory_is_looked_up_in_the_database() {
    // Restarted: nothing in memory about the order that filled.
    let mut desk = Desk::live();
    let cycle = CycleId::new();
    let stored = Order {
        id: Uuid::now_v7(),
        account_id: AccountId::new("a1"),
        cycle_id: Some(cycle),
        decision_id: Some(Uuid::now_v7()),
        client_order_id: "vx-tp-0123456789abcdef".into(),
        venue_order_id: Some("777".into()),
        symbol: btc(),
        side: Side::Sell,
        order_type: OrderType::TakeProfitMarket,
        quantity: None,
        price: None,
        stop_price: Some(dec!(66000)),
        reduce_only: true,
        close_position: true,
        status: OrderStatus::Filled,
        filled_quantity: dec!(0.05),
        avg_fill_price: Some(dec!(66000)),
        reject_reason: None,
        created_at: desk.now,
        updated_at: desk.now,
    };
    let trades = vec![
        polled_trade("t-1", "777", Side::Sell, dec!(0.02), dec!(66000), dec!(120)),
        polled_trade("t-2", "777", Side::Sell, dec!(0.03), dec!(66000), dec!(180)),
    ];
    desk.engine.last_trades.insert(btc(), desk.now);
    let mut lookups = Vec::new();
    let run = desk.run(Input::Reconcile { cycle: None }, |r| match r {
        Request::UserTrades { .. } => Ok(Reply::Trades(trades.clone())),
        Request::StoredOrder(key) => {
            lookups.push(key.clone());
            Ok(Reply::StoredOrder(Some(stored.clone())))
        }
        other => obliging(other),
    });
    assert_eq!(
        lookups,
        vec![StoredOrderKey::VenueId("777".into())],
        "asked once, then kept at hand"
    );
    assert_eq!(run.fills().len(), 2);
    for f in run.fills() {
        assert_eq!(f.reason, FillReason::TakeProfit);
        assert_eq!(f.order_id, Some(stored.id));
        assert_eq!(f.cycle_id, Some(cycle));
        assert_eq!(f.client_order_id, stored.client_order_id);
    }
    assert!(run.warnings().is_empty(), "{:?}", run.warnings());
}

#[test]
fn a_fill_nobody_can_attribute_is_external_with_a_warning_that_names_it() {
    let mut desk = Desk::live();
    desk.engine.last_trades.insert(btc(), desk.now);
    let run = desk.run(Input::Reconcile { cycle: None }, |r| match r {
        Request::UserTrades { .. } => Ok(Reply::Trades(vec![polled_trade(
            "t-9",
            "999",
            Side::Buy,
            dec!(0.01),
            dec!(60000),
            Decimal::ZERO,
        )])),
        other => obliging(other),
    });
    let fill = &run.fills()[0];
    assert_eq!(fill.reason, FillReason::External);
    assert_eq!(fill.order_id, None);
    assert_eq!(fill.client_order_id, "venue-999");
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]
        .fields
        .iter()
        .any(|(k, v)| *k == "venue_trade_id" && v == "t-9"));
}

#[test]
fn an_order_placed_by_hand_and_a_liquidation_are_not_looked_up() {
    let mut desk = Desk::live();
    let by_hand = VenueTrade {
        client_order_id: Some("web_abc".into()),
        ..polled_trade(
            "t-h",
            "5",
            Side::Buy,
            dec!(0.01),
            dec!(60000),
            Decimal::ZERO,
        )
    };
    let liquidation = VenueTrade {
        client_order_id: Some("autoclose-17".into()),
        ..polled_trade("t-l", "6", Side::Sell, dec!(0.01), dec!(50000), dec!(-100))
    };
    let run = desk.run(
        Input::Venue(UserEvent::Order {
            order: Box::new(VenueOrder {
                status: OrderStatus::Filled,
                order_type: OrderType::Other("LIMIT".into()),
                reduce_only: false,
                close_position: false,
                ..venue_trigger(&btc(), "web_abc", OrderType::Market)
            }),
            trade: Some(Box::new(by_hand)),
        }),
        obliging,
    );
    assert_eq!(run.fills()[0].reason, FillReason::External);
    assert!(run.requests.is_empty(), "{:?}", run.requests);
    let run = desk.run(
        Input::Venue(UserEvent::Order {
            order: Box::new(VenueOrder {
                status: OrderStatus::Filled,
                ..venue_trigger(&btc(), "autoclose-17", OrderType::Liquidation)
            }),
            trade: Some(Box::new(liquidation)),
        }),
        obliging,
    );
    assert_eq!(run.fills()[0].reason, FillReason::Liquidation);
    assert!(run.requests.is_empty(), "{:?}", run.requests);
}

#[test]
fn entry_and_exit_fills_carry_their_orders_reasons_and_cycles() {
    let mut desk = Desk::paper();
    let open = CycleId::new();
    protected_long(&mut desk, open);
    let entry = desk
        .engine
        .finished
        .values()
        .find(|o| o.order_type == OrderType::Market)
        .cloned()
        .expect("the entry is kept among the finished orders");
    // The paper venue's event for the entry's fill comes after its answer.
    let run = desk.run(
        Input::Venue(stream_fill(
            &entry.as_venue_order(),
            "t-en",
            dec!(60000),
            Decimal::ZERO,
        )),
        obliging,
    );
    assert_eq!(run.fills()[0].reason, FillReason::Entry);
    assert_eq!(run.fills()[0].cycle_id, Some(open));
    assert_eq!(run.fills()[0].order_id, Some(entry.id));

    // A decision closes the long (sell 0): the exit's fill is a close of that cycle.
    let close = CycleId::new();
    desk.run(execute(close, TradeAction::Sell, Decimal::ZERO), obliging);
    let exit = desk
        .engine
        .finished
        .values()
        .find(|o| o.order_type == OrderType::Market && o.reduce_only)
        .cloned()
        .expect("the exit");
    let run = desk.run(
        Input::Venue(stream_fill(
            &exit.as_venue_order(),
            "t-ex",
            dec!(61000),
            dec!(50),
        )),
        obliging,
    );
    assert_eq!(run.fills()[0].reason, FillReason::Close);
    assert_eq!(run.fills()[0].cycle_id, Some(close));
}
