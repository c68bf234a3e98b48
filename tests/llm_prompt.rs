//! The prompt an account's model reads: rendered from template files with the cycle's
//! market snapshots, account state and rules, overridable per account, and small enough
//! to send every cycle.
//!
//! Snapshots are built with `MarketSnapshot::build` from real EUR/USD hourly bars
//! (`tests/data/eurusd-1h.csv`) scaled to BTC, ETH and SOL price levels. Token counts are
//! measured with tiktoken (`o200k_base`, `cl100k_base`) and printed; run with
//! `cargo test --test llm_prompt -- --nocapture` to see them.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::str::FromStr;
use std::sync::Arc;
use vibex::domain::decision::{AccountView, PositionView};
use vibex::domain::snapshot::{
    CurrentIndicators, IntradaySeries, LongTermContext, MarketSnapshot, OpenInterestStats,
    SnapshotInput,
};
use vibex::domain::types::{Asset, Candle, PositionSide, Symbol};
use vibex::llm::prompt::format::{series, sig, sig_decimal};
use vibex::llm::prompt::{
    estimate_tokens, CooldownSummary, DiarySummary, FillSummary, OrderSummary, PromptContext,
    PromptError, PromptTemplates, RenderedPrompt, RulesSummary,
};

/// Token budget of a whole 3-asset prompt (system + user) in either encoding: a template
/// change that bloats the prompt past it fails here, not on the invoice. The prompt
/// measured about 3,400 tokens when this was set; the budget leaves a third for growth.
const TOKEN_BUDGET: usize = 4_500;

const DATA: &str = include_str!("data/eurusd-1h.csv");

/// `(high, low, close, volume)` of every row of the CSV.
fn rows() -> Vec<[f64; 4]> {
    let mut reader = csv::Reader::from_reader(DATA.as_bytes());
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let cell = |i: usize| f64::from_str(r.get(i).unwrap().trim()).unwrap();
            [cell(2), cell(3), cell(4), cell(5)]
        })
        .collect()
}

/// `n` bars from row `from`, scaled so EUR/USD ~1.1 lands near `level`, rounded to `dp`.
fn candles(
    rows: &[[f64; 4]],
    from: usize,
    n: usize,
    level: f64,
    dp: u32,
    step_secs: i64,
    last_open: DateTime<Utc>,
) -> Vec<Candle> {
    let scale = level / 1.1;
    let price = |x: f64| Decimal::from_f64(x * scale).unwrap().round_dp(dp);
    rows[from..from + n]
        .iter()
        .enumerate()
        .map(|(i, [high, low, close, volume])| {
            let open_time = last_open - Duration::seconds(step_secs * (n - 1 - i) as i64);
            let prev_close = if i == 0 {
                *close
            } else {
                rows[from + i - 1][2]
            };
            Candle {
                open_time,
                open: price(prev_close),
                high: price(*high),
                low: price(*low),
                close: price(*close),
                volume: Decimal::from_f64(volume * scale / 1000.0)
                    .unwrap()
                    .round_dp(3),
                close_time: open_time + Duration::seconds(step_secs - 1),
            }
        })
        .collect()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 30, 12).unwrap()
}

struct Listing {
    asset: &'static str,
    level: f64,
    dp: u32,
    offset: usize,
    funding: Decimal,
    oi: [Decimal; 3],
    age_secs: i64,
}

const LISTINGS: [Listing; 3] = [
    Listing {
        asset: "BTC",
        level: 60_000.0,
        dp: 1,
        offset: 100,
        funding: dec!(0.0001),
        oi: [dec!(10250.5), dec!(10310.25), dec!(10402.125)],
        age_secs: 12,
    },
    Listing {
        asset: "ETH",
        level: 3_000.0,
        dp: 2,
        offset: 1_700,
        funding: dec!(-0.0000375),
        oi: [dec!(251000), dec!(250500), dec!(249875.5)],
        age_secs: 8,
    },
    Listing {
        asset: "SOL",
        level: 150.0,
        dp: 3,
        offset: 3_300,
        funding: dec!(0.00012),
        oi: [dec!(3100000), dec!(3150000), dec!(3125000)],
        age_secs: 5,
    },
];

