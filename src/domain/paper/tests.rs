//! Journeys through the paper book, checked against hand computations, plus a
//! deterministic random walk that checks the invariants over thousands of operations.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;

use super::*;

const START: i64 = 1_700_000_000;

/// `seconds` after the tests' fixed epoch.
pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(START + seconds, 0).unwrap()
}

/// The BTC perpetual.
pub(super) fn btc() -> Symbol {
    Symbol("BTCUSDT".into())
}

/// The ETH perpetual.
pub(super) fn eth() -> Symbol {
    Symbol("ETHUSDT".into())
}

/// 5 bps taker fee, 2 bps slippage: BUY fills at price × 1.0002, SELL at × 0.9998.
/// (2 bps maker fee, unused by market fills; maintenance margin 0.5 % of the notional.)
fn settings() -> PaperSettings {
    PaperSettings {
        fee_bps: dec!(5),
        maker_fee_bps: dec!(2),
        slippage_bps: dec!(2),
        maintenance_margin_rate: dec!(0.005),
    }
}

/// A market order that may open (not reduce-only), at `at(0)`.
pub(super) fn order(
    symbol: Symbol,
    side: Side,
    quantity: Decimal,
    leverage: u32,
    last_price: Decimal,
) -> MarketOrder {
    MarketOrder {
        symbol,
        side,
        quantity,
        leverage,
        last_price,
        reduce_only: false,
        ts: at(0),
    }
}

/// A one-minute bar at `at(0)`.
pub(super) fn candle(open: Decimal, high: Decimal, low: Decimal, close: Decimal) -> Candle {
    Candle {
        open_time: at(0),
        open,
        high,
        low,
        close,
        volume: dec!(1),
        close_time: at(60),
    }
}

