//! The one validated configuration of the daemon (figment).
//!
//! Precedence, lowest first: built-in defaults < `vibex.toml` < `accounts.yaml` < `.env`
//! < environment variables < command-line flags. Entry point: [`load`]. Invariant: a
//! [`Settings`] value exists only after every check passed; every error names the file,
//! the account and the field. Secrets are [`Secret`]s and print masked.

use crate::domain::types::{AccountId, Asset};
use crate::secret::Secret;
use rust_decimal::Decimal;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Where the configuration comes from; every field is optional and has a default.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--config FILE` (default `vibex.toml`, optional when absent).
    pub config_file: Option<PathBuf>,
    /// `--accounts FILE` (default `accounts.yaml`, optional when absent).
    pub accounts_file: Option<PathBuf>,
    /// `.env` file to read (default `.env` in the working directory, optional).
    pub dotenv_file: Option<PathBuf>,
}

/// Everything the daemon needs, validated.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// HTTP facade.
    pub api: ApiSettings,
    /// Directory of the JSON log files (`./logs`).
    pub log_dir: PathBuf,
    /// Directory of the embedded database and diary files (`./data`).
    pub data_dir: PathBuf,
    /// Minimum level written to the logs (`info`).
    pub log_level: String,
    /// External PostgreSQL; `None` starts the embedded private cluster.
    pub database_url: Option<Secret>,
    /// Market data polling.
    pub market_data: MarketDataSettings,
    /// The accounts to trade, in file order.
    pub accounts: Vec<AccountConfig>,
}

/// REST/WebSocket listener.
#[derive(Clone, Debug, Serialize)]
pub struct ApiSettings {
    /// `API_HOST`, default `0.0.0.0`.
    pub host: String,
    /// `API_PORT`, default 3000.
    pub port: u16,
}

/// How the MarketDataHubs talk to the venue's public endpoints.
#[derive(Clone, Debug, Serialize)]
pub struct MarketDataSettings {
    /// Klines fetched per series (5m and 4h); enough for EMA50 warm-up.
    pub kline_limit: u32,
    /// A hub polls at the shortest interval of its subscribers, but at least this often.
    #[serde(with = "humantime_serde_compat")]
    pub max_poll_interval: Duration,
    /// Per-request deadline.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
    /// Retries after the first attempt (with exponential backoff and jitter).
    pub max_retries: u32,
}

/// Paper (simulated) or live trading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TradingMode {
    /// The built-in paper venue; the default.
    Paper,
    /// Real orders on AsterDEX.
    Live,
}

/// A cycle cadence: one of the original labels (1m 3m 5m 15m 1h 4h 1d) or any duration
/// down to one second (`1s`, `30s`, `2h`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CycleInterval {
    /// As written in the configuration.
    pub label: String,
    /// As a duration.
    #[serde(skip)]
    pub duration: Duration,
}

/// One account as configured.
#[derive(Clone, Debug, Serialize)]
pub struct AccountConfig {
    /// Unique id.
    pub id: AccountId,
    /// Paper (default) or live.
    pub mode: TradingMode,
    /// Venue endpoint and credentials.
    pub asterdex: AsterConfig,
    /// Model endpoint and credentials.
    pub openrouter: OpenRouterConfig,
    /// `x-ai/grok-4`, or `builtin/<policy>` for a rule policy.
    pub llm_model: String,
    /// Base assets traded (`BTC` trades `BTCUSDT`).
    pub assets: Vec<Asset>,
    /// Cycle cadence.
    pub interval: CycleInterval,
    /// Leverage, 1..=20.
    pub leverage: u32,
    /// Hard risk limits.
    pub risk: RiskConfig,
    /// Paper venue parameters (used when `mode: paper`).
    pub paper: PaperConfig,
}

/// AsterDEX endpoint and credentials of one account.
#[derive(Clone, Debug, Serialize)]
pub struct AsterConfig {
    /// REST base URL, default `https://fapi.asterdex.com`. Paper accounts read market
    /// data from its public endpoints.
    pub base_url: String,
    /// HMAC mode key.
    pub api_key: Secret,
    /// HMAC mode secret.
    pub api_secret: Secret,
    /// Wallet-signer mode: main wallet address.
    pub user: Option<String>,
    /// Wallet-signer mode: API wallet address.
    pub signer: Option<String>,
    /// Wallet-signer mode: the signer's private key.
    pub private_key: Secret,
}

/// OpenAI-compatible model endpoint of one account.
#[derive(Clone, Debug, Serialize)]
pub struct OpenRouterConfig {
    /// Base URL, default `https://openrouter.ai/api/v1`.
    pub base_url: String,
    /// Bearer key.
    pub api_key: Secret,
}

/// Hard risk limits of one account.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RiskConfig {
    /// Largest notional of one position, USD.
    pub max_position_usd: Option<Decimal>,
    /// Stop new entries for the day after losing this percentage of the day's start equity.
    pub max_daily_loss_pct: Option<Decimal>,
    /// Minimum time between two trades of one asset.
    #[serde(with = "humantime_serde_compat::option")]
    pub cooldown: Option<Duration>,
    /// When true, the account opens nothing new.
    pub kill_switch: bool,
}

/// Paper venue parameters.
#[derive(Clone, Debug, Serialize)]
pub struct PaperConfig {
    /// Wallet balance of a new paper account, USD.
    pub starting_balance_usd: Decimal,
    /// Taker fee in basis points of notional.
    pub fee_bps: Decimal,
    /// Market-order slippage in basis points of price.
    pub slippage_bps: Decimal,
}

/// A configuration error: names the file, the account and the field where it can.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Loads, merges, interpolates and validates the configuration.
pub fn load(_opts: &LoadOptions) -> Result<Settings, ConfigError> {
    Err(ConfigError("configuration loading is not built yet".into()))
}

impl Settings {
    /// Every configured secret value (for the log masker).
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(url) = &self.database_url {
            out.push(url.expose().to_string());
        }
        for a in &self.accounts {
            for s in [
                &a.asterdex.api_key,
                &a.asterdex.api_secret,
                &a.asterdex.private_key,
                &a.openrouter.api_key,
            ] {
                if !s.is_empty() {
                    out.push(s.expose().to_string());
                }
            }
        }
        out
    }
}

/// Serialises durations as humantime text (`1h`, `30s`) in `config check` output.
mod humantime_serde_compat {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub mod option {
        use serde::Serializer;
        use std::time::Duration;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}
