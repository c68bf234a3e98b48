//! Journeys through `config::load`: each test writes files into its own temporary
//! directory and passes the environment as a map (the process environment is never
//! touched, so tests run in parallel).

use super::*;
use rust_decimal_macros::dec;
use std::collections::HashMap;
use std::path::PathBuf;

/// A working directory with its own files.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    fn with(self, name: &str, contents: &str) -> Self {
        std::fs::write(self.0.path().join(name), contents).unwrap();
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Loads with the default file names, as if started in this directory.
    fn load(&self, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        self.load_opts(&LoadOptions::default(), env)
    }

    fn load_opts(&self, opts: &LoadOptions, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        load_in(opts, &vars(env), self.0.path())
    }

    fn error(&self, env: &[(&str, &str)]) -> String {
        match self.load(env) {
            Ok(s) => panic!("expected an error, got {:?}", s.masked_json()),
            Err(e) => e.to_string(),
        }
    }
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn yaml_with_account(extra: &str) -> String {
    format!(
        "accounts:\n  - id: a1\n    llm_model: builtin/hold\n    assets: [BTC]\n    interval: 5m\n{extra}"
    )
}

const ORIGINAL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/config/original_accounts.yaml"
));

const ORIGINAL_VARS: &[(&str, &str)] = &[
    ("ASTERDEX_KEY_1", "ak1-value"),
    ("ASTERDEX_SECRET_1", "as1-value"),
    ("OPENROUTER_KEY_1", "or1-value"),
    ("ASTERDEX_KEY_2", "ak2-value"),
    ("ASTERDEX_SECRET_2", "as2-value"),
    ("OPENROUTER_KEY_2", "or2-value"),
];

#[test]
fn precedence_is_defaults_then_toml_then_yaml_then_dotenv_then_environment() {
    let dir = Dir::new()
        .with(
            "vibex.toml",
            r#"
log_level = "debug"
log_dir = "toml-logs"
data_dir = "toml-data"
[api]
port = 1111
[market_data]
kline_limit = 200
"#,
        )
        .with(
            "accounts.yaml",
            &format!(
                "api:\n  port: 2222\nlog_dir: yaml-logs\ndata_dir: yaml-data\n{}",
                yaml_with_account("")
            ),
        )
        .with(
            ".env",
            "VIBEX_LOG_DIR=dotenv-logs\nVIBEX_DATA_DIR=dotenv-data\n",
        );
    let s = dir.load(&[("VIBEX_DATA_DIR", "env-data")]).unwrap();

    assert_eq!(s.api.host, "0.0.0.0", "default kept");
    assert_eq!(s.market_data.request_timeout, Duration::from_secs(10));
    assert_eq!(s.log_level, "debug", "toml over defaults");
    assert_eq!(s.market_data.kline_limit, 200, "toml over defaults");
    assert_eq!(s.api.port, 2222, "yaml over toml");
    assert_eq!(s.log_dir, PathBuf::from("dotenv-logs"), ".env over yaml");
    assert_eq!(
        s.data_dir,
        PathBuf::from("env-data"),
        "environment over .env"
    );
    assert_eq!(
        s.sources,
        vec![
            "built-in defaults",
            "vibex.toml",
            "accounts.yaml",
            ".env (VIBEX_LOG_DIR, VIBEX_DATA_DIR)",
            "environment (VIBEX_DATA_DIR)",
            "accounts from accounts.yaml",
        ]
    );
}

#[test]
fn defaults_apply_when_nothing_else_is_set() {
    let dir = Dir::new().with("accounts.yaml", &yaml_with_account(""));
    let s = dir.load(&[]).unwrap();
    assert_eq!((s.api.host.as_str(), s.api.port), ("0.0.0.0", 3000));
    assert_eq!(s.log_dir, PathBuf::from("./logs"));
    assert_eq!(s.data_dir, PathBuf::from("./data"));
    assert_eq!(s.log_level, "info");
    assert!(
        s.database_url.is_none(),
        "no DATABASE_URL = embedded database"
    );
    assert_eq!(s.market_data.kline_limit, 150);
    assert_eq!(s.market_data.max_poll_interval, Duration::from_secs(60));
    assert_eq!(s.market_data.max_retries, 3);
    let a = &s.accounts[0];
    assert_eq!(a.mode, TradingMode::Paper);
    assert_eq!(a.leverage, 1);
    assert_eq!(a.asterdex.base_url, "https://fapi.asterdex.com");
    assert_eq!(a.openrouter.base_url, "https://openrouter.ai/api/v1");
    assert_eq!(a.paper.starting_balance_usd, dec!(10000));
    assert_eq!(a.paper.fee_bps, dec!(5));
    assert_eq!(a.paper.slippage_bps, dec!(2));
    assert_eq!(a.paper.maker_fee_bps, dec!(2));
    assert_eq!(a.paper.maintenance_margin_rate, dec!(0.005));
    assert_eq!(a.asterdex.recv_window_ms, 5000);
    assert_eq!(a.asterdex.margin_type, MarginType::Isolated);
    assert_eq!(a.asterdex.ws_url, "wss://fstream.asterdex.com");
    assert!(!a.risk.kill_switch);
    assert_eq!(a.builtin_policy(), Some("hold"));
}

#[test]
fn environment_sets_top_level_keys() {
    let dir = Dir::new().with("accounts.yaml", &yaml_with_account(""));
    let s = dir
        .load(&[
            ("API_HOST", "127.0.0.1"),
            ("API_PORT", "8080"),
            ("VIBEX_LOG_LEVEL", "WARN"),
            ("DATABASE_URL", "postgres://vibex:p%40ss@db:5432/vibex"),
        ])
        .unwrap();
    assert_eq!((s.api.host.as_str(), s.api.port), ("127.0.0.1", 8080));
    assert_eq!(s.log_level, "warning");
    assert_eq!(
        s.database_url.as_ref().map(Secret::expose),
        Some("postgres://vibex:p%40ss@db:5432/vibex")
    );
    let secrets = s.secret_values();
    assert!(secrets.contains(&"p@ss".to_string()), "{secrets:?}");
    assert!(secrets.contains(&"p%40ss".to_string()), "{secrets:?}");
}

