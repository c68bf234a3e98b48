//! A loopback fake of an OpenAI-compatible chat-completions server (OpenRouter's
//! shape), speaking the real wire format, for tests that must not touch the internet.
//!
//! Entry points: [`FakeLlm::start`] (an actix-web server on `127.0.0.1:0`, on its own
//! thread with its own `actix_rt::System`, so it works under any test runtime, sync or
//! async), [`FakeLlm::base_url`] (`http://127.0.0.1:PORT/api/v1`), the scripts
//! ([`FakeLlm::push`], [`FakeLlm::set_default`], [`FakeLlm::expect_key`],
//! [`FakeLlm::set_cost`]) and the record ([`FakeLlm::requests`],
//! [`FakeLlm::requests_for`], [`FakeLlm::clear`]). Dropping the value stops the server.
//!
//! Served: `POST /api/v1/chat/completions`. Each request is recorded first (every
//! header, the body as JSON, the model, arrival time), then:
//! 1. a body that is not a chat request (not JSON, no `model`, no or empty `messages`,
//!    a message without string `role`/`content`, a malformed `response_format`)
//!    answers 400 with the OpenAI error body;
//! 2. if keys are registered for the model ([`FakeLlm::expect_key`]), the request must
//!    carry `Authorization: Bearer <one of them>`, else 401; a model with no key
//!    registered accepts any key or none;
//! 3. the answer is the next one queued for the model ([`FakeLlm::push`]), else the
//!    model's default ([`FakeLlm::set_default`]), else the default for [`ANY_MODEL`],
//!    else 400 `"<model> is not a valid model ID"` (OpenRouter's words), so a test
//!    that forgot to script a model sees why.
//!
//! Other paths answer 404 with an error body (and are recorded too). Every successful
//! completion carries `usage` with token counts estimated from the sizes (about 4
//! characters a token) and `cost` when one is set for the model.

// Each test binary uses a different part of this support module.
#![allow(dead_code)]

use super::loopback::LoopbackServer;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The path prefix the fake serves under, like OpenRouter's.
pub const API_PREFIX: &str = "/api/v1";

/// Pass as the model to [`FakeLlm::set_default`] for an answer to any model that has
/// no script of its own.
pub const ANY_MODEL: &str = "*";

/// What the fake answers to one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// 200, `content` = this JSON as a string (usually `{"trade_decisions": [...]}`).
    Decisions(Value),
    /// 200, `content` = this text verbatim (fenced JSON, prose around JSON...).
    Content(String),
    /// 200, `content: null` with this `finish_reason` (`length`: a reasoning model
    /// spent its budget thinking) and some reasoning text.
    NullContent {
        /// The `finish_reason` to report.
        finish_reason: String,
    },
    /// 200, `content: null`, one tool call of `trade_decisions` with these
    /// `arguments`, `finish_reason: "tool_calls"`.
    ToolCall(String),
    /// An HTTP error: `status`, optional `Retry-After` seconds, and this body or
    /// (when `None`) the OpenAI error body `{"error":{"code":status,"message":...}}`.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` in seconds.
        retry_after: Option<u64>,
        /// The body, verbatim.
        body: Option<String>,
    },
    /// Waits `delay` (asynchronously: other requests are still served), then
    /// answers `then`.
    Slow {
        /// How long to wait before answering.
        delay: Duration,
        /// The answer after the wait.
        then: Box<Answer>,
    },
    /// 200 with these bytes as the body (not JSON).
    Garbage(Vec<u8>),
    /// 200 with exactly this JSON as the body (no `choices`, an `error` inside a 200...).
    Json(Value),
}

impl Answer {
    /// An HTTP error with the standard error body and no `Retry-After`.
    pub fn status(status: u16) -> Answer {
        Answer::Status {
            status,
            retry_after: None,
            body: None,
        }
    }

    /// 429 with `Retry-After: secs`.
    pub fn rate_limited(secs: u64) -> Answer {
        Answer::Status {
            status: 429,
            retry_after: Some(secs),
            body: None,
        }
    }

    /// `then`, after `delay`.
    pub fn slow(delay: Duration, then: Answer) -> Answer {
        Answer::Slow {
            delay,
            then: Box::new(then),
        }
    }

