//! Stages 2 and 3: JSON-schema validation and the semantic checks of each decision.
//!
//! Granularity: [`decision_schema`] is split into its document part (items left open)
//! and its item part. A document error (wrong shape, no or empty `trade_decisions`,
//! extra top-level key) fails the reply. Each item is then validated on its own, so a
//! bad item fails only the asset it is about.
//! Only items attributed to exactly one known asset are validated (an unknown asset
//! would fail the enum anyway, a duplicate is refused whatever it says), which keeps a
//! reply of 100 000 junk items cheap: `iter_errors` collects every error eagerly.
//!
//! Items are attributed to the account's assets by their `asset` string, exactly as
//! the schema enum spells it (no case folding: `"btc"` is not `BTC`). An item that names
//! no known asset cannot stand for any of them; it is listed in `ignored`.

use super::{clip, AssetDecision};
use crate::domain::decision::TradeDecision;
use crate::domain::types::{Asset, TradeAction};
use crate::llm::schema::decision_schema;
use rust_decimal::Decimal;
use serde_json::{Number, Value};
use std::collections::HashMap;
use std::str::FromStr;

/// Longest schema message kept (a message can quote a whole, huge, instance).
const MAX_MESSAGE_BYTES: usize = 240;
/// Messages quoted per failing item or document; the rest are counted.
const MAX_MESSAGES: usize = 4;
/// Ignored items listed one by one; the rest are counted.
const MAX_IGNORED: usize = 16;

/// The per-asset decisions of a document that passed the document-level schema.
pub(super) struct Validated {
    pub(super) decisions: Vec<AssetDecision>,
    pub(super) ignored: Vec<String>,
}

/// Validates `document` and checks each decision; `Err` when the document as a whole
/// is unusable.
pub(super) fn decisions(
    document: &Value,
    schemas: &Schemas,
    assets: &[Asset],
    prices: &HashMap<Asset, Decimal>,
) -> Result<Validated, String> {
    let mut document_errors = Messages::default();
    for error in schemas.document.iter_errors(document) {
        document_errors.add(|| describe(&error, ""));
    }
    if document_errors.count > 0 {
        return Err(format!("schema: {}", document_errors.summary()));
    }
    let items = document
        .get("trade_decisions")
        .and_then(Value::as_array)
        .ok_or("internal: a schema-valid document has no trade_decisions array")?;

    // Which items speak for which asset (the item schema's enum would reject the rest).
    let mut by_asset: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut ignored = Vec::new();
    let mut ignored_count = 0usize;
    for (index, item) in items.iter().enumerate() {
        let why = match item.get("asset") {
            Some(Value::String(name)) if assets.iter().any(|a| a.as_str() == name) => {
                by_asset.entry(name.as_str()).or_default().push(index);
                continue;
            }
            Some(Value::String(name)) => format!(
                "asset {} is not one of the account's assets",
                clip(&Value::String(name.clone()).to_string(), 60)
            ),
            Some(_) => "asset is not a string".to_string(),
            None => "no asset".to_string(),
        };
        ignored_count += 1;
        if ignored.len() < MAX_IGNORED {
            ignored.push(format!("item {index}: {why}"));
        }
    }
    if ignored_count > ignored.len() {
        ignored.push(format!(
            "… and {} more item(s)",
            ignored_count - ignored.len()
        ));
    }

    let decisions = assets
        .iter()
        .map(|asset| {
            let indices = by_asset.get(asset.as_str()).map_or(&[][..], Vec::as_slice);
            match indices {
                [] => {
                    let mut reason = format!("no decision for {asset}");
                    if ignored_count > 0 {
                        reason.push_str(&format!(
                            " ({ignored_count} item(s) with an unknown or missing asset \
                             were ignored)"
                        ));
                    }
                    AssetDecision::hold(asset, reason)
                }
                [index] => match items.get(*index) {
                    Some(item) => {
                        let mut errors = Messages::default();
                        for error in schemas.item.iter_errors(item) {
                            errors.add(|| describe(&error, &format!("/trade_decisions/{index}")));
                        }
                        if errors.count > 0 {
                            AssetDecision::hold(asset, format!("schema: {}", errors.summary()))
                        } else {
                            check_item(item, asset, prices.get(asset).copied())
                        }
                    }
                    None => AssetDecision::hold(asset, "internal: item vanished".into()),
                },
                several => AssetDecision::hold(
                    asset,
                    format!(
                        "{} decisions for {asset} (items {}): one per asset is expected",
                        count_word(several.len()),
                        join_indices(several)
                    ),
                ),
            }
        })
        .collect();
    Ok(Validated { decisions, ignored })
}

