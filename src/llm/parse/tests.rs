//! One test per documented reply shape: what the parser keeps, repairs and refuses.

use super::*;
use crate::domain::types::TradeAction;
use rust_decimal_macros::dec;

fn assets() -> Vec<Asset> {
    vec![Asset::new("BTC"), Asset::new("ETH")]
}

fn prices() -> HashMap<Asset, Decimal> {
    HashMap::from([
        (Asset::new("BTC"), dec!(60000)),
        (Asset::new("ETH"), dec!(3000)),
    ])
}

fn content(text: &str) -> ParseOutcome {
    parse_reply(
        &ModelReply {
            content: Some(text),
            tool_arguments: None,
            finish_reason: Some("stop"),
        },
        &assets(),
        &prices(),
    )
}

const BTC_BUY: &str = r#"{"asset": "BTC", "action": "buy", "allocation_usd": 250.5,
    "tp_price": 63000, "sl_price": 58500.25, "exit_plan": "close below EMA20",
    "rationale": "breakout"}"#;
const ETH_HOLD: &str = r#"{"asset": "ETH", "action": "hold", "allocation_usd": 0,
    "tp_price": null, "sl_price": null, "exit_plan": "", "rationale": "chop"}"#;

fn document(items: &[&str]) -> String {
    format!(r#"{{"trade_decisions": [{}]}}"#, items.join(", "))
}

fn valid_pair() -> String {
    document(&[BTC_BUY, ETH_HOLD])
}

fn reasons(outcome: &ParseOutcome) -> Vec<Option<&str>> {
    outcome
        .decisions
        .iter()
        .map(|d| d.reason.as_deref())
        .collect()
}

/// Every invalid entry is a HOLD whose rationale is its reason.
fn assert_holds_are_explained(outcome: &ParseOutcome) {
    for entry in outcome.decisions.iter().filter(|d| !d.valid) {
        assert_eq!(entry.decision.action, TradeAction::Hold);
        assert_eq!(entry.decision.allocation_usd, Decimal::ZERO);
        assert!(entry.reason.as_deref().is_some_and(|r| !r.is_empty()));
        assert_eq!(
            Some(entry.decision.rationale.as_str()),
            entry.reason.as_deref()
        );
    }
}

#[test]
fn valid_decisions_are_kept_exactly() {
    let out = content(&valid_pair());
    assert_eq!(out.error, None);
    assert!(out.repairs.is_empty());
    assert_eq!(reasons(&out), vec![None, None]);
    let btc = &out.decisions[0];
    assert!(btc.valid);
    assert_eq!(btc.asset, Asset::new("BTC"));
    assert_eq!(btc.decision.action, TradeAction::Buy);
    assert_eq!(btc.decision.allocation_usd, dec!(250.5));
    assert_eq!(btc.decision.tp_price, Some(dec!(63000)));
    assert_eq!(btc.decision.sl_price, Some(dec!(58500.25)));
    assert_eq!(btc.decision.exit_plan, "close below EMA20");
    let eth = &out.decisions[1];
    assert!(eth.valid);
    assert_eq!(eth.decision.action, TradeAction::Hold);
    assert_eq!(eth.decision.rationale, "chop");
    assert!(out.document.is_some());
}

#[test]
fn fenced_json_is_unwrapped() {
    let out = content(&format!("```json\n{}\n```", valid_pair()));
    assert!(out.decisions.iter().all(|d| d.valid));
    assert_eq!(out.repairs, vec!["removed a ```json code fence"]);
}

#[test]
fn json_with_surrounding_text_is_taken_out() {
    let out = content(&format!(
        "Here are my decisions {{as asked}}:\n{}\nGood luck!",
        valid_pair()
    ));
    assert!(out.decisions.iter().all(|d| d.valid));
    assert_eq!(
        out.repairs,
        vec!["took the JSON out of surrounding text (33 bytes before it, 10 after)"]
    );
}

#[test]
fn reasoning_preamble_is_skipped() {
    let out = content(&format!(
        "<think>BTC looks strong. Draft: {{\"trade_decisions\": []}}</think>\n{}",
        valid_pair()
    ));
    assert!(out.decisions.iter().all(|d| d.valid));
    assert_eq!(
        out.repairs,
        vec!["skipped a <think>…</think> reasoning preamble (63 bytes)"]
    );
}

#[test]
fn top_level_array_and_single_object_are_wrapped() {
    let out = content(&format!("[{BTC_BUY}, {ETH_HOLD}]"));
    assert!(out.decisions.iter().all(|d| d.valid));
    assert_eq!(
        out.repairs,
        vec!["wrapped a top-level array of 2 item(s) as {\"trade_decisions\": [...]}"]
    );

    let out = content(BTC_BUY);
    assert!(out.decisions[0].valid);
    assert_eq!(
        out.repairs,
        vec!["wrapped a single decision object as {\"trade_decisions\": [...]}"]
    );
    assert_eq!(reasons(&out)[1], Some("no decision for ETH"));
}

#[test]
fn a_wrong_enum_fails_only_its_asset() {
    let out = content(&document(&[
        &BTC_BUY.replace("\"buy\"", "\"yolo\""),
        ETH_HOLD,
    ]));
    assert_eq!(out.error, None);
    assert_eq!(
        reasons(&out),
        vec![
            Some(
                r#"schema: /trade_decisions/0/action: "yolo" is not one of "buy", "sell" or "hold""#
            ),
            None
        ]
    );
    assert!(!out.decisions[0].valid);
    assert!(out.decisions[1].valid);
    assert_holds_are_explained(&out);
}

#[test]
fn a_stop_loss_on_the_wrong_side_fails_its_asset() {
    let out = content(&document(&[
        &BTC_BUY.replace("58500.25", "61000"),
        ETH_HOLD,
    ]));
    assert_eq!(
        reasons(&out)[0],
        Some("sl_price 61000 is not below the price 60000 for a buy")
    );
    let short = r#"{"asset": "ETH", "action": "sell", "allocation_usd": 100,
        "tp_price": 3100, "sl_price": 2900, "exit_plan": "", "rationale": ""}"#;
    let out = content(&document(&[BTC_BUY, short]));
    assert_eq!(
        reasons(&out)[1],
        Some(
            "tp_price 3100 is not below the price 3000 for a sell; \
             sl_price 2900 is not above the price 3000 for a sell"
        )
    );
    assert_holds_are_explained(&out);
}

