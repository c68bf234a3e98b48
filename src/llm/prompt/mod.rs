//! Prompts live in template files and are rendered with a [`PromptContext`].
//!
//! Entry points:
//! - [`PromptTemplates::embedded`] — the default templates, `prompts/v1/*.md.j2`, compiled
//!   into the binary (it works from any directory); version `v1`.
//! - [`PromptTemplates::from_dir`] — a per-account override (`llm.prompt_dir`): a
//!   directory holding `system.md.j2` and `user.md.j2`, and optionally a `VERSION` file.
//! - [`PromptTemplates::render`] — one cycle's system and user messages, with the version
//!   recorded in the audit (`llm_interactions`).
//! - [`estimate_tokens`] — a cheap size estimate for runtime budgeting.
//!
//! # Versions
//! The embedded templates are `v1` (the directory they live in). A directory's version is
//! `<label>@<hash>`: the label is the first line of its `VERSION` file, or
//! `dir:<directory name>` without one; the hash is the first 8 hex digits of the FNV-1a
//! hash of both templates, so an edit without a new label still records a new version.
//!
//! # Invariants
//! - Templates are checked when they are loaded, not when a cycle needs them: a missing
//!   file, a syntax error, or a template that fails on a probe context (for example a
//!   misspelt variable) is a [`PromptError`] naming the file.
//! - Undefined variables are errors (strict mode): a typo never renders as "".
//! - The default system message depends only on the account and its rules, never on the
//!   cycle (time, market, positions), so providers can cache it as a stable prefix.
//! - Rendering never panics, whatever the context: no snapshots, a default account,
//!   `None` indicators and empty lists all render (`n/a`, `none`).
//!
//! # Template variables
//! | variable | what |
//! | --- | --- |
//! | `now` | decision time, RFC 3339 UTC to the second |
//! | `account_id`, `model`, `prompt_version` | strings |
//! | `data_age_secs` | age of the oldest snapshot, whole seconds, or none |
//! | `snapshots` | list of [`MarketSnapshot`] as serialized (decimals are strings, indicators numbers or none) |
//! | `assets_without_data` | assets of `rules.assets` that have no snapshot |
//! | `account` | `wallet_balance`, `equity`, `available`, `positions` |
//! | `account.positions[]` | `asset`, `symbol`, `side` (long/short), `quantity`, `entry_price`, `mark_price` (from the snapshot, or none), `notional_usd`, `unrealized_pnl`, `leverage`, `tp_price`, `sl_price`, `exit_plan`, `opened_at`; sorted by symbol |
//! | `open_orders[]` | [`OrderSummary`], sorted by symbol |
//! | `recent_fills[]` | [`FillSummary`], newest first |
//! | `diary[]` | [`DiarySummary`], newest first |
//! | `cooldowns[]` | [`CooldownSummary`] still in force at `now`, soonest ending first |
//! | `rules` | [`RulesSummary`] |
//!
//! Filters (see [`format::register_filters`]): `num(sig)`, `fixed(dp)`, `signed(dp)`,
//! `series(sig)`, `time`, `elapsed(now)`, `remaining(now)`, `duration`, `excerpt(n)`;
//! each writes `none` as `n/a`.
//!
//! [`MarketSnapshot`]: crate::domain::snapshot::MarketSnapshot
//! [`PromptTemplates::embedded`]: crate::llm::prompt::PromptTemplates::embedded
//! [`PromptTemplates::from_dir`]: crate::llm::prompt::PromptTemplates::from_dir
//! [`PromptTemplates::render`]: crate::llm::prompt::PromptTemplates::render
//! [`estimate_tokens`]: crate::llm::prompt::estimate_tokens
//! [`PromptContext`]: crate::llm::prompt::PromptContext
//! [`PromptError`]: crate::llm::prompt::PromptError
//! [`OrderSummary`]: crate::llm::prompt::OrderSummary
//! [`FillSummary`]: crate::llm::prompt::FillSummary
//! [`DiarySummary`]: crate::llm::prompt::DiarySummary
//! [`CooldownSummary`]: crate::llm::prompt::CooldownSummary
//! [`RulesSummary`]: crate::llm::prompt::RulesSummary
//! [`format::register_filters`]: crate::llm::prompt::format::register_filters

