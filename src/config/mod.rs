//! The one validated configuration of the daemon (figment).
//!
//! Entry points: [`load`] (reads the process environment) and [`load_with_env`] (takes
//! the variables as a map, for tests and tools); [`Settings::masked_json`] for
//! `vibex config check`; [`CycleInterval::parse`] for cadences given at runtime.
//!
//! Precedence, lowest first: built-in defaults < `vibex.toml` (`--config`) <
//! `accounts.yaml` (`--accounts`) < `.env` < environment variables < command-line flags
//! (which only choose the files). A file named by a flag must exist; a default one
//! (`./vibex.toml`, `./accounts.yaml`, `./.env`) is read when present. Top-level keys may
//! live in either file; `accounts:` is a list and is taken whole from the highest file
//! that has one (lists are not concatenated). The environment sets top-level keys through
//! `API_HOST`, `API_PORT`, `VIBEX_LOG_DIR`, `VIBEX_DATA_DIR`, `VIBEX_LOG_LEVEL` and
//! `DATABASE_URL` (an empty value counts as unset).
//!
//! String values of both files may use `${VAR}` and `${VAR:-default}` (`$${` is a literal
//! `${`); variables come from `.env` and the environment, the environment winning.
//! Interpolation runs on parsed values, so a missing variable is reported with its file,
//! account and field. When no file lists accounts, the original environment formats are
//! read (see `env_accounts`: `LLM_MODEL`, `ASSETS`, `INTERVAL`, ... for one account
//! `default`; `MULTI_ACCOUNT_MODE=true` + `ACCOUNT_IDS` + `LLM_MODEL_<id>`, ... for
//! several); when a file lists accounts, those variables are ignored (and
//! [`Settings::sources`] says so).
//!
//! Invariants: a [`Settings`] value exists only after every check passed; every error
//! line names the file (as given), the account (its id, or `#n` when the id is missing)
//! and the field — `accounts.yaml: account "a1": field "leverage": 50 is outside 1..=20` —
//! and all problems found are reported together, one per line. Nothing here mutates the
//! process environment. Secrets are [`Secret`]s: they print masked and never appear in
//! an error message.
//!
//! [`load`]: crate::config::load
//! [`load_with_env`]: crate::config::load_with_env
//! [`Settings`]: crate::config::Settings
//! [`Settings::masked_json`]: crate::config::Settings::masked_json
//! [`Settings::sources`]: crate::config::Settings::sources
//! [`CycleInterval::parse`]: crate::config::CycleInterval::parse
//! [`Secret`]: crate::secret::Secret

mod body;
mod env_accounts;
mod raw;
mod sources;
mod validate;

#[cfg(test)]
mod tests;

use crate::domain::types::{AccountId, Asset};
use crate::secret::Secret;
use figment::Figment;
use rust_decimal::Decimal;
use serde::Serialize;
use sources::{Layer, SourceFile};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use validate::check_key_name;
use validate::Locate;

/// Parses the account list of an API key as `vibex keys new --accounts a,b` takes it:
/// valid account ids, none twice, at least one.
pub fn parse_key_accounts(text: &str) -> Result<Vec<String>, String> {
    validate::parse_key_scope(raw::AssetsInput::Text(text.to_string()))
}
pub use body::{account_from_body, account_from_definition, BodyFormat};

/// Default `--config` file, looked up in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "vibex.toml";
/// Default `--accounts` file, looked up in the working directory.
pub const DEFAULT_ACCOUNTS_FILE: &str = "accounts.yaml";
/// Default dotenv file, looked up in the working directory.
pub const DEFAULT_DOTENV_FILE: &str = ".env";
/// Default listen address of the API.
pub const DEFAULT_API_HOST: &str = "0.0.0.0";
/// Default listen port of the API.
pub const DEFAULT_API_PORT: u16 = 3000;
/// Default directory of the log files.
pub const DEFAULT_LOG_DIR: &str = "./logs";
/// Default directory of the embedded database and diary files.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default log level.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// The accepted log levels, lowest first (`warn` is read as `warning`).
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warning", "error", "critical"];
/// Default klines per series.
pub const DEFAULT_KLINE_LIMIT: u32 = 150;
/// Default longest time between two polls of a market-data hub.
pub const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Default per-request deadline of market-data requests.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default retries of a market-data request.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default AsterDEX REST base URL.
pub const DEFAULT_ASTERDEX_BASE_URL: &str = "https://fapi.asterdex.com";
/// Default AsterDEX WebSocket base URL (user-data and market streams).
pub const DEFAULT_ASTERDEX_WS_URL: &str = "wss://fstream.asterdex.com";
/// Default `recvWindow` of signed AsterDEX requests, milliseconds.
pub const DEFAULT_RECV_WINDOW_MS: u64 = 5_000;
/// Largest `recvWindow` AsterDEX accepts, milliseconds.
pub const MAX_RECV_WINDOW_MS: u64 = 60_000;
/// Default OpenAI-compatible model endpoint.
pub const DEFAULT_OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";
/// The deterministic rule policies, used as `llm_model: builtin/<policy>`.
pub const BUILTIN_POLICIES: &[&str] = &["hold", "ema-rsi", "panic"];
/// Highest leverage an account may configure.
pub const MAX_LEVERAGE: u32 = 20;

