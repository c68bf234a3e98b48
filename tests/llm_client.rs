//! The LLM client against the loopback fake model server: what a decision actor sees
//! when the model answers, refuses, rate-limits, stalls or talks nonsense — always
//! within the cycle's deadline and never showing the key.

mod common;

use common::fake_llm::{Answer, FakeLlm};
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;
use vibex::llm::client::{
    ChatMessage, ChatOutcome, LlmClient, LlmEndpoint, LlmError, LlmRetryPolicy, StructuredOutput,
};
use vibex::secret::Secret;

const MODEL: &str = "x-ai/grok-4";
const KEY: &str = "sk-or-v1-test-key-account-a1";

/// Quick retries so failure paths finish fast.
fn quick() -> LlmRetryPolicy {
    LlmRetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    }
}

fn endpoint(base_url: &str, key: &str) -> LlmEndpoint {
    LlmEndpoint {
        retry: quick(),
        ..LlmEndpoint::new(base_url, Secret::new(key), MODEL)
    }
}

fn client(llm: &FakeLlm) -> LlmClient {
    LlmClient::new(endpoint(llm.base_url(), KEY)).unwrap()
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"trade_decisions": {"type": "array", "minItems": 1}},
        "required": ["trade_decisions"],
        "additionalProperties": false
    })
}

fn messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You trade BTC perpetuals. Answer with trade_decisions."),
        ChatMessage::user("{\"asset\":\"BTC\",\"mid_prices\":[60000.1,60010.5]}"),
    ]
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

async fn ask(client: &LlmClient, deadline: Instant) -> ChatOutcome {
    client.chat(&messages(), Some(&schema()), deadline).await
}

/// Asserts that the key shows nowhere in the outcome: fields, Debug, JSON.
fn assert_no_key(outcome: &ChatOutcome, key: &str) {
    let debug = format!("{outcome:?}");
    assert!(!debug.contains(key), "key in Debug: {debug}");
    let json = serde_json::to_string(outcome).unwrap();
    assert!(!json.contains(key), "key in JSON: {json}");
    if let Some(err) = &outcome.error {
        assert!(!err.to_string().contains(key), "key in error: {err}");
    }
}

#[tokio::test]
async fn valid_decisions_arrive_as_content_with_tokens_and_exact_cost() {
    let llm = FakeLlm::start();
    let decisions = json!({"trade_decisions": [{
        "asset": "BTC", "action": "buy", "allocation_usd": 250.5, "tp_price": 62000,
        "sl_price": 59000, "exit_plan": "close below the 4h EMA50", "rationale": "trend"
    }]});
    llm.push(MODEL, Answer::Decisions(decisions.clone()));
    llm.set_cost(MODEL, Some(0.0042));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(outcome.error, None);
    assert!(outcome.is_success());
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.http_status, Some(200));
    assert_eq!(outcome.finish_reason.as_deref(), Some("stop"));
    let content: Value = serde_json::from_str(outcome.content.as_deref().unwrap()).unwrap();
    assert_eq!(content, decisions);
    assert_eq!(outcome.reply_text(), outcome.content.as_deref());
    let usage = outcome.usage.clone().unwrap();
    assert!(usage.prompt_tokens.unwrap() > 10, "{usage:?}");
    assert!(usage.completion_tokens.unwrap() > 10, "{usage:?}");
    assert_eq!(
        usage.total_tokens,
        Some(usage.prompt_tokens.unwrap() + usage.completion_tokens.unwrap())
    );
    assert_eq!(usage.cost_usd, Some(dec!(0.0042)));
    let raw: Value = serde_json::from_str(outcome.response_body.as_deref().unwrap()).unwrap();
    assert_eq!(raw["model"], MODEL);
    assert_eq!(outcome.request["model"], MODEL);
    assert_eq!(outcome.request["usage"], json!({"include": true}));
    assert!(outcome.latency < Duration::from_secs(5));
    assert_no_key(&outcome, KEY);
}