/// The whole journey of one account, every number computed by hand in the comments.
#[test]
fn scripted_session_matches_the_hand_computation_exactly() {
    let mut book = PaperBook::new(dec!(10000), settings());

    // 1. Entry: BUY 0.1 BTC at 60000, leverage 5.
    //    fill   = 60000 × 1.0002           = 60012
    //    fee    = 60012 × 0.1 × 0.0005     = 6001.2 × 0.0005 = 3.0006
    //    margin = 6001.2 / 5               = 1200.24
    //    wallet = 10000 − 3.0006           = 9996.9994
    let fill = book
        .market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(60000)))
        .unwrap();
    assert_eq!(fill.reason, FillReason::Entry);
    assert_eq!(fill.price, dec!(60012));
    assert_eq!(fill.fee, dec!(3.0006));
    assert_eq!(fill.realized_pnl, dec!(0));
    let position = fill.position_after.unwrap();
    assert_eq!(position.side, PositionSide::Long);
    assert_eq!(position.margin, dec!(1200.24));
    assert_eq!(book.wallet_balance(), dec!(9996.9994));

    // 2. Increase: BUY 0.1 BTC at 61000, leverage 5.
    //    fill   = 61000 × 1.0002           = 61012.2
    //    fee    = 6101.22 × 0.0005         = 3.05061
    //    margin = 1200.24 + 6101.22 / 5    = 1200.24 + 1220.244 = 2420.484
    //    entry  = (6001.2 + 6101.22) / 0.2 = 60512.1
    //    wallet = 9996.9994 − 3.05061      = 9993.94879
    let fill = book
        .market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(61000)))
        .unwrap();
    assert_eq!(fill.reason, FillReason::Increase);
    assert_eq!(fill.price, dec!(61012.2));
    assert_eq!(fill.fee, dec!(3.05061));
    let position = fill.position_after.unwrap();
    assert_eq!(position.quantity, dec!(0.2));
    assert_eq!(position.entry_price, dec!(60512.1));
    assert_eq!(position.margin, dec!(2420.484));
    assert_eq!(book.wallet_balance(), dec!(9993.94879));

    // 3. Partial reduce: SELL 0.05 BTC at 62000.
    //    fill     = 62000 × 0.9998              = 61987.6
    //    fee      = 3099.38 × 0.0005            = 1.54969
    //    realized = (61987.6 − 60512.1) × 0.05  = 1475.5 × 0.05 = 73.775
    //    margin   = 2420.484 − 2420.484 × 0.05 / 0.2 = 2420.484 − 605.121 = 1815.363
    //    wallet   = 9993.94879 − 1.54969 + 73.775 = 10066.1741
    let fill = book
        .market_order(order(btc(), Side::Sell, dec!(0.05), 5, dec!(62000)))
        .unwrap();
    assert_eq!(fill.reason, FillReason::Reduce);
    assert_eq!(fill.price, dec!(61987.6));
    assert_eq!(fill.fee, dec!(1.54969));
    assert_eq!(fill.realized_pnl, dec!(73.775));
    let position = fill.position_after.unwrap();
    assert_eq!(position.quantity, dec!(0.15));
    assert_eq!(position.margin, dec!(1815.363));
    assert_eq!(position.realized_pnl, dec!(73.775));
    assert_eq!(book.wallet_balance(), dec!(10066.1741));

    //    Balance at the last price 62000:
    //    unrealized = (62000 − 60512.1) × 0.15 = 223.185
    //    equity     = 10066.1741 + 223.185     = 10289.3591
    //    available  = 10289.3591 − 1815.363    = 8473.9961
    //    maintenance = 0.005 × 62000 × 0.15    = 46.5
    assert_eq!(
        book.balance(),
        PaperBalance {
            wallet_balance: dec!(10066.1741),
            unrealized_pnl: dec!(223.185),
            equity: dec!(10289.3591),
            used_margin: dec!(1815.363),
            maintenance_margin: dec!(46.5),
            available: dec!(8473.9961),
        }
    );

    // 4. Take-profit via on_price: TP 63000, SL 59000. 62500 triggers nothing; 63100 does.
    //    fill     = 63100 × 0.9998              = 63087.38
    //    fee      = 9463.107 × 0.0005           = 4.7315535
    //    realized = (63087.38 − 60512.1) × 0.15 = 2575.28 × 0.15 = 386.292
    //    wallet   = 10066.1741 − 4.7315535 + 386.292 = 10447.7345465
    book.set_protection(&btc(), Some(dec!(63000)), Some(dec!(59000)))
        .unwrap();
    assert!(book.on_price(&btc(), dec!(62500), at(10)).is_empty());
    let fills = book.on_price(&btc(), dec!(63100), at(20));
    assert_eq!(fills.len(), 1);
    let fill = &fills[0];
    assert_eq!(fill.reason, FillReason::TakeProfit);
    assert_eq!(fill.side, Side::Sell);
    assert_eq!(fill.quantity, dec!(0.15));
    assert_eq!(fill.price, dec!(63087.38));
    assert_eq!(fill.fee, dec!(4.7315535));
    assert_eq!(fill.realized_pnl, dec!(386.292));
    assert_eq!(fill.position_after, None);
    assert_eq!(fill.ts, at(20));
    assert_eq!(book.position(&btc()), None);
    assert_eq!(book.wallet_balance(), dec!(10447.7345465));

    // 5. Stop-loss on a short: SELL 1 ETH at 3000, leverage 10; SL 3100, TP 2800.
    //    fill   = 3000 × 0.9998 = 2999.4; fee = 1.4997; margin = 299.94
    //    wallet = 10447.7345465 − 1.4997 = 10446.2348465
    //    The price jumps past the stop to 3150: closed at the observed price.
    //    fill     = 3150 × 1.0002           = 3150.63
    //    fee      = 3150.63 × 0.0005        = 1.575315
    //    realized = −(3150.63 − 2999.4) × 1 = −151.23
    //    wallet   = 10446.2348465 − 1.575315 − 151.23 = 10293.4295315
    let fill = book
        .market_order(order(eth(), Side::Sell, dec!(1), 10, dec!(3000)))
        .unwrap();
    assert_eq!((fill.price, fill.fee), (dec!(2999.4), dec!(1.4997)));
    assert_eq!(fill.position_after.unwrap().margin, dec!(299.94));
    book.set_protection(&eth(), Some(dec!(2800)), Some(dec!(3100)))
        .unwrap();
    let fills = book.on_price(&eth(), dec!(3150), at(30));
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].reason, FillReason::StopLoss);
    assert_eq!(fills[0].side, Side::Buy);
    assert_eq!(fills[0].price, dec!(3150.63));
    assert_eq!(fills[0].fee, dec!(1.575315));
    assert_eq!(fills[0].realized_pnl, dec!(-151.23));
    assert_eq!(book.wallet_balance(), dec!(10293.4295315));

    // 6. Gap where both levels trigger: BUY 2 ETH at 3000, leverage 10; TP 3200, SL 2900.
    //    fill   = 3000.6; fee = 6001.2 × 0.0005 = 3.0006; margin = 600.12
    //    wallet = 10293.4295315 − 3.0006 = 10290.4289315
    //    One bar: open 3050, high 3250, low 2850, close 3000 crosses both: SL wins, at
    //    the level (the bar opened between the levels).
    //    fill     = 2900 × 0.9998              = 2899.42
    //    fee      = 5798.84 × 0.0005           = 2.89942
    //    realized = (2899.42 − 3000.6) × 2     = −202.36
    //    wallet   = 10290.4289315 − 2.89942 − 202.36 = 10085.1695115
    let fill = book
        .market_order(order(eth(), Side::Buy, dec!(2), 10, dec!(3000)))
        .unwrap();
    assert_eq!((fill.price, fill.fee), (dec!(3000.6), dec!(3.0006)));
    book.set_protection(&eth(), Some(dec!(3200)), Some(dec!(2900)))
        .unwrap();
    let bar = candle(dec!(3050), dec!(3250), dec!(2850), dec!(3000));
    let fills = book.on_candle(&eth(), &bar, at(40));
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].reason, FillReason::StopLoss);
    assert_eq!(fills[0].price, dec!(2899.42));
    assert_eq!(fills[0].fee, dec!(2.89942));
    assert_eq!(fills[0].realized_pnl, dec!(-202.36));
    assert_eq!(book.last_price(&eth()), Some(dec!(3000)));
    assert_eq!(book.wallet_balance(), dec!(10085.1695115));

    // 7. Flip: SELL 0.1 BTC at 60000 (leverage 5), then BUY 0.3 at 59000 (leverage 4).
    //    short: fill 59988, fee 5998.8 × 0.0005 = 2.9994, margin 1199.76
    //    wallet = 10085.1695115 − 2.9994 = 10082.1701115
    //    flip:  fill = 59000 × 1.0002 = 59011.8 for all 0.3
    //           fee  = 17703.54 × 0.0005 = 8.85177
    //           realized on the 0.1 short = −(59011.8 − 59988) × 0.1 = 97.62
    //           new long 0.2 at 59011.8, margin = 11802.36 / 4 = 2950.59
    //    wallet = 10082.1701115 − 8.85177 + 97.62 = 10170.9383415
    let fill = book
        .market_order(order(btc(), Side::Sell, dec!(0.1), 5, dec!(60000)))
        .unwrap();
    assert_eq!((fill.price, fill.fee), (dec!(59988), dec!(2.9994)));
    let mut flip = order(btc(), Side::Buy, dec!(0.3), 4, dec!(59000));
    flip.ts = at(50);
    let fill = book.market_order(flip).unwrap();
    assert_eq!(fill.reason, FillReason::Flip);
    assert_eq!(fill.quantity, dec!(0.3));
    assert_eq!(fill.price, dec!(59011.8));
    assert_eq!(fill.fee, dec!(8.85177));
    assert_eq!(fill.realized_pnl, dec!(97.62));
    let position = fill.position_after.unwrap();
    assert_eq!(position.side, PositionSide::Long);
    assert_eq!(position.quantity, dec!(0.2));
    assert_eq!(position.entry_price, dec!(59011.8));
    assert_eq!(position.leverage, 4);
    assert_eq!(position.margin, dec!(2950.59));
    assert_eq!(position.opened_at, at(50));
    assert_eq!(position.realized_pnl, dec!(0));
    assert_eq!(book.wallet_balance(), dec!(10170.9383415));

    // 8. Reduce-only capped: SELL 0.5 reduce-only at 59500 closes just the 0.2 long.
    //    fill     = 59500 × 0.9998           = 59488.1
    //    fee      = 11897.62 × 0.0005        = 5.94881
    //    realized = (59488.1 − 59011.8) × 0.2 = 95.26
    //    wallet   = 10170.9383415 − 5.94881 + 95.26 = 10260.2495315
    let mut capped = order(btc(), Side::Sell, dec!(0.5), 4, dec!(59500));
    capped.reduce_only = true;
    let fill = book.market_order(capped.clone()).unwrap();
    assert_eq!(fill.reason, FillReason::Close);
    assert_eq!(fill.quantity, dec!(0.2));
    assert_eq!(fill.price, dec!(59488.1));
    assert_eq!(fill.fee, dec!(5.94881));
    assert_eq!(fill.realized_pnl, dec!(95.26));
    assert_eq!(fill.position_after, None);
    assert_eq!(book.wallet_balance(), dec!(10260.2495315));

    // 9. Reduce-only with nothing to reduce is refused.
    assert_eq!(
        book.market_order(capped),
        Err(PaperRejection::NothingToReduce { symbol: btc() })
    );

    // 10. Insufficient margin: BUY 1 BTC at 60000, leverage 5.
    //     required  = 60012 / 5 + 60012 × 0.0005 = 12002.4 + 30.006 = 12032.406
    //     available = 10260.2495315 (flat: the wallet)
    let refused = book.market_order(order(btc(), Side::Buy, dec!(1), 5, dec!(60000)));
    let expected = PaperRejection::InsufficientMargin {
        required: dec!(12032.406),
        available: dec!(10260.2495315),
    };
    assert_eq!(refused, Err(expected.clone()));
    assert_eq!(
        expected.to_string(),
        "insufficient margin: 12,032.41 USDT required, 10,260.25 available"
    );

    // Flat again: equity is the wallet, and the wallet is start − fees + realized PnL.
    //   fees     = 3.0006 + 3.05061 + 1.54969 + 4.7315535 + 1.4997 + 1.575315 + 3.0006
    //            + 2.89942 + 2.9994 + 8.85177 + 5.94881 = 39.1074685
    //   realized = 73.775 + 386.292 − 151.23 − 202.36 + 97.62 + 95.26 = 299.357
    //   wallet   = 10000 − 39.1074685 + 299.357 = 10260.2495315
    assert_eq!(
        book.balance(),
        PaperBalance {
            wallet_balance: dec!(10260.2495315),
            unrealized_pnl: dec!(0),
            equity: dec!(10260.2495315),
            used_margin: dec!(0),
            maintenance_margin: dec!(0),
            available: dec!(10260.2495315),
        }
    );
    assert_eq!(
        dec!(10000) - dec!(39.1074685) + dec!(299.357),
        book.wallet_balance()
    );
}

