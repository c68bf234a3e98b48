//! Journeys through the whole stack: log, drop the guard, read the files.

use super::*;
use serde_json::Value;
use slog::{crit, debug, error, info, warn};
use std::path::Path;
use std::sync::{Arc, Mutex};

const PRIVATE_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

fn quiet(dir: &Path, level: Level) -> LogSettings {
    LogSettings {
        stderr: false,
        ..LogSettings::new(dir, level)
    }
}

/// Every line of a file, each parsed as one JSON object.
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: invalid JSON line {line:?}: {e}", path.display()));
            assert!(v.is_object(), "{line}");
            v
        })
        .collect()
}

fn file(dir: &Path, name: &str) -> Vec<Value> {
    records(&dir.join(name))
}

fn msgs(records: &[Value]) -> Vec<&str> {
    records.iter().map(|r| r["msg"].as_str().unwrap()).collect()
}

/// Captures the human-readable output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn each_record_lands_in_its_domain_file_and_errors_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let t = init(&quiet(dir.path(), Level::Info), SecretMask::default()).unwrap();
    let trading = domain_logger(&t.root, LogDomain::Trading);
    let llm = domain_logger(&t.root, LogDomain::Llm);
    let market = domain_logger(&t.root, LogDomain::MarketData);
    info!(trading, "order placed");
    error!(llm, "model timed out");
    warn!(market, "candle gap");
    info!(t.root, "booted");
    crit!(domain_logger(&t.root, LogDomain::App), "database lost");
    drop(t);

    let d = dir.path();
    assert_eq!(msgs(&file(d, "trading.log")), ["order placed"]);
    assert_eq!(msgs(&file(d, "llm.log")), ["model timed out"]);
    assert_eq!(msgs(&file(d, "market_data.log")), ["candle gap"]);
    assert_eq!(msgs(&file(d, "app.log")), ["booted", "database lost"]);
    let errors = file(d, ERRORS_FILE);
    assert_eq!(msgs(&errors), ["model timed out", "database lost"]);
    assert_eq!(errors[0]["domain"], "llm");
    assert_eq!(errors[1]["level"], "CRITICAL");
    // A record without a domain is an app record.
    assert_eq!(file(d, "app.log")[0]["domain"], "app");
}

#[test]
fn every_line_carries_time_level_message_domain_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let t = init(&quiet(dir.path(), Level::Info), SecretMask::default()).unwrap();
    let execution = domain_logger(&t.root, LogDomain::Trading)
        .new(o!("component" => "supervisor", "account_id" => "acc-7"))
        .new(o!("component" => "execution"));
    info!(execution, "order {} filled", "c-1";
        "cycle_id" => "cyc-42", "qty" => 3, "reduce_only" => false, "fill_ratio" => 0.5,
        "msg" => "a key-value named msg");
    drop(t);

    let line = &file(dir.path(), "trading.log")[0];
    let ts = line["ts"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert!(
        ts.ends_with('Z') && ts.len() == "2025-01-31T12:00:00.123Z".len(),
        "{ts}"
    );
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["msg"], "order c-1 filled");
    assert_eq!(line["domain"], "trading");
    assert_eq!(
        line["component"], "execution",
        "the newest logger's value wins"
    );
    assert_eq!(line["account_id"], "acc-7");
    assert_eq!(line["cycle_id"], "cyc-42");
    assert_eq!(line["qty"], 3);
    assert_eq!(line["reduce_only"], false);
    assert_eq!(line["fill_ratio"], 0.5);
    assert_eq!(line["kv_msg"], "a key-value named msg");
    let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
    assert!(!keys.iter().any(|k| k.contains("__vibex")), "{keys:?}");
}

#[derive(Debug)]
struct VenueError {
    body: String,
}

impl fmt::Display for VenueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "venue replied {}", self.body)
    }
}

impl std::error::Error for VenueError {}

#[derive(Debug)]
struct OrderError {
    source: VenueError,
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("order rejected")
    }
}

impl std::error::Error for OrderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[test]
fn secrets_appear_in_no_file_and_not_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let api_secret = "aster-secret-9f8e7d6c5b4a";
    let odd_secret = r#"pa"ss\w0rd!"#;
    let late_secret = "account-added-later-key";
    let mask = SecretMask::new([api_secret.to_string(), odd_secret.to_string()]);
    let captured = Captured::default();
    let settings = quiet(dir.path(), Level::Info);
    let t = init_with_stderr(&settings, mask.clone(), Some(Box::new(captured.clone()))).unwrap();
    mask.add([late_secret.to_string()]);

    let log = domain_logger(&t.root, LogDomain::Trading)
        .new(o!("component" => "execution", "account_id" => "acc-1"));
    let nested = OrderError {
        source: VenueError {
            body: format!(r#"{{"msg":"bad key {api_secret}","secret":"{odd_secret}"}}"#),
        },
    };
    error!(log, "signing with {} failed", api_secret;
        "key" => api_secret,
        "api_key" => "unregistered but-named",
        "error" => %nested,
        "error_chain" => #&nested,
        "error_debug" => ?nested,
        "header" => "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        "wallet" => PRIVATE_KEY,
        "db" => "postgres://vibex:pg-pass-4471@db:5432/vibex",
        "odd" => odd_secret,
        "late" => format!("runtime {late_secret}"),
        "query" => "symbol=BTCUSDT&signature=5f2b9c&timestamp=1");
    info!(log, "request GET /fapi/v2/account?timestamp=1&signature=deadbeef99 with X-MBX-APIKEY: mbxkey123");
    drop(t);

    let leaks = [
        api_secret,
        odd_secret,
        r#"pa\"ss\\w0rd!"#,
        late_secret,
        "unregistered",
        "but-named",
        "eyJhbGciOiJIUzI1NiJ9",
        &PRIVATE_KEY[2..],
        "pg-pass-4471",
        "5f2b9c",
        "deadbeef99",
        "mbxkey123",
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for leak in leaks {
            assert!(
                !text.contains(leak),
                "{leak} leaked into {}: {text}",
                path.display()
            );
        }
        checked += records(&path).len();
    }
    assert_eq!(checked, 3, "two trading lines and one errors line");
    let stderr = captured.text();
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    for leak in leaks {
        assert!(!stderr.contains(leak), "{leak} leaked to stderr: {stderr}");
    }

    let line = &file(dir.path(), "trading.log")[0];
    assert_eq!(line["msg"], "signing with *** failed");
    assert_eq!(line["api_key"], "***");
    assert_eq!(line["header"], "Authorization: Bearer ***");
    assert_eq!(line["db"], "postgres://vibex:***@db:5432/vibex");
    assert_eq!(line["account_id"], "acc-1");
    assert!(stderr.contains("signing with *** failed"), "{stderr}");
    let context = stderr.split_once("failed").unwrap().1;
    assert!(
        context.contains("component: execution, account_id: acc-1, key: ***, api_key: ***"),
        "{stderr}"
    );
    assert!(!stderr.contains("__vibex"), "{stderr}");
}

