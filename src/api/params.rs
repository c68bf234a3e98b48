//! Request screening: what every request must satisfy before a handler (or the database)
//! sees it, and the JSON shape of every refusal.
//!
//! Entry points: [`screen`] (middleware around every route), [`ROUTES`] (each route's
//! methods and accepted query parameters), [`method_not_allowed`] (the 405 of the
//! default service), [`check_request`] (the pure check, unit-tested).
//!
//! Invariants:
//! - A URI longer than [`MAX_URI_BYTES`] is a 414, more than [`MAX_HEADERS`] headers or
//!   more than [`MAX_HEADER_BYTES`] of them a 431, both JSON. actix's HTTP/1 codec
//!   answers before any service runs, with an empty body, when a request is beyond its own
//!   fixed limits (a URI of 65,534 bytes or more, or more than 96 headers: bare 400; a
//!   request head of 128 KiB or more: bare 431); ours are well below them, so every
//!   request the codec lets through gets a JSON refusal. This is documented in
//!   docs/api.md as the one exception to "every refusal is JSON".
//! - Every path segment and every query parameter is strictly percent-decoded: a bad
//!   escape, bytes that are not UTF-8, a NUL or another control character is a 400
//!   naming the parameter (`path parameter id`, `query parameter symbol`). Nothing that
//!   PostgreSQL would refuse as text ever reaches a query.
//! - A route listed in [`ROUTES`] accepts only its own query parameters: any other is a
//!   400 naming it and the accepted ones; a repeated parameter is a 400. `limit` is an
//!   integer in `1..=1000`, `offset` an integer `>= 0`, `lines` in `1..=10000`,
//!   `since`/`until` RFC 3339 times between years 0001 and 9999 (PostgreSQL's range is
//!   wider; the API's is the one RFC 3339 writes), `since` not after `until`.
//!   A method/path pair that is not listed is not screened for parameters (its handler's
//!   own extractor still refuses unknown fields).
//! - A path that exists with another method is a 405 with `Allow` (from [`ROUTES`]).
//! - Every error response that leaves the service without a JSON body (actix's own
//!   extractor and handshake refusals) is rewritten to `{"error":{"code","message"}}`
//!   with the same status; a 5xx says only what failed, the detail goes to the log.

use crate::api::error::ApiError;
use crate::api::MAX_LIMIT;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Datelike, FixedOffset};

/// Longest request target (path and query) the API reads, bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers the API reads.
pub const MAX_HEADERS: usize = 64;
/// Most bytes of request header names and values together.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest query parameter value, bytes (ids, symbols and times are far shorter).
pub const MAX_VALUE_BYTES: usize = 256;
/// Largest `lines` of `/logs`.
pub const MAX_LOG_LINES: i64 = 10_000;

/// One route: method, pattern (as registered) and the query parameters it reads.
#[derive(Debug)]
pub struct RouteRule {
    /// HTTP method.
    pub method: Method,
    /// Pattern as registered with actix (`/orders/{id}`).
    pub pattern: &'static str,
    /// Query parameters the handler reads; any other is refused.
    pub query: &'static [&'static str],
    /// Whether the handler reads a request body; a route that reads none refuses one
    /// rather than ignore it.
    pub body: bool,
}

/// The parameters every list reads.
const LIST: &[&str] = &["account_id", "symbol", "asset", "since", "until", "limit"];

/// [`LIST`] and a route's own parameters.
macro_rules! params {
    ($($extra:literal),*) => {
        &["account_id", "symbol", "asset", "since", "until", "limit", $($extra),*]
    };
}

