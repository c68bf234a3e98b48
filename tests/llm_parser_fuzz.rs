//! Whatever a model sends back, the parser survives it and hands every asset exactly one
//! decision: the model's own when it is valid, otherwise an explained HOLD.
//!
//! Property tests (proptest) over random text, random bytes, JSON-token soup, generated
//! replies (valid and broken items, wrapped in every shape the parser repairs) and
//! mutations of valid replies (byte flips, truncation, insertions of fences, tags,
//! brackets and unicode, nesting past serde_json's depth limit, duplicated and deleted
//! ranges), plus a sweep that cuts one valid reply at every byte. The case counts are
//! set per property (`CASES_*`, 15 000 in all) so the file runs in a few seconds in a
//! debug build.

use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::HashMap;
use vibex::domain::types::{Asset, TradeAction};
use vibex::llm::parse::{parse_reply, ModelReply, ParseOutcome};

const CASES_RANDOM_TEXT: u32 = 2000;
const CASES_RANDOM_BYTES: u32 = 2000;
const CASES_TOKEN_SOUP: u32 = 2000;
const CASES_GENERATED: u32 = 3000;
const CASES_VALID: u32 = 1000;
const CASES_MUTATED: u32 = 5000;

/// BTC and ETH have a price; SOL has none, so its side check is skipped.
fn assets() -> Vec<Asset> {
    ["BTC", "ETH", "SOL"].into_iter().map(Asset::new).collect()
}

fn prices() -> HashMap<Asset, Decimal> {
    HashMap::from([
        (Asset::new("BTC"), Decimal::from(60000)),
        (Asset::new("ETH"), Decimal::from(3000)),
    ])
}

fn price_of(asset: &str) -> Option<Decimal> {
    prices().get(&Asset::new(asset)).copied()
}

/// Where the text arrives and how the reply finished.
#[derive(Clone, Debug)]
struct Delivery {
    as_tool_call: bool,
    finish_reason: Option<&'static str>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some("stop")),
            Just(Some("length")),
            Just(Some("tool_calls")),
            Just(Some("content_filter")),
        ],
    )
        .prop_map(|(as_tool_call, finish_reason)| Delivery {
            as_tool_call,
            finish_reason,
        })
}

fn parse(text: &str, delivery: &Delivery) -> ParseOutcome {
    let reply = if delivery.as_tool_call {
        ModelReply {
            content: None,
            tool_arguments: Some(text),
            finish_reason: delivery.finish_reason,
        }
    } else {
        ModelReply {
            content: Some(text),
            tool_arguments: None,
            finish_reason: delivery.finish_reason,
        }
    };
    let outcome = parse_reply(&reply, &assets(), &prices());
    assert_invariants(&outcome);
    outcome
}