#[test]
fn restore_round_trips_positions_through_json() {
    let mut book = PaperBook::new(dec!(10000), settings());
    book.market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(60000)))
        .unwrap();
    book.market_order(order(eth(), Side::Sell, dec!(2), 10, dec!(3000)))
        .unwrap();
    book.set_protection(&btc(), Some(dec!(65000)), Some(dec!(55000)))
        .unwrap();
    book.on_price(&btc(), dec!(61000), at(5));
    book.on_price(&eth(), dec!(2950), at(5));

    let json = serde_json::to_string(&book.positions().cloned().collect::<Vec<_>>()).unwrap();
    let positions: Vec<PaperPosition> = serde_json::from_str(&json).unwrap();
    let mut restored =
        PaperBook::restore(book.wallet_balance(), positions, book.settings()).unwrap();

    // Until prices arrive, the restored marks are the entries.
    assert_eq!(restored.balance().unrealized_pnl, dec!(0));
    assert!(restored.on_price(&btc(), dec!(61000), at(6)).is_empty());
    assert!(restored.on_price(&eth(), dec!(2950), at(6)).is_empty());
    assert_eq!(restored.balance(), book.balance());
    assert_eq!(
        restored.positions().collect::<Vec<_>>(),
        book.positions().collect::<Vec<_>>()
    );
    assert_eq!(restored, book);

    // And it trades on exactly as the original would.
    let close =
        |b: &mut PaperBook| b.close_position(&btc(), dec!(62000), at(7), CloseReason::Close);
    assert_eq!(close(&mut restored), close(&mut book));
    assert_eq!(restored.balance(), book.balance());
}

#[test]
fn restore_refuses_inconsistent_state() {
    let mut book = PaperBook::new(dec!(1000), settings());
    book.market_order(order(btc(), Side::Buy, dec!(0.01), 5, dec!(60000)))
        .unwrap();
    let good = book.position(&btc()).unwrap().clone();
    let restore =
        |positions: Vec<PaperPosition>| PaperBook::restore(dec!(1000), positions, settings());

    assert_eq!(
        restore(vec![good.clone(), good.clone()]),
        Err(PaperError::DuplicatePosition { symbol: btc() })
    );
    let zero = PaperPosition {
        quantity: dec!(0),
        ..good.clone()
    };
    assert!(matches!(
        restore(vec![zero]),
        Err(PaperError::NonPositiveQuantity { .. })
    ));
    let no_price = PaperPosition {
        entry_price: dec!(-1),
        ..good.clone()
    };
    assert!(matches!(
        restore(vec![no_price]),
        Err(PaperError::NonPositiveEntryPrice { .. })
    ));
    let no_leverage = PaperPosition {
        leverage: 0,
        ..good.clone()
    };
    assert_eq!(
        restore(vec![no_leverage]),
        Err(PaperError::ZeroLeverage { symbol: btc() })
    );
    let negative_margin = PaperPosition {
        margin: dec!(-1),
        ..good.clone()
    };
    assert!(matches!(
        restore(vec![negative_margin]),
        Err(PaperError::NegativeMargin { .. })
    ));
    let wrong_tp = PaperPosition {
        tp_price: Some(dec!(1)),
        ..good.clone()
    };
    assert!(matches!(
        restore(vec![wrong_tp]),
        Err(PaperError::InvalidProtection { .. })
    ));
    assert!(restore(vec![good]).is_ok());
}

