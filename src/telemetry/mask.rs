//! Secret masking for everything the logging stack writes.
//!
//! [`SecretMask::mask`] replaces, in this order:
//! 1. every occurrence of every *registered* secret value (configured API keys, API
//!    secrets, private keys, database URLs, added at boot and when accounts are added at
//!    runtime) with [`MASK`], leftmost-longest, case-sensitive. Values shorter than
//!    [`MIN_SECRET_CHARS`] characters are ignored so that a short value cannot mask half of
//!    every line. For each value its JSON-escaped and `Debug`-escaped forms are registered
//!    too, so the value is found inside an encoded JSON string or a `{:?}`-formatted error.
//! 2. secrets recognised by *shape*, registered or not:
//!    - `Bearer <token>` -> `Bearer ***`;
//!    - `0x` followed by exactly 64 hex digits (a private key) -> `***`;
//!    - the value after a sensitive key name and a `=` or `:` separator, quoted or not:
//!      query/form parameters (`api_key=...`, `secret=...`, `signature=...`,
//!      `private_key=...`), JSON fields (`"api_key":"..."`, also inside an escaped JSON
//!      string) and headers (`X-MBX-APIKEY: ...`). See [`SENSITIVE_NAMES`];
//!    - the password of a URL with credentials (`postgres://user:password@host`).
//!
//! Invariants: masking never panics (it works on ASCII positions only and never slices
//! inside a UTF-8 character); it is idempotent (`mask(mask(x)) == mask(x)`); it never
//! introduces a quote, a backslash or a control character, so masking inside a JSON
//! string keeps the string valid. Unquoted values stop at `"` and `\`, and an unquoted
//! value that follows a bare `"key"` (JSON structure, i.e. a number, `null` or an object)
//! is left alone: the JSON writer masks its own fields by key before encoding.

use aho_corasick::{AhoCorasick, MatchKind};
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};

/// What a masked secret looks like in a log line.
pub const MASK: &str = crate::secret::MASK;

/// Registered values shorter than this many characters are ignored.
pub const MIN_SECRET_CHARS: usize = 4;

/// Key names (matched case-insensitively, as a substring of a longer name) whose value is
/// a secret: `x_api_key`, `X-MBX-APIKEY`, `api_secret`, `client_secret` all match.
pub const SENSITIVE_NAMES: &[&str] = &[
    "api_key",
    "api-key",
    "apikey",
    "secret",
    "signature",
    "private_key",
    "private-key",
    "privatekey",
    "password",
    "passwd",
    "passphrase",
    "access_token",
    "refresh_token",
    "auth_token",
];

/// Masks secrets in text before it is written anywhere.
///
/// Cheap to clone (an `Arc` inside); all clones share one registry, so a value added
/// through any clone is masked by every logger at once. Thread-safe.
#[derive(Clone, Default)]
pub struct SecretMask {
    registry: Arc<RwLock<Arc<Registered>>>,
}

/// An immutable snapshot of the registered values and their automaton.
#[derive(Default)]
struct Registered {
    /// Raw values as registered (deduplicated, long enough), for rebuilding.
    raw: Vec<String>,
    /// Raw values plus their escaped forms, longest first (the fallback scan order).
    patterns: Vec<String>,
    /// Leftmost-longest automaton over `patterns`; `None` if it could not be built.
    matcher: Option<AhoCorasick>,
}

impl fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMask")
            .field("registered", &self.snapshot().raw.len())
            .finish()
    }
}