mod context;
pub mod format;

pub use context::{
    CooldownSummary, DiarySummary, FillSummary, OrderSummary, PromptContext, RulesSummary,
    RECENT_DIARY, RECENT_FILLS,
};

use context::TemplateVars;
use minijinja::{Environment, UndefinedBehavior};
use std::path::{Path, PathBuf};

/// File name of the system-message template.
pub const SYSTEM_TEMPLATE: &str = "system.md.j2";
/// File name of the user-message template.
pub const USER_TEMPLATE: &str = "user.md.j2";
/// Optional file of a template directory whose first line labels its version.
pub const VERSION_FILE: &str = "VERSION";
/// Version of the embedded templates.
pub const EMBEDDED_VERSION: &str = "v1";

const EMBEDDED_SYSTEM: &str = include_str!("../../../prompts/v1/system.md.j2");
const EMBEDDED_USER: &str = include_str!("../../../prompts/v1/user.md.j2");
const MAX_VERSION_LEN: usize = 64;

/// Why templates could not be loaded or rendered. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A template or `VERSION` file could not be read (missing, unreadable, not UTF-8).
    #[error("prompt file {path}: cannot read it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A template does not compile, or fails on a probe context at load time.
    #[error("prompt template {file}: {message}")]
    Template {
        /// The file (a path for a directory, `prompts/v1/<name> (embedded)` otherwise).
        file: String,
        /// The template engine's message, with the line.
        message: String,
    },
    /// A template failed while rendering a real context.
    #[error("prompt template {file}: rendering failed: {message}")]
    Render {
        /// The file.
        file: String,
        /// The template engine's message, with the line.
        message: String,
    },
    /// The `VERSION` file is empty or unusable as a label.
    #[error("prompt file {path}: {reason}")]
    Version {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// One cycle's prompt, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedPrompt {
    /// The system message.
    pub system: String,
    /// The user message.
    pub user: String,
    /// The templates' version (recorded with the LLM interaction).
    pub version: String,
    /// Characters (Unicode scalar values) of both messages together.
    pub chars: usize,
}

impl RenderedPrompt {
    /// [`estimate_tokens`] of both messages together.
    pub fn estimated_tokens(&self) -> usize {
        estimate_tokens(&self.system) + estimate_tokens(&self.user)
    }
}

/// A compiled pair of templates (system, user) and their version. Cheap to clone and
/// shareable between threads.
#[derive(Clone, Debug)]
pub struct PromptTemplates {
    env: Environment<'static>,
    version: String,
    /// How files are named in errors: the directory, or `None` for the embedded ones.
    dir: Option<PathBuf>,
    /// Set only if the embedded templates failed to load (a build defect the unit tests
    /// catch); `render` then returns this error instead of panicking.
    broken: Option<(String, String)>,
}

impl PromptTemplates {
    /// The templates compiled into the binary (`prompts/v1`).
    pub fn embedded() -> Self {
        match Self::compile(
            EMBEDDED_SYSTEM,
            EMBEDDED_USER,
            EMBEDDED_VERSION.into(),
            None,
        ) {
            Ok(t) => t,
            Err(e) => {
                let (file, message) = match e {
                    PromptError::Template { file, message } => (file, message),
                    other => (embedded_name(SYSTEM_TEMPLATE), other.to_string()),
                };
                PromptTemplates {
                    env: Environment::new(),
                    version: EMBEDDED_VERSION.into(),
                    dir: None,
                    broken: Some((file, message)),
                }
            }
        }
    }