/// What must hold for every reply, however broken.
fn assert_invariants(outcome: &ParseOutcome) {
    let assets = assets();
    assert_eq!(outcome.decisions.len(), assets.len(), "one entry per asset");
    for (entry, asset) in outcome.decisions.iter().zip(&assets) {
        assert_eq!(&entry.asset, asset, "entries in the account's order");
        assert_eq!(&entry.decision.asset, asset);
        let d = &entry.decision;
        if !entry.valid {
            let reason = entry.reason.as_deref().unwrap_or_default();
            assert!(!reason.is_empty(), "an invalid entry says why");
            assert_eq!(d.action, TradeAction::Hold, "an invalid entry holds");
            assert_eq!(d.allocation_usd, Decimal::ZERO);
            assert_eq!((d.tp_price, d.sl_price), (None, None));
            assert_eq!(d.rationale, reason);
            continue;
        }
        assert!(outcome.error.is_none(), "a failed reply has no valid entry");
        assert!(outcome.document.is_some());
        assert!(
            d.allocation_usd >= Decimal::ZERO,
            "allocation never negative"
        );
        let long = match d.action {
            TradeAction::Hold => {
                assert_eq!(d.allocation_usd, Decimal::ZERO);
                assert_eq!((d.tp_price, d.sl_price), (None, None));
                continue;
            }
            TradeAction::Buy => true,
            TradeAction::Sell => false,
        };
        if d.allocation_usd.is_zero() {
            assert_eq!(
                (d.tp_price, d.sl_price),
                (None, None),
                "a close has no TP/SL"
            );
            continue;
        }
        for level in [d.tp_price, d.sl_price].into_iter().flatten() {
            assert!(level > Decimal::ZERO, "TP/SL are positive prices");
        }
        if let Some(price) = price_of(asset.as_str()) {
            if let Some(tp) = d.tp_price {
                assert!(if long { tp > price } else { tp < price }, "TP side: {d:?}");
            }
            if let Some(sl) = d.sl_price {
                assert!(if long { sl < price } else { sl > price }, "SL side: {d:?}");
            }
        } else if d.tp_price.is_some() || d.sl_price.is_some() {
            assert!(entry.reason.is_some(), "a skipped side check is noted");
        }
    }
    if outcome.error.is_some() {
        assert!(outcome.ignored.is_empty());
    }
    let json = serde_json::to_string(outcome).expect("the outcome serializes");
    let back: ParseOutcome = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(&back, outcome);
}

// ---------------------------------------------------------------- generated replies

/// A JSON number as text: plain decimals, and the awkward ones.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0i64..2_000_000_000, 0u32..9).prop_map(|(m, s)| Decimal::new(m, s).to_string()),
        1 => prop::sample::select(vec![
            "0", "-0.0", "-1", "-250.5", "1e300", "-1e300", "1e-300", "5e-324", "1e28", "1e29",
            "1.7976931348623157e308", "123456789012345678901234567890", "0.1", "1E5", "2.5e-7",
        ])
        .prop_map(str::to_string),
        1 => prop::sample::select(vec![
            "\"NaN\"", "\"Infinity\"", "\"-inf\"", "\"100\"", "null", "true", "[]", "{}",
            "NaN", "Infinity", "1e999", "0x10", "01", "+1", ".5",
        ])
        .prop_map(str::to_string),
    ]
}

/// A price near the asset's (either side) or an awkward number.
fn level_text(asset: &str) -> BoxedStrategy<Option<String>> {
    let base = price_of(asset).unwrap_or(Decimal::from(150));
    prop_oneof![
        2 => Just(None),
        4 => (-500i64..500).prop_map(move |permille| {
            Some((base + base * Decimal::new(permille, 3)).normalize().to_string())
        }),
        1 => number_text().prop_map(Some),
    ]
    .boxed()
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

#[derive(Clone, Debug)]
struct Item {
    asset: String,
    action: String,
    allocation: String,
    tp: Option<String>,
    sl: Option<String>,
    exit_plan: String,
    rationale: String,
    /// Drop one of the seven fields (index) or add an eighth.
    drop_field: Option<usize>,
    extra_field: bool,
}

impl Item {
    fn to_json(&self) -> String {
        let null = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".to_string());
        let mut fields = vec![
            format!("\"asset\": {}", json_string(&self.asset)),
            format!("\"action\": {}", json_string(&self.action)),
            format!("\"allocation_usd\": {}", self.allocation),
            format!("\"tp_price\": {}", null(&self.tp)),
            format!("\"sl_price\": {}", null(&self.sl)),
            format!("\"exit_plan\": {}", json_string(&self.exit_plan)),
            format!("\"rationale\": {}", json_string(&self.rationale)),
        ];
        if let Some(index) = self.drop_field {
            if index < fields.len() {
                fields.remove(index);
            }
        }
        if self.extra_field {
            fields.push("\"confidence\": 0.9".to_string());
        }
        format!("{{{}}}", fields.join(", "))
    }
}

fn asset_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["BTC", "ETH", "SOL"]),
        1 => prop::sample::select(vec!["DOGE", "btc", "", "BTCUSDT", "ÉTH"]),
    ]
    .prop_map(str::to_string)
}