const fn get(pattern: &'static str, query: &'static [&'static str]) -> RouteRule {
    RouteRule {
        method: Method::GET,
        pattern,
        query,
        body: false,
    }
}

const fn rule(method: Method, pattern: &'static str, query: &'static [&'static str]) -> RouteRule {
    RouteRule {
        method,
        pattern,
        query,
        body: false,
    }
}

const fn with_body(method: Method, pattern: &'static str) -> RouteRule {
    RouteRule {
        method,
        pattern,
        query: &[],
        body: true,
    }
}

/// Every route of the API with the query parameters its handler reads. Keep in step with
/// `api::configure` (and the control routes): a route missing here is not screened for
/// unknown parameters and its 405 carries no `Allow`.
pub const ROUTES: &[RouteRule] = &[
    get("/health", &[]),
    get("/status", &["limit", "offset"]),
    get("/accounts", &["limit", "offset"]),
    get("/accounts/{id}", &[]),
    get("/accounts/{id}/status", &[]),
    get("/positions", params!("status")),
    get("/orders", params!("status")),
    get("/orders/{id}", &[]),
    get("/trades", LIST),
    get("/decisions", params!("status", "action")),
    get("/decisions/{id}", &[]),
    get("/diary", params!("action", "format")),
    get("/income", params!("kind")),
    get("/reconciliation", params!("kind")),
    get("/market-data", &["account_id", "symbol", "asset", "limit"]),
    get("/logs", &["file", "lines", "download"]),
    // `api_key` is read by the gate (browsers cannot set headers on an upgrade).
    get("/ws/{channel}", &["account_id", "api_key"]),
    // The control routes.
    with_body(Method::POST, "/accounts"),
    rule(Method::DELETE, "/accounts/{id}", &["close_positions"]),
    rule(Method::POST, "/accounts/{id}/pause", &[]),
    rule(Method::POST, "/accounts/{id}/resume", &[]),
    rule(Method::POST, "/accounts/{id}/close-all", &[]),
    with_body(Method::POST, "/kill-switch"),
    rule(Method::DELETE, "/kill-switch", &[]),
    rule(Method::POST, "/config/reload", &[]),
    get("/audit", &["account_id", "kind", "since", "until", "limit"]),
];

/// The rule of a method on a pattern, if listed.
pub fn rule_of(method: &Method, pattern: &str) -> Option<&'static RouteRule> {
    ROUTES
        .iter()
        .find(|r| r.method == *method && r.pattern == pattern)
}

/// The methods listed for a pattern, each once (the `Allow` of a 405).
pub fn allowed_methods(pattern: &str) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = Vec::new();
    for r in ROUTES.iter().filter(|r| r.pattern == pattern) {
        if !methods.contains(&r.method.as_str()) {
            methods.push(r.method.as_str());
        }
    }
    methods
}

/// Strict percent-decoding: `%` must be followed by two hex digits; `plus_is_space`
/// for query strings (`application/x-www-form-urlencoded`). Returns the bytes.
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<Vec<u8>, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(|| {
                    "a '%' not followed by two hexadecimal digits (bad percent-encoding)"
                        .to_string()
                })?;
                let text = std::str::from_utf8(hex).unwrap_or("");
                let byte = u8::from_str_radix(text, 16).map_err(|_| {
                    format!("bad percent-encoding %{} (a '%' must be followed by two hexadecimal digits)",
                        String::from_utf8_lossy(hex))
                })?;
                out.push(byte);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Decodes one parameter and refuses what no parameter may hold.
fn decode_text(raw: &str, plus_is_space: bool, what: &str) -> Result<String, ApiError> {
    let bytes = percent_decode(raw, plus_is_space)
        .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(format!("{what} is not valid UTF-8")))?;
    if text.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "{what} contains a NUL character"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} contains a control character"
        )));
    }
    Ok(text)
}