#[test]
fn original_accounts_yaml_parses_as_is() {
    let dir = Dir::new().with("accounts.yaml", ORIGINAL);
    let s = dir.load(ORIGINAL_VARS).unwrap();
    assert_eq!(s.accounts.len(), 2);
    let a1 = s.account("account1").unwrap();
    assert_eq!(a1.llm_model, "x-ai/grok-4");
    assert_eq!(a1.assets, vec![Asset::new("BTC"), Asset::new("ETH")]);
    assert_eq!(a1.interval.label, "1h");
    assert_eq!(a1.interval.duration, Duration::from_secs(3600));
    assert_eq!(a1.asterdex.api_key.expose(), "ak1-value");
    assert_eq!(a1.asterdex.api_secret.expose(), "as1-value");
    assert_eq!(a1.openrouter.api_key.expose(), "or1-value");
    assert_eq!(a1.builtin_policy(), None);
    let a2 = s.account("account2").unwrap();
    assert_eq!(a2.interval.duration, Duration::from_secs(300));
    assert_eq!(a2.assets, vec![Asset::new("SOL")]);
}

#[test]
fn explicit_files_are_read_from_the_given_paths() {
    let dir = Dir::new()
        .with("custom.yaml", &yaml_with_account(""))
        .with("custom.toml", "log_level = \"error\"\n")
        .with("custom.env", "API_PORT=4000\n");
    let opts = LoadOptions {
        config_file: Some(dir.path("custom.toml")),
        accounts_file: Some(dir.path("custom.yaml")),
        dotenv_file: Some(dir.path("custom.env")),
    };
    let s = dir.load_opts(&opts, &[]).unwrap();
    assert_eq!(s.log_level, "error");
    assert_eq!(s.api.port, 4000);
    assert_eq!(s.accounts.len(), 1);
}

#[test]
fn an_explicit_file_that_does_not_exist_is_an_error() {
    let dir = Dir::new();
    let opts = LoadOptions {
        accounts_file: Some(PathBuf::from("nope/accounts.yaml")),
        ..LoadOptions::default()
    };
    let e = dir.load_opts(&opts, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("nope/accounts.yaml: file not found (given with --accounts)"),
        "{e}"
    );
}

#[test]
fn missing_variable_names_the_file_account_field_and_variable() {
    let dir = Dir::new().with("accounts.yaml", ORIGINAL);
    let env: Vec<_> = ORIGINAL_VARS
        .iter()
        .copied()
        .filter(|(k, _)| *k != "ASTERDEX_SECRET_1")
        .collect();
    let e = dir.error(&env);
    assert!(
        e.contains(
            "accounts.yaml: account \"account1\": field \"asterdex.api_secret\": variable \
             ASTERDEX_SECRET_1 is not set"
        ),
        "{e}"
    );

    // Only the variable is reported, not the un-replaced text as a bad value.
    let e = Dir::new()
        .with(
            "accounts.yaml",
            &yaml_with_account("    leverage: ${LEV}\n"),
        )
        .error(&[]);
    assert_eq!(
        e,
        "accounts.yaml: account \"a1\": field \"leverage\": variable LEV is not set; set it \
         in the environment or in .env, or give a default with ${LEV:-default}"
    );
}

#[test]
fn variables_come_from_dotenv_and_the_environment_wins() {
    let dir = Dir::new()
        .with(
            "accounts.yaml",
            "accounts:\n  - id: a1\n    llm_model: ${MODEL}\n    assets: ${ASSET_LIST}\n    \
             interval: ${EVERY:-15m}\n    leverage: ${LEV}\n    openrouter:\n      api_key: \
             key-$${literal}-$HOME\n",
        )
        .with(".env", "MODEL=builtin/hold\nASSET_LIST=btc,eth\nLEV=3\n");
    let s = dir.load(&[("LEV", "5")]).unwrap();
    let a = &s.accounts[0];
    assert_eq!(a.llm_model, "builtin/hold", "from .env");
    assert_eq!(a.leverage, 5, "environment over .env");
    assert_eq!(a.interval.label, "15m", "default of ${{EVERY:-15m}}");
    assert_eq!(a.assets, vec![Asset::new("BTC"), Asset::new("ETH")]);
    assert_eq!(a.openrouter.api_key.expose(), "key-${literal}-$HOME");
}

#[test]
fn unknown_keys_are_refused_at_every_level() {
    let top = Dir::new()
        .with(
            "accounts.yaml",
            &format!("colour: blue\n{}", yaml_with_account("")),
        )
        .error(&[]);
    assert!(
        top.contains("accounts.yaml: field \"colour\": unknown key \"colour\"; expected one of:"),
        "{top}"
    );

    let toml = Dir::new()
        .with("vibex.toml", "[api]\nprot = 1\n")
        .with("accounts.yaml", &yaml_with_account(""))
        .error(&[]);
    assert!(
        toml.contains(
            "vibex.toml: field \"api.prot\": unknown key \"prot\"; expected one of: host, port"
        ),
        "{toml}"
    );

    let account = Dir::new()
        .with("accounts.yaml", &yaml_with_account("    levrage: 2\n"))
        .error(&[]);
    assert!(
        account
            .contains("accounts.yaml: account \"a1\": field \"levrage\": unknown key \"levrage\""),
        "{account}"
    );

    let nested = Dir::new()
        .with(
            "accounts.yaml",
            &yaml_with_account("    paper:\n      foo: 1\n"),
        )
        .error(&[]);
    assert!(
        nested.contains(
            "accounts.yaml: account \"a1\": field \"paper.foo\": unknown key \"foo\"; expected \
             one of: starting_balance_usd, fee_bps, maker_fee_bps, slippage_bps, \
             maintenance_margin_rate"
        ),
        "{nested}"
    );
}

#[test]
fn bad_intervals_are_refused_with_the_accepted_forms() {
    for (interval, why) in [
        ("7x", "\"7x\" is not an interval"),
        ("0s", "\"0s\" is too short"),
        ("500ms", "\"500ms\" is too short"),
        ("1M", "\"1M\" is too long"),
    ] {
        let e = Dir::new()
            .with(
                "accounts.yaml",
                &format!(
                    "accounts:\n  - id: a1\n    llm_model: builtin/hold\n    assets: [BTC]\n    \
                     interval: {interval}\n"
                ),
            )
            .error(&[]);
        assert!(
            e.contains(&format!(
                "accounts.yaml: account \"a1\": field \"interval\": {why}"
            )),
            "{e}"
        );
        assert!(e.contains("use one of 1m 3m 5m 15m 1h 4h 1d"), "{e}");
    }
}

#[test]
fn intervals_accept_the_original_labels_and_durations_down_to_one_second() {
    for (label, secs) in [
        ("1m", 60),
        ("3m", 180),
        ("15m", 900),
        ("4h", 14_400),
        ("1d", 86_400),
        ("1s", 1),
        ("30s", 30),
        ("90s", 90),
        ("1h30m", 5_400),
    ] {
        let i = CycleInterval::parse(label).unwrap();
        assert_eq!(i.duration, Duration::from_secs(secs), "{label}");
        assert_eq!(i.label, label);
    }
    assert!(
        CycleInterval::parse("1500ms").is_err(),
        "whole seconds only"
    );
}

