//! One HTTP exchange with the venue, shared by the public and the signed clients: the
//! base URL check, the gate (weight, 429, 418), the timeout, and the translation of a
//! non-2xx answer into a [`VenueError`].
//!
//! Entry points: [`VenueHttp::new`], [`VenueHttp::send`].
//!
//! Invariants: every request passes the base URL's [`VenueGate`] first and reports its
//! answer to it; errors name the endpoint path, never the URL with its query (signed
//! queries carry signatures); a transport failure says whether the request may have
//! reached the venue ([`Sent`]), which is what decides whether an order's outcome is
//! unknown.

use crate::exchange::error::VenueError;
use crate::net::transport_detail;
use reqwest::header::HeaderMap;
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;

use super::gate::VenueGate;
use super::market::RetryPolicy;
use super::wire;

/// Header in which the venue reports the IP's request weight used this minute.
pub const USED_WEIGHT_HEADER: &str = "x-mbx-used-weight-1m";

/// Header carrying the API key of HMAC-signed requests.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";

/// Whether a failed request may have reached the venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The connection was never made: nothing reached the venue.
    No,
    /// The request may have been received (timeout, reset, error status).
    Maybe,
}

/// An HTTP client for one venue base URL, behind that URL's shared gate.
#[derive(Clone, Debug)]
pub struct VenueHttp {
    client: reqwest::Client,
    base: String,
    gate: Arc<VenueGate>,
    timeout: Duration,
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// GET, POST, PUT or DELETE.
    pub method: Method,
    /// Path (`/fapi/v1/order`), also the name errors use.
    pub path: &'a str,
    /// Already encoded parameters: the query string for GET/DELETE, the form body for
    /// POST/PUT.
    pub encoded: &'a str,
    /// `X-MBX-APIKEY` value, for HMAC-signed or keyed requests.
    pub api_key: Option<&'a str>,
    /// The endpoint's request weight.
    pub weight: u32,
    /// The longest the gate may hold this request back.
    pub max_wait: Duration,
}