fn snapshot(rows: &[[f64; 4]], l: &Listing) -> MarketSnapshot {
    let at = now() - Duration::seconds(l.age_secs);
    let symbol = Asset::new(l.asset).symbol();
    let c5 = candles(rows, l.offset, 150, l.level, l.dp, 300, at);
    let c4 = candles(rows, l.offset + 600, 120, l.level, l.dp, 14_400, at);
    let last = c5.last().unwrap().close;
    MarketSnapshot::build(&SnapshotInput {
        venue: "https://fapi.asterdex.com",
        symbol: &symbol,
        candles_5m: &c5,
        candles_4h: &c4,
        mark_price: (last * dec!(1.0002)).round_dp(l.dp),
        funding_rate: l.funding,
        next_funding_time: Some(Utc.with_ymd_and_hms(2025, 3, 14, 16, 0, 0).unwrap()),
        open_interest: &l.oi,
        now: at,
    })
    .unwrap()
}

fn position(
    s: &MarketSnapshot,
    side: PositionSide,
    qty: Decimal,
    entry: Decimal,
    plan: &str,
) -> PositionView {
    PositionView {
        symbol: s.symbol.clone(),
        side,
        quantity: qty,
        entry_price: entry,
        leverage: 5,
        unrealized_pnl: (side.sign() * (s.mark_price - entry) * qty).round_dp(8),
        tp_price: Some(match side {
            PositionSide::Long => (entry * dec!(1.04)).round_dp(1),
            PositionSide::Short => (entry * dec!(0.95)).round_dp(2),
        }),
        sl_price: Some(match side {
            PositionSide::Long => (entry * dec!(0.98)).round_dp(1),
            PositionSide::Short => (entry * dec!(1.025)).round_dp(2),
        }),
        exit_plan: plan.to_string(),
        opened_at: now() - Duration::minutes(185),
    }
}

fn rules() -> RulesSummary {
    RulesSummary {
        leverage: 5,
        max_position_usd: Some(dec!(2500)),
        cooldown_secs: Some(900),
        kill_switch: false,
        hysteresis_cycles: 2,
        max_daily_loss_pct: Some(dec!(3)),
        assets: LISTINGS.iter().map(|l| l.asset.to_string()).collect(),
    }
}