#[test]
fn duplicate_ids_are_refused_naming_both_positions() {
    let yaml = yaml_with_account(
        "  - id: a2\n    llm_model: builtin/hold\n    assets: [ETH]\n    interval: 1h\n  - id: \
         a1\n    llm_model: builtin/panic\n    assets: [SOL]\n    interval: 7x\n",
    );
    let e = Dir::new().with("accounts.yaml", &yaml).error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: account \"a1\": field \"id\": duplicate id: accounts #1 and #3 are \
             both \"a1\"; ids must be unique"
        ),
        "{e}"
    );
}

#[test]
fn account_ids_are_checked_and_a_missing_id_is_named_by_position() {
    let yaml = yaml_with_account(
        "  - llm_model: builtin/hold\n    assets: [ETH]\n    interval: 1h\n  - id: \"bad id\"\n    \
         llm_model: builtin/hold\n    assets: [ETH]\n    interval: 1h\n",
    );
    let e = Dir::new().with("accounts.yaml", &yaml).error(&[]);
    assert!(
        e.contains("accounts.yaml: account #2: field \"id\": missing"),
        "{e}"
    );
    assert!(
        e.contains(
            "accounts.yaml: account \"bad id\": field \"id\": \"bad id\" is not a valid account id"
        ),
        "{e}"
    );
}

#[test]
fn leverage_outside_one_to_twenty_is_refused() {
    for leverage in ["0", "21"] {
        let e = Dir::new()
            .with(
                "accounts.yaml",
                &yaml_with_account(&format!("    leverage: {leverage}\n")),
            )
            .error(&[]);
        assert!(
            e.contains(&format!(
                "accounts.yaml: account \"a1\": field \"leverage\": {leverage} is outside 1..=20"
            )),
            "{e}"
        );
    }
    let s = Dir::new()
        .with("accounts.yaml", &yaml_with_account("    leverage: 20\n"))
        .load(&[])
        .unwrap();
    assert_eq!(s.accounts[0].leverage, 20);
}

const USER: &str = "0x1111111111111111111111111111111111111111";
const SIGNER: &str = "0x2222222222222222222222222222222222222222";
const PRIVATE_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

/// An account `a1` with `mode: live` and the given `asterdex:` lines (6-space indent).
fn live_account(asterdex: &str) -> String {
    let block = if asterdex.is_empty() {
        String::new()
    } else {
        format!("    asterdex:\n{asterdex}")
    };
    yaml_with_account(&format!("    mode: live\n{block}"))
}

#[test]
fn live_account_without_credentials_is_refused_naming_every_field() {
    let e = Dir::new()
        .with("accounts.yaml", &live_account(""))
        .error(&[]);
    assert!(
        e.contains("accounts.yaml: account \"a1\": field \"asterdex\": missing credentials"),
        "{e}"
    );
    for field in [
        "asterdex.api_key",
        "asterdex.api_secret",
        "asterdex.user",
        "asterdex.signer",
        "asterdex.private_key",
    ] {
        assert!(e.contains(field), "{field} not named:\n{e}");
    }
    assert_eq!(e.lines().count(), 1, "{e}");

    // The same account in paper mode needs nothing.
    let s = Dir::new()
        .with("accounts.yaml", &yaml_with_account("    mode: paper\n"))
        .load(&[])
        .unwrap();
    assert_eq!(s.accounts[0].asterdex.signing, None);
    assert_eq!(s.accounts[0].live_banner(), None);
}

#[test]
fn live_account_with_a_partial_credential_set_names_what_is_missing() {
    let e = Dir::new()
        .with("accounts.yaml", &live_account("      api_key: k-123\n"))
        .error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: account \"a1\": field \"asterdex.api_secret\": missing; \
             asterdex.api_key and asterdex.api_secret go together (HMAC mode)"
        ),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "only the missing field:\n{e}");

    let e = Dir::new()
        .with(
            "accounts.yaml",
            &live_account(&format!(
                "      user: \"{USER}\"\n      signer: \"{SIGNER}\"\n"
            )),
        )
        .error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: account \"a1\": field \"asterdex.private_key\": missing; \
             wallet-signer mode needs"
        ),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "only the missing field:\n{e}");
}

#[test]
fn bad_wallet_addresses_are_refused_naming_the_field() {
    let e = Dir::new()
        .with(
            "accounts.yaml",
            &live_account(&format!(
                "      user: \"0x1234\"\n      signer: \"{}\"\n      private_key: \"{PRIVATE_KEY}\"\n",
                SIGNER.replace("0x", "")
            )),
        )
        .error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: account \"a1\": field \"asterdex.user\": \"0x1234\" is not a \
             wallet address (0x followed by 40 hex digits)"
        ),
        "{e}"
    );
    assert!(
        e.contains("field \"asterdex.signer\"") && e.contains("is not a wallet address"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 2, "{e}");
}

#[test]
fn a_bad_private_key_is_refused_without_showing_it() {
    for bad in [
        "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f36231",
        "zz4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
        "my-secret-wallet-key",
    ] {
        let e = Dir::new()
            .with(
                "accounts.yaml",
                &live_account(&format!(
                    "      user: \"{USER}\"\n      signer: \"{SIGNER}\"\n      private_key: \"{bad}\"\n"
                )),
            )
            .error(&[]);
        assert!(
            e.contains(
                "accounts.yaml: account \"a1\": field \"asterdex.private_key\": is not a \
                 private key: expected 64 hex digits, optionally after 0x"
            ),
            "{e}"
        );
        assert!(!e.contains(bad), "the key is echoed: {e}");
        assert!(!e.contains(&bad[4..20]), "part of the key is echoed: {e}");
    }
    // From a variable, too.
    let e = Dir::new()
        .with(
            "accounts.yaml",
            &live_account(&format!(
                "      user: \"{USER}\"\n      signer: \"{SIGNER}\"\n      private_key: ${{PK}}\n"
            )),
        )
        .error(&[("PK", "not-hex-but-secret")]);
    assert!(e.contains("asterdex.private_key"), "{e}");
    assert!(!e.contains("not-hex-but-secret"), "{e}");
}