/// Checks the path segments against `pattern` (when the path matched one): each segment
/// decodes strictly; a segment under `{name}` is named in the refusal.
fn check_path(raw_path: &str, pattern: Option<&str>) -> Result<(), ApiError> {
    let names: Vec<&str> = pattern.map(|p| p.split('/').collect()).unwrap_or_default();
    for (i, seg) in raw_path.split('/').enumerate() {
        let what = match names.get(i) {
            Some(n) if n.starts_with('{') && n.ends_with('}') => {
                format!("path parameter {}", &n[1..n.len() - 1])
            }
            _ => "the path".to_string(),
        };
        let text = decode_text(seg, false, &what)?;
        if text.len() > MAX_VALUE_BYTES {
            return Err(ApiError::bad_request(format!(
                "{what} is longer than {MAX_VALUE_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

fn parse_int(name: &str, value: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    let n: i64 = value.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "query parameter {name} must be an integer between {min} and {max}, got {value:?}"
        ))
    })?;
    if !(min..=max).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "query parameter {name} must be between {min} and {max}, got {n}"
        )));
    }
    Ok(n)
}

fn parse_time(name: &str, value: &str) -> Result<DateTime<FixedOffset>, ApiError> {
    let t: DateTime<FixedOffset> = value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "query parameter {name} must be an RFC 3339 time like 2026-01-31T00:00:00Z, got \
             {value:?}"
        ))
    })?;
    let year = t.naive_utc().year();
    if !(1..=9999).contains(&year) {
        return Err(ApiError::bad_request(format!(
            "query parameter {name} is out of range (years 0001 to 9999), got {value:?}"
        )));
    }
    Ok(t)
}

/// The pure check of one request: target length, headers, path and query. `pattern` is
/// the registered pattern the path matched, if any.
pub fn check_request(
    method: &Method,
    target_len: usize,
    raw_path: &str,
    raw_query: &str,
    header_count: usize,
    header_bytes: usize,
    pattern: Option<&str>,
) -> Result<(), ApiError> {
    if target_len > MAX_URI_BYTES {
        return Err(ApiError {
            status: StatusCode::URI_TOO_LONG,
            code: "uri_too_long",
            message: format!(
                "the request target is {target_len} bytes; at most {MAX_URI_BYTES} are read"
            ),
        });
    }
    if header_count > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code: "headers_too_large",
            message: format!(
                "the request has {header_count} headers of {header_bytes} bytes; at most \
                 {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes are read"
            ),
        });
    }
    check_path(raw_path, pattern)?;
    let accepted = pattern.and_then(|p| rule_of(method, p)).map(|r| r.query);
    let mut seen: Vec<String> = Vec::new();
    let mut since = None;
    let mut until = None;
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_text(raw_name, true, "a query parameter name")?;
        let what = format!("query parameter {name}");
        let value = decode_text(raw_value, true, &what)?;
        if let Some(accepted) = accepted {
            if !accepted.contains(&name.as_str()) {
                let list = if accepted.is_empty() {
                    "none".to_string()
                } else {
                    accepted.join(", ")
                };
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {name:?} for {method} {}; accepted: {list}",
                    pattern.unwrap_or_default()
                )));
            }
        }
        if seen.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name} is given more than once"
            )));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(ApiError::bad_request(format!(
                "{what} is longer than {MAX_VALUE_BYTES} bytes"
            )));
        }
        match name.as_str() {
            "limit" => {
                parse_int(&name, &value, 1, MAX_LIMIT)?;
            }
            "offset" => {
                parse_int(&name, &value, 0, i64::from(i32::MAX))?;
            }
            "lines" => {
                parse_int(&name, &value, 1, MAX_LOG_LINES)?;
            }
            "since" => since = Some(parse_time(&name, &value)?),
            "until" => until = Some(parse_time(&name, &value)?),
            _ => {}
        }
        seen.push(name);
    }
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request(format!(
                "query parameter since ({s}) is after until ({u})"
            )));
        }
    }
    Ok(())
}