/// A realistic cycle: 3 assets, a BTC long and an ETH short with their TP/SL resting, 5
/// fills, 5 diary entries, ETH in cooldown (and an expired SOL cooldown).
fn context() -> PromptContext {
    let rows = rows();
    let snaps: Vec<Arc<MarketSnapshot>> = LISTINGS
        .iter()
        .map(|l| Arc::new(snapshot(&rows, l)))
        .collect();
    let (btc, eth) = (&snaps[0], &snaps[1]);
    let btc_entry = (btc.last_price * dec!(0.99)).round_dp(1);
    let eth_entry = (eth.last_price * dec!(1.01)).round_dp(2);
    let long = position(
        btc,
        PositionSide::Long,
        dec!(0.035),
        btc_entry,
        "Hold while price stays above the 4h EMA20; close if the 5m MACD crosses below \
         its signal twice in a row, or after 24 h.",
    );
    let short = position(
        eth,
        PositionSide::Short,
        dec!(0.65),
        eth_entry,
        "Cover at TP or if RSI14 (5m) climbs back above 60.",
    );
    let protection = |p: &PositionView| {
        let exit = p.side.exit_side().as_str().to_string();
        [
            OrderSummary {
                symbol: p.symbol.to_string(),
                side: exit.clone(),
                order_type: "TAKE_PROFIT_MARKET".into(),
                quantity: None,
                stop_price: p.tp_price,
                reduce_only: true,
                close_position: true,
            },
            OrderSummary {
                symbol: p.symbol.to_string(),
                side: exit,
                order_type: "STOP_MARKET".into(),
                quantity: None,
                stop_price: p.sl_price,
                reduce_only: true,
                close_position: true,
            },
        ]
    };
    let open_orders = [protection(&long), protection(&short)].concat();
    let fill = |mins: i64, sym: &str, side: &str, qty, price, pnl, reason: &str| FillSummary {
        ts: now() - Duration::minutes(mins),
        symbol: sym.into(),
        side: side.into(),
        quantity: qty,
        price,
        fee: (qty * price * dec!(0.0004)).round_dp(8),
        realized_pnl: pnl,
        reason: reason.into(),
    };
    let recent_fills = vec![
        fill(
            185,
            "BTCUSDT",
            "BUY",
            dec!(0.035),
            btc_entry,
            dec!(0),
            "entry",
        ),
        fill(
            65,
            "ETHUSDT",
            "SELL",
            dec!(0.65),
            eth_entry,
            dec!(0),
            "entry",
        ),
        fill(
            400,
            "SOLUSDT",
            "BUY",
            dec!(12),
            dec!(148.115),
            dec!(0),
            "entry",
        ),
        fill(
            310,
            "SOLUSDT",
            "SELL",
            dec!(12),
            dec!(151.02),
            dec!(34.86),
            "tp",
        ),
        fill(
            900,
            "ETHUSDT",
            "BUY",
            dec!(0.5),
            dec!(2990.4),
            dec!(-12.3),
            "sl",
        ),
    ];
    let entry =
        |mins: i64, asset: &str, action: &str, alloc: Option<Decimal>, why: &str| DiarySummary {
            ts: now() - Duration::minutes(mins),
            asset: asset.into(),
            action: action.into(),
            allocation_usd: alloc,
            rationale: why.into(),
        };
    let diary = vec![
        entry(185, "BTC", "buy", Some(dec!(2000)), "5m trend up above EMA20 and EMA50, 4h MACD positive and rising; RSI14 at 58 leaves room."),
        entry(65, "ETH", "sell", Some(dec!(2000)), "Lost the 4h EMA20 with rising volume;\nfunding negative, shorts not yet crowded."),
        entry(60, "SOL", "hold", None, "No edge: price pinned between the Bollinger middle and upper band."),
        entry(5, "BTC", "hold", Some(dec!(0)), "Position working; exit plan conditions not met."),
        entry(310, "SOL", "sell", Some(dec!(0)), &format!("Take profit hit earlier than planned; closing the rest. {}", "Long tail of reasoning that should be cut. ".repeat(10))),
    ];
    PromptContext {
        now: now(),
        account_id: "grok-momentum".into(),
        model: "x-ai/grok-4".into(),
        account: AccountView {
            wallet_balance: dec!(10034.86),
            equity: dec!(10034.86) + long.unrealized_pnl + short.unrealized_pnl,
            available: dec!(9150.1234),
            positions: vec![short, long],
        },
        snapshots: snaps,
        open_orders,
        recent_fills,
        diary,
        cooldowns: vec![
            CooldownSummary {
                asset: "ETH".into(),
                until: now() + Duration::minutes(4),
            },
            CooldownSummary {
                asset: "SOL".into(),
                until: now() - Duration::minutes(1),
            },
        ],
        rules: rules(),
    }
}

fn render(ctx: &PromptContext) -> RenderedPrompt {
    PromptTemplates::embedded().render(ctx).unwrap()
}

fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
}