    /// Loads `system.md.j2` and `user.md.j2` (and `VERSION`, if present) from `dir`,
    /// compiles them and renders them once against probe contexts, so any defect shows
    /// now, naming the file.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, PromptError> {
        let dir = dir.as_ref();
        let system = read(&dir.join(SYSTEM_TEMPLATE))?;
        let user = read(&dir.join(USER_TEMPLATE))?;
        let label = match std::fs::read_to_string(dir.join(VERSION_FILE)) {
            Ok(text) => version_label(&dir.join(VERSION_FILE), &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = dir
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| dir.display().to_string());
                format!("dir:{name}")
            }
            Err(source) => {
                return Err(PromptError::Read {
                    path: dir.join(VERSION_FILE),
                    source,
                })
            }
        };
        let version = format!("{label}@{:08x}", fnv1a(&[&system, &user]) >> 32);
        Self::compile(system, user, version, Some(dir.to_path_buf()))
    }

    /// The version recorded with each prompt: `v1` for the embedded templates,
    /// `<label>@<hash>` for a directory (see the module documentation).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Renders the system and user messages for one cycle.
    pub fn render(&self, ctx: &PromptContext) -> Result<RenderedPrompt, PromptError> {
        if let Some((file, message)) = &self.broken {
            return Err(PromptError::Template {
                file: file.clone(),
                message: message.clone(),
            });
        }
        let vars = TemplateVars::new(ctx, &self.version);
        let system = self.render_one(SYSTEM_TEMPLATE, &vars)?;
        let user = self.render_one(USER_TEMPLATE, &vars)?;
        let chars = system.chars().count() + user.chars().count();
        Ok(RenderedPrompt {
            system,
            user,
            version: self.version.clone(),
            chars,
        })
    }

    fn render_one(&self, name: &str, vars: &TemplateVars<'_>) -> Result<String, PromptError> {
        let fail = |e: minijinja::Error| PromptError::Render {
            file: self.file_name(name),
            message: engine_message(&e),
        };
        self.env
            .get_template(name)
            .map_err(fail)?
            .render(vars)
            .map_err(fail)
    }

    fn file_name(&self, name: &str) -> String {
        match &self.dir {
            Some(dir) => dir.join(name).display().to_string(),
            None => embedded_name(name),
        }
    }

    fn compile(
        system: impl Into<String>,
        user: impl Into<String>,
        version: String,
        dir: Option<PathBuf>,
    ) -> Result<Self, PromptError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        // Keeps the failing expression on errors, so a message can quote it.
        env.set_debug(true);
        format::register_filters(&mut env);
        let mut templates = PromptTemplates {
            env: Environment::new(),
            version,
            dir,
            broken: None,
        };
        for (name, source) in [
            (SYSTEM_TEMPLATE, system.into()),
            (USER_TEMPLATE, user.into()),
        ] {
            env.add_template_owned(name, source)
                .map_err(|e| PromptError::Template {
                    file: templates.file_name(name),
                    message: engine_message(&e),
                })?;
        }
        templates.env = env;
        for probe in probe::contexts() {
            templates.render(&probe).map_err(|e| match e {
                PromptError::Render { file, message } => PromptError::Template {
                    file,
                    message: format!("fails on a probe context: {message}"),
                },
                other => other,
            })?;
        }
        Ok(templates)
    }
}

/// Estimated tokens of `text` for runtime budgeting, in one pass and without a
/// tokenizer.
///
/// The usual "characters / 4" holds for English prose but not for these prompts, which
/// are mostly numbers: a number-dense user message runs at about 2 characters per token
/// (digits are split in groups of three, and every `.`, `,`, `-` and the space before a
/// number is a token of its own), so chars / 4 undercounts it by half. The estimate
/// therefore counts what BPE tokenizers (`o200k_base`, `cl100k_base`) split on: one token
/// per word of letters, per group of up to three digits, per punctuation character and
/// per space before a number. `tests/llm_prompt.rs` checks it against tiktoken on a
/// rendered prompt (within 15 %).
pub fn estimate_tokens(text: &str) -> usize {
    let mut tokens = 0;
    let mut digits = 0usize;
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits += 1;
            in_word = false;
            continue;
        }
        tokens += digits.div_ceil(3);
        digits = 0;
        if c.is_alphabetic() {
            if !in_word {
                tokens += 1;
                in_word = true;
            }
            continue;
        }
        in_word = false;
        if c == ' ' {
            if matches!(chars.peek(), Some(n) if n.is_ascii_digit() || *n == '-') {
                tokens += 1;
            }
        } else if c != '_' && !c.is_whitespace() {
            tokens += 1;
        }
    }
    tokens + digits.div_ceil(3)
}