#[test]
fn bad_inputs_are_refused_without_touching_the_book() {
    let mut book = PaperBook::new(dec!(1000), settings());
    book.market_order(order(btc(), Side::Buy, dec!(0.01), 5, dec!(60000)))
        .unwrap();
    let before = book.clone();

    let mut refuse = |o: MarketOrder| book.market_order(o).unwrap_err();
    assert_eq!(
        refuse(order(btc(), Side::Buy, dec!(0), 5, dec!(60000))),
        PaperRejection::NonPositiveQuantity { quantity: dec!(0) }
    );
    assert_eq!(
        refuse(order(btc(), Side::Buy, dec!(-1), 5, dec!(60000))),
        PaperRejection::NonPositiveQuantity { quantity: dec!(-1) }
    );
    assert_eq!(
        refuse(order(btc(), Side::Sell, dec!(1), 5, dec!(0))),
        PaperRejection::NonPositivePrice { price: dec!(0) }
    );
    assert_eq!(
        refuse(order(btc(), Side::Sell, dec!(1), 0, dec!(60000))),
        PaperRejection::ZeroLeverage
    );
    assert_eq!(
        refuse(order(btc(), Side::Buy, Decimal::MAX, 5, dec!(60000))),
        PaperRejection::Overflow
    );
    assert_eq!(
        refuse(order(eth(), Side::Buy, dec!(1), 1, Decimal::MAX)),
        PaperRejection::Overflow
    );
    assert_eq!(
        book.positions().collect::<Vec<_>>(),
        before.positions().collect::<Vec<_>>()
    );
    assert_eq!(book.wallet_balance(), before.wallet_balance());

    // Protection on the wrong side of the entry (60012) or with no position.
    let long = |tp, sl| book.clone().set_protection(&btc(), tp, sl);
    assert!(matches!(
        long(Some(dec!(59000)), None),
        Err(PaperRejection::InvalidTakeProfit { .. })
    ));
    assert!(matches!(
        long(None, Some(dec!(61000))),
        Err(PaperRejection::InvalidStopLoss { .. })
    ));
    assert!(matches!(
        long(None, Some(dec!(0))),
        Err(PaperRejection::InvalidStopLoss { .. })
    ));
    assert!(long(Some(dec!(61000)), Some(dec!(59000))).is_ok());
    assert_eq!(
        book.set_protection(&eth(), Some(dec!(1)), None),
        Err(PaperRejection::NoPosition { symbol: eth() })
    );
    assert_eq!(
        book.close_position(&eth(), dec!(3000), at(1), CloseReason::Close),
        Err(PaperRejection::NoPosition { symbol: eth() })
    );
    assert_eq!(
        book.close_position(&btc(), dec!(-3), at(1), CloseReason::Close),
        Err(PaperRejection::NonPositivePrice { price: dec!(-3) })
    );

    // Market data that makes no sense is ignored.
    assert!(book.on_price(&btc(), dec!(-5), at(2)).is_empty());
    let inverted = candle(dec!(100), dec!(90), dec!(110), dec!(100));
    assert!(book.on_candle(&btc(), &inverted, at(2)).is_empty());
    assert_eq!(book.last_price(&btc()), Some(dec!(60000)));

    // A slippage that would push a sell price to zero refuses instead of filling.
    let mut broken = PaperBook::new(
        dec!(1000),
        PaperSettings {
            slippage_bps: dec!(10000),
            ..settings()
        },
    );
    assert_eq!(
        broken.market_order(order(btc(), Side::Sell, dec!(0.01), 5, dec!(60000))),
        Err(PaperRejection::NonPositivePrice { price: dec!(0) })
    );
}

#[test]
fn short_take_profit_and_short_protection_sides() {
    let mut book = PaperBook::new(dec!(10000), settings());
    book.market_order(order(eth(), Side::Sell, dec!(1), 10, dec!(3000)))
        .unwrap();
    // Short entered at 2999.4: TP must be below, SL above.
    assert!(matches!(
        book.set_protection(&eth(), Some(dec!(3100)), None),
        Err(PaperRejection::InvalidTakeProfit { .. })
    ));
    assert!(matches!(
        book.set_protection(&eth(), None, Some(dec!(2900))),
        Err(PaperRejection::InvalidStopLoss { .. })
    ));
    book.set_protection(&eth(), Some(dec!(2800)), Some(dec!(3200)))
        .unwrap();
    // A bar that only dips to the TP: closed at the level, 2800 × 1.0002 = 2800.56.
    // realized = −(2800.56 − 2999.4) × 1 = 198.84
    let fills = book.on_candle(
        &eth(),
        &candle(dec!(2990), dec!(3000), dec!(2790), dec!(2795)),
        at(9),
    );
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].reason, FillReason::TakeProfit);
    assert_eq!(fills[0].price, dec!(2800.56));
    assert_eq!(fills[0].realized_pnl, dec!(198.84));
    assert_eq!(book.position(&eth()), None);
}

#[test]
fn a_bar_that_opens_beyond_the_stop_fills_at_the_open() {
    let mut book = PaperBook::new(dec!(10000), settings());
    book.market_order(order(eth(), Side::Buy, dec!(1), 10, dec!(3000)))
        .unwrap();
    book.set_protection(&eth(), None, Some(dec!(2900))).unwrap();
    // Gap down: the bar opens at 2800, below the 2900 stop. 2800 × 0.9998 = 2799.44.
    let fills = book.on_candle(
        &eth(),
        &candle(dec!(2800), dec!(2850), dec!(2780), dec!(2820)),
        at(9),
    );
    assert_eq!(fills[0].reason, FillReason::StopLoss);
    assert_eq!(fills[0].price, dec!(2799.44));
}

#[test]
fn increasing_at_another_leverage_remargins_the_whole_position() {
    let quiet = PaperSettings {
        fee_bps: dec!(0),
        slippage_bps: dec!(0),
        ..settings()
    };
    let mut book = PaperBook::new(dec!(10000), quiet);
    // 1 ETH at 3000 ×10: margin 300. Another 1 at 3000 ×5: margin = (300 × 10 + 3000) / 5 = 1200.
    book.market_order(order(eth(), Side::Buy, dec!(1), 10, dec!(3000)))
        .unwrap();
    let fill = book
        .market_order(order(eth(), Side::Buy, dec!(1), 5, dec!(3000)))
        .unwrap();
    let position = fill.position_after.unwrap();
    assert_eq!((position.leverage, position.margin), (5, dec!(1200)));
    // Up to ×20 again: margin = 6000 / 20 = 300 (nothing required, margin released).
    let fill = book
        .market_order(order(eth(), Side::Buy, dec!(0.5), 20, dec!(3000)))
        .unwrap();
    let position = fill.position_after.unwrap();
    assert_eq!((position.leverage, position.margin), (20, dec!(375)));
}

