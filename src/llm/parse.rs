//! Reply parsing: turns whatever a model answered into exactly one decision per asset —
//! the model's decision when it is valid, otherwise a HOLD that says what was wrong.
//!
//! Entry point: [`parse_reply`] (a [`ModelReply`] in, a [`ParseOutcome`] out). Stages:
//!
//! 1. **Extraction** (`extract`): pick the text (a tool call's `function.arguments` when
//!    present, else `content`), scan at most [`MAX_SCANNED_BYTES`] of it, skip a
//!    reasoning preamble (`<think>…</think>`, `<thinking>`, `<reasoning>`), look inside
//!    ```` ```json ```` fences, take the first balanced top-level `{…}` / `[…]` that
//!    parses out of surrounding text (braces inside JSON strings are minded), and wrap a
//!    bare array of decisions or a single decision object as `{"trade_decisions": […]}`.
//!    A fenced block is used only when it holds decision-like JSON (a fenced example
//!    does not hide the answer). Every such repair is recorded in
//!    [`ParseOutcome::repairs`]. Nothing else is repaired: no number is guessed, no
//!    enum typo fixed, no fragment of a cut-off document salvaged (a `{` that is never
//!    closed ends the search). A number beyond f64 (`1e400`) is refused by serde_json
//!    (no `arbitrary_precision`), so it fails the whole reply, not just its item.
//! 2. **Schema validation** (`validate`) with the `jsonschema` crate against
//!    [`decision_schema`](crate::llm::schema::decision_schema), split in two: the
//!    document part (items left open) and the item part. A document error (not an
//!    object, no `trade_decisions`, an extra top-level key, an empty array) fails the
//!    whole reply; each item is then validated on its own, so one bad item turns only
//!    ITS asset into a HOLD. Items are attributed by their exact `asset` string; items
//!    naming no known asset are listed in [`ParseOutcome::ignored`].
//! 3. **Semantic checks** on each schema-valid item: one decision per asset (two items
//!    for one asset → HOLD for that asset, whatever they say); numbers converted to
//!    `Decimal` from serde_json's shortest round-trip text (never through f64
//!    arithmetic), a magnitude a `Decimal` cannot hold rejects the item; for a `buy` or
//!    `sell` that opens (allocation > 0) a given TP/SL must be a positive price on the
//!    right side of the snapshot price (buy: TP above, SL below; sell: mirrored). A
//!    `buy`/`sell` with allocation 0 only closes: its TP/SL are dropped (noted in
//!    `reason`). A `hold`'s numbers are ignored. When `prices` has no positive price for
//!    the asset the side check is skipped and `reason` says so (the risk rules repeat
//!    the side check with the execution price, so nothing unchecked is executed).
//!
//! Invariants (checked by `tests/llm_parser_fuzz.rs` on thousands of random replies):
//! - no input panics (no unwrap/indexing on reply data, byte scanning only at ASCII
//!   delimiters, serde_json's recursion limit of 128 kept, input scanned capped);
//! - `decisions` has exactly one entry per asset of `assets`, in that order;
//! - an entry with `valid: false` is a HOLD (allocation 0, no TP/SL) with a non-empty
//!   `reason`; an entry with `valid: true` may carry an informational `reason`;
//! - a valid `buy`/`sell` has allocation ≥ 0 and, when it opens and a price is known,
//!   TP/SL on the correct side;
//! - `error` is set only when the whole reply failed, and then every entry is invalid.
//!
//! The risk rules (`domain::risk`) run after this and are not duplicated here, except
//! the TP/SL side check.

mod extract;
mod validate;

use crate::domain::decision::TradeDecision;
use crate::domain::types::Asset;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How much of a reply is scanned for JSON (bytes). A longer reply is cut at the last
/// character boundary below this and the cut is recorded as a repair.
pub const MAX_SCANNED_BYTES: usize = 1024 * 1024;

/// The parts of a chat-completions choice the parser needs, borrowed from the response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelReply<'a> {
    /// `choices[0].message.content` (may be null, fenced, or wrapped in prose).
    pub content: Option<&'a str>,
    /// `choices[0].message.tool_calls[0].function.arguments`, when the model answered
    /// through a tool call; preferred over `content` when it is not blank.
    pub tool_arguments: Option<&'a str>,
    /// `choices[0].finish_reason` (`stop`, `length`, `tool_calls`, …), used to explain
    /// an empty or cut-off reply.
    pub finish_reason: Option<&'a str>,
}

