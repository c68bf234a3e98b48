//! From the raw shapes to the typed [`Settings`](super::Settings) parts: types, ranges,
//! defaults and cross-field rules.
//!
//! Invariant: every problem is pushed as one line that starts with where it is (see
//! [`Locate`]): `accounts.yaml: account "a1": field "leverage": 50 is outside 1..=20`.
//! A part is returned only when it produced no problem. Secret values never appear in a
//! message.

use super::raw::{
    AssetsInput, RawAccount, RawApi, RawApiKey, RawAster, RawBucket, RawLlm, RawLlmGlobal,
    RawMarketData, RawOpenRouter, RawPaper, RawPrice, RawRisk, RawStorage, Scalar,
};
use super::{
    AccountConfig, ApiKeyConfig, ApiSettings, AsterConfig, CycleInterval, LlmConfig,
    LlmGlobalSettings, MarginType, MarketDataSettings, ModelPrice, OpenRouterConfig, PaperConfig,
    RateBucket, RateLimitSettings, RiskConfig, SigningMode, StorageSettings, StructuredOutput,
    TradingMode, BUILTIN_POLICIES, DEFAULT_ASTERDEX_BASE_URL, DEFAULT_ASTERDEX_WS_URL,
    DEFAULT_OPENROUTER_BASE_URL, DEFAULT_RECV_WINDOW_MS, LOG_LEVELS, MAX_LEVERAGE,
    MAX_RECV_WINDOW_MS,
};
use crate::domain::types::{AccountId, Asset};
use crate::secret::Secret;
use rust_decimal::Decimal;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Renders where a field is, as the start of an error line.
pub(crate) trait Locate {
    /// `file: account "id": field "x.y"` (or `environment: ...: variable X`); an empty
    /// `field` means the whole account / file.
    fn at(&self, field: &str) -> String;

    /// Like [`Locate::at`] for a `field` inside a list (`api.keys[2].role`), whose source
    /// is found from the list itself (`anchor`, `api.keys`).
    fn at_within(&self, anchor: &str, field: &str) -> String {
        let _ = anchor;
        self.at(field)
    }
}

/// One account of a file.
pub(crate) struct FileAccount<'a> {
    /// The file, as messages name it.
    pub file: &'a str,
    /// `account "id"` or `account #n`.
    pub label: String,
}

impl Locate for FileAccount<'_> {
    fn at(&self, field: &str) -> String {
        if field.is_empty() {
            format!("{}: {}", self.file, self.label)
        } else {
            format!("{}: {}: field \"{field}\"", self.file, self.label)
        }
    }
}

/// Collects problems for one part, located by a [`Locate`].
pub(crate) struct Check<'a> {
    loc: &'a dyn Locate,
    problems: &'a mut Vec<String>,
    found: usize,
}

impl<'a> Check<'a> {
    /// Starts checking a part.
    pub(crate) fn new(loc: &'a dyn Locate, problems: &'a mut Vec<String>) -> Self {
        Check {
            loc,
            problems,
            found: 0,
        }
    }

    /// Records a problem with `field`.
    pub(crate) fn fail(&mut self, field: &str, message: impl AsRef<str>) {
        self.problems
            .push(format!("{}: {}", self.loc.at(field), message.as_ref()));
        self.found += 1;
    }

    /// Records a problem with `field` of a list entry (see [`Locate::at_within`]).
    pub(crate) fn fail_within(&mut self, anchor: &str, field: &str, message: impl AsRef<str>) {
        self.problems.push(format!(
            "{}: {}",
            self.loc.at_within(anchor, field),
            message.as_ref()
        ));
        self.found += 1;
    }

    /// True when this part had no problem so far.
    pub(crate) fn clean(&self) -> bool {
        self.found == 0
    }