#[test]
fn the_prompt_carries_time_and_every_assets_market_data_as_the_snapshot_has_it() {
    let ctx = context();
    let p = render(&ctx);
    assert_eq!(p.version, "v1");
    assert_has(
        &p.user,
        "Time: 2025-03-14T09:30:12Z. Market data age: 12 s.",
    );
    for s in &ctx.snapshots {
        // Prices come from the venue as decimals: printed exactly.
        let price = s.last_price.normalize().to_string();
        assert_eq!(sig_decimal(s.last_price, 8), price);
        let c = &s.current;
        let i = &s.intraday_series;
        let l = &s.long_term_context;
        let num = |x: Option<f64>, digits| x.map_or("n/a".to_string(), |x| sig(x, digits));
        let lines = [
            format!(
                "## {} ({}, as of {})",
                s.asset,
                s.symbol,
                s.timestamp.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            format!(
                "price {price}, mark {}, funding {} (next in 6h29m), OI {} (avg {})",
                sig_decimal(s.mark_price, 8),
                s.funding_rate.normalize(),
                s.open_interest.latest.normalize(),
                sig_decimal(s.open_interest.average, 8),
            ),
            format!(
                "5m now: EMA20 {}, EMA50 {}, MACD {} (signal {}, hist {}), RSI7 {}, RSI14 {}, \
                 ATR3 {}, ATR14 {}, BB {}/{}/{}",
                num(c.ema20, 6),
                num(c.ema50, 6),
                num(c.macd, 4),
                num(c.macd_signal, 4),
                num(c.macd_hist, 4),
                num(c.rsi7, 3),
                num(c.rsi14, 3),
                num(c.atr3, 4),
                num(c.atr14, 4),
                num(c.bb_lower, 6),
                num(c.bb_middle, 6),
                num(c.bb_upper, 6),
            ),
            format!(
                "mid: {}",
                series(
                    &i.mid_prices.iter().map(|x| Some(*x)).collect::<Vec<_>>(),
                    6
                )
            ),
            format!("ema20: {}", series(&i.ema20, 6)),
            format!("macd: {}", series(&i.macd, 4)),
            format!("rsi7: {}", series(&i.rsi7, 3)),
            format!("rsi14: {}", series(&i.rsi14, 3)),
            format!(
                "4h: EMA20 {}, EMA50 {}, ATR3 {}, ATR14 {}, volume {} (avg {})",
                num(l.ema20_4h, 6),
                num(l.ema50_4h, 6),
                num(l.atr3_4h, 4),
                num(l.atr14_4h, 4),
                sig(l.volume_current, 6),
                sig(l.volume_average, 6),
            ),
            format!("macd_4h: {}", series(&l.macd_4h, 4)),
            format!("rsi14_4h: {}", series(&l.rsi14_4h, 3)),
        ];
        for line in lines {
            assert_has(&p.user, &format!("{line}\n"));
        }
        // Full warm-up: nothing in a realistic snapshot is missing.
        let block = p.user.split(&format!("## {} (", s.asset)).nth(1).unwrap();
        let block = block.split("\n\n").next().unwrap();
        assert!(!block.contains("n/a"), "{block}");
        assert_eq!(i.mid_prices.len(), 10);
    }
}

#[test]
fn the_prompt_shows_the_account_positions_and_their_exit_plans() {
    let ctx = context();
    let p = render(&ctx);
    let a = &ctx.account;
    assert_has(
        &p.user,
        &format!(
            "wallet 10034.86 USD, equity {:.2}, available margin 9150.12\n",
            a.equity.round_dp(2)
        ),
    );
    for pos in &a.positions {
        let snap = ctx
            .snapshots
            .iter()
            .find(|s| s.symbol == pos.symbol)
            .unwrap();
        let pnl = pos.unrealized_pnl.round_dp(2);
        let pnl = if pnl > Decimal::ZERO {
            format!("+{pnl:.2}")
        } else {
            format!("{pnl:.2}")
        };
        assert_has(
            &p.user,
            &format!(
                "- {} {} {} @ {}, mark {}, notional {:.2}, uPnL {pnl}, 5x, TP {}, SL {}, open 3h05m\n  exit plan: {}\n",
                pos.symbol.asset(),
                pos.side.as_str(),
                pos.quantity.normalize(),
                pos.entry_price.normalize(),
                snap.mark_price.normalize(),
                (pos.quantity * snap.mark_price).round_dp(2),
                pos.tp_price.unwrap().normalize(),
                pos.sl_price.unwrap().normalize(),
                pos.exit_plan,
            ),
        );
    }
    // Positions are listed by symbol, whatever order the account gave them in.
    let btc = p.user.find("- BTC long").unwrap();
    let eth = p.user.find("- ETH short").unwrap();
    assert!(btc < eth);
    assert_has(&p.user, "- BTCUSDT SELL TAKE_PROFIT_MARKET trigger ");
    assert_has(&p.user, "- ETHUSDT BUY STOP_MARKET trigger ");
    assert_eq!(p.user.matches(", close position, reduce-only\n").count(), 4);
    // Fills, newest first, with their age.
    let fills = p.user.split("## Recent fills").nth(1).unwrap();
    let fills: Vec<&str> = fills
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("- "))
        .collect();
    assert_eq!(fills.len(), 5, "{fills:?}");
    assert!(fills[0].starts_with("- 1h05m ago: ETHUSDT SELL 0.65 @ "));
    assert_has(
        fills[2],
        "- 5h10m ago: SOLUSDT SELL 12 @ 151.02, fee 0.72, realized +34.86 (tp)",
    );
    assert!(fills[4].starts_with("- 15h ago: ETHUSDT BUY 0.5 @ 2990.4"));
    assert_has(fills[4], "realized -12.30 (sl)");
    // Diary: newest first, on one line each, rationale cut.
    let diary = p.user.split("## Your recent decisions").nth(1).unwrap();
    let diary: Vec<&str> = diary
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("- "))
        .collect();
    assert_eq!(diary.len(), 5, "{diary:?}");
    assert_eq!(
        diary[0],
        "- 5m ago: BTC hold 0 USD: Position working; exit plan conditions not met."
    );
    assert_has(diary[1], "- 1h ago: SOL hold: No edge");
    assert_has(
        diary[2],
        "ETH sell 2000 USD: Lost the 4h EMA20 with rising volume; funding",
    );
    assert!(
        diary[4].ends_with('…') && diary[4].chars().count() < 220,
        "{}",
        diary[4]
    );
    // Only the cooldown still in force.
    assert_has(
        &p.user,
        "## Cooldowns in force\n- ETH until 2025-03-14T09:34:12Z (4m left)\n\n",
    );
    assert!(!p.user.contains("- SOL until"));
}