/// Refuses a request body on a listed route whose handler reads none (`declared`: the
/// request carries a non-empty `Content-Length` or a `Transfer-Encoding`), so a client
/// that sends one learns it was not read instead of believing it was.
pub fn check_body(method: &Method, pattern: Option<&str>, declared: bool) -> Result<(), ApiError> {
    match pattern.and_then(|p| rule_of(method, p)) {
        Some(rule) if declared && !rule.body => Err(ApiError::bad_request(format!(
            "{method} {} takes no request body; send it without one",
            rule.pattern
        ))),
        _ => Ok(()),
    }
}

/// Whether a request declares a body: a `Content-Length` above 0 or any
/// `Transfer-Encoding`.
fn declares_body(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The middleware around every route: refuses what [`check_request`] refuses, then turns
/// any error response without a JSON body into the API's JSON error.
pub async fn screen(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let pattern = req.match_pattern();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let checked = check_request(
        req.method(),
        target_len,
        req.uri().path(),
        req.uri().query().unwrap_or(""),
        req.headers().len(),
        header_bytes,
        pattern.as_deref(),
    )
    .and_then(|()| {
        check_body(
            req.method(),
            pattern.as_deref(),
            declares_body(req.headers()),
        )
    });
    if let Err(refusal) = checked {
        let (req, _) = req.into_parts();
        return Ok(ServiceResponse::new(req, refusal.error_response()));
    }
    let res = next.call(req).await?.map_into_boxed_body();
    Ok(json_refusal(res))
}

/// Rewrites an error response that is not JSON into the API's error body.
fn json_refusal(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let message = match res.response().error() {
        Some(_) if status.is_server_error() => {
            "the request could not be served; see the daemon's log".to_string()
        }
        Some(e) => e.to_string(),
        None => status.canonical_reason().unwrap_or("refused").to_string(),
    };
    let refusal = ApiError {
        status,
        code: code_of(status),
        message,
    };
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut response = refusal.error_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    ServiceResponse::new(req, response)
}

/// The machine-readable code of a status the API answers with.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        426 => "upgrade_required",
        429 => "rate_limited",
        431 => "headers_too_large",
        503 => "unavailable",
        s if s >= 500 => "internal_error",
        _ => "refused",
    }
}

/// The answer of the default service for a path that exists with other methods: 405
/// with `Allow`; `None` when the path matches no route.
pub fn method_not_allowed(req: &HttpRequest) -> Option<HttpResponse> {
    let pattern = req.match_pattern()?;
    let allowed = allowed_methods(&pattern);
    let refusal = ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: if allowed.is_empty() {
            format!("{} does not accept {}", req.path(), req.method())
        } else {
            format!(
                "{} does not accept {}; allowed: {}",
                req.path(),
                req.method(),
                allowed.join(", ")
            )
        },
    };
    let mut response = refusal.error_response();
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        if !allowed.is_empty() {
            response.headers_mut().insert(header::ALLOW, v);
        }
    }
    Some(response)
}

/// `?limit=&offset=` of `/accounts` and `/status`: one page of the accounts (default
/// the first [`MAX_LIMIT`]), so that 10,000 accounts are read in pages.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Accounts per page (1 to [`MAX_LIMIT`], default [`MAX_LIMIT`]).
    pub limit: Option<i64>,
    /// Accounts skipped (default 0).
    pub offset: Option<i64>,
}

