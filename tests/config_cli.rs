//! `vibex config check` and `vibex run` refuse every bad configuration the same way,
//! with a message naming the file, the account and the field; a good one prints the
//! resolved configuration with every secret masked. `--config`/`--accounts` work with
//! every subcommand.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn vibex(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibex"));
    cmd.args(args).current_dir(dir);
    for var in common::process::AMBIENT {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run vibex")
}

const GOOD: &str = r#"
accounts:
  - id: account1
    asterdex:
      api_key: ${ASTERDEX_KEY_1}
      api_secret: ${ASTERDEX_SECRET_1}
    openrouter:
      api_key: ${OPENROUTER_KEY_1}
    llm_model: x-ai/grok-4
    assets: [BTC, ETH]
    interval: 1h
"#;

const SECRETS: &[(&str, &str)] = &[
    ("ASTERDEX_KEY_1", "k-1234567890abcdef"),
    ("ASTERDEX_SECRET_1", "s-fedcba0987654321"),
    ("OPENROUTER_KEY_1", "sk-or-v1-0011223344556677"),
];

/// Writes `yaml` as `my-accounts.yaml`, runs `config check` and `run` on it, and checks
/// both fail with every `expected` fragment in stderr.
fn refused(yaml: &str, env: &[(&str, &str)], expected: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("my-accounts.yaml"), yaml).unwrap();
    for cmd in [&["config", "check"][..], &["run"][..]] {
        let mut args = vec!["--accounts", "my-accounts.yaml"];
        args.extend_from_slice(cmd);
        let out = vibex(tmp.path(), &args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} must fail: {stderr}");
        for fragment in expected {
            assert!(
                stderr.contains(fragment),
                "{args:?}: stderr lacks {fragment:?}:\n{stderr}"
            );
        }
        assert!(
            stderr.contains("my-accounts.yaml"),
            "names the file: {stderr}"
        );
    }
}

#[test]
fn a_missing_variable_names_file_account_field_and_variable() {
    refused(
        GOOD,
        &SECRETS[..2],
        &[
            "account \"account1\"",
            "openrouter.api_key",
            "OPENROUTER_KEY_1",
        ],
    );
}

#[test]
fn an_unknown_key_is_refused() {
    let yaml = GOOD.replace("interval: 1h", "interval: 1h\n    levrage: 3");
    refused(&yaml, SECRETS, &["account \"account1\"", "levrage"]);
}

#[test]
fn a_bad_interval_is_refused() {
    let yaml = GOOD.replace("interval: 1h", "interval: 7x");
    refused(
        &yaml,
        SECRETS,
        &["account \"account1\"", "field \"interval\"", "7x"],
    );
}

#[test]
fn a_duplicate_id_is_refused() {
    let yaml = format!(
        "{GOOD}  - id: account1\n    llm_model: builtin/hold\n    assets: [SOL]\n    interval: 5m\n"
    );
    refused(
        &yaml,
        SECRETS,
        &["account \"account1\"", "field \"id\"", "duplicate"],
    );
}

#[test]
fn leverage_outside_1_to_20_is_refused() {
    for bad in ["0", "21"] {
        let yaml = GOOD.replace(
            "interval: 1h",
            &format!("interval: 1h\n    leverage: {bad}"),
        );
        refused(
            &yaml,
            SECRETS,
            &["account \"account1\"", "field \"leverage\"", "1..=20"],
        );
    }
}

#[test]
fn live_mode_without_credentials_is_refused_naming_the_fields() {
    let yaml = r#"
accounts:
  - id: account1
    mode: live
    llm_model: builtin/hold
    assets: [BTC]
    interval: 1h
"#;
    refused(
        yaml,
        &[],
        &[
            "account \"account1\"",
            "field \"asterdex\": missing credentials",
            "asterdex.api_key",
            "asterdex.api_secret",
            "asterdex.user",
            "asterdex.signer",
            "asterdex.private_key",
        ],
    );
    let key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f3623";
    let yaml = format!(
        "{}    asterdex:\n      user: \"0x1111111111111111111111111111111111111111\"\n      \
         signer: \"0x22\"\n      private_key: ${{ASTER_PK}}\n",
        yaml.trim_start()
    );
    refused(
        &yaml,
        &[("ASTER_PK", key)],
        &[
            "field \"asterdex.signer\": \"0x22\" is not a wallet address",
            "field \"asterdex.private_key\": is not a private key",
        ],
    );
}

/// GOOD with `mode: live`, plus a paper account.
fn live_and_paper() -> String {
    format!(
        "{}  - id: paper1\n    llm_model: builtin/hold\n    assets: [SOL]\n    interval: 5m\n",
        GOOD.replace("interval: 1h", "interval: 1h\n    mode: live")
    )
}