#[test]
fn live_accounts_with_hmac_or_wallet_signer_credentials_are_accepted() {
    let s = Dir::new()
        .with(
            "accounts.yaml",
            &live_account(
                "      api_key: ${ASTER_API_KEY}\n      api_secret: ${ASTER_API_SECRET}\n",
            ),
        )
        .load(&[("ASTER_API_KEY", "k-live"), ("ASTER_API_SECRET", "s-live")])
        .unwrap();
    let a = &s.accounts[0];
    assert_eq!(a.mode, TradingMode::Live);
    assert_eq!(a.asterdex.signing, Some(SigningMode::Hmac));
    assert_eq!(
        a.live_banner().as_deref(),
        Some("LIVE: a1 (real orders on https://fapi.asterdex.com, signing: hmac)")
    );
    assert_eq!(
        s.masked_json()["accounts"][0]["asterdex"]["signing"],
        "hmac"
    );

    // Without the 0x prefix the key is accepted as well.
    let s = Dir::new()
        .with(
            "accounts.yaml",
            &live_account(&format!(
                "      base_url: https://fapi.example.test/\n      user: \"{USER}\"\n      signer: \"{SIGNER}\"\n      private_key: \"{}\"\n",
                &PRIVATE_KEY[2..]
            )),
        )
        .load(&[])
        .unwrap();
    let a = &s.accounts[0];
    assert_eq!(a.asterdex.signing, Some(SigningMode::WalletSigner));
    assert_eq!(a.asterdex.user.as_deref(), Some(USER));
    assert_eq!(
        a.live_banner().as_deref(),
        Some("LIVE: a1 (real orders on https://fapi.example.test, signing: wallet_signer)")
    );
    let masked = s.masked_json().to_string();
    assert!(!masked.contains(&PRIVATE_KEY[2..]), "{masked}");
    assert!(s.secret_values().contains(&PRIVATE_KEY[2..].to_string()));
}

#[test]
fn a_live_account_with_both_credential_sets_is_refused() {
    let e = Dir::new()
        .with(
            "accounts.yaml",
            &live_account(&format!(
                "      api_key: k\n      api_secret: s\n      user: \"{USER}\"\n      signer: \"{SIGNER}\"\n      private_key: \"{PRIVATE_KEY}\"\n"
            )),
        )
        .error(&[]);
    assert!(
        e.contains("accounts.yaml: account \"a1\": field \"asterdex\": both HMAC"),
        "{e}"
    );
    assert!(!e.contains(PRIVATE_KEY), "{e}");
}

#[test]
fn an_unknown_mode_is_refused_with_the_accepted_ones() {
    let e = Dir::new()
        .with("accounts.yaml", &yaml_with_account("    mode: real\n"))
        .error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: account \"a1\": field \"mode\": \"real\" is not a mode; use paper"
        ) && e.contains("or live"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn asterdex_and_paper_execution_fields_have_defaults() {
    let s = Dir::new()
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[])
        .unwrap();
    let a = &s.accounts[0];
    assert_eq!(a.asterdex.recv_window_ms, 5000);
    assert_eq!(a.asterdex.margin_type, MarginType::Isolated);
    assert_eq!(a.asterdex.ws_url, "wss://fstream.asterdex.com");
    assert_eq!(a.paper.maker_fee_bps, dec!(2));
    assert_eq!(a.paper.maintenance_margin_rate, dec!(0.005));
    let json = s.masked_json();
    assert_eq!(json["accounts"][0]["asterdex"]["margin_type"], "ISOLATED");
    assert_eq!(json["accounts"][0]["asterdex"]["recv_window_ms"], 5000);

    let s = Dir::new()
        .with(
            "accounts.yaml",
            &yaml_with_account(
                "    asterdex:\n      recv_window_ms: 60000\n      margin_type: crossed\n      \
                 ws_url: wss://stream.example.test/\n    paper:\n      maker_fee_bps: 0\n      \
                 fee_bps: 9999.99\n      maintenance_margin_rate: \"0.4999\"\n",
            ),
        )
        .load(&[])
        .unwrap();
    let a = &s.accounts[0];
    assert_eq!(a.asterdex.recv_window_ms, 60_000);
    assert_eq!(a.asterdex.margin_type, MarginType::Crossed);
    assert_eq!(a.asterdex.ws_url, "wss://stream.example.test");
    assert_eq!(a.paper.maker_fee_bps, dec!(0));
    assert_eq!(a.paper.fee_bps, dec!(9999.99));
    assert_eq!(a.paper.maintenance_margin_rate, dec!(0.4999));
}

#[test]
fn asterdex_and_paper_execution_fields_are_bounded() {
    for (extra, field, fragment) in [
        (
            "    asterdex: {recv_window_ms: 0}\n",
            "asterdex.recv_window_ms",
            "0 is outside 1..=60000",
        ),
        (
            "    asterdex: {recv_window_ms: 60001}\n",
            "asterdex.recv_window_ms",
            "60001 is outside 1..=60000",
        ),
        (
            "    asterdex: {margin_type: CROSS_ISOLATED}\n",
            "asterdex.margin_type",
            "\"CROSS_ISOLATED\" is not a margin type; use ISOLATED (the default) or CROSSED",
        ),
        (
            "    asterdex: {ws_url: \"https://fstream.asterdex.com\"}\n",
            "asterdex.ws_url",
            "\"https://fstream.asterdex.com\" is not a ws(s) URL",
        ),
        (
            "    paper: {maker_fee_bps: -1}\n",
            "paper.maker_fee_bps",
            "-1 is negative",
        ),
        (
            "    paper: {maker_fee_bps: 10000}\n",
            "paper.maker_fee_bps",
            "10000 is 10000 or more",
        ),
        (
            "    paper: {fee_bps: 12000}\n",
            "paper.fee_bps",
            "12000 is 10000 or more",
        ),
        (
            "    paper: {maintenance_margin_rate: 0}\n",
            "paper.maintenance_margin_rate",
            "0 must be above zero",
        ),
        (
            "    paper: {maintenance_margin_rate: 0.5}\n",
            "paper.maintenance_margin_rate",
            "0.5 is 0.5 or more",
        ),
    ] {
        let e = Dir::new()
            .with("accounts.yaml", &yaml_with_account(extra))
            .error(&[]);
        assert!(
            e.contains(&format!(
                "accounts.yaml: account \"a1\": field \"{field}\": {fragment}"
            )),
            "{extra}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{extra}: {e}");
    }
}