#[test]
fn the_system_prompt_states_the_contract_and_the_accounts_actual_limits() {
    let p = render(&context());
    for needle in [
        "disciplined perpetual-futures trader managing ONE account (\"grok-momentum\")",
        "You trade only these assets: BTC, ETH, SOL.",
        "Reply with ONE JSON object and nothing else",
        "{\"trade_decisions\": [{\"asset\": \"BTC\", \"action\": \"hold\"",
        "Exactly one decision per asset, for every asset, every cycle.",
        "allocation_usd: the target position NOTIONAL in USD, not the margin",
        "sell with allocation_usd 0 closes a long and stays flat",
        "For a buy: tp_price ABOVE the current price, sl_price BELOW it. For a sell: tp_price BELOW, sl_price ABOVE.",
        "The daemon enforces these rules itself",
        "- Leverage: 5x, fixed. Margin = allocation_usd / 5.",
        "- Max position: 2500 USD notional per asset",
        "no new trade on that asset for 15m (900 s)",
        "reversing an open position (sell while long, buy while short) needs the same call 2 cycles in a row",
        "Respect it: keep the position (hold) until its conditions are met",
        "after losing 3% of the day's starting equity, new entries are refused",
        "- Kill switch: off.",
    ] {
        assert_has(&p.system, needle);
    }
    assert_has(
        &p.user,
        "Answer now with the JSON object only, {\"trade_decisions\": [...]}, one decision for each of: BTC, ETH, SOL.",
    );
    // The system message depends on the account and its rules only, never on the cycle:
    // providers can cache it as a stable prefix.
    let mut later = context();
    later.now += Duration::hours(3);
    later.snapshots.reverse();
    later.account = AccountView::default();
    assert_eq!(render(&later).system, p.system);

    let mut ctx = context();
    ctx.rules = RulesSummary {
        kill_switch: true,
        max_position_usd: None,
        cooldown_secs: None,
        max_daily_loss_pct: None,
        hysteresis_cycles: 1,
        ..rules()
    };
    let p = render(&ctx);
    for needle in [
        "- Kill switch: ON. Every new entry is refused",
        "- Max position: no fixed cap",
        "- Cooldown: none configured.",
        "- Hysteresis: none;",
        "- Max daily loss: none configured.",
    ] {
        assert_has(&p.system, needle);
    }
}