fn action_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["buy", "sell", "hold"]),
        1 => prop::sample::select(vec!["yolo", "BUY", "long", "close", ""]),
    ]
    .prop_map(str::to_string)
}

fn free_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z ,.]{0,24}",
        1 => "\\PC{0,16}",
        1 => prop::sample::select(vec!["}", "{\"a\": [", "```", "</think>", "\\\"", "\u{0}"])
            .prop_map(str::to_string),
    ]
}

/// Any item, mostly well-formed.
fn item() -> impl Strategy<Value = Item> {
    asset_name().prop_flat_map(|asset| {
        (
            Just(asset.clone()),
            action_name(),
            number_text(),
            level_text(&asset),
            level_text(&asset),
            free_text(),
            free_text(),
            prop_oneof![9 => Just(None), 1 => (0usize..7).prop_map(Some)],
            prop::bool::weighted(0.05),
        )
            .prop_map(
                |(asset, action, allocation, tp, sl, exit_plan, rationale, drop_field, extra)| {
                    Item {
                        asset,
                        action,
                        allocation,
                        tp,
                        sl,
                        exit_plan,
                        rationale,
                        drop_field,
                        extra_field: extra,
                    }
                },
            )
    })
}

/// How a reply presents its items.
#[derive(Clone, Debug)]
enum Wrapping {
    Document,
    BareArray,
    FirstItemAlone,
    Fenced,
    InProse,
    AfterReasoning,
    ExtraTopLevelKey,
}

fn wrapping() -> impl Strategy<Value = Wrapping> {
    prop_oneof![
        4 => Just(Wrapping::Document),
        1 => Just(Wrapping::BareArray),
        1 => Just(Wrapping::FirstItemAlone),
        1 => Just(Wrapping::Fenced),
        1 => Just(Wrapping::InProse),
        1 => Just(Wrapping::AfterReasoning),
        1 => Just(Wrapping::ExtraTopLevelKey),
    ]
}

fn render(items: &[Item], wrapping: &Wrapping) -> String {
    let list = items
        .iter()
        .map(Item::to_json)
        .collect::<Vec<_>>()
        .join(", ");
    let document = format!("{{\"trade_decisions\": [{list}]}}");
    match wrapping {
        Wrapping::Document => document,
        Wrapping::BareArray => format!("[{list}]"),
        Wrapping::FirstItemAlone => items.first().map(Item::to_json).unwrap_or_default(),
        Wrapping::Fenced => format!("```json\n{document}\n```"),
        Wrapping::InProse => format!("Decisions {{per asset}} [1]:\n{document}\nThat's all."),
        Wrapping::AfterReasoning => {
            format!("<think>maybe {{\"trade_decisions\": []}}</think>{document}")
        }
        Wrapping::ExtraTopLevelKey => format!("{{\"trade_decisions\": [{list}], \"note\": \"x\"}}"),
    }
}

/// A fully valid decision for `asset`, with TP/SL on the right side of its price.
fn valid_item(asset: &'static str) -> impl Strategy<Value = Item> {
    let price = price_of(asset).unwrap_or(Decimal::from(150));
    (
        prop::sample::select(vec!["buy", "sell", "hold"]),
        (0i64..5_000_000, 0u32..4),
        prop::option::of(1i64..400),
        prop::option::of(1i64..400),
        "[a-zA-Z ]{0,20}",
    )
        .prop_map(move |(action, (m, s), tp, sl, rationale)| {
            let long = action == "buy";
            let level = |permille: i64, above: bool| {
                let offset = price * Decimal::new(permille, 3);
                let level = if above {
                    price + offset
                } else {
                    price - offset
                };
                level.normalize().to_string()
            };
            Item {
                asset: asset.to_string(),
                action: action.to_string(),
                allocation: Decimal::new(m, s).to_string(),
                tp: tp.map(|p| level(p, long)),
                sl: sl.map(|p| level(p, !long)),
                exit_plan: String::new(),
                rationale,
                drop_field: None,
                extra_field: false,
            }
        })
}