/// Where the configuration comes from; every field is optional and has a default.
/// A file given here must exist; a default one is read only when present in the
/// working directory.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--config FILE` (default `vibex.toml`, optional when absent).
    pub config_file: Option<PathBuf>,
    /// `--accounts FILE` (default `accounts.yaml`, optional when absent).
    pub accounts_file: Option<PathBuf>,
    /// `.env` file to read (default `.env` in the working directory, optional when
    /// absent).
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
    /// The actor runtime (the arbiter pool).
    pub runtime: RuntimeSettings,
    /// The durable write path (queue, batches, spool, outage rule).
    pub storage: StorageSettings,
    /// Global kill switch (`kill_switch: true`): no account opens anything new.
    pub kill_switch: bool,
    /// Settings shared by every LLM account.
    pub llm: LlmGlobalSettings,
    /// The accounts to trade, in file order.
    pub accounts: Vec<AccountConfig>,
    /// What was read, lowest precedence first, then where the accounts came from
    /// (names only, never values), for `vibex config check`.
    pub sources: Vec<String>,
}

/// REST/WebSocket listener.
#[derive(Clone, Debug, Serialize)]
pub struct ApiSettings {
    /// `API_HOST`, default `0.0.0.0`.
    pub host: String,
    /// `API_PORT`, default 3000.
    pub port: u16,
    /// Server ping period on WebSockets (`api.ws_ping_interval`, default 30s).
    #[serde(with = "humantime_serde_compat")]
    pub ws_ping_interval: Duration,
    /// A WebSocket client silent this long is dropped (`api.ws_client_timeout`,
    /// default 75s: two missed pings and a half).
    #[serde(with = "humantime_serde_compat")]
    pub ws_client_timeout: Duration,
    /// The API keys (`api.keys`), stored as SHA-256 hashes; empty: no key is configured
    /// and the daemon serves only on loopback unless `allow_unauthenticated`.
    pub keys: Vec<ApiKeyConfig>,
    /// Serve without keys on any host (`api.allow_unauthenticated`, default false).
    /// Only meaningful while no key is configured.
    pub allow_unauthenticated: bool,
    /// Token buckets per key and per client address (`api.rate_limit`).
    pub rate_limit: RateLimitSettings,
    /// Origins (`https://dash.example.com`) allowed to call the API from a browser and
    /// to open its WebSockets (`api.cors_origins`, default none: no CORS headers).
    pub cors_origins: Vec<String>,
}

/// One API key as configured: who it is (its name, logged instead of the key), what it
/// may do, and which accounts it sees. The key itself is never stored: only its
/// SHA-256.
#[derive(Clone, Debug, Serialize)]
pub struct ApiKeyConfig {
    /// Unique name (`[A-Za-z0-9_.-]{1,64}`), written in logs and the audit trail.
    pub name: String,
    /// `read`, `trade` or `admin`.
    pub role: crate::api::access::Role,
    /// SHA-256 of the key.
    #[serde(serialize_with = "hex_digest")]
    pub key_sha256: [u8; 32],
    /// The accounts this key sees; `None`: every account.
    pub accounts: Option<Vec<String>>,
}

fn hex_digest<S: serde::Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(d))
}