#[test]
fn amounts_beyond_eight_places_are_rounded_once_per_fill() {
    let mut book = PaperBook::new(dec!(1000), settings());
    // BUY 0.003 at 33333.33333333, leverage 3:
    //   fill   = 33333.33333333 × 1.0002 = 33339.999999996666 → 33340
    //   fee    = 33340 × 0.003 × 0.0005  = 0.05001
    //   margin = 100.02 / 3              = 33.34
    let fill = book
        .market_order(order(
            btc(),
            Side::Buy,
            dec!(0.003),
            3,
            dec!(33333.33333333),
        ))
        .unwrap();
    assert_eq!(fill.price, dec!(33340));
    assert_eq!(fill.fee, dec!(0.05001));
    assert_eq!(fill.position_after.unwrap().margin, dec!(33.34));
    // SELL 0.001 at 33333.33333333:
    //   fill     = 33333.33333333 × 0.9998 = 33326.666666663334 → 33326.66666666
    //   realized = (33326.66666666 − 33340) × 0.001 = −0.01333333334 → −0.01333333
    //   fee      = 33.32666666666 × 0.0005 = 0.01666333333333 → 0.01666333
    //   margin   = 33.34 − round(33.34 × 0.001 / 0.003 = 11.113333…) = 33.34 − 11.11333333
    //            = 22.22666667
    let fill = book
        .market_order(order(
            btc(),
            Side::Sell,
            dec!(0.001),
            3,
            dec!(33333.33333333),
        ))
        .unwrap();
    assert_eq!(fill.price, dec!(33326.66666666));
    assert_eq!(fill.realized_pnl, dec!(-0.01333333));
    assert_eq!(fill.fee, dec!(0.01666333));
    assert_eq!(fill.position_after.unwrap().margin, dec!(22.22666667));
    // The wallet adds the rounded amounts exactly, nothing re-rounded.
    assert_eq!(
        book.wallet_balance(),
        dec!(1000) - dec!(0.05001) - dec!(0.01666333) - dec!(0.01333333)
    );

    // An exact midpoint rounds away from zero: fee = 0.01 × 0.001 × 0.0005 = 0.000000005
    // → 0.00000001 (banker's rounding would give 0).
    let no_slippage = PaperSettings {
        slippage_bps: dec!(0),
        ..settings()
    };
    let mut book = PaperBook::new(dec!(1000), no_slippage);
    let fill = book
        .market_order(order(btc(), Side::Buy, dec!(0.001), 1, dec!(0.01)))
        .unwrap();
    assert_eq!(fill.fee, dec!(0.00000001));
}

#[test]
fn fills_round_to_the_tick_against_the_trader() {
    let mut book = PaperBook::new(dec!(100000), settings());
    book.set_tick_size(&btc(), dec!(0.1));
    book.set_tick_size(&btc(), dec!(0)); // ignored
    book.set_tick_size(&btc(), dec!(-1)); // ignored
    assert_eq!(book.tick_size(&btc()), Some(dec!(0.1)));
    assert_eq!(book.tick_size(&eth()), None);

    // BUY: 60000.05 × 1.0002 = 60000.05 + 12.00001 = 60012.05001 → up to 60012.1
    //      fee = 60012.1 × 0.1 × 0.0005 = 6001.21 × 0.0005 = 3.000605
    let fill = book
        .market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(60000.05)))
        .unwrap();
    assert_eq!(fill.price, dec!(60012.1));
    assert_eq!(fill.fee, dec!(3.000605));
    // SELL: 60000.05 × 0.9998 = 60000.05 − 12.00001 = 59988.04999 → down to 59988
    //       realized = (59988 − 60012.1) × 0.1 = −2.41
    let fill = book
        .close_position(&btc(), dec!(60000.05), at(1), CloseReason::Close)
        .unwrap();
    assert_eq!(fill.price, dec!(59988));
    assert_eq!(fill.realized_pnl, dec!(-2.41));

    // Without a tick only the 8 places apply: 3000.05 × 1.0002 = 3000.65001.
    let fill = book
        .market_order(order(eth(), Side::Buy, dec!(1), 5, dec!(3000.05)))
        .unwrap();
    assert_eq!(fill.price, dec!(3000.65001));

    // A SELL below one tick rounds down to zero: refused, nothing booked.
    //   0.5 × 0.9998 = 0.4999 → down to 0 on a tick of 1
    let sol = Symbol("SOLUSDT".into());
    book.set_tick_size(&sol, dec!(1));
    let before = book.clone();
    assert_eq!(
        book.market_order(order(sol.clone(), Side::Sell, dec!(1), 5, dec!(0.5))),
        Err(PaperRejection::NonPositivePrice { price: dec!(0) })
    );
    assert_eq!(book.wallet_balance(), before.wallet_balance());
    assert_eq!(book.position(&sol), None);
}

#[test]
fn funding_is_paid_by_longs_and_received_by_shorts_at_a_positive_rate() {
    let mut book = PaperBook::new(dec!(10000), settings());
    // Long 0.1 BTC (fill 60012, fee 3.0006): wallet 10000 − 3.0006 = 9996.9994.
    book.market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(60000)))
        .unwrap();
    // Short 2 ETH (fill 2999.4, fee 5998.8 × 0.0005 = 2.9994): wallet 9994.
    book.market_order(order(eth(), Side::Sell, dec!(2), 10, dec!(3000)))
        .unwrap();
    assert_eq!(book.wallet_balance(), dec!(9994));

    // +0.0001 on the long at mark 60500: pays 0.1 × 60500 × 0.0001 = 0.605.
    let funding = book
        .apply_funding(&btc(), dec!(0.0001), dec!(60500), at(1))
        .unwrap()
        .unwrap();
    assert_eq!(
        funding,
        PaperFunding {
            symbol: btc(),
            side: PositionSide::Long,
            quantity: dec!(0.1),
            mark: dec!(60500),
            rate: dec!(0.0001),
            amount: dec!(-0.605),
            ts: at(1),
        }
    );
    assert_eq!(book.wallet_balance(), dec!(9993.395)); // 9994 − 0.605
                                                       // +0.000125 on the short at mark 3001.23: receives 2 × 3001.23 × 0.000125 = 0.7503075.
    let funding = book
        .apply_funding(&eth(), dec!(0.000125), dec!(3001.23), at(1))
        .unwrap()
        .unwrap();
    assert_eq!(funding.amount, dec!(0.7503075));
    assert_eq!(book.wallet_balance(), dec!(9994.1453075)); // 9993.395 + 0.7503075

    // Funding moves the wallet only: positions, margins and marks are untouched.
    assert_eq!(book.position(&btc()).unwrap().margin, dec!(1200.24));
    assert_eq!(book.last_price(&btc()), Some(dec!(60000)));
}