#[test]
fn the_environment_formats_set_the_asterdex_execution_fields() {
    let s = Dir::new()
        .load(&[
            ("LLM_MODEL", "builtin/hold"),
            ("ASSETS", "BTC"),
            ("INTERVAL", "5m"),
            ("ASTERDEX_RECV_WINDOW_MS", "10000"),
            ("ASTERDEX_MARGIN_TYPE", "CROSSED"),
            ("ASTERDEX_WS_URL", "ws://127.0.0.1:9000"),
        ])
        .unwrap();
    let a = &s.accounts[0];
    assert_eq!(
        a.mode,
        TradingMode::Paper,
        "the environment formats are paper"
    );
    assert_eq!(a.asterdex.recv_window_ms, 10_000);
    assert_eq!(a.asterdex.margin_type, MarginType::Crossed);
    assert_eq!(a.asterdex.ws_url, "ws://127.0.0.1:9000");

    let e = Dir::new().error(&[
        ("MULTI_ACCOUNT_MODE", "true"),
        ("ACCOUNT_IDS", "a1"),
        ("LLM_MODEL_a1", "builtin/hold"),
        ("ASSETS_a1", "BTC"),
        ("INTERVAL_a1", "1h"),
        ("ASTERDEX_RECV_WINDOW_MS_a1", "70000"),
        ("ASTERDEX_WS_URL", "ftp://x"),
    ]);
    assert!(
        e.contains(
            "environment: account \"a1\": variable ASTERDEX_RECV_WINDOW_MS_a1: 70000 is outside"
        ),
        "{e}"
    );
    assert!(
        e.contains("environment: account \"a1\": variable ASTERDEX_WS_URL: \"ftp://x\""),
        "{e}"
    );
}

#[test]
fn unknown_builtin_policy_is_refused_and_models_need_no_key() {
    let e = Dir::new()
        .with(
            "accounts.yaml",
            "accounts:\n  - id: a1\n    llm_model: builtin/yolo\n    assets: [BTC]\n    interval: 5m\n",
        )
        .error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: account \"a1\": field \"llm_model\": unknown builtin policy \
             \"builtin/yolo\"; known policies: builtin/hold, builtin/ema-rsi, builtin/panic"
        ),
        "{e}"
    );

    let s = Dir::new()
        .with(
            "accounts.yaml",
            "accounts:\n  - id: a1\n    llm_model: openai/gpt-5\n    assets: [BTC]\n    interval: 5m\n",
        )
        .load(&[])
        .unwrap();
    assert!(s.accounts[0].openrouter.api_key.is_empty());
}

#[test]
fn single_account_environment_format_makes_account_default() {
    let s = Dir::new()
        .load(&[
            ("ASTERDEX_API_KEY", "k"),
            ("ASTERDEX_API_SECRET", "s"),
            ("OPENROUTER_API_KEY", "or"),
            ("LLM_MODEL", "x-ai/grok-4"),
            ("ASSETS", "BTC ETH"),
            ("INTERVAL", "5m"),
        ])
        .unwrap();
    assert_eq!(s.accounts.len(), 1);
    let a = &s.accounts[0];
    assert_eq!(a.id.as_str(), "default");
    assert_eq!(a.assets, vec![Asset::new("BTC"), Asset::new("ETH")]);
    assert_eq!(a.interval.duration, Duration::from_secs(300));
    assert_eq!(a.asterdex.api_key.expose(), "k");
    assert_eq!(a.openrouter.api_key.expose(), "or");
    assert!(s
        .sources
        .iter()
        .any(|l| l.starts_with("accounts from environment")));

    let e = Dir::new().error(&[
        ("LLM_MODEL", "builtin/hold"),
        ("ASSETS", "BTC,ETH"),
        ("INTERVAL", "7x"),
    ]);
    assert!(
        e.contains(
            "environment: account \"default\": variable INTERVAL: \"7x\" is not an interval"
        ),
        "{e}"
    );
}

#[test]
fn accounts_file_wins_over_the_single_account_variables() {
    let s = Dir::new()
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[("LLM_MODEL", "x-ai/grok-4"), ("ASSETS", "SOL")])
        .unwrap();
    assert_eq!(s.accounts.len(), 1);
    assert_eq!(s.accounts[0].id.as_str(), "a1");
    assert!(
        s.sources
            .contains(&"ignored: LLM_MODEL, ASSETS (the accounts come from accounts.yaml)".into()),
        "{:?}",
        s.sources
    );
}

#[test]
fn multi_account_environment_format_reads_suffixed_variables() {
    let s = Dir::new()
        .with(
            ".env",
            "MULTI_ACCOUNT_MODE=true\nACCOUNT_IDS=\"a1, swing\"\n",
        )
        .load(&[
            ("LLM_MODEL_a1", "builtin/ema-rsi"),
            ("ASSETS_a1", "BTC,ETH"),
            ("INTERVAL_a1", "15m"),
            ("ASTERDEX_API_KEY_a1", "k1"),
            ("ASTERDEX_API_SECRET_a1", "s1"),
            ("LLM_MODEL_SWING", "x-ai/grok-4"),
            ("ASSETS_SWING", "SOL"),
            ("INTERVAL_SWING", "4h"),
            ("OPENROUTER_API_KEY", "shared-or"),
        ])
        .unwrap();
    let ids: Vec<_> = s.accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["a1", "swing"]);
    let a1 = &s.accounts[0];
    assert_eq!(a1.llm_model, "builtin/ema-rsi");
    assert_eq!(a1.asterdex.api_key.expose(), "k1");
    let swing = &s.accounts[1];
    assert_eq!(swing.interval.duration, Duration::from_secs(4 * 3600));
    assert_eq!(swing.openrouter.api_key.expose(), "shared-or");

    let e = Dir::new().error(&[
        ("MULTI_ACCOUNT_MODE", "true"),
        ("ACCOUNT_IDS", "a1"),
        ("ASSETS_a1", "BTC"),
        ("INTERVAL_a1", "1h"),
    ]);
    assert!(
        e.contains("environment: account \"a1\": variable LLM_MODEL_a1: missing"),
        "{e}"
    );
    let e = Dir::new().error(&[("MULTI_ACCOUNT_MODE", "true"), ("ACCOUNT_IDS", "a1,A1")]);
    assert!(
        e.contains("environment: variable ACCOUNT_IDS: \"A1\" is listed twice"),
        "{e}"
    );
    let e = Dir::new().error(&[("MULTI_ACCOUNT_MODE", "true")]);
    assert!(
        e.contains("environment: variable ACCOUNT_IDS: not set"),
        "{e}"
    );
}

#[test]
fn no_accounts_anywhere_says_how_to_fix_it() {
    let e = Dir::new().error(&[("OPENROUTER_API_KEY", "or")]);
    assert!(
        e.starts_with("no accounts configured: write an accounts.yaml"),
        "{e}"
    );
    assert!(e.contains("MULTI_ACCOUNT_MODE=true"), "{e}");
}

