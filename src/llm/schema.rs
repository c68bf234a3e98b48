//! The decision JSON schema: the contract between a model and the daemon, defined once.
//!
//! Entry points:
//! - [`decision_schema`]: the schema for one account's assets, sent to the model as
//!   `response_format.json_schema.schema` (or as a tool's parameters) and used by
//!   [`crate::llm::parse`] to validate every reply;
//! - [`SCHEMA_NAME`]: the `json_schema.name` sent with it.
//!
//! Invariants: the schema is strict-mode compatible (OpenAI / OpenRouter
//! `"strict": true`): every object lists all of its properties in `required` and sets
//! `additionalProperties: false`; optional prices are nullable (`["number", "null"]`)
//! rather than omitted. The `asset` enum holds exactly the account's assets, in order,
//! spelled as [`Asset::as_str`] spells them (upper case).

use crate::domain::types::Asset;
use serde_json::{json, Value};

/// `json_schema.name` of the decision schema in a `response_format` request.
pub const SCHEMA_NAME: &str = "trade_decisions";

/// The decision schema of `reference/llm-endpoints.md` with the `asset` enum filled in
/// with `assets`: `{"trade_decisions": [{asset, action, allocation_usd, tp_price,
/// sl_price, exit_plan, rationale}, ...]}` with at least one item.
pub fn decision_schema(assets: &[Asset]) -> Value {
    let asset_names: Vec<&str> = assets.iter().map(Asset::as_str).collect();
    json!({
        "type": "object",
        "properties": {
            "trade_decisions": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "asset": {"type": "string", "enum": asset_names},
                        "action": {"type": "string", "enum": ["buy", "sell", "hold"]},
                        "allocation_usd": {"type": "number", "minimum": 0},
                        "tp_price": {"type": ["number", "null"]},
                        "sl_price": {"type": ["number", "null"]},
                        "exit_plan": {"type": "string"},
                        "rationale": {"type": "string"}
                    },
                    "required": ["asset", "action", "allocation_usd", "tp_price", "sl_price",
                                 "exit_plan", "rationale"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["trade_decisions"],
        "additionalProperties": false
    })
}

/// Decisions rendered as the document a model returns (`{"trade_decisions": [...]}`,
/// numbers as JSON numbers): builtin policies go through the same parser as models.
pub fn decisions_document(decisions: &[crate::domain::decision::TradeDecision]) -> Value {
    use rust_decimal::prelude::ToPrimitive;
    let num = |x: rust_decimal::Decimal| x.to_f64().map(Value::from).unwrap_or_default();
    serde_json::json!({
        "trade_decisions": decisions.iter().map(|d| serde_json::json!({
            "asset": d.asset,
            "action": d.action,
            "allocation_usd": num(d.allocation_usd),
            "tp_price": d.tp_price.map(num),
            "sl_price": d.sl_price.map(num),
            "exit_plan": d.exit_plan,
            "rationale": d.rationale,
        })).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets() -> Vec<Asset> {
        vec![Asset::new("BTC"), Asset::new("ETH")]
    }

    /// Walks every object schema and checks the two strict-mode rules.
    fn assert_strict(schema: &Value, at: &str) {
        if schema.get("type") == Some(&json!("object")) {
            let props = schema["properties"].as_object().expect("properties");
            let required: Vec<&str> = schema["required"]
                .as_array()
                .expect("required")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for name in props.keys() {
                assert!(
                    required.contains(&name.as_str()),
                    "{at}: {name} not required"
                );
            }
            assert_eq!(schema["additionalProperties"], json!(false), "{at}");
            for (name, sub) in props {
                assert_strict(sub, &format!("{at}/{name}"));
            }
        }
        if let Some(items) = schema.get("items") {
            assert_strict(items, &format!("{at}/items"));
        }
    }

    #[test]
    fn schema_is_strict_mode_compatible() {
        assert_strict(&decision_schema(&assets()), "");
    }

    #[test]
    fn asset_enum_lists_the_accounts_assets_in_order() {
        let schema = decision_schema(&assets());
        let item = &schema["properties"]["trade_decisions"]["items"];
        assert_eq!(item["properties"]["asset"]["enum"], json!(["BTC", "ETH"]));
        assert_eq!(
            item["properties"]["tp_price"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(
            item["properties"]["sl_price"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(SCHEMA_NAME, "trade_decisions");
    }

    #[test]
    fn schema_compiles_and_accepts_a_valid_document() {
        let validator = jsonschema::validator_for(&decision_schema(&assets())).expect("compiles");
        let doc = json!({"trade_decisions": [{
            "asset": "BTC", "action": "buy", "allocation_usd": 100,
            "tp_price": 70000, "sl_price": null, "exit_plan": "", "rationale": "trend"
        }]});
        assert!(validator.is_valid(&doc));
        assert!(!validator.is_valid(&json!({"trade_decisions": []})));
    }
}