#[test]
fn funding_at_a_negative_rate_pays_longs_and_charges_shorts() {
    let mut book = PaperBook::new(dec!(10000), settings());
    book.market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(60000)))
        .unwrap();
    book.market_order(order(eth(), Side::Sell, dec!(2), 10, dec!(3000)))
        .unwrap();
    // −0.0003 on the long at 59000: receives 0.1 × 59000 × 0.0003 = 1.77.
    let long = book
        .apply_funding(&btc(), dec!(-0.0003), dec!(59000), at(1))
        .unwrap()
        .unwrap();
    assert_eq!(long.amount, dec!(1.77));
    // −0.00001234 on the short at 3000: pays 2 × 3000 × 0.00001234 = 0.07404.
    let short = book
        .apply_funding(&eth(), dec!(-0.00001234), dec!(3000), at(1))
        .unwrap()
        .unwrap();
    assert_eq!(short.amount, dec!(-0.07404));
    assert_eq!(book.wallet_balance(), dec!(9995.69596)); // 9994 + 1.77 − 0.07404
}

#[test]
fn funding_rounds_once_half_away_from_zero_on_both_sides() {
    let mut book = PaperBook::new(dec!(1000), settings());
    let sol = Symbol("SOLUSDT".into());
    // 0.001 × 0.5 × 0.00001 = 0.000000005: exactly half of the 8th place.
    book.market_order(order(sol.clone(), Side::Buy, dec!(0.001), 1, dec!(0.5)))
        .unwrap();
    let paid = book
        .apply_funding(&sol, dec!(0.00001), dec!(0.5), at(1))
        .unwrap()
        .unwrap();
    assert_eq!(paid.amount, dec!(-0.00000001));
    let received = book
        .apply_funding(&sol, dec!(-0.00001), dec!(0.5), at(2))
        .unwrap()
        .unwrap();
    assert_eq!(received.amount, dec!(0.00000001));
    // A zero rate books a zero payment (and it reads as 0, not −0).
    let nothing = book
        .apply_funding(&sol, dec!(0), dec!(0.5), at(3))
        .unwrap()
        .unwrap();
    assert_eq!(nothing.amount.to_string(), "0");
}

#[test]
fn funding_without_a_position_or_with_absurd_numbers_books_nothing() {
    let mut book = PaperBook::new(dec!(10000), settings());
    assert_eq!(
        book.apply_funding(&btc(), dec!(0.0001), dec!(60000), at(1)),
        Ok(None)
    );
    book.market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(60000)))
        .unwrap();
    let before = book.clone();
    assert_eq!(
        book.apply_funding(&btc(), dec!(0.0001), dec!(0), at(1)),
        Err(PaperRejection::NonPositivePrice { price: dec!(0) })
    );
    // 0.1 × 60000 × Decimal::MAX does not fit.
    assert_eq!(
        book.apply_funding(&btc(), Decimal::MAX, dec!(60000), at(1)),
        Err(PaperRejection::Overflow)
    );
    assert_eq!(book, before);
}

#[test]
fn funding_serializes_like_a_fill() {
    let funding = PaperFunding {
        symbol: btc(),
        side: PositionSide::Short,
        quantity: dec!(0.1),
        mark: dec!(60500),
        rate: dec!(0.0001),
        amount: dec!(0.605),
        ts: at(1),
    };
    let json = serde_json::to_value(&funding).unwrap();
    assert_eq!(json["side"], "short");
    assert_eq!(json["amount"], "0.605");
    assert_eq!(json["rate"], "0.0001");
    let back: PaperFunding = serde_json::from_value(json).unwrap();
    assert_eq!(back, funding);
}

#[test]
fn a_long_is_liquidated_at_its_liquidation_price_before_its_stop_loss() {
    let mut book = PaperBook::new(dec!(10000), settings());
    book.set_tick_size(&eth(), dec!(0.01));
    // Long 1 ETH at 3000, 10x: fill 3000 × 1.0002 = 3000.6 (on the tick),
    //   fee 3000.6 × 0.0005 = 1.5003, margin 300.06; wallet 10000 − 1.5003 = 9998.4997.
    book.market_order(order(eth(), Side::Buy, dec!(1), 10, dec!(3000)))
        .unwrap();
    // A stop below the liquidation price never gets its turn.
    book.set_protection(&eth(), Some(dec!(3300)), Some(dec!(2600)))
        .unwrap();
    // liq = (3000.6 × 1 − 300.06) / (1 × 0.995) = 2700.54 / 0.995 = 2714.110552763… → 2714.11055276
    assert_eq!(book.liquidation_price(&eth()), Some(dec!(2714.11055276)));
    // At 2720 it survives; maintenance margin = 0.005 × 2720 × 1 = 13.6.
    assert!(book.on_price(&eth(), dec!(2720), at(1)).is_empty());
    assert_eq!(book.maintenance_margin(&eth()), Some(dec!(13.6)));
    assert_eq!(book.balance().maintenance_margin, dec!(13.6));

    // The price gaps to 2500, past the liquidation price and the stop: the venue's
    // engine takes the position over at the liquidation price, not at 2500.
    //   fill      = 2714.11055276 down to the tick = 2714.11 (no slippage)
    //   fee       = 2714.11 × 0.0005             = 1.357055
    //   realized  = (2714.11 − 3000.6) × 1       = −286.49
    //   clearance = 0.005 × 2714.11 × 1          = 13.57055
    //   wallet    = 9998.4997 − 1.357055 − 13.57055 − 286.49 = 9697.082095
    // realized + clearance = −300.06055: the margin (300.06) is gone, plus the tick.
    let fills = book.on_price(&eth(), dec!(2500), at(2));
    assert_eq!(fills.len(), 1);
    let fill = &fills[0];
    assert_eq!(fill.reason, FillReason::Liquidation);
    assert_eq!(fill.side, Side::Sell);
    assert_eq!(fill.quantity, dec!(1));
    assert_eq!(fill.price, dec!(2714.11));
    assert_eq!(fill.fee, dec!(1.357055));
    assert_eq!(fill.realized_pnl, dec!(-286.49));
    assert_eq!(fill.liquidation_fee, dec!(13.57055));
    assert_eq!(fill.position_after, None);
    assert_eq!(fill.ts, at(2));
    assert_eq!(book.position(&eth()), None);
    assert_eq!(book.liquidation_price(&eth()), None);
    assert_eq!(book.maintenance_margin(&eth()), None);
    assert_eq!(book.last_price(&eth()), Some(dec!(2500)));
    assert_eq!(book.wallet_balance(), dec!(9697.082095));
    let json = serde_json::to_value(fill).unwrap();
    assert_eq!(json["reason"], "liquidation");
    assert_eq!(json["liquidation_fee"], "13.57055");
}