    /// Text; absent or blank is `None`.
    fn text(&mut self, field: &str, value: Option<Scalar>) -> Option<String> {
        match value? {
            Scalar::Text(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Scalar::Number(n) => Some(n),
            Scalar::Bool(b) => {
                self.fail(field, format!("expected text, found {b}"));
                None
            }
        }
    }

    /// A secret: never shown in a message.
    fn secret(&mut self, field: &str, value: Option<Scalar>) -> Secret {
        match value {
            Some(Scalar::Text(s)) => Secret::new(s.trim()),
            Some(Scalar::Number(n)) => Secret::new(n),
            Some(Scalar::Bool(_)) => {
                self.fail(field, "expected text, found a boolean");
                Secret::default()
            }
            None => Secret::default(),
        }
    }

    /// A whole number in `lo..=hi`.
    fn whole(&mut self, field: &str, value: Option<Scalar>, lo: u64, hi: u64) -> Option<u64> {
        let value = value?;
        let text = match &value {
            Scalar::Text(s) => s.trim(),
            Scalar::Number(n) => n.as_str(),
            Scalar::Bool(b) => {
                self.fail(field, format!("expected a whole number, found {b}"));
                return None;
            }
        };
        match text.parse::<i128>() {
            Ok(n) if n >= i128::from(lo) && n <= i128::from(hi) => u64::try_from(n).ok(),
            Ok(n) => {
                self.fail(field, format!("{n} is outside {lo}..={hi}"));
                None
            }
            Err(_) => {
                self.fail(
                    field,
                    format!(
                        "{} is not a whole number (expected {lo}..={hi})",
                        value.shown()
                    ),
                );
                None
            }
        }
    }

    /// A decimal read from its text (never through `f64` arithmetic).
    fn decimal(&mut self, field: &str, value: Option<Scalar>) -> Option<Decimal> {
        let value = value?;
        let parsed = match &value {
            Scalar::Text(s) => parse_decimal(s),
            Scalar::Number(n) => parse_decimal(n),
            Scalar::Bool(_) => None,
        };
        if parsed.is_none() {
            self.fail(
                field,
                format!(
                    "{} is not a decimal number (write it like 0.1 or \"0.1\")",
                    value.shown()
                ),
            );
        }
        parsed
    }

    /// A decimal that must be at least zero (`strict`: above zero).
    fn decimal_min(&mut self, field: &str, value: Option<Scalar>, strict: bool) -> Option<Decimal> {
        let d = self.decimal(field, value)?;
        if d.is_sign_negative() && !d.is_zero() {
            self.fail(
                field,
                format!("{d} is negative; it must be {}", bound(strict)),
            );
            None
        } else if strict && d.is_zero() {
            self.fail(field, format!("{d} must be {}", bound(strict)));
            None
        } else {
            Some(d)
        }
    }

    /// `true` / `false` (also `yes`/`no`, `on`/`off`, `1`/`0` from text).
    fn boolean(&mut self, field: &str, value: Option<Scalar>) -> Option<bool> {
        let value = value?;
        let parsed = match &value {
            Scalar::Bool(b) => Some(*b),
            Scalar::Text(s) => parse_bool(s),
            Scalar::Number(n) => parse_bool(n),
        };
        if parsed.is_none() {
            self.fail(field, format!("{} is not true or false", value.shown()));
        }
        parsed
    }

    /// A duration with a unit (`60s`, `15m`, `1h30m`).
    fn duration(&mut self, field: &str, value: Option<Scalar>) -> Option<Duration> {
        let value = value?;
        let parsed = match &value {
            Scalar::Text(s) => humantime::parse_duration(s.trim()).ok(),
            Scalar::Number(_) | Scalar::Bool(_) => None,
        };
        if parsed.is_none() {
            self.fail(
                field,
                format!(
                    "{} is not a duration; write a number with a unit, like 30s, 15m, 1h or 1h30m",
                    value.shown()
                ),
            );
        }
        parsed
    }

    /// A positive duration (zero refused).
    fn positive_duration(&mut self, field: &str, value: Option<Scalar>) -> Option<Duration> {
        let d = self.duration(field, value)?;
        if d.is_zero() {
            self.fail(field, "must be longer than zero");
            return None;
        }
        Some(d)
    }

    /// An http(s) base URL, without a trailing slash.
    fn base_url(&mut self, field: &str, value: Option<Scalar>, default: &str) -> String {
        self.url(field, value, default, &["http", "https"], "an http(s)")
    }

    /// A ws(s) base URL (WebSocket streams), without a trailing slash.
    fn ws_url(&mut self, field: &str, value: Option<Scalar>, default: &str) -> String {
        self.url(field, value, default, &["ws", "wss"], "a ws(s)")
    }

    /// A URL with one of `schemes` and a host, without a trailing slash; `kind` names
    /// the accepted schemes in the message.
    fn url(
        &mut self,
        field: &str,
        value: Option<Scalar>,
        default: &str,
        schemes: &[&str],
        kind: &str,
    ) -> String {
        let Some(text) = self.text(field, value) else {
            return default.to_string();
        };
        match url::Url::parse(&text) {
            Ok(u) if schemes.contains(&u.scheme()) && u.host().is_some() => {
                text.trim_end_matches('/').to_string()
            }
            _ => {
                self.fail(
                    field,
                    format!("{text:?} is not {kind} URL (default: {default})"),
                );
                default.to_string()
            }
        }
    }
}

fn bound(strict: bool) -> &'static str {
    if strict {
        "above zero"
    } else {
        "zero or more"
    }
}

/// Parses a decimal from its text: `0.1`, `-2`, `1e-3`, `+5`.
pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    if t.contains(['e', 'E']) {
        Decimal::from_scientific(t).ok()
    } else {
        Decimal::from_str(t).ok()
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The accepted cadences, for messages.
pub(crate) const INTERVAL_FORMS: &str = "use one of 1m 3m 5m 15m 1h 4h 1d, or a duration from \
     1s to 7d such as 30s, 90s, 2m or 1h30m";

/// The longest accepted cycle interval (also catches `1M`, a month, written for a minute).
const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

impl CycleInterval {
    /// Parses a cadence: `1m 3m 5m 15m 1h 4h 1d` or any humantime duration from 1s to 7d
    /// in whole seconds (`30s`, `90s`, `1h30m`). The error says what is accepted.
    pub fn parse(text: &str) -> Result<CycleInterval, String> {
        let label = text.trim();
        if label.is_empty() {
            return Err(format!("is empty; {INTERVAL_FORMS}"));
        }
        let Ok(duration) = humantime::parse_duration(label) else {
            return Err(format!("{label:?} is not an interval; {INTERVAL_FORMS}"));
        };
        if duration < Duration::from_secs(1) {
            return Err(format!(
                "{label:?} is too short: the shortest interval is 1s; {INTERVAL_FORMS}"
            ));
        }
        if duration.subsec_nanos() != 0 {
            return Err(format!(
                "{label:?} is not a whole number of seconds; {INTERVAL_FORMS}"
            ));
        }
        if duration > MAX_INTERVAL {
            return Err(format!(
                "{label:?} is too long: the longest interval is 7d; {INTERVAL_FORMS}"
            ));
        }
        Ok(CycleInterval {
            label: label.to_string(),
            duration,
        })
    }
}

/// Checks an account id: `[A-Za-z0-9_-]{1,64}`.
pub(crate) fn check_account_id(id: &str) -> Result<AccountId, String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(AccountId::new(id))
    } else {
        Err(format!(
            "{id:?} is not a valid account id; use 1 to 64 letters, digits, '_' or '-'"
        ))
    }
}