// ---------------------------------------------------------------- mutations

#[derive(Clone, Debug)]
enum Mutation {
    FlipByte(usize, u8),
    Truncate(usize),
    Insert(usize, &'static str),
    DuplicateRange(usize, usize),
    DeleteRange(usize, usize),
    /// Wraps nothing in `depth` brackets at a position (beyond serde_json's 128 too).
    Nest(usize, usize),
}

const SNIPPETS: [&str; 22] = [
    "```json\n",
    "```",
    "<think>",
    "</think>",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    ",",
    ":",
    "é",
    "🦀",
    "\u{0}",
    "NaN",
    "1e999",
    "null",
    "\"DOGE\"",
    "\"yolo\"",
    "[[[[[[[[[[[[[[[[",
    "\u{202e}",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::FlipByte(at, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::sample::select(SNIPPETS.to_vec()))
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), 1usize..200).prop_map(|(at, n)| Mutation::DuplicateRange(at, n)),
        (any::<usize>(), 1usize..50).prop_map(|(at, n)| Mutation::DeleteRange(at, n)),
        (any::<usize>(), 1usize..300).prop_map(|(at, depth)| Mutation::Nest(at, depth)),
    ]
}

/// Applies a mutation to raw bytes (the result may not be UTF-8 until made lossy).
fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *mutation {
        Mutation::FlipByte(i, b) => {
            if len > 0 {
                bytes[i % len] ^= b;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(at(i)),
        Mutation::Insert(i, s) => {
            let i = at(i);
            bytes.splice(i..i, s.bytes());
        }
        Mutation::DuplicateRange(i, n) => {
            let i = at(i);
            let end = (i + n).min(len);
            let copy = bytes[i..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Mutation::DeleteRange(i, n) => {
            let i = at(i);
            let end = (i + n).min(len);
            bytes.drain(i..end);
        }
        Mutation::Nest(i, depth) => {
            let i = at(i);
            let nest = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            bytes.splice(i..i, nest.bytes());
        }
    }
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_RANDOM_TEXT))]
    #[test]
    fn random_text_never_breaks_the_parser(text in "\\PC{0,200}|.{0,40}", d in delivery()) {
        parse(&text, &d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_RANDOM_BYTES))]
    #[test]
    fn random_bytes_never_break_the_parser(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        d in delivery(),
    ) {
        // The client turns invalid UTF-8 into U+FFFD before the parser sees it.
        parse(&String::from_utf8_lossy(&bytes), &d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_TOKEN_SOUP))]
    #[test]
    fn json_token_soup_never_breaks_the_parser(
        tokens in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "[", "]", ":", ",", "\"", "\\", " ", "\n", "\"trade_decisions\"",
                "\"asset\"", "\"action\"", "\"allocation_usd\"", "\"tp_price\"", "\"sl_price\"",
                "\"exit_plan\"", "\"rationale\"", "\"BTC\"", "\"ETH\"", "\"SOL\"", "\"buy\"",
                "\"sell\"", "\"hold\"", "0", "100", "59000", "61000", "1e300", "-1", "null",
                "\"\"", "```json", "```", "<think>", "</think>", "é", "🦀",
            ]),
            0..80,
        ),
        d in delivery(),
    ) {
        parse(&tokens.concat(), &d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_GENERATED))]
    #[test]
    fn generated_replies_keep_the_invariants(
        items in prop::collection::vec(item(), 0..6),
        wrapping in wrapping(),
        d in delivery(),
    ) {
        parse(&render(&items, &wrapping), &d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_VALID))]
    #[test]
    fn valid_replies_are_kept_exactly(
        btc in valid_item("BTC"),
        eth in valid_item("ETH"),
        sol in valid_item("SOL"),
        wrapping in prop_oneof![
            Just(Wrapping::Document),
            Just(Wrapping::BareArray),
            Just(Wrapping::Fenced),
            Just(Wrapping::InProse),
            Just(Wrapping::AfterReasoning),
        ],
        as_tool_call in any::<bool>(),
    ) {
        let items = [btc, eth, sol];
        let d = Delivery { as_tool_call, finish_reason: Some("stop") };
        let outcome = parse(&render(&items, &wrapping), &d);
        prop_assert_eq!(outcome.error, None);
        for (entry, item) in outcome.decisions.iter().zip(&items) {
            prop_assert!(entry.valid, "{:?}", entry);
            let hold = item.action == "hold";
            let close = !hold && item.allocation.parse::<Decimal>().ok() == Some(Decimal::ZERO);
            let expected = |v: &Option<String>| {
                if hold || close { None } else { v.as_ref().and_then(|t| t.parse::<Decimal>().ok()) }
            };
            prop_assert_eq!(entry.decision.action.as_str(), item.action.as_str());
            if !hold {
                prop_assert_eq!(Some(entry.decision.allocation_usd), item.allocation.parse::<Decimal>().ok());
            }
            prop_assert_eq!(entry.decision.tp_price, expected(&item.tp));
            prop_assert_eq!(entry.decision.sl_price, expected(&item.sl));
            prop_assert_eq!(&entry.decision.rationale, &item.rationale);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES_MUTATED))]
    #[test]
    fn mutated_valid_replies_never_break_the_parser(
        btc in valid_item("BTC"),
        eth in valid_item("ETH"),
        sol in valid_item("SOL"),
        wrapping in wrapping(),
        mutations in prop::collection::vec(mutation(), 1..5),
        d in delivery(),
    ) {
        let mut bytes = render(&[btc, eth, sol], &wrapping).into_bytes();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        parse(&String::from_utf8_lossy(&bytes), &d);
    }
}

