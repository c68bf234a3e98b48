//! The chat-completions wire format: the body the client sends and what it reads back.
//!
//! Entry points: [`request_body`], [`parse_reply`], [`parse_retry_after`],
//! [`capped_text`].
//!
//! Invariants:
//! - Reading a reply never panics and never indexes into provider data: anything
//!   unexpected is a [`LlmError::Decode`] (or, for an error reported inside a 2xx body,
//!   the error it describes).
//! - `usage.cost` is read from the number's own digits into a `Decimal`, never through
//!   an `f64`.

use super::error::{classify, snippet, LlmError};
use super::{ChatMessage, LlmEndpoint, StructuredOutput, Usage};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::str::FromStr;
use std::time::Duration;

/// The name under which the decision schema (or tool) is sent.
pub(super) const SCHEMA_NAME: &str = "trade_decisions";

/// The longest `Retry-After` taken literally (anything longer is this).
const RETRY_AFTER_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The JSON body of one chat-completions request.
///
/// `response_format` follows [`StructuredOutput`]: `json_schema` (strict, named
/// [`SCHEMA_NAME`]) or a forced tool call need a schema; without one both fall back to
/// `json_object`. `None` sends no `response_format` at all.
pub(super) fn request_body(
    endpoint: &LlmEndpoint,
    messages: &[ChatMessage],
    schema: Option<&Value>,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(endpoint.model.clone()));
    body.insert(
        "messages".into(),
        Value::Array(
            messages
                .iter()
                .map(|m| json!({"role": m.role, "content": m.content}))
                .collect(),
        ),
    );
    body.insert("temperature".into(), json!(endpoint.temperature));
    body.insert("max_tokens".into(), json!(endpoint.max_tokens));
    let json_object = || json!({"type": "json_object"});
    match (endpoint.structured_output, schema) {
        (StructuredOutput::JsonSchema, Some(schema)) => {
            body.insert(
                "response_format".into(),
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": SCHEMA_NAME, "strict": true, "schema": schema}
                }),
            );
        }
        (StructuredOutput::ToolCall, Some(schema)) => {
            body.insert(
                "tools".into(),
                json!([{
                    "type": "function",
                    "function": {
                        "name": SCHEMA_NAME,
                        "description": "Submit the trade decisions for this cycle.",
                        "strict": true,
                        "parameters": schema
                    }
                }]),
            );
            body.insert(
                "tool_choice".into(),
                json!({"type": "function", "function": {"name": SCHEMA_NAME}}),
            );
        }
        (StructuredOutput::JsonSchema | StructuredOutput::ToolCall, None)
        | (StructuredOutput::JsonObject, _) => {
            body.insert("response_format".into(), json_object());
        }
        (StructuredOutput::None, _) => {}
    }
    body.insert("usage".into(), json!({"include": true}));
    Value::Object(body)
}

/// What a successful answer carried.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Reply {
    pub content: Option<String>,
    pub tool_arguments: Option<String>,
    pub finish_reason: Option<String>,
    pub reasoning: Option<String>,
    pub usage: Option<Usage>,
}