#[test]
fn missing_indicators_render_as_na() {
    let rows = rows();
    let at = now() - Duration::seconds(3);
    let c5 = candles(&rows, 10, 3, 150.0, 3, 300, at);
    let symbol = Symbol("SOLUSDT".into());
    let warming_up = MarketSnapshot::build(&SnapshotInput {
        venue: "v",
        symbol: &symbol,
        candles_5m: &c5,
        candles_4h: &[],
        mark_price: dec!(150),
        funding_rate: Decimal::ZERO,
        next_funding_time: None,
        open_interest: &[],
        now: at,
    })
    .unwrap();
    let mut ctx = context();
    ctx.snapshots = vec![Arc::new(warming_up)];
    let p = render(&ctx);
    assert_has(&p.user, "Market data age: 3 s.");
    assert_has(
        &p.user,
        "5m now: EMA20 n/a, EMA50 n/a, MACD n/a (signal n/a, hist n/a), RSI7 n/a, RSI14 n/a, ATR3 n/a, ATR14 n/a, BB n/a/n/a/n/a\n",
    );
    assert_has(&p.user, "ema20: n/a, n/a, n/a\n");
    assert_has(
        &p.user,
        "4h: EMA20 n/a, EMA50 n/a, ATR3 n/a, ATR14 n/a, volume 0 (avg 0)\n",
    );
    assert_has(&p.user, "macd_4h: n/a\n");
    assert_has(&p.user, "funding 0, OI 0 (avg 0)\n");
    // Positions on assets without a snapshot keep their data, without a mark.
    assert_has(&p.user, "mark n/a, notional ");
    assert_has(&p.user, "No market data for BTC, ETH: hold them.");
}

#[test]
fn an_empty_context_renders() {
    let ctx = PromptContext {
        now: now(),
        account_id: String::new(),
        model: String::new(),
        snapshots: vec![],
        account: AccountView::default(),
        open_orders: vec![],
        recent_fills: vec![],
        diary: vec![],
        cooldowns: vec![],
        rules: RulesSummary::default(),
    };
    let p = render(&ctx);
    assert_has(&p.user, "Market data age: n/a s.");
    assert_has(
        &p.user,
        "wallet 0.00 USD, equity 0.00, available margin 0.00",
    );
    assert_eq!(p.user.matches("\nnone\n").count(), 5, "{}", p.user);
    assert_has(&p.system, "- Leverage: 1x");
}

fn write_dir(dir: &std::path::Path, system: &str, user: &str, version: Option<&str>) {
    std::fs::write(dir.join("system.md.j2"), system).unwrap();
    std::fs::write(dir.join("user.md.j2"), user).unwrap();
    if let Some(v) = version {
        std::fs::write(dir.join("VERSION"), v).unwrap();
    }
}

#[test]
fn a_per_account_template_directory_overrides_the_embedded_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("terse");
    std::fs::create_dir(&dir).unwrap();
    write_dir(
        &dir,
        "Trade {{ rules.assets | join('/') }} at {{ rules.leverage }}x.",
        "{% for s in snapshots %}{{ s.asset }}={{ s.last_price | num(8) }} {% endfor %}\
         equity {{ account.equity | fixed }} at {{ now }}",
        None,
    );
    let t = PromptTemplates::from_dir(&dir).unwrap();
    let unlabelled = t.version().to_string();
    assert!(unlabelled.starts_with("dir:terse@"), "{unlabelled}");
    assert_eq!(unlabelled.len(), "dir:terse@".len() + 8);
    let ctx = context();
    let p = t.render(&ctx).unwrap();
    assert_eq!(p.system, "Trade BTC/ETH/SOL at 5x.");
    assert!(p
        .user
        .starts_with(&format!("BTC={} ", ctx.snapshots[0].last_price.normalize())));
    assert!(p.user.ends_with("at 2025-03-14T09:30:12Z"));
    assert_eq!(p.version, unlabelled);

    // A VERSION file labels it; the content hash still tells edits apart.
    std::fs::write(dir.join("VERSION"), "terse-2\n").unwrap();
    let labelled = PromptTemplates::from_dir(&dir).unwrap();
    assert_eq!(
        labelled.version(),
        unlabelled.replace("dir:terse", "terse-2")
    );
    std::fs::write(
        dir.join("system.md.j2"),
        "Trade {{ rules.assets | join(',') }}.",
    )
    .unwrap();
    let edited = PromptTemplates::from_dir(&dir).unwrap();
    assert!(edited.version().starts_with("terse-2@"));
    assert_ne!(edited.version(), labelled.version());

    // The embedded templates can be copied and used as a starting point.
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/v1");
    for f in ["system.md.j2", "user.md.j2"] {
        std::fs::copy(root.join(f), copy.join(f)).unwrap();
    }
    let copied = PromptTemplates::from_dir(&copy)
        .unwrap()
        .render(&ctx)
        .unwrap();
    let embedded = render(&ctx);
    assert_eq!(
        (copied.system, copied.user),
        (embedded.system, embedded.user)
    );
}

