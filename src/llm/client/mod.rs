//! One client for every OpenAI-compatible chat-completions endpoint: OpenRouter (the
//! default), Ollama, vLLM, llama.cpp servers. Only the base URL, the key and a few
//! headers differ between them.
//!
//! Entry points: [`LlmClient::new`] with an [`LlmEndpoint`], then [`LlmClient::chat`]
//! with the [`ChatMessage`]s, the decision schema and the cycle's deadline. It always
//! returns a [`ChatOutcome`] — what was sent, what came back, usage and cost, latency,
//! attempts and the [`LlmError`] if it failed — which goes whole into the audit table.
//!
//! Invariants:
//! - **Deadline.** The whole call, retries and waits included, ends by the deadline
//!   given to [`LlmClient::chat`]. Each attempt may take the time left until then and
//!   no more; no attempt starts with less than [`MIN_ATTEMPT_TIME`] left.
//! - **Retries.** At most `1 + max_retries` attempts. Only timeouts, transport errors,
//!   429, 408 and 5xx are retried, after a full-jitter exponential backoff
//!   ([`LlmRetryPolicy::backoff`]) shortened to fit the deadline. A 429's
//!   `Retry-After` (seconds or HTTP date) is waited exactly when it fits before the
//!   deadline (with [`MIN_ATTEMPT_TIME`] to spare); otherwise the call stops at once
//!   with [`LlmError::RateLimited`]. 400/401/402/403/404 (any other 4xx) and decode
//!   errors are never retried.
//! - **Secrets.** The API key lives in a [`Secret`] and is only exposed to build the
//!   `Authorization` header (marked sensitive). It is never in the request body, the
//!   URL, [`ChatOutcome`], [`LlmError`] or any `Debug` output; if a provider echoes it
//!   in an answer, it is masked there too (keys of 8+ characters). No
//!   `Authorization` header at all is sent when the key is empty (local Ollama).
//! - **Bad input is a value.** Nothing the provider sends can panic: non-JSON, missing
//!   `choices`, oversized bodies, an error inside a 200 all end as an [`LlmError`] in
//!   the outcome. A `null` content (a reasoning model that ran out of tokens) is not
//!   an error: the outcome carries `content: None` and the `finish_reason`, and the
//!   parser turns it into HOLDs.
//! - Redirects are not followed (a POST must not silently become a GET, and the key
//!   must not travel to another host).

mod error;
mod wire;

pub use error::LlmError;

use crate::net::transport_detail;
use crate::secret::{Secret, MASK};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// OpenRouter's OpenAI-compatible API, the default provider.
pub const OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";

/// No attempt starts with less time than this left before the deadline: a model
/// cannot answer in less, and a doomed request only costs credits.
pub const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(250);

/// How much of a response body [`ChatOutcome::response_body`] keeps.
pub const RESPONSE_BODY_CAP: usize = 256 * 1024;

/// The largest response body read at all; a 2xx answer above it is a decode error.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Keys shorter than this are not searched for in provider texts (masking every
/// occurrence of a 3-character test key would garble messages, and such a key is
/// no real secret).
const MIN_SCRUBBED_KEY_LEN: usize = 8;

/// How the model is asked to produce JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// `response_format: {"type": "json_schema", "json_schema": {"name":
    /// "trade_decisions", "strict": true, "schema": ...}}`: the provider enforces the
    /// schema. The default; falls back to `json_object` when no schema is given.
    #[default]
    JsonSchema,
    /// `response_format: {"type": "json_object"}`: any JSON object, for models without
    /// schema support.
    JsonObject,
    /// A forced call of a `trade_decisions` function whose parameters are the schema
    /// (`tools` + `tool_choice`), the route some models follow better; the answer is
    /// in [`ChatOutcome::tool_arguments`]. Falls back to `json_object` without a schema.
    ToolCall,
    /// No `response_format`: the prompt alone asks for JSON (servers that reject the
    /// field).
    None,
}