#[test]
fn decimals_are_exact_from_numbers_and_strings() {
    let s = Dir::new()
        .with(
            "accounts.yaml",
            &yaml_with_account(
                "    paper:\n      starting_balance_usd: \"12345.67\"\n      fee_bps: 0.1\n      \
                 slippage_bps: 0\n    risk:\n      max_position_usd: 0.3\n      \
                 max_daily_loss_pct: 2.5\n      cooldown: 15m\n      kill_switch: true\n",
            ),
        )
        .load(&[])
        .unwrap();
    let a = &s.accounts[0];
    assert_eq!(a.paper.fee_bps, dec!(0.1));
    assert_eq!(a.paper.fee_bps.to_string(), "0.1");
    assert_eq!(a.paper.starting_balance_usd, dec!(12345.67));
    assert_eq!(a.paper.slippage_bps, Decimal::ZERO);
    assert_eq!(a.risk.max_position_usd, Some(dec!(0.3)));
    assert_eq!(a.risk.max_position_usd.unwrap().to_string(), "0.3");
    assert_eq!(a.risk.max_daily_loss_pct, Some(dec!(2.5)));
    assert_eq!(a.risk.cooldown, Some(Duration::from_secs(900)));
    assert!(a.risk.kill_switch);
}

#[test]
fn bad_paper_and_risk_values_are_refused() {
    let e = Dir::new()
        .with(
            "accounts.yaml",
            &yaml_with_account(
                "    paper:\n      starting_balance_usd: 0\n      fee_bps: -1\n      \
                 slippage_bps: lots\n    risk:\n      max_daily_loss_pct: 150\n",
            ),
        )
        .error(&[]);
    for expected in [
        "account \"a1\": field \"paper.starting_balance_usd\": 0 must be above zero",
        "account \"a1\": field \"paper.fee_bps\": -1 is negative",
        "account \"a1\": field \"paper.slippage_bps\": \"lots\" is not a decimal number",
        "account \"a1\": field \"risk.max_daily_loss_pct\": 150 is above 100",
    ] {
        assert!(e.contains(expected), "{expected}\n in\n{e}");
    }
    assert_eq!(e.lines().count(), 4, "all problems reported together:\n{e}");
}

#[test]
fn assets_are_upper_cased_and_checked() {
    let s = Dir::new()
        .with(
            "accounts.yaml",
            "accounts:\n  - id: a1\n    llm_model: builtin/hold\n    assets: \"btc, 1000pepe\"\n    \
             interval: 5m\n",
        )
        .load(&[])
        .unwrap();
    assert_eq!(
        s.accounts[0].assets,
        vec![Asset::new("BTC"), Asset::new("1000PEPE")]
    );

    for (assets, why) in [
        ("[]", "is empty"),
        ("[BTC, btc]", "BTC is listed twice"),
        ("[BTC-USD]", "\"BTC-USD\" is not an asset name"),
    ] {
        let e = Dir::new()
            .with(
                "accounts.yaml",
                &format!(
                    "accounts:\n  - id: a1\n    llm_model: builtin/hold\n    assets: {assets}\n    \
                     interval: 5m\n"
                ),
            )
            .error(&[]);
        assert!(
            e.contains(&format!(
                "accounts.yaml: account \"a1\": field \"assets\": {why}"
            )),
            "{e}"
        );
    }
}

#[test]
fn yaml_anchors_let_accounts_share_blocks() {
    let yaml = "defaults: &defaults\n  llm_model: builtin/hold\n  interval: 1h\n";
    // `defaults:` is not a known top-level key: anchors must live inside `accounts`.
    let e = Dir::new()
        .with("accounts.yaml", &format!("{yaml}accounts: []\n"))
        .error(&[]);
    assert!(
        e.contains("accounts.yaml: field \"defaults\": unknown key"),
        "{e}"
    );

    let s = Dir::new()
        .with(
            "accounts.yaml",
            "accounts:\n  - &base\n    id: a1\n    llm_model: builtin/hold\n    assets: [BTC]\n    \
             interval: 1h\n  - <<: *base\n    id: a2\n    assets: [ETH]\n",
        )
        .load(&[])
        .unwrap();
    assert_eq!(s.accounts[1].id.as_str(), "a2");
    assert_eq!(s.accounts[1].interval.label, "1h");
    assert_eq!(s.accounts[1].assets, vec![Asset::new("ETH")]);
}

#[test]
fn bad_top_level_values_name_their_source() {
    let e = Dir::new()
        .with("accounts.yaml", &yaml_with_account(""))
        .with(".env", "VIBEX_LOG_LEVEL=loud\n")
        .error(&[("API_PORT", "http")]);
    assert!(
        e.contains("environment: variable API_PORT: \"http\" is not a whole number"),
        "{e}"
    );
    assert!(
        e.contains(".env: variable VIBEX_LOG_LEVEL: \"loud\" is not a log level"),
        "{e}"
    );

    let e = Dir::new()
        .with("vibex.toml", "[market_data]\nkline_limit = 5000\n")
        .with("accounts.yaml", &yaml_with_account(""))
        .error(&[]);
    assert!(
        e.contains("vibex.toml: field \"market_data.kline_limit\": 5000 is outside 60..=1500"),
        "{e}"
    );

    let e = Dir::new()
        .with("accounts.yaml", &yaml_with_account(""))
        .error(&[("DATABASE_URL", "mysql://root:hunter2@db/x")]);
    assert!(
        e.contains("environment: variable DATABASE_URL: is not a PostgreSQL URL"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "a secret leaked into: {e}");
}

#[test]
fn broken_files_are_reported_with_their_name_and_line() {
    let e = Dir::new()
        .with("accounts.yaml", "accounts:\n  - id: a1\n   bad: [\n")
        .error(&[]);
    assert!(e.starts_with("accounts.yaml: is not valid YAML"), "{e}");

    let e = Dir::new().with("vibex.toml", "a = \n").error(&[]);
    assert!(
        e.starts_with("vibex.toml: is not valid TOML at line 1"),
        "{e}"
    );

    let e = Dir::new()
        .with(".env", "GOOD=1\nBAD LINE sk-secret\n")
        .error(&[]);
    assert!(e.starts_with(".env: line 2 cannot be parsed"), "{e}");
    assert!(!e.contains("sk-secret"), "{e}");
    let e = Dir::new()
        .with(".env", "GOOD=1\nKEY=two words-secret\n")
        .error(&[]);
    assert!(e.starts_with(".env: line 2 cannot be parsed"), "{e}");
    assert!(!e.contains("words-secret"), "{e}");
}

#[test]
fn secrets_are_masked_when_serialized() {
    let dir = Dir::new().with("accounts.yaml", ORIGINAL);
    let s = dir
        .load(
            &[
                ORIGINAL_VARS,
                &[("DATABASE_URL", "postgres://u:dbpass@localhost/vibex")],
            ]
            .concat(),
        )
        .unwrap();
    let json = serde_json::to_string(&s).unwrap();
    let masked = s.masked_json().to_string();
    for (_, secret) in ORIGINAL_VARS {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
        assert!(!masked.contains(secret), "{secret} leaked: {masked}");
    }
    assert!(!json.contains("dbpass"), "{json}");
    assert!(json.contains("\"api_key\":\"***\""), "{json}");
    assert!(json.contains("\"private_key\":\"(not set)\""), "{json}");
    assert_eq!(s.masked_json()["accounts"][0]["interval"]["label"], "1h");

    let secrets = s.secret_values();
    for (_, secret) in ORIGINAL_VARS {
        assert!(
            secrets.contains(&secret.to_string()),
            "{secret} not masked in logs"
        );
    }
    assert!(secrets.contains(&"dbpass".to_string()));
}

#[test]
fn interpolation_handles_defaults_escapes_and_malformed_references() {
    use super::sources::{interpolate, InterpolationError};
    let env = vars(&[("A", "1"), ("EMPTY", "")]);
    assert_eq!(interpolate("x${A}y", &env).unwrap(), "x1y");
    assert_eq!(interpolate("${B:-dflt}", &env).unwrap(), "dflt");
    assert_eq!(interpolate("${EMPTY:-dflt}", &env).unwrap(), "dflt");
    assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
    assert_eq!(interpolate("$${A} $A $", &env).unwrap(), "${A} $A $");
    assert_eq!(
        interpolate("${B}", &env),
        Err(InterpolationError::Missing("B".into()))
    );
    assert!(matches!(
        interpolate("${A", &env),
        Err(InterpolationError::Malformed(_))
    ));
    assert!(matches!(
        interpolate("${not a name}", &env),
        Err(InterpolationError::Malformed(_))
    ));
}

#[test]
fn wallet_signer_fields_go_together() {
    let e = Dir::new()
        .with(
            "accounts.yaml",
            &yaml_with_account(
                "    asterdex:\n      user: \"0x0000000000000000000000000000000000000001\"\n",
            ),
        )
        .error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: account \"a1\": field \"asterdex.signer\": missing; wallet-signer mode"
        ),
        "{e}"
    );
    assert!(e.contains("field \"asterdex.private_key\": missing"), "{e}");
}

