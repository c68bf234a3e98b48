//! What can go wrong when asking a model, in words a user can act on.
//!
//! Entry points: [`LlmError`], carried by every failed
//! [`ChatOutcome`](super::ChatOutcome); [`LlmError::is_retryable`] (the client's retry
//! loop) and [`LlmError::counts_as_failure`] (the per-account circuit breaker).
//!
//! Invariants:
//! - No variant ever holds the API key: provider messages and transport details are
//!   scrubbed of it by the client before they land here (see
//!   [`LlmError::scrubbed`]), and the key is never part of a URL.
//! - Provider refusals keep the provider's own message (`error.message` of the
//!   OpenAI/OpenRouter error body), so a user can look it up.
//! - `Serialize` gives `{"kind", "message", "http_status"}`: a stable machine-readable
//!   kind for the audit table beside the human sentence.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::time::Duration;

/// The longest provider message (in characters) kept in an error.
const MESSAGE_LIMIT: usize = 300;

/// A failed call to an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The configured base URL cannot be used (not http/https, no host, credentials,
    /// query or fragment).
    #[error("invalid model base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured (without credentials or query when it could be read).
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// Another endpoint setting cannot be used (a temperature outside 0..=2, a key or
    /// header value with characters HTTP does not allow...).
    #[error("invalid model setting {setting}: {reason}")]
    InvalidSetting {
        /// The setting's name (`temperature`, `api_key`, `app_title`...).
        setting: String,
        /// Why it was refused (never the secret value itself).
        reason: String,
    },

    /// No complete answer arrived by the call's deadline.
    #[error("no complete answer from the model within {}", seconds(*after))]
    Timeout {
        /// The time the call had, from its start to its deadline (the configured
        /// timeout, or less when the market data was already old).
        after: Duration,
    },

    /// The deadline left less than the minimum attempt time before the first
    /// attempt: the model was not asked at all.
    #[error("the decision deadline left no time to ask the model")]
    DeadlineExceeded,

    /// HTTP 429, and either the retries are used up or the provider's `Retry-After`
    /// does not fit before the deadline.
    #[error("rate limited by the model provider (HTTP 429); {}", wait_hint(*retry_after))]
    RateLimited {
        /// The provider's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// HTTP 401 or 403: the API key is missing, wrong, revoked or not allowed to use
    /// this model. Fix the key; retrying will not help.
    #[error("the model provider refused the API key (HTTP {status}): {message}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// The provider's message.
        message: String,
    },

    /// HTTP 402: the account at the provider is out of credits.
    #[error("the model provider wants payment (HTTP 402, out of credits?): {message}")]
    PaymentRequired {
        /// The provider's message.
        message: String,
    },

    /// The provider refused this request as it is (400, 404, 422, any other 4xx): an
    /// unknown model, a model that does not support the schema, a prompt too long.
    /// Retrying the same request will not help.
    #[error("the model provider refused the request (HTTP {status}): {message}")]
    BadRequest {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },

    /// The provider or the model behind it failed (5xx) or timed out on its side
    /// (408), after the retries the deadline allowed.
    #[error("the model provider failed (HTTP {status}): {message}")]
    Server {
        /// The HTTP status (or the code of an error reported inside a 200 answer).
        status: u16,
        /// The provider's message.
        message: String,
    },

    /// The request never got an HTTP answer: DNS, connection refused or reset, TLS.
    #[error("could not reach the model provider: {detail}")]
    Transport {
        /// What the network layer reported (without the URL).
        detail: String,
    },

    /// The provider answered 2xx but not with a chat completion (not JSON, no
    /// `choices`, far too large). Not retried: the caller records it and holds.
    #[error("unexpected answer from the model provider: {detail}")]
    Decode {
        /// What was wrong, with the start of the body.
        detail: String,
    },
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn wait_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("it asked to wait {}", seconds(wait)),
        None => "back off before asking again".to_string(),
    }
}