impl SecretMask {
    /// A mask that knows the given secret values (plus the built-in shapes).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mask = SecretMask::default();
        mask.add(values);
        mask
    }

    /// Registers more secret values, e.g. the keys of an account added at runtime.
    /// Takes effect for every clone of this mask, for the next line written.
    pub fn add(&self, values: impl IntoIterator<Item = String>) {
        let new: Vec<String> = values
            .into_iter()
            .filter(|v| v.chars().count() >= MIN_SECRET_CHARS && !v.trim().is_empty())
            .collect();
        if new.is_empty() {
            return;
        }
        let mut guard = self
            .registry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut raw = guard.raw.clone();
        raw.extend(new);
        raw.sort();
        raw.dedup();
        *guard = Arc::new(Registered::build(raw));
    }

    /// `text` with every registered secret and every recognised secret shape replaced
    /// by [`MASK`]. Borrows when nothing needed masking.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let registered = self.snapshot();
        match registered.replace(text) {
            Cow::Borrowed(t) => mask_shapes(t),
            Cow::Owned(t) => {
                let shaped = match mask_shapes(&t) {
                    Cow::Owned(u) => Some(u),
                    Cow::Borrowed(_) => None,
                };
                Cow::Owned(shaped.unwrap_or(t))
            }
        }
    }

    /// Whether a key-value key names a secret (its value is masked whole).
    pub fn is_sensitive_key(key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        lower == "authorization" || SENSITIVE_NAMES.iter().any(|n| lower.contains(n))
    }

    fn snapshot(&self) -> Arc<Registered> {
        self.registry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl Registered {
    fn build(raw: Vec<String>) -> Self {
        let mut patterns = Vec::with_capacity(raw.len() * 2);
        for value in &raw {
            patterns.push(value.clone());
            if let Ok(json) = serde_json::to_string(value) {
                patterns.push(strip_quotes(&json).to_string());
            }
            patterns.push(strip_quotes(&format!("{value:?}")).to_string());
        }
        patterns.retain(|p| !p.is_empty());
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok();
        Registered {
            raw,
            patterns,
            matcher,
        }
    }

    fn replace<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.patterns.is_empty() {
            return Cow::Borrowed(text);
        }
        if let Some(matcher) = &self.matcher {
            if let Ok(matches) = matcher.try_find_iter(text) {
                let mut out = String::new();
                let mut last = 0;
                for m in matches {
                    match (text.get(last..m.start()), text.get(m.start()..m.end())) {
                        (Some(before), Some(_)) => {
                            out.push_str(before);
                            out.push_str(MASK);
                            last = m.end();
                        }
                        _ => return self.replace_naive(text),
                    }
                }
                if last == 0 {
                    return Cow::Borrowed(text);
                }
                out.push_str(text.get(last..).unwrap_or_default());
                return Cow::Owned(out);
            }
        }
        self.replace_naive(text)
    }

    /// Fallback when no automaton is available: longest patterns first.
    fn replace_naive<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for p in &self.patterns {
            if out.contains(p.as_str()) {
                out = Cow::Owned(out.replace(p.as_str(), MASK));
            }
        }
        out
    }
}