/// How hard one call tries before giving up (always within its deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlmRetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Backoff ceiling before the first retry; doubles for each further retry.
    pub base_delay: Duration,
    /// Upper bound of any backoff. (An honoured `Retry-After` is bounded by the
    /// deadline instead.)
    pub max_delay: Duration,
}

impl Default for LlmRetryPolicy {
    /// 2 retries, 500 ms base, 8 s cap.
    fn default() -> Self {
        LlmRetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl LlmRetryPolicy {
    /// The longest wait before retry number `retry` (0 for the first retry):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        crate::backoff::ceiling(self.base_delay, self.max_delay, retry)
    }

    /// A random wait in `[0, backoff_ceiling(retry)]` ("full jitter").
    pub fn backoff(&self, retry: u32) -> Duration {
        crate::backoff::full_jitter(self.base_delay, self.max_delay, retry)
    }
}

/// Where and how one account talks to its model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmEndpoint {
    /// The API root; requests go to `{base_url}/chat/completions`
    /// ([`OPENROUTER_BASE_URL`], `http://localhost:11434/v1` for Ollama).
    pub base_url: String,
    /// The bearer key; empty for servers that need none.
    pub api_key: Secret,
    /// The model id as the provider spells it (`x-ai/grok-4`, `llama3.1:8b`).
    pub model: String,
    /// Sampling temperature, 0..=2.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Upper bound of tokens in the answer (reasoning included on some providers).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// How JSON output is requested.
    #[serde(default)]
    pub structured_output: StructuredOutput,
    /// Sent as `HTTP-Referer` (OpenRouter attribution) when set.
    #[serde(default)]
    pub app_url: Option<String>,
    /// Sent as `X-Title` (OpenRouter attribution) when set.
    #[serde(default)]
    pub app_title: Option<String>,
    /// Retry policy within a call's deadline.
    #[serde(default)]
    pub retry: LlmRetryPolicy,
}

fn default_temperature() -> f64 {
    0.2
}

fn default_max_tokens() -> u32 {
    2000
}

impl LlmEndpoint {
    /// An endpoint with the defaults: temperature 0.2, 2000 max tokens, strict JSON
    /// schema output, no attribution headers, the default retry policy.
    pub fn new(base_url: impl Into<String>, api_key: Secret, model: impl Into<String>) -> Self {
        LlmEndpoint {
            base_url: base_url.into(),
            api_key,
            model: model.into(),
            temperature: default_temperature(),
            max_tokens: default_max_tokens(),
            structured_output: StructuredOutput::default(),
            app_url: None,
            app_title: None,
            retry: LlmRetryPolicy::default(),
        }
    }
}

/// One message of the conversation sent to the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// The system prompt: rules, schema explanation, the account's constraints.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "system".into(),
            content: content.into(),
        }
    }

    /// The user turn: the market and account snapshot of this cycle.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "user".into(),
            content: content.into(),
        }
    }

    /// An earlier answer of the model (for a follow-up such as "fix this JSON").
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// Tokens and money one call used, as the provider reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// `usage.prompt_tokens`.
    pub prompt_tokens: Option<u32>,
    /// `usage.completion_tokens` (reasoning tokens included where the provider does).
    pub completion_tokens: Option<u32>,
    /// `usage.total_tokens`.
    pub total_tokens: Option<u32>,
    /// `usage.cost` in USD (OpenRouter with usage accounting), read from the number's
    /// digits; `None` elsewhere — then cost comes from the configured price table.
    pub cost_usd: Option<Decimal>,
}

/// Everything about one [`LlmClient::chat`] call, successful or not: the audit
/// record of a model interaction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatOutcome {
    /// The JSON body sent (the key is a header, never in here).
    pub request: Value,
    /// HTTP status of the last answer, if one arrived.
    pub http_status: Option<u16>,
    /// Raw text of the last answer (lossy UTF-8, at most [`RESPONSE_BODY_CAP`] bytes).
    pub response_body: Option<String>,
    /// `choices[0].message.content`; `None` when null (see `finish_reason`).
    pub content: Option<String>,
    /// `function.arguments` of the first tool call, when the model answered with one.
    pub tool_arguments: Option<String>,
    /// `choices[0].finish_reason` (`stop`, `length`, `tool_calls`...).
    pub finish_reason: Option<String>,
    /// The model's reasoning text, when the provider returns it.
    pub reasoning: Option<String>,
    /// Tokens and cost, when reported.
    pub usage: Option<Usage>,
    /// Wall time of the whole call, retries and waits included.
    #[serde(rename = "latency_ms", serialize_with = "as_millis")]
    pub latency: Duration,
    /// Requests sent (0 when the deadline left no time to send one).
    pub attempts: u32,
    /// Why the call failed; `None` when an answer was read.
    pub error: Option<LlmError>,
}