/// The decision schema split in two compiled halves: the document with its items left
/// open, and the item schema. Both come from the one
/// [`decision_schema`], so nothing is restated.
pub(super) struct Schemas {
    document: jsonschema::Validator,
    item: jsonschema::Validator,
}

impl Schemas {
    pub(super) fn new(assets: &[Asset]) -> Result<Self, String> {
        let mut schema = decision_schema(assets);
        let item = schema
            .pointer_mut("/properties/trade_decisions/items")
            .map(|items| std::mem::replace(items, Value::Object(Default::default())))
            .ok_or("internal: the decision schema has no item schema")?;
        let compile = |schema: &Value| {
            jsonschema::validator_for(schema)
                .map_err(|error| format!("internal: the decision schema does not compile: {error}"))
        };
        Ok(Schemas {
            document: compile(&schema)?,
            item: compile(&item)?,
        })
    }
}

/// `<path>: <message>`, the path absolute in the document (`/` for its root).
fn describe(error: &jsonschema::ValidationError<'_>, prefix: &str) -> String {
    let path = format!("{prefix}{}", error.instance_path().as_str());
    format!(
        "{}: {}",
        if path.is_empty() { "/" } else { &path },
        clip(&error.to_string(), MAX_MESSAGE_BYTES)
    )
}

/// The schema errors of one item (or of the document): the first few, and a count.
#[derive(Default)]
struct Messages {
    shown: Vec<String>,
    count: usize,
}

impl Messages {
    fn add(&mut self, message: impl FnOnce() -> String) {
        self.count += 1;
        if self.shown.len() < MAX_MESSAGES {
            self.shown.push(message());
        }
    }

    fn summary(&self) -> String {
        let mut text = self.shown.join("; ");
        if self.count > self.shown.len() {
            text.push_str(&format!(
                "; and {} more error(s)",
                self.count - self.shown.len()
            ));
        }
        text
    }
}

fn count_word(n: usize) -> String {
    match n {
        2 => "two".to_string(),
        3 => "three".to_string(),
        n => n.to_string(),
    }
}

fn join_indices(indices: &[usize]) -> String {
    match indices.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => {
            let rest: Vec<String> = rest.iter().map(usize::to_string).collect();
            format!("{} and {last}", rest.join(", "))
        }
        None => String::new(),
    }
}

/// The fields of a schema-valid item.
struct Fields<'v> {
    action: TradeAction,
    allocation_usd: &'v Number,
    tp_price: Option<&'v Number>,
    sl_price: Option<&'v Number>,
    exit_plan: &'v str,
    rationale: &'v str,
}

impl<'v> Fields<'v> {
    fn read(item: &'v Value) -> Option<Self> {
        let action = match item.get("action")?.as_str()? {
            "buy" => TradeAction::Buy,
            "sell" => TradeAction::Sell,
            "hold" => TradeAction::Hold,
            _ => return None,
        };
        let price = |name: &str| match item.get(name)? {
            Value::Number(n) => Some(Some(n)),
            Value::Null => Some(None),
            _ => None,
        };
        Some(Fields {
            action,
            allocation_usd: item.get("allocation_usd")?.as_number()?,
            tp_price: price("tp_price")?,
            sl_price: price("sl_price")?,
            exit_plan: item.get("exit_plan")?.as_str()?,
            rationale: item.get("rationale")?.as_str()?,
        })
    }
}