/// A token bucket: a sustained rate and the burst a client may spend at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateBucket {
    /// Requests per second refilled (`per_second`, 1..=1000000).
    pub per_second: u32,
    /// Requests that may be made at once after a quiet spell (`burst`, 1..=1000000).
    pub burst: u32,
}

/// The API's rate limits (`api.rate_limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimitSettings {
    /// Each API key's bucket (`per_key`): requests authenticated by a key spend it.
    pub per_key: RateBucket,
    /// Each client address's bucket (`per_ip`): requests without a valid key spend it
    /// (unauthenticated callers on a keyless daemon, and failed authentications).
    pub per_ip: RateBucket,
}

/// Default bucket of one API key: far above what a dashboard polls.
pub const DEFAULT_RATE_PER_KEY: RateBucket = RateBucket {
    per_second: 100,
    burst: 200,
};
/// Default bucket of one client address for requests without a valid key.
pub const DEFAULT_RATE_PER_IP: RateBucket = RateBucket {
    per_second: 50,
    burst: 100,
};

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            per_key: DEFAULT_RATE_PER_KEY,
            per_ip: DEFAULT_RATE_PER_IP,
        }
    }
}

/// Default server ping period on WebSockets.
pub const DEFAULT_WS_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default silence after which a WebSocket client is dropped.
pub const DEFAULT_WS_CLIENT_TIMEOUT: Duration = Duration::from_secs(75);

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

/// The actor runtime.
#[derive(Clone, Debug, Serialize)]
pub struct RuntimeSettings {
    /// Arbiters (threads, each a single-threaded event loop) that every account tree
    /// and market-data hub runs on (`runtime.arbiters`, default: the number of cores).
    pub arbiters: usize,
}

/// The default size of the arbiter pool: the cores this process may use.
pub fn default_arbiters() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The durable write path (`src/store/`): how much it holds in memory, how large a
/// batch gets, when PostgreSQL counts as slow, and when an outage stops new entries.
#[derive(Clone, Debug, Serialize)]
pub struct StorageSettings {
    /// Rows the in-memory queue holds before producers wait (`storage.queue_capacity`).
    pub queue_capacity: usize,
    /// Most rows one transaction writes (`storage.batch_rows`).
    pub batch_rows: usize,
    /// A commit slower than this sends the following batches to the spool while the
    /// database catches up (`storage.slow_commit`).
    #[serde(with = "humantime_serde_compat")]
    pub slow_commit: Duration,
    /// While PostgreSQL has been unreachable for longer than this, no account opens a
    /// new position; closing and exits keep working (`storage.halt_entries_after`).
    #[serde(with = "humantime_serde_compat")]
    pub halt_entries_after: Duration,
}

/// Default rows held in memory by the write queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 50_000;
/// Default rows per write transaction.
pub const DEFAULT_BATCH_ROWS: usize = 5_000;
/// Default commit time above which PostgreSQL counts as slow.
pub const DEFAULT_SLOW_COMMIT: Duration = Duration::from_secs(5);
/// Default database outage after which new entries are refused.
pub const DEFAULT_HALT_ENTRIES_AFTER: Duration = Duration::from_secs(60);

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            batch_rows: DEFAULT_BATCH_ROWS,
            slow_commit: DEFAULT_SLOW_COMMIT,
            halt_entries_after: DEFAULT_HALT_ENTRIES_AFTER,
        }
    }
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

impl TradingMode {
    /// `paper` or `live`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TradingMode::Paper => "paper",
            TradingMode::Live => "live",
        }
    }
}

/// How the venue margins a position: per position (isolated) or from the whole wallet
/// (cross). Written as the venue writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MarginType {
    /// Each position has its own margin; a liquidation loses only that margin. The
    /// default.
    Isolated,
    /// All positions share the wallet's margin.
    Crossed,
}

impl MarginType {
    /// `ISOLATED` or `CROSSED`, as the venue's `marginType` parameter takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MarginType::Isolated => "ISOLATED",
            MarginType::Crossed => "CROSSED",
        }
    }
}

/// How a live account's signed AsterDEX requests are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningMode {
    /// HMAC-SHA256 with `asterdex.api_key` / `asterdex.api_secret`.
    Hmac,
    /// EIP-191 signatures of `asterdex.signer` (key `asterdex.private_key`) acting for the
    /// wallet `asterdex.user`.
    WalletSigner,
}