impl LlmError {
    /// True when the same request may succeed if sent again a little later:
    /// timeouts, rate limits, 5xx/408 answers and transport errors. Refusals (4xx),
    /// bad settings, decode errors and an exhausted deadline are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Timeout { .. }
            | LlmError::RateLimited { .. }
            | LlmError::Server { .. }
            | LlmError::Transport { .. } => true,
            LlmError::InvalidUrl { .. }
            | LlmError::InvalidSetting { .. }
            | LlmError::DeadlineExceeded
            | LlmError::Unauthorized { .. }
            | LlmError::PaymentRequired { .. }
            | LlmError::BadRequest { .. }
            | LlmError::Decode { .. } => false,
        }
    }

    /// True when this failure should count against the model in the per-account
    /// circuit breaker.
    ///
    /// Every error counts — a provider that keeps answering 401, 402, garbage or 503
    /// should be left alone until someone looks — except [`LlmError::DeadlineExceeded`]:
    /// it means the cycle's budget was spent before the model was asked (late market
    /// data, a slow account), which says nothing about the model.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(self, LlmError::DeadlineExceeded)
    }

    /// A stable snake_case name of the variant (`rate_limited`), for audit rows and
    /// metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::InvalidUrl { .. } => "invalid_url",
            LlmError::InvalidSetting { .. } => "invalid_setting",
            LlmError::Timeout { .. } => "timeout",
            LlmError::DeadlineExceeded => "deadline_exceeded",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::Unauthorized { .. } => "unauthorized",
            LlmError::PaymentRequired { .. } => "payment_required",
            LlmError::BadRequest { .. } => "bad_request",
            LlmError::Server { .. } => "server",
            LlmError::Transport { .. } => "transport",
            LlmError::Decode { .. } => "decode",
        }
    }

    /// The HTTP status the error came from, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            LlmError::RateLimited { .. } => Some(429),
            LlmError::PaymentRequired { .. } => Some(402),
            LlmError::Unauthorized { status, .. }
            | LlmError::BadRequest { status, .. }
            | LlmError::Server { status, .. } => Some(*status),
            LlmError::InvalidUrl { .. }
            | LlmError::InvalidSetting { .. }
            | LlmError::Timeout { .. }
            | LlmError::DeadlineExceeded
            | LlmError::Transport { .. }
            | LlmError::Decode { .. } => None,
        }
    }

    /// The same error with `scrub` applied to every free text it carries (provider
    /// messages, transport details, the URL). The client uses it to mask the API key
    /// wherever a provider or the network layer echoed it.
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> LlmError {
        match self {
            LlmError::InvalidUrl { url, reason } => LlmError::InvalidUrl {
                url: scrub(&url),
                reason: scrub(&reason),
            },
            LlmError::InvalidSetting { setting, reason } => LlmError::InvalidSetting {
                setting,
                reason: scrub(&reason),
            },
            LlmError::Unauthorized { status, message } => LlmError::Unauthorized {
                status,
                message: scrub(&message),
            },
            LlmError::PaymentRequired { message } => LlmError::PaymentRequired {
                message: scrub(&message),
            },
            LlmError::BadRequest { status, message } => LlmError::BadRequest {
                status,
                message: scrub(&message),
            },
            LlmError::Server { status, message } => LlmError::Server {
                status,
                message: scrub(&message),
            },
            LlmError::Transport { detail } => LlmError::Transport {
                detail: scrub(&detail),
            },
            LlmError::Decode { detail } => LlmError::Decode {
                detail: scrub(&detail),
            },
            other @ (LlmError::Timeout { .. }
            | LlmError::DeadlineExceeded
            | LlmError::RateLimited { .. }) => other,
        }
    }
}

impl Serialize for LlmError {
    /// `{"kind": "rate_limited", "message": "<Display>", "http_status": 429}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("LlmError", 3)?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("message", &self.to_string())?;
        s.serialize_field("http_status", &self.http_status())?;
        s.end()
    }
}

/// Turns a non-2xx answer (or an error reported inside a 2xx body, with its code as
/// `status`) into the matching [`LlmError`].
pub(super) fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> LlmError {
    let message = || provider_message(body);
    match status {
        429 => LlmError::RateLimited { retry_after },
        401 | 403 => LlmError::Unauthorized {
            status,
            message: message(),
        },
        402 => LlmError::PaymentRequired { message: message() },
        408 | 500..=599 => LlmError::Server {
            status,
            message: message(),
        },
        _ => LlmError::BadRequest {
            status,
            message: if (400..500).contains(&status) {
                message()
            } else {
                format!(
                    "unexpected HTTP status (redirects are not followed; check base_url): {}",
                    message()
                )
            },
        },
    }
}