fn as_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

impl ChatOutcome {
    fn new(request: Value) -> Self {
        ChatOutcome {
            request,
            http_status: None,
            response_body: None,
            content: None,
            tool_arguments: None,
            finish_reason: None,
            reasoning: None,
            usage: None,
            latency: Duration::ZERO,
            attempts: 0,
            error: None,
        }
    }

    /// True when an answer was read (its content may still be null or invalid JSON).
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// The text to parse for decisions: the tool call's arguments when the model made
    /// one, else the content.
    pub fn reply_text(&self) -> Option<&str> {
        self.tool_arguments.as_deref().or(self.content.as_deref())
    }
}

/// A client of one OpenAI-compatible endpoint for one account. Cheap to clone (the
/// connection pool is shared).
#[derive(Clone, Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: LlmEndpoint,
    /// `{base_url}/chat/completions`.
    url: String,
    /// `Bearer <key>`, marked sensitive; `None` when the key is empty.
    authorization: Option<HeaderValue>,
    log: slog::Logger,
}

/// Checks a configured base URL and returns it without a trailing slash.
fn validate_base_url(base_url: &str) -> Result<String, LlmError> {
    let shown = |url: Option<&url::Url>| match url {
        Some(url) => {
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.set_query(None);
            shown.set_fragment(None);
            shown.to_string()
        }
        None => base_url.to_string(),
    };
    let invalid = |url: Option<&url::Url>, reason: &str| LlmError::InvalidUrl {
        url: shown(url),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(base_url.trim()).map_err(|e| invalid(None, &e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(Some(&url), "the scheme must be http or https"));
    }
    if url.host_str().map_or(true, str::is_empty) {
        return Err(invalid(Some(&url), "a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            Some(&url),
            "credentials do not belong in the URL (use api_key)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(Some(&url), "a base URL has no query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A header value from configuration text, or the setting's error.
fn header_value(setting: &str, text: &str) -> Result<HeaderValue, LlmError> {
    HeaderValue::from_bytes(text.trim().as_bytes()).map_err(|_| LlmError::InvalidSetting {
        setting: setting.to_string(),
        reason: "contains characters an HTTP header cannot carry (line breaks, control \
                 characters)"
            .to_string(),
    })
}

/// What one attempt produced.
struct Attempt {
    status: Option<u16>,
    body: Option<String>,
    result: Result<wire::Reply, LlmError>,
}

impl LlmClient {
    /// A client for `endpoint`. Fails with [`LlmError::InvalidUrl`] when the base URL
    /// is not an absolute http(s) URL without credentials, query or fragment, and with
    /// [`LlmError::InvalidSetting`] for a temperature outside 0..=2, zero `max_tokens`,
    /// an empty model, or a key/header value HTTP cannot carry.
    pub fn new(endpoint: LlmEndpoint) -> Result<LlmClient, LlmError> {
        // Someone may have pasted the key into the URL: the error must not show it.
        let base = validate_base_url(&endpoint.base_url)
            .map_err(|e| e.scrubbed(|text| scrub_key(&endpoint.api_key, text)))?;
        let invalid = |setting: &str, reason: &str| LlmError::InvalidSetting {
            setting: setting.to_string(),
            reason: reason.to_string(),
        };
        if endpoint.model.trim().is_empty() {
            return Err(invalid("model", "a model id is required"));
        }
        if !(endpoint.temperature.is_finite() && (0.0..=2.0).contains(&endpoint.temperature)) {
            return Err(invalid(
                "temperature",
                &format!("{} is outside 0..=2", endpoint.temperature),
            ));
        }
        if endpoint.max_tokens == 0 {
            return Err(invalid("max_tokens", "must be at least 1"));
        }
        let authorization = if endpoint.api_key.is_empty() {
            None
        } else {
            let mut value = header_value(
                "api_key",
                &format!("Bearer {}", endpoint.api_key.expose().trim()),
            )?;
            value.set_sensitive(true);
            Some(value)
        };
        let mut headers = HeaderMap::new();
        for (name, setting, text) in [
            ("http-referer", "app_url", &endpoint.app_url),
            ("x-title", "app_title", &endpoint.app_title),
        ] {
            if let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) {
                headers.insert(HeaderName::from_static(name), header_value(setting, text)?);
            }
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("vibex/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LlmError::Transport {
                detail: format!("could not set up the HTTP client: {}", transport_detail(e)),
            })?;
        Ok(LlmClient {
            http,
            url: format!("{base}/chat/completions"),
            endpoint,
            authorization,
            log: slog::Logger::root(slog::Discard, slog::o!()),
        })
    }

    /// The same client logging retries to `log` (warnings with model, attempt, wait
    /// and error). Without it nothing is logged.
    pub fn with_logger(mut self, log: slog::Logger) -> Self {
        self.log = log;
        self
    }

    /// The endpoint this client talks to (its key stays masked when printed).
    pub fn endpoint(&self) -> &LlmEndpoint {
        &self.endpoint
    }

    /// Asks the model once, retrying within `deadline` as the module docs describe,
    /// and returns everything about the call. Never panics and never returns early
    /// without an outcome: failures are in [`ChatOutcome::error`].
    ///
    /// `schema` is the decision JSON schema; how it is sent depends on
    /// [`LlmEndpoint::structured_output`].
    pub async fn chat(
        &self,
        messages: &[ChatMessage],
        schema: Option<&Value>,
        deadline: Instant,
    ) -> ChatOutcome {
        let started = Instant::now();
        let mut outcome = ChatOutcome::new(wire::request_body(&self.endpoint, messages, schema));
        let mut last_error: Option<LlmError> = None;
        let mut retry: u32 = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < MIN_ATTEMPT_TIME {
                outcome.error = Some(last_error.unwrap_or(LlmError::DeadlineExceeded));
                break;
            }
            outcome.attempts += 1;
            let attempt = self
                .attempt(
                    &outcome.request,
                    deadline,
                    left,
                    deadline.saturating_duration_since(started),
                )
                .await;
            outcome.http_status = attempt.status;
            outcome.response_body = attempt.body;
            let err = match attempt.result {
                Ok(reply) => {
                    outcome.content = reply.content;
                    outcome.tool_arguments = reply.tool_arguments;
                    outcome.finish_reason = reply.finish_reason;
                    outcome.reasoning = reply.reasoning;
                    outcome.usage = reply.usage;
                    outcome.error = None;
                    break;
                }
                Err(err) => err,
            };
            let Some(wait) = self.retry_wait(&err, retry, deadline) else {
                outcome.error = Some(err);
                break;
            };
            retry += 1;
            slog::warn!(self.log, "model request failed; retrying";
                "model" => &self.endpoint.model,
                "retry" => retry,
                "max_retries" => self.endpoint.retry.max_retries,
                "wait_ms" => u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "error" => %err);
            last_error = Some(err);
            tokio::time::sleep(wait).await;
        }
        outcome.latency = started.elapsed();
        outcome
    }

    /// How long to wait before retrying after `err`, or `None` to stop with it: not
    /// retryable, retries used up, or no room before the deadline. A `Retry-After` is
    /// waited as given if it fits; a backoff is shortened to fit.
    fn retry_wait(&self, err: &LlmError, retry: u32, deadline: Instant) -> Option<Duration> {
        if !err.is_retryable() || retry >= self.endpoint.retry.max_retries {
            return None;
        }
        let room = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(MIN_ATTEMPT_TIME);
        match err {
            LlmError::RateLimited {
                retry_after: Some(after),
            } => (*after <= room).then_some(*after),
            _ if room.is_zero() => None,
            _ => Some(self.endpoint.retry.backoff(retry).min(room)),
        }
    }

    /// One POST, limited to `left` and to `deadline`; reads and classifies the answer.
    /// `budget` is the whole call's time (start to deadline): an attempt that runs out of
    /// time does so at the deadline, so that is the time the model was given.
    async fn attempt(
        &self,
        request: &Value,
        deadline: Instant,
        left: Duration,
        budget: Duration,
    ) -> Attempt {
        let mut status: Option<u16> = None;
        let mut body: Option<String> = None;
        let timeout = || LlmError::Timeout { after: budget };
        let exchange = async {
            let mut builder = self.http.post(&self.url).timeout(left).json(request);
            if let Some(authorization) = &self.authorization {
                builder = builder.header(AUTHORIZATION, authorization.clone());
            }
            let failed = |e: reqwest::Error| {
                if e.is_timeout() {
                    timeout()
                } else {
                    LlmError::Transport {
                        detail: transport_detail(e),
                    }
                }
            };
            let mut response = builder.send().await.map_err(failed)?;
            let code = response.status().as_u16();
            status = Some(code);
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| wire::parse_retry_after(v, chrono::Utc::now()));
            let mut bytes: Vec<u8> = Vec::new();
            let mut oversized = false;
            while let Some(chunk) = response.chunk().await.map_err(failed)? {
                if bytes.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                    oversized = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            body = Some(self.scrub(&wire::capped_text(&bytes, RESPONSE_BODY_CAP)));
            if !(200..300).contains(&code) {
                return Err(error::classify(code, retry_after, &bytes));
            }
            if oversized {
                return Err(LlmError::Decode {
                    detail: format!(
                        "the answer is larger than {} MiB",
                        MAX_RESPONSE_BYTES / (1024 * 1024)
                    ),
                });
            }
            wire::parse_reply(&bytes)
        };
        let result = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(timeout()),
        };
        Attempt {
            status,
            body,
            result: result.map_err(|e| e.scrubbed(|text| self.scrub(text))),
        }
    }

    /// `text` with every occurrence of the API key replaced by the mask.
    fn scrub(&self, text: &str) -> String {
        scrub_key(&self.endpoint.api_key, text)
    }
}

/// `text` with every occurrence of `key` (when it has at least
/// [`MIN_SCRUBBED_KEY_LEN`] characters) replaced by the mask.
fn scrub_key(key: &Secret, text: &str) -> String {
    let key = key.expose().trim();
    if key.len() >= MIN_SCRUBBED_KEY_LEN && text.contains(key) {
        text.replace(key, MASK)
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-or-v1-0123456789abcdef";

    fn endpoint() -> LlmEndpoint {
        LlmEndpoint::new(OPENROUTER_BASE_URL, Secret::new(KEY), "x-ai/grok-4")
    }

    #[test]
    fn the_key_never_prints() {
        let mut ep = endpoint();
        ep.app_title = Some("vibex".into());
        let client = LlmClient::new(ep).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains(KEY), "{debug}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        let endpoint_json = serde_json::to_string(client.endpoint()).unwrap();
        assert!(!endpoint_json.contains(KEY), "{endpoint_json}");
        assert!(!format!("{:?}", client.endpoint()).contains(KEY));

        // A provider that echoes the key gets it masked in texts and errors.
        let echoed = format!("Incorrect API key provided: {KEY}");
        assert_eq!(client.scrub(&echoed), "Incorrect API key provided: ***");
        let err = error::classify(
            401,
            None,
            format!(r#"{{"error":{{"code":401,"message":"{echoed}"}}}}"#).as_bytes(),
        )
        .scrubbed(|t| client.scrub(t));
        assert!(!err.to_string().contains(KEY), "{err}");
        assert!(!format!("{err:?}").contains(KEY));
    }

    #[test]
    fn an_outcome_serialises_without_the_key_and_with_its_error() {
        let mut outcome = ChatOutcome::new(wire::request_body(
            &endpoint(),
            &[ChatMessage::user("hi")],
            None,
        ));
        outcome.latency = Duration::from_millis(1234);
        outcome.error = Some(LlmError::DeadlineExceeded);
        let json = serde_json::to_value(&outcome).unwrap();
        assert!(!json.to_string().contains(KEY));
        assert_eq!(json["latency_ms"], 1234);
        assert_eq!(json["error"]["kind"], "deadline_exceeded");
        assert_eq!(json["request"]["model"], "x-ai/grok-4");
    }

    #[test]
    fn base_urls_and_settings_are_checked() {
        assert_eq!(
            validate_base_url("https://openrouter.ai/api/v1/").unwrap(),
            "https://openrouter.ai/api/v1"
        );
        assert_eq!(
            validate_base_url("http://localhost:11434/v1").unwrap(),
            "http://localhost:11434/v1"
        );
        for bad in [
            "openrouter.ai/api/v1",
            "ftp://openrouter.ai",
            "https://user:sk-secret-xyz@openrouter.ai/api/v1",
            "https://openrouter.ai/api/v1?key=sk-secret-xyz",
            "",
        ] {
            let err = validate_base_url(bad).unwrap_err();
            assert!(matches!(err, LlmError::InvalidUrl { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains("sk-secret-xyz"), "{err}");
        }

        let with = |change: fn(&mut LlmEndpoint)| {
            let mut ep = endpoint();
            change(&mut ep);
            LlmClient::new(ep)
        };
        assert!(with(|_| {}).is_ok());
        let err = with(|e| e.base_url = format!("openrouter.ai/{KEY}")).unwrap_err();
        assert!(!err.to_string().contains(KEY), "{err}");
        assert!(with(|e| e.api_key = Secret::default()).is_ok());
        for (setting, change) in [
            (
                "temperature",
                (|e| e.temperature = 2.5) as fn(&mut LlmEndpoint),
            ),
            ("temperature", |e| e.temperature = f64::NAN),
            ("max_tokens", |e| e.max_tokens = 0),
            ("model", |e| e.model = " ".into()),
            ("api_key", |e| e.api_key = Secret::new("sk-abc\ndef-ghijkl")),
            ("app_title", |e| e.app_title = Some("a\r\nb".into())),
        ] {
            match with(change) {
                Err(LlmError::InvalidSetting { setting: s, reason }) => {
                    assert_eq!(s, setting);
                    assert!(!reason.contains("sk-abc"), "{reason}");
                }
                other => panic!("{setting}: {other:?}"),
            }
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let policy = LlmRetryPolicy::default();
        assert_eq!(policy.backoff_ceiling(0), Duration::from_millis(500));
        assert_eq!(policy.backoff_ceiling(1), Duration::from_secs(1));
        assert_eq!(policy.backoff_ceiling(4), Duration::from_secs(8));
        assert_eq!(policy.backoff_ceiling(40), Duration::from_secs(8));
        for retry in 0..10 {
            assert!(policy.backoff(retry) <= policy.backoff_ceiling(retry));
        }
    }

    #[test]
    fn structured_output_reads_snake_case() {
        for (text, mode) in [
            ("\"json_schema\"", StructuredOutput::JsonSchema),
            ("\"json_object\"", StructuredOutput::JsonObject),
            ("\"tool_call\"", StructuredOutput::ToolCall),
            ("\"none\"", StructuredOutput::None),
        ] {
            assert_eq!(
                serde_json::from_str::<StructuredOutput>(text).unwrap(),
                mode
            );
            assert_eq!(serde_json::to_string(&mode).unwrap(), text);
        }
    }

    #[tokio::test]
    async fn no_time_left_means_no_request() {
        let client = LlmClient::new(endpoint()).unwrap();
        let outcome = client
            .chat(
                &[ChatMessage::user("hi")],
                None,
                Instant::now() + Duration::from_millis(100),
            )
            .await;
        assert_eq!(outcome.attempts, 0);
        assert_eq!(outcome.error, Some(LlmError::DeadlineExceeded));
        assert_eq!(outcome.http_status, None);
    }
}