impl SigningMode {
    /// `hmac` or `wallet_signer`, as `config check` and the logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningMode::Hmac => "hmac",
            SigningMode::WalletSigner => "wallet_signer",
        }
    }
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
    /// Model call parameters (used by LLM accounts).
    pub llm: LlmConfig,
}

/// How a model is asked for structured output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// `response_format: json_schema` (strict) with the decision schema; the default.
    JsonSchema,
    /// `response_format: json_object`, for models without schema support.
    JsonObject,
    /// A forced `trade_decisions` tool call whose parameters are the schema.
    ToolCall,
    /// No `response_format` at all (the prompt still asks for JSON).
    None,
}

/// Price of a model per million tokens, USD (when the server reports no cost).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelPrice {
    /// Prompt (input) tokens.
    pub prompt_per_mtok: Decimal,
    /// Completion (output) tokens.
    pub completion_per_mtok: Decimal,
}

/// Per-account model call parameters (`llm:` block of an account).
#[derive(Clone, Debug, Serialize)]
pub struct LlmConfig {
    /// Sampling temperature, 0..=2 (default 0.2).
    pub temperature: f64,
    /// Completion budget in tokens (default 2000).
    pub max_tokens: u32,
    /// Deadline of one decision call, retries included (default 25s; at most 30s, the
    /// budget from fresh data to decision).
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// `json_schema` (default), `json_object`, `tool_call` or `none`.
    pub structured_output: StructuredOutput,
    /// Daily spending limit in USD; when reached the account holds until UTC midnight.
    pub max_cost_usd_per_day: Option<Decimal>,
    /// Directory with `system.md.j2` and `user.md.j2` overriding the shipped prompts.
    pub prompt_dir: Option<PathBuf>,
    /// Price of this account's model, overriding `llm.prices` of the top level.
    pub price: Option<ModelPrice>,
    /// Consecutive failed calls that open the circuit breaker (default 3).
    pub breaker_failures: u32,
    /// How long the breaker stays open before one trial call (default 5m).
    #[serde(with = "humantime_serde_compat")]
    pub breaker_cooldown: Duration,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            temperature: 0.2,
            max_tokens: 2000,
            timeout: Duration::from_secs(25),
            structured_output: StructuredOutput::JsonSchema,
            max_cost_usd_per_day: None,
            prompt_dir: None,
            price: None,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(300),
        }
    }
}

/// Settings shared by the LLM accounts (top-level `llm:` block).
#[derive(Clone, Debug, Serialize)]
pub struct LlmGlobalSettings {
    /// Sent as `HTTP-Referer` to OpenRouter (attribution), when set.
    pub app_url: Option<String>,
    /// Sent as `X-Title` to OpenRouter (default `vibex`).
    pub app_title: String,
    /// Price table by model id, for servers that report no cost.
    pub prices: std::collections::BTreeMap<String, ModelPrice>,
}

impl Default for LlmGlobalSettings {
    fn default() -> Self {
        LlmGlobalSettings {
            app_url: None,
            app_title: "vibex".into(),
            prices: Default::default(),
        }
    }
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
    /// Wallet-signer mode: the signer's private key (64 hex digits, optional `0x`).
    pub private_key: Secret,
    /// The complete credential set signed requests use. Always set on a live account;
    /// on a paper account, set when exactly one complete set is configured.
    pub signing: Option<SigningMode>,
    /// `recvWindow` of signed requests, milliseconds (`asterdex.recv_window_ms`,
    /// 1..=60000, default 5000).
    pub recv_window_ms: u64,
    /// Margin type set on each traded symbol (`asterdex.margin_type`, `ISOLATED` default
    /// or `CROSSED`).
    pub margin_type: MarginType,
    /// WebSocket base URL of the user-data and market streams (`asterdex.ws_url`, ws or
    /// wss, default `wss://fstream.asterdex.com`).
    pub ws_url: String,
}

impl Default for AsterConfig {
    /// The public AsterDEX venue, no credentials, default signing settings.
    fn default() -> Self {
        AsterConfig {
            base_url: DEFAULT_ASTERDEX_BASE_URL.to_string(),
            api_key: Secret::default(),
            api_secret: Secret::default(),
            user: None,
            signer: None,
            private_key: Secret::default(),
            signing: None,
            recv_window_ms: DEFAULT_RECV_WINDOW_MS,
            margin_type: MarginType::Isolated,
            ws_url: DEFAULT_ASTERDEX_WS_URL.to_string(),
        }
    }
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
    /// Reversing an open position needs the model to ask for it this many cycles in a
    /// row (default 2; 1 turns the rule off).
    pub hysteresis_cycles: u32,
}