/// Reads a 2xx body. `Err` when it is not a chat completion ([`LlmError::Decode`]) or
/// when it reports an error instead (OpenRouter can answer 200 with
/// `{"error": {"code": 502, ...}}` when the upstream model fails after the headers
/// went out; that error is classified by its code like an HTTP status).
pub(super) fn parse_reply(body: &[u8]) -> Result<Reply, LlmError> {
    let json: Value = serde_json::from_slice(body).map_err(|e| LlmError::Decode {
        detail: format!("the body is not JSON ({e}): {}", body_start(body)),
    })?;
    let Some(object) = json.as_object() else {
        return Err(LlmError::Decode {
            detail: format!("the body is not a JSON object: {}", body_start(body)),
        });
    };
    let choice = object
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first());
    let Some(choice) = choice else {
        if let Some(error) = object.get("error").filter(|e| !e.is_null()) {
            return Err(embedded_error(error));
        }
        return Err(LlmError::Decode {
            detail: format!("the answer has no choices: {}", body_start(body)),
        });
    };
    let message = choice.get("message").filter(|m| m.is_object());
    let content = match message {
        Some(message) => message.get("content").and_then(content_text),
        // Legacy completions shape: the text sits on the choice.
        None => choice
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let tool_arguments = message.and_then(first_tool_arguments);
    if message.is_none() && content.is_none() {
        return Err(LlmError::Decode {
            detail: format!("the first choice has no message: {}", body_start(body)),
        });
    }
    if content.is_none() && tool_arguments.is_none() {
        if let Some(error) = choice.get("error").filter(|e| !e.is_null()) {
            return Err(embedded_error(error));
        }
    }
    let reasoning = message.and_then(|m| {
        ["reasoning", "reasoning_content"]
            .iter()
            .find_map(|key| m.get(*key).and_then(Value::as_str))
            .map(str::to_string)
    });
    Ok(Reply {
        content,
        tool_arguments,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        reasoning,
        usage: object
            .get("usage")
            .and_then(Value::as_object)
            .map(|usage| read_usage(usage, body)),
    })
}

/// `message.content` as text: a string, or the text parts of a content-part array
/// joined; `None` for null or anything else.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|part| match part {
                    Value::String(text) => Some(text.as_str()),
                    other => other.get("text").and_then(Value::as_str),
                })
                .collect();
            (!texts.is_empty()).then(|| texts.concat())
        }
        _ => None,
    }
}

/// `function.arguments` of the first tool call (or of the legacy `function_call`),
/// as text; an arguments object (some servers send one) is re-serialised.
fn first_tool_arguments(message: &Value) -> Option<String> {
    let function = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .and_then(|calls| calls.first())
        .and_then(|call| call.get("function"))
        .or_else(|| message.get("function_call"))?;
    match function.get("arguments")? {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The error an `error` object inside a 2xx body describes. Its `code` is used as the
/// HTTP status when it is one (400..=599); otherwise it counts as a 502 (the upstream
/// model failed).
fn embedded_error(error: &Value) -> LlmError {
    let code = error
        .get("code")
        .and_then(|code| {
            code.as_u64()
                .or_else(|| code.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..=599).contains(code))
        .unwrap_or(502);
    let error_body = json!({"error": error}).to_string();
    classify(code, None, error_body.as_bytes())
}

/// Token counts (when they are unsigned integers that fit) and `cost` from its own
/// digits.
fn read_usage(usage: &Map<String, Value>, body: &[u8]) -> Usage {
    let tokens = |key: &str| {
        usage
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    Usage {
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
        total_tokens: tokens("total_tokens"),
        cost_usd: raw_cost(body),
    }
}

#[derive(Deserialize)]
struct CostWire<'a> {
    #[serde(borrow)]
    usage: Option<UsageCostWire<'a>>,
}

#[derive(Deserialize)]
struct UsageCostWire<'a> {
    #[serde(borrow)]
    cost: Option<&'a RawValue>,
}

/// `usage.cost` parsed from the literal text of the number (or of a string holding
/// one), so `0.0042` is exactly 0.0042; `None` when absent or not a number.
fn raw_cost(body: &[u8]) -> Option<Decimal> {
    let wire: CostWire<'_> = serde_json::from_slice(body).ok()?;
    let raw = wire.usage?.cost?.get().trim();
    let text = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw)
        .trim();
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// Reads a `Retry-After` value: whole or fractional seconds, or an HTTP date (a date
/// in the past means "now"). Anything longer than a day counts as a day.
pub(super) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(RETRY_AFTER_LIMIT));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(
                Duration::try_from_secs_f64(secs)
                    .unwrap_or(RETRY_AFTER_LIMIT)
                    .min(RETRY_AFTER_LIMIT),
            );
        }
        return None;
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - now;
    Some(
        wait.to_std()
            .unwrap_or(Duration::ZERO)
            .min(RETRY_AFTER_LIMIT),
    )
}