/// Parses the asset list: non-empty, upper-cased, `[A-Z0-9]{1,20}`, unique.
pub(crate) fn parse_assets(input: AssetsInput) -> Result<Vec<Asset>, String> {
    let names: Vec<String> = match input {
        AssetsInput::Text(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(str::to_string)
            .collect(),
        AssetsInput::List(items) => items
            .into_iter()
            .map(|item| match item {
                Scalar::Text(s) | Scalar::Number(s) => Ok(s),
                Scalar::Bool(b) => Err(format!("{b} is not an asset name")),
            })
            .collect::<Result<_, _>>()?,
    };
    if names.is_empty() {
        return Err("is empty; list at least one asset, e.g. [BTC, ETH] or \"BTC,ETH\"".into());
    }
    let mut assets: Vec<Asset> = Vec::with_capacity(names.len());
    for name in names {
        let asset = Asset::new(&name);
        let ok = !asset.as_str().is_empty()
            && asset.as_str().len() <= 20
            && asset
                .as_str()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !ok {
            return Err(format!(
                "{:?} is not an asset name (1 to 20 letters or digits, like BTC)",
                name.trim()
            ));
        }
        if assets.contains(&asset) {
            return Err(format!("{asset} is listed twice"));
        }
        assets.push(asset);
    }
    Ok(assets)
}

/// Validates one account. `None` when it had any problem (all pushed to `problems`).
pub(crate) fn account(
    raw: RawAccount,
    loc: &dyn Locate,
    problems: &mut Vec<String>,
) -> Option<AccountConfig> {
    let mut c = Check::new(loc, problems);

    let id = match c.text("id", raw.id) {
        Some(id) => match check_account_id(&id) {
            Ok(id) => Some(id),
            Err(e) => {
                c.fail("id", e);
                None
            }
        },
        None => {
            c.fail(
                "id",
                "missing; every account needs a unique id (1 to 64 letters, digits, '_' or '-')",
            );
            None
        }
    };

    let mode = match c.text("mode", raw.mode) {
        None => Some(TradingMode::Paper),
        Some(m) => match m.to_ascii_lowercase().as_str() {
            "paper" => Some(TradingMode::Paper),
            "live" => Some(TradingMode::Live),
            _ => {
                c.fail(
                    "mode",
                    format!(
                        "{m:?} is not a mode; use paper (the default, simulated) or live (real \
                         orders on AsterDEX)"
                    ),
                );
                None
            }
        },
    };

    // An unreadable mode was reported above; its credentials are checked as paper's.
    let asterdex = aster(
        &mut c,
        raw.asterdex.unwrap_or_default(),
        mode.unwrap_or(TradingMode::Paper),
    );
    let openrouter = open_router(&mut c, raw.openrouter.unwrap_or_default());

    let llm_model = match c.text("llm_model", raw.llm_model) {
        None => {
            c.fail(
                "llm_model",
                format!(
                    "missing; name a model such as x-ai/grok-4, or a builtin policy: {}",
                    builtin_list()
                ),
            );
            None
        }
        Some(model) => match model.strip_prefix("builtin/") {
            Some(policy) if !BUILTIN_POLICIES.contains(&policy) => {
                c.fail(
                    "llm_model",
                    format!(
                        "unknown builtin policy {model:?}; known policies: {}",
                        builtin_list()
                    ),
                );
                None
            }
            _ => Some(model),
        },
    };

    let assets = match raw.assets {
        None => {
            c.fail(
                "assets",
                "missing; list the assets to trade, e.g. [BTC, ETH] or \"BTC,ETH\"",
            );
            None
        }
        Some(input) => match parse_assets(input) {
            Ok(assets) => Some(assets),
            Err(e) => {
                c.fail("assets", e);
                None
            }
        },
    };

    let interval = match c.text("interval", raw.interval) {
        None => {
            c.fail("interval", format!("missing; {INTERVAL_FORMS}"));
            None
        }
        Some(text) => match CycleInterval::parse(&text) {
            Ok(i) => Some(i),
            Err(e) => {
                c.fail("interval", e);
                None
            }
        },
    };

    let leverage = c
        .whole("leverage", raw.leverage, 1, u64::from(MAX_LEVERAGE))
        .and_then(|l| u32::try_from(l).ok())
        .unwrap_or(1);
    let risk = risk(&mut c, raw.risk.unwrap_or_default());
    let paper = paper(&mut c, raw.paper.unwrap_or_default());
    let llm = llm(&mut c, raw.llm.unwrap_or_default());

    if !c.clean() {
        return None;
    }
    Some(AccountConfig {
        id: id?,
        mode: mode?,
        asterdex,
        openrouter,
        llm_model: llm_model?,
        assets: assets?,
        interval: interval?,
        leverage,
        risk,
        paper,
        llm,
    })
}

/// The `llm:` block of an account; defaults in [`LlmConfig::default`].
fn llm(c: &mut Check<'_>, raw: RawLlm) -> LlmConfig {
    let d = LlmConfig::default();
    let temperature = c
        .decimal("llm.temperature", raw.temperature)
        .and_then(|t| {
            if t < Decimal::ZERO || t > Decimal::TWO {
                c.fail("llm.temperature", format!("{t} is outside 0..=2"));
                None
            } else {
                t.to_string().parse::<f64>().ok()
            }
        })
        .unwrap_or(d.temperature);
    let max_tokens = c
        .whole("llm.max_tokens", raw.max_tokens, 1, 200_000)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(d.max_tokens);
    let timeout = c
        .positive_duration("llm.timeout", raw.timeout)
        .and_then(|t| {
            if t > Duration::from_secs(30) {
                c.fail(
                    "llm.timeout",
                    format!(
                        "{} is longer than the 30s budget from fresh market data to decision",
                        humantime::format_duration(t)
                    ),
                );
                None
            } else {
                Some(t)
            }
        })
        .unwrap_or(d.timeout);
    let structured_output = match c.text("llm.structured_output", raw.structured_output) {
        None => d.structured_output,
        Some(v) => match v.as_str() {
            "json_schema" => StructuredOutput::JsonSchema,
            "json_object" => StructuredOutput::JsonObject,
            "tool_call" => StructuredOutput::ToolCall,
            "none" => StructuredOutput::None,
            _ => {
                c.fail(
                    "llm.structured_output",
                    format!("{v:?} is not one of json_schema, json_object, tool_call, none"),
                );
                d.structured_output
            }
        },
    };
    let max_cost_usd_per_day =
        c.decimal_min("llm.max_cost_usd_per_day", raw.max_cost_usd_per_day, true);
    let prompt_dir = c.text("llm.prompt_dir", raw.prompt_dir).map(PathBuf::from);
    let price = raw.price.and_then(|p| price(c, "llm.price", p));
    let breaker = raw.circuit_breaker.unwrap_or_default();
    let breaker_failures = c
        .whole("llm.circuit_breaker.failures", breaker.failures, 1, 100)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(d.breaker_failures);
    let breaker_cooldown = c
        .positive_duration("llm.circuit_breaker.cooldown", breaker.cooldown)
        .unwrap_or(d.breaker_cooldown);
    LlmConfig {
        temperature,
        max_tokens,
        timeout,
        structured_output,
        max_cost_usd_per_day,
        prompt_dir,
        price,
        breaker_failures,
        breaker_cooldown,
    }
}

/// A `{prompt_per_mtok, completion_per_mtok}` price; both are required.
fn price(c: &mut Check<'_>, field: &str, raw: RawPrice) -> Option<ModelPrice> {
    let prompt = c.decimal_min(
        &format!("{field}.prompt_per_mtok"),
        raw.prompt_per_mtok,
        false,
    );
    let completion = c.decimal_min(
        &format!("{field}.completion_per_mtok"),
        raw.completion_per_mtok,
        false,
    );
    match (prompt, completion) {
        (Some(p), Some(q)) => Some(ModelPrice {
            prompt_per_mtok: p,
            completion_per_mtok: q,
        }),
        (None, _) => {
            c.fail(
                &format!("{field}.prompt_per_mtok"),
                "missing; a price needs prompt_per_mtok and completion_per_mtok (USD per million tokens)",
            );
            None
        }
        (_, None) => {
            c.fail(
                &format!("{field}.completion_per_mtok"),
                "missing; a price needs prompt_per_mtok and completion_per_mtok (USD per million tokens)",
            );
            None
        }
    }
}

fn builtin_list() -> String {
    BUILTIN_POLICIES
        .iter()
        .map(|p| format!("builtin/{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `asterdex:` block: endpoints, signing parameters and credentials (checked by
/// [`check_credentials`]).
fn aster(c: &mut Check<'_>, raw: RawAster, mode: TradingMode) -> AsterConfig {
    let base_url = c.base_url("asterdex.base_url", raw.base_url, DEFAULT_ASTERDEX_BASE_URL);
    let ws_url = c.ws_url("asterdex.ws_url", raw.ws_url, DEFAULT_ASTERDEX_WS_URL);
    let recv_window_ms = c
        .whole(
            "asterdex.recv_window_ms",
            raw.recv_window_ms,
            1,
            MAX_RECV_WINDOW_MS,
        )
        .unwrap_or(DEFAULT_RECV_WINDOW_MS);
    let margin_type = match c.text("asterdex.margin_type", raw.margin_type) {
        None => MarginType::Isolated,
        Some(m) => match m.to_ascii_uppercase().as_str() {
            "ISOLATED" => MarginType::Isolated,
            "CROSSED" => MarginType::Crossed,
            _ => {
                c.fail(
                    "asterdex.margin_type",
                    format!("{m:?} is not a margin type; use ISOLATED (the default) or CROSSED"),
                );
                MarginType::Isolated
            }
        },
    };
    let credentials = Credentials {
        api_key: c.secret("asterdex.api_key", raw.api_key),
        api_secret: c.secret("asterdex.api_secret", raw.api_secret),
        user: c.text("asterdex.user", raw.user),
        signer: c.text("asterdex.signer", raw.signer),
        private_key: c.secret("asterdex.private_key", raw.private_key),
    };
    let signing = check_credentials(c, mode, &credentials);
    let Credentials {
        api_key,
        api_secret,
        user,
        signer,
        private_key,
    } = credentials;
    AsterConfig {
        base_url,
        api_key,
        api_secret,
        user,
        signer,
        private_key,
        signing,
        recv_window_ms,
        margin_type,
        ws_url,
    }
}

/// The AsterDEX credentials of an account as written, before [`check_credentials`].
struct Credentials {
    api_key: Secret,
    api_secret: Secret,
    user: Option<String>,
    signer: Option<String>,
    private_key: Secret,
}

/// Every rule about an account's AsterDEX credentials, in this one function (so that the
/// signing module can take the format checks over):
///
/// - `asterdex.user` and `asterdex.signer` are wallet addresses (`0x` + 40 hex digits);
///   `asterdex.private_key` is 64 hex digits, optionally after `0x`, and is never shown;
/// - a credential set is complete or absent — `api_key` + `api_secret` (HMAC),
///   `user` + `signer` + `private_key` (wallet signer) — and each missing field of a
///   partial set is named;
/// - a live account needs exactly one complete set; a paper account needs none.
///
/// Returns how signed requests are authenticated: always `Some` for a live account
/// without problems; for a paper account, the one complete set if there is exactly one.
fn check_credentials(
    c: &mut Check<'_>,
    mode: TradingMode,
    creds: &Credentials,
) -> Option<SigningMode> {
    let before = c.found;
    for (field, value) in [
        ("asterdex.user", &creds.user),
        ("asterdex.signer", &creds.signer),
    ] {
        if let Some(text) = value {
            if !is_address(text) {
                c.fail(
                    field,
                    format!("{text:?} is not a wallet address (0x followed by 40 hex digits)"),
                );
            }
        }
    }
    if !creds.private_key.is_empty() && !is_private_key(creds.private_key.expose()) {
        // Never echo the value, not even a part of it.
        c.fail(
            "asterdex.private_key",
            "is not a private key: expected 64 hex digits, optionally after 0x (the value \
             is not shown)",
        );
    }

    let hmac = [
        ("asterdex.api_key", !creds.api_key.is_empty()),
        ("asterdex.api_secret", !creds.api_secret.is_empty()),
    ];
    let wallet = [
        ("asterdex.user", creds.user.is_some()),
        ("asterdex.signer", creds.signer.is_some()),
        ("asterdex.private_key", !creds.private_key.is_empty()),
    ];
    let any = |set: &[(&str, bool)]| set.iter().any(|(_, present)| *present);
    let all = |set: &[(&str, bool)]| set.iter().all(|(_, present)| *present);
    for (set, together) in [
        (
            &hmac[..],
            "asterdex.api_key and asterdex.api_secret go together (HMAC mode)",
        ),
        (
            &wallet[..],
            "wallet-signer mode needs asterdex.user, asterdex.signer and \
             asterdex.private_key together",
        ),
    ] {
        if any(set) {
            for (field, present) in set {
                if !present {
                    c.fail(field, format!("missing; {together}"));
                }
            }
        }
    }

    let signing = match (all(&hmac), all(&wallet)) {
        (true, false) => Some(SigningMode::Hmac),
        (false, true) => Some(SigningMode::WalletSigner),
        (true, true) => {
            if mode == TradingMode::Live {
                c.fail(
                    "asterdex",
                    "both HMAC (api_key, api_secret) and wallet-signer (user, signer, \
                     private_key) credentials are set; a live account signs one way: keep \
                     one set",
                );
            }
            None
        }
        (false, false) => {
            if mode == TradingMode::Live && !any(&hmac) && !any(&wallet) {
                c.fail(
                    "asterdex",
                    "missing credentials; mode: live sends real orders and signs them: set \
                     asterdex.api_key and asterdex.api_secret (HMAC), or asterdex.user, \
                     asterdex.signer and asterdex.private_key (wallet signer)",
                );
            }
            None
        }
    };
    if c.found > before {
        None
    } else {
        signing
    }
}

/// `0x` and 40 hex digits.
fn is_address(text: &str) -> bool {
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .is_some_and(|hex| hex.len() == 40 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// 64 hex digits, optionally after `0x`.
fn is_private_key(text: &str) -> bool {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn open_router(c: &mut Check<'_>, raw: RawOpenRouter) -> OpenRouterConfig {
    OpenRouterConfig {
        base_url: c.base_url(
            "openrouter.base_url",
            raw.base_url,
            DEFAULT_OPENROUTER_BASE_URL,
        ),
        api_key: c.secret("openrouter.api_key", raw.api_key),
    }
}

fn risk(c: &mut Check<'_>, raw: RawRisk) -> RiskConfig {
    let max_position_usd = c.decimal_min("risk.max_position_usd", raw.max_position_usd, true);
    let max_daily_loss_pct = c
        .decimal_min("risk.max_daily_loss_pct", raw.max_daily_loss_pct, true)
        .and_then(|pct| {
            if pct > Decimal::ONE_HUNDRED {
                c.fail(
                    "risk.max_daily_loss_pct",
                    format!("{pct} is above 100 (it is a percentage of the day's start equity)"),
                );
                None
            } else {
                Some(pct)
            }
        });
    RiskConfig {
        max_position_usd,
        max_daily_loss_pct,
        cooldown: c.duration("risk.cooldown", raw.cooldown),
        kill_switch: c
            .boolean("risk.kill_switch", raw.kill_switch)
            .unwrap_or(false),
        hysteresis_cycles: c
            .whole("risk.hysteresis_cycles", raw.hysteresis_cycles, 1, 10)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(2),
    }
}

/// Paper defaults: 10 000 USD, 5 bps taker fee, 2 bps maker fee, 2 bps slippage, 0.005
/// maintenance margin rate.
fn paper(c: &mut Check<'_>, raw: RawPaper) -> PaperConfig {
    let maintenance_margin_rate = c
        .decimal_min(
            "paper.maintenance_margin_rate",
            raw.maintenance_margin_rate,
            true,
        )
        .and_then(|rate| {
            if rate >= Decimal::new(5, 1) {
                c.fail(
                    "paper.maintenance_margin_rate",
                    format!(
                        "{rate} is 0.5 or more; it is a fraction of notional above 0 and below \
                         0.5 (default 0.005)"
                    ),
                );
                None
            } else {
                Some(rate)
            }
        })
        .unwrap_or(Decimal::new(5, 3));
    PaperConfig {
        starting_balance_usd: c
            .decimal_min("paper.starting_balance_usd", raw.starting_balance_usd, true)
            .unwrap_or(Decimal::from(10_000)),
        fee_bps: fee_bps(c, "paper.fee_bps", raw.fee_bps).unwrap_or(Decimal::from(5)),
        maker_fee_bps: fee_bps(c, "paper.maker_fee_bps", raw.maker_fee_bps)
            .unwrap_or(Decimal::from(2)),
        slippage_bps: c
            .decimal_min("paper.slippage_bps", raw.slippage_bps, false)
            .unwrap_or(Decimal::from(2)),
        maintenance_margin_rate,
    }
}

/// A fee in basis points of notional: at least 0 and below 10000 (100 %).
fn fee_bps(c: &mut Check<'_>, field: &str, value: Option<Scalar>) -> Option<Decimal> {
    let bps = c.decimal_min(field, value, false)?;
    if bps >= Decimal::from(10_000) {
        c.fail(
            field,
            format!("{bps} is 10000 or more; a fee in basis points is below 10000 (100 %)"),
        );
        return None;
    }
    Some(bps)
}

/// The validated top-level parts (everything but the accounts).
pub(crate) struct TopLevel {
    pub api: ApiSettings,
    pub log_dir: String,
    pub data_dir: String,
    pub log_level: String,
    pub database_url: Option<Secret>,
    pub market_data: MarketDataSettings,
    pub runtime: super::RuntimeSettings,
    pub storage: StorageSettings,
    pub kill_switch: bool,
    pub llm: LlmGlobalSettings,
}

/// Validates the top-level keys; defaults fill what is absent.
pub(crate) fn top_level(
    raw: super::raw::RawTop,
    loc: &dyn Locate,
    problems: &mut Vec<String>,
) -> Option<TopLevel> {
    let mut c = Check::new(loc, problems);
    let api = raw.api.unwrap_or_default();
    let md = raw.market_data.unwrap_or_default();
    let top = TopLevel {
        api: api_settings(&mut c, api),
        log_dir: c
            .text("log_dir", raw.log_dir)
            .unwrap_or_else(|| super::DEFAULT_LOG_DIR.to_string()),
        data_dir: c
            .text("data_dir", raw.data_dir)
            .unwrap_or_else(|| super::DEFAULT_DATA_DIR.to_string()),
        log_level: log_level(&mut c, raw.log_level),
        database_url: database_url(&mut c, raw.database_url),
        market_data: market_data(&mut c, md),
        runtime: super::RuntimeSettings {
            arbiters: c
                .whole(
                    "runtime.arbiters",
                    raw.runtime.unwrap_or_default().arbiters,
                    1,
                    256,
                )
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or_else(super::default_arbiters),
        },
        storage: storage(&mut c, raw.storage.unwrap_or_default()),
        kill_switch: c.boolean("kill_switch", raw.kill_switch).unwrap_or(false),
        llm: llm_global(&mut c, raw.llm.unwrap_or_default()),
    };
    c.clean().then_some(top)
}

/// The top-level `llm:` block.
fn llm_global(c: &mut Check<'_>, raw: RawLlmGlobal) -> LlmGlobalSettings {
    let d = LlmGlobalSettings::default();
    let mut prices = std::collections::BTreeMap::new();
    for (model, p) in raw.prices.unwrap_or_default() {
        if let Some(price) = price(c, &format!("llm.prices.{model}"), p) {
            prices.insert(model, price);
        }
    }
    LlmGlobalSettings {
        app_url: c.text("llm.app_url", raw.app_url),
        app_title: c
            .text("llm.app_title", raw.app_title)
            .unwrap_or(d.app_title),
        prices,
    }
}

fn api_settings(c: &mut Check<'_>, raw: RawApi) -> ApiSettings {
    let host = match c.text("api.host", raw.host) {
        Some(h) if h.chars().any(char::is_whitespace) => {
            c.fail("api.host", format!("{h:?} is not a host name or address"));
            super::DEFAULT_API_HOST.to_string()
        }
        Some(h) => h,
        None => super::DEFAULT_API_HOST.to_string(),
    };
    let port = c
        .whole("api.port", raw.port, 0, u64::from(u16::MAX))
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(super::DEFAULT_API_PORT);
    let ws_ping_interval = c
        .positive_duration("api.ws_ping_interval", raw.ws_ping_interval)
        .unwrap_or(super::DEFAULT_WS_PING_INTERVAL);
    let ws_client_timeout = c
        .positive_duration("api.ws_client_timeout", raw.ws_client_timeout)
        .unwrap_or(super::DEFAULT_WS_CLIENT_TIMEOUT);
    if ws_client_timeout <= ws_ping_interval {
        c.fail(
            "api.ws_client_timeout",
            "must be longer than api.ws_ping_interval (a client answers pings)",
        );
    }
    let keys = api_keys(c, raw.keys.unwrap_or_default());
    let allow_unauthenticated = c
        .boolean("api.allow_unauthenticated", raw.allow_unauthenticated)
        .unwrap_or(false);
    let limits = raw.rate_limit.unwrap_or_default();
    let defaults = RateLimitSettings::default();
    let rate_limit = RateLimitSettings {
        per_key: bucket(
            c,
            "api.rate_limit.per_key",
            limits.per_key.unwrap_or_default(),
            defaults.per_key,
        ),
        per_ip: bucket(
            c,
            "api.rate_limit.per_ip",
            limits.per_ip.unwrap_or_default(),
            defaults.per_ip,
        ),
    };
    let cors_origins = cors_origins(c, raw.cors_origins.unwrap_or_default());
    ApiSettings {
        host,
        port,
        ws_ping_interval,
        ws_client_timeout,
        keys,
        allow_unauthenticated,
        rate_limit,
        cors_origins,
    }
}

/// The largest rate or burst a bucket takes.
const MAX_RATE: u64 = 1_000_000;

/// One token bucket; what is absent keeps its default.
fn bucket(c: &mut Check<'_>, field: &str, raw: RawBucket, default: RateBucket) -> RateBucket {
    let mut take = |name: &str, value: Option<Scalar>, default: u32| {
        c.whole(&format!("{field}.{name}"), value, 1, MAX_RATE)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    };
    RateBucket {
        per_second: take("per_second", raw.per_second, default.per_second),
        burst: take("burst", raw.burst, default.burst),
    }
}

/// Checks an API key's name: `[A-Za-z0-9_.-]{1,64}` (it is written in logs and the
/// audit trail, and must never be mistaken for a key).
pub fn check_key_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a key name; use 1 to 64 letters, digits, '_', '-' or '.'"
        ))
    }
}

/// Parses the account scope of a key (`[a1, a2]` or `"a1,a2"`): each a valid account id,
/// none twice, at least one.
pub(crate) fn parse_key_scope(input: AssetsInput) -> Result<Vec<String>, String> {
    let ids: Vec<String> = match input {
        AssetsInput::Text(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(str::to_string)
            .collect(),
        AssetsInput::List(items) => items
            .into_iter()
            .map(|item| match item {
                Scalar::Text(s) | Scalar::Number(s) => Ok(s.trim().to_string()),
                Scalar::Bool(b) => Err(format!("{b} is not an account id")),
            })
            .collect::<Result<_, _>>()?,
    };
    if ids.is_empty() {
        return Err("is empty; list the accounts the key sees, e.g. [a1, a2], or leave                     `accounts` out for every account"
            .into());
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        check_account_id(&id)?;
        if out.contains(&id) {
            return Err(format!("{id} is listed twice"));
        }
        out.push(id);
    }
    Ok(out)
}

/// Parses a key hash: 64 hex digits (any case), as `vibex keys new` prints it.
fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

/// `api.keys`: every entry complete and valid, names and hashes unique.
fn api_keys(c: &mut Check<'_>, raw: Vec<RawApiKey>) -> Vec<ApiKeyConfig> {
    const ANCHOR: &str = "api.keys";
    let mut keys: Vec<ApiKeyConfig> = Vec::with_capacity(raw.len());
    for (index, entry) in raw.into_iter().enumerate() {
        let at = |name: &str| format!("{ANCHOR}[{}].{name}", index + 1);
        let before = c.found;
        let name = match c.text(&at("name"), entry.name) {
            None => {
                c.fail_within(
                    ANCHOR,
                    &at("name"),
                    "missing; every key needs a unique name (logged instead of the key)",
                );
                None
            }
            Some(name) => match check_key_name(&name) {
                Err(e) => {
                    c.fail_within(ANCHOR, &at("name"), e);
                    None
                }
                Ok(()) => {
                    let lower = name.to_ascii_lowercase();
                    match keys
                        .iter()
                        .position(|k| k.name.to_ascii_lowercase() == lower)
                    {
                        Some(first) => {
                            c.fail_within(
                                ANCHOR,
                                &at("name"),
                                format!(
                                    "duplicate name: keys #{} and #{} are both {name:?}; names                                      must be unique",
                                    first + 1,
                                    index + 1
                                ),
                            );
                            None
                        }
                        None => Some(name),
                    }
                }
            },
        };
        let role = match c.text(&at("role"), entry.role) {
            None => {
                c.fail_within(ANCHOR, &at("role"), "missing; use read, trade or admin");
                None
            }
            Some(role) => match role
                .to_ascii_lowercase()
                .parse::<crate::api::access::Role>()
            {
                Ok(role) => Some(role),
                Err(e) => {
                    c.fail_within(ANCHOR, &at("role"), e);
                    None
                }
            },
        };
        let key_sha256 = match c.text(&at("key_sha256"), entry.key_sha256) {
            None => {
                c.fail_within(
                    ANCHOR,
                    &at("key_sha256"),
                    "missing; paste the line `vibex keys new` printed (the SHA-256 of the key,                      never the key itself)",
                );
                None
            }
            Some(text) => match parse_digest(&text) {
                None => {
                    c.fail_within(
                        ANCHOR,
                        &at("key_sha256"),
                        format!(
                            "is not a SHA-256 in hex (64 hex digits, {} characters given);                              store the hash `vibex keys new` prints, never the key itself",
                            text.chars().count()
                        ),
                    );
                    None
                }
                Some(digest) => match keys.iter().position(|k| k.key_sha256 == digest) {
                    Some(first) => {
                        c.fail_within(
                            ANCHOR,
                            &at("key_sha256"),
                            format!(
                                "keys #{} and #{} have the same hash; each key is issued to one                                  name",
                                first + 1,
                                index + 1
                            ),
                        );
                        None
                    }
                    None => Some(digest),
                },
            },
        };
        let accounts = match entry.accounts {
            None => None,
            Some(input) => match parse_key_scope(input) {
                Ok(ids) => Some(ids),
                Err(e) => {
                    c.fail_within(ANCHOR, &at("accounts"), e);
                    None
                }
            },
        };
        if let (Some(name), Some(role), Some(key_sha256), true) =
            (name, role, key_sha256, c.found == before)
        {
            keys.push(ApiKeyConfig {
                name,
                role,
                key_sha256,
                accounts,
            });
        }
    }
    keys
}

/// Checks that every account a key's scope names is configured.
pub(crate) fn key_scopes(
    keys: &[ApiKeyConfig],
    accounts: &[AccountConfig],
    loc: &dyn Locate,
    problems: &mut Vec<String>,
) {
    for (index, key) in keys.iter().enumerate() {
        for id in key.accounts.iter().flatten() {
            if !accounts.iter().any(|a| a.id.as_str() == id) {
                problems.push(format!(
                    "{}: key {:?} names account {id:?}, which is not configured (configured: {})",
                    loc.at_within("api.keys", &format!("api.keys[{}].accounts", index + 1)),
                    key.name,
                    accounts
                        .iter()
                        .map(|a| a.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
}

/// `api.cors_origins`: each an origin (`https://host[:port]`, no path), none twice.
fn cors_origins(c: &mut Check<'_>, raw: Vec<Scalar>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (index, item) in raw.into_iter().enumerate() {
        let field = format!("api.cors_origins[{}]", index + 1);
        let Some(text) = c.text(&field, Some(item)) else {
            c.fail_within(
                "api.cors_origins",
                &field,
                "is empty; write an origin like https://dash.example.com",
            );
            continue;
        };
        match origin_of(&text) {
            Some(origin) if out.contains(&origin) => {
                c.fail_within("api.cors_origins", &field, format!("{text:?} is listed twice"));
            }
            Some(origin) => out.push(origin),
            None => c.fail_within(
                "api.cors_origins",
                &field,
                format!(
                    "{text:?} is not an origin; write scheme, host and port only, like                      https://dash.example.com or http://localhost:5173 (no path, no '*')"
                ),
            ),
        }
    }
    out
}

/// The origin as browsers send it (`scheme://host[:port]`, lower case, default port
/// left out), or `None` when `text` is not just an http(s) origin.
fn origin_of(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let bare = matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !bare {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn log_level(c: &mut Check<'_>, value: Option<Scalar>) -> String {
    let Some(level) = c.text("log_level", value) else {
        return super::DEFAULT_LOG_LEVEL.to_string();
    };
    let lower = level.to_ascii_lowercase();
    let lower = if lower == "warn" {
        "warning".to_string()
    } else {
        lower
    };
    if LOG_LEVELS.contains(&lower.as_str()) {
        lower
    } else {
        c.fail(
            "log_level",
            format!(
                "{level:?} is not a log level; use one of {}",
                LOG_LEVELS.join(", ")
            ),
        );
        super::DEFAULT_LOG_LEVEL.to_string()
    }
}

fn database_url(c: &mut Check<'_>, value: Option<Scalar>) -> Option<Secret> {
    let secret = c.secret("database_url", value);
    if secret.is_empty() {
        return None;
    }
    match url::Url::parse(secret.expose()) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => Some(secret),
        // Never echo the value: it holds a password.
        _ => {
            c.fail(
                "database_url",
                "is not a PostgreSQL URL (postgres://user:password@host:5432/dbname); leave it \
                 unset to use the embedded database",
            );
            None
        }
    }
}

fn market_data(c: &mut Check<'_>, raw: RawMarketData) -> MarketDataSettings {
    MarketDataSettings {
        kline_limit: c
            .whole("market_data.kline_limit", raw.kline_limit, 60, 1500)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(super::DEFAULT_KLINE_LIMIT),
        max_poll_interval: c
            .positive_duration("market_data.max_poll_interval", raw.max_poll_interval)
            .unwrap_or(super::DEFAULT_MAX_POLL_INTERVAL),
        request_timeout: c
            .positive_duration("market_data.request_timeout", raw.request_timeout)
            .unwrap_or(super::DEFAULT_REQUEST_TIMEOUT),
        max_retries: c
            .whole("market_data.max_retries", raw.max_retries, 0, 100)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(super::DEFAULT_MAX_RETRIES),
    }
}

/// The `storage:` block: the queue must hold at least one batch.
fn storage(c: &mut Check<'_>, raw: RawStorage) -> StorageSettings {
    let d = StorageSettings::default();
    let batch_rows = c
        .whole("storage.batch_rows", raw.batch_rows, 1, 100_000)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(d.batch_rows);
    let queue_capacity = c
        .whole(
            "storage.queue_capacity",
            raw.queue_capacity,
            100,
            10_000_000,
        )
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(d.queue_capacity);
    if queue_capacity < batch_rows {
        c.fail(
            "storage.queue_capacity",
            format!(
                "{queue_capacity} is below storage.batch_rows ({batch_rows}); the queue must \
                 hold at least one batch"
            ),
        );
    }
    StorageSettings {
        queue_capacity,
        batch_rows,
        slow_commit: c
            .positive_duration("storage.slow_commit", raw.slow_commit)
            .unwrap_or(d.slow_commit),
        halt_entries_after: c
            .positive_duration("storage.halt_entries_after", raw.halt_entries_after)
            .unwrap_or(d.halt_entries_after),
    }
}