/// Checks a configured base URL and returns it without a trailing slash.
pub fn validate_base_url(base_url: &str) -> Result<String, VenueError> {
    let invalid = |reason: &str| VenueError::InvalidUrl {
        url: base_url.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().map_or(true, str::is_empty) {
        return Err(invalid("a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials do not belong in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL has no query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Reads `Retry-After` as whole seconds (the form the venue uses).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Turns a non-2xx answer into the matching [`VenueError`].
pub fn classify(
    endpoint: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> VenueError {
    let endpoint = endpoint.to_string();
    match status {
        418 => {
            return VenueError::Banned {
                endpoint,
                retry_after,
            }
        }
        429 => {
            return VenueError::RateLimited {
                endpoint,
                retry_after,
            }
        }
        _ => {}
    }
    let venue_error = serde_json::from_slice::<wire::ErrorBodyWire>(body).ok();
    match venue_error {
        Some(e) if (400..500).contains(&status) => VenueError::Api {
            endpoint,
            status,
            code: e.code,
            msg: e.msg,
        },
        Some(e) => VenueError::Http {
            endpoint,
            status,
            detail: format!("code {}: {}", e.code, e.msg),
        },
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            VenueError::Http {
                endpoint,
                status,
                detail: if text.is_empty() {
                    "empty body".to_string()
                } else {
                    wire::snippet(&text)
                },
            }
        }
    }
}

impl VenueHttp {
    /// A client for `base_url` with a per-request `timeout`, sharing the URL's gate.
    pub fn new(base_url: &str, timeout: Duration) -> Result<VenueHttp, VenueError> {
        let base = validate_base_url(base_url)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("vibex/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| VenueError::Transport {
                endpoint: "(client setup)".to_string(),
                detail: transport_detail(e),
            })?;
        let gate = VenueGate::for_base_url(&base);
        Ok(VenueHttp {
            client,
            base,
            gate,
            timeout,
        })
    }

    /// The base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The shared gate of the base URL.
    pub fn gate(&self) -> &Arc<VenueGate> {
        &self.gate
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request (no retry) and returns the body of a 2xx answer. A failure
    /// comes with whether the request may have reached the venue.
    pub async fn send(&self, req: Request<'_>) -> Result<Vec<u8>, (VenueError, Sent)> {
        self.gate
            .pass(req.path, req.weight, req.max_wait)
            .await
            .map_err(|e| (e, Sent::No))?;
        let body_in_query = req.method == Method::GET || req.method == Method::DELETE;
        let url = if body_in_query && !req.encoded.is_empty() {
            format!("{}{}?{}", self.base, req.path, req.encoded)
        } else {
            format!("{}{}", self.base, req.path)
        };
        let mut builder = self.client.request(req.method.clone(), url);
        if let Some(key) = req.api_key {
            builder = builder.header(API_KEY_HEADER, key);
        }
        if !body_in_query {
            builder = builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(req.encoded.to_string());
        }
        let failed = |e: reqwest::Error| {
            let sent = if e.is_connect() {
                Sent::No
            } else {
                Sent::Maybe
            };
            let err = if e.is_timeout() {
                VenueError::Timeout {
                    endpoint: req.path.to_string(),
                    timeout: self.timeout,
                }
            } else {
                VenueError::Transport {
                    endpoint: req.path.to_string(),
                    detail: transport_detail(e),
                }
            };
            (err, sent)
        };
        let response = builder.send().await.map_err(failed)?;
        let weight = response
            .headers()
            .get(USED_WEIGHT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        self.gate.observe(status, weight, retry_after);
        let body = response.bytes().await.map_err(failed)?;
        if (200..300).contains(&status) {
            Ok(body.to_vec())
        } else {
            Err((classify(req.path, status, retry_after, &body), Sent::Maybe))
        }
    }
}

/// Runs `attempt` until it succeeds, with the retry policy of public, repeatable
/// requests: retries (exponential backoff, full jitter) for transport errors, timeouts,
/// 5xx and 429 (waiting its `Retry-After`, or giving up when that is longer than
/// [`RetryPolicy::max_delay`]); 418 and other 4xx are returned at once. Retries are
/// logged as warnings on `log`. Not for order placement: see the trade client.
pub async fn retrying<F, Fut>(
    policy: &RetryPolicy,
    log: &slog::Logger,
    endpoint: &str,
    mut attempt: F,
) -> Result<Vec<u8>, VenueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, (VenueError, Sent)>>,
{
    let mut retry = 0;
    loop {
        let err = match attempt().await {
            Ok(body) => return Ok(body),
            Err((err, _)) => err,
        };
        let Some(wait) = retry_wait(policy, &err, retry) else {
            return Err(err);
        };
        retry += 1;
        log_retry(log, endpoint, retry, policy, wait, &err);
        tokio::time::sleep(wait).await;
    }
}

/// How long to wait before retry number `retry` (0 = first) of a repeatable request
/// that failed with `err`, or `None` to give up: not retryable, retries used up, or a
/// `Retry-After` longer than the policy's `max_delay`.
pub fn retry_wait(policy: &RetryPolicy, err: &VenueError, retry: u32) -> Option<Duration> {
    if retry >= policy.max_retries {
        return None;
    }
    match err {
        VenueError::RateLimited {
            retry_after: Some(after),
            ..
        } => (*after <= policy.max_delay).then_some(*after),
        e if e.is_retryable() => Some(policy.backoff(retry)),
        _ => None,
    }
}

/// The warning every retry writes.
pub fn log_retry(
    log: &slog::Logger,
    endpoint: &str,
    retry: u32,
    policy: &RetryPolicy,
    wait: Duration,
    err: &VenueError,
) {
    slog::warn!(log, "venue request failed; retrying";
        "endpoint" => endpoint,
        "retry" => retry,
        "max_retries" => policy.max_retries,
        "wait_ms" => u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "error" => %err);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            validate_base_url("https://fapi.asterdex.com/").unwrap(),
            "https://fapi.asterdex.com"
        );
        assert_eq!(
            validate_base_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "fapi.asterdex.com",
            "ftp://fapi.asterdex.com",
            "https://key:secret@fapi.asterdex.com",
            "https://fapi.asterdex.com/?x=1",
            "",
        ] {
            let err = validate_base_url(bad).unwrap_err();
            assert!(matches!(err, VenueError::InvalidUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn answers_are_classified_like_the_venue_means_them() {
        let e = classify(
            "/fapi/v1/klines",
            400,
            None,
            br#"{"code":-1121,"msg":"Invalid symbol."}"#,
        );
        assert_eq!(e.venue_code(), Some(-1121));
        assert!(!e.is_retryable());

        let e = classify(
            "/fapi/v1/time",
            503,
            None,
            br#"{"code":-1001,"msg":"Internal error."}"#,
        );
        assert!(matches!(e, VenueError::Http { status: 503, .. }));
        assert!(e.to_string().contains("code -1001: Internal error."), "{e}");
        assert!(e.is_retryable());

        let e = classify(
            "/fapi/v1/time",
            403,
            None,
            b"<html>\n  <body>WAF</body></html>",
        );
        assert_eq!(
            e.to_string(),
            "/fapi/v1/time: venue answered HTTP 403: <html> <body>WAF</body></html>"
        );

        let e = classify("/fapi/v1/time", 418, Some(Duration::from_secs(120)), b"");
        assert!(matches!(e, VenueError::Banned { .. }));
        let e = classify("/fapi/v1/time", 429, None, b"");
        assert!(matches!(
            e,
            VenueError::RateLimited {
                retry_after: None,
                ..
            }
        ));
    }
}