#[test]
fn a_close_ignores_its_tp_and_sl() {
    let close = r#"{"asset": "ETH", "action": "sell", "allocation_usd": 0,
        "tp_price": 3100, "sl_price": null, "exit_plan": "", "rationale": "take profit"}"#;
    let out = content(&document(&[BTC_BUY, close]));
    let eth = &out.decisions[1];
    assert!(eth.valid);
    assert_eq!(eth.decision.tp_price, None);
    assert_eq!(
        eth.reason.as_deref(),
        Some("sell with allocation_usd 0 only closes a long position: its tp_price/sl_price are ignored")
    );
}

#[test]
fn a_missing_price_skips_the_side_check_and_says_so() {
    let out = parse_reply(
        &ModelReply {
            content: Some(&valid_pair()),
            ..ModelReply::default()
        },
        &assets(),
        &HashMap::new(),
    );
    assert!(out.decisions[0].valid);
    assert_eq!(
        out.decisions[0].reason.as_deref(),
        Some("no price for BTC in the snapshot: the TP/SL side check was skipped")
    );
}

#[test]
fn null_content_cut_off_by_length_holds_everything() {
    let out = parse_reply(
        &ModelReply {
            content: None,
            tool_arguments: None,
            finish_reason: Some("length"),
        },
        &assets(),
        &prices(),
    );
    let reason = "reply was cut off (finish_reason: length) and had no content";
    assert_eq!(out.error.as_deref(), Some(reason));
    assert_eq!(reasons(&out), vec![Some(reason), Some(reason)]);
    assert_holds_are_explained(&out);
}

#[test]
fn a_document_cut_off_mid_way_is_not_salvaged() {
    let full = valid_pair();
    let cut = &full[..full.len() / 2];
    let out = parse_reply(
        &ModelReply {
            content: Some(cut),
            tool_arguments: None,
            finish_reason: Some("length"),
        },
        &assets(),
        &prices(),
    );
    assert_eq!(
        out.error.as_deref(),
        Some(
            "no complete JSON object in the reply: the '{' at byte 0 is never closed; \
             the reply was cut off (finish_reason: length)"
        )
    );
    assert!(out.decisions.iter().all(|d| !d.valid));
}

#[test]
fn garbage_bytes_hold_everything() {
    let lossy = String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x9f, b'x', 0xc3]).into_owned();
    let out = content(&lossy);
    assert_eq!(
        out.error.as_deref(),
        Some("no JSON object found in the reply")
    );
    assert_holds_are_explained(&out);
}

#[test]
fn an_empty_string_holds_everything() {
    let out = content("");
    assert_eq!(
        out.error.as_deref(),
        Some("reply was empty (finish_reason: stop)")
    );
    assert_eq!(out.decisions.len(), 2);
    assert_holds_are_explained(&out);
}

#[test]
fn two_decisions_for_one_asset_hold_that_asset() {
    let out = content(&document(&[BTC_BUY, ETH_HOLD, BTC_BUY]));
    assert_eq!(
        reasons(&out),
        vec![
            Some("two decisions for BTC (items 0 and 2): one per asset is expected"),
            None
        ]
    );
    assert_holds_are_explained(&out);
}

#[test]
fn a_missing_asset_holds() {
    let out = content(&document(&[BTC_BUY]));
    assert_eq!(reasons(&out), vec![None, Some("no decision for ETH")]);
    assert_eq!(out.error, None);
}