/// Paper venue parameters.
#[derive(Clone, Debug, Serialize)]
pub struct PaperConfig {
    /// Wallet balance of a new paper account, USD.
    pub starting_balance_usd: Decimal,
    /// Taker fee in basis points of notional (0 <= x < 10000, default 5).
    pub fee_bps: Decimal,
    /// Maker fee (resting orders) in basis points of notional (0 <= x < 10000, default 2).
    pub maker_fee_bps: Decimal,
    /// Market-order slippage in basis points of price.
    pub slippage_bps: Decimal,
    /// Maintenance margin as a fraction of notional; a position whose margin falls below
    /// it is liquidated (0 < x < 0.5, default 0.005).
    pub maintenance_margin_rate: Decimal,
}

/// A configuration error: every problem found, one per line, each naming the file, the
/// account and the field where it can.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn from_problems(problems: Vec<String>) -> Self {
        ConfigError(problems.join("\n"))
    }

    /// The problems, one per line.
    pub fn problems(&self) -> impl Iterator<Item = &str> {
        self.0.lines()
    }
}

/// Loads, merges, interpolates and validates the configuration, reading the process
/// environment (never changing it). See the module documentation for the precedence.
pub fn load(opts: &LoadOptions) -> Result<Settings, ConfigError> {
    // `vars_os`, not `vars`: a variable that is not Unicode must not panic the daemon;
    // it cannot be one of ours, so it is skipped.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_with_env(opts, &env)
}

/// [`load`] with the environment given as a map: the same rules, no process state.
pub fn load_with_env(
    opts: &LoadOptions,
    env: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    load_in(opts, env, Path::new(""))
}

/// Names of the layers, as figment metadata, and which of them are variables.
struct Layers {
    env_layers: Vec<String>,
}

impl Layers {
    fn is_env(&self, name: &str) -> bool {
        self.env_layers.iter().any(|l| l == name)
    }
}

/// Locates a top-level key by the layer its merged value came from.
struct TopLevelLocate<'a> {
    figment: &'a Figment,
    layers: &'a Layers,
}

impl Locate for TopLevelLocate<'_> {
    fn at(&self, field: &str) -> String {
        let name = self
            .figment
            .find_metadata(field)
            .map_or_else(|| "configuration".to_string(), |m| m.name.to_string());
        render_location(&name, field, self.layers)
    }

    fn at_within(&self, anchor: &str, field: &str) -> String {
        let name = self
            .figment
            .find_metadata(anchor)
            .map_or_else(|| "configuration".to_string(), |m| m.name.to_string());
        render_location(&name, field, self.layers)
    }
}

fn render_location(source: &str, field: &str, layers: &Layers) -> String {
    match sources::top_level_var(field) {
        Some(var) if layers.is_env(source) => format!("{source}: variable {var}"),
        _ if field.is_empty() => source.to_string(),
        _ => format!("{source}: field \"{field}\""),
    }
}