#[test]
fn a_broken_template_directory_fails_at_load_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ok = "{{ now }}";
    let cases = [
        (
            "syntax",
            ok,
            "{% for s in snapshots %}{{ s.asset }}",
            "user.md.j2",
            "syntax error",
        ),
        (
            "typo",
            "{{ acount.equity }}",
            ok,
            "system.md.j2",
            "undefined",
        ),
        (
            "filter",
            ok,
            "{{ now | nonesuch }}",
            "user.md.j2",
            "nonesuch",
        ),
        (
            "field",
            ok,
            "{% for s in snapshots %}{{ s.curent.rsi7 }}{% endfor %}",
            "user.md.j2",
            "undefined",
        ),
    ];
    for (name, system, user, file, why) in cases {
        let d = dir.join(name);
        std::fs::create_dir(&d).unwrap();
        write_dir(&d, system, user, None);
        let err = PromptTemplates::from_dir(&d).unwrap_err();
        let text = err.to_string();
        println!("{name}: {text}");
        assert!(
            matches!(err, PromptError::Template { .. }),
            "{name}: {err:?}"
        );
        assert!(
            text.contains(&d.join(file).display().to_string()),
            "{name}: {text}"
        );
        assert!(text.to_lowercase().contains(why), "{name}: {text}");
    }

    let missing = dir.join("missing");
    std::fs::create_dir(&missing).unwrap();
    std::fs::write(missing.join("system.md.j2"), ok).unwrap();
    let err = PromptTemplates::from_dir(&missing).unwrap_err();
    assert!(matches!(err, PromptError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("user.md.j2"), "{err}");

    let empty_version = dir.join("empty-version");
    std::fs::create_dir(&empty_version).unwrap();
    write_dir(&empty_version, ok, ok, Some("\n"));
    let err = PromptTemplates::from_dir(&empty_version).unwrap_err();
    assert!(matches!(err, PromptError::Version { .. }), "{err:?}");
    assert!(err.to_string().contains("VERSION"), "{err}");
}

#[test]
fn a_three_asset_prompt_stays_within_its_token_budget() {
    let p = render(&context());
    let o200k = tiktoken_rs::o200k_base().unwrap();
    let cl100k = tiktoken_rs::cl100k_base().unwrap();
    let count = |bpe: &tiktoken_rs::CoreBPE, text: &str| bpe.encode_with_special_tokens(text).len();
    let (sys_o, user_o) = (count(&o200k, &p.system), count(&o200k, &p.user));
    let (sys_c, user_c) = (count(&cl100k, &p.system), count(&cl100k, &p.user));
    let (sys_e, user_e) = (estimate_tokens(&p.system), estimate_tokens(&p.user));
    let (sys_chars, user_chars) = (p.system.chars().count(), p.user.chars().count());
    println!("prompt {} for 3 assets (tokens)", p.version);
    println!("            chars  o200k_base  cl100k_base  estimate");
    println!("  system  {sys_chars:>7}  {sys_o:>10}  {sys_c:>11}  {sys_e:>8}");
    println!("  user    {user_chars:>7}  {user_o:>10}  {user_c:>11}  {user_e:>8}");
    println!(
        "  total   {:>7}  {:>10}  {:>11}  {:>8}",
        p.chars,
        sys_o + user_o,
        sys_c + user_c,
        p.estimated_tokens()
    );
    println!("--- system ---\n{}\n--- user ---\n{}", p.system, p.user);
    for total in [sys_o + user_o, sys_c + user_c] {
        assert!(
            total < TOKEN_BUDGET,
            "prompt is {total} tokens, budget {TOKEN_BUDGET}"
        );
    }
    // The runtime estimate stays within 15 % of both tokenizers, message by message.
    for (estimate, o200k, cl100k) in [(sys_e, sys_o, sys_c), (user_e, user_o, user_c)] {
        for exact in [o200k, cl100k] {
            assert!(
                estimate * 100 >= exact * 85 && estimate * 100 <= exact * 115,
                "estimate {estimate} vs {exact}"
            );
        }
    }
}