#[test]
fn llm_block_defaults_and_values() {
    let s = Dir::new()
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[])
        .unwrap();
    let llm = &s.accounts[0].llm;
    assert_eq!(llm.timeout, Duration::from_secs(25));
    assert_eq!(llm.structured_output, StructuredOutput::JsonSchema);
    assert_eq!(llm.breaker_failures, 3);
    assert_eq!(s.accounts[0].risk.hysteresis_cycles, 2);
    assert!(!s.kill_switch);
    assert_eq!(s.llm.app_title, "vibex");

    let yaml = format!(
        "kill_switch: true\nllm:\n  app_url: https://example.org/vibex\n  prices:\n    x-ai/grok-4: {{prompt_per_mtok: 3, completion_per_mtok: 15}}\n{}",
        yaml_with_account(
            "    risk: {hysteresis_cycles: 3}\n    llm:\n      temperature: 0.7\n      max_tokens: 900\n      timeout: 12s\n      structured_output: json_object\n      max_cost_usd_per_day: 2.5\n      price: {prompt_per_mtok: 0.2, completion_per_mtok: 0.6}\n      circuit_breaker: {failures: 5, cooldown: 1m}\n"
        )
    );
    let s = Dir::new().with("accounts.yaml", &yaml).load(&[]).unwrap();
    assert!(s.kill_switch);
    assert_eq!(s.llm.prices["x-ai/grok-4"].completion_per_mtok, dec!(15));
    let a = &s.accounts[0];
    assert_eq!(a.risk.hysteresis_cycles, 3);
    assert_eq!(a.llm.temperature, 0.7);
    assert_eq!(a.llm.max_tokens, 900);
    assert_eq!(a.llm.timeout, Duration::from_secs(12));
    assert_eq!(a.llm.structured_output, StructuredOutput::JsonObject);
    assert_eq!(a.llm.max_cost_usd_per_day, Some(dec!(2.5)));
    assert_eq!(a.llm.price.as_ref().unwrap().prompt_per_mtok, dec!(0.2));
    assert_eq!(a.llm.breaker_failures, 5);
    assert_eq!(a.llm.breaker_cooldown, Duration::from_secs(60));
}

#[test]
fn llm_block_errors_name_account_and_field() {
    for (extra, field, fragment) in [
        ("    llm: {timeout: 45s}\n", "llm.timeout", "30s budget"),
        ("    llm: {temperature: 3}\n", "llm.temperature", "0..=2"),
        (
            "    llm: {structured_output: xml}\n",
            "llm.structured_output",
            "json_schema",
        ),
        (
            "    llm: {price: {prompt_per_mtok: 1}}\n",
            "llm.price.completion_per_mtok",
            "missing",
        ),
        ("    llm: {tempo: 1}\n", "llm.tempo", "unknown key"),
        (
            "    risk: {hysteresis_cycles: 0}\n",
            "risk.hysteresis_cycles",
            "1..=10",
        ),
    ] {
        let e = Dir::new()
            .with("accounts.yaml", &yaml_with_account(extra))
            .error(&[]);
        assert!(
            e.contains("account \"a1\"") && e.contains(field) && e.contains(fragment),
            "{extra}: {e}"
        );
    }
}

#[test]
fn storage_block_defaults_values_and_errors() {
    let s = Dir::new()
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[])
        .unwrap();
    assert_eq!(s.storage.queue_capacity, 50_000);
    assert_eq!(s.storage.batch_rows, 5_000);
    assert_eq!(s.storage.slow_commit, Duration::from_secs(5));
    assert_eq!(s.storage.halt_entries_after, Duration::from_secs(60));

    let s = Dir::new()
        .with(
            "vibex.toml",
            "[storage]\nqueue_capacity = 2000\nbatch_rows = 500\nslow_commit = \"2s\"\n\
             halt_entries_after = \"90s\"\n",
        )
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[])
        .unwrap();
    assert_eq!(s.storage.queue_capacity, 2000);
    assert_eq!(s.storage.batch_rows, 500);
    assert_eq!(s.storage.slow_commit, Duration::from_secs(2));
    assert_eq!(s.storage.halt_entries_after, Duration::from_secs(90));

    for (toml, fragment) in [
        (
            "[storage]\nqueue_capacity = 1000\nbatch_rows = 5000\n",
            "field \"storage.queue_capacity\": 1000 is below storage.batch_rows (5000)",
        ),
        (
            "[storage]\nbatch_rows = 0\n",
            "field \"storage.batch_rows\": 0 is outside 1..=100000",
        ),
        (
            "[storage]\nhalt_entries_after = \"0s\"\n",
            "field \"storage.halt_entries_after\": must be longer than zero",
        ),
        (
            "[storage]\nslow_commit = 5\n",
            "field \"storage.slow_commit\": 5 is not a duration",
        ),
        (
            "[storage]\nspool_dir = \"/x\"\n",
            "unknown key \"spool_dir\"",
        ),
    ] {
        let e = Dir::new()
            .with("vibex.toml", toml)
            .with("accounts.yaml", &yaml_with_account(""))
            .error(&[]);
        assert!(
            e.contains("vibex.toml") && e.contains(fragment),
            "{toml}: {e}"
        );
    }
}

