//! Stage 1: finding the JSON document in a reply's text.
//!
//! Order: pick the text (tool arguments, else content) → cap it at
//! [`MAX_SCANNED_BYTES`] → skip reasoning blocks → look inside code fences → take the
//! first decision-like balanced `{…}` / `[…]` out of the text → wrap a bare array or a
//! single decision. Every step that changes the text is pushed to `repairs`.
//!
//! The scanner walks bytes and only ever cuts at ASCII delimiters (`{`, `}`, `[`, `]`,
//! backticks, `<…>` tags), so every slice falls on a character boundary; slices are
//! still taken with `str::get`. It tracks JSON strings (and their escapes) inside a
//! candidate, so braces in a rationale do not end it; outside candidates, prose quotes
//! are ignored. A candidate that is never closed stops the search: it is most likely a
//! document cut off by `max_tokens`, and objects nested in it are fragments, not answers.

use super::{clip, ModelReply, MAX_SCANNED_BYTES};
use serde_json::{Map, Value};

/// Tags reasoning models wrap their thinking in (matched case-insensitively).
const REASONING_TAGS: [&str; 3] = ["think", "thinking", "reasoning"];

/// How many fenced blocks are looked into before falling back to the whole text.
const MAX_FENCED_BLOCKS: usize = 16;

/// The document found in a reply (not yet validated), or why there is none.
pub(super) fn document(reply: &ModelReply<'_>, repairs: &mut Vec<String>) -> Result<Value, String> {
    let cut_off = reply.finish_reason == Some("length");
    let text = pick_text(reply)?;
    let text = cap(text, repairs);
    let text = skip_reasoning(text, repairs);
    if text.trim().is_empty() {
        return Err(with_cut_off(
            "the reply holds only reasoning and no answer".to_string(),
            cut_off,
        ));
    }
    // A fence is taken only for a decision-like value: a fenced example object does not
    // hide the answer that follows it.
    for (fence, inner) in fenced_blocks(text) {
        if let Ok(found) = find_json(inner).and_then(Found::decision_like) {
            repairs.push(format!("removed a {fence} code fence"));
            return Ok(shape(found.into_value(inner, repairs), repairs));
        }
    }
    match find_json(text) {
        Ok(found) => Ok(shape(found.into_value(text, repairs), repairs)),
        Err(miss) => Err(with_cut_off(miss.describe(), cut_off)),
    }
}

/// The text to parse: a tool call's arguments when not blank, else the content.
fn pick_text<'a>(reply: &ModelReply<'a>) -> Result<&'a str, String> {
    let not_blank = |s: &&str| !s.trim().is_empty();
    if let Some(arguments) = reply.tool_arguments.filter(not_blank) {
        return Ok(arguments);
    }
    if let Some(content) = reply.content.filter(not_blank) {
        return Ok(content);
    }
    let finish = reply.finish_reason.map(|f| clip(f, 40));
    Err(match (finish.as_deref(), reply.content) {
        (Some("length"), _) => {
            "reply was cut off (finish_reason: length) and had no content".to_string()
        }
        (Some(finish), None) => format!("reply had no content (finish_reason: {finish})"),
        (Some(finish), Some(_)) => format!("reply was empty (finish_reason: {finish})"),
        (None, None) => "reply had no content".to_string(),
        (None, Some(_)) => "reply was empty".to_string(),
    })
}

/// Appends the truncation hint when the model ran out of tokens.
fn with_cut_off(reason: String, cut_off: bool) -> String {
    if cut_off {
        format!("{reason}; the reply was cut off (finish_reason: length)")
    } else {
        reason
    }
}

/// At most [`MAX_SCANNED_BYTES`] of `text`, cut on a character boundary.
fn cap<'a>(text: &'a str, repairs: &mut Vec<String>) -> &'a str {
    if text.len() <= MAX_SCANNED_BYTES {
        return text;
    }
    let mut end = MAX_SCANNED_BYTES;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    repairs.push(format!(
        "scanned only the first {end} of the reply's {} bytes",
        text.len()
    ));
    text.get(..end).unwrap_or_default()
}