/// The body as lossy UTF-8, at most `cap` bytes of it; a cut body ends with a note
/// saying how large it was.
pub(super) fn capped_text(body: &[u8], cap: usize) -> String {
    let kept = body.get(..cap).unwrap_or(body);
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if kept.len() < body.len() {
        text.push_str(&format!("…[truncated: {} bytes in total]", body.len()));
    }
    text
}

/// The start of a body, for decode errors.
fn body_start(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body.get(..1024).unwrap_or(body));
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "empty body".to_string()
    } else {
        snippet(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::client::LlmRetryPolicy;
    use crate::secret::Secret;
    use rust_decimal_macros::dec;

    fn endpoint(structured_output: StructuredOutput) -> LlmEndpoint {
        LlmEndpoint {
            base_url: "https://openrouter.ai/api/v1".into(),
            api_key: Secret::new("sk-or-v1-test"),
            model: "x-ai/grok-4".into(),
            temperature: 0.2,
            max_tokens: 2000,
            structured_output,
            app_url: None,
            app_title: None,
            retry: LlmRetryPolicy::default(),
        }
    }

    fn messages() -> Vec<ChatMessage> {
        vec![ChatMessage::system("rules"), ChatMessage::user("snapshot")]
    }

    #[test]
    fn the_schema_goes_in_strict_json_schema_or_a_forced_tool() {
        let schema = json!({"type": "object"});
        let body = request_body(
            &endpoint(StructuredOutput::JsonSchema),
            &messages(),
            Some(&schema),
        );
        assert_eq!(
            body,
            json!({
                "model": "x-ai/grok-4",
                "messages": [{"role": "system", "content": "rules"},
                             {"role": "user", "content": "snapshot"}],
                "temperature": 0.2,
                "max_tokens": 2000,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "trade_decisions", "strict": true, "schema": {"type": "object"}}},
                "usage": {"include": true}
            })
        );

        let body = request_body(
            &endpoint(StructuredOutput::ToolCall),
            &messages(),
            Some(&schema),
        );
        assert_eq!(body["tools"][0]["function"]["parameters"], schema);
        assert_eq!(body["tool_choice"]["function"]["name"], "trade_decisions");
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn weaker_modes_send_json_object_or_nothing() {
        let schema = json!({"type": "object"});
        let object = request_body(
            &endpoint(StructuredOutput::JsonObject),
            &messages(),
            Some(&schema),
        );
        assert_eq!(object["response_format"], json!({"type": "json_object"}));
        let no_schema = request_body(&endpoint(StructuredOutput::JsonSchema), &messages(), None);
        assert_eq!(no_schema["response_format"], json!({"type": "json_object"}));
        let none = request_body(
            &endpoint(StructuredOutput::None),
            &messages(),
            Some(&schema),
        );
        assert!(none.get("response_format").is_none());
        assert!(none.get("tools").is_none());
        assert_eq!(none["usage"], json!({"include": true}));
    }

    #[test]
    fn a_completion_gives_content_reasoning_and_usage_with_exact_cost() {
        let body = br#"{"id":"gen-1","model":"x-ai/grok-4","choices":[{"index":0,
            "finish_reason":"stop","message":{"role":"assistant",
            "content":"{\"trade_decisions\":[]}","reasoning":"thought"}}],
            "usage":{"prompt_tokens":1234,"completion_tokens":321,"total_tokens":1555,
            "cost":0.000123456789012345678}}"#;
        let reply = parse_reply(body).unwrap();
        assert_eq!(reply.content.as_deref(), Some(r#"{"trade_decisions":[]}"#));
        assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
        assert_eq!(reply.reasoning.as_deref(), Some("thought"));
        assert_eq!(
            reply.usage,
            Some(Usage {
                prompt_tokens: Some(1234),
                completion_tokens: Some(321),
                total_tokens: Some(1555),
                cost_usd: Some(dec!(0.000123456789012345678)),
            })
        );
    }

    #[test]
    fn cost_is_read_from_its_digits_in_any_notation() {
        let cost = |raw: &str| {
            raw_cost(format!(r#"{{"choices":[],"usage":{{"cost":{raw}}}}}"#).as_bytes())
        };
        assert_eq!(cost("0.1"), Some(dec!(0.1)));
        assert_eq!(cost("4.2e-3"), Some(dec!(0.0042)));
        assert_eq!(cost(r#""0.0042""#), Some(dec!(0.0042)));
        assert_eq!(cost("0"), Some(dec!(0)));
        assert_eq!(cost("null"), None);
        assert_eq!(cost(r#"{"x":1}"#), None);
        assert_eq!(raw_cost(br#"{"usage":{"prompt_tokens":3}}"#), None);
        assert_eq!(raw_cost(br#"{"usage":7}"#), None);
    }

    #[test]
    fn null_content_tool_calls_and_content_parts_are_answers() {
        let reply = parse_reply(
            br#"{"choices":[{"finish_reason":"length","message":{"content":null,"reasoning_content":"hmm"}}]}"#,
        )
        .unwrap();
        assert_eq!(reply.content, None);
        assert_eq!(reply.finish_reason.as_deref(), Some("length"));
        assert_eq!(reply.reasoning.as_deref(), Some("hmm"));
        assert_eq!(reply.usage, None);

        let reply = parse_reply(
            br#"{"choices":[{"finish_reason":"tool_calls","message":{"content":null,
            "tool_calls":[{"id":"c1","type":"function","function":{"name":"trade_decisions",
            "arguments":"{\"trade_decisions\":[]}"}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            reply.tool_arguments.as_deref(),
            Some(r#"{"trade_decisions":[]}"#)
        );

        let reply = parse_reply(
            br#"{"choices":[{"message":{"content":[{"type":"text","text":"{\"a\":"},{"type":"text","text":"1}"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(reply.content.as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn anything_but_a_completion_is_a_decode_error() {
        for body in [
            &b"<html>oops</html>"[..],
            b"",
            b"[1,2]",
            br#"{"id":"gen-1","choices":[]}"#,
            br#"{"id":"gen-1"}"#,
            br#"{"choices":[{"index":0}]}"#,
            &[0xff, 0xfe, 0x00][..],
        ] {
            let err = parse_reply(body).unwrap_err();
            assert!(
                matches!(err, LlmError::Decode { .. }),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_error_inside_a_200_is_classified_by_its_code() {
        let err =
            parse_reply(br#"{"error":{"code":502,"message":"upstream overloaded"}}"#).unwrap_err();
        assert_eq!(
            err,
            LlmError::Server {
                status: 502,
                message: "upstream overloaded".into()
            }
        );
        assert!(err.is_retryable());
        let err =
            parse_reply(br#"{"error":{"code":"context_length_exceeded","message":"too long"}}"#)
                .unwrap_err();
        assert!(matches!(err, LlmError::Server { status: 502, .. }), "{err}");
        let err = parse_reply(
            br#"{"choices":[{"finish_reason":"error","message":{"content":null},"error":{"code":429,"message":"slow down"}}]}"#,
        )
        .unwrap_err();
        assert_eq!(err, LlmError::RateLimited { retry_after: None });
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999", now),
            Some(RETRY_AFTER_LIMIT)
        );
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn kept_bodies_are_capped_with_a_note() {
        assert_eq!(capped_text(b"abc", 10), "abc");
        assert_eq!(
            capped_text(b"abcdef", 3),
            "abc…[truncated: 6 bytes in total]"
        );
        // Cutting inside a UTF-8 character stays valid text.
        let text = capped_text("é".as_bytes(), 1);
        assert!(text.starts_with('\u{fffd}'), "{text}");
    }
}