fn embedded_name(name: &str) -> String {
    format!("prompts/{EMBEDDED_VERSION}/{name} (embedded)")
}

fn read(path: &Path) -> Result<String, PromptError> {
    std::fs::read_to_string(path).map_err(|source| PromptError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn version_label(path: &Path, text: &str) -> Result<String, PromptError> {
    let label = text.lines().next().unwrap_or_default().trim();
    let bad = |reason: &str| PromptError::Version {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if label.is_empty() {
        return Err(bad(
            "the first line must hold the version label; it is empty",
        ));
    }
    if label.chars().count() > MAX_VERSION_LEN {
        return Err(bad(&format!(
            "the version label is longer than {MAX_VERSION_LEN} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(bad("the version label contains control characters"));
    }
    Ok(label.to_string())
}

/// The engine's message with its location and, when known, the failing expression, on
/// one line.
fn engine_message(e: &minijinja::Error) -> String {
    let mut message = e.to_string();
    let snippet = e
        .template_source()
        .zip(e.range())
        .and_then(|(src, range)| src.get(range));
    if let Some(snippet) = snippet {
        message.push_str(&format!(" at `{}`", format::excerpt(snippet, 80)));
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// FNV-1a, 64 bit, over the parts separated by a zero byte: stable across Rust versions
/// and platforms, so a recorded version means the same text forever.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i == 0 { &[] } else { &[0] };
        for b in sep.iter().chain(part.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Contexts every template must render at load time: one with every list filled and
/// every optional value present, one with every optional value absent, one empty.
mod probe {
    use super::*;
    use crate::domain::decision::{AccountView, PositionView};
    use crate::domain::snapshot::{
        CurrentIndicators, IntradaySeries, LongTermContext, MarketSnapshot, OpenInterestStats,
        SERIES_LEN,
    };
    use crate::domain::types::{Asset, PositionSide, Symbol};
    use chrono::{DateTime, Duration, Utc};
    use rust_decimal::Decimal;
    use std::sync::Arc;

    pub(super) fn contexts() -> [PromptContext; 3] {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        [full(now, true), full(now, false), empty(now)]
    }

    fn empty(now: DateTime<Utc>) -> PromptContext {
        PromptContext {
            now,
            account_id: String::new(),
            model: String::new(),
            snapshots: Vec::new(),
            account: AccountView::default(),
            open_orders: Vec::new(),
            recent_fills: Vec::new(),
            diary: Vec::new(),
            cooldowns: Vec::new(),
            rules: RulesSummary::default(),
        }
    }

    fn full(now: DateTime<Utc>, some: bool) -> PromptContext {
        let opt = |x: f64| some.then_some(x);
        let dec = |x: i64| Decimal::new(x, 2);
        let optd = |x: i64| some.then(|| Decimal::new(x, 2));
        let series = |x: f64| vec![opt(x); SERIES_LEN];
        let symbol = Symbol("PROBEUSDT".into());
        let snapshot = MarketSnapshot {
            id: uuid::Uuid::nil(),
            venue: "probe".into(),
            asset: Asset::new("PROBE"),
            symbol: symbol.clone(),
            timestamp: now - Duration::seconds(3),
            last_price: dec(10_050),
            mark_price: dec(10_049),
            funding_rate: Decimal::new(1, 4),
            next_funding_time: some.then(|| now + Duration::hours(1)),
            open_interest: OpenInterestStats {
                latest: dec(100_000),
                average: dec(90_000),
            },
            current: CurrentIndicators {
                ema20: opt(100.0),
                ema50: opt(99.0),
                macd: opt(0.5),
                macd_signal: opt(0.4),
                macd_hist: opt(0.1),
                rsi7: opt(55.0),
                rsi14: opt(52.0),
                atr3: opt(1.2),
                atr14: opt(1.5),
                bb_upper: opt(103.0),
                bb_middle: opt(100.0),
                bb_lower: opt(97.0),
            },
            intraday_series: IntradaySeries {
                interval: "5m".into(),
                mid_prices: vec![100.0; SERIES_LEN],
                ema20: series(100.0),
                macd: series(0.5),
                rsi7: series(55.0),
                rsi14: series(52.0),
            },
            long_term_context: LongTermContext {
                ema20_4h: opt(98.0),
                ema50_4h: opt(95.0),
                atr3_4h: opt(3.0),
                atr14_4h: opt(4.0),
                volume_current: 1_000.0,
                volume_average: 1_200.0,
                macd_4h: series(1.0),
                rsi14_4h: series(60.0),
            },
        };
        let position = |side| PositionView {
            symbol: symbol.clone(),
            side,
            quantity: dec(300),
            entry_price: dec(9_900),
            leverage: 3,
            unrealized_pnl: dec(-450),
            tp_price: optd(11_000),
            sl_price: optd(9_500),
            exit_plan: if some {
                "probe plan".into()
            } else {
                String::new()
            },
            opened_at: now - Duration::hours(5),
        };
        let orphan = PositionView {
            symbol: Symbol("GONEUSDT".into()),
            ..position(PositionSide::Short)
        };
        PromptContext {
            now,
            account_id: "probe".into(),
            model: "probe/model".into(),
            snapshots: vec![Arc::new(snapshot)],
            account: AccountView {
                wallet_balance: dec(1_000_000),
                equity: dec(1_000_500),
                available: dec(900_000),
                positions: vec![position(PositionSide::Long), orphan],
            },
            open_orders: vec![OrderSummary {
                symbol: symbol.to_string(),
                side: "SELL".into(),
                order_type: "TAKE_PROFIT_MARKET".into(),
                quantity: optd(300),
                stop_price: optd(11_000),
                reduce_only: some,
                close_position: !some,
            }],
            recent_fills: vec![FillSummary {
                ts: now - Duration::minutes(30),
                symbol: symbol.to_string(),
                side: "BUY".into(),
                quantity: dec(300),
                price: dec(9_900),
                fee: dec(12),
                realized_pnl: Decimal::ZERO,
                reason: "entry".into(),
            }],
            diary: vec![DiarySummary {
                ts: now - Duration::minutes(30),
                asset: "PROBE".into(),
                action: "buy".into(),
                allocation_usd: optd(30_000),
                rationale: if some { "probe".into() } else { String::new() },
            }],
            cooldowns: vec![
                CooldownSummary {
                    asset: "PROBE".into(),
                    until: now + Duration::minutes(10),
                },
                CooldownSummary {
                    asset: "OVER".into(),
                    until: now - Duration::minutes(10),
                },
            ],
            rules: RulesSummary {
                leverage: if some { 3 } else { 0 },
                max_position_usd: optd(500_000),
                cooldown_secs: some.then_some(900),
                kill_switch: some,
                hysteresis_cycles: if some { 2 } else { 0 },
                max_daily_loss_pct: optd(250),
                assets: vec!["PROBE".into(), "MISSING".into()],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_templates_compile_and_render_every_probe() {
        let t = PromptTemplates::embedded();
        assert!(t.broken.is_none(), "{:?}", t.broken);
        assert_eq!(t.version(), "v1");
        for ctx in probe::contexts() {
            let p = t.render(&ctx).unwrap();
            assert_eq!(p.chars, p.system.chars().count() + p.user.chars().count());
            assert!(!p.user.contains("{{") && !p.system.contains("{%"));
        }
    }

    #[test]
    fn an_empty_context_renders_placeholders() {
        let p = PromptTemplates::embedded()
            .render(&probe::contexts()[2])
            .unwrap();
        assert!(p.user.contains("Market data age: n/a s."), "{}", p.user);
        assert!(p.user.contains("No market data this cycle."));
        assert!(p.user.contains("## Open positions\nnone\n"), "{}", p.user);
    }

    #[test]
    fn fnv_matches_the_published_vector() {
        assert_eq!(fnv1a(&["a"]), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }

    #[test]
    fn estimate_counts_words_digit_groups_and_punctuation() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("hello world\n"), 2);
        assert_eq!(estimate_tokens("allocation_usd"), 2);
        // 595|12 . 1 , ␣ 3 . 5 ␣ - 2
        assert_eq!(estimate_tokens("59512.1, 3.5 -2"), 12);
        assert_eq!(estimate_tokens("RSI14 éé…"), 4);
    }
}