/// The provider's words from an error body: `error.message` (OpenAI, OpenRouter)
/// plus OpenRouter's `error.metadata.raw` (the upstream provider's own text) when
/// present; `error` as a string (Ollama); top-level `message` or `detail` (vLLM,
/// FastAPI servers); otherwise the start of the body.
pub(super) fn provider_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed = serde_json::from_str::<Value>(&text).ok();
    let from_json = parsed.as_ref().and_then(|json| {
        let error = json.get("error");
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .or_else(|| error.and_then(Value::as_str))
            .or_else(|| json.get("message").and_then(Value::as_str))
            .or_else(|| json.get("detail").and_then(Value::as_str))?;
        let raw = error
            .and_then(|e| e.get("metadata"))
            .and_then(|m| m.get("raw"))
            .and_then(|raw| match raw {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .filter(|raw| !raw.trim().is_empty() && raw.as_str() != message);
        Some(match raw {
            Some(raw) => format!("{message} ({raw})"),
            None => message.to_string(),
        })
    });
    let message = from_json.unwrap_or_else(|| text.to_string());
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if message.is_empty() {
        "empty body".to_string()
    } else {
        snippet(&message)
    }
}

/// At most [`MESSAGE_LIMIT`] characters of `text`, with `…` when cut.
pub(super) fn snippet(text: &str) -> String {
    let mut out: String = text.chars().take(MESSAGE_LIMIT).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_user_must_do() {
        let body = br#"{"error":{"code":401,"message":"No auth credentials found"}}"#;
        let e = classify(401, None, body);
        assert_eq!(
            e.to_string(),
            "the model provider refused the API key (HTTP 401): No auth credentials found"
        );
        assert!(!e.is_retryable());

        assert!(matches!(
            classify(402, None, b"{}"),
            LlmError::PaymentRequired { .. }
        ));
        assert!(matches!(
            classify(403, None, b""),
            LlmError::Unauthorized { status: 403, .. }
        ));
        for status in [400, 404, 422, 413] {
            let e = classify(status, None, b"");
            assert!(matches!(e, LlmError::BadRequest { .. }), "{status}: {e}");
            assert!(!e.is_retryable());
        }
        for status in [408, 500, 502, 503, 504] {
            let e = classify(status, None, b"");
            assert!(matches!(e, LlmError::Server { .. }), "{status}: {e}");
            assert!(e.is_retryable());
        }
        let e = classify(429, Some(Duration::from_secs(3)), b"");
        assert_eq!(
            e.to_string(),
            "rate limited by the model provider (HTTP 429); it asked to wait 3.0 s"
        );
        assert!(e.is_retryable());
        let e = classify(302, None, b"");
        assert!(matches!(e, LlmError::BadRequest { status: 302, .. }));
        assert!(e.to_string().contains("check base_url"), "{e}");
    }

    #[test]
    fn provider_messages_are_read_from_every_common_error_shape() {
        assert_eq!(
            provider_message(
                br#"{"error":{"code":400,"message":"Provider returned error","metadata":{"raw":"response_format json_schema is not supported","provider_name":"X"}}}"#
            ),
            "Provider returned error (response_format json_schema is not supported)"
        );
        assert_eq!(
            provider_message(br#"{"error":"model 'llama9' not found"}"#),
            "model 'llama9' not found"
        );
        assert_eq!(
            provider_message(br#"{"object":"error","message":"bad  prompt"}"#),
            "bad prompt"
        );
        assert_eq!(
            provider_message(b"<html>\n<body>502 Bad Gateway</body></html>"),
            "<html> <body>502 Bad Gateway</body></html>"
        );
        assert_eq!(provider_message(b""), "empty body");
        let long = "x".repeat(1000);
        assert_eq!(provider_message(long.as_bytes()).chars().count(), 301);
    }

    #[test]
    fn every_error_trips_the_breaker_but_a_spent_deadline() {
        let errors = [
            LlmError::Timeout {
                after: Duration::from_secs(1),
            },
            LlmError::RateLimited { retry_after: None },
            LlmError::Unauthorized {
                status: 401,
                message: String::new(),
            },
            LlmError::PaymentRequired {
                message: String::new(),
            },
            LlmError::BadRequest {
                status: 400,
                message: String::new(),
            },
            LlmError::Server {
                status: 503,
                message: String::new(),
            },
            LlmError::Transport {
                detail: String::new(),
            },
            LlmError::Decode {
                detail: String::new(),
            },
        ];
        for e in errors {
            assert!(e.counts_as_failure(), "{e}");
        }
        assert!(!LlmError::DeadlineExceeded.counts_as_failure());
        assert!(!LlmError::DeadlineExceeded.is_retryable());
    }

    #[test]
    fn errors_serialize_as_kind_message_and_status() {
        let e = LlmError::Server {
            status: 503,
            message: "no provider available".into(),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({
                "kind": "server",
                "message": "the model provider failed (HTTP 503): no provider available",
                "http_status": 503
            })
        );
        let e = LlmError::Timeout {
            after: Duration::from_millis(2500),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap()["message"],
            "no complete answer from the model within 2.5 s"
        );
    }

    #[test]
    fn scrubbing_reaches_every_text() {
        let e = LlmError::Unauthorized {
            status: 401,
            message: "bad key sk-secret-123".into(),
        }
        .scrubbed(|t| t.replace("sk-secret-123", "***"));
        assert_eq!(
            e.to_string(),
            "the model provider refused the API key (HTTP 401): bad key ***"
        );
    }
}