#[test]
fn a_bar_that_reaches_a_short_liquidation_price_liquidates_before_the_take_profit() {
    let mut book = PaperBook::new(dec!(10000), settings());
    book.set_tick_size(&eth(), dec!(0.01));
    // Short 2 ETH at 3000, 10x: fill 2999.4, fee 5998.8 × 0.0005 = 2.9994,
    //   margin 599.88; wallet 10000 − 2.9994 = 9997.0006.
    book.market_order(order(eth(), Side::Sell, dec!(2), 10, dec!(3000)))
        .unwrap();
    book.set_protection(&eth(), Some(dec!(2900)), Some(dec!(3400)))
        .unwrap();
    // liq = (2999.4 × 2 + 599.88) / (2 × 1.005) = 6598.68 / 2.01 = 3282.925373134… → 3282.92537313
    assert_eq!(book.liquidation_price(&eth()), Some(dec!(3282.92537313)));
    // The bar dips through the TP (2900) and spikes through the liquidation price,
    // not the stop (3400). Which came first is unknown: the worse, liquidation, wins.
    //   fill      = 3282.92537313 up to the tick (a BUY) = 3282.93
    //   fee       = 3282.93 × 2 × 0.0005        = 6565.86 × 0.0005 = 3.28293
    //   realized  = −(3282.93 − 2999.4) × 2      = −567.06
    //   clearance = 0.005 × 6565.86              = 32.8293
    //   wallet    = 9997.0006 − 3.28293 − 32.8293 − 567.06 = 9393.82837
    let bar = candle(dec!(3000), dec!(3300), dec!(2850), dec!(3100));
    let fills = book.on_candle(&eth(), &bar, at(3));
    assert_eq!(fills.len(), 1);
    let fill = &fills[0];
    assert_eq!(fill.reason, FillReason::Liquidation);
    assert_eq!(fill.side, Side::Buy);
    assert_eq!(fill.price, dec!(3282.93));
    assert_eq!(fill.fee, dec!(3.28293));
    assert_eq!(fill.realized_pnl, dec!(-567.06));
    assert_eq!(fill.liquidation_fee, dec!(32.8293));
    assert_eq!(book.position(&eth()), None);
    assert_eq!(book.last_price(&eth()), Some(dec!(3100)));
    assert_eq!(book.wallet_balance(), dec!(9393.82837));
}

#[test]
fn a_1x_long_is_never_liquidated() {
    let mut book = PaperBook::new(dec!(1000), settings());
    // 0.01 BTC at 60000, 1x: fill 60012, margin 600.12 = the whole entry notional.
    book.market_order(order(btc(), Side::Buy, dec!(0.01), 1, dec!(60000)))
        .unwrap();
    assert_eq!(book.liquidation_price(&btc()), None);
    // Down to one cent: no liquidation, the position is still there.
    assert!(book.on_price(&btc(), dec!(0.01), at(1)).is_empty());
    let bar = candle(dec!(0.02), dec!(0.02), dec!(0.01), dec!(0.01));
    assert!(book.on_candle(&btc(), &bar, at(2)).is_empty());
    assert_eq!(book.position(&btc()).unwrap().quantity, dec!(0.01));
    // maintenance margin = 0.005 × 0.01 × 0.01 = 0.0000005
    assert_eq!(book.maintenance_margin(&btc()), Some(dec!(0.0000005)));
}

#[test]
fn a_liquidation_that_cannot_be_booked_changes_nothing() {
    // A wallet at Decimal::MIN cannot pay the fees: the liquidation overflows, so the
    // position stays open and the update returns no fill.
    let position = PaperPosition {
        symbol: eth(),
        side: PositionSide::Short,
        quantity: dec!(1),
        entry_price: dec!(3000),
        leverage: 10,
        margin: dec!(300),
        tp_price: None,
        sl_price: None,
        opened_at: at(0),
        realized_pnl: dec!(0),
    };
    let mut book = PaperBook::restore(Decimal::MIN, vec![position], settings()).unwrap();
    // liq = (3000 + 300) / 1.005 = 3283.58208955
    assert_eq!(book.liquidation_price(&eth()), Some(dec!(3283.58208955)));
    let before = book.clone();
    assert!(book.on_price(&eth(), dec!(4000), at(1)).is_empty());
    assert_eq!(book.position(&eth()), before.position(&eth()));
    assert_eq!(book.wallet_balance(), Decimal::MIN);
    // Absurd marks are reported, saturated, without panicking.
    book.on_price(&eth(), Decimal::MAX, at(2));
    assert!(book.balance().maintenance_margin > dec!(1e20));
    assert_eq!(book.position(&eth()), before.position(&eth()));
}

#[test]
fn fills_serialize_for_the_journal() {
    let mut book = PaperBook::new(dec!(10000), settings());
    let fill = book
        .market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(60000)))
        .unwrap();
    let json = serde_json::to_value(&fill).unwrap();
    assert_eq!(json["reason"], "entry");
    assert_eq!(json["side"], "BUY");
    assert_eq!(json["price"], "60012");
    assert_eq!(json["position_after"]["margin"], "1200.24");
    let back: PaperFill = serde_json::from_value(json).unwrap();
    assert_eq!(back, fill);
    let balance = serde_json::to_value(book.balance()).unwrap();
    assert_eq!(balance["wallet_balance"], "9996.9994");
}

/// splitmix64: a tiny deterministic generator, so the walk is the same on every run.
struct Walk(u64);

impl Walk {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A decimal in [0, max_units) × 10^-scale.
    fn decimal(&mut self, max_units: u64, scale: u32) -> Decimal {
        Decimal::new(self.below(max_units) as i64, scale)
    }
}

#[test]
fn random_orders_and_prices_keep_the_books_balanced() {
    let mut seen = HashSet::new();
    for seed in [1, 42, 2024] {
        seen.extend(random_walk(seed, 4000));
    }
    // The walks really exercised every kind of fill.
    for reason in [
        FillReason::Entry,
        FillReason::Increase,
        FillReason::Reduce,
        FillReason::Close,
        FillReason::Flip,
        FillReason::TakeProfit,
        FillReason::StopLoss,
        FillReason::Liquidation,
    ] {
        assert!(seen.contains(&reason), "{reason:?} never happened");
    }
}