/// A sample reply with fences, a reasoning preamble and multi-byte characters.
const SAMPLE: &str = "<think>BTC breaks out — ETH chops 🦀</think>\n```json\n\
{\"trade_decisions\": [\
{\"asset\": \"BTC\", \"action\": \"buy\", \"allocation_usd\": 250.5, \"tp_price\": 63000, \
\"sl_price\": 58500.25, \"exit_plan\": \"close under EMA20 {4h}\", \"rationale\": \"é \\\"x\\\" }\"}, \
{\"asset\": \"ETH\", \"action\": \"sell\", \"allocation_usd\": 0, \"tp_price\": 100, \
\"sl_price\": null, \"exit_plan\": \"\", \"rationale\": \"close the long\"}, \
{\"asset\": \"SOL\", \"action\": \"hold\", \"allocation_usd\": 0, \"tp_price\": null, \
\"sl_price\": null, \"exit_plan\": \"\", \"rationale\": \"wait\"}]}\n```\nDone.";

#[test]
fn the_sample_is_valid_in_full() {
    let d = Delivery {
        as_tool_call: false,
        finish_reason: Some("stop"),
    };
    let outcome = parse(SAMPLE, &d);
    assert!(outcome.decisions.iter().all(|e| e.valid), "{outcome:?}");
}

#[test]
fn truncation_at_every_byte_never_breaks_the_parser() {
    let d = Delivery {
        as_tool_call: false,
        finish_reason: Some("length"),
    };
    let bytes = SAMPLE.as_bytes();
    for end in 0..=bytes.len() {
        let outcome = parse(&String::from_utf8_lossy(&bytes[..end]), &d);
        // Until the document's last '}' arrives, nothing of it is used.
        let closed = SAMPLE.rfind("]}").map_or(0, |at| at + 2);
        if end < closed {
            assert!(outcome.decisions.iter().all(|e| !e.valid), "cut at {end}");
        }
    }
}