impl PageQuery {
    /// `(offset, limit)`, clamped to the accepted ranges ([`screen`] has refused values
    /// outside them already).
    pub fn window(&self) -> (usize, usize) {
        let limit = self.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
        let offset = self.offset.unwrap_or(0).max(0);
        (
            usize::try_from(offset).unwrap_or(usize::MAX),
            usize::try_from(limit).unwrap_or(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, query: &str, pattern: Option<&str>) -> Result<(), ApiError> {
        check_request(
            &Method::GET,
            path.len() + query.len(),
            path,
            query,
            3,
            100,
            pattern,
        )
    }

    fn refusal(path: &str, query: &str, pattern: Option<&str>) -> String {
        let e = check(path, query, pattern).unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{}", e.message);
        e.message
    }

    #[test]
    fn nul_and_invalid_utf8_name_the_parameter() {
        for (p, q) in [
            ("symbol", "symbol=BTC%00"),
            ("asset", "asset=%FF"),
            ("status", "status=%C3%28"),
        ] {
            let m = refusal("/orders", q, Some("/orders"));
            assert!(m.contains(&format!("query parameter {p}")), "{m}");
        }
        let m = refusal("/orders/%00", "", Some("/orders/{id}"));
        assert!(m.contains("path parameter id"), "{m}");
        let m = refusal("/decisions/a%ZZ", "", Some("/decisions/{id}"));
        assert!(
            m.contains("path parameter id") && m.contains("percent"),
            "{m}"
        );
    }

    #[test]
    fn times_outside_the_rfc3339_years_are_refused_by_name() {
        let m = refusal("/orders", "since=-262143-01-01T00:00:00Z", Some("/orders"));
        assert!(m.contains("since"), "{m}");
        let m = refusal(
            "/trades",
            "until=%2B262142-01-01T00:00:00Z",
            Some("/trades"),
        );
        assert!(m.contains("until"), "{m}");
        assert!(check("/trades", "since=2026-01-01T00:00:00Z", Some("/trades")).is_ok());
        let m = refusal(
            "/trades",
            "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            Some("/trades"),
        );
        assert!(m.contains("after until"), "{m}");
    }

    #[test]
    fn each_route_accepts_only_its_own_parameters() {
        let m = refusal("/trades", "status=FILLED", Some("/trades"));
        assert!(m.contains("\"status\"") && m.contains("accepted"), "{m}");
        assert!(check("/orders", "status=FILLED&limit=5", Some("/orders")).is_ok());
        let m = refusal("/health", "x=1", Some("/health"));
        assert!(m.contains("accepted: none"), "{m}");
        let m = refusal("/orders", "limit=1&limit=2", Some("/orders"));
        assert!(m.contains("more than once"), "{m}");
        // An unlisted route is not screened for names.
        assert!(check("/nowhere", "x=1", None).is_ok());
    }

    #[test]
    fn limits_are_integers_in_range() {
        for q in [
            "limit=0",
            "limit=-1",
            "limit=1001",
            "limit=abc",
            "limit=99999999999999999999",
        ] {
            let m = refusal("/orders", q, Some("/orders"));
            assert!(m.contains("query parameter limit"), "{q}: {m}");
        }
        assert!(check("/orders", "limit=1000", Some("/orders")).is_ok());
    }

    #[test]
    fn long_targets_and_many_headers_are_414_and_431() {
        let e = check_request(&Method::GET, MAX_URI_BYTES + 1, "/", "", 1, 1, None).unwrap_err();
        assert_eq!(e.status.as_u16(), 414);
        let e = check_request(&Method::GET, 10, "/", "", MAX_HEADERS + 1, 10, None).unwrap_err();
        assert_eq!(e.status.as_u16(), 431);
    }

    #[test]
    fn allow_lists_each_method_once() {
        assert_eq!(allowed_methods("/kill-switch"), vec!["POST", "DELETE"]);
        assert_eq!(allowed_methods("/accounts"), vec!["GET", "POST"]);
        assert_eq!(allowed_methods("/orders"), vec!["GET"]);
    }

    #[test]
    fn a_body_is_refused_where_the_route_reads_none() {
        let e = check_body(&Method::POST, Some("/accounts/{id}/pause"), true).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(e.message.contains("takes no request body"), "{}", e.message);
        assert!(check_body(&Method::POST, Some("/accounts/{id}/pause"), false).is_ok());
        assert!(check_body(&Method::POST, Some("/accounts"), true).is_ok());
        assert!(check_body(&Method::POST, Some("/kill-switch"), true).is_ok());
        assert!(check_body(&Method::GET, Some("/orders"), true).is_err());
    }
}