/// Drops everything up to the last closing reasoning tag (a preamble, with or without
/// its opening tag) and everything from an opening tag that is never closed.
fn skip_reasoning<'a>(text: &'a str, repairs: &mut Vec<String>) -> &'a str {
    // ASCII lower-casing keeps every byte offset, so offsets found in `lower` cut `text`.
    let lower = text.to_ascii_lowercase();
    let mut start = 0;
    let last_close = REASONING_TAGS
        .iter()
        .filter_map(|tag| {
            let close = format!("</{tag}>");
            lower.rfind(&close).map(|at| (at + close.len(), *tag))
        })
        .max_by_key(|(end, _)| *end);
    if let Some((end, tag)) = last_close {
        repairs.push(format!(
            "skipped a <{tag}>…</{tag}> reasoning preamble ({end} bytes)"
        ));
        start = end;
    }
    let mut end = text.len();
    let rest = lower.get(start..).unwrap_or_default();
    let first_open = REASONING_TAGS
        .iter()
        .filter_map(|tag| rest.find(&format!("<{tag}>")).map(|at| (at, *tag)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, tag)) = first_open {
        end = start + at;
        repairs.push(format!(
            "dropped a <{tag}> block that is never closed ({} bytes)",
            text.len() - end
        ));
    }
    text.get(start..end).unwrap_or_default()
}

/// The ```` ``` ```` blocks of `text`: the fence as written (with its language tag) and
/// the text inside. An unclosed fence runs to the end of the text.
fn fenced_blocks(text: &str) -> Vec<(String, &str)> {
    let mut blocks = Vec::new();
    let mut pos = 0;
    while blocks.len() < MAX_FENCED_BLOCKS {
        let Some(open) = text.get(pos..).and_then(|rest| rest.find("```")) else {
            break;
        };
        let after_ticks = pos + open + 3;
        let rest = text.get(after_ticks..).unwrap_or_default();
        let line_end = rest.find('\n').map_or(text.len(), |at| after_ticks + at);
        let tag = text.get(after_ticks..line_end).unwrap_or_default().trim();
        let inner_start = (line_end + 1).min(text.len());
        let inner_rest = text.get(inner_start..).unwrap_or_default();
        let (inner, next) = match inner_rest.find("```") {
            Some(close) => (
                inner_rest.get(..close).unwrap_or_default(),
                inner_start + close + 3,
            ),
            None => (inner_rest, text.len()),
        };
        blocks.push((format!("```{}", clip(tag, 20)), inner));
        if next >= text.len() {
            break;
        }
        pos = next;
    }
    blocks
}

/// A JSON value found in a text, with its byte span.
struct Found {
    start: usize,
    end: usize,
    value: Value,
}

impl Found {
    /// Itself when it looks like an answer (see [`decision_like`]).
    fn decision_like(self) -> Result<Found, Miss> {
        if decision_like(&self.value) {
            Ok(self)
        } else {
            Err(Miss {
                unclosed: None,
                parse_error: None,
            })
        }
    }

    /// The value, recording a repair when `text` held more than the value.
    fn into_value(self, text: &str, repairs: &mut Vec<String>) -> Value {
        let before = text.get(..self.start).unwrap_or_default().trim();
        let after = text.get(self.end..).unwrap_or_default().trim();
        if !before.is_empty() || !after.is_empty() {
            repairs.push(format!(
                "took the JSON out of surrounding text ({} bytes before it, {} after)",
                before.len(),
                after.len()
            ));
        }
        self.value
    }
}

/// Why no JSON value was found.
struct Miss {
    /// Byte offset and character of an opening bracket that is never closed.
    unclosed: Option<(usize, char)>,
    /// The first balanced candidate that did not parse, and serde_json's error.
    parse_error: Option<(usize, String)>,
}

impl Miss {
    fn describe(&self) -> String {
        match (self.unclosed, &self.parse_error) {
            (Some((at, bracket)), _) => format!(
                "no complete JSON object in the reply: the '{bracket}' at byte {at} is never \
                 closed"
            ),
            (None, Some((at, error))) => format!(
                "no JSON object found in the reply (the candidate at byte {at} does not \
                 parse: {})",
                clip(error, 120)
            ),
            (None, None) => "no JSON object found in the reply".to_string(),
        }
    }
}

/// The first decision-like balanced `{…}` or `[…]` of `text` that parses; failing
/// that, the first object that parses (the schema will say what is wrong with it).
fn find_json(text: &str) -> Result<Found, Miss> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut fallback: Option<Found> = None;
    let mut parse_error = None;
    while let Some(start) = next_opening(bytes, pos) {
        let Some(end) = matching_close(bytes, start) else {
            let bracket = bytes.get(start).map_or('{', |b| char::from(*b));
            return Err(Miss {
                unclosed: Some((start, bracket)),
                parse_error,
            });
        };
        let span = text.get(start..=end).unwrap_or_default();
        match serde_json::from_str::<Value>(span) {
            Ok(value) if decision_like(&value) => {
                return Ok(Found {
                    start,
                    end: end + 1,
                    value,
                })
            }
            Ok(value @ Value::Object(_)) => {
                if fallback.is_none() {
                    fallback = Some(Found {
                        start,
                        end: end + 1,
                        value,
                    });
                }
            }
            // An array of anything but decisions is prose ("see [1]"), not an answer.
            Ok(_) => {}
            Err(error) => {
                if parse_error.is_none() {
                    parse_error = Some((start, error.to_string()));
                }
            }
        }
        pos = end + 1;
    }
    fallback.ok_or(Miss {
        unclosed: None,
        parse_error,
    })
}