#[test]
fn rotation_caps_backups_and_never_splits_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let settings = LogSettings {
        rotate_bytes: 2048,
        keep: 3,
        ..quiet(dir.path(), Level::Info)
    };
    let t = init(&settings, SecretMask::default()).unwrap();
    let log = domain_logger(&t.root, LogDomain::Trading).new(o!("component" => "execution"));
    let padding = "x".repeat(120);
    for seq in 0..400u64 {
        info!(log, "fill {}", seq; "seq" => seq, "padding" => &padding);
    }
    drop(t);

    let d = dir.path();
    let mut seqs = Vec::new();
    for name in [
        "trading.log.3",
        "trading.log.2",
        "trading.log.1",
        "trading.log",
    ] {
        let path = d.join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 2048 + 400, "{name} is {size} bytes");
        seqs.extend(records(&path).iter().map(|r| r["seq"].as_u64().unwrap()));
    }
    assert!(!d.join("trading.log.4").exists());
    assert!(seqs.len() >= 20, "three full backups and the current file");
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..400).collect::<Vec<_>>(),
        "newest records, in order, none lost"
    );
}

#[test]
fn records_below_the_level_are_dropped_but_errors_always_reach_errors_log() {
    let dir = tempfile::tempdir().unwrap();
    let t = init(&quiet(dir.path(), Level::Warning), SecretMask::default()).unwrap();
    let log = domain_logger(&t.root, LogDomain::Trading);
    debug!(log, "debug");
    info!(log, "info");
    warn!(log, "warning");
    error!(log, "error");
    drop(t);
    assert_eq!(msgs(&file(dir.path(), "trading.log")), ["warning", "error"]);
    assert_eq!(file(dir.path(), "trading.log")[0]["level"], "WARNING");
    assert_eq!(msgs(&file(dir.path(), ERRORS_FILE)), ["error"]);

    let dir = tempfile::tempdir().unwrap();
    let t = init(&quiet(dir.path(), Level::Critical), SecretMask::default()).unwrap();
    let log = domain_logger(&t.root, LogDomain::Llm);
    error!(log, "error");
    crit!(log, "critical");
    drop(t);
    assert_eq!(msgs(&file(dir.path(), "llm.log")), ["critical"]);
    assert_eq!(msgs(&file(dir.path(), ERRORS_FILE)), ["error", "critical"]);
}

#[test]
fn a_missing_directory_is_created_and_an_unusable_one_is_named() {
    let base = tempfile::tempdir().unwrap();
    let nested = base.path().join("a/b/logs");
    let t = init(&quiet(&nested, Level::Info), SecretMask::default()).unwrap();
    drop(t);
    for name in [
        "app.log",
        "trading.log",
        "market_data.log",
        "llm.log",
        "errors.log",
    ] {
        assert!(nested.join(name).exists(), "{name}");
    }

    let blocker = base.path().join("not-a-dir");
    std::fs::write(&blocker, "file").unwrap();
    let bad = blocker.join("logs");
    let err = init(&quiet(&bad, Level::Info), SecretMask::default())
        .err()
        .expect("a directory under a file cannot be created");
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
}

#[test]
fn levels_parse_from_configuration_names() {
    assert_eq!(parse_level("trace"), Some(Level::Trace));
    assert_eq!(parse_level("DEBUG"), Some(Level::Debug));
    assert_eq!(parse_level(" info "), Some(Level::Info));
    assert_eq!(parse_level("warn"), Some(Level::Warning));
    assert_eq!(parse_level("warning"), Some(Level::Warning));
    assert_eq!(parse_level("error"), Some(Level::Error));
    assert_eq!(parse_level("critical"), Some(Level::Critical));
    assert_eq!(parse_level("verbose"), None);
}

#[test]
fn defaults_and_discard() {
    let s = LogSettings::new("logs", Level::Info);
    assert_eq!(
        (s.rotate_bytes, s.keep, s.stderr),
        (100 * 1024 * 1024, 10, true)
    );
    info!(discard(), "goes nowhere"; "k" => 1);
    assert_eq!(LogDomain::parse("market_data"), Some(LogDomain::MarketData));
    assert_eq!(LogDomain::parse("nope"), None);
}