/// The semantic checks of one schema-valid item for `asset` at `price`.
fn check_item(item: &Value, asset: &Asset, price: Option<Decimal>) -> AssetDecision {
    let Some(fields) = Fields::read(item) else {
        return AssetDecision::hold(
            asset,
            "internal: a schema-valid item could not be read".into(),
        );
    };
    let decision = |allocation_usd, tp_price, sl_price| TradeDecision {
        asset: asset.clone(),
        action: fields.action,
        allocation_usd,
        tp_price,
        sl_price,
        exit_plan: fields.exit_plan.to_string(),
        rationale: fields.rationale.to_string(),
    };
    let valid = |decision: TradeDecision, note: Option<String>| AssetDecision {
        asset: asset.clone(),
        decision,
        valid: true,
        reason: note,
    };
    let (opening_side, action) = match fields.action {
        // A hold changes nothing: its numbers are not read.
        TradeAction::Hold => return valid(decision(Decimal::ZERO, None, None), None),
        TradeAction::Buy => (Direction::Long, "buy"),
        TradeAction::Sell => (Direction::Short, "sell"),
    };
    let allocation = match to_decimal("allocation_usd", fields.allocation_usd) {
        Ok(allocation) if allocation < Decimal::ZERO => {
            return AssetDecision::hold(asset, format!("allocation_usd {allocation} is negative"))
        }
        Ok(allocation) => allocation,
        Err(reason) => return AssetDecision::hold(asset, reason),
    };
    if allocation.is_zero() {
        // A close: it opens nothing, so there is nothing for a TP/SL to protect.
        let note = (fields.tp_price.is_some() || fields.sl_price.is_some()).then(|| {
            format!(
                "{action} with allocation_usd 0 only closes a {} position: its \
                 tp_price/sl_price are ignored",
                opening_side.opposite_name()
            )
        });
        return valid(decision(Decimal::ZERO, None, None), note);
    }

    let mut problems = Vec::new();
    let mut level = |name: &str, number: Option<&Number>| match number.map(|n| to_decimal(name, n))
    {
        None => None,
        Some(Ok(level)) if level <= Decimal::ZERO => {
            problems.push(format!("{name} {level} is not a positive price"));
            None
        }
        Some(Ok(level)) => Some(level),
        Some(Err(reason)) => {
            problems.push(reason);
            None
        }
    };
    let tp_price = level("tp_price", fields.tp_price);
    let sl_price = level("sl_price", fields.sl_price);
    let mut note = None;
    match price.filter(|p| *p > Decimal::ZERO) {
        Some(price) => {
            let price = price.normalize();
            let long = opening_side == Direction::Long;
            for (name, level, above) in
                [("tp_price", tp_price, long), ("sl_price", sl_price, !long)]
            {
                let Some(level) = level else { continue };
                let ok = if above { level > price } else { level < price };
                if !ok {
                    problems.push(format!(
                        "{name} {level} is not {} the price {price} for a {action}",
                        if above { "above" } else { "below" }
                    ));
                }
            }
        }
        None if tp_price.is_some() || sl_price.is_some() => {
            note = Some(format!(
                "no price for {asset} in the snapshot: the TP/SL side check was skipped"
            ));
        }
        None => {}
    }
    if problems.is_empty() {
        valid(decision(allocation, tp_price, sl_price), note)
    } else {
        AssetDecision::hold(asset, problems.join("; "))
    }
}

/// The position a buy or sell opens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Long,
    Short,
}

impl Direction {
    fn opposite_name(self) -> &'static str {
        match self {
            Direction::Long => "short",
            Direction::Short => "long",
        }
    }
}

/// A JSON number as a `Decimal`, read from serde_json's shortest round-trip text (so
/// `0.1` is exactly 0.1), normalized (`60000.0` → `60000`).
fn to_decimal(name: &str, number: &Number) -> Result<Decimal, String> {
    let text = number.to_string();
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text)
    } else {
        Decimal::from_str(&text)
    };
    parsed
        .map(|d| d.normalize())
        .map_err(|_| format!("{name} {text} is out of the range a decimal can hold"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(value: Value) -> Result<Decimal, String> {
        match value {
            Value::Number(n) => to_decimal("x", &n),
            _ => Err("not a number".into()),
        }
    }

    #[test]
    fn numbers_become_exact_decimals() {
        let parse = |s: &str| decimal(serde_json::from_str(s).expect("json"));
        assert_eq!(parse("0.1"), Ok(Decimal::new(1, 1)));
        assert_eq!(parse("60000.0"), Ok(Decimal::new(60000, 0)));
        assert_eq!(parse("0.00000123"), Ok(Decimal::new(123, 8)));
        assert_eq!(parse("1.5e3"), Ok(Decimal::new(1500, 0)));
        assert_eq!(parse("18446744073709551615"), Ok(Decimal::from(u64::MAX)));
        assert_eq!(parse("-0.0"), Ok(Decimal::ZERO));
        assert_eq!(
            parse("1e300"),
            Err("x 1e+300 is out of the range a decimal can hold".into())
        );
        assert!(parse("5e-324").is_err());
    }
}