#[tokio::test]
async fn without_a_cost_from_the_provider_cost_is_left_to_the_price_table() {
    let llm = FakeLlm::start();
    llm.set_default(MODEL, Answer::hold(&["BTC"]));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(outcome.error, None);
    let usage = outcome.usage.unwrap();
    assert!(usage.prompt_tokens.is_some());
    assert_eq!(usage.cost_usd, None);
}

#[tokio::test]
async fn the_schema_is_sent_strict_and_weaker_modes_fall_back() {
    let llm = FakeLlm::start();
    llm.set_default(MODEL, Answer::hold(&["BTC"]));
    let schema = schema();

    for mode in [
        StructuredOutput::JsonSchema,
        StructuredOutput::JsonObject,
        StructuredOutput::None,
        StructuredOutput::ToolCall,
    ] {
        let client = LlmClient::new(LlmEndpoint {
            structured_output: mode,
            temperature: 0.7,
            max_tokens: 1234,
            ..endpoint(llm.base_url(), KEY)
        })
        .unwrap();
        let outcome = client.chat(&messages(), Some(&schema), in_secs(10)).await;
        assert_eq!(outcome.error, None, "{mode:?}");
    }
    // Without a schema, json_schema mode asks for any JSON object.
    let outcome = client(&llm).chat(&messages(), None, in_secs(10)).await;
    assert_eq!(outcome.error, None);

    let sent = llm.requests_for(MODEL);
    assert_eq!(sent.len(), 5);
    for request in &sent {
        assert_eq!(request.path, "/api/v1/chat/completions");
        assert_eq!(request.body["messages"].as_array().unwrap().len(), 2);
        assert_eq!(request.body["messages"][0]["role"], "system");
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    assert_eq!(
        sent[0].response_format(),
        Some(&json!({"type": "json_schema", "json_schema": {
            "name": "trade_decisions", "strict": true, "schema": schema}}))
    );
    assert_eq!(sent[0].body["temperature"], 0.7);
    assert_eq!(sent[0].body["max_tokens"], 1234);
    assert_eq!(
        sent[1].response_format(),
        Some(&json!({"type": "json_object"}))
    );
    assert_eq!(sent[2].response_format(), None);
    assert_eq!(sent[3].response_format(), None);
    assert_eq!(sent[3].body["tools"][0]["function"]["parameters"], schema);
    assert_eq!(
        sent[3].body["tool_choice"],
        json!({"type": "function", "function": {"name": "trade_decisions"}})
    );
    assert_eq!(
        sent[4].response_format(),
        Some(&json!({"type": "json_object"}))
    );
}

#[tokio::test]
async fn each_account_sends_its_own_key_and_the_key_never_shows() {
    let llm = FakeLlm::start();
    let key_a2 = "sk-or-v1-test-key-account-a2";
    llm.expect_key(MODEL, KEY);
    llm.expect_key(MODEL, key_a2);
    llm.set_default(MODEL, Answer::hold(&["BTC"]));
    let a1 = client(&llm);
    let a2 = LlmClient::new(endpoint(llm.base_url(), key_a2)).unwrap();

    let (o1, o2) = tokio::join!(ask(&a1, in_secs(10)), ask(&a2, in_secs(10)));

    assert_eq!(o1.error, None);
    assert_eq!(o2.error, None);
    assert_no_key(&o1, KEY);
    assert_no_key(&o2, key_a2);
    let mut bearers: Vec<String> = llm
        .requests()
        .iter()
        .map(|r| r.authorization().unwrap().to_string())
        .collect();
    bearers.sort();
    assert_eq!(
        bearers,
        [format!("Bearer {KEY}"), format!("Bearer {key_a2}")]
    );
    for client in [&a1, &a2] {
        let debug = format!("{client:?}");
        assert!(!debug.contains(KEY) && !debug.contains(key_a2), "{debug}");
    }
    for request in llm.requests() {
        assert!(!request.raw_body.contains(KEY) && !request.raw_body.contains(key_a2));
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_once_and_the_error_does_not_show_it() {
    let llm = FakeLlm::start();
    llm.expect_key(MODEL, "sk-or-v1-the-right-key");
    llm.set_default(MODEL, Answer::hold(&["BTC"]));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    let err = outcome.error.clone().unwrap();
    assert!(
        matches!(err, LlmError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert_eq!(outcome.attempts, 1);
    assert_eq!(llm.requests().len(), 1);
    assert!(err.counts_as_failure());
    assert_no_key(&outcome, KEY);
    assert!(!format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn a_local_server_gets_no_authorization_and_openrouter_gets_attribution() {
    let llm = FakeLlm::start();
    llm.set_default(MODEL, Answer::hold(&["BTC"]));
    let local = LlmClient::new(endpoint(llm.base_url(), "")).unwrap();
    let attributed = LlmClient::new(LlmEndpoint {
        app_url: Some("https://github.com/vibex/vibex".into()),
        app_title: Some("vibex".into()),
        ..endpoint(llm.base_url(), KEY)
    })
    .unwrap();

    assert_eq!(ask(&local, in_secs(10)).await.error, None);
    assert_eq!(ask(&attributed, in_secs(10)).await.error, None);

    let sent = llm.requests();
    assert_eq!(sent[0].authorization(), None);
    assert_eq!(sent[0].header("http-referer"), None);
    assert_eq!(sent[1].bearer(), Some(KEY));
    assert_eq!(
        sent[1].header("http-referer"),
        Some("https://github.com/vibex/vibex")
    );
    assert_eq!(sent[1].header("x-title"), Some("vibex"));
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_waited_then_the_answer_comes() {
    let llm = FakeLlm::start();
    llm.push(MODEL, Answer::rate_limited(1));
    llm.push(MODEL, Answer::hold(&["BTC"]));
    let started = Instant::now();

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(outcome.error, None);
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.http_status, Some(200));
    let sent = llm.requests();
    assert_eq!(sent.len(), 2);
    let gap = sent[1].at.duration_since(sent[0].at);
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(outcome.latency >= Duration::from_secs(1));
}

#[tokio::test]
async fn rate_limit_longer_than_the_deadline_stops_at_once() {
    let llm = FakeLlm::start();
    llm.push(MODEL, Answer::rate_limited(30));
    llm.set_default(MODEL, Answer::hold(&["BTC"]));
    let started = Instant::now();

    let outcome = ask(&client(&llm), in_secs(5)).await;

    assert_eq!(
        outcome.error,
        Some(LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        })
    );
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.http_status, Some(429));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(llm.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_the_third_attempt_answers() {
    let llm = FakeLlm::start();
    llm.push(MODEL, Answer::status(500));
    llm.push(MODEL, Answer::status(503));
    llm.push(MODEL, Answer::hold(&["BTC"]));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(outcome.error, None);
    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.http_status, Some(200));
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test]
async fn a_provider_that_keeps_failing_gives_a_server_error_after_max_retries() {
    let llm = FakeLlm::start();
    llm.set_default(MODEL, Answer::status(500));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    match outcome.error.clone() {
        Some(LlmError::Server {
            status: 500,
            message,
        }) => {
            assert_eq!(message, "Internal Server Error")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.attempts, 3, "1 + max_retries");
    assert_eq!(llm.requests().len(), 3);
    assert_eq!(outcome.http_status, Some(500));
    assert!(outcome
        .response_body
        .as_deref()
        .unwrap()
        .contains("Internal Server Error"));
}

#[tokio::test]
async fn an_error_inside_a_200_is_retried_like_the_status_it_names() {
    let llm = FakeLlm::start();
    llm.push(
        MODEL,
        Answer::Json(json!({"error": {"code": 502, "message": "upstream died mid-answer"}})),
    );
    llm.push(MODEL, Answer::hold(&["BTC"]));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(outcome.error, None);
    assert_eq!(outcome.attempts, 2);
}

#[tokio::test]
async fn refusals_are_not_retried() {
    type IsExpected = fn(&LlmError) -> bool;
    let cases: [(u16, IsExpected); 5] = [
        (401, |e| {
            matches!(e, LlmError::Unauthorized { status: 401, .. })
        }),
        (403, |e| {
            matches!(e, LlmError::Unauthorized { status: 403, .. })
        }),
        (402, |e| matches!(e, LlmError::PaymentRequired { .. })),
        (400, |e| {
            matches!(e, LlmError::BadRequest { status: 400, .. })
        }),
        (404, |e| {
            matches!(e, LlmError::BadRequest { status: 404, .. })
        }),
    ];
    for (status, expected) in cases {
        let llm = FakeLlm::start();
        llm.set_default(MODEL, Answer::status(status));

        let outcome = ask(&client(&llm), in_secs(10)).await;

        let err = outcome.error.clone().unwrap();
        assert!(expected(&err), "{status}: {err:?}");
        assert!(!err.is_retryable());
        assert_eq!(outcome.attempts, 1, "{status}");
        assert_eq!(llm.requests().len(), 1, "{status}");
        assert_eq!(outcome.http_status, Some(status));
    }
}

#[tokio::test]
async fn a_schema_the_model_does_not_support_reads_as_the_providers_words() {
    let llm = FakeLlm::start();
    llm.push(
        MODEL,
        Answer::Status {
            status: 400,
            retry_after: None,
            body: Some(
                json!({"error": {"code": 400, "message": "Provider returned error",
                    "metadata": {"raw": "json_schema response format is not supported by this model"}}})
                .to_string(),
            ),
        },
    );

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(
        outcome.error.map(|e| e.to_string()).as_deref(),
        Some(
            "the model provider refused the request (HTTP 400): Provider returned error \
             (json_schema response format is not supported by this model)"
        )
    );
}

#[tokio::test]
async fn a_slow_model_is_cut_off_at_the_deadline() {
    let llm = FakeLlm::start();
    llm.set_default(
        MODEL,
        Answer::slow(Duration::from_secs(5), Answer::hold(&["BTC"])),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_millis(1500);

    let outcome = ask(&client(&llm), deadline).await;

    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_millis(2000),
        "{elapsed:?}"
    );
    assert!(
        matches!(
            outcome.error,
            Some(LlmError::Timeout { .. }) | Some(LlmError::DeadlineExceeded)
        ),
        "{:?}",
        outcome.error
    );
    assert!(outcome.error.as_ref().unwrap().counts_as_failure());
    assert_eq!(outcome.attempts, 1, "no time was left for a second attempt");
    assert_eq!(outcome.content, None);
}

#[tokio::test]
async fn a_slow_first_attempt_leaves_the_retry_only_the_time_that_is_left() {
    let llm = FakeLlm::start();
    llm.push(
        MODEL,
        Answer::slow(Duration::from_millis(600), Answer::status(503)),
    );
    llm.push(
        MODEL,
        Answer::slow(Duration::from_secs(5), Answer::hold(&["BTC"])),
    );
    let started = Instant::now();

    let outcome = ask(&client(&llm), started + Duration::from_secs(2)).await;

    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert!(
        matches!(outcome.error, Some(LlmError::Timeout { .. })),
        "{:?}",
        outcome.error
    );
    assert_eq!(outcome.attempts, 2);
}

#[tokio::test]
async fn a_deadline_already_spent_sends_nothing() {
    let llm = FakeLlm::start();
    llm.set_default(MODEL, Answer::hold(&["BTC"]));

    let outcome = ask(&client(&llm), Instant::now() + Duration::from_millis(200)).await;

    assert_eq!(outcome.error, Some(LlmError::DeadlineExceeded));
    assert!(!outcome.error.as_ref().unwrap().counts_as_failure());
    assert_eq!(outcome.attempts, 0);
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn garbage_bytes_are_a_decode_error_and_not_retried() {
    let llm = FakeLlm::start();
    llm.set_default(
        MODEL,
        Answer::Garbage(b"<html><body>Cloudflare says hi</body></html>\xff".to_vec()),
    );

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert!(
        matches!(outcome.error, Some(LlmError::Decode { .. })),
        "{:?}",
        outcome.error
    );
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.http_status, Some(200));
    let body = outcome.response_body.as_deref().unwrap();
    assert!(body.starts_with("<html><body>Cloudflare says hi"), "{body}");
    assert!(body.ends_with('\u{fffd}'), "lossy UTF-8: {body}");
}

#[tokio::test]
async fn an_answer_without_choices_is_a_decode_error() {
    let llm = FakeLlm::start();
    llm.set_default(MODEL, Answer::Json(json!({"id": "gen-1", "choices": []})));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    match outcome.error {
        Some(LlmError::Decode { detail }) => assert!(detail.contains("no choices"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.attempts, 1);
}

#[tokio::test]
async fn null_content_cut_by_length_is_an_answer_for_the_parser_to_hold_on() {
    let llm = FakeLlm::start();
    llm.set_default(
        MODEL,
        Answer::NullContent {
            finish_reason: "length".into(),
        },
    );

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(outcome.error, None);
    assert_eq!(outcome.content, None);
    assert_eq!(outcome.reply_text(), None);
    assert_eq!(outcome.finish_reason.as_deref(), Some("length"));
    assert!(outcome.reasoning.as_deref().unwrap().contains("funding"));
    assert!(outcome.usage.unwrap().completion_tokens.unwrap() > 0);
}

#[tokio::test]
async fn text_around_the_json_is_passed_on_verbatim() {
    let llm = FakeLlm::start();
    let text = "Here you go:\n```json\n{\"trade_decisions\": []}\n```\nGood luck!";
    llm.set_default(MODEL, Answer::Content(text.into()));

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(outcome.error, None);
    assert_eq!(outcome.content.as_deref(), Some(text));
}

#[tokio::test]
async fn the_tool_call_route_gives_the_arguments() {
    let llm = FakeLlm::start();
    let arguments = r#"{"trade_decisions":[{"asset":"BTC","action":"hold"}]}"#;
    llm.set_default(MODEL, Answer::ToolCall(arguments.into()));
    let client = LlmClient::new(LlmEndpoint {
        structured_output: StructuredOutput::ToolCall,
        ..endpoint(llm.base_url(), KEY)
    })
    .unwrap();

    let outcome = ask(&client, in_secs(10)).await;

    assert_eq!(outcome.error, None);
    assert_eq!(outcome.tool_arguments.as_deref(), Some(arguments));
    assert_eq!(outcome.content, None);
    assert_eq!(outcome.reply_text(), Some(arguments));
    assert_eq!(outcome.finish_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn an_unreachable_provider_is_a_transport_error_after_the_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener closes here: connections are refused
    let client = LlmClient::new(endpoint(&format!("http://127.0.0.1:{port}/v1"), KEY)).unwrap();

    let outcome = ask(&client, in_secs(10)).await;

    match &outcome.error {
        Some(LlmError::Transport { detail }) => {
            assert!(!detail.contains(&port.to_string()), "no URL: {detail}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome.attempts, 3);
    assert_eq!(outcome.http_status, None);
    assert_eq!(outcome.response_body, None);
}

#[tokio::test]
async fn a_model_nobody_scripted_is_refused_with_the_providers_words() {
    let llm = FakeLlm::start();

    let outcome = ask(&client(&llm), in_secs(10)).await;

    assert_eq!(
        outcome.error,
        Some(LlmError::BadRequest {
            status: 400,
            message: format!("{MODEL} is not a valid model ID")
        })
    );
}