fn arbitrary_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
        -1e6f64..1e6
    ]
}

fn arbitrary_decimal() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s))
}

prop_compose! {
    fn arbitrary_snapshot()(
        price in arbitrary_decimal(),
        funding in arbitrary_decimal(),
        xs in proptest::collection::vec(proptest::option::of(arbitrary_f64()), 0..12),
        x in arbitrary_f64(),
        asset in "[A-Z]{0,6}",
        age in -100_000i64..100_000_000,
    ) -> MarketSnapshot {
        MarketSnapshot {
            id: uuid::Uuid::nil(),
            venue: String::new(),
            asset: Asset::new(&asset),
            symbol: Asset::new(&asset).symbol(),
            timestamp: now() - Duration::seconds(age),
            last_price: price,
            mark_price: price,
            funding_rate: funding,
            next_funding_time: xs.first().map(|_| now() - Duration::seconds(age)),
            open_interest: OpenInterestStats { latest: funding, average: price },
            current: CurrentIndicators {
                ema20: Some(x), ema50: xs.first().copied().flatten(), macd: Some(x),
                macd_signal: None, macd_hist: Some(-x), rsi7: Some(x), rsi14: None,
                atr3: Some(x), atr14: None, bb_upper: Some(x), bb_middle: None, bb_lower: Some(x),
            },
            intraday_series: IntradaySeries {
                interval: "5m".into(),
                mid_prices: xs.iter().map(|v| v.unwrap_or(x)).collect(),
                ema20: xs.clone(), macd: xs.clone(), rsi7: xs.clone(), rsi14: xs.clone(),
            },
            long_term_context: LongTermContext {
                ema20_4h: Some(x), ema50_4h: None, atr3_4h: Some(x), atr14_4h: None,
                volume_current: x, volume_average: -x, macd_4h: xs.clone(), rsi14_4h: xs,
            },
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the numbers and texts (NaN, infinities, 28-digit decimals, template
    /// syntax inside rationales, clocks far apart), rendering succeeds.
    #[test]
    fn rendering_never_fails_on_any_context(
        snaps in proptest::collection::vec(arbitrary_snapshot(), 0..4),
        money in arbitrary_decimal(),
        text in "\\PC{0,400}",
        secs in -10_000_000i64..10_000_000,
        leverage in any::<u32>(),
    ) {
        let when = now() + Duration::seconds(secs);
        let position = PositionView {
            symbol: snaps.first().map_or(Symbol("XUSDT".into()), |s| s.symbol.clone()),
            side: PositionSide::Short,
            quantity: money,
            entry_price: money,
            leverage,
            unrealized_pnl: money,
            tp_price: Some(money),
            sl_price: None,
            exit_plan: format!("{{{{ {text} }}}}"),
            opened_at: when,
        };
        let ctx = PromptContext {
            now: now(),
            account_id: text.clone(),
            model: text.clone(),
            snapshots: snaps.into_iter().map(Arc::new).collect(),
            account: AccountView {
                wallet_balance: money,
                equity: money,
                available: money,
                positions: vec![position],
            },
            open_orders: vec![OrderSummary {
                symbol: text.clone(), side: text.clone(), order_type: text.clone(),
                quantity: Some(money), stop_price: None, reduce_only: false, close_position: false,
            }],
            recent_fills: vec![FillSummary {
                ts: when, symbol: text.clone(), side: String::new(), quantity: money,
                price: money, fee: money, realized_pnl: money, reason: text.clone(),
            }],
            diary: vec![DiarySummary {
                ts: when, asset: text.clone(), action: text.clone(),
                allocation_usd: Some(money), rationale: text.clone(),
            }],
            cooldowns: vec![CooldownSummary { asset: text.clone(), until: when }],
            rules: RulesSummary {
                leverage,
                max_position_usd: Some(money),
                cooldown_secs: Some(secs.unsigned_abs()),
                kill_switch: secs % 2 == 0,
                hysteresis_cycles: leverage,
                max_daily_loss_pct: Some(money),
                assets: vec![text.clone()],
            },
        };
        let p = PromptTemplates::embedded().render(&ctx);
        prop_assert!(p.is_ok(), "{:?}", p.err());
    }
}
