//! Deserialize-side shapes of the configuration as written in `vibex.toml` and
//! `accounts.yaml`.
//!
//! Invariants: every struct denies unknown keys (so a typo is an error, never silently
//! ignored), and every leaf is a [`Scalar`] or [`AssetsInput`]: serde only checks the
//! *shape* here; typing, ranges and defaults happen in `validate`, where an error can name
//! the file, the account and the field.

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// One leaf value as written: text, a number kept as its text, or a boolean.
///
/// Numbers keep their text so decimals never go through `f64` arithmetic: an integer is
/// its digits; a float coming from a YAML/TOML parser is rendered with Rust's shortest
/// round-trip formatting, so `0.1` stays `"0.1"`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    /// A string (after `${VAR}` interpolation).
    Text(String),
    /// A number, as text.
    Number(String),
    /// `true` / `false`.
    Bool(bool),
}

impl Scalar {
    /// How the value reads in an error message: text quoted, numbers and booleans bare.
    pub(crate) fn shown(&self) -> String {
        match self {
            Scalar::Text(s) => format!("{s:?}"),
            Scalar::Number(n) => n.clone(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a single value (text, a number or true/false)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Number(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(Scalar::Number(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        // `Display` for f64 is the shortest text that parses back to the same f64 and
        // never uses exponent notation: 0.1 -> "0.1", 1e-7 -> "0.0000001".
        Ok(Scalar::Number(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(v))
    }
}

/// `assets:` as a list (`[BTC, ETH]`) or as one string (`"BTC,ETH"`, `"BTC ETH"`); also
/// the `accounts:` scope of an API key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AssetsInput {
    /// A YAML/TOML list.
    List(Vec<Scalar>),
    /// A comma- or space-separated string (also the environment formats).
    Text(String),
}

impl<'de> Deserialize<'de> for AssetsInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AssetsVisitor)
    }
}

struct AssetsVisitor;

impl<'de> Visitor<'de> for AssetsVisitor {
    type Value = AssetsInput;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list like [BTC, ETH] or a string like \"BTC,ETH\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AssetsInput, E> {
        Ok(AssetsInput::Text(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AssetsInput, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Scalar>()? {
            items.push(item);
        }
        Ok(AssetsInput::List(items))
    }
}

/// The top level of the merged configuration (defaults, `vibex.toml`, `accounts.yaml`,
/// `.env`, environment). `accounts` is only checked for presence here; each account is
/// read on its own so that its errors can name it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTop {
    pub api: Option<RawApi>,
    pub log_dir: Option<Scalar>,
    pub data_dir: Option<Scalar>,
    pub log_level: Option<Scalar>,
    pub database_url: Option<Scalar>,
    pub market_data: Option<RawMarketData>,
    pub runtime: Option<RawRuntime>,
    pub storage: Option<RawStorage>,
    pub kill_switch: Option<Scalar>,
    pub llm: Option<RawLlmGlobal>,
    #[allow(dead_code)]
    pub accounts: Option<IgnoredAny>,
}

/// Top-level `llm:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLlmGlobal {
    pub app_url: Option<Scalar>,
    pub app_title: Option<Scalar>,
    pub prices: Option<std::collections::BTreeMap<String, RawPrice>>,
}

/// A model price (`{prompt_per_mtok, completion_per_mtok}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrice {
    pub prompt_per_mtok: Option<Scalar>,
    pub completion_per_mtok: Option<Scalar>,
}

/// `llm:` block of an account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLlm {
    pub temperature: Option<Scalar>,
    pub max_tokens: Option<Scalar>,
    pub timeout: Option<Scalar>,
    pub structured_output: Option<Scalar>,
    pub max_cost_usd_per_day: Option<Scalar>,
    pub prompt_dir: Option<Scalar>,
    pub price: Option<RawPrice>,
    pub circuit_breaker: Option<RawBreaker>,
}

/// `llm.circuit_breaker:` block of an account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    pub failures: Option<Scalar>,
    pub cooldown: Option<Scalar>,
}

/// `api:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub host: Option<Scalar>,
    pub port: Option<Scalar>,
    pub ws_ping_interval: Option<Scalar>,
    pub ws_client_timeout: Option<Scalar>,
    pub keys: Option<Vec<RawApiKey>>,
    pub allow_unauthenticated: Option<Scalar>,
    pub rate_limit: Option<RawRateLimit>,
    pub cors_origins: Option<Vec<Scalar>>,
}

/// One entry of `api.keys:` (what `vibex keys new` prints).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiKey {
    pub name: Option<Scalar>,
    pub role: Option<Scalar>,
    pub key_sha256: Option<Scalar>,
    pub accounts: Option<AssetsInput>,
}

/// `api.rate_limit:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub per_key: Option<RawBucket>,
    pub per_ip: Option<RawBucket>,
}

/// One token bucket (`{per_second, burst}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBucket {
    pub per_second: Option<Scalar>,
    pub burst: Option<Scalar>,
}

/// `market_data:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMarketData {
    pub kline_limit: Option<Scalar>,
    pub max_poll_interval: Option<Scalar>,
    pub request_timeout: Option<Scalar>,
    pub max_retries: Option<Scalar>,
}

/// `runtime:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    pub arbiters: Option<Scalar>,
}

/// `storage:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub queue_capacity: Option<Scalar>,
    pub batch_rows: Option<Scalar>,
    pub slow_commit: Option<Scalar>,
    pub halt_entries_after: Option<Scalar>,
}

/// One entry of `accounts:` (also built from the original environment formats).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccount {
    pub id: Option<Scalar>,
    pub mode: Option<Scalar>,
    pub asterdex: Option<RawAster>,
    pub openrouter: Option<RawOpenRouter>,
    pub llm_model: Option<Scalar>,
    pub assets: Option<AssetsInput>,
    pub interval: Option<Scalar>,
    pub leverage: Option<Scalar>,
    pub risk: Option<RawRisk>,
    pub paper: Option<RawPaper>,
    pub llm: Option<RawLlm>,
}

/// `asterdex:` block of an account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAster {
    pub base_url: Option<Scalar>,
    pub api_key: Option<Scalar>,
    pub api_secret: Option<Scalar>,
    pub user: Option<Scalar>,
    pub signer: Option<Scalar>,
    pub private_key: Option<Scalar>,
    pub recv_window_ms: Option<Scalar>,
    pub margin_type: Option<Scalar>,
    pub ws_url: Option<Scalar>,
}

/// `openrouter:` block of an account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOpenRouter {
    pub base_url: Option<Scalar>,
    pub api_key: Option<Scalar>,
}

/// `risk:` block of an account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRisk {
    pub max_position_usd: Option<Scalar>,
    pub max_daily_loss_pct: Option<Scalar>,
    pub cooldown: Option<Scalar>,
    pub kill_switch: Option<Scalar>,
    pub hysteresis_cycles: Option<Scalar>,
}

/// `paper:` block of an account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPaper {
    pub starting_balance_usd: Option<Scalar>,
    pub fee_bps: Option<Scalar>,
    pub maker_fee_bps: Option<Scalar>,
    pub slippage_bps: Option<Scalar>,
    pub maintenance_margin_rate: Option<Scalar>,
}

/// Field paths of secrets: errors about them never show the value.
pub(crate) const SECRET_FIELDS: &[&str] = &[
    "database_url",
    "asterdex.api_key",
    "asterdex.api_secret",
    "asterdex.private_key",
    "openrouter.api_key",
];