/// Runs `steps` random operations (orders, some malformed; protections; closes; prices;
/// candles; funding) over three symbols and checks the book's invariants after each one.
/// Returns the fill reasons seen.
fn random_walk(seed: u64, steps: i64) -> HashSet<FillReason> {
    let symbols = [btc(), eth(), Symbol("SOLUSDT".into())];
    let bases = [dec!(60000), dec!(3000), dec!(150)];
    let start = dec!(100000);
    let mut walk = Walk(seed);
    let mut book = PaperBook::new(start, settings());
    // BTC and ETH fill on a tick grid, SOL only on the 8 places.
    book.set_tick_size(&symbols[0], dec!(0.1));
    book.set_tick_size(&symbols[1], dec!(0.01));
    let mut prices = bases;
    let (mut fees, mut liquidation_fees, mut realized, mut funding) =
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut seen = HashSet::new();

    for step in 0..steps {
        let i = walk.below(3) as usize;
        let symbol = symbols[i].clone();
        // Random walk of ±5 % per step, bounded to [base/4, base × 4].
        let moved = prices[i] * (Decimal::ONE + (walk.decimal(1001, 4) - dec!(0.05)));
        prices[i] = moved
            .round_dp(2)
            .clamp(bases[i] / dec!(4), bases[i] * dec!(4));
        let price = prices[i];
        let ts = at(step);
        let before = book.clone();

        let kind = walk.below(11);
        let fills: Vec<PaperFill> = match kind {
            0..=4 => {
                let quantity = match walk.below(20) {
                    0 => dec!(0),
                    1 => dec!(-0.5),
                    _ => walk.decimal(5000, 3) * dec!(10000) / bases[i],
                }
                .round_dp(3);
                let last_price = if walk.below(50) == 0 { dec!(0) } else { price };
                let o = MarketOrder {
                    symbol: symbol.clone(),
                    side: if walk.below(2) == 0 {
                        Side::Buy
                    } else {
                        Side::Sell
                    },
                    quantity,
                    leverage: walk.below(21) as u32,
                    last_price,
                    reduce_only: walk.below(4) == 0,
                    ts,
                };
                match book.market_order(o) {
                    Ok(fill) => vec![fill],
                    Err(rejection) => {
                        // A refusal changes no money and no position.
                        assert_eq!(
                            book.wallet_balance(),
                            before.wallet_balance(),
                            "{rejection}"
                        );
                        assert_eq!(
                            book.positions().collect::<Vec<_>>(),
                            before.positions().collect::<Vec<_>>()
                        );
                        Vec::new()
                    }
                }
            }
            5 => {
                let entry = book
                    .position(&symbol)
                    .map(|p| p.entry_price)
                    .unwrap_or(price);
                let tp = entry * (Decimal::ONE + walk.decimal(2001, 4) - dec!(0.1));
                let sl = entry * (Decimal::ONE + walk.decimal(2001, 4) - dec!(0.1));
                let _ = book.set_protection(&symbol, Some(tp.round_dp(2)), Some(sl.round_dp(2)));
                Vec::new()
            }
            6 => book
                .close_position(&symbol, price, ts, CloseReason::Close)
                .into_iter()
                .collect(),
            7 => {
                let spread = price * walk.decimal(500, 4);
                let open = price * (Decimal::ONE + walk.decimal(201, 4) - dec!(0.01));
                let bar = candle(
                    open.round_dp(2),
                    (price.max(open) + spread).round_dp(2),
                    (price.min(open) - spread).round_dp(2),
                    price,
                );
                book.on_candle(&symbol, &bar, ts)
            }
            8 => {
                // A funding time: a rate in [−0.1 %, +0.1 %] at the current price.
                let rate = walk.decimal(2001, 6) - dec!(0.001);
                match book.apply_funding(&symbol, rate, price, ts) {
                    Ok(Some(payment)) => {
                        // A long pays a positive rate, a short receives it.
                        let owed = -payment.side.sign() * payment.quantity * price * rate;
                        assert_eq!(
                            payment.amount,
                            owed.round_dp_with_strategy(8, RoundingStrategy::MidpointAwayFromZero)
                        );
                        funding += payment.amount;
                    }
                    Ok(None) => assert!(before.position(&symbol).is_none()),
                    Err(rejection) => panic!("funding refused: {rejection}"),
                }
                Vec::new()
            }
            _ => book.on_price(&symbol, price, ts),
        };

        for fill in &fills {
            seen.insert(fill.reason);
            assert!(fill.quantity > Decimal::ZERO);
            assert!(fill.price > Decimal::ZERO);
            assert_eq!(fill.ts, ts);
            assert_eq!(fill.position_after.as_ref(), book.position(&fill.symbol));
            if fill.reason == FillReason::Liquidation {
                assert!(fill.liquidation_fee > Decimal::ZERO);
            } else {
                assert_eq!(fill.liquidation_fee, Decimal::ZERO);
            }
            fees += fill.fee;
            liquidation_fees += fill.liquidation_fee;
            realized += fill.realized_pnl;
        }

        // After market data, no position is left beyond its liquidation price.
        if matches!(kind, 7 | 9 | 10) {
            if let (Some(position), Some(liquidation)) =
                (book.position(&symbol), book.liquidation_price(&symbol))
            {
                let mark = book.last_price(&symbol).unwrap();
                match position.side {
                    PositionSide::Long => assert!(mark > liquidation, "step {step}"),
                    PositionSide::Short => assert!(mark < liquidation, "step {step}"),
                }
            }
        }

        // wallet = start − fees − liquidation fees + realized PnL + funding, exactly.
        assert_eq!(
            book.wallet_balance(),
            start - fees - liquidation_fees + realized + funding,
            "step {step}"
        );
        let mut used_margin = Decimal::ZERO;
        let mut maintenance_margin = Decimal::ZERO;
        let mut unrealized = Decimal::ZERO;
        for position in book.positions() {
            assert!(position.quantity > Decimal::ZERO);
            assert!(position.entry_price > Decimal::ZERO);
            assert!(position.leverage >= 1);
            assert!(position.margin >= Decimal::ZERO);
            used_margin += position.margin;
            let mark = book.last_price(&position.symbol).unwrap();
            unrealized += position.unrealized_pnl(mark);
            maintenance_margin += (mark * position.quantity * dec!(0.005))
                .round_dp_with_strategy(8, RoundingStrategy::MidpointAwayFromZero);
        }
        let balance = book.balance();
        assert_eq!(balance.used_margin, used_margin);
        assert_eq!(balance.maintenance_margin, maintenance_margin);
        assert_eq!(balance.unrealized_pnl, unrealized);
        assert_eq!(balance.equity, balance.wallet_balance + unrealized);
        assert_eq!(balance.available, balance.equity - used_margin);
        assert!(book.positions().count() <= symbols.len());
    }

    seen
}