#[test]
fn config_check_says_which_accounts_are_live() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("accounts.yaml"), live_and_paper()).unwrap();
    let out = vibex(tmp.path(), &["config", "check"], SECRETS);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("configuration is valid: 2 account(s) (account1 live, paper1 paper)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("LIVE: account1 (real orders on https://fapi.asterdex.com, signing: hmac)"),
        "{stderr}"
    );
    assert!(!stderr.contains("LIVE: paper1"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["accounts"][0]["mode"], "live");
    assert_eq!(json["accounts"][0]["asterdex"]["signing"], "hmac");
    assert_eq!(json["accounts"][0]["asterdex"]["api_secret"], "***");
    assert_eq!(json["accounts"][1]["mode"], "paper");
    for (_, secret) in SECRETS {
        assert!(!stdout.contains(secret), "{secret} in stdout");
        assert!(!stderr.contains(secret), "{secret} in stderr");
    }
}

#[test]
fn run_warns_loudly_about_each_live_account() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("accounts.yaml"), live_and_paper()).unwrap();
    // No database: the run stops right after the start-up warnings.
    let env = [SECRETS, &[("VIBEX_PG_BIN", "/nonexistent/pg/bin")]].concat();
    let out = vibex(tmp.path(), &["run"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "WARNING: LIVE: account1 (real orders on https://fapi.asterdex.com, signing: hmac)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("LIVE: paper1"), "{stderr}");
    let app_log = std::fs::read_to_string(tmp.path().join("logs/app.log")).unwrap();
    let warning = app_log
        .lines()
        .find(|l| l.contains("live account: real orders will be sent"))
        .unwrap_or_else(|| panic!("no warning in app.log:\n{app_log}"));
    let record: serde_json::Value = serde_json::from_str(warning).unwrap();
    assert_eq!(record["level"], "WARNING");
    assert_eq!(record["account_id"], "account1");
    assert_eq!(record["venue"], "https://fapi.asterdex.com");
    assert_eq!(record["signing"], "hmac");
    for (_, secret) in SECRETS {
        assert!(!stderr.contains(secret), "{secret} in stderr");
        assert!(!app_log.contains(secret), "{secret} in app.log");
    }
}

#[test]
fn config_check_prints_the_resolved_configuration_with_secrets_masked() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("accounts.yaml"), GOOD).unwrap();
    std::fs::write(
        tmp.path().join("vibex.toml"),
        "log_level = \"debug\"\n[api]\nport = 4100\n",
    )
    .unwrap();
    let out = vibex(tmp.path(), &["config", "check"], SECRETS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["api"]["port"], 4100, "vibex.toml read");
    assert_eq!(json["log_level"], "debug");
    let account = &json["accounts"][0];
    assert_eq!(account["id"], "account1");
    assert_eq!(account["mode"], "paper", "paper is the default");
    assert_eq!(account["asterdex"]["base_url"], "https://fapi.asterdex.com");
    assert_eq!(account["asterdex"]["api_key"], "***");
    assert_eq!(account["openrouter"]["api_key"], "***");
    for (_, secret) in SECRETS {
        assert!(!stdout.contains(secret));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    }
    // The environment overrides the file; a flag picks another file.
    let out = vibex(
        tmp.path(),
        &["config", "check"],
        &[SECRETS, &[("API_PORT", "4200")]].concat(),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["api"]["port"], 4200);
    std::fs::write(tmp.path().join("other.toml"), "[api]\nport = 4300\n").unwrap();
    let out = vibex(
        tmp.path(),
        &["--config", "other.toml", "config", "check"],
        SECRETS,
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["api"]["port"], 4300);
}

#[test]
fn the_original_single_account_environment_works() {
    let tmp = tempfile::tempdir().unwrap();
    let out = vibex(
        tmp.path(),
        &["config", "check"],
        &[
            ("ASTERDEX_API_KEY", "k-abcdef123456"),
            ("ASTERDEX_API_SECRET", "s-abcdef123456"),
            ("LLM_MODEL", "builtin/ema-rsi"),
            ("ASSETS", "BTC ETH"),
            ("INTERVAL", "5m"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["accounts"][0]["assets"],
        serde_json::json!(["BTC", "ETH"])
    );
}

#[test]
fn migrate_takes_the_same_flags_and_applies_the_schema() {
    let db = common::pg::test_db();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.yaml"), GOOD).unwrap();
    let env = [SECRETS, &[("DATABASE_URL", db.url.as_str())]].concat();
    let out = vibex(tmp.path(), &["--accounts", "a.yaml", "migrate"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("applied").count(), 4, "{stdout}");
    let out = vibex(tmp.path(), &["--accounts", "a.yaml", "migrate"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}

#[test]
fn indicators_prints_talib_values_for_a_csv() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = vibex(
        root,
        &["indicators", "--csv", "tests/data/eurusd-1h.csv"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/data/talib_eurusd_1h.json")).unwrap(),
    )
    .unwrap();
    for name in vibex::domain::indicators::IndicatorSeries::NAMES {
        let g = got[name].as_array().unwrap();
        let w = want[name].as_array().unwrap();
        assert_eq!(g.len(), 5000, "{name}");
        assert_eq!(g.len(), w.len());
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            match (a.as_f64(), b.as_f64()) {
                (None, None) => assert!(a.is_null() && b.is_null(), "{name}[{i}]"),
                (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-9, "{name}[{i}]: {x} vs {y}"),
                _ => panic!("{name}[{i}]: {a} vs {b}"),
            }
        }
    }
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "timestamp,open,high,low,close,volume\n1,1,2,0.5,abc,3\n",
    )
    .unwrap();
    let out = vibex(
        root,
        &["indicators", "--csv", bad.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("close"), "{err}");
}

#[test]
fn run_without_postgres_binaries_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("accounts.yaml"), GOOD).unwrap();
    let env = [SECRETS, &[("VIBEX_PG_BIN", "/nonexistent/pg/bin")]].concat();
    let out = vibex(tmp.path(), &["run"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("apt install postgresql"), "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}