/// Offset of the next `{` or `[` at or after `pos`.
fn next_opening(bytes: &[u8], pos: usize) -> Option<usize> {
    bytes
        .get(pos..)?
        .iter()
        .position(|b| matches!(b, b'{' | b'['))
        .map(|at| pos + at)
}

/// Offset of the bracket that closes the one at `start`, minding JSON strings.
fn matching_close(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (at, byte) in bytes.iter().enumerate().skip(start) {
        if in_string {
            if escaped {
                escaped = false;
            } else if *byte == b'\\' {
                escaped = true;
            } else if *byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether a value looks like an answer: a decision document, a single decision, or a
/// non-empty array of objects.
fn decision_like(value: &Value) -> bool {
    match value {
        Value::Object(map) => ["trade_decisions", "asset", "action"]
            .iter()
            .any(|key| map.contains_key(*key)),
        Value::Array(items) => !items.is_empty() && items.iter().all(Value::is_object),
        _ => false,
    }
}

/// Wraps a bare array of decisions or a single decision object as a document.
fn shape(value: Value, repairs: &mut Vec<String>) -> Value {
    match value {
        Value::Array(items) => {
            repairs.push(format!(
                "wrapped a top-level array of {} item(s) as {{\"trade_decisions\": [...]}}",
                items.len()
            ));
            wrap(items)
        }
        Value::Object(map)
            if !map.contains_key("trade_decisions")
                && (map.contains_key("asset") || map.contains_key("action")) =>
        {
            repairs.push(
                "wrapped a single decision object as {\"trade_decisions\": [...]}".to_string(),
            );
            wrap(vec![Value::Object(map)])
        }
        other => other,
    }
}

fn wrap(items: Vec<Value>) -> Value {
    let mut document = Map::new();
    document.insert("trade_decisions".to_string(), Value::Array(items));
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Option<Value> {
        find_json(text).ok().map(|f| f.value)
    }

    #[test]
    fn braces_inside_strings_do_not_end_a_candidate() {
        let text = r#"note {"asset": "BTC", "rationale": "a } and a \" and {"} end"#;
        assert_eq!(
            found(text).and_then(|v| v.get("rationale").cloned()),
            Some(Value::String("a } and a \" and {".into()))
        );
    }

    #[test]
    fn prose_brackets_before_the_answer_are_skipped() {
        let text = r#"See [1] and {this}: {"trade_decisions": []}"#;
        assert!(found(text).is_some_and(|v| v.get("trade_decisions").is_some()));
    }

    #[test]
    fn a_never_closed_document_is_not_salvaged() {
        let text = r#"{"trade_decisions": [{"asset": "BTC", "action": "hold"}, {"as"#;
        let miss = find_json(text).err().map(|m| m.describe());
        assert_eq!(
            miss.as_deref(),
            Some("no complete JSON object in the reply: the '{' at byte 0 is never closed")
        );
    }

    #[test]
    fn reasoning_without_an_opening_tag_is_skipped() {
        let mut repairs = Vec::new();
        let text = skip_reasoning("thinking {draft}</think>{\"a\":1}", &mut repairs);
        assert_eq!(text, "{\"a\":1}");
        assert_eq!(repairs.len(), 1);
    }

    #[test]
    fn a_fenced_example_does_not_hide_the_answer() {
        let mut repairs = Vec::new();
        let reply = ModelReply {
            content: Some("Format:\n```json\n{\"x\": 1}\n```\nAnswer:\n```json\n{\"trade_decisions\": 1}\n```"),
            ..ModelReply::default()
        };
        let document = document(&reply, &mut repairs).ok();
        assert_eq!(document, Some(serde_json::json!({"trade_decisions": 1})));
        assert_eq!(repairs, vec!["removed a ```json code fence"]);
    }

    #[test]
    fn unclosed_fence_runs_to_the_end() {
        let blocks = fenced_blocks("```json\n{\"a\": 1}");
        assert_eq!(blocks, vec![("```json".to_string(), "{\"a\": 1}")]);
    }
}
