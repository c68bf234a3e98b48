//! One scripted account journey through everything that moves paper money: tick
//! rounding, slippage, taker fees, funding both ways, a partial reduce, a take-profit,
//! a liquidation. After every step the wallet, the fills, the funding amounts, the
//! margins and the liquidation prices are compared with decimal literals computed by
//! hand; the arithmetic sits next to each literal so it can be checked with a pencil.
//!
//! Conventions of the comments: `↑tick` / `↓tick` = rounded up / down to the tick;
//! `→` = rounded to 8 places, half away from zero (only where it changes anything).

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::tests::{at, btc, candle, eth, order};
use super::*;

/// 5 bps taker fee, 5 bps slippage (BUY × 1.0005, SELL × 0.9995), maintenance margin
/// 0.5 % of the notional (so a long's liquidation divides by 0.995, a short's by 1.005).
fn venue() -> PaperSettings {
    PaperSettings {
        fee_bps: dec!(5),
        maker_fee_bps: dec!(2),
        slippage_bps: dec!(5),
        maintenance_margin_rate: dec!(0.005),
    }
}

fn sol() -> Symbol {
    Symbol("SOLUSDT".into())
}

#[test]
fn scripted_journey_with_ticks_funding_take_profit_and_liquidation() {
    let mut book = PaperBook::new(dec!(20000), venue());
    let mut fills: Vec<PaperFill> = Vec::new();
    let mut fundings: Vec<PaperFunding> = Vec::new();

    // 1. Ticks from the venue's rules: BTC 0.1, ETH 0.01; SOL has none (8 places only).
    book.set_tick_size(&btc(), dec!(0.1));
    book.set_tick_size(&eth(), dec!(0.01));

    // 2. BUY 0.1 BTC at last 100000.3, 5x.
    //    raw    = 100000.3 × 1.0005 = 100000.3 + 50.00015 = 100050.30015 ↑tick 100050.4
    //    fee    = 100050.4 × 0.1 × 0.0005 = 10005.04 × 0.0005 = 5.00252
    //    margin = 10005.04 / 5 = 2001.008
    //    wallet = 20000 − 5.00252 = 19994.99748
    //    liq    = (10005.04 − 2001.008) / (0.1 × 0.995) = 8004.032 / 0.0995
    //           = 80442.532663316… → 80442.53266332
    //    maint. = 0.005 × 100000.3 × 0.1 = 50.00015
    let fill = book
        .market_order(order(btc(), Side::Buy, dec!(0.1), 5, dec!(100000.3)))
        .unwrap();
    assert_eq!(fill.reason, FillReason::Entry);
    assert_eq!(fill.price, dec!(100050.4));
    assert_eq!(fill.fee, dec!(5.00252));
    assert_eq!(fill.realized_pnl, dec!(0));
    assert_eq!(fill.liquidation_fee, dec!(0));
    assert_eq!(book.position(&btc()).unwrap().margin, dec!(2001.008));
    assert_eq!(book.liquidation_price(&btc()), Some(dec!(80442.53266332)));
    assert_eq!(book.maintenance_margin(&btc()), Some(dec!(50.00015)));
    assert_eq!(book.wallet_balance(), dec!(19994.99748));
    fills.push(fill);

    // 3. Funding time, rate +0.0001 at mark 100120: the long pays.
    //    amount = −(0.1 × 100120 × 0.0001) = −1.0012
    //    wallet = 19994.99748 − 1.0012 = 19993.99628
    //    margin and liquidation price are unchanged (funding moves the wallet only).
    let funding = book
        .apply_funding(&btc(), dec!(0.0001), dec!(100120), at(3600))
        .unwrap()
        .unwrap();
    assert_eq!(funding.side, PositionSide::Long);
    assert_eq!(funding.amount, dec!(-1.0012));
    assert_eq!(book.wallet_balance(), dec!(19993.99628));
    assert_eq!(book.position(&btc()).unwrap().margin, dec!(2001.008));
    assert_eq!(book.liquidation_price(&btc()), Some(dec!(80442.53266332)));
    fundings.push(funding);

    // 4. Price path 101000, then 99500: no trigger (no TP/SL yet, liq 80442.53…).
    //    At 99500: unrealized = (99500 − 100050.4) × 0.1 = −55.04
    //              equity     = 19993.99628 − 55.04 = 19938.95628
    //              available  = 19938.95628 − 2001.008 = 17937.94828
    //              maint.     = 0.005 × 99500 × 0.1 = 49.75
    assert!(book.on_price(&btc(), dec!(101000), at(3700)).is_empty());
    assert!(book.on_price(&btc(), dec!(99500), at(3800)).is_empty());
    assert_eq!(
        book.balance(),
        PaperBalance {
            wallet_balance: dec!(19993.99628),
            unrealized_pnl: dec!(-55.04),
            equity: dec!(19938.95628),
            used_margin: dec!(2001.008),
            maintenance_margin: dec!(49.75),
            available: dec!(17937.94828),
        }
    );

    // 5. Partial reduce: SELL 0.04 BTC at last 102000.7.
    //    raw      = 102000.7 × 0.9995 = 102000.7 − 51.00035 = 101949.69965 ↓tick 101949.6
    //    fee      = 101949.6 × 0.04 × 0.0005 = 4077.984 × 0.0005 = 2.038992
    //    realized = (101949.6 − 100050.4) × 0.04 = 1899.2 × 0.04 = 75.968
    //    margin   = 2001.008 − 2001.008 × 0.04 / 0.1 = 2001.008 − 800.4032 = 1200.6048
    //    wallet   = 19993.99628 − 2.038992 + 75.968 = 20067.925288
    //    liq      = (100050.4 × 0.06 − 1200.6048) / (0.06 × 0.995)
    //             = (6003.024 − 1200.6048) / 0.0597 = 4802.4192 / 0.0597
    //             = 80442.532663316… → 80442.53266332 (a pro-rata reduce keeps it)
    //    maint.   = 0.005 × 102000.7 × 0.06 = 30.600210
    let fill = book
        .market_order(order(btc(), Side::Sell, dec!(0.04), 5, dec!(102000.7)))
        .unwrap();
    assert_eq!(fill.reason, FillReason::Reduce);
    assert_eq!(fill.price, dec!(101949.6));
    assert_eq!(fill.fee, dec!(2.038992));
    assert_eq!(fill.realized_pnl, dec!(75.968));
    let position = book.position(&btc()).unwrap();
    assert_eq!(position.quantity, dec!(0.06));
    assert_eq!(position.margin, dec!(1200.6048));
    assert_eq!(book.liquidation_price(&btc()), Some(dec!(80442.53266332)));
    assert_eq!(book.maintenance_margin(&btc()), Some(dec!(30.60021)));
    assert_eq!(book.wallet_balance(), dec!(20067.925288));
    fills.push(fill);

    // 6. TP 104000 / SL 95000; a bar (open 102000, high 104500, low 101500) crosses the
    //    TP only (the low is far above the SL and the liquidation price): closed at the
    //    level with slippage.
    //    raw      = 104000 × 0.9995 = 103948 (on the tick already)
    //    fee      = 103948 × 0.06 × 0.0005 = 6236.88 × 0.0005 = 3.11844
    //    realized = (103948 − 100050.4) × 0.06 = 3897.6 × 0.06 = 233.856
    //    wallet   = 20067.925288 − 3.11844 + 233.856 = 20298.662848
    book.set_protection(&btc(), Some(dec!(104000)), Some(dec!(95000)))
        .unwrap();
    let bar = candle(dec!(102000), dec!(104500), dec!(101500), dec!(104200));
    let mut triggered = book.on_candle(&btc(), &bar, at(7200));
    assert_eq!(triggered.len(), 1);
    let fill = triggered.remove(0);
    assert_eq!(fill.reason, FillReason::TakeProfit);
    assert_eq!(fill.price, dec!(103948));
    assert_eq!(fill.fee, dec!(3.11844));
    assert_eq!(fill.realized_pnl, dec!(233.856));
    assert_eq!(fill.liquidation_fee, dec!(0));
    assert_eq!(book.position(&btc()), None);
    assert_eq!(book.liquidation_price(&btc()), None);
    assert_eq!(book.wallet_balance(), dec!(20298.662848));
    fills.push(fill);

    // 7. SELL 3 ETH at last 3500.17, 10x.
    //    raw    = 3500.17 × 0.9995 = 3500.17 − 1.750085 = 3498.419915 ↓tick 3498.41
    //    fee    = 3498.41 × 3 × 0.0005 = 10495.23 × 0.0005 = 5.247615
    //    margin = 10495.23 / 10 = 1049.523
    //    wallet = 20298.662848 − 5.247615 = 20293.415233
    //    liq    = (10495.23 + 1049.523) / (3 × 1.005) = 11544.753 / 3.015
    //           = 3829.105472636… → 3829.10547264
    let fill = book
        .market_order(order(eth(), Side::Sell, dec!(3), 10, dec!(3500.17)))
        .unwrap();
    assert_eq!(fill.reason, FillReason::Entry);
    assert_eq!(fill.price, dec!(3498.41));
    assert_eq!(fill.fee, dec!(5.247615));
    assert_eq!(book.position(&eth()).unwrap().margin, dec!(1049.523));
    assert_eq!(book.liquidation_price(&eth()), Some(dec!(3829.10547264)));
    assert_eq!(book.wallet_balance(), dec!(20293.415233));
    fills.push(fill);

    // 8. BUY 20 SOL at last 150.02, 3x (no tick: 8 places only).
    //    raw    = 150.02 × 1.0005 = 150.02 + 0.07501 = 150.09501
    //    fee    = 150.09501 × 20 × 0.0005 = 3001.9002 × 0.0005 = 1.5009501
    //    margin = 3001.9002 / 3 = 1000.6334
    //    wallet = 20293.415233 − 1.5009501 = 20291.9142829
    //    liq    = (3001.9002 − 1000.6334) / (20 × 0.995) = 2001.2668 / 19.9
    //           = 100.566170854… → 100.56617085
    let fill = book
        .market_order(order(sol(), Side::Buy, dec!(20), 3, dec!(150.02)))
        .unwrap();
    assert_eq!(fill.price, dec!(150.09501));
    assert_eq!(fill.fee, dec!(1.5009501));
    assert_eq!(book.position(&sol()).unwrap().margin, dec!(1000.6334));
    assert_eq!(book.liquidation_price(&sol()), Some(dec!(100.56617085)));
    assert_eq!(book.wallet_balance(), dec!(20291.9142829));
    fills.push(fill);

    // 9. Funding time, rate −0.0002 on both: shorts pay longs.
    //    ETH short at mark 3520: amount = −(3 × 3520 × 0.0002) = −2.112
    //    SOL long  at mark 150.5: amount = +(20 × 150.5 × 0.0002) = +0.602
    //    wallet = 20291.9142829 − 2.112 + 0.602 = 20290.4042829
    let eth_funding = book
        .apply_funding(&eth(), dec!(-0.0002), dec!(3520), at(28800))
        .unwrap()
        .unwrap();
    assert_eq!(eth_funding.side, PositionSide::Short);
    assert_eq!(eth_funding.amount, dec!(-2.112));
    let sol_funding = book
        .apply_funding(&sol(), dec!(-0.0002), dec!(150.5), at(28800))
        .unwrap()
        .unwrap();
    assert_eq!(sol_funding.amount, dec!(0.602));
    assert_eq!(book.wallet_balance(), dec!(20290.4042829));
    assert_eq!(book.liquidation_price(&eth()), Some(dec!(3829.10547264)));
    assert_eq!(book.liquidation_price(&sol()), Some(dec!(100.56617085)));
    fundings.push(eth_funding);
    fundings.push(sol_funding);

    // 10. ETH to 3600: below its liquidation price, nothing happens. SOL's mark is still
    //     its order's last price 150.02 (a funding mark is not market data).
    //     unrealized = −(3600 − 3498.41) × 3 + (150.02 − 150.09501) × 20
    //                = −304.77 − 1.5002 = −306.2702
    //     equity     = 20290.4042829 − 306.2702 = 19984.1340829
    //     used       = 1049.523 + 1000.6334 = 2050.1564
    //     available  = 19984.1340829 − 2050.1564 = 17933.9776829
    //     maint.     = 0.005 × 3600 × 3 + 0.005 × 150.02 × 20 = 54 + 15.002 = 69.002
    assert!(book.on_price(&eth(), dec!(3600), at(30000)).is_empty());
    assert_eq!(
        book.balance(),
        PaperBalance {
            wallet_balance: dec!(20290.4042829),
            unrealized_pnl: dec!(-306.2702),
            equity: dec!(19984.1340829),
            used_margin: dec!(2050.1564),
            maintenance_margin: dec!(69.002),
            available: dec!(17933.9776829),
        }
    );

    // 11. An ETH bar spikes to 3850, past the liquidation price 3829.10547264: the
    //     venue's engine buys the short back at the liquidation price, ↑tick 3829.11.
    //     fee       = 3829.11 × 3 × 0.0005 = 11487.33 × 0.0005 = 5.743665
    //     realized  = −(3829.11 − 3498.41) × 3 = −330.7 × 3 = −992.1
    //     clearance = 0.005 × 11487.33 = 57.43665
    //     wallet    = 20290.4042829 − 5.743665 − 57.43665 − 992.1 = 19235.1239679
    //     (pencil check of the liquidation price: margin + unrealized at 3829.10547264
    //      = 1049.523 − 330.69547264 × 3 = 1049.523 − 992.08641792 = 57.43658208
    //      ≈ 0.005 × 3829.10547264 × 3 = 57.4365820896; and realized + clearance
    //      = −1049.53665: the whole margin, plus 0.01365 lost to the tick.)
    let bar = candle(dec!(3610), dec!(3850), dec!(3590), dec!(3700));
    let mut liquidated = book.on_candle(&eth(), &bar, at(30060));
    assert_eq!(liquidated.len(), 1);
    let fill = liquidated.remove(0);
    assert_eq!(fill.reason, FillReason::Liquidation);
    assert_eq!(fill.side, Side::Buy);
    assert_eq!(fill.quantity, dec!(3));
    assert_eq!(fill.price, dec!(3829.11));
    assert_eq!(fill.fee, dec!(5.743665));
    assert_eq!(fill.realized_pnl, dec!(-992.1));
    assert_eq!(fill.liquidation_fee, dec!(57.43665));
    assert_eq!(fill.position_after, None);
    assert_eq!(book.position(&eth()), None);
    assert_eq!(book.liquidation_price(&eth()), None);
    assert_eq!(book.wallet_balance(), dec!(19235.1239679));
    // The SOL long is untouched (isolated margin).
    assert_eq!(book.position(&sol()).unwrap().margin, dec!(1000.6334));
    fills.push(fill);

    // 12. Close SOL at last 151.
    //     raw      = 151 × 0.9995 = 150.9245
    //     fee      = 150.9245 × 20 × 0.0005 = 3018.49 × 0.0005 = 1.509245
    //     realized = (150.9245 − 150.09501) × 20 = 0.82949 × 20 = 16.5898
    //     wallet   = 19235.1239679 − 1.509245 + 16.5898 = 19250.2045229
    let fill = book
        .close_position(&sol(), dec!(151), at(40000), CloseReason::Close)
        .unwrap();
    assert_eq!(fill.price, dec!(150.9245));
    assert_eq!(fill.fee, dec!(1.509245));
    assert_eq!(fill.realized_pnl, dec!(16.5898));
    assert_eq!(book.wallet_balance(), dec!(19250.2045229));
    fills.push(fill);

    // Flat: equity is the wallet, no margin of any kind.
    assert_eq!(
        book.balance(),
        PaperBalance {
            wallet_balance: dec!(19250.2045229),
            unrealized_pnl: dec!(0),
            equity: dec!(19250.2045229),
            used_margin: dec!(0),
            maintenance_margin: dec!(0),
            available: dec!(19250.2045229),
        }
    );

    // The wallet invariant, from the records and by hand:
    //   Σ fee      = 5.00252 + 2.038992 + 3.11844 + 5.247615 + 1.5009501 + 5.743665
    //              + 1.509245 = 24.1614271
    //   Σ clearance = 57.43665
    //   Σ realized = 75.968 + 233.856 − 992.1 + 16.5898 = −665.6862
    //   Σ funding  = −1.0012 − 2.112 + 0.602 = −2.5112
    //   wallet     = 20000 − 24.1614271 − 57.43665 − 665.6862 − 2.5112 = 19250.2045229
    let fees: Decimal = fills.iter().map(|f| f.fee).sum();
    let clearance: Decimal = fills.iter().map(|f| f.liquidation_fee).sum();
    let realized: Decimal = fills.iter().map(|f| f.realized_pnl).sum();
    let funding: Decimal = fundings.iter().map(|f| f.amount).sum();
    assert_eq!(fees, dec!(24.1614271));
    assert_eq!(clearance, dec!(57.43665));
    assert_eq!(realized, dec!(-665.6862));
    assert_eq!(funding, dec!(-2.5112));
    assert_eq!(
        book.wallet_balance(),
        dec!(20000) - fees - clearance + realized + funding
    );
}