#[test]
fn the_arbiter_pool_defaults_to_the_cores_and_is_bounded() {
    let s = Dir::new()
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[])
        .unwrap();
    assert_eq!(s.runtime.arbiters, crate::config::default_arbiters());
    let s = Dir::new()
        .with("vibex.toml", "[runtime]\narbiters = 6\n")
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[])
        .unwrap();
    assert_eq!(s.runtime.arbiters, 6);
    let e = Dir::new()
        .with("vibex.toml", "[runtime]\narbiters = 0\n")
        .with("accounts.yaml", &yaml_with_account(""))
        .error(&[]);
    assert!(
        e.contains("vibex.toml: field \"runtime.arbiters\": 0 is outside 1..=256"),
        "{e}"
    );
}

const HASH_A: &str = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7";
const HASH_B: &str = "b5d4045c3f466fa91fe2cc6abe79232a1a57cdf104f7a26e716e0a1e2789df78";

#[test]
fn api_keys_are_read_from_the_accounts_file_and_from_vibex_toml() {
    let yaml = format!(
        "api:\n  keys:\n    - name: ops\n      role: admin\n      key_sha256: {HASH_A}\n    \
         - name: viewer\n      role: read\n      key_sha256: {}\n      accounts: [a1]\n{}",
        HASH_B.to_ascii_uppercase(),
        yaml_with_account("")
    );
    let s = Dir::new().with("accounts.yaml", &yaml).load(&[]).unwrap();
    assert_eq!(s.api.keys.len(), 2);
    let viewer = &s.api.keys[1];
    assert_eq!(viewer.name, "viewer");
    assert_eq!(viewer.role, crate::api::access::Role::Read);
    assert_eq!(hex::encode(viewer.key_sha256), HASH_B);
    assert_eq!(viewer.accounts.as_deref(), Some(&["a1".to_string()][..]));
    assert!(!s.api.allow_unauthenticated);
    assert_eq!(s.api.rate_limit, RateLimitSettings::default());
    assert!(s.api.cors_origins.is_empty());

    let toml = format!(
        "[api]\nallow_unauthenticated = true\ncors_origins = [\"https://Dash.example.com/\"]\n\
         [api.rate_limit.per_key]\nper_second = 5\n\
         [[api.keys]]\nname = \"ops\"\nrole = \"trade\"\nkey_sha256 = \"{HASH_A}\"\n"
    );
    let s = Dir::new()
        .with("vibex.toml", &toml)
        .with("accounts.yaml", &yaml_with_account(""))
        .load(&[])
        .unwrap();
    assert_eq!(s.api.keys.len(), 1);
    assert_eq!(s.api.keys[0].role, crate::api::access::Role::Trade);
    assert!(s.api.allow_unauthenticated);
    assert_eq!(s.api.cors_origins, ["https://dash.example.com"]);
    assert_eq!(
        s.api.rate_limit.per_key,
        RateBucket {
            per_second: 5,
            burst: DEFAULT_RATE_PER_KEY.burst
        }
    );
    // The accounts file's list replaces vibex.toml's whole.
    let s = Dir::new()
        .with("vibex.toml", &toml)
        .with("accounts.yaml", &yaml)
        .load(&[])
        .unwrap();
    assert_eq!(
        s.api
            .keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        ["ops", "viewer"]
    );
    assert!(
        s.masked_json().to_string().contains(HASH_A),
        "config check shows the hash"
    );
}

#[test]
fn bad_api_keys_are_refused_naming_the_file_and_the_entry() {
    let yaml = format!(
        "api:\n  keys:\n    - name: ops\n      role: admin\n      key_sha256: {HASH_A}\n    \
         - name: OPS\n      role: root\n      key_sha256: 1234\n    \
         - name: third\n      role: read\n      key_sha256: {HASH_A}\n      accounts: [a1, ghost]\n    \
         - role: read\n      key_sha256: {HASH_B}\n{}",
        yaml_with_account("")
    );
    let e = Dir::new().with("accounts.yaml", &yaml).error(&[]);
    for expected in [
        "accounts.yaml: field \"api.keys[2].name\": duplicate name: keys #1 and #2 are both \"OPS\"",
        "accounts.yaml: field \"api.keys[2].role\": role must be read, trade or admin, got \"root\"",
        "accounts.yaml: field \"api.keys[2].key_sha256\": is not a SHA-256 in hex (64 hex digits, 4 characters given)",
        "accounts.yaml: field \"api.keys[3].key_sha256\": keys #1 and #3 have the same hash",
        "accounts.yaml: field \"api.keys[4].name\": missing",
    ] {
        assert!(e.contains(expected), "lacks {expected:?}:\n{e}");
    }

    let yaml = format!(
        "api:\n  keys:\n    - name: viewer\n      role: read\n      key_sha256: {HASH_A}\n      \
         accounts: [a1, ghost]\n{}",
        yaml_with_account("")
    );
    let e = Dir::new().with("accounts.yaml", &yaml).error(&[]);
    assert!(
        e.contains(
            "accounts.yaml: field \"api.keys[1].accounts\": key \"viewer\" names account \
             \"ghost\", which is not configured (configured: a1)"
        ),
        "{e}"
    );

    let e = Dir::new()
        .with(
            "vibex.toml",
            "[api]\ncors_origins = [\"https://dash.example.com/app\", \"*\"]\n\
             [api.rate_limit.per_ip]\nburst = 0\n",
        )
        .with("accounts.yaml", &yaml_with_account(""))
        .error(&[]);
    for expected in [
        "vibex.toml: field \"api.cors_origins[1]\": \"https://dash.example.com/app\" is not an origin",
        "vibex.toml: field \"api.cors_origins[2]\": \"*\" is not an origin",
        "vibex.toml: field \"api.rate_limit.per_ip.burst\": 0 is outside 1..=1000000",
    ] {
        assert!(e.contains(expected), "lacks {expected:?}:\n{e}");
    }
}