#[test]
fn an_unknown_asset_is_ignored_and_reported() {
    let doge = BTC_BUY.replace("\"BTC\"", "\"DOGE\"");
    let out = content(&document(&[BTC_BUY, ETH_HOLD, &doge]));
    assert_eq!(reasons(&out), vec![None, None]);
    assert_eq!(
        out.ignored,
        vec!["item 2: asset \"DOGE\" is not one of the account's assets"]
    );
    // Without a decision of its own, an asset's reason points at the ignored items.
    let out = content(&document(&[
        BTC_BUY,
        &ETH_HOLD.replace("\"ETH\"", "\"eth\""),
    ]));
    assert_eq!(
        reasons(&out)[1],
        Some("no decision for ETH (1 item(s) with an unknown or missing asset were ignored)")
    );
}

#[test]
fn tool_call_arguments_are_an_alternative_route() {
    let arguments = valid_pair();
    let out = parse_reply(
        &ModelReply {
            content: None,
            tool_arguments: Some(&arguments),
            finish_reason: Some("tool_calls"),
        },
        &assets(),
        &prices(),
    );
    assert!(out.decisions.iter().all(|d| d.valid));
    assert!(out.repairs.is_empty());
}

#[test]
fn a_wrong_top_level_shape_fails_the_reply() {
    let out = content(r#"{"decisions": []}"#);
    assert_eq!(
        out.error.as_deref(),
        Some(
            "schema: /: Additional properties are not allowed ('decisions' was unexpected); \
             /: \"trade_decisions\" is a required property"
        )
    );
    let out = content(r#"{"trade_decisions": []}"#);
    assert_eq!(
        out.error.as_deref(),
        Some("schema: /trade_decisions: [] has less than 1 item")
    );
}

#[test]
fn absurd_numbers_fail_their_item_not_the_reply() {
    let out = content(&document(&[&BTC_BUY.replace("250.5", "1e300"), ETH_HOLD]));
    assert_eq!(
        reasons(&out),
        vec![
            Some("allocation_usd 1e+300 is out of the range a decimal can hold"),
            None
        ]
    );
    // Beyond f64, serde_json refuses the whole document.
    let out = content(&document(&[&BTC_BUY.replace("250.5", "1e400"), ETH_HOLD]));
    assert!(out
        .error
        .as_deref()
        .is_some_and(|e| e.contains("number out of range")));
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let out = content(&deep);
    assert!(out.error.is_some());
    let deep = format!(
        r#"{{"trade_decisions": [{{"asset": "BTC", "rationale": {}1{}}}]}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let out = content(&deep);
    assert!(out
        .error
        .as_deref()
        .is_some_and(|e| e.contains("recursion limit exceeded")));
}

#[test]
fn huge_replies_are_scanned_up_to_the_cap() {
    let huge = format!("{}{}", valid_pair(), " é".repeat(MAX_SCANNED_BYTES));
    let out = content(&huge);
    assert!(out.decisions.iter().all(|d| d.valid));
    assert_eq!(out.repairs.len(), 2, "{:?}", out.repairs);
    let cut = format!("of the reply's {} bytes", huge.len());
    assert!(out.repairs[0].starts_with("scanned only the first 104857"));
    assert!(out.repairs[0].ends_with(&cut), "{}", out.repairs[0]);
}

#[test]
fn the_outcome_serializes_for_the_audit() {
    let out = content(&valid_pair());
    let json = serde_json::to_value(&out).expect("serializes");
    assert_eq!(json["decisions"][0]["decision"]["allocation_usd"], "250.5");
    let back: ParseOutcome = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, out);
}

#[test]
fn an_account_without_assets_gets_no_decisions() {
    let out = parse_reply(
        &ModelReply {
            content: Some(&valid_pair()),
            ..ModelReply::default()
        },
        &[],
        &prices(),
    );
    assert!(out.decisions.is_empty());
}

#[test]
fn tool_call_arguments_win_over_chatter_in_content() {
    let arguments = valid_pair();
    let out = parse_reply(
        &ModelReply {
            content: Some("Calling the tool now."),
            tool_arguments: Some(&arguments),
            finish_reason: Some("tool_calls"),
        },
        &assets(),
        &prices(),
    );
    assert!(out.decisions.iter().all(|d| d.valid));
}

#[test]
fn a_megabyte_of_broken_items_is_handled() {
    let items = vec!["{}"; MAX_SCANNED_BYTES / 4].join(",");
    let out = content(&format!("{{\"trade_decisions\": [{items}]}}"));
    assert_eq!(out.ignored.len(), 17, "16 listed and a count");
    assert!(out.ignored[16].starts_with("… and "));
    assert!(out.decisions.iter().all(|d| !d.valid));
}

#[test]
fn a_reused_parser_answers_exactly_like_parse_reply() {
    let parser = ReplyParser::new(&assets());
    let replies = [
        valid_pair(),
        format!("```json\n{}\n```", valid_pair()),
        r#"{"trade_decisions":[{"asset":"BTC","action":"yolo"}]}"#.to_string(),
        "garbage".to_string(),
    ];
    for _ in 0..2 {
        for text in &replies {
            let reply = ModelReply {
                content: Some(text),
                tool_arguments: None,
                finish_reason: Some("stop"),
            };
            assert_eq!(
                parser.parse(&reply, &prices()),
                parse_reply(&reply, &assets(), &prices()),
                "{text}"
            );
        }
    }
}