fn strip_quotes(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// Masks secrets recognised by shape (see the module doc).
fn mask_shapes(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let found = match b[i].to_ascii_lowercase() {
            b'b' => bearer_token(b, i),
            b'0' => hex_private_key(b, i),
            b':' => url_password(b, i),
            b'a' | b's' | b'p' | b'r' => keyed_value(b, i),
            _ => None,
        };
        match found {
            Some((start, end)) if end > start => {
                if !is_mask(&b[start..end]) {
                    ranges.push((start, end));
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut last = 0;
    for (start, end) in ranges {
        out.extend_from_slice(&b[last..start]);
        out.extend_from_slice(MASK.as_bytes());
        last = end;
    }
    out.extend_from_slice(&b[last..]);
    // Every range starts and ends next to an ASCII byte, so `out` is valid UTF-8; the
    // lossy path only exists so that a mistake here can never panic.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

fn is_mask(v: &[u8]) -> bool {
    v == MASK.as_bytes()
}

fn starts_with_ci(b: &[u8], at: usize, word: &str) -> bool {
    b.get(at..at + word.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()))
}

/// `Bearer <token>`: the token (RFC 6750 characters) after one or more spaces.
fn bearer_token(b: &[u8], at: usize) -> Option<(usize, usize)> {
    if !starts_with_ci(b, at, "bearer") {
        return None;
    }
    if at > 0 && b[at - 1].is_ascii_alphanumeric() {
        return None;
    }
    let mut start = at + "bearer".len();
    let spaces = b[start..].iter().take_while(|c| **c == b' ').count();
    if spaces == 0 {
        return None;
    }
    start += spaces;
    let len = b[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(c))
        .count();
    (len > 0).then_some((start, start + len))
}

/// `0x` + exactly 64 hex digits (a secp256k1 private key; tx hashes are masked too).
fn hex_private_key(b: &[u8], at: usize) -> Option<(usize, usize)> {
    if b.get(at + 1).map(u8::to_ascii_lowercase) != Some(b'x') {
        return None;
    }
    let digits = b[at + 2..]
        .iter()
        .take_while(|c| c.is_ascii_hexdigit())
        .count();
    let end = at + 2 + digits;
    let followed_by_word = b.get(end).is_some_and(|c| c.is_ascii_alphanumeric());
    (digits == 64 && !followed_by_word).then_some((at, end))
}

/// `scheme://user:password@host`: the password, found from the `:` of `://`.
fn url_password(b: &[u8], at: usize) -> Option<(usize, usize)> {
    if b.get(at + 1..at + 3) != Some(b"//".as_slice()) {
        return None;
    }
    let start = at + 3;
    let authority_len = b[start..]
        .iter()
        .take_while(|c| !(c.is_ascii_whitespace() || b"/?#\"'\\<>".contains(c)))
        .count();
    let authority = &b[start..start + authority_len];
    let at_sign = authority.iter().rposition(|c| *c == b'@')?;
    let colon = authority[..at_sign].iter().position(|c| *c == b':')?;
    Some((start + colon + 1, start + at_sign))
}

/// The value after a sensitive key name: `name[ident]* [quote] ws* (=|:) ws* [quote] value`.
fn keyed_value(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let name = SENSITIVE_NAMES.iter().find(|n| starts_with_ci(b, at, n))?;
    let mut i = at + name.len();
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
        i += 1;
    }
    // Optional closing quote of the key: `"`, `\"` (inside a JSON string) or `'`.
    let mut key_quote: &[u8] = b"";
    for q in [b"\\\"".as_slice(), b"\"", b"'"] {
        if b[i..].starts_with(q) {
            key_quote = q;
            i += q.len();
            break;
        }
    }
    i += count_spaces(&b[i..]);
    if !matches!(b.get(i), Some(b'=') | Some(b':')) {
        return None;
    }
    i += 1;
    i += count_spaces(&b[i..]);
    let rest = &b[i..];
    if rest.starts_with(b"\\\"") {
        Some(escaped_json_string(b, i + 2))
    } else if rest.starts_with(b"\"") {
        if key_quote == b"\\\"" {
            // `\"key\":"`: the bare quote ends the enclosing JSON string.
            return None;
        }
        // A JSON string: up to the next unescaped `"` (or the end of a truncated text).
        let start = i + 1;
        let mut j = start;
        while j < b.len() {
            match b[j] {
                b'"' => return Some((start, j)),
                b'\\' => j += 2,
                _ => j += 1,
            }
        }
        Some((start, b.len()))
    } else if rest.starts_with(b"'") {
        let start = i + 1;
        let len = b[start..]
            .iter()
            .take_while(|c| **c != b'\'' && **c != b'\\' && **c != b'"')
            .count();
        Some((start, start + len))
    } else {
        // Unquoted. After a bare `"key"` this is JSON structure (number, null, object):
        // leave it to the field-level masking of the JSON writer.
        if key_quote == b"\"" {
            return None;
        }
        let len = rest
            .iter()
            .take_while(|c| !(c.is_ascii_whitespace() || b"&\"',;}])\\<>".contains(c)))
            .count();
        Some((i, i + len))
    }
}

/// A JSON string encoded inside another JSON string (`\"v\\\"x\"`), starting after its
/// opening `\"`: the range up to its closing `\"`, or up to the bare `"` that ends the
/// enclosing string, or the end of the text.
fn escaped_json_string(b: &[u8], start: usize) -> (usize, usize) {
    let mut j = start;
    let mut inner_escaped = false;
    while j < b.len() {
        let (inner, step) = match (b[j], b.get(j + 1)) {
            (b'\\', Some(&c)) => (c, 2),
            (b'"', _) => return (start, j),
            (c, _) => (c, 1),
        };
        if inner_escaped {
            inner_escaped = false;
        } else if inner == b'\\' {
            inner_escaped = true;
        } else if inner == b'"' {
            return (start, j);
        }
        j += step;
    }
    (start, b.len())
}

fn count_spaces(b: &[u8]) -> usize {
    b.iter().take_while(|c| **c == b' ' || **c == b'\t').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

    fn m(text: &str) -> String {
        SecretMask::default().mask(text).into_owned()
    }

    #[test]
    fn registered_values_are_masked_everywhere_leftmost_longest() {
        let mask = SecretMask::new(["abcd1234".to_string(), "abcd1234efgh".to_string()]);
        assert_eq!(mask.mask("k=abcd1234efgh!"), "k=***!");
        assert_eq!(mask.mask("xabcd1234 and abcd1234"), "x*** and ***");
        assert!(matches!(mask.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_ignored() {
        let mask = SecretMask::new(["abc".to_string(), "  ".to_string()]);
        assert_eq!(mask.mask("abc abc"), "abc abc");
    }

    #[test]
    fn values_added_at_runtime_reach_every_clone() {
        let mask = SecretMask::new(Vec::new());
        let clone = mask.clone();
        mask.add(["late-account-key".to_string()]);
        assert_eq!(clone.mask("key late-account-key"), "key ***");
        assert!(!format!("{mask:?}").contains("late-account-key"));
    }

    #[test]
    fn escaped_forms_of_a_value_are_masked() {
        let mask = SecretMask::new([r#"pa"ss\word"#.to_string()]);
        let json = serde_json::to_string(&format!("db said {}", r#"pa"ss\word"#)).unwrap();
        let masked = mask.mask(&json);
        assert_eq!(masked, r#""db said ***""#);
        let debug = format!("{:?}", r#"pa"ss\word"#);
        assert_eq!(mask.mask(&debug), "\"***\"");
    }

    #[test]
    fn bearer_tokens_are_masked() {
        assert_eq!(
            m("Authorization: Bearer sk-or-v1.abc_DEF+/= next"),
            "Authorization: Bearer *** next"
        );
        assert_eq!(m("bearer   tok"), "bearer   ***");
        assert_eq!(m("Bearer"), "Bearer");
    }

    #[test]
    fn hex_private_keys_are_masked_but_not_other_hex() {
        assert_eq!(m(&format!("key={KEY}")), "key=***");
        assert_eq!(m(&format!("({KEY})")), "(***)");
        let short = "0xdeadbeef";
        assert_eq!(m(short), short);
        let long = format!("{KEY}ab");
        assert_eq!(m(&long), long);
    }

    #[test]
    fn keyed_values_are_masked_in_queries_forms_headers_and_json() {
        assert_eq!(
            m("GET /fapi/v1/order?symbol=BTCUSDT&signature=abc123&timestamp=1"),
            "GET /fapi/v1/order?symbol=BTCUSDT&signature=***&timestamp=1"
        );
        assert_eq!(m("api_key=AK&secret=SK"), "api_key=***&secret=***");
        assert_eq!(m("X-MBX-APIKEY: vmPUZE6mv9SD5VNHk4"), "X-MBX-APIKEY: ***");
        assert_eq!(
            m(r#"{"api_key":"AK1","private_key" : "PK","n":1}"#),
            r#"{"api_key":"***","private_key" : "***","n":1}"#
        );
        assert_eq!(
            m(r#"body {\"api_secret\":\"S\\\"K\"} end"#),
            r#"body {\"api_secret\":\"***\"} end"#
        );
        assert_eq!(m("{'secret': 'x y'}"), "{'secret': '***'}");
        // Words that merely contain a name, without a separator, stay.
        assert_eq!(
            m("secret loaded; signatures verified"),
            "secret loaded; signatures verified"
        );
        // A truncated quoted value is masked to the end.
        assert_eq!(m(r#"{"secret":"abc"#), r#"{"secret":"***"#);
        // Bare JSON non-strings are left to the field-level masking.
        assert_eq!(m(r#"{"secret_count":3}"#), r#"{"secret_count":3}"#);
    }

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            m("connect postgres://vibex:s3cr%40t@db:5432/vibex failed"),
            "connect postgres://vibex:***@db:5432/vibex failed"
        );
        assert_eq!(m("postgresql://u:p@ss@h/db"), "postgresql://u:***@h/db");
        assert_eq!(m("https://host:443/x"), "https://host:443/x");
        assert_eq!(m("postgres://user@host/db"), "postgres://user@host/db");
    }

    #[test]
    fn masking_is_idempotent_and_safe_on_any_text() {
        let samples = [
            format!("é api_key=ü€ {KEY} Bearer ü postgres://a:é@b secret:"),
            "secret=\"unterminated".to_string(),
            "\\\"secret\\\": \\\"".to_string(),
            "0x".to_string(),
            ":/".to_string(),
            "bearer ".to_string(),
        ];
        for s in samples {
            let once = m(&s);
            assert_eq!(m(&once), once, "not idempotent for {s:?}");
        }
        assert_eq!(m("é api_key=ü€ x"), "é api_key=*** x");
    }

    #[test]
    fn masking_inside_a_json_line_keeps_it_valid() {
        let mask = SecretMask::new(["registered-secret".to_string()]);
        let line = serde_json::json!({
            "msg": format!("GET /x?api_key=a&signature=b Bearer tok {KEY} registered-secret"),
            "err": r#"{"secret":"v","password": "w"}"#,
            "url": "postgres://u:pw@h/db",
        })
        .to_string();
        let masked = mask.mask(&line);
        let parsed: serde_json::Value = serde_json::from_str(&masked).unwrap();
        let decoded: Vec<&str> = parsed
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v.as_str())
            .collect();
        let text = decoded.join("\n");
        for leaked in [
            "registered-secret",
            "tok",
            &KEY[2..],
            "pw@",
            "\"v\"",
            "\"w\"",
        ] {
            assert!(!text.contains(leaked), "{leaked} leaked in {text}");
        }
        assert!(
            text.contains(r#"{"secret":"***","password": "***"}"#),
            "{text}"
        );
    }

    #[test]
    fn sensitive_keys_are_recognised() {
        for k in [
            "api_key",
            "X-MBX-APIKEY",
            "apiSecret",
            "private_key",
            "Authorization",
        ] {
            assert!(SecretMask::is_sensitive_key(k), "{k}");
        }
        for k in ["account_id", "cycle_id", "component", "prompt_tokens"] {
            assert!(!SecretMask::is_sensitive_key(k), "{k}");
        }
    }
}