/// What the parser made of one asset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssetDecision {
    /// The asset (always equal to `decision.asset`).
    pub asset: Asset,
    /// The model's decision when `valid`, else a HOLD whose rationale is `reason`.
    pub decision: TradeDecision,
    /// Whether the model's own decision is used.
    pub valid: bool,
    /// When invalid: precisely what was wrong. When valid: an optional note (TP/SL
    /// dropped on a close, side check skipped for want of a price).
    pub reason: Option<String>,
}

/// The parse of one reply: what is stored as the audit's parsed outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParseOutcome {
    /// Exactly one entry per asset of the account, in the account's order.
    pub decisions: Vec<AssetDecision>,
    /// Each repair applied to the reply text before validation, in order.
    pub repairs: Vec<String>,
    /// The JSON document that was validated (after repairs), when one was found.
    pub document: Option<serde_json::Value>,
    /// Why the whole reply failed (then every asset holds with this reason).
    pub error: Option<String>,
    /// Items of the document that belong to none of the account's assets (unknown or
    /// missing `asset`), each with its index and why it was ignored.
    pub ignored: Vec<String>,
}

impl ParseOutcome {
    /// The outcome of a reply that failed as a whole: every asset holds with `reason`.
    fn failed(
        assets: &[Asset],
        repairs: Vec<String>,
        document: Option<serde_json::Value>,
        reason: String,
    ) -> Self {
        ParseOutcome {
            decisions: assets
                .iter()
                .map(|asset| AssetDecision::hold(asset, reason.clone()))
                .collect(),
            repairs,
            document,
            error: Some(reason),
            ignored: Vec::new(),
        }
    }
}

impl AssetDecision {
    /// A HOLD that replaces an unusable decision; the reason is also its rationale.
    fn hold(asset: &Asset, reason: String) -> Self {
        AssetDecision {
            asset: asset.clone(),
            decision: TradeDecision::hold(asset.clone(), reason.clone()),
            valid: false,
            reason: Some(reason),
        }
    }
}

/// Parses a model reply into one decision per asset of `assets` (in that order), using
/// `prices` (the snapshot's last price per asset) for the TP/SL side check. Never panics
/// and never fails: whatever goes wrong becomes a HOLD with its reason.
pub fn parse_reply(
    reply: &ModelReply<'_>,
    assets: &[Asset],
    prices: &HashMap<Asset, Decimal>,
) -> ParseOutcome {
    ReplyParser::new(assets).parse(reply, prices)
}

/// The parser of one account: the decision schema for its assets compiled once, used
/// for every reply (what [`parse_reply`] does, without compiling the schema each time).
pub struct ReplyParser {
    assets: Vec<Asset>,
    schemas: Result<validate::Schemas, String>,
}

impl ReplyParser {
    /// Compiles the decision schema of `assets`.
    pub fn new(assets: &[Asset]) -> Self {
        ReplyParser {
            assets: assets.to_vec(),
            schemas: validate::Schemas::new(assets),
        }
    }

    /// Exactly as [`parse_reply`] with this parser's assets.
    pub fn parse(&self, reply: &ModelReply<'_>, prices: &HashMap<Asset, Decimal>) -> ParseOutcome {
        let assets = &self.assets;
        let mut repairs = Vec::new();
        let document = match extract::document(reply, &mut repairs) {
            Ok(document) => document,
            Err(reason) => return ParseOutcome::failed(assets, repairs, None, reason),
        };
        let validated = match &self.schemas {
            Ok(schemas) => validate::decisions(&document, schemas, assets, prices),
            Err(e) => Err(e.clone()),
        };
        match validated {
            Ok(validated) => ParseOutcome {
                decisions: validated.decisions,
                repairs,
                document: Some(document),
                error: None,
                ignored: validated.ignored,
            },
            Err(reason) => ParseOutcome::failed(assets, repairs, Some(document), reason),
        }
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut with `…`
/// (so a reason quoting a huge value stays readable).
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests;
