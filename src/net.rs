//! What the HTTP clients (the venue's, the models') share about failed requests.
//!
//! Invariant: nothing here returns a URL — signed query strings and API paths with keys
//! must not reach error messages or logs.

/// The error chain of a transport failure as one line, without the URL.
pub fn transport_detail(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
