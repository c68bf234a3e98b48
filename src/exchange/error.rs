//! What can go wrong when talking to a venue, in words a user can act on.
//!
//! Entry point: [`VenueError`], returned by every venue client call, and
//! [`VenueError::is_retryable`], which the retry loops and the actors above them use to
//! decide between "try again later" and "fix something first".
//!
//! Invariants:
//! - Every variant (but [`VenueError::InvalidUrl`]) names the endpoint as a path
//!   (`/fapi/v1/klines`), never the full URL: query strings of signed requests carry
//!   signatures and must not reach logs.
//! - Venue refusals keep the venue's own `code` and `msg`, so a user can look them up.
//! - 418 (IP banned) and 429 (rate limited) are their own variants: the caller must stop
//!   sending, not retry harder.

use std::time::Duration;

/// A failed request to a venue (AsterDEX or any Binance-compatible futures REST API).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VenueError {
    /// The configured base URL cannot be used (not http/https, no host, has a query...).
    #[error("invalid venue base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// The request never got an HTTP answer: DNS, connection refused or reset, TLS.
    #[error("{endpoint}: could not reach the venue: {detail}")]
    Transport {
        /// Path of the endpoint (`/fapi/v1/time`).
        endpoint: String,
        /// What the network layer reported (without the URL).
        detail: String,
    },

    /// No complete answer within the configured per-request timeout.
    #[error("{endpoint}: no answer from the venue within {timeout:?}")]
    Timeout {
        /// Path of the endpoint.
        endpoint: String,
        /// The per-request timeout that elapsed.
        timeout: Duration,
    },

    /// The venue answered with an HTTP error status and no usable venue error body:
    /// 5xx (exchange-side trouble), or a 4xx such as a WAF block (403) or a wrong path
    /// (404). A 503 on an order request means the outcome is unknown: reconcile before
    /// any retry.
    #[error("{endpoint}: venue answered HTTP {status}: {detail}")]
    Http {
        /// Path of the endpoint.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The venue's message if it sent one, otherwise the start of the body.
        detail: String,
    },

    /// The venue refused the request with its own error (`{"code":-1121,"msg":"Invalid
    /// symbol."}`) on a 4xx status. Retrying the same request will not help.
    #[error("{endpoint}: venue refused the request (HTTP {status}, code {code}): {msg}")]
    Api {
        /// Path of the endpoint.
        endpoint: String,
        /// HTTP status code (400, 401, 403, 404...).
        status: u16,
        /// The venue's error code (`-1121`).
        code: i64,
        /// The venue's error message (`Invalid symbol.`).
        msg: String,
    },

    /// HTTP 429: too many requests. Wait at least `retry_after` (when the venue said)
    /// before sending again; ignoring it leads to an IP ban (418).
    #[error("{endpoint}: rate limited by the venue (HTTP 429); {}", wait_hint(*retry_after))]
    RateLimited {
        /// Path of the endpoint.
        endpoint: String,
        /// The venue's `Retry-After`, when present.
        retry_after: Option<Duration>,
    },

    /// HTTP 418: this IP is banned for ignoring 429s (from 2 minutes up to 3 days).
    /// Nothing may be sent to the venue before `retry_after`.
    #[error("{endpoint}: this IP is banned by the venue (HTTP 418); {}", wait_hint(*retry_after))]
    Banned {
        /// Path of the endpoint.
        endpoint: String,
        /// The venue's `Retry-After`, when present.
        retry_after: Option<Duration>,
    },

    /// An order request may or may not have been executed: the venue accepted the
    /// connection but the answer was a timeout, a 5xx (503 above all) or cut off.
    /// Nothing may be resent before the order is looked up by its client order id.
    #[error("{endpoint}: outcome of order {client_order_id} unknown ({detail}); it will be looked up by its client order id")]
    OutcomeUnknown {
        /// Path of the endpoint.
        endpoint: String,
        /// The order's client order id.
        client_order_id: String,
        /// What happened (timeout, HTTP 503...).
        detail: String,
    },

    /// The venue answered 2xx but the body is not what the API documents.
    #[error("{endpoint}: unexpected answer from the venue: {detail}")]
    Decode {
        /// Path of the endpoint.
        endpoint: String,
        /// What was wrong, with enough context (symbol, row, field) to find it.
        detail: String,
    },
}

fn wait_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("retry after {} s", wait.as_secs()),
        None => "back off before retrying".to_string(),
    }
}

impl VenueError {
    /// True when sending the same request again later may succeed: transport errors,
    /// timeouts, 5xx answers and 429 rate limits (after waiting). Venue refusals (4xx),
    /// bans, decode errors and bad configuration are not retryable.
    ///
    /// This is about public, idempotent requests. For order placement a retryable
    /// error (timeout, 503) means the outcome is unknown: query the order by its client
    /// order id before sending it again.
    pub fn is_retryable(&self) -> bool {
        match self {
            VenueError::Transport { .. }
            | VenueError::Timeout { .. }
            | VenueError::RateLimited { .. } => true,
            VenueError::Http { status, .. } => *status >= 500,
            VenueError::InvalidUrl { .. }
            | VenueError::Api { .. }
            | VenueError::Banned { .. }
            | VenueError::OutcomeUnknown { .. }
            | VenueError::Decode { .. } => false,
        }
    }

    /// The endpoint path the error is about (`None` for a bad base URL).
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            VenueError::InvalidUrl { .. } => None,
            VenueError::Transport { endpoint, .. }
            | VenueError::Timeout { endpoint, .. }
            | VenueError::Http { endpoint, .. }
            | VenueError::Api { endpoint, .. }
            | VenueError::RateLimited { endpoint, .. }
            | VenueError::Banned { endpoint, .. }
            | VenueError::OutcomeUnknown { endpoint, .. }
            | VenueError::Decode { endpoint, .. } => Some(endpoint),
        }
    }

    /// The venue's error code when it sent one (`-1121` for an unknown symbol).
    pub fn venue_code(&self) -> Option<i64> {
        match self {
            VenueError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_endpoint_and_the_venue_words() {
        let err = VenueError::Api {
            endpoint: "/fapi/v1/klines".into(),
            status: 400,
            code: -1121,
            msg: "Invalid symbol.".into(),
        };
        assert_eq!(
            err.to_string(),
            "/fapi/v1/klines: venue refused the request (HTTP 400, code -1121): Invalid symbol."
        );
        assert!(!err.is_retryable());
        assert_eq!(err.venue_code(), Some(-1121));

        let limited = VenueError::RateLimited {
            endpoint: "/fapi/v1/time".into(),
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            limited.to_string(),
            "/fapi/v1/time: rate limited by the venue (HTTP 429); retry after 30 s"
        );
        assert!(limited.is_retryable());
    }

    #[test]
    fn only_exchange_side_and_network_trouble_is_retryable() {
        let http = |status| VenueError::Http {
            endpoint: "/fapi/v1/time".into(),
            status,
            detail: String::new(),
        };
        assert!(http(500).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(403).is_retryable());
        assert!(!VenueError::Banned {
            endpoint: "/fapi/v1/time".into(),
            retry_after: None
        }
        .is_retryable());
    }
}