    /// Valid decisions holding every asset in `assets` (passes the decision schema).
    pub fn hold(assets: &[&str]) -> Answer {
        Answer::Decisions(json!({
            "trade_decisions": assets.iter().map(|asset| json!({
                "asset": asset,
                "action": "hold",
                "allocation_usd": 0,
                "tp_price": null,
                "sl_price": null,
                "exit_plan": "",
                "rationale": "fake model: nothing to do"
            })).collect::<Vec<_>>()
        }))
    }
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// When it arrived (monotonic, for measuring gaps between retries).
    pub at: Instant,
    /// When it arrived (wall clock).
    pub received_at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// Request path (`/api/v1/chat/completions`).
    pub path: String,
    /// Every header as sent, names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub raw_body: String,
    /// `body.model`, when present.
    pub model: Option<String>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Authorization` header as sent.
    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// The key of `Authorization: Bearer <key>`.
    pub fn bearer(&self) -> Option<&str> {
        self.authorization()?.strip_prefix("Bearer ")
    }

    /// `body.response_format`, when sent.
    pub fn response_format(&self) -> Option<&Value> {
        self.body.get("response_format")
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<String, VecDeque<Answer>>,
    defaults: HashMap<String, Answer>,
    keys: HashMap<String, Vec<String>>,
    costs: HashMap<String, f64>,
    requests: Vec<RecordedRequest>,
    served: u64,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not break the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The OpenAI error body.
fn error_body(status: u16, message: &str) -> String {
    json!({"error": {"code": status, "message": message}}).to_string()
}

fn error_response(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json")
        .body(error_body(status, message))
}

/// The standard message of an error status, as OpenRouter words it.
fn canned_message(status: u16) -> &'static str {
    match status {
        400 => "Provider returned error",
        401 => "No auth credentials found",
        402 => "Insufficient credits. Add more using https://openrouter.ai/credits",
        403 => "Key is not allowed to use this model",
        404 => "No endpoints found for this model",
        408 => "Request timed out",
        429 => "Rate limit exceeded: too many requests",
        500 => "Internal Server Error",
        502 => "Provider returned error: upstream overloaded",
        503 => "No available provider for this model",
        _ => "fake error",
    }
}

/// Why a body is not a chat-completions request, if it is not.
fn check_body(body: &Value) -> Result<&str, String> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or("model: a model id is required")?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages: at least one message is required")?;
    for (i, message) in messages.iter().enumerate() {
        if message.get("role").and_then(Value::as_str).is_none()
            || message.get("content").and_then(Value::as_str).is_none()
        {
            return Err(format!("messages[{i}]: role and content must be strings"));
        }
    }
    if let Some(format) = body.get("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") | Some("text") => {}
            Some("json_schema") => {
                let spec = format.get("json_schema");
                if spec
                    .and_then(|s| s.get("name"))
                    .and_then(Value::as_str)
                    .is_none()
                    || !spec
                        .and_then(|s| s.get("schema"))
                        .is_some_and(Value::is_object)
                {
                    return Err(
                        "response_format.json_schema needs a name and a schema object".into(),
                    );
                }
            }
            _ => {
                return Err("response_format.type must be json_schema, json_object or text".into())
            }
        }
    }
    Ok(model)
}

/// About 4 characters a token, at least 1.
fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// A 200 chat completion with `message`, `finish_reason` and usage.
fn completion(
    id: u64,
    model: &str,
    message: Value,
    finish_reason: &str,
    prompt_chars: usize,
    completion_chars: usize,
    cost: Option<f64>,
) -> HttpResponse {
    let prompt_tokens = tokens(prompt_chars);
    let completion_tokens = tokens(completion_chars);
    let mut usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    if let Some(cost) = cost {
        usage["cost"] = json!(cost);
    }
    let body = json!({
        "id": format!("gen-fake-{id}"),
        "provider": "Fake",
        "model": model,
        "object": "chat.completion",
        "created": Utc::now().timestamp(),
        "choices": [{
            "index": 0,
            "logprobs": null,
            "finish_reason": finish_reason,
            "native_finish_reason": finish_reason,
            "message": message,
        }],
        "usage": usage,
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string())
}

async fn chat(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    let record = RecordedRequest {
        at: Instant::now(),
        received_at: Utc::now(),
        method: req.method().to_string(),
        path: req.path().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: json.clone(),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
        model: model.clone(),
    };
    shared.state().requests.push(record);

    if req.path() != format!("{API_PREFIX}/chat/completions") || req.method() != "POST" {
        return error_response(
            404,
            &format!("no route for {} {}", req.method(), req.path()),
        );
    }
    let model = match check_body(&json) {
        Ok(model) => model.to_string(),
        Err(reason) => return error_response(400, &reason),
    };
    let prompt_chars: usize = json
        .get("messages")
        .and_then(Value::as_array)
        .map(|messages| {
            messages
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(str::len)
                .sum()
        })
        .unwrap_or(0);

    let (answer, cost, id) = {
        let mut state = shared.state();
        if let Some(keys) = state.keys.get(&model).filter(|keys| !keys.is_empty()) {
            let sent = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !sent.is_some_and(|key| keys.iter().any(|k| k == key)) {
                let message = if sent.is_some() {
                    "User not found."
                } else {
                    "No auth credentials found"
                };
                return error_response(401, message);
            }
        }
        let answer = state
            .queues
            .get_mut(&model)
            .and_then(VecDeque::pop_front)
            .or_else(|| state.defaults.get(&model).cloned())
            .or_else(|| state.defaults.get(ANY_MODEL).cloned());
        let Some(answer) = answer else {
            return error_response(400, &format!("{model} is not a valid model ID"));
        };
        state.served += 1;
        (answer, state.costs.get(&model).copied(), state.served)
    };

    let mut answer = answer;
    while let Answer::Slow { delay, then } = answer {
        actix_rt::time::sleep(delay).await;
        answer = *then;
    }
    let reply = |message: Value, finish: &str, chars: usize| {
        completion(id, &model, message, finish, prompt_chars, chars, cost)
    };
    match answer {
        Answer::Decisions(decisions) => {
            let content = decisions.to_string();
            let chars = content.len();
            reply(
                json!({"role": "assistant", "content": content, "refusal": null}),
                "stop",
                chars,
            )
        }
        Answer::Content(content) => {
            let chars = content.len();
            reply(
                json!({"role": "assistant", "content": content, "refusal": null}),
                "stop",
                chars,
            )
        }
        Answer::NullContent { finish_reason } => reply(
            json!({
                "role": "assistant",
                "content": null,
                "reasoning": "(fake) Weighing the 4h trend against the funding rate..."
            }),
            &finish_reason,
            4096,
        ),
        Answer::ToolCall(arguments) => {
            let chars = arguments.len();
            reply(
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": format!("call_fake_{id}"),
                        "index": 0,
                        "type": "function",
                        "function": {"name": "trade_decisions", "arguments": arguments}
                    }]
                }),
                "tool_calls",
                chars,
            )
        }
        Answer::Status {
            status,
            retry_after,
            body,
        } => {
            let mut response = HttpResponse::build(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            );
            if let Some(after) = retry_after {
                response.insert_header(("Retry-After", after.to_string()));
            }
            response
                .content_type("application/json")
                .body(body.unwrap_or_else(|| error_body(status, canned_message(status))))
        }
        Answer::Garbage(bytes) => HttpResponse::Ok()
            .content_type("application/json")
            .body(bytes),
        Answer::Json(value) => HttpResponse::Ok()
            .content_type("application/json")
            .body(value.to_string()),
        Answer::Slow { .. } => error_response(500, "unreachable: slow answers are unwrapped"),
    }
}

/// A running fake model server. Stops when dropped.
pub struct FakeLlm {
    base_url: String,
    shared: Arc<Shared>,
    server: LoopbackServer,
}

impl FakeLlm {
    /// Starts the fake on `127.0.0.1` with a free port, on its own thread and actix
    /// System, and returns once it accepts connections. Panics (test setup) if it
    /// cannot bind.
    pub fn start() -> FakeLlm {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        let app_shared = Arc::clone(&shared);
        let server = LoopbackServer::start("fake-llm", move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::from(Arc::clone(&app_shared)))
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(chat));
        });
        FakeLlm {
            base_url: format!("http://{}{API_PREFIX}", server.addr),
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/api/v1`, to give to a client as its base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Requests for `model` must carry `Authorization: Bearer <key>` (this key or
    /// another registered for the model), else they get 401.
    pub fn expect_key(&self, model: &str, key: &str) {
        self.shared
            .state()
            .keys
            .entry(model.to_string())
            .or_default()
            .push(key.to_string());
    }

    /// Queues `answer` for the next request for `model` (first in, first out; ahead
    /// of the default).
    pub fn push(&self, model: &str, answer: Answer) {
        self.shared
            .state()
            .queues
            .entry(model.to_string())
            .or_default()
            .push_back(answer);
    }

    /// The answer for `model` whenever its queue is empty ([`ANY_MODEL`] for every
    /// model without one).
    pub fn set_default(&self, model: &str, answer: Answer) {
        self.shared
            .state()
            .defaults
            .insert(model.to_string(), answer);
    }

    /// `usage.cost` reported for `model`'s completions; `None` (the default) omits the
    /// field, as servers other than OpenRouter do.
    pub fn set_cost(&self, model: &str, cost: Option<f64>) {
        let mut state = self.shared.state();
        match cost {
            Some(cost) => state.costs.insert(model.to_string(), cost),
            None => state.costs.remove(model),
        };
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// The requests whose body named `model`, oldest first.
    pub fn requests_for(&self, model: &str) -> Vec<RecordedRequest> {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|r| r.model.as_deref() == Some(model))
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests (scripts, keys and costs stay).
    pub fn clear(&self) {
        self.shared.state().requests.clear();
    }
}