/// The message of one figment (serde) error, without its location. Values of secret
/// fields are never shown.
fn describe_kind(kind: &figment::error::Kind, field: &str) -> String {
    use figment::error::Kind;
    let secret = raw::SECRET_FIELDS.contains(&field);
    let expected = |e: &str| {
        if e.starts_with("struct ") {
            "a mapping of keys".to_string()
        } else {
            e.to_string()
        }
    };
    match kind {
        Kind::UnknownField(key, []) => {
            format!("unknown key {key:?}; this block takes no keys")
        }
        Kind::UnknownField(key, known) => {
            format!("unknown key {key:?}; expected one of: {}", known.join(", "))
        }
        Kind::InvalidType(_, e) if secret => format!("expected {}", expected(e)),
        Kind::InvalidType(actual, e) => format!("expected {}, found {actual}", expected(e)),
        Kind::MissingField(name) => format!("missing key {name:?}"),
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The built-in defaults of the top-level keys (accounts have no defaults here: their
/// defaults are applied per field by validation).
fn defaults() -> figment::value::Dict {
    use figment::value::{Dict, Value};
    let mut api = Dict::new();
    api.insert("host".into(), Value::from(DEFAULT_API_HOST));
    api.insert("port".into(), Value::from(DEFAULT_API_PORT));
    api.insert(
        "ws_ping_interval".into(),
        Value::from(humantime::format_duration(DEFAULT_WS_PING_INTERVAL).to_string()),
    );
    api.insert(
        "ws_client_timeout".into(),
        Value::from(humantime::format_duration(DEFAULT_WS_CLIENT_TIMEOUT).to_string()),
    );
    let mut md = Dict::new();
    md.insert("kline_limit".into(), Value::from(DEFAULT_KLINE_LIMIT));
    md.insert(
        "max_poll_interval".into(),
        Value::from(humantime::format_duration(DEFAULT_MAX_POLL_INTERVAL).to_string()),
    );
    md.insert(
        "request_timeout".into(),
        Value::from(humantime::format_duration(DEFAULT_REQUEST_TIMEOUT).to_string()),
    );
    md.insert("max_retries".into(), Value::from(DEFAULT_MAX_RETRIES));
    let mut storage = Dict::new();
    storage.insert("queue_capacity".into(), Value::from(DEFAULT_QUEUE_CAPACITY));
    storage.insert("batch_rows".into(), Value::from(DEFAULT_BATCH_ROWS));
    storage.insert(
        "slow_commit".into(),
        Value::from(humantime::format_duration(DEFAULT_SLOW_COMMIT).to_string()),
    );
    storage.insert(
        "halt_entries_after".into(),
        Value::from(humantime::format_duration(DEFAULT_HALT_ENTRIES_AFTER).to_string()),
    );
    let mut top = Dict::new();
    top.insert("api".into(), Value::from(api));
    top.insert("log_dir".into(), Value::from(DEFAULT_LOG_DIR));
    top.insert("data_dir".into(), Value::from(DEFAULT_DATA_DIR));
    top.insert("log_level".into(), Value::from(DEFAULT_LOG_LEVEL));
    top.insert("market_data".into(), Value::from(md));
    top.insert("storage".into(), Value::from(storage));
    top
}

/// The whole load, with the default files looked up in `base` (the working directory
/// in production; a temporary directory in tests).
fn load_in(
    opts: &LoadOptions,
    env: &HashMap<String, String>,
    base: &Path,
) -> Result<Settings, ConfigError> {
    // 1. Find and read the files. A file that cannot be read or parsed stops here: the
    //    rest would only produce confusing follow-up errors.
    let mut problems = Vec::new();
    let mut found = |explicit: &Option<PathBuf>, name: &str, flag: &str| {
        sources::locate(explicit.as_deref(), name, flag, base).unwrap_or_else(|e| {
            problems.push(e);
            None
        })
    };
    let toml_file = found(&opts.config_file, DEFAULT_CONFIG_FILE, "--config");
    let yaml_file = found(&opts.accounts_file, DEFAULT_ACCOUNTS_FILE, "--accounts");
    let dotenv_file = found(&opts.dotenv_file, DEFAULT_DOTENV_FILE, "the dotenv option");

    let dotenv = match &dotenv_file {
        Some(file) => sources::read_dotenv(file).unwrap_or_else(|e| {
            problems.push(e);
            HashMap::new()
        }),
        None => HashMap::new(),
    };
    let mut parse =
        |file: &Option<SourceFile>,
         read: fn(&SourceFile) -> Result<figment::value::Dict, String>| {
            file.as_ref().map(|f| {
                let dict = read(f).unwrap_or_else(|e| {
                    problems.push(e);
                    figment::value::Dict::new()
                });
                (f.shown.clone(), dict)
            })
        };
    let toml = parse(&toml_file, sources::read_toml);
    let yaml = parse(&yaml_file, sources::read_yaml);
    if !problems.is_empty() {
        return Err(ConfigError::from_problems(problems));
    }

    // 2. Interpolate `${VAR}` in the parsed files (the environment wins over `.env`).
    let mut vars = dotenv.clone();
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut files = Vec::new();
    let mut interpolation = sources::InterpolationProblems::default();
    for (shown, mut dict) in [toml, yaml].into_iter().flatten() {
        sources::interpolate_file(&mut dict, &shown, &vars, &mut interpolation);
        files.push((shown, dict));
    }

    // 3. Merge with figment, one named layer per source.
    let mut source_list = vec!["built-in defaults".to_string()];
    let mut figment = Figment::from(Layer::new("built-in defaults", defaults()));
    for (shown, dict) in files {
        source_list.push(shown.clone());
        figment = figment.merge(Layer::new(shown, dict));
    }
    let mut layers = Layers {
        env_layers: Vec::new(),
    };
    if let Some(file) = &dotenv_file {
        let (dict, used) = sources::env_layer(&dotenv);
        source_list.push(describe_vars(&file.shown, &used));
        layers.env_layers.push(file.shown.clone());
        figment = figment.merge(Layer::new(file.shown.clone(), dict));
    }
    let (dict, used) = sources::env_layer(env);
    if !used.is_empty() {
        source_list.push(describe_vars("environment", &used));
    }
    layers.env_layers.push("environment".to_string());
    figment = figment.merge(Layer::new("environment", dict));

    // 4. Top-level keys.
    let top = match figment.extract::<raw::RawTop>() {
        Ok(raw_top) => {
            let locate = TopLevelLocate {
                figment: &figment,
                layers: &layers,
            };
            validate::top_level(raw_top, &locate, &mut problems)
        }
        Err(errors) => {
            for e in errors {
                let source = e
                    .metadata
                    .as_ref()
                    .map_or_else(|| "configuration".to_string(), |m| m.name.to_string());
                let field = sources::join_path(&e.path);
                let message = describe_kind(&e.kind, &field);
                problems.push(format!(
                    "{}: {message}",
                    render_location(&source, &field, &layers)
                ));
            }
            None
        }
    };

    // 5. Accounts: from the files, else from the original environment formats.
    let mut accounts = Vec::new();
    let mut env_problems = Vec::new();
    let from_env = env_accounts::accounts_from_env(&vars, &mut env_problems);
    match file_accounts(&figment, &mut problems) {
        Some((shown, list)) => {
            source_list.push(format!("accounts from {shown}"));
            if !from_env.present.is_empty() {
                source_list.push(format!(
                    "ignored: {} (the accounts come from {shown})",
                    from_env.present.join(", ")
                ));
            }
            let mut seen = Vec::new();
            for (index, value) in list.iter().enumerate() {
                let id = sources::raw_id_of_value(value);
                let locate = validate::FileAccount {
                    file: &shown,
                    label: sources::account_label(id.as_deref(), index),
                };
                if let Some(id) = &id {
                    check_unique(id, index, &mut seen, &locate, &mut problems);
                }
                let account = match value.deserialize::<raw::RawAccount>() {
                    Ok(raw_account) => validate::account(raw_account, &locate, &mut problems),
                    Err(errors) => {
                        for e in errors {
                            let field = sources::join_path(&e.path);
                            let message = describe_kind(&e.kind, &field);
                            problems.push(format!("{}: {message}", locate.at(&field)));
                        }
                        None
                    }
                };
                accounts.extend(account);
            }
        }
        None => {
            problems.append(&mut env_problems);
            if from_env.present.is_empty() {
                problems.push(NO_ACCOUNTS.to_string());
            } else if !from_env.accounts.is_empty() {
                source_list.push(format!("accounts from {}", from_env.description));
            }
            // Ids are unique here by construction (`ACCOUNT_IDS` is checked).
            for env_account in from_env.accounts {
                let place = env_account.place;
                accounts.extend(validate::account(env_account.raw, &place, &mut problems));
            }
        }
    }

    // An API key's scope names accounts that must exist.
    if let Some(top) = &top {
        let locate = TopLevelLocate {
            figment: &figment,
            layers: &layers,
        };
        validate::key_scopes(&top.api.keys, &accounts, &locate, &mut problems);
    }

    // A value whose `${VAR}` failed would also fail validation as written: report
    // only the missing variable.
    problems.retain(|p| !interpolation.covers(p));
    let mut all = interpolation.problems;
    all.append(&mut problems);
    let problems = all;

    match top {
        Some(top) if problems.is_empty() => Ok(Settings {
            api: top.api,
            log_dir: PathBuf::from(top.log_dir),
            data_dir: PathBuf::from(top.data_dir),
            log_level: top.log_level,
            database_url: top.database_url,
            market_data: top.market_data,
            runtime: top.runtime,
            storage: top.storage,
            kill_switch: top.kill_switch,
            llm: top.llm,
            accounts,
            sources: source_list,
        }),
        _ => Err(ConfigError::from_problems(problems)),
    }
}

const NO_ACCOUNTS: &str = "no accounts configured: write an accounts.yaml in the working \
     directory (or pass --accounts FILE) with an `accounts:` list (each with id, llm_model, \
     assets and interval), or set LLM_MODEL, ASSETS and INTERVAL for one account, or \
     MULTI_ACCOUNT_MODE=true with ACCOUNT_IDS=a1,a2 and LLM_MODEL_a1, ASSETS_a1, INTERVAL_a1, ...";

fn describe_vars(source: &str, used: &[&str]) -> String {
    if used.is_empty() {
        source.to_string()
    } else {
        format!("{source} ({})", used.join(", "))
    }
}

/// The merged `accounts:` list and the file it came from; `None` when no file lists any.
fn file_accounts(
    figment: &Figment,
    problems: &mut Vec<String>,
) -> Option<(String, Vec<figment::value::Value>)> {
    use figment::value::Value;
    let value = figment.find_value("accounts").ok()?;
    let shown = figment
        .get_metadata(value.tag())
        .map_or_else(|| "configuration".to_string(), |m| m.name.to_string());
    match value {
        Value::Array(_, list) if list.is_empty() => None,
        Value::Array(_, list) => Some((shown, list)),
        Value::Empty(..) => None,
        _ => {
            problems.push(format!(
                "{shown}: field \"accounts\": expected a list of accounts (each item \
                 starting with `- id: ...`)"
            ));
            Some((shown, Vec::new()))
        }
    }
}

/// Refuses a second account with the same id (compared case-insensitively: ids name
/// log files and environment variables, where case may not be preserved). Checked on
/// the ids as written, so a duplicate is reported even when the accounts have other
/// problems.
fn check_unique(
    id: &str,
    index: usize,
    seen: &mut Vec<(String, usize)>,
    locate: &dyn Locate,
    problems: &mut Vec<String>,
) {
    let key = id.to_ascii_lowercase();
    match seen.iter().find(|(k, _)| *k == key) {
        Some((_, first)) => problems.push(format!(
            "{}: duplicate id: accounts #{} and #{} are both {id:?}; ids must be unique",
            locate.at("id"),
            first + 1,
            index + 1,
        )),
        None => seen.push((key, index)),
    }
}

impl AccountConfig {
    /// The builtin policy name (`hold` for `builtin/hold`), or `None` for a model.
    pub fn builtin_policy(&self) -> Option<&str> {
        self.llm_model.strip_prefix("builtin/")
    }

    /// For a live account, the one line that says it sends real orders, where, and how
    /// they are signed — `LIVE: a1 (real orders on https://fapi.asterdex.com, signing:
    /// hmac)` — for `config check` and the start-up warning. `None` for a paper account.
    /// Names no secret.
    pub fn live_banner(&self) -> Option<String> {
        if self.mode != TradingMode::Live {
            return None;
        }
        let signing = self.asterdex.signing.map_or("none", SigningMode::as_str);
        Some(format!(
            "LIVE: {} (real orders on {}, signing: {signing})",
            self.id, self.asterdex.base_url
        ))
    }
}

impl Settings {
    /// Every configured secret value (for the log masker): the database URL and its
    /// password on its own, and each account's keys, secrets and private key.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(url) = &self.database_url {
            out.push(url.expose().to_string());
            if let Some(password) = url::Url::parse(url.expose())
                .ok()
                .and_then(|u| u.password().map(str::to_string))
            {
                out.push(percent_decode(&password));
                out.push(password);
            }
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
        out.sort();
        out.dedup();
        out
    }

    /// The resolved configuration as JSON with every secret masked (`***`, or
    /// `(not set)`), for `vibex config check`.
    pub fn masked_json(&self) -> serde_json::Value {
        // Secrets serialize masked, so plain serialization is already safe. It cannot
        // fail for these types; should it ever, say so rather than panic.
        serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({ "error": format!("cannot render: {e}") }))
    }

    /// The account with this id.
    pub fn account(&self, id: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.id.as_str() == id)
    }
}

/// Decodes `%XX` escapes (a URL's password is stored percent-encoded).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
